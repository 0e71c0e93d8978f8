# Copyright (c) homelab.edge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests of EdgePlan (validation of the whole data model) and EdgeReconciler, with a FakeAPI."""

import json

import pytest

from tests.unit.plugins.modules.utils import (
    APPS,
    POLICIES,
    RECORDS,
    TOKENS,
    TUNNEL_ID,
    TUNNELS,
    FakeAPI,
)

from ansible_collections.homelab.edge.plugins.module_utils.cloudflare_api import CloudflareError
from ansible_collections.homelab.edge.plugins.module_utils.edge import (
    EdgePlan,
    EdgeReconciler,
    firewall_rule,
    rate_limit_rule,
    service_rule,
    zone_of,
)

CLIENT_SECRET = "edge-unit-client-secret-41c7"
TOKEN_ID = "3d2c1b0a-9f8e-4d7c-8b6a-5f4e3d2c1b0a"
POLICY_ID = "7e6d5c4b-3a2f-4e1d-9c8b-7a6f5e4d3c2b"
APP_ID = "9a8b7c6d-5e4f-4a3b-9c2d-1e0f9a8b7c6d"
CONFIG_PATH = "%s/%s/configurations" % (TUNNELS, TUNNEL_ID)
TARGET = TUNNEL_ID + ".cfargotunnel.com"
OLLAMA_RULE = {"hostname": "chat.example.com", "service": "http://127.0.0.1:11434",
               "originRequest": {"httpHostHeader": "localhost:11434"}}
OTHER_RULE = {"hostname": "git.example.com", "service": "http://127.0.0.1:3000"}


def edge_params(**changes):
    """Return module parameters for one tunnel with one Ollama service behind a service token."""
    params = {
        "account": "Homelab",
        "zone": "example.com",
        "service_tokens": [{"name": "azure-backend", "duration": "8760h", "consumers": None}],
        "tunnels": [{
            "name": "home", "origins": None, "config_src": "cloudflare", "ingress_mode": "merge",
            "catch_all": "http_status:404",
            "services": [{"hostname": "chat.example.com", "zone": None, "path": None, "service": None,
                          "origin": "ollama", "origin_request": None, "dns": None,
                          "access": {"service_tokens": ["azure-backend"]}, "rate_limit": None, "firewall": None}],
        }],
    }
    params.update(changes)
    return params


def service(hostname, **fields):
    return dict({"hostname": hostname, "service": "http://127.0.0.1:8080"}, **fields)


def tunnel_spec(name, *services, **fields):
    return dict({"name": name, "services": list(services)}, **fields)


def empty_account_api():
    """Return a FakeAPI for an account with no edge objects, whose creates return what Cloudflare returns."""
    return FakeAPI(routes={
        ("POST", TOKENS): lambda body: dict(body, id=TOKEN_ID, client_id="cid.access", client_secret=CLIENT_SECRET,
                                            expires_at=None),
        ("POST", TUNNELS): lambda body: dict(body, id=TUNNEL_ID, status="inactive", connections=[]),
        ("PUT", CONFIG_PATH): lambda body: {"config": body["config"], "version": 1},
        ("POST", RECORDS): lambda body: dict(body, id="record-1"),
        ("POST", POLICIES): lambda body: dict(body, id=POLICY_ID),
        ("POST", APPS): lambda body: dict(body, id=APP_ID, aud="aud-tag",
                                          policies=[dict(link, name="chat.example.com service auth")
                                                    for link in body["policies"]]),
    })


def existing_account_api(ingress):
    """Return a FakeAPI for an account where the tunnel exists with ``ingress`` and nothing else is set up."""
    api = empty_account_api()
    api.lists[TUNNELS] = [{"id": TUNNEL_ID, "name": "home", "config_src": "cloudflare", "status": "healthy"}]
    api.lists[TOKENS] = [{"id": TOKEN_ID, "name": "azure-backend", "client_id": "cid.access", "duration": "8760h"}]
    api.routes[("GET", CONFIG_PATH)] = {"config": {"ingress": ingress}, "version": 4}
    return api


# Helpers


def test_zone_of_picks_longest_zone():
    zones = ["example.com", "lab.example.com"]
    assert zone_of("chat.lab.example.com", zones) == "lab.example.com"
    assert zone_of("chat.example.com", zones) == "example.com"
    assert zone_of("example.com", zones) == "example.com"
    assert zone_of("chat.badexample.com", zones) is None


