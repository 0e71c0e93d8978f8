# Copyright (c) homelab.edge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests of cloudflare_ruleset_rule and its manager, with a fake Cloudflare API (no HTTP)."""

import copy
import json
import os
import sys

import pytest

REPO_ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "..", ".."))
sys.path.insert(0, os.path.join(REPO_ROOT, ".collections"))

from ansible.module_utils.testing import patch_module_args  # noqa: E402

from ansible_collections.homelab.edge.plugins.module_utils import cloudflare_api, edge  # noqa: E402
from ansible_collections.homelab.edge.plugins.module_utils.cloudflare_api import CloudflareError  # noqa: E402
from ansible_collections.homelab.edge.plugins.module_utils.rulesets import (  # noqa: E402
    RATE_LIMIT_PLANS,
    RulesetRuleManager,
    expression_fields,
    rate_limit_violations,
)
from ansible_collections.homelab.edge.plugins.modules import cloudflare_ruleset_rule as module  # noqa: E402

ZONE_ID = "0d7e4c2b9a8f4e3d8c1b6a5f4e3d2c1b"
RL_PATH = "zones/%s/rulesets/phases/http_ratelimit/entrypoint" % ZONE_ID
FW_PATH = "zones/%s/rulesets/phases/http_request_firewall_custom/entrypoint" % ZONE_ID


def zone(plan="free"):
    return {"id": ZONE_ID, "name": "example.com", "plan": plan}


def stored_rule(ref, number, **fields):
    """Return a rule as the API returns it, with the read-only fields set."""
    rule = {
        "id": "%032x" % number,
        "ref": ref,
        "version": "3",
        "last_updated": "2026-01-01T00:00:00Z",
        "categories": ["other"],
        "enabled": True,
        "description": "",
    }
    rule.update(fields)
    return rule


OTHER_FW = stored_rule("theirs_first", 1, action="block", expression='ip.src eq 192.0.2.1',
                       logging={"enabled": True})
OTHER_FW_2 = stored_rule("theirs_second", 2, action="skip", expression='http.request.uri.path eq "/health"',
                         action_parameters={"ruleset": "current"})
OURS_FW = stored_rule("ours", 3, action="block", expression='http.host eq "chat.example.com"',
                      description="homelab.edge chat")
OURS_RL = stored_rule("ours", 4, action="block", expression='starts_with(http.request.uri.path, "/")',
                      ratelimit={"characteristics": ["cf.colo.id", "ip.src"], "period": 10,
                                 "requests_per_period": 30, "mitigation_timeout": 10})
OTHER_RL = stored_rule("theirs_rl", 5, action="block", expression='http.request.uri.path eq "/login"',
                       ratelimit={"characteristics": ["cf.colo.id", "ip.src"], "period": 10,
                                  "requests_per_period": 5, "mitigation_timeout": 10})


class FakeAPI:
    """Stand-in for CloudflareAPI that stores entrypoints per path and records every request."""

    def __init__(self, entrypoints=None, plan="free"):
        self.entrypoints = copy.deepcopy(entrypoints or {})
        self.plan = plan
        self.calls = []

    def zone(self, name, account_id=None):
        return zone(self.plan)

    def result(self, method, path, action, params=None, body=None, retry_writes=True):
        self.calls.append({"method": method, "path": path, "body": copy.deepcopy(body)})
        if method == "GET":
            if path not in self.entrypoints:
                raise CloudflareError("could not find entrypoint ruleset", action=action, status=404,
                                      errors=[{"code": 10003, "message": "could not find entrypoint ruleset"}])
            return copy.deepcopy(self.entrypoints[path])
        if method == "PUT":
            previous = self.entrypoints.get(path)
            rules = []
            for number, rule in enumerate(body["rules"], start=100):
                saved = dict(rule, version="1", last_updated="2026-02-02T00:00:00Z")
                saved.setdefault("id", "%032x" % number)
                saved.setdefault("ref", saved["id"])
                saved.setdefault("enabled", True)
                saved.setdefault("description", "")
                rules.append(saved)
            self.entrypoints[path] = {
                "id": previous["id"] if previous else "f" * 32,
                "name": body.get("name", previous["name"] if previous else "default"),
                "description": body.get("description", ""),
                "kind": "zone",
                "phase": path.rsplit("/", 2)[1],
                "version": str(int(previous["version"]) + 1) if previous else "1",
                "rules": rules,
            }
            return copy.deepcopy(self.entrypoints[path])
        raise AssertionError("unexpected %s %s" % (method, path))

    def writes(self):
        return [call for call in self.calls if call["method"] != "GET"]

    def summary(self):
        return {"requests": {}, "retries": 0, "retried": {}}


