# -*- coding: utf-8 -*-
# Copyright (c) homelab.edge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Read, compare and write one rule, identified by its ``ref``, in a zone's phase entrypoint ruleset.

A zone has at most one entrypoint ruleset per phase, and a PUT to the entrypoint replaces its
whole rule list (creating the entrypoint when it does not exist yet). The manager therefore
reads the entrypoint once, sends back every rule it does not own exactly as it found it and in
the same order, and adds or replaces only its own rule.

The rate-limiting limits of each Cloudflare plan are kept in ``RATE_LIMIT_PLANS`` and are
checked before anything is sent, because the API's own rejections ("not entitled to use the
period 60, can only use a period among [10]") do not say what to change.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import copy
import re

from ansible_collections.homelab.edge.plugins.module_utils.cloudflare_api import CloudflareError
from ansible_collections.homelab.edge.plugins.module_utils.reconcile import Outcome, canonical

RATE_LIMIT_PHASE = "http_ratelimit"
CUSTOM_RULES_PHASE = "http_request_firewall_custom"
PHASE_ACTIONS = {
    RATE_LIMIT_PHASE: ("block", "challenge", "js_challenge", "managed_challenge", "log"),
    CUSTOM_RULES_PHASE: ("block", "challenge", "js_challenge", "managed_challenge", "log", "skip"),
}
CHALLENGE_ACTIONS = ("challenge", "js_challenge", "managed_challenge")
ENTRYPOINT_NOT_FOUND = 10003

# Rule fields the API sets itself and rejects or ignores in a PUT body.
READ_ONLY_RULE_FIELDS = ("version", "last_updated", "categories")
# Rule fields a caller may set; only the ones given are compared.
MANAGED_RULE_FIELDS = ("expression", "action", "action_parameters", "ratelimit", "description", "enabled")

MANDATORY_CHARACTERISTIC = "cf.colo.id"
# Values the API accepts for ratelimit.period and ratelimit.mitigation_timeout, in seconds, on any plan.
SUPPORTED_PERIODS = (10, 15, 20, 30, 40, 45, 60, 90, 120, 180, 240, 300, 480, 600, 900, 1200, 1800, 2400, 3600,
                     65535, 86400)
SUPPORTED_TIMEOUTS = (0, 10, 60, 120, 300, 600, 3600, 86400)

# Fields of the rules language, grouped as Cloudflare's plan table for rate-limiting expressions groups them.
PATH_FIELDS = ("http.request.uri.path", "http.request.uri.path.extension")
VERIFIED_BOT_FIELDS = ("cf.client.bot", "cf.bot_management.verified_bot")
PRO_FIELDS = PATH_FIELDS + VERIFIED_BOT_FIELDS + (
    "http.host", "http.request.uri", "http.request.full_uri", "http.request.uri.query")
BUSINESS_FIELDS = PRO_FIELDS + ("http.request.method", "ip.src", "http.user_agent")

# Rate-limiting limits per plan, from Cloudflare's "availability by plan" table for rate limiting rules.
# Each entry gives the max number of rules in the zone, the periods and mitigation timeouts in seconds,
# the counting characteristics, whether a custom counting expression is allowed, and the fields a rule
# expression may use. None means no limit is checked, because Enterprise limits depend on the contract.
RATE_LIMIT_PLANS = {
    "free": {
        "title": "Free",
        "max_rules": 1,
        "periods": (10,),
        "timeouts": (10,),
        "characteristics": ("ip.src", "cf.colo.id"),
        "counting_expression": False,
        "fields": PATH_FIELDS + VERIFIED_BOT_FIELDS,
    },
    "pro": {
        "title": "Pro",
        "max_rules": 2,
        "periods": tuple(period for period in SUPPORTED_PERIODS if period <= 60),
        "timeouts": tuple(timeout for timeout in SUPPORTED_TIMEOUTS if timeout <= 3600),
        "characteristics": ("ip.src", "cf.colo.id"),
        "counting_expression": False,
        "fields": PRO_FIELDS,
    },
    "business": {
        "title": "Business",
        "max_rules": 5,
        "periods": tuple(period for period in SUPPORTED_PERIODS if period <= 600),
        "timeouts": SUPPORTED_TIMEOUTS,
        "characteristics": ("ip.src", "cf.unique_visitor_id", "cf.colo.id"),
        "counting_expression": True,
        "fields": BUSINESS_FIELDS,
    },
    "enterprise": {
        "title": "Enterprise",
        "max_rules": None,
        "periods": SUPPORTED_PERIODS,
        "timeouts": SUPPORTED_TIMEOUTS,
        "characteristics": None,
        "counting_expression": True,
        "fields": None,
    },
}