def test_service_rule_drops_empty_fields():
    assert service_rule({"hostname": "a.example.com", "path": "", "service": "http://x:1", "origin": None,
                         "origin_request": {}, "access": {"service_tokens": ["t"]}}) == {
        "hostname": "a.example.com", "service": "http://x:1"}


# EdgePlan


def test_valid_plan_has_no_errors():
    plan = EdgePlan(edge_params())
    assert plan.errors == []
    assert plan.zones == {"example.com"}
    assert plan.ingress["home"] == [OLLAMA_RULE, {"service": "http_status:404"}]
    plan.check()


def test_plan_lists_every_error_at_once():
    params = {
        "account": "Homelab",
        "zone": "example.com",
        "service_tokens": [{"name": "ci", "duration": "1y"}, {"name": "ci"}],
        "tunnels": [
            tunnel_spec("home",
                        service("Chat.Example.com", access={"decision": "allow", "service_tokens": ["ci"]}),
                        service("chat.example.com"),
                        service("git.example.org"),
                        {"hostname": "wiki.example.com"}),
            tunnel_spec("home"),
            tunnel_spec("lab", service("lab.example.com", service="ftp://127.0.0.1:21")),
            tunnel_spec("nozone", service("x.example.net", zone="")),
        ],
    }
    params["zone"] = "example.com"
    plan = EdgePlan(params)
    expected = [
        "Invalid duration for service token 'ci': '1y' is not a duration",
        "Service token 'ci' is listed twice in service_tokens.",
        "Access for service 'chat.example.com' of tunnel 'home' admits service tokens with decision 'allow'",
        "Hostname 'chat.example.com' is used by service 'chat.example.com' of tunnel 'home' and by service "
        "'chat.example.com' of tunnel 'home'",
        "Hostname 'git.example.org' is not inside zone 'example.com'",
        "Set service (an origin URL such as http://127.0.0.1:8080) or origin (a preset such as ollama) for service "
        "'wiki.example.com' of tunnel 'home'.",
        "Invalid ingress for tunnel 'home':",
        "Tunnel 'home' is listed twice in tunnels.",
        "Invalid ingress for tunnel 'lab': Ingress rule #1 (hostname 'lab.example.com'): service "
        "'ftp://127.0.0.1:21' uses the unsupported scheme 'ftp'",
        "Hostname 'x.example.net' is not inside zone 'example.com'",
    ]
    for text in expected:
        assert [error for error in plan.errors if text in error], "missing error: %s" % text
    assert len(plan.errors) == len(expected)
    with pytest.raises(CloudflareError) as error:
        plan.check()
    assert str(error.value).startswith("The edge description is invalid, so nothing was sent to Cloudflare:\n- ")
    assert str(error.value).count("\n- ") == len(expected)


def test_plan_without_any_zone_rejected():
    plan = EdgePlan({"account": "Homelab", "zone": None, "tunnels": [tunnel_spec("home", service("a.example.com"))]})
    assert plan.errors == ["No zone for service 'a.example.com' of tunnel 'home': set zone on the service or the "
                           "module's zone option."]


def test_plan_service_zone_overrides_default():
    plan = EdgePlan({"account": "Homelab", "zone": "example.com",
                     "tunnels": [tunnel_spec("home", service("a.example.org", zone="Example.org."))]})
    assert plan.errors == []
    assert plan.zones == {"example.org"}


def test_plan_same_hostname_other_path_accepted():
    plan = EdgePlan({"account": "Homelab", "zone": "example.com",
                     "tunnels": [tunnel_spec("home", service("a.example.com", path="^/api"), service("a.example.com"))]})
    assert plan.errors == []


def test_plan_local_tunnel_has_no_remote_ingress():
    plan = EdgePlan({"account": "Homelab", "zone": "example.com",
                     "tunnels": [tunnel_spec("home", service("a.example.com"), config_src="local")]})
    assert plan.errors == []
    assert "home" not in plan.ingress


def test_invalid_plan_sends_no_request():
    api = FakeAPI()
    plan = EdgePlan(edge_params(service_tokens=[{"name": "ci", "duration": "soon"}]))
    with pytest.raises(CloudflareError):
        EdgeReconciler(api, plan).run()
    assert api.calls == []


# EdgeReconciler