def entrypoint(phase, rules):
    return {"id": "e" * 32, "name": "zone entrypoint", "description": "kept", "kind": "zone", "phase": phase,
            "version": "7", "rules": copy.deepcopy(rules)}


def ratelimit(**overrides):
    values = {"requests_per_period": 30, "period": 10}
    values.update(overrides)
    return values


# Manager: creating, keeping others' rules, replacing


def test_missing_entrypoint_is_created_by_put():
    api = FakeAPI()
    manager = RulesetRuleManager(api, zone(), "http_ratelimit")

    outcome = manager.ensure_present("ours", expression='starts_with(http.request.uri.path, "/")', action="block",
                                     ratelimit=ratelimit())

    assert outcome.action == "create"
    assert [call["method"] for call in api.calls] == ["GET", "PUT"]
    body = api.calls[1]["body"]
    assert list(body) == ["rules"]
    assert len(body["rules"]) == 1
    sent = body["rules"][0]
    assert sent["ref"] == "ours"
    assert "id" not in sent
    assert sorted(sent["ratelimit"]["characteristics"]) == ["cf.colo.id", "ip.src"]
    assert sent["ratelimit"]["mitigation_timeout"] == 10
    assert outcome.result["id"] == api.entrypoints[RL_PATH]["rules"][0]["id"]


def test_other_404_is_raised():
    class MissingZoneAPI(FakeAPI):
        def result(self, method, path, action, params=None, body=None, retry_writes=True):
            raise CloudflareError("not found", action=action, status=404,
                                  errors=[{"code": 7003, "message": "No route for the URI"}])

    manager = RulesetRuleManager(MissingZoneAPI(), zone(), "http_ratelimit")
    with pytest.raises(CloudflareError) as error:
        manager.read()
    assert "7003" in str(error.value)


def test_new_rule_appended_others_kept_in_order():
    api = FakeAPI({FW_PATH: entrypoint("http_request_firewall_custom", [OTHER_FW, OTHER_FW_2])})
    manager = RulesetRuleManager(api, zone(), "http_request_firewall_custom")

    outcome = manager.ensure_present("ours", expression='http.host eq "chat.example.com"', action="block")

    assert outcome.action == "create"
    body = api.writes()[0]["body"]
    assert [rule["ref"] for rule in body["rules"]] == ["theirs_first", "theirs_second", "ours"]
    assert body["name"] == "zone entrypoint"
    assert body["description"] == "kept"


def test_kept_rules_omit_read_only_fields():
    api = FakeAPI({FW_PATH: entrypoint("http_request_firewall_custom", [OTHER_FW, OTHER_FW_2])})
    manager = RulesetRuleManager(api, zone(), "http_request_firewall_custom")

    manager.ensure_present("ours", expression='http.host eq "chat.example.com"', action="block")

    kept = api.writes()[0]["body"]["rules"][:2]
    for sent, original in zip(kept, [OTHER_FW, OTHER_FW_2]):
        assert sent["id"] == original["id"]
        assert sent["ref"] == original["ref"]
        for field in ("version", "last_updated", "categories"):
            assert field not in sent
        expected = dict((key, value) for key, value in original.items()
                        if key not in ("version", "last_updated", "categories"))
        assert sent == expected


