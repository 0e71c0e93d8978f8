# -*- coding: utf-8 -*-
# Copyright (c) homelab.edge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Read, compare and write Cloudflare Access service tokens, reusable policies and applications."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime
import re

from ansible_collections.homelab.edge.plugins.module_utils.cloudflare_api import CloudflareError
from ansible_collections.homelab.edge.plugins.module_utils.reconcile import Outcome, canonical

GO_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")
GO_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
POLICY_DECISIONS = ("allow", "deny", "non_identity", "bypass")
SERVICE_TOKEN_RULES = ("service_token", "any_valid_service_token")


def duration_seconds(value):
    """Return the length of a Go duration string (``8760h``, ``1h30m``) in seconds.

    ``forever`` returns None. Raises ValueError for anything else.
    """
    text = str(value).strip()
    if text == "forever":
        return None
    if not text:
        raise ValueError("empty duration")
    position = 0
    total = 0.0
    for match in GO_DURATION.finditer(text):
        if match.start() != position:
            break
        total += float(match.group(1)) * GO_UNITS[match.group(2)]
        position = match.end()
    if position != len(text):
        raise ValueError("'%s' is not a duration such as 8760h, 30m or 1h30m" % value)
    return total


def same_duration(left, right):
    try:
        return duration_seconds(left) == duration_seconds(right)
    except ValueError:
        return str(left) == str(right)


def utc_now():
    return datetime.datetime.now(datetime.timezone.utc)


def format_time(moment):
    """Return an RFC 3339 UTC time as the Access API writes it."""
    return moment.astimezone(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text):
    """Parse an RFC 3339 time such as 2027-01-01T00:00:00Z or with a fraction and offset."""
    value = text.strip()
    if value.endswith("Z"):
        value = value[:-1] + "+00:00"
    match = re.match(r"^(.*T\d{2}:\d{2}:\d{2})(\.\d+)?([+-]\d{2}:\d{2})$", value)
    if match:
        fraction = (match.group(2) or "")[:7].ljust(7, "0") if match.group(2) else ""
        value = match.group(1) + fraction + match.group(3)
    return datetime.datetime.fromisoformat(value)


