# -*- coding: utf-8 -*-
# Copyright (c) homelab.edge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Reconcile the whole Cloudflare side of an edge (tunnels, ingress, DNS, Access, rules) in one run.

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
from ansible_collections.homelab.edge.plugins.module_utils.rulesets import (
    CUSTOM_RULES_PHASE,
    PHASE_ACTIONS,
    RATE_LIMIT_PHASE,
    SUPPORTED_PERIODS,
    SUPPORTED_TIMEOUTS,
    RulesetRuleManager,
    plan_limits,
    quote,
)
from ansible_collections.homelab.edge.plugins.module_utils.tunnels import (
    TUNNEL_CNAME_SUFFIX,
    IngressManager,
    TunnelManager,
)

DEFAULT_POLICY_NAME = "%s service auth"

# Refs of the rules made from a service's rate_limit and firewall keys: the hostname with its dots
# replaced by underscores, so that the next run finds the same rule.
RATE_LIMIT_REF = "homelab_edge_rl_%s"
FIREWALL_REF = "homelab_edge_fw_%s"
RATE_LIMIT_KEYS = ("requests", "period", "mitigation_timeout", "action")
FIREWALL_KEYS = ("methods", "paths")
HTTP_METHODS = ("GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "CONNECT", "TRACE")
# Matches every request while using only the path field, which rate-limiting rules on every plan may use.
# NOTE: whether the Free plan also accepts the starts_with() function in rate limiting rules is unconfirmed;
# the emulator does not check functions.
EVERY_PATH = 'starts_with(http.request.uri.path, "/")'


def service_rule(service):
    """Return the ingress rule (user form) for one service of the data model."""
    rule = {"hostname": service["hostname"]}
    for key in ("path", "service", "origin", "origin_request"):
        if service.get(key) not in (None, "", {}):
            rule[key] = service[key]
    return rule


def rule_ref(template, hostname):
    """Return the ref of a rule made for ``hostname``, for example homelab_edge_rl_chat_example_com."""
    return template % hostname.replace(".", "_")


def path_condition(paths):
    """Return an expression that matches the given paths, where a path ending in ``*`` is a prefix."""
    exact = [path for path in paths if not path.endswith("*")]
    prefixes = [path[:-1] for path in paths if path.endswith("*")]
    parts = []
    if exact:
        parts.append("http.request.uri.path in {%s}" % " ".join(quote(path) for path in exact))
    parts.extend("starts_with(http.request.uri.path, %s)" % quote(prefix) for prefix in prefixes)
    return " or ".join(parts)


def firewall_rule(service):
    """Return the custom rule that blocks requests to the service's hostname outside its methods and paths."""
    firewall = service["firewall"]
    outside = []
    if firewall.get("methods"):
        outside.append("not (http.request.method in {%s})" % " ".join(quote(method) for method in firewall["methods"]))
    if firewall.get("paths"):
        outside.append("not (%s)" % path_condition(firewall["paths"]))
    hostname = service["hostname"]
    return {
        "ref": rule_ref(FIREWALL_REF, hostname),
        "expression": "http.host eq %s and (%s)" % (quote(hostname), " or ".join(outside)),
        "action": "block",
        "description": "homelab.edge: block requests to %s outside the methods and paths its backend uses" % hostname,
        "enabled": True,
    }


def rate_limit_rule(service, plan):
    """Return the rate-limiting rule for a service, with an expression that the zone's plan allows.

    Plans from Pro up match the hostname. The Free plan does not allow the host field in
    rate-limiting expressions, so there the rule matches the service's firewall paths, or every
    path, and so counts the requests to every hostname of the zone that match.
    """
    limit = service["rate_limit"]
    hostname = service["hostname"]
    limits = plan_limits(plan)
    if limits is not None and (limits["fields"] is None or "http.host" in limits["fields"]):
        expression = "http.host eq %s" % quote(hostname)
    elif (service.get("firewall") or {}).get("paths"):
        expression = path_condition(service["firewall"]["paths"])
    else:
        expression = EVERY_PATH
    return {
        "ref": rule_ref(RATE_LIMIT_REF, hostname),
        "expression": expression,
        "action": limit.get("action") or "block",
        "ratelimit": {
            "requests_per_period": limit["requests"],
            "period": limit["period"],
            "mitigation_timeout": limit.get("mitigation_timeout"),
            "characteristics": ["ip.src", "cf.colo.id"],
        },
        "description": "homelab.edge: rate limit of %s" % hostname,
        "enabled": True,
    }


def rule_errors(service, where):
    """Return the input errors of a service's rate_limit and firewall keys, and normalize its methods."""
    errors = []
    limit = service.get("rate_limit")
    if limit:
        unknown = sorted(set(limit) - set(RATE_LIMIT_KEYS))
        if unknown:
            errors.append("Unknown key(s) %s in rate_limit of %s; use %s."
                          % (", ".join(unknown), where, ", ".join(RATE_LIMIT_KEYS)))
        requests = limit.get("requests")
        if not isinstance(requests, int) or isinstance(requests, bool) or requests < 1:
            errors.append("Invalid rate_limit.requests %r for %s: set the number of requests allowed per period, "
                          "1 or more." % (requests, where))
        if limit.get("period") not in SUPPORTED_PERIODS:
            errors.append("Invalid rate_limit.period %r for %s: set one of %s seconds (the Free plan allows only 10)."
                          % (limit.get("period"), where, ", ".join(str(value) for value in SUPPORTED_PERIODS)))
        if limit.get("mitigation_timeout") is not None and limit["mitigation_timeout"] not in SUPPORTED_TIMEOUTS:
            errors.append("Invalid rate_limit.mitigation_timeout %r for %s: set one of %s seconds." % (
                limit["mitigation_timeout"], where, ", ".join(str(value) for value in SUPPORTED_TIMEOUTS)))
        if limit.get("action") is not None and limit["action"] not in PHASE_ACTIONS[RATE_LIMIT_PHASE]:
            errors.append("Invalid rate_limit.action %r for %s: use one of %s." % (
                limit["action"], where, ", ".join(PHASE_ACTIONS[RATE_LIMIT_PHASE])))
    firewall = service.get("firewall")
    if firewall:
        unknown = sorted(set(firewall) - set(FIREWALL_KEYS))
        if unknown:
            errors.append("Unknown key(s) %s in firewall of %s; use methods and paths." % (", ".join(unknown), where))
        methods = [str(method).upper() for method in firewall.get("methods") or []]
        invalid = [method for method in methods if method not in HTTP_METHODS]
        if invalid:
            errors.append("Invalid firewall.methods %s for %s: use HTTP methods such as GET and POST."
                          % (", ".join(invalid), where))
        if methods:
            firewall["methods"] = methods
        for path in firewall.get("paths") or []:
            if not isinstance(path, str) or not path.startswith("/") or "*" in path[:-1]:
                errors.append("Invalid firewall path %r for %s: give a path that starts with /, such as /api/chat, "
                              "or a prefix that ends with *, such as /api/*." % (path, where))
        if not firewall.get("methods") and not firewall.get("paths"):
            errors.append("firewall of %s lists no methods and no paths; list the ones the backend uses, or remove "
                          "firewall." % where)
    return errors


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
        self.state = params.get("state") or "present"
        self.keep_tunnels = bool(params.get("keep_tunnels"))
        self.errors = []
        self.ingress = {}
        self.zones = set()
        self.rule_services = {}
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
        seen_refs = {}
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
                self._validate_rules(service, where, seen_refs)
            if tunnel.get("config_src", "cloudflare") == "local":
                continue
            catch_all = tunnel.get("catch_all") or "http_status:404"
            try:
                desired = validate_ingress(rules + [{"service": catch_all}])
            except IngressError as exc:
                self.errors.append("Invalid ingress for tunnel '%s': %s" % (name, exc))
                continue
            self.ingress[name] = desired

    def _validate_rules(self, service, where, seen_refs):
        """Check the service's rate_limit and firewall keys and group the service under its zone."""
        if not service.get("rate_limit") and not service.get("firewall"):
            return
        self.errors.extend(rule_errors(service, where))
        for key, template in (("rate_limit", RATE_LIMIT_REF), ("firewall", FIREWALL_REF)):
            if not service.get(key):
                continue
            ref = rule_ref(template, service["hostname"])
            if ref in seen_refs:
                self.errors.append("%s and %s both set %s, which would share the rule ref %s; set %s on one service "
                                   "of the hostname only." % (seen_refs[ref], where, key, ref, key))
            seen_refs[ref] = where
        self.rule_services.setdefault(service["zone"], []).append(service)

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
        self.rules = {}
        self.account_id = None

    def run(self):
        self.plan.check()
        account_id = self.api.account_id(self.plan.account)
        self.account_id = account_id
        zones = dict((name, self.api.zone(name, account_id)) for name in sorted(self.plan.zones))
        token_manager = ServiceTokenManager(self.api, account_id, self.check_mode)
        if self.plan.state == "absent":
            self._remove(account_id, zones, token_manager)
            return self
        for token in self.plan.service_tokens:
            outcome = token_manager.ensure_present(token["name"], token.get("duration"))
            self._record(outcome)
            self.tokens[token["name"]] = outcome.result
            if outcome.secrets:
                self.secrets[token["name"]] = dict(outcome.secrets, client_id=outcome.result.get("client_id"))
            self.warnings.extend(outcome.notes)
        if self.plan.tunnels:
            self._tunnels(account_id, zones, token_manager)
        for zone_name in sorted(self.plan.rule_services):
            self._zone_rules(zones[zone_name], self.plan.rule_services[zone_name])
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
            self.warnings.extend(outcome.notes)
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

    def _zone_rules(self, zone, services):
        """Ensure the custom and rate-limiting rules of one zone's services, reading each entrypoint once."""
        for phase, key in ((CUSTOM_RULES_PHASE, "firewall"), (RATE_LIMIT_PHASE, "rate_limit")):
            selected = [service for service in services if service.get(key)]
            if not selected:
                continue
            manager = RulesetRuleManager(self.api, zone, phase, self.check_mode)
            for service in selected:
                if key == "firewall":
                    rule = firewall_rule(service)
                else:
                    rule = rate_limit_rule(service, zone["plan"])
                outcome = self._record(manager.ensure_present(**rule))
                self.warnings.extend(outcome.notes)
                self.rules.setdefault(service["hostname"], {})[key] = rule["ref"]

    def _remove(self, account_id, zones, token_manager):
        """Delete what the description names, in the order that keeps every step valid.

        Access applications go before the policies they use, and policies before the tokens they
        include. Rules and DNS records follow. The tunnels go last, unless ``keep_tunnels`` leaves
        them for a later run once their connectors are stopped. A DNS record is deleted
        only when it is a CNAME to one of the described tunnels, so records that point elsewhere
        are never touched; a policy only when this collection named it (the default name or
        ``access.policy_name``), not the existing policies a service merely references.
        """
        tunnels = TunnelManager(self.api, account_id, self.check_mode)
        policies = PolicyManager(self.api, account_id, self.check_mode)
        applications = ApplicationManager(self.api, account_id, self.check_mode)
        services = [(spec, service) for spec in self.plan.tunnels for service in spec.get("services") or []]

        for _spec, service in services:
            access = service.get("access")
            if not access:
                continue
            self._record(applications.ensure_absent(service["hostname"]))
            if access.get("service_tokens") or access.get("any_valid_service_token"):
                self._record(policies.ensure_absent(access.get("policy_name") or DEFAULT_POLICY_NAME % service["hostname"]))
        for token in self.plan.service_tokens:
            self._record(token_manager.ensure_absent(token["name"]))
        for zone_name in sorted(self.plan.rule_services):
            zone = zones[zone_name]
            for phase, key in ((CUSTOM_RULES_PHASE, "firewall"), (RATE_LIMIT_PHASE, "rate_limit")):
                selected = [service for service in self.plan.rule_services[zone_name] if service.get(key)]
                if not selected:
                    continue
                manager = RulesetRuleManager(self.api, zone, phase, self.check_mode)
                for service in selected:
                    rule = firewall_rule(service) if key == "firewall" else rate_limit_rule(service, zone["plan"])
                    self._record(manager.ensure_absent(rule["ref"]))

        dns = dict((name, DnsManager(self.api, zone, self.check_mode)) for name, zone in zones.items())
        for spec in self.plan.tunnels:
            # Soft-deleted tunnels count too, so that records left by an earlier, interrupted
            # teardown are still recognised as this tunnel's.
            targets = [tunnel_id + TUNNEL_CNAME_SUFFIX for tunnel_id in tunnels.ids_named(spec["name"])]
            for service in spec.get("services") or []:
                manager = dns[service["zone"]]
                existing = manager.records_named(service["hostname"])
                owned = [item for item in existing if item.get("type") == "CNAME"
                         and (item.get("content") or "").lower() in targets]
                outcome = manager.ensure_absent(service["hostname"], "CNAME", content=owned[0]["content"],
                                                existing=owned) if owned else None
                if outcome is not None:
                    self._record(outcome)
            if not self.plan.keep_tunnels:
                self._record(tunnels.ensure_absent(spec["name"]))

    @property
    def changed(self):
        return any(outcome.changed for outcome in self.outcomes)

    def creates(self, kind):
        """Tell whether the run creates an object of ``kind``."""
        return any(outcome.kind == kind and outcome.action == "create" for outcome in self.outcomes)