def test_changed_rule_replaced_in_place():
    api = FakeAPI({FW_PATH: entrypoint("http_request_firewall_custom", [OTHER_FW, OURS_FW, OTHER_FW_2])})
    manager = RulesetRuleManager(api, zone(), "http_request_firewall_custom")

    outcome = manager.ensure_present("ours", expression='http.host eq "api.example.com"', action="block")

    assert outcome.action == "update"
    rules = api.writes()[0]["body"]["rules"]
    assert [rule["ref"] for rule in rules] == ["theirs_first", "ours", "theirs_second"]
    assert rules[1]["id"] == OURS_FW["id"]
    assert rules[1]["expression"] == 'http.host eq "api.example.com"'
    assert rules[1]["description"] == "homelab.edge chat"
    assert outcome.before["expression"] == 'http.host eq "chat.example.com"'
    assert outcome.after["expression"] == 'http.host eq "api.example.com"'


def test_equal_rule_sends_no_put():
    api = FakeAPI({RL_PATH: entrypoint("http_ratelimit", [OURS_RL])})
    manager = RulesetRuleManager(api, zone(), "http_ratelimit")

    outcome = manager.ensure_present("ours", expression='starts_with(http.request.uri.path, "/")', action="block",
                                     ratelimit=ratelimit(characteristics=["ip.src"]), enabled=True)

    assert outcome.action == "none"
    assert api.writes() == []


def test_fields_not_given_are_not_compared():
    changed_elsewhere = dict(OURS_FW, description="edited in the dashboard", enabled=False)
    api = FakeAPI({FW_PATH: entrypoint("http_request_firewall_custom", [changed_elsewhere])})
    manager = RulesetRuleManager(api, zone(), "http_request_firewall_custom")

    outcome = manager.ensure_present("ours", expression=OURS_FW["expression"], action="block")

    assert outcome.action == "none"
    assert api.writes() == []


def test_absent_removes_only_ours():
    api = FakeAPI({FW_PATH: entrypoint("http_request_firewall_custom", [OTHER_FW, OURS_FW, OTHER_FW_2])})
    manager = RulesetRuleManager(api, zone(), "http_request_firewall_custom")

    outcome = manager.ensure_absent("ours")

    assert outcome.action == "delete"
    assert outcome.after is None
    rules = api.writes()[0]["body"]["rules"]
    assert [rule["ref"] for rule in rules] == ["theirs_first", "theirs_second"]


def test_absent_without_rule_sends_no_put():
    api = FakeAPI({FW_PATH: entrypoint("http_request_firewall_custom", [OTHER_FW])})
    outcome = RulesetRuleManager(api, zone(), "http_request_firewall_custom").ensure_absent("ours")
    assert outcome.action == "none"
    assert api.writes() == []


def test_absent_without_entrypoint_sends_no_put():
    api = FakeAPI()
    outcome = RulesetRuleManager(api, zone(), "http_ratelimit").ensure_absent("ours")
    assert outcome.action == "none"
    assert api.writes() == []


def test_entrypoint_read_once_for_several_rules():
    api = FakeAPI({FW_PATH: entrypoint("http_request_firewall_custom", [OTHER_FW])})
    manager = RulesetRuleManager(api, zone(), "http_request_firewall_custom")

    manager.ensure_present("first", expression='http.host eq "a.example.com"', action="block")
    manager.ensure_present("second", expression='http.host eq "b.example.com"', action="block")

    assert [call["method"] for call in api.calls] == ["GET", "PUT", "PUT"]
    last = api.writes()[1]["body"]["rules"]
    assert [rule["ref"] for rule in last] == ["theirs_first", "first", "second"]


def test_new_rule_without_expression_rejected():
    api = FakeAPI()
    with pytest.raises(CloudflareError) as error:
        RulesetRuleManager(api, zone(), "http_ratelimit").ensure_present("ours", action="block")
    assert "needs expression, ratelimit.period, ratelimit.requests_per_period" in str(error.value)
    assert api.writes() == []


def test_skip_action_rejected_in_rate_limit_phase():
    api = FakeAPI()
    with pytest.raises(CloudflareError) as error:
        RulesetRuleManager(api, zone(), "http_ratelimit").ensure_present(
            "ours", expression="true", action="skip", ratelimit=ratelimit())
    assert "Action 'skip' is invalid in the http_ratelimit phase" in str(error.value)