def test_check_mode_predicts_creates_without_writes():
    api = empty_account_api()
    reconciler = EdgeReconciler(api, EdgePlan(edge_params()), check_mode=True).run()
    assert api.writes() == []
    assert [outcome.summary() for outcome in reconciler.outcomes] == [
        {"kind": "service_token", "name": "azure-backend", "action": "create"},
        {"kind": "tunnel", "name": "home", "action": "create"},
        {"kind": "tunnel_ingress", "name": "home", "action": "create"},
        {"kind": "dns_record", "name": "chat.example.com CNAME", "action": "create"},
        {"kind": "access_policy", "name": "chat.example.com service auth", "action": "create"},
        {"kind": "access_application", "name": "chat.example.com", "action": "create"},
    ]
    assert reconciler.tunnels["home"]["cname"] == "<id of tunnel home>.cfargotunnel.com"
    assert reconciler.changed
    assert reconciler.creates("service_token")
    assert reconciler.secrets == {}


def test_run_creates_everything_in_order():
    api = empty_account_api()
    reconciler = EdgeReconciler(api, EdgePlan(edge_params())).run()
    assert [(call.method, call.path) for call in api.writes()] == [
        ("POST", TOKENS), ("POST", TUNNELS), ("PUT", CONFIG_PATH), ("POST", RECORDS), ("POST", POLICIES),
        ("POST", APPS),
    ]
    bodies = dict(((call.method, call.path), call.body) for call in api.writes())
    assert bodies[("PUT", CONFIG_PATH)] == {"config": {"ingress": [OLLAMA_RULE, {"service": "http_status:404"}]}}
    assert bodies[("POST", RECORDS)]["content"] == TARGET
    assert bodies[("POST", RECORDS)]["proxied"] is True
    assert bodies[("POST", POLICIES)]["decision"] == "non_identity"
    assert bodies[("POST", POLICIES)]["include"] == [{"service_token": {"token_id": TOKEN_ID}}]
    assert bodies[("POST", APPS)]["policies"] == [{"id": POLICY_ID, "precedence": 1}]
    assert bodies[("POST", APPS)]["service_auth_401_redirect"] is True
    assert reconciler.secrets == {"azure-backend": {"client_secret": CLIENT_SECRET, "client_id": "cid.access"}}
    assert reconciler.tunnels["home"] == {"id": TUNNEL_ID, "cname": TARGET, "config_src": "cloudflare"}
    assert reconciler.applications["chat.example.com"] == {"id": APP_ID, "aud": "aud-tag"}


def test_outcomes_hold_no_secret():
    api = empty_account_api()
    reconciler = EdgeReconciler(api, EdgePlan(edge_params())).run()
    views = [(outcome.before, outcome.after, outcome.result) for outcome in reconciler.outcomes]
    assert CLIENT_SECRET not in json.dumps(views, default=str)
    tunnel_secret = next(call.body["tunnel_secret"] for call in api.writes() if call.path == TUNNELS)
    assert tunnel_secret not in json.dumps([(outcome.before, outcome.after) for outcome in reconciler.outcomes])


def test_merge_keeps_other_hostnames():
    api = existing_account_api([OTHER_RULE, {"service": "http_status:503"}])
    EdgeReconciler(api, EdgePlan(edge_params())).run()
    [put] = [call for call in api.writes() if call.method == "PUT"]
    # The tunnel's catch_all option (http_status:404 unless set) replaces the current catch-all.
    assert put.body["config"]["ingress"] == [OTHER_RULE, OLLAMA_RULE, {"service": "http_status:404"}]


def test_exact_mode_drops_other_hostnames():
    params = edge_params()
    params["tunnels"][0]["ingress_mode"] = "exact"
    api = existing_account_api([OTHER_RULE, {"service": "http_status:503"}])
    reconciler = EdgeReconciler(api, EdgePlan(params)).run()
    [put] = [call for call in api.writes() if call.method == "PUT"]
    assert put.body["config"]["ingress"] == [OLLAMA_RULE, {"service": "http_status:404"}]
    ingress = next(outcome for outcome in reconciler.outcomes if outcome.kind == "tunnel_ingress")
    assert {"change": "removed", "hostname": "git.example.com", "path": ""} in ingress.result["changes"]


def test_unchanged_ingress_not_written():
    api = existing_account_api([OLLAMA_RULE, {"service": "http_status:404"}])
    EdgeReconciler(api, EdgePlan(edge_params())).run()
    assert [call for call in api.writes() if call.path == CONFIG_PATH] == []
    assert [call for call in api.writes() if call.path in (TOKENS, TUNNELS)] == []


def test_unlisted_token_must_exist():
    api = empty_account_api()
    plan = EdgePlan(edge_params(service_tokens=[]))
    with pytest.raises(CloudflareError) as error:
        EdgeReconciler(api, plan).run()
    assert "Service token 'azure-backend' was not found in the account" in str(error.value)
    assert [call.method for call in api.writes()] == ["POST", "PUT", "POST"]


