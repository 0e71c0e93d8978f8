# -*- coding: utf-8 -*-
# Copyright (c) homelab.edge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Reconcile the whole Cloudflare side of an edge (tunnels, ingress, DNS, Access) in one run.

The per-resource managers do the work; this module orders them, validates the whole
input before the first request, and shares lookups between objects.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.homelab.edge.plugins.module_utils.access import (
    ApplicationManager,
    PolicyManager,
    ServiceTokenManager,
    duration_seconds,
    token_view,
)
from ansible_collections.homelab.edge.plugins.module_utils.cloudflare_api import CloudflareError
from ansible_collections.homelab.edge.plugins.module_utils.dns import DnsManager
from ansible_collections.homelab.edge.plugins.module_utils.ingress import (
    IngressError,
    merge_ingress,
    normalize_current_ingress,
    validate_ingress,
)
from ansible_collections.homelab.edge.plugins.module_utils.tunnels import (
    TUNNEL_CNAME_SUFFIX,
    IngressManager,
    TunnelManager,
)

DEFAULT_POLICY_NAME = "%s service auth"


def service_rule(service):
    """Return the ingress rule (user form) for one service of the data model."""
    rule = {"hostname": service["hostname"]}
    for key in ("path", "service", "origin", "origin_request"):
        if service.get(key) not in (None, "", {}):
            rule[key] = service[key]
    return rule


def zone_of(hostname, zones):
    """Return the longest zone name in ``zones`` that contains ``hostname``."""
    matches = [zone for zone in zones if hostname == zone or hostname.endswith("." + zone)]
    return max(matches, key=len) if matches else None


class EdgePlan:
    """The validated input of one aggregate run."""

    def __init__(self, params):
        self.account = params["account"]
        self.default_zone = (params.get("zone") or "").rstrip(".").lower() or None
        self.service_tokens = params.get("service_tokens") or []
        self.tunnels = params.get("tunnels") or []
        self.errors = []
        self.ingress = {}
        self.zones = set()
        self._validate()

    def _validate(self):
        seen_tokens = set()
        for token in self.service_tokens:
            if token["name"] in seen_tokens:
                self.errors.append("Service token '%s' is listed twice in service_tokens." % token["name"])
            seen_tokens.add(token["name"])
            if token.get("duration"):
                try:
                    duration_seconds(token["duration"])
                except ValueError as exc:
                    self.errors.append("Invalid duration for service token '%s': %s." % (token["name"], exc))

        seen_hosts = {}
        seen_tunnels = set()
        for tunnel in self.tunnels:
            name = tunnel["name"]
            if name in seen_tunnels:
                self.errors.append("Tunnel '%s' is listed twice in tunnels." % name)
            seen_tunnels.add(name)
            rules = []
            for service in tunnel.get("services") or []:
                hostname = (service.get("hostname") or "").strip().lower()
                service["hostname"] = hostname
                where = "service '%s' of tunnel '%s'" % (hostname, name)
                if (hostname, service.get("path") or "") in seen_hosts:
                    self.errors.append("Hostname '%s' is used by %s and by %s; each hostname and path belongs to one "
                                       "service." % (hostname, seen_hosts[(hostname, service.get("path") or "")], where))
                seen_hosts[(hostname, service.get("path") or "")] = where
                zone = (service.get("zone") or self.default_zone or "").rstrip(".").lower()
                if not zone:
                    self.errors.append("No zone for %s: set zone on the service or the module's zone option." % where)
                elif zone_of(hostname, [zone]) is None and hostname and "://" not in hostname:
                    self.errors.append("Hostname '%s' is not inside zone '%s' (%s); set the service's zone to the "
                                       "zone that holds it." % (hostname, zone, where))
                service["zone"] = zone
                self.zones.add(zone)
                if not service.get("service") and not service.get("origin"):
                    self.errors.append("Set service (an origin URL such as http://127.0.0.1:8080) or origin (a preset "
                                       "such as ollama) for %s." % where)
                access = service.get("access") or {}
                if access.get("decision") not in (None, "non_identity") and access.get("service_tokens"):
                    self.errors.append(
                        "Access for %s admits service tokens with decision '%s'. Access evaluates service tokens only "
                        "under the Service Auth decision, so the token would get a login redirect; use decision "
                        "non_identity or leave decision unset." % (where, access["decision"]))
                rules.append(service_rule(service))
            if tunnel.get("config_src", "cloudflare") == "local":
                continue
            catch_all = tunnel.get("catch_all") or "http_status:404"
            try:
                desired = validate_ingress(rules + [{"service": catch_all}])
            except IngressError as exc:
                self.errors.append("Invalid ingress for tunnel '%s': %s" % (name, exc))
                continue
            self.ingress[name] = desired

    def check(self):
        if self.errors:
            raise CloudflareError("The edge description is invalid, so nothing was sent to Cloudflare:\n- "
                                  + "\n- ".join(self.errors))