def test_challenge_action_defaults_to_zero_timeout():
    api = FakeAPI()
    RulesetRuleManager(api, zone(), "http_ratelimit").ensure_present(
        "ours", expression='starts_with(http.request.uri.path, "/")', action="managed_challenge",
        ratelimit=ratelimit())
    assert api.writes()[0]["body"]["rules"][0]["ratelimit"]["mitigation_timeout"] == 0


# Check mode


def test_check_mode_sends_no_write():
    api = FakeAPI({FW_PATH: entrypoint("http_request_firewall_custom", [OTHER_FW, OURS_FW])})
    manager = RulesetRuleManager(api, zone(), "http_request_firewall_custom", check_mode=True)

    changed = manager.ensure_present("ours", expression='http.host eq "api.example.com"', action="block")
    added = manager.ensure_present("new", expression='http.host eq "b.example.com"', action="block")
    removed = manager.ensure_absent("theirs_first")

    assert (changed.action, added.action, removed.action) == ("update", "create", "delete")
    assert [call["method"] for call in api.calls] == ["GET"]
    assert added.after["ref"] == "new"


def test_check_mode_counts_predicted_rate_limit_rules():
    api = FakeAPI(plan="pro")
    manager = RulesetRuleManager(api, zone("pro"), "http_ratelimit", check_mode=True)
    for ref in ("one", "two"):
        manager.ensure_present(ref, expression='http.host eq "a.example.com"', action="block", ratelimit=ratelimit())
    with pytest.raises(CloudflareError) as error:
        manager.ensure_present("three", expression='http.host eq "a.example.com"', action="block",
                               ratelimit=ratelimit())
    assert "Pro plan of zone example.com allows 2 rate-limiting rule(s)" in str(error.value)
    assert api.writes() == []


# Plan limits


FREE_REJECTIONS = [
    pytest.param(
        {"ratelimit": ratelimit(period=60)},
        "period 60 is not available on the Free plan of zone example.com, which allows only a period of 10 seconds; "
        "set period: 10", id="period"),
    pytest.param(
        {"ratelimit": ratelimit(mitigation_timeout=3600)},
        "mitigation_timeout 3600 is not available on the Free plan of zone example.com, which allows only a "
        "mitigation timeout of 10 seconds; set mitigation_timeout: 10", id="timeout"),
    pytest.param(
        {"ratelimit": ratelimit(mitigation_timeout=10), "action": "managed_challenge"},
        "requires 0 with challenge actions; set mitigation_timeout: 0", id="challenge-timeout"),
    pytest.param(
        {"ratelimit": ratelimit(characteristics=["ip.src", "http.request.headers[\"x-api-key\"]"])},
        "is not available on the Free plan of zone example.com, which allows only ip.src and cf.colo.id",
        id="characteristic"),
    pytest.param(
        {"expression": 'http.host eq "chat.example.com"'},
        "the expression uses http.host, which rate-limiting rules on the Free plan of zone example.com may not use",
        id="host-field"),
    pytest.param(
        {"ratelimit": ratelimit(counting_expression='http.request.uri.path eq "/a"')},
        "a custom counting_expression is not available on the Free plan", id="counting-expression"),
    pytest.param(
        {"ratelimit": ratelimit(period=11)},
        "period 11 is not a period Cloudflare supports", id="unsupported-period"),
]


@pytest.mark.parametrize(("override", "expected"), FREE_REJECTIONS)
def test_free_plan_rejections(override, expected):
    api = FakeAPI()
    arguments = {"expression": 'starts_with(http.request.uri.path, "/api/")', "action": "block",
                 "ratelimit": ratelimit()}
    arguments.update(override)

    with pytest.raises(CloudflareError) as error:
        RulesetRuleManager(api, zone(), "http_ratelimit").ensure_present("ours", **arguments)

    assert expected in str(error.value)
    assert "nothing was sent" in str(error.value)
    assert api.writes() == []