def days_left(token, now=None):
    """Return the whole days until ``expires_at``, negative once expired, or None for no expiry."""
    expires_at = (token or {}).get("expires_at")
    if not expires_at:
        return None
    delta = parse_time(expires_at) - (now or utc_now())
    return int(delta.total_seconds() // 86400)


def token_view(token):
    if token is None:
        return None
    return {
        "id": token.get("id"),
        "name": token.get("name"),
        "client_id": token.get("client_id"),
        "duration": token.get("duration"),
        "expires_at": token.get("expires_at"),
    }


ACCESS_DOMAIN_CONFLICT = 12132


def oldest(items):
    """Return the item created first; ties go to the lowest id, so that every run picks the same one."""
    return sorted(items, key=lambda item: (item.get("created_at") or "", item.get("id") or ""))[0]


class ServiceTokenManager:
    """Access service tokens of one account, identified by name."""

    def __init__(self, api, account_id, check_mode=False):
        self.api = api
        self.account_id = account_id
        self.check_mode = check_mode
        self.base = "accounts/%s/access/service_tokens" % account_id

    def find(self, name):
        items = self.api.list_all(self.base, "look up service token '%s'" % name, {"name": name})
        found = [item for item in items if item.get("name") == name]
        if len(found) > 1:
            raise CloudflareError(
                "%d service tokens are named '%s' (ids %s). Names identify tokens here, so this run will not guess "
                "which one is meant: delete or rename the extra tokens in Zero Trust > Access > Service Auth."
                % (len(found), name, ", ".join(item.get("id", "?") for item in found)))
        return found[0] if found else None

    def ensure_present(self, name, duration=None, current=None, lookup=True):
        if lookup and current is None:
            current = self.find(name)
        if duration is not None:
            try:
                duration_seconds(duration)
            except ValueError as exc:
                raise CloudflareError("Invalid duration for service token '%s': %s." % (name, exc))
        if current is None:
            after = {"id": None, "name": name, "client_id": None, "duration": duration or "8760h", "expires_at": None}
            if self.check_mode:
                return Outcome("service_token", name, "create", after=after, result=after)
            body = {"name": name}
            if duration is not None:
                body["duration"] = duration
            try:
                created = self.api.result("POST", self.base, "create service token '%s'" % name, body=body,
                                          retry_writes=False)
            except CloudflareError as exc:
                if exc.status is not None and exc.status < 500:
                    raise
                created = self.find(name)
                if created is None:
                    raise
                return Outcome("service_token", name, "create", after=token_view(created), result=token_view(created),
                               notes=["The response to creating service token '%s' was lost, so its client secret is "
                                      "unknown; rotate the token to get a new secret." % name])
            kept = self._settle_race(name, created)
            if kept is not created:
                return Outcome("service_token", name, "create", after=token_view(kept), result=token_view(kept),
                               notes=["Another run created service token '%s' at the same time. Cloudflare allows "
                                      "duplicate token names, so this run deleted its own copy (id %s) and uses the "
                                      "one created first (id %s), whose client secret only the other run received. "
                                      "Rotate the token to get a secret here."
                                      % (name, created.get("id"), kept.get("id"))])
            secret = created.get("client_secret")
            return Outcome("service_token", name, "create", after=token_view(created), result=token_view(created),
                           secrets={"client_secret": secret} if secret else {})
        before = token_view(current)
        if duration is None or same_duration(current.get("duration"), duration):
            return Outcome("service_token", name, "none", before=before, after=before, result=before)
        wanted = dict(before, duration=duration)
        if self.check_mode:
            return Outcome("service_token", name, "update", before=before, after=wanted, result=wanted)
        updated = self.api.result("PUT", "%s/%s" % (self.base, current["id"]),
                                  "update the duration of service token '%s'" % name,
                                  body={"name": name, "duration": duration})
        return Outcome("service_token", name, "update", before=before, after=token_view(updated),
                       result=token_view(updated))

    def _settle_race(self, name, created):
        """Return the token to keep after creating ``created``, deleting it if another run won the race.

        Two runs that both found no token create one each. Each run lists the name again after its
        create, and every run that sees more than one keeps the oldest and deletes its own copy.
        The run that lists first may see only its own token, but then its token is the older one.
        """
        items = [item for item in self.api.list_all(self.base, "look up service token '%s'" % name, {"name": name})
                 if item.get("name") == name]
        if len(items) < 2:
            return created
        kept = oldest(items)
        if kept.get("id") == created.get("id"):
            return created
        self.ensure_absent(name, current=created)
        return kept

    def rotate(self, current, grace_seconds):
        """Give the token a new client secret; the previous one keeps working for ``grace_seconds``.

        The new secret is in the outcome's ``secrets``. A grace of 0 revokes the previous secret at once.
        """
        name = current["name"]
        before = token_view(current)
        body = {}
        previous_expires_at = None
        if grace_seconds:
            previous_expires_at = format_time(utc_now() + datetime.timedelta(seconds=grace_seconds))
            body["previous_client_secret_expires_at"] = previous_expires_at
        after = dict(before, previous_client_secret_expires_at=previous_expires_at or "now")
        if self.check_mode:
            return Outcome("service_token", name, "rotate", before=before, after=after, result=after)
        # Never sent twice: a second rotation would end the grace period of the first.
        rotated = self.api.result("POST", "%s/%s/rotate" % (self.base, current["id"]),
                                  "rotate the client secret of service token '%s'" % name, body=body,
                                  retry_writes=False)
        result = dict(token_view(rotated), previous_client_secret_expires_at=previous_expires_at)
        secret = rotated.get("client_secret")
        return Outcome("service_token", name, "rotate", before=before, after=result, result=result,
                       secrets={"client_secret": secret} if secret else {})

    def refresh(self, current):
        """Extend the token's expiry by its duration; the client secret stays the same."""
        name = current["name"]
        before = token_view(current)
        if self.check_mode:
            return Outcome("service_token", name, "refresh", before=before, after=dict(before, expires_at="(extended)"),
                           result=before)
        refreshed = self.api.result("POST", "%s/%s/refresh" % (self.base, current["id"]),
                                    "refresh the expiry of service token '%s'" % name)
        return Outcome("service_token", name, "refresh", before=before, after=token_view(refreshed),
                       result=token_view(refreshed))

    def expire_previous_secret(self, current):
        """End a rotation's grace period now, so that only the current client secret works."""
        name = current["name"]
        before = token_view(current)
        now = format_time(utc_now())
        after = dict(before, previous_client_secret_expires_at=now)
        if not self.check_mode:
            self.api.result("PUT", "%s/%s" % (self.base, current["id"]),
                            "end the grace period of service token '%s'" % name,
                            body={"name": name, "previous_client_secret_expires_at": now})
        return Outcome("service_token", name, "update", before=before, after=after, result=after)

    def ensure_absent(self, name, current=None):
        current = current or self.find(name)
        if current is None:
            return Outcome("service_token", name, "none")
        if not self.check_mode:
            try:
                self.api.request("DELETE", "%s/%s" % (self.base, current["id"]), "delete service token '%s'" % name)
            except CloudflareError as exc:
                if exc.status != 404:
                    raise
        return Outcome("service_token", name, "delete", before=token_view(current), result=token_view(current))


def policy_view(policy):
    if policy is None:
        return None
    return {
        "id": policy.get("id"),
        "name": policy.get("name"),
        "decision": policy.get("decision"),
        "include": policy.get("include") or [],
        "exclude": policy.get("exclude") or [],
        "require": policy.get("require") or [],
        "session_duration": policy.get("session_duration"),
    }


def _same_session(before, wanted):
    """Compare session durations; one the user did not set always matches. Access defaults to 24h."""
    if not wanted.get("session_duration"):
        return True
    return same_duration(before.get("session_duration") or "24h", wanted["session_duration"])


def _rule_set(rules):
    """Return Access rules in an order-insensitive comparable form."""
    return sorted(canonical(rule) for rule in rules or [])


def rules_use_service_tokens(rules):
    return any(isinstance(rule, dict) and any(key in rule for key in SERVICE_TOKEN_RULES) for rule in rules or [])


def check_policy_decision(name, decision, include):
    """Reject a policy that would send service tokens to a login page."""
    if decision not in POLICY_DECISIONS:
        raise CloudflareError("Invalid decision '%s' for Access policy '%s'; use one of %s."
                              % (decision, name, ", ".join(POLICY_DECISIONS)))
    if decision != "non_identity" and rules_use_service_tokens(include):
        raise CloudflareError(
            "Access policy '%s' includes a service token with decision '%s'. Access evaluates service tokens only "
            "under the Service Auth decision, so requests with the token would get a login redirect instead. Set "
            "decision to non_identity (Service Auth)." % (name, decision))


class PolicyManager:
    """Reusable Access policies of one account, identified by name."""

    def __init__(self, api, account_id, check_mode=False):
        self.api = api
        self.account_id = account_id
        self.check_mode = check_mode
        self.base = "accounts/%s/access/policies" % account_id
        self._all = None

    def all(self):
        if self._all is None:
            self._all = self.api.list_all(self.base, "list Access policies")
        return self._all

    def find(self, name):
        found = [item for item in self.all() if item.get("name") == name]
        if len(found) > 1:
            raise CloudflareError(
                "%d reusable Access policies are named '%s' (ids %s); rename or delete the extra ones."
                % (len(found), name, ", ".join(item.get("id", "?") for item in found)))
        return found[0] if found else None

    def ensure_present(self, name, decision, include, exclude=None, require=None, session_duration=None):
        check_policy_decision(name, decision, include)
        current = self.find(name)
        desired = {
            "name": name,
            "decision": decision,
            "include": include,
            "exclude": exclude or [],
            "require": require or [],
        }
        if session_duration is not None:
            desired["session_duration"] = session_duration
        if current is None:
            after = dict(desired, id=None)
            if self.check_mode:
                return Outcome("access_policy", name, "create", after=after, result=after)
            try:
                created = self.api.result("POST", self.base, "create Access policy '%s'" % name, body=desired,
                                          retry_writes=False)
            except CloudflareError as exc:
                if exc.status is not None and exc.status < 500:
                    raise
                self._all = None
                created = self.find(name)
                if created is None:
                    raise
            created, note = self._settle_race(name, created)
            self._remember(created)
            return Outcome("access_policy", name, "create", after=policy_view(created), result=created,
                           notes=[note] if note else [])
        before = policy_view(current)
        wanted = dict(before)
        wanted.update(desired)
        if session_duration is None:
            wanted["session_duration"] = before["session_duration"]
        if self._same(before, wanted):
            return Outcome("access_policy", name, "none", before=before, after=before, result=current)
        if self.check_mode:
            return Outcome("access_policy", name, "update", before=before, after=wanted, result=wanted)
        body = dict((key, value) for key, value in wanted.items() if key != "id" and value is not None)
        updated = self.api.result("PUT", "%s/%s" % (self.base, current["id"]), "update Access policy '%s'" % name,
                                  body=body)
        self._remember(updated)
        return Outcome("access_policy", name, "update", before=before, after=policy_view(updated), result=updated)

    def _settle_race(self, name, created):
        """Keep the oldest policy named ``name`` when another run created one at the same time.

        Cloudflare allows duplicate policy names. This run deletes its own copy when an older one
        exists; the run that created the older one keeps it (see ServiceTokenManager._settle_race).
        """
        self._all = None
        items = [item for item in self.all() if item.get("name") == name]
        if len(items) < 2:
            return created, None
        kept = oldest(items)
        if kept.get("id") == created.get("id"):
            return created, None
        try:
            self.api.request("DELETE", "%s/%s" % (self.base, created["id"]), "delete Access policy '%s'" % name)
        except CloudflareError as exc:
            if exc.status != 404:
                raise
        self._all = [item for item in self._all if item.get("id") != created.get("id")]
        return kept, ("Another run created Access policy '%s' at the same time; this run deleted its own copy "
                      "(id %s) and uses the one created first (id %s)." % (name, created.get("id"), kept.get("id")))

    @staticmethod
    def _same(before, wanted):
        if before["name"] != wanted["name"] or before["decision"] != wanted["decision"]:
            return False
        for key in ("include", "exclude", "require"):
            if _rule_set(before[key]) != _rule_set(wanted[key]):
                return False
        return _same_session(before, wanted)

    def _remember(self, policy):
        if self._all is not None and policy:
            self._all = [item for item in self._all if item.get("id") != policy.get("id")] + [policy]

    def ensure_absent(self, name):
        current = self.find(name)
        if current is None:
            return Outcome("access_policy", name, "none")
        if not self.check_mode:
            try:
                self.api.request("DELETE", "%s/%s" % (self.base, current["id"]), "delete Access policy '%s'" % name)
            except CloudflareError as exc:
                if exc.status != 404:
                    raise
            self._all = [item for item in self._all or [] if item.get("id") != current.get("id")]
        return Outcome("access_policy", name, "delete", before=policy_view(current), result=policy_view(current))


READ_ONLY_APP_FIELDS = ("id", "aud", "created_at", "updated_at", "uid")


def application_view(app):
    if app is None:
        return None
    return {
        "id": app.get("id"),
        "aud": app.get("aud"),
        "name": app.get("name"),
        "domain": app.get("domain"),
        "type": app.get("type"),
        "session_duration": app.get("session_duration"),
        "service_auth_401_redirect": bool(app.get("service_auth_401_redirect")),
        "app_launcher_visible": app.get("app_launcher_visible"),
        "policies": [{"id": item.get("id"), "name": item.get("name"), "precedence": item.get("precedence")}
                     for item in sorted(app.get("policies") or [], key=lambda p: p.get("precedence") or 0)],
    }


class ApplicationManager:
    """Self-hosted Access applications of one account, identified by domain."""

    def __init__(self, api, account_id, check_mode=False):
        self.api = api
        self.account_id = account_id
        self.check_mode = check_mode
        self.base = "accounts/%s/access/apps" % account_id

    def find(self, domain):
        items = self.api.list_all(self.base, "look up the Access application for '%s'" % domain,
                                  {"domain": domain, "exact": "true"})
        found = [item for item in items if (item.get("domain") or "").lower() == domain.lower()]
        if len(found) > 1:
            raise CloudflareError(
                "%d Access applications protect '%s' (%s); remove the extra ones so that one policy set applies."
                % (len(found), domain, ", ".join("%s (%s)" % (item.get("name"), item.get("id")) for item in found)))
        return found[0] if found else None

    def ensure_present(self, domain, name=None, policies=None, session_duration=None,
                       service_auth_401_redirect=None, app_launcher_visible=None):
        """Make the application for ``domain`` exist with ``policies`` (dicts with id, name, precedence)."""
        current = self.find(domain)
        name = name or domain
        links = [{"id": item["id"], "precedence": item["precedence"]} for item in policies or []]
        desired = {
            "name": name,
            "domain": domain,
            "type": "self_hosted",
            "policies": [{"id": item["id"], "name": item.get("name"), "precedence": item["precedence"]}
                         for item in policies or []],
        }
        optional = {
            "session_duration": session_duration,
            "service_auth_401_redirect": service_auth_401_redirect,
            "app_launcher_visible": app_launcher_visible,
        }
        if current is None:
            after = dict(desired, id=None, aud=None)
            after.update((key, value) for key, value in optional.items() if value is not None)
            if self.check_mode:
                return Outcome("access_application", domain, "create", after=after, result=after)
            body = {"name": name, "domain": domain, "type": "self_hosted", "policies": links}
            body.update((key, value) for key, value in optional.items() if value is not None)
            try:
                created = self.api.result("POST", self.base, "create the Access application for '%s'" % domain,
                                          body=body, retry_writes=False)
            except CloudflareError as exc:
                # Error 12132 means that another run created the application after find().
                if exc.status is not None and exc.status < 500 and not exc.has_code(ACCESS_DOMAIN_CONFLICT):
                    raise
                created = self.find(domain)
                if created is None:
                    raise
            return Outcome("access_application", domain, "create", after=application_view(created), result=created)
        before = application_view(current)
        wanted = dict(before)
        wanted.update(desired)
        for key, value in optional.items():
            if value is not None:
                wanted[key] = value
        if self._same(before, wanted):
            return Outcome("access_application", domain, "none", before=before, after=before, result=current)
        if self.check_mode:
            return Outcome("access_application", domain, "update", before=before, after=wanted, result=wanted)
        # PUT replaces the whole application: start from what Cloudflare returned.
        body = dict((key, value) for key, value in current.items() if key not in READ_ONLY_APP_FIELDS)
        body.update({"name": name, "domain": domain, "type": "self_hosted", "policies": links})
        body.update((key, value) for key, value in optional.items() if value is not None)
        updated = self.api.result("PUT", "%s/%s" % (self.base, current["id"]),
                                  "update the Access application for '%s'" % domain, body=body)
        return Outcome("access_application", domain, "update", before=before, after=application_view(updated),
                       result=updated)

    @staticmethod
    def _same(before, wanted):
        def links(view):
            return [(item.get("id"), item.get("precedence")) for item in view.get("policies") or []]

        if links(before) != links(wanted):
            return False
        for key in ("name", "domain", "service_auth_401_redirect", "app_launcher_visible"):
            if before.get(key) != wanted.get(key):
                return False
        return _same_session(before, wanted)

    def ensure_absent(self, domain):
        current = self.find(domain)
        if current is None:
            return Outcome("access_application", domain, "none")
        if not self.check_mode:
            try:
                self.api.request("DELETE", "%s/%s" % (self.base, current["id"]),
                                 "delete the Access application for '%s'" % domain)
            except CloudflareError as exc:
                if exc.status != 404:
                    raise
        return Outcome("access_application", domain, "delete", before=application_view(current),
                       result=application_view(current))
