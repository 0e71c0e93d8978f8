"""Rate limiting and WAF custom rules from the data model, through site's Cloudflare play, against the emulator."""

from __future__ import annotations

import httpx

from tests.integration.harness import ROOT, run_playbook, write_vars

SITE = ROOT / "playbooks" / "cloudflare.yml"
RATE_LIMIT_REF = "homelab_edge_rl_chat_example_com"
FIREWALL_REF = "homelab_edge_fw_chat_example_com"
RL_PHASE = "http_ratelimit"
FW_PHASE = "http_request_firewall_custom"


def edge_vars(target, rate_limit=None, firewall=None, extra_services=()):
    service = {
        "hostname": "chat." + target.zone,
        "origin": "ollama",
        "access": {"service_tokens": ["azure-backend"]},
        "rate_limit": rate_limit if rate_limit is not None else {"requests": 30, "period": 10},
        "firewall": firewall if firewall is not None else {"methods": ["GET", "POST"],
                                                           "paths": ["/api/chat", "/api/tags"]},
    }
    return {
        "edge_cloudflare_account": target.account,
        "edge_cloudflare_zone": target.zone,
        "edge_tunnels": [{"name": "home", "origins": "edge_origins", "services": [service, *extra_services]}],
        "edge_service_tokens": [{"name": "azure-backend", "duration": "8760h"}],
    }


def run_site(target, tmp_path, *args, variables=None, name="edge.json"):
    extra = write_vars(tmp_path, name, variables or edge_vars(target))
    return run_playbook(SITE, "-e", "@%s" % extra, *args, env=target.env)


def zone_id(target):
    return target.seed["zones"][0]["id"]


def put_entrypoint(target, phase, rules):
    """Write a phase entrypoint through the API, as another tool or the dashboard would."""
    response = httpx.put("%s/zones/%s/rulesets/phases/%s/entrypoint" % (target.base_url, zone_id(target), phase),
                         headers={"Authorization": "Bearer %s" % target.api_token}, json={"rules": rules},
                         trust_env=False)
    assert response.status_code == 200, response.text
    return response.json()["result"]


def stored_rules(target, phase):
    rulesets = target.admin.state()["rulesets"].get(zone_id(target), {})
    return (rulesets.get(phase) or {}).get("rules", [])


def set_plan(target, plan):
    def change(state):
        state["zones"][zone_id(target)]["plan"] = plan
    target.admin.mutate_state(change)


def entrypoint_requests(target, method, phase):
    return target.admin.log(method=method, path="/rulesets/phases/%s/entrypoint" % phase)


OTHERS_CUSTOM_RULES = [
    {"ref": "someone_else_first", "expression": "ip.src eq 192.0.2.1", "action": "block",
     "description": "made in the dashboard"},
    {"ref": "someone_else_second", "expression": 'http.request.uri.path eq "/health"', "action": "log",
     "enabled": False},
]


def test_first_run_creates_both_rules(cloudflare, tmp_path):
    cloudflare.require_emulator()

    run = run_site(cloudflare, tmp_path)

    assert run.returncode == 0, run.explain()
    custom = stored_rules(cloudflare, FW_PHASE)
    assert [rule["ref"] for rule in custom] == [FIREWALL_REF]
    assert custom[0]["action"] == "block"
    assert custom[0]["expression"] == (
        'http.host eq "chat.example.com" and (not (http.request.method in {"GET" "POST"}) or '
        'not (http.request.uri.path in {"/api/chat" "/api/tags"}))')

    limits = stored_rules(cloudflare, RL_PHASE)
    assert [rule["ref"] for rule in limits] == [RATE_LIMIT_REF]
    # The seeded zone is on the Free plan, whose rate limiting rules may not use the host field.
    assert limits[0]["expression"] == 'http.request.uri.path in {"/api/chat" "/api/tags"}'
    assert limits[0]["action"] == "block"
    ratelimit = limits[0]["ratelimit"]
    assert ratelimit["requests_per_period"] == 30
    assert ratelimit["period"] == 10
    assert ratelimit["mitigation_timeout"] == 10
    assert sorted(ratelimit["characteristics"]) == ["cf.colo.id", "ip.src"]
    assert cloudflare.api_token not in run.output


def test_others_custom_rules_kept_in_order(cloudflare, tmp_path):
    cloudflare.require_emulator()
    before = put_entrypoint(cloudflare, FW_PHASE, OTHERS_CUSTOM_RULES)["rules"]

    run = run_site(cloudflare, tmp_path)

    assert run.returncode == 0, run.explain()
    after = stored_rules(cloudflare, FW_PHASE)
    assert [rule["ref"] for rule in after] == ["someone_else_first", "someone_else_second", FIREWALL_REF]
    assert after[:2] == before