class EdgeReconciler:
    """Apply an EdgePlan through the resource managers and collect the outcomes."""

    def __init__(self, api, plan, check_mode=False):
        self.api = api
        self.plan = plan
        self.check_mode = check_mode
        self.outcomes = []
        self.secrets = {}
        self.warnings = []
        self.tunnels = {}
        self.tokens = {}
        self.applications = {}
        self.account_id = None

    def run(self):
        self.plan.check()
        account_id = self.api.account_id(self.plan.account)
        self.account_id = account_id
        zones = dict((name, self.api.zone(name, account_id)) for name in sorted(self.plan.zones))
        token_manager = ServiceTokenManager(self.api, account_id, self.check_mode)
        for token in self.plan.service_tokens:
            outcome = token_manager.ensure_present(token["name"], token.get("duration"))
            self._record(outcome)
            self.tokens[token["name"]] = outcome.result
            if outcome.secrets:
                self.secrets[token["name"]] = dict(outcome.secrets, client_id=outcome.result.get("client_id"))
            self.warnings.extend(outcome.notes)
        if self.plan.tunnels:
            self._tunnels(account_id, zones, token_manager)
        return self

    def _record(self, outcome):
        self.outcomes.append(outcome)
        return outcome

    def _token_id(self, name, token_manager):
        if name not in self.tokens:
            self.tokens[name] = token_view(token_manager.find(name))
        found = self.tokens[name]
        if found and found.get("id"):
            return found["id"]
        if self.check_mode:
            return "<id of service token %s>" % name
        raise CloudflareError("Service token '%s' was not found in the account; list it in service_tokens or create "
                              "it with homelab.edge.cloudflare_access_service_token first." % name)

    def _tunnels(self, account_id, zones, token_manager):
        tunnels = TunnelManager(self.api, account_id, self.check_mode)
        ingress = IngressManager(self.api, account_id, self.check_mode)
        policies = PolicyManager(self.api, account_id, self.check_mode)
        applications = ApplicationManager(self.api, account_id, self.check_mode)
        dns = dict((name, DnsManager(self.api, zone, self.check_mode)) for name, zone in zones.items())

        for spec in self.plan.tunnels:
            name = spec["name"]
            config_src = spec.get("config_src") or "cloudflare"
            outcome = self._record(tunnels.ensure_present(name, config_src))
            tunnel_id = (outcome.result or {}).get("id")
            cname = (tunnel_id or "<id of tunnel %s>" % name) + TUNNEL_CNAME_SUFFIX
            self.tunnels[name] = {"id": tunnel_id, "cname": cname, "config_src": config_src}

            if config_src == "cloudflare":
                current_config = ingress.read(tunnel_id, name)
                current_rules = current_config.get("ingress") or []
                merged, changes = merge_ingress(current_rules, self.plan.ingress[name], spec.get("ingress_mode") or "merge")
                outcome = ingress.ensure(tunnel_id, name, merged,
                                         current_config=dict(current_config,
                                                             ingress=normalize_current_ingress(current_rules)))
                outcome.result = {"ingress": merged, "changes": [item for item in changes
                                                                 if item["change"] != "unchanged"]}
                self._record(outcome)

            for service in spec.get("services") or []:
                hostname = service["hostname"]
                dns_options = service.get("dns") or {}
                self._record(dns[service["zone"]].ensure_present(
                    hostname, "CNAME", cname, proxied=True, overwrite=bool(dns_options.get("overwrite"))))
                access = service.get("access")
                if not access:
                    continue
                self._access(hostname, access, policies, applications, token_manager)

    def _access(self, hostname, access, policies, applications, token_manager):
        include = [{"service_token": {"token_id": self._token_id(token, token_manager)}}
                   for token in access.get("service_tokens") or []]
        if access.get("any_valid_service_token"):
            include.append({"any_valid_service_token": {}})
        attached = []
        if include:
            policy_name = access.get("policy_name") or DEFAULT_POLICY_NAME % hostname
            outcome = self._record(policies.ensure_present(policy_name, "non_identity", include,
                                                           session_duration=access.get("session_duration")))
            policy_id = (outcome.result or {}).get("id") or "<id of policy %s>" % policy_name
            attached.append({"id": policy_id, "name": policy_name, "precedence": 1})
        for reference in access.get("policies") or []:
            found = policies.find(reference)
            if found is None:
                if not self.check_mode:
                    raise CloudflareError("Access policy '%s' for '%s' was not found; create it first or remove it from "
                                          "the service's access.policies." % (reference, hostname))
                found = {"id": "<id of policy %s>" % reference}
            attached.append({"id": found["id"], "name": reference, "precedence": len(attached) + 1})
        redirect = access.get("service_auth_401_redirect")
        if redirect is None and include and not access.get("policies"):
            redirect = True
        outcome = self._record(applications.ensure_present(
            hostname, name=access.get("application_name"), policies=attached,
            session_duration=access.get("session_duration"), service_auth_401_redirect=redirect))
        result = outcome.result or {}
        self.applications[hostname] = {"id": result.get("id"), "aud": result.get("aud")}

    @property
    def changed(self):
        return any(outcome.changed for outcome in self.outcomes)

    def creates(self, kind):
        """Tell whether the run creates an object of ``kind``."""
        return any(outcome.kind == kind and outcome.action == "create" for outcome in self.outcomes)