def test_free_plan_second_rule_rejected():
    api = FakeAPI({RL_PATH: entrypoint("http_ratelimit", [OTHER_RL])})
    with pytest.raises(CloudflareError) as error:
        RulesetRuleManager(api, zone(), "http_ratelimit").ensure_present(
            "ours", expression='starts_with(http.request.uri.path, "/")', action="block", ratelimit=ratelimit())
    message = str(error.value)
    assert "Free plan of zone example.com allows 1 rate-limiting rule(s)" in message
    assert "http_ratelimit entrypoint contains 1 other one(s)" in message
    assert api.writes() == []


def test_free_plan_replacing_own_rule_allowed():
    api = FakeAPI({RL_PATH: entrypoint("http_ratelimit", [OURS_RL])})
    outcome = RulesetRuleManager(api, zone(), "http_ratelimit").ensure_present(
        "ours", expression='starts_with(http.request.uri.path, "/")', action="block",
        ratelimit=ratelimit(requests_per_period=60))
    assert outcome.action == "update"
    assert api.writes()[0]["body"]["rules"][0]["ratelimit"]["requests_per_period"] == 60


def test_pro_plan_allows_one_minute_period():
    api = FakeAPI(plan="pro")
    outcome = RulesetRuleManager(api, zone("pro"), "http_ratelimit").ensure_present(
        "ours", expression='http.host eq "chat.example.com"', action="block",
        ratelimit=ratelimit(period=60, mitigation_timeout=600))
    assert outcome.action == "create"


def test_pro_plan_period_limit_message():
    problems = rate_limit_violations(
        {"action": "block", "expression": "true",
         "ratelimit": {"characteristics": ["ip.src", "cf.colo.id"], "period": 600, "requests_per_period": 5,
                       "mitigation_timeout": 10}}, "pro", "example.com")
    assert problems == ["period 600 is not available on the Pro plan of zone example.com, which allows only a period "
                        "of 10, 15, 20, 30, 40, 45, 60 seconds; set period: 60"]


def test_business_plan_allows_method_field():
    problems = rate_limit_violations(
        {"action": "block", "expression": 'http.request.method eq "POST"',
         "ratelimit": {"characteristics": ["cf.unique_visitor_id", "cf.colo.id"], "period": 600,
                       "requests_per_period": 5, "mitigation_timeout": 86400}}, "business", "example.com",
        other_rules=4)
    assert problems == []


def test_unknown_plan_checks_only_common_limits():
    api = FakeAPI(plan="unknown")
    outcome = RulesetRuleManager(api, zone("unknown"), "http_ratelimit").ensure_present(
        "ours", expression='http.host eq "chat.example.com"', action="block", ratelimit=ratelimit(period=600))
    assert outcome.action == "create"
    assert "does not know" in outcome.notes[0]


def test_plan_table_lists_every_plan():
    assert sorted(RATE_LIMIT_PLANS) == ["business", "enterprise", "free", "pro"]
    assert RATE_LIMIT_PLANS["free"]["periods"] == (10,)
    assert RATE_LIMIT_PLANS["free"]["timeouts"] == (10,)


def test_expression_fields_ignore_string_literals():
    expression = 'http.host eq "evil.ip.src" and not http.request.uri.path in {"/a.b"} and ip.src ne 192.0.2.1'
    assert expression_fields(expression) == ["http.host", "http.request.uri.path", "ip.src"]


# The module's main()


def run_module(args, api, monkeypatch, capsys):
    monkeypatch.setattr(cloudflare_api.CloudflareModule, "api", property(lambda self: api))
    with patch_module_args(dict(args, api_token="unit-test-token")):
        with pytest.raises(SystemExit):
            module.main()
    return json.loads(capsys.readouterr().out)


def test_module_creates_rule_with_diff(monkeypatch, capsys):
    api = FakeAPI({RL_PATH: entrypoint("http_ratelimit", [])})
    result = run_module({"zone": "example.com", "phase": "http_ratelimit", "ref": "ours", "action": "block",
                         "expression": 'starts_with(http.request.uri.path, "/")',
                         "ratelimit": {"requests_per_period": 30, "period": 10}, "_ansible_diff": True},
                        api, monkeypatch, capsys)
    assert result["changed"] is True
    assert result["plan"] == "free"
    assert result["rule"]["ref"] == "ours"
    label = "ruleset_rule example.com http_ratelimit ours"
    assert result["diff"]["before"] == {}
    assert result["diff"]["after"][label]["ratelimit"]["period"] == 10
    assert len(api.writes()) == 1