# A quoted string ("..." with backslash escapes) or a raw string (r"..." or r#"..."#) of the rules language.
STRING_LITERAL = re.compile(r'r(#*)".*?"\1|"(?:[^"\\]|\\.)*"', re.DOTALL)
# A dotted field name such as http.request.uri.path; IP addresses do not match because they start with a digit.
FIELD_NAME = re.compile(r"\b[a-z][a-z0-9_]*(?:\.[a-z0-9_]+)+\b")


def expression_fields(expression):
    """Return the sorted field names used in a rules-language expression, ignoring string literals."""
    text = STRING_LITERAL.sub(" ", expression or "")
    return sorted(set(FIELD_NAME.findall(text)))


def quote(value):
    """Return ``value`` as a quoted string of the rules language."""
    return '"%s"' % str(value).replace("\\", "\\\\").replace('"', '\\"')


def strip_read_only(rule):
    """Return a copy of ``rule`` without the fields that only the API sets."""
    return dict((key, copy.deepcopy(value)) for key, value in rule.items() if key not in READ_ONLY_RULE_FIELDS)


def rule_view(rule):
    """Return the fields of ``rule`` shown in diffs and results: ref, id and the managed fields."""
    if rule is None:
        return None
    view = {"ref": rule.get("ref"), "id": rule.get("id")}
    for key in MANAGED_RULE_FIELDS:
        if key in rule:
            view[key] = copy.deepcopy(rule[key])
    return view


def differs(current, desired):
    """Tell whether any value given in ``desired`` differs from ``current``.

    Dicts are compared key by key, so keys the caller left out (or set to None) never cause a
    change. The ``characteristics`` list is compared as a set, because its order has no meaning.
    """
    if isinstance(desired, dict):
        if not isinstance(current, dict):
            return True
        for key, value in desired.items():
            if value is None:
                continue
            if key == "characteristics" and isinstance(value, list) and isinstance(current.get(key), list):
                if sorted(value) != sorted(current[key]):
                    return True
            elif differs(current.get(key), value):
                return True
        return False
    if isinstance(desired, list):
        return canonical(desired) != canonical(current)
    return current != desired


def merge(current, desired):
    """Return ``current`` updated with the non-None values of ``desired``, merging nested dicts."""
    merged = copy.deepcopy(current) if isinstance(current, dict) else {}
    for key, value in desired.items():
        if value is None:
            continue
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def plan_limits(plan):
    """Return the RATE_LIMIT_PLANS entry of ``plan``, or None for a plan this collection does not know."""
    return RATE_LIMIT_PLANS.get((plan or "").lower())


def rate_limit_violations(rule, plan, zone_name, other_rules=0):
    """Return one message per way ``rule`` breaks the rate-limiting limits of the zone's plan.

    ``other_rules`` is the number of rate-limiting rules in the zone that are not this one.
    Each message states the effective limit and what to set instead.
    """
    limits = plan_limits(plan)
    where = "zone %s" % zone_name
    if limits is not None:
        where = "the %s plan of zone %s" % (limits["title"], zone_name)
    ratelimit = rule.get("ratelimit") or {}
    action = rule.get("action")
    challenge = action in CHALLENGE_ACTIONS and plan != "enterprise"
    problems = []

    if limits is not None and limits["max_rules"] is not None and other_rules + 1 > limits["max_rules"]:
        problems.append(
            "%s allows %d rate-limiting rule(s), and the zone's %s entrypoint contains %d other one(s), counting "
            "those this run adds. Delete a rule there, or remove this rate limit"
            % (_capital(where), limits["max_rules"], RATE_LIMIT_PHASE, other_rules))

    characteristics = ratelimit.get("characteristics") or []
    allowed = limits["characteristics"] if limits else None
    for characteristic in characteristics:
        if allowed is not None and characteristic not in allowed:
            problems.append("characteristic %s is not available on %s, which allows only %s; remove it"
                            % (characteristic, where, " and ".join(allowed)))

    period = ratelimit.get("period")
    if period not in SUPPORTED_PERIODS:
        problems.append("period %s is not a period Cloudflare supports; set period to one of %s seconds"
                        % (period, _choices(SUPPORTED_PERIODS)))
    elif limits is not None and period not in limits["periods"]:
        problems.append("period %s is not available on %s, which allows only %s; set period: %d"
                        % (period, where, _seconds("a period", limits["periods"]), max(limits["periods"])))

    requests = ratelimit.get("requests_per_period")
    scored = "score_per_period" in ratelimit and requests is None
    if not scored and (not isinstance(requests, int) or isinstance(requests, bool) or requests < 1):
        problems.append("requests_per_period %s is invalid; set a whole number of requests of 1 or more" % (requests,))

    timeout = ratelimit.get("mitigation_timeout")
    if challenge:
        if timeout != 0:
            problems.append("mitigation_timeout %s is not available with the action %s on %s, which requires 0 "
                            "with challenge actions; set mitigation_timeout: 0" % (timeout, action, where))
    elif timeout not in SUPPORTED_TIMEOUTS:
        problems.append("mitigation_timeout %s is not a timeout Cloudflare supports; set it to one of %s seconds"
                        % (timeout, _choices(SUPPORTED_TIMEOUTS)))
    elif limits is not None and timeout not in limits["timeouts"] and not (timeout == 0 and plan != "free"):
        problems.append("mitigation_timeout %s is not available on %s, which allows only %s; set "
                        "mitigation_timeout: %d" % (timeout, where, _seconds("a mitigation timeout", limits["timeouts"]),
                                                    max(limits["timeouts"])))

    if ratelimit.get("counting_expression") and limits is not None and not limits["counting_expression"]:
        problems.append("a custom counting_expression is not available on %s; remove counting_expression" % where)

    if limits is not None and limits["fields"] is not None:
        extra = [field for field in expression_fields(rule.get("expression")) if field not in limits["fields"]]
        if extra:
            problems.append("the expression uses %s, which rate-limiting rules on %s may not use (allowed: %s); "
                            "match on the allowed fields only" % (", ".join(extra), where, ", ".join(limits["fields"])))
    return problems