def test_unlisted_token_placeholder_in_check_mode():
    api = empty_account_api()
    reconciler = EdgeReconciler(api, EdgePlan(edge_params(service_tokens=[])), check_mode=True).run()
    policy = next(outcome for outcome in reconciler.outcomes if outcome.kind == "access_policy")
    assert policy.after["include"] == [{"service_token": {"token_id": "<id of service token azure-backend>"}}]
    assert api.writes() == []


def test_missing_referenced_policy_rejected():
    params = edge_params()
    params["tunnels"][0]["services"][0]["access"] = {"policies": ["staff"]}
    api = existing_account_api([OLLAMA_RULE, {"service": "http_status:404"}])
    with pytest.raises(CloudflareError) as error:
        EdgeReconciler(api, EdgePlan(params)).run()
    assert "Access policy 'staff' for 'chat.example.com' was not found" in str(error.value)


# Rate limits and firewall rules of services


def test_plan_lists_rule_errors_with_others():
    bad = service("chat.example.com",
                  rate_limit={"requests": 0, "period": 7, "mitigation_timeout": 5, "action": "allow", "burst": 1},
                  firewall={"methods": ["get", "FETCH"], "paths": ["api", "/a*b"], "ports": [1]})
    plan = EdgePlan({"account": "Homelab", "zone": "example.com",
                     "tunnels": [tunnel_spec("home", bad, service("git.example.org"))]})
    expected = [
        "Unknown key(s) burst in rate_limit of service 'chat.example.com' of tunnel 'home'",
        "Invalid rate_limit.requests 0",
        "Invalid rate_limit.period 7",
        "Invalid rate_limit.mitigation_timeout 5",
        "Invalid rate_limit.action 'allow'",
        "Unknown key(s) ports in firewall",
        "Invalid firewall.methods FETCH",
        "Invalid firewall path 'api'",
        "Invalid firewall path '/a*b'",
        "Hostname 'git.example.org' is not inside zone 'example.com'",
    ]
    for text in expected:
        assert [error for error in plan.errors if text in error], "missing error: %s" % text
    assert len(plan.errors) == len(expected)


def test_plan_empty_firewall_rejected():
    plan = EdgePlan({"account": "Homelab", "zone": "example.com",
                     "tunnels": [tunnel_spec("home", service("chat.example.com", firewall={"methods": []},
                                                             rate_limit={"requests": 30, "period": 10}))]})
    assert plan.errors == ["firewall of service 'chat.example.com' of tunnel 'home' lists no methods and no paths; "
                           "list the ones the backend uses, or remove firewall."]


def test_plan_shared_rule_ref_rejected():
    limit = {"requests": 30, "period": 10}
    plan = EdgePlan({"account": "Homelab", "zone": "example.com",
                     "tunnels": [tunnel_spec("home", service("chat.example.com", path="^/a", rate_limit=limit),
                                             service("chat.example.com", path="^/b", rate_limit=limit))]})
    [error] = plan.errors
    assert "both set rate_limit, which would share the rule ref homelab_edge_rl_chat_example_com" in error


def test_firewall_rule_expression():
    rule = firewall_rule({"hostname": "chat.example.com",
                          "firewall": {"methods": ["GET", "POST"], "paths": ["/api/chat", "/api/*"]}})
    assert rule["ref"] == "homelab_edge_fw_chat_example_com"
    assert rule["action"] == "block"
    assert rule["expression"] == (
        'http.host eq "chat.example.com" and (not (http.request.method in {"GET" "POST"}) or '
        'not (http.request.uri.path in {"/api/chat"} or starts_with(http.request.uri.path, "/api/")))')


def test_rate_limit_rule_per_plan():
    limited = {"hostname": "chat.example.com", "rate_limit": {"requests": 30, "period": 10},
               "firewall": {"paths": ["/api/chat"]}}
    pro = rate_limit_rule(limited, "pro")
    free = rate_limit_rule(limited, "free")
    assert pro["expression"] == 'http.host eq "chat.example.com"'
    # The Free plan does not allow http.host in rate-limiting expressions, so the rule matches the paths instead.
    assert free["expression"] == 'http.request.uri.path in {"/api/chat"}'
    assert free["ratelimit"] == {"requests_per_period": 30, "period": 10, "mitigation_timeout": None,
                                 "characteristics": ["ip.src", "cf.colo.id"]}