def test_module_check_mode_writes_nothing(monkeypatch, capsys):
    api = FakeAPI()
    result = run_module({"zone": "example.com", "phase": "http_request_firewall_custom", "ref": "ours",
                         "action": "block", "expression": 'http.host eq "chat.example.com"',
                         "_ansible_check_mode": True}, api, monkeypatch, capsys)
    assert result["changed"] is True
    assert api.writes() == []


def test_module_reports_plan_violation(monkeypatch, capsys):
    api = FakeAPI()
    result = run_module({"zone": "example.com", "phase": "http_ratelimit", "ref": "ours", "action": "block",
                         "expression": 'starts_with(http.request.uri.path, "/")',
                         "ratelimit": {"requests_per_period": 30, "period": 60}}, api, monkeypatch, capsys)
    assert result["failed"] is True
    assert "set period: 10" in result["msg"]
    assert api.writes() == []


# The data model's rate_limit and firewall keys, as the aggregate module applies them


def edge_params(*services, zone_name="example.com"):
    return {"account": "Homelab", "zone": zone_name, "service_tokens": [],
            "tunnels": [{"name": "home", "services": list(services)}]}


def edge_service(hostname="chat.example.com", **keys):
    service = {"hostname": hostname, "origin": "ollama"}
    service.update(keys)
    return service


FIREWALL = {"methods": ["get", "POST"], "paths": ["/api/chat", "/v1/*"]}


def test_firewall_rule_blocks_other_methods_and_paths():
    plan = edge.EdgePlan(edge_params(edge_service(firewall=copy.deepcopy(FIREWALL))))
    assert plan.errors == []
    rule = edge.firewall_rule(plan.tunnels[0]["services"][0])
    assert rule["ref"] == "homelab_edge_fw_chat_example_com"
    assert rule["action"] == "block"
    assert rule["expression"] == (
        'http.host eq "chat.example.com" and (not (http.request.method in {"GET" "POST"}) or '
        'not (http.request.uri.path in {"/api/chat"} or starts_with(http.request.uri.path, "/v1/")))')


def test_firewall_rule_with_methods_only():
    rule = edge.firewall_rule(edge_service(firewall={"methods": ["GET"]}))
    assert rule["expression"] == 'http.host eq "chat.example.com" and (not (http.request.method in {"GET"}))'


@pytest.mark.parametrize("plan", ["pro", "business", "enterprise"])
def test_rate_limit_rule_matches_host_above_free(plan):
    rule = edge.rate_limit_rule(edge_service(rate_limit={"requests": 30, "period": 10}), plan)
    assert rule["expression"] == 'http.host eq "chat.example.com"'
    assert rate_limit_violations(dict(rule, ratelimit=dict(rule["ratelimit"], mitigation_timeout=10)), plan,
                                 "example.com") == []


def test_rate_limit_rule_on_free_uses_firewall_paths():
    service = edge_service(rate_limit={"requests": 30, "period": 10}, firewall=copy.deepcopy(FIREWALL))
    rule = edge.rate_limit_rule(service, "free")
    assert rule["ref"] == "homelab_edge_rl_chat_example_com"
    assert rule["expression"] == 'http.request.uri.path in {"/api/chat"} or starts_with(http.request.uri.path, "/v1/")'
    assert expression_fields(rule["expression"]) == ["http.request.uri.path"]


def test_rate_limit_rule_on_free_without_paths():
    rule = edge.rate_limit_rule(edge_service(rate_limit={"requests": 30, "period": 10}), "free")
    assert rule["expression"] == 'starts_with(http.request.uri.path, "/")'
    completed = dict(rule, ratelimit=dict(rule["ratelimit"], mitigation_timeout=10))
    assert rate_limit_violations(completed, "free", "example.com") == []