def test_others_rate_limit_rule_kept_on_pro(cloudflare, tmp_path):
    cloudflare.require_emulator()
    set_plan(cloudflare, "pro")
    theirs = {"ref": "someone_else_login", "expression": 'http.request.uri.path eq "/login"', "action": "block",
              "ratelimit": {"characteristics": ["cf.colo.id", "ip.src"], "period": 60, "requests_per_period": 5,
                            "mitigation_timeout": 600}}
    before = put_entrypoint(cloudflare, RL_PHASE, [theirs])["rules"]

    run = run_site(cloudflare, tmp_path, variables=edge_vars(cloudflare, rate_limit={"requests": 100, "period": 60}))

    assert run.returncode == 0, run.explain()
    after = stored_rules(cloudflare, RL_PHASE)
    assert [rule["ref"] for rule in after] == ["someone_else_login", RATE_LIMIT_REF]
    assert after[0] == before[0]
    assert after[1]["expression"] == 'http.host eq "chat.example.com"'
    assert after[1]["ratelimit"]["period"] == 60


def test_rate_limit_outside_free_plan_rejected(cloudflare, tmp_path):
    cloudflare.require_emulator()
    variables = edge_vars(cloudflare, rate_limit={"requests": 30, "period": 60, "mitigation_timeout": 3600})

    run = run_site(cloudflare, tmp_path, variables=variables)

    assert run.returncode != 0, run.explain()
    assert "period 60 is not available on the Free plan of zone example.com" in run.output, run.explain()
    assert "set period: 10" in run.output
    assert "set mitigation_timeout: 10" in run.output
    assert cloudflare.writes() == []
    assert stored_rules(cloudflare, RL_PHASE) == []


def test_second_free_rate_limit_rule_rejected(cloudflare, tmp_path):
    cloudflare.require_emulator()
    put_entrypoint(cloudflare, RL_PHASE, [
        {"ref": "someone_else_login", "expression": 'http.request.uri.path eq "/login"', "action": "block",
         "ratelimit": {"characteristics": ["cf.colo.id", "ip.src"], "period": 10, "requests_per_period": 5,
                       "mitigation_timeout": 10}}])
    cloudflare.admin.clear_log()

    run = run_site(cloudflare, tmp_path)

    assert run.returncode != 0, run.explain()
    assert "Free plan of zone example.com allows 1 rate-limiting rule(s)" in run.output, run.explain()
    assert cloudflare.writes() == []
    assert [rule["ref"] for rule in stored_rules(cloudflare, RL_PHASE)] == ["someone_else_login"]


def test_second_run_changes_nothing(cloudflare, tmp_path):
    cloudflare.require_emulator()
    first = run_site(cloudflare, tmp_path)
    assert first.returncode == 0, first.explain()
    cloudflare.admin.clear_log()

    second = run_site(cloudflare, tmp_path)

    assert second.returncode == 0, second.explain()
    assert second.changed == 0, second.explain()
    assert cloudflare.writes() == []
    assert len(entrypoint_requests(cloudflare, "GET", RL_PHASE)) == 1
    assert len(entrypoint_requests(cloudflare, "GET", FW_PHASE)) == 1


def test_entrypoint_read_once_per_zone(cloudflare, tmp_path):
    cloudflare.require_emulator()
    api = {"hostname": "api." + cloudflare.zone, "service": "http://127.0.0.1:8080",
           "firewall": {"methods": ["get"], "paths": ["/v1/*"]}}
    variables = edge_vars(cloudflare, extra_services=[api])

    run = run_site(cloudflare, tmp_path, variables=variables)

    assert run.returncode == 0, run.explain()
    # The role reconciles three times: the plan task predicts, then the apply task predicts again and
    # writes. Each pass reads the entrypoint once for both services of the zone.
    assert len(entrypoint_requests(cloudflare, "GET", FW_PHASE)) == 3
    assert len(entrypoint_requests(cloudflare, "PUT", FW_PHASE)) == 2
    custom = stored_rules(cloudflare, FW_PHASE)
    assert [rule["ref"] for rule in custom] == [FIREWALL_REF, "homelab_edge_fw_api_example_com"]
    assert custom[1]["expression"] == (
        'http.host eq "api.example.com" and (not (http.request.method in {"GET"}) or '
        'not (starts_with(http.request.uri.path, "/v1/")))')


def test_check_diff_shows_rule_without_writing(cloudflare, tmp_path):
    cloudflare.require_emulator()

    check = run_site(cloudflare, tmp_path, "--check", "--diff")

    assert check.returncode == 0, check.explain()
    assert cloudflare.writes() == []
    assert "ruleset_rule example.com http_ratelimit %s" % RATE_LIMIT_REF in check.output, check.explain()
    assert "requests_per_period: 30" in check.output


def test_changed_limit_updates_rule_in_place(cloudflare, tmp_path):
    cloudflare.require_emulator()
    first = run_site(cloudflare, tmp_path)
    assert first.returncode == 0, first.explain()
    rule_id = stored_rules(cloudflare, RL_PHASE)[0]["id"]

    changed = run_site(cloudflare, tmp_path, variables=edge_vars(cloudflare, rate_limit={"requests": 50, "period": 10}),
                       name="changed.json")

    assert changed.returncode == 0, changed.explain()
    limits = stored_rules(cloudflare, RL_PHASE)
    assert len(limits) == 1
    assert limits[0]["id"] == rule_id
    assert limits[0]["ratelimit"]["requests_per_period"] == 50