def _capital(text):
    return text[:1].upper() + text[1:]


def _choices(values):
    return ", ".join(str(value) for value in values)


def _seconds(what, values):
    if len(values) == 1:
        return "%s of %d seconds" % (what, values[0])
    return "%s of %s seconds" % (what, _choices(values))


class RulesetRuleManager:
    """Rules of one zone phase entrypoint, each identified by its ``ref``.

    The entrypoint is read once per manager. Every call works on that copy and, unless in check
    mode, writes it back at once, so one manager can handle several rules of the same phase with
    one read. In check mode the copy takes the predicted rules, so a later call finds them too.
    """

    def __init__(self, api, zone, phase, check_mode=False):
        if phase not in PHASE_ACTIONS:
            raise CloudflareError("Phase '%s' is not supported; use %s." % (phase, " or ".join(sorted(PHASE_ACTIONS))))
        self.api = api
        self.zone = zone
        self.phase = phase
        self.check_mode = check_mode
        self.path = "zones/%s/rulesets/phases/%s/entrypoint" % (zone["id"], phase)
        self._entrypoint = None
        self._read = False

    @property
    def plan(self):
        return (self.zone.get("plan") or "unknown").lower()

    def read(self):
        """Return the entrypoint ruleset, or None while the zone has none for this phase."""
        if not self._read:
            action = "read the %s entrypoint ruleset of zone %s" % (self.phase, self.zone["name"])
            try:
                self._entrypoint = self.api.result("GET", self.path, action)
            except CloudflareError as exc:
                if exc.status != 404 or not exc.has_code(ENTRYPOINT_NOT_FOUND):
                    raise
                self._entrypoint = None
            self._read = True
        return self._entrypoint

    def rules(self):
        return list((self.read() or {}).get("rules") or [])

    def find(self, ref):
        """Return the rule whose ref is ``ref``, or None."""
        found = [rule for rule in self.rules() if rule.get("ref") == ref]
        if len(found) > 1:
            raise CloudflareError("The %s entrypoint of zone %s contains %d rules with ref '%s'; delete the extra ones."
                                  % (self.phase, self.zone["name"], len(found), ref))
        return found[0] if found else None

    def label(self, ref):
        return "%s %s %s" % (self.zone["name"], self.phase, ref)

    def ensure_present(self, ref, expression=None, action=None, action_parameters=None, ratelimit=None,
                       description=None, enabled=None):
        """Add the rule ``ref``, or update the fields given, keeping every other rule as it is.

        A new rule goes at the end of the list, and an existing one keeps its position. Rate-limiting
        rules are checked against the zone's plan before anything is sent.
        """
        if not ref:
            raise CloudflareError("A rule needs a ref, the name that identifies it across runs.")
        if action is not None and action not in PHASE_ACTIONS[self.phase]:
            raise CloudflareError("Action '%s' is invalid in the %s phase; use one of %s."
                                  % (action, self.phase, ", ".join(PHASE_ACTIONS[self.phase])))
        if ratelimit is not None and self.phase != RATE_LIMIT_PHASE:
            raise CloudflareError("ratelimit is only valid for rules in the %s phase, not %s."
                                  % (RATE_LIMIT_PHASE, self.phase))
        label = self.label(ref)
        current = self.find(ref)
        desired = {
            "expression": expression,
            "action": action,
            "action_parameters": action_parameters,
            "ratelimit": dict((key, value) for key, value in (ratelimit or {}).items() if value is not None) or None,
            "description": description,
            "enabled": enabled,
        }
        if current is None:
            missing = [key for key in ("expression", "action") if desired[key] is None]
            if self.phase == RATE_LIMIT_PHASE:
                missing.extend("ratelimit.%s" % key for key in ("period", "requests_per_period")
                               if (desired["ratelimit"] or {}).get(key) is None)
            if missing:
                raise CloudflareError("Rule '%s' does not exist yet in the %s entrypoint of zone %s, so it needs %s."
                                      % (ref, self.phase, self.zone["name"], ", ".join(missing)))
        if self.phase == RATE_LIMIT_PHASE:
            desired["ratelimit"] = self._complete_ratelimit(current, desired)
            self._check_plan(ref, current, desired)

        before = rule_view(current)
        if current is not None and not differs(current, desired):
            outcome = Outcome("ruleset_rule", label, "none", before=before, after=before, result=before)
        else:
            new_rule = merge(strip_read_only(current) if current else {"ref": ref}, desired)
            rules = [strip_read_only(rule) for rule in self.rules()]
            if current is None:
                rules.append(new_rule)
            else:
                rules = [new_rule if rule.get("ref") == ref else rule for rule in rules]
            outcome = self._write(ref, "update" if current else "create", before, rules)
        if self.phase == RATE_LIMIT_PHASE and plan_limits(self.plan) is None:
            outcome.notes.append(
                "Zone %s reports the plan '%s', whose rate-limiting limits this collection does not know, so only "
                "the limits common to every plan were checked before the write." % (self.zone["name"], self.plan))
        return outcome

    def ensure_absent(self, ref):
        """Remove the rule ``ref`` and keep every other rule as it is."""
        current = self.find(ref)
        label = self.label(ref)
        if current is None:
            return Outcome("ruleset_rule", label, "none")
        rules = [strip_read_only(rule) for rule in self.rules() if rule.get("ref") != ref]
        return self._write(ref, "delete", rule_view(current), rules)

    def _complete_ratelimit(self, current, desired):
        """Return the ratelimit to send: the given keys, cf.colo.id added, and a mitigation timeout."""
        given = dict(desired["ratelimit"] or {})
        existing = (current or {}).get("ratelimit") or {}
        action = desired["action"] or (current or {}).get("action")
        characteristics = given.get("characteristics") or existing.get("characteristics") or ["ip.src"]
        if MANDATORY_CHARACTERISTIC not in characteristics:
            characteristics = list(characteristics) + [MANDATORY_CHARACTERISTIC]
        given["characteristics"] = list(characteristics)
        if given.get("mitigation_timeout") is None:
            if action in CHALLENGE_ACTIONS and self.plan != "enterprise":
                # Challenge actions need request throttling, which a timeout of 0 selects.
                given["mitigation_timeout"] = 0
            elif "mitigation_timeout" in existing and (current or {}).get("action") not in CHALLENGE_ACTIONS:
                given["mitigation_timeout"] = existing["mitigation_timeout"]
            else:
                # 10 seconds is the one timeout every plan accepts for block and log.
                given["mitigation_timeout"] = 10
        return given

    def _check_plan(self, ref, current, desired):
        """Raise before any write when the resulting rule breaks the plan's rate-limiting limits."""
        resulting = merge(strip_read_only(current) if current else {}, desired)
        others = [rule for rule in self.rules() if rule.get("ref") != ref]
        problems = rate_limit_violations(resulting, self.plan, self.zone["name"], other_rules=len(others))
        if problems:
            raise CloudflareError(
                "Rate-limiting rule '%s' cannot be saved, so nothing was sent: %s." % (ref, "; ".join(problems)))

    def _write(self, ref, action, before, rules):
        label = self.label(ref)
        new_rule = next((rule for rule in rules if rule.get("ref") == ref), None)
        after = rule_view(new_rule)
        if self.check_mode:
            predicted = dict(self._entrypoint or {"phase": self.phase}, rules=rules)
            self._entrypoint = predicted
            return Outcome("ruleset_rule", label, action, before=before, after=after, result=after)
        body = {"rules": rules}
        if self._entrypoint is not None:
            # The PUT replaces the ruleset, so its name and description are sent back unchanged.
            for key in ("name", "description"):
                if self._entrypoint.get(key) is not None:
                    body[key] = self._entrypoint[key]
        verb = {"create": "add", "update": "update", "delete": "remove"}[action]
        saved = self.api.result("PUT", self.path, "%s rule '%s' in the %s entrypoint ruleset of zone %s"
                                % (verb, ref, self.phase, self.zone["name"]), body=body)
        self._entrypoint = saved
        self._read = saved is not None
        if action == "delete":
            return Outcome("ruleset_rule", label, action, before=before, after=None, result=None)
        stored = rule_view(self.find(ref) if saved is not None else new_rule)
        return Outcome("ruleset_rule", label, action, before=before, after=stored, result=stored)