BAD_EDGE_RULES = [
    pytest.param({"rate_limit": {"requests": 0, "period": 10}}, "Invalid rate_limit.requests 0", id="zero-requests"),
    pytest.param({"rate_limit": {"requests": 5, "period": 7}}, "Invalid rate_limit.period 7", id="bad-period"),
    pytest.param({"rate_limit": {"requests": 5, "period": 10, "mitigation_timeout": 5}},
                 "Invalid rate_limit.mitigation_timeout 5", id="bad-timeout"),
    pytest.param({"rate_limit": {"requests": 5, "period": 10, "burst": 3}}, "Unknown key(s) burst", id="unknown-key"),
    pytest.param({"firewall": {"methods": ["FETCH"]}}, "Invalid firewall.methods FETCH", id="bad-method"),
    pytest.param({"firewall": {"paths": ["api/chat"]}}, "Invalid firewall path 'api/chat'", id="relative-path"),
    pytest.param({"firewall": {"paths": ["/a*b"]}}, "Invalid firewall path '/a*b'", id="inner-star"),
    pytest.param({"firewall": {"methods": [], "paths": []}}, "lists no methods and no paths", id="empty-firewall"),
]


@pytest.mark.parametrize(("keys", "expected"), BAD_EDGE_RULES)
def test_edge_plan_rejects_bad_rule_keys(keys, expected):
    plan = edge.EdgePlan(edge_params(edge_service(**keys)))
    assert any(expected in error for error in plan.errors), plan.errors


def test_edge_plan_rejects_shared_rule_ref():
    first = edge_service(path="/a", rate_limit={"requests": 5, "period": 10})
    second = edge_service(path="/b", rate_limit={"requests": 5, "period": 10})
    plan = edge.EdgePlan(edge_params(first, second))
    assert any("share the rule ref homelab_edge_rl_chat_example_com" in error for error in plan.errors), plan.errors


def test_edge_plan_groups_rule_services_by_zone():
    plan = edge.EdgePlan(edge_params(edge_service(firewall={"methods": ["GET"]}),
                                     edge_service("plain.example.com")))
    assert plan.errors == []
    assert [service["hostname"] for service in plan.rule_services["example.com"]] == ["chat.example.com"]


def test_edge_reconciler_reads_each_entrypoint_once():
    api = FakeAPI({FW_PATH: entrypoint("http_request_firewall_custom", [OTHER_FW])})
    reconciler = edge.EdgeReconciler(api, edge.EdgePlan(edge_params()))
    services = [
        edge_service("chat.example.com", firewall={"methods": ["GET"]}, rate_limit={"requests": 5, "period": 10}),
        edge_service("api.example.com", firewall={"paths": ["/v1/*"]}),
    ]

    reconciler._zone_rules(zone(), services)

    reads = [call["path"] for call in api.calls if call["method"] == "GET"]
    assert reads == [FW_PATH, RL_PATH]
    assert [rule["ref"] for rule in api.entrypoints[FW_PATH]["rules"]] == [
        "theirs_first", "homelab_edge_fw_chat_example_com", "homelab_edge_fw_api_example_com"]
    assert reconciler.rules["chat.example.com"] == {"firewall": "homelab_edge_fw_chat_example_com",
                                                    "rate_limit": "homelab_edge_rl_chat_example_com"}


def test_edge_reconciler_check_mode_rejects_second_free_rule():
    api = FakeAPI()
    reconciler = edge.EdgeReconciler(api, edge.EdgePlan(edge_params()), check_mode=True)
    services = [
        edge_service("chat.example.com", rate_limit={"requests": 5, "period": 10}),
        edge_service("api.example.com", rate_limit={"requests": 5, "period": 10}),
    ]

    with pytest.raises(CloudflareError) as error:
        reconciler._zone_rules(zone(), services)

    assert "Rate-limiting rule 'homelab_edge_rl_api_example_com' cannot be saved" in str(error.value)
    assert "Free plan of zone example.com allows 1 rate-limiting rule(s)" in str(error.value)
    assert api.writes() == []
