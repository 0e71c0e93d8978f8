# Copyright (c) homelab.edge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests of the Cloudflare modules: main() with patched arguments and a FakeAPI in place of CloudflareAPI.

Each test checks the module result (``changed``, the diff, messages) and the calls made on
the FakeAPI, so that a check-mode run that writes, or a secret in the output, fails a test.
"""

import datetime
import functools
import json

import cloudflare
import httpx
import pytest

from tests.unit.plugins.modules.utils import (
    ACCOUNT_NAME,
    ACCOUNT_ID,
    API_TOKEN,
    APPS,
    POLICIES,
    RECORDS,
    TOKENS,
    TUNNEL_ID,
    TUNNELS,
    FakeAPI,
    Sequence,
    http_error,
    patch_module_args,
    run_module,
    warning_texts,
)

from ansible_collections.homelab.edge.plugins.module_utils import access, cloudflare_api
from ansible_collections.homelab.edge.plugins.modules import (
    cloudflare_access_application,
    cloudflare_access_policy,
    cloudflare_access_service_token,
    cloudflare_access_service_token_info,
    cloudflare_dns_record,
    cloudflare_edge,
    cloudflare_tunnel,
    cloudflare_tunnel_info,
    cloudflare_tunnel_ingress,
)

CLIENT_SECRET = "module-unit-client-secret-83fd"
TUNNEL_TOKEN = "eyJhIjoibW9kdWxlLXVuaXQtdHVubmVsLXRva2VuIn0="
TOKEN_ID = "3d2c1b0a-9f8e-4d7c-8b6a-5f4e3d2c1b0a"
POLICY_ID = "7e6d5c4b-3a2f-4e1d-9c8b-7a6f5e4d3c2b"
APP_ID = "9a8b7c6d-5e4f-4a3b-9c2d-1e0f9a8b7c6d"
TUNNEL_PATH = "%s/%s" % (TUNNELS, TUNNEL_ID)
CONFIG_PATH = TUNNEL_PATH + "/configurations"
TARGET = TUNNEL_ID + ".cfargotunnel.com"
CATCH_ALL = {"service": "http_status:404"}


def live_tunnel(config_src="cloudflare", **extra):
    return dict({"id": TUNNEL_ID, "name": "home", "config_src": config_src, "status": "healthy",
                 "created_at": "2026-01-01T00:00:00Z", "deleted_at": None, "connections": [{"id": "c"}]}, **extra)


def created_tunnel(body):
    """Return a created tunnel as Cloudflare does: the request body, secret included, plus server fields."""
    return dict(body, id=TUNNEL_ID, status="inactive", created_at="2026-12-04T00:00:00Z", connections=[])


def service_token(duration="8760h"):
    return {"id": TOKEN_ID, "name": "azure-backend", "client_id": "cid.access", "duration": duration,
            "expires_at": "2027-12-04T00:00:00Z"}


def created_service_token(body):
    return dict(service_token(body.get("duration", "8760h")), client_secret=CLIENT_SECRET)


def echo(**fields):
    return lambda body: dict(body, **fields)


def not_built(api):
    """Tell whether the module never built its API client, so that it sent no request."""
    return not hasattr(api, "init_args") and api.calls == []


# cloudflare_tunnel


def test_tunnel_created(monkeypatch, capsys):
    api = FakeAPI(routes={("POST", TUNNELS): created_tunnel})
    result = run_module(cloudflare_tunnel, {"account": "Homelab", "name": "home"}, monkeypatch, capsys, api)
    assert result["changed"] is True
    assert result["tunnel"]["id"] == TUNNEL_ID
    assert result["cname"] == TARGET
    assert result["api_requests"] == {"GET": 1, "POST": 1}
    assert result["diff"]["after"]["tunnel home"]["config_src"] == "cloudflare"
    tunnel_secret = api.writes()[0].body["tunnel_secret"]
    assert tunnel_secret not in json.dumps(result)
    assert "token" not in result


def test_tunnel_options_reach_client(monkeypatch, capsys):
    api = FakeAPI(lists={TUNNELS: [live_tunnel()]})
    args = {"account": "Homelab", "name": "home", "base_url": "http://127.0.0.1:9", "timeout": 5,
            "max_retries": 1, "validate_certs": False}
    run_module(cloudflare_tunnel, args, monkeypatch, capsys, api)
    assert api.init_args == {"api_token": API_TOKEN, "base_url": "http://127.0.0.1:9", "timeout": 5.0,
                             "max_retries": 1, "validate_certs": False}


def test_tunnel_existing_unchanged(monkeypatch, capsys):
    api = FakeAPI(lists={TUNNELS: [live_tunnel()]})
    result = run_module(cloudflare_tunnel, {"account": "Homelab", "name": "home"}, monkeypatch, capsys, api)
    assert result["changed"] is False
    assert result["diff"] == {"before": {}, "after": {}}
    assert api.writes() == []


def test_tunnel_check_mode_sends_no_write(monkeypatch, capsys):
    api = FakeAPI()
    result = run_module(cloudflare_tunnel, {"account": "Homelab", "name": "home"}, monkeypatch, capsys, api,
                        check_mode=True)
    assert result["changed"] is True
    assert result["tunnel"] == {}
    assert "cname" not in result
    assert api.writes() == []


def test_tunnel_return_token_needs_no_log(monkeypatch, capsys):
    api = FakeAPI()
    result = run_module(cloudflare_tunnel, {"account": "Homelab", "name": "home", "return_token": True},
                        monkeypatch, capsys, api)
    assert result["failed"] is True
    assert "return_token=true returns a secret, so the task must set 'no_log: true'" in result["msg"]
    assert not_built(api)


def test_tunnel_return_token_with_no_log(monkeypatch, capsys):
    api = FakeAPI(lists={TUNNELS: [live_tunnel()]}, routes={("GET", TUNNEL_PATH + "/token"): TUNNEL_TOKEN})
    result = run_module(cloudflare_tunnel, {"account": "Homelab", "name": "home", "return_token": True},
                        monkeypatch, capsys, api, no_log=True)
    assert result["token"] == TUNNEL_TOKEN
    assert TUNNEL_TOKEN not in json.dumps(result["diff"])
    assert result["changed"] is False


def test_tunnel_absent_with_return_token_allowed(monkeypatch, capsys):
    api = FakeAPI(lists={TUNNELS: [live_tunnel()]})
    result = run_module(cloudflare_tunnel, {"account": "Homelab", "name": "home", "return_token": True,
                                            "state": "absent"}, monkeypatch, capsys, api)
    assert result["changed"] is True
    assert [(call.method, call.path) for call in api.writes()] == [
        ("DELETE", TUNNEL_PATH + "/connections"), ("DELETE", TUNNEL_PATH)]
    assert result["diff"]["before"]["tunnel home"]["id"] == TUNNEL_ID


def test_tunnel_config_src_mismatch_fails(monkeypatch, capsys):
    api = FakeAPI(lists={TUNNELS: [live_tunnel(config_src="local")]})
    result = run_module(cloudflare_tunnel, {"account": "Homelab", "name": "home"}, monkeypatch, capsys, api)
    assert result["failed"] is True
    assert "exists with config_src 'local', but 'cloudflare' was requested" in result["msg"]
    assert api.writes() == []


def test_tunnel_api_error_reported(monkeypatch, capsys):
    api = FakeAPI(lists={TUNNELS: http_error(403, 10000, "Authentication error")})
    result = run_module(cloudflare_tunnel, {"account": "Homelab", "name": "home"}, monkeypatch, capsys, api)
    assert result["failed"] is True
    assert result["status"] == 403
    assert result["errors"] == [{"code": 10000, "message": "Authentication error"}]
    assert "Check that the API token is valid" in result["msg"]
    assert result["api_requests"] == {"GET": 1}


def test_tunnel_token_never_in_output(monkeypatch, capsys):
    api = FakeAPI(lists={TUNNELS: [live_tunnel()]})
    result = run_module(cloudflare_tunnel, {"account": "Homelab", "name": "home"}, monkeypatch, capsys, api)
    assert API_TOKEN not in json.dumps(result)


# cloudflare_tunnel_info


def test_tunnel_info_describes_tunnels(monkeypatch, capsys):
    deleted = live_tunnel(id="deleted-id", deleted_at="2026-02-01T00:00:00Z")
    api = FakeAPI(lists={TUNNELS: [live_tunnel(), deleted]}, routes={
        ("GET", TUNNEL_PATH + "/connections"): [{"id": "conn-1", "version": "2025.8.0", "arch": "darwin_arm64",
                                                 "config_version": 4, "conns": [{}, {}, {}, {}]}],
        ("GET", CONFIG_PATH): {"version": 4, "config": {"ingress": [CATCH_ALL]}},
    })
    result = run_module(cloudflare_tunnel_info, {"account": "Homelab", "name": "home"}, monkeypatch, capsys, api)
    assert result["changed"] is False
    [info] = result["tunnels"]
    assert info["id"] == TUNNEL_ID
    assert info["connectors"][0]["connections"] == 4
    assert info["config_version"] == 4
    assert info["ingress"] == [CATCH_ALL]
    assert api.calls[0].params == {"name": "home", "is_deleted": "false"}
    assert api.writes() == []


def test_tunnel_info_include_deleted(monkeypatch, capsys):
    deleted = live_tunnel(id="deleted-id", deleted_at="2026-02-01T00:00:00Z")
    api = FakeAPI(lists={TUNNELS: [deleted]})
    result = run_module(cloudflare_tunnel_info, {"account": "Homelab", "include_deleted": True}, monkeypatch,
                        capsys, api)
    assert [item["id"] for item in result["tunnels"]] == ["deleted-id"]
    assert result["tunnels"][0]["connectors"] == []
    assert api.calls[0].params == {}


# cloudflare_tunnel_ingress

RULE = {"hostname": "chat.example.com", "service": "http://127.0.0.1:11434"}
OTHER_RULE = {"hostname": "git.example.com", "service": "http://127.0.0.1:3000"}


def test_ingress_merged_by_name(monkeypatch, capsys):
    api = FakeAPI(lists={TUNNELS: [live_tunnel()]},
                  routes={("GET", CONFIG_PATH): {"config": {"ingress": [OTHER_RULE, CATCH_ALL]}}})
    result = run_module(cloudflare_tunnel_ingress, {"account": "Homelab", "tunnel": "home", "rules": [RULE]},
                        monkeypatch, capsys, api)
    assert result["changed"] is True
    assert result["ingress"] == [OTHER_RULE, RULE, CATCH_ALL]
    assert result["changes"] == [{"change": "added", "hostname": "chat.example.com", "path": ""}]
    [write] = api.writes()
    assert write.body == {"config": {"ingress": [OTHER_RULE, RULE, CATCH_ALL]}}


def test_ingress_check_mode_sends_no_write(monkeypatch, capsys):
    api = FakeAPI(routes={("GET", TUNNEL_PATH): live_tunnel(), ("GET", CONFIG_PATH): {"config": {}}})
    result = run_module(cloudflare_tunnel_ingress, {"account": "Homelab", "tunnel": TUNNEL_ID.upper(),
                                                    "rules": [RULE]}, monkeypatch, capsys, api, check_mode=True)
    assert result["changed"] is True
    assert api.writes() == []
    assert ("GET", TUNNEL_PATH) in api.methods()


def test_ingress_invalid_rules_fail_before_request(monkeypatch, capsys):
    api = FakeAPI()
    result = run_module(cloudflare_tunnel_ingress, {"account": "Homelab", "tunnel": "home",
                                                    "rules": [{"hostname": "chat.example.com"}]},
                        monkeypatch, capsys, api)
    assert result["failed"] is True
    assert result["msg"].startswith("Invalid ingress rules for tunnel 'home': Ingress rule #1")
    assert not_built(api)


def test_ingress_deleted_tunnel_not_found(monkeypatch, capsys):
    api = FakeAPI(routes={("GET", TUNNEL_PATH): live_tunnel(deleted_at="2026-01-01T00:00:00Z")})
    result = run_module(cloudflare_tunnel_ingress, {"account": "Homelab", "tunnel": TUNNEL_ID, "rules": [RULE]},
                        monkeypatch, capsys, api)
    assert result["failed"] is True
    assert "Tunnel '%s' was not found" % TUNNEL_ID in result["msg"]


def test_ingress_local_tunnel_rejected(monkeypatch, capsys):
    api = FakeAPI(lists={TUNNELS: [live_tunnel(config_src="local")]})
    result = run_module(cloudflare_tunnel_ingress, {"account": "Homelab", "tunnel": "home", "rules": [RULE]},
                        monkeypatch, capsys, api)
    assert result["failed"] is True
    assert "has config_src local" in result["msg"]
    assert api.writes() == []


# cloudflare_dns_record


def test_dns_tunnel_by_name_creates_proxied_cname(monkeypatch, capsys):
    api = FakeAPI(lists={TUNNELS: [live_tunnel()]}, routes={("POST", RECORDS): echo(id="rec")})
    args = {"zone": "example.com", "account": "Homelab", "name": "chat", "tunnel": "home"}
    result = run_module(cloudflare_dns_record, args, monkeypatch, capsys, api)
    assert result["changed"] is True
    assert result["record"]["name"] == "chat.example.com"
    [write] = api.writes()
    assert write.body == {"name": "chat.example.com", "type": "CNAME", "content": TARGET, "proxied": True, "ttl": 1}


def test_dns_tunnel_by_id_needs_no_lookup(monkeypatch, capsys):
    api = FakeAPI(routes={("POST", RECORDS): echo(id="rec")})
    args = {"zone": "example.com", "name": "chat", "tunnel": TUNNEL_ID}
    run_module(cloudflare_dns_record, args, monkeypatch, capsys, api)
    assert [call.path for call in api.calls] == [RECORDS, RECORDS]


def test_dns_check_mode_sends_no_write(monkeypatch, capsys):
    api = FakeAPI()
    args = {"zone": "example.com", "account": "Homelab", "name": "chat", "tunnel": "home"}
    result = run_module(cloudflare_dns_record, args, monkeypatch, capsys, api, check_mode=True)
    assert result["changed"] is True
    assert result["diff"]["after"]["dns_record chat.example.com CNAME"]["content"] == "<id of tunnel home>.cfargotunnel.com"
    assert api.writes() == []


@pytest.mark.parametrize("args, message", [
    ({"name": "chat", "tunnel": "home", "proxied": False}, "proxied=false is not possible with tunnel"),
    ({"name": "chat", "tunnel": "home", "type": "A"}, "must be a CNAME, not A"),
    ({"name": "chat", "type": "A"}, "content is required for state=present unless tunnel is set."),
    ({"name": "chat", "content": "x"}, "Set type (for example CNAME or A), or tunnel for a tunnel CNAME."),
    ({"name": "chat", "type": "A", "content": "203.0.113.1", "ttl": 10}, "Invalid ttl 10"),
])
def test_dns_invalid_options_fail_before_request(monkeypatch, capsys, args, message):
    api = FakeAPI()
    result = run_module(cloudflare_dns_record, dict(zone="example.com", **args), monkeypatch, capsys, api)
    assert result["failed"] is True
    assert message in result["msg"]
    assert not_built(api)


def test_dns_record_elsewhere_fails(monkeypatch, capsys):
    other = {"id": "r1", "name": "chat.example.com", "type": "A", "content": "203.0.113.1", "proxied": False, "ttl": 1}
    api = FakeAPI(lists={RECORDS: [other]})
    args = {"zone": "example.com", "name": "chat", "type": "A", "content": "203.0.113.2"}
    result = run_module(cloudflare_dns_record, args, monkeypatch, capsys, api)
    assert result["failed"] is True
    assert "already exists and points to '203.0.113.1', not '203.0.113.2'" in result["msg"]
    assert api.writes() == []


def test_dns_absent_deletes(monkeypatch, capsys):
    current = {"id": "r1", "name": "chat.example.com", "type": "TXT", "content": "hello", "ttl": 1}
    api = FakeAPI(lists={RECORDS: [current]})
    args = {"zone": "example.com", "name": "chat", "type": "TXT", "state": "absent"}
    result = run_module(cloudflare_dns_record, args, monkeypatch, capsys, api)
    assert result["changed"] is True
    assert [(call.method, call.path) for call in api.writes()] == [("DELETE", RECORDS + "/r1")]


# cloudflare_access_service_token


def test_token_create_needs_no_log(monkeypatch, capsys):
    api = FakeAPI(routes={("POST", TOKENS): created_service_token})
    result = run_module(cloudflare_access_service_token, {"account": "Homelab", "name": "azure-backend"},
                        monkeypatch, capsys, api)
    assert result["failed"] is True
    assert "Creating service token 'azure-backend' returns a secret" in result["msg"]
    assert api.writes() == []
    assert CLIENT_SECRET not in json.dumps(result)


def test_token_create_with_no_log_returns_secret(monkeypatch, capsys):
    api = FakeAPI(routes={("POST", TOKENS): created_service_token})
    result = run_module(cloudflare_access_service_token, {"account": "Homelab", "name": "azure-backend",
                                                          "duration": "8760h"}, monkeypatch, capsys, api, no_log=True)
    assert result["changed"] is True
    assert result["client_secret"] == CLIENT_SECRET
    assert result["service_token"]["client_id"] == "cid.access"
    assert CLIENT_SECRET not in json.dumps(result["diff"])
    assert CLIENT_SECRET not in json.dumps(result["service_token"])


def test_token_existing_needs_no_no_log(monkeypatch, capsys):
    api = FakeAPI(lists={TOKENS: [service_token(duration="8760h0m0s")]})
    result = run_module(cloudflare_access_service_token, {"account": "Homelab", "name": "azure-backend",
                                                          "duration": "8760h"}, monkeypatch, capsys, api)
    assert result["changed"] is False
    assert "client_secret" not in result
    assert api.writes() == []


def test_token_check_mode_create_needs_no_no_log(monkeypatch, capsys):
    api = FakeAPI()
    result = run_module(cloudflare_access_service_token, {"account": "Homelab", "name": "azure-backend"},
                        monkeypatch, capsys, api, check_mode=True)
    assert result["changed"] is True
    assert "client_secret" not in result
    assert api.writes() == []


def test_token_lost_create_warns(monkeypatch, capsys):
    api = FakeAPI(lists={TOKENS: Sequence([], [service_token()])}, routes={("POST", TOKENS): http_error(502)})
    result = run_module(cloudflare_access_service_token, {"account": "Homelab", "name": "azure-backend"},
                        monkeypatch, capsys, api, no_log=True)
    assert result["changed"] is True
    assert "client_secret" not in result
    assert any("its client secret is unknown" in text for text in warning_texts(result))


def test_token_absent(monkeypatch, capsys):
    api = FakeAPI(lists={TOKENS: [service_token()]})
    result = run_module(cloudflare_access_service_token, {"account": "Homelab", "name": "azure-backend",
                                                          "state": "absent"}, monkeypatch, capsys, api)
    assert result["changed"] is True
    assert [(call.method, call.path) for call in api.writes()] == [("DELETE", "%s/%s" % (TOKENS, TOKEN_ID))]
    assert [call.method for call in api.calls].count("GET") == 1


NOW = datetime.datetime(2026, 12, 4, 12, 0, 0, tzinfo=datetime.timezone.utc)
ROTATE_PATH = "%s/%s/rotate" % (TOKENS, TOKEN_ID)


@pytest.fixture
def fixed_now(monkeypatch):
    monkeypatch.setattr(access, "utc_now", lambda: NOW)


def token_args(**options):
    return dict({"account": "Homelab", "name": "azure-backend"}, **options)


def test_token_rotate_needs_no_log(monkeypatch, capsys):
    api = FakeAPI(lists={TOKENS: [service_token()]})
    result = run_module(cloudflare_access_service_token, token_args(rotate=True), monkeypatch, capsys, api)
    assert result["failed"] is True
    assert "Rotating service token 'azure-backend' returns a secret" in result["msg"]
    assert not_built(api)


def test_token_rotate_returns_new_secret(monkeypatch, capsys, fixed_now):
    api = FakeAPI(lists={TOKENS: [service_token()]},
                  routes={("POST", ROTATE_PATH): dict(service_token(), client_secret=CLIENT_SECRET)})
    result = run_module(cloudflare_access_service_token, token_args(rotate=True, grace_period="2h"), monkeypatch,
                        capsys, api, no_log=True)
    assert result["changed"] is True
    assert result["client_secret"] == CLIENT_SECRET
    assert CLIENT_SECRET not in json.dumps(result["diff"])
    assert CLIENT_SECRET not in json.dumps(result["service_token"])
    [write] = api.writes()
    assert write.body == {"previous_client_secret_expires_at": "2026-12-04T14:00:00Z"}


def test_token_rotate_check_mode_sends_no_write(monkeypatch, capsys, fixed_now):
    api = FakeAPI(lists={TOKENS: [service_token()]})
    result = run_module(cloudflare_access_service_token, token_args(rotate=True), monkeypatch, capsys, api,
                        check_mode=True)
    assert result["changed"] is True
    assert "client_secret" not in result
    assert api.writes() == []


def test_token_refresh_posts_refresh(monkeypatch, capsys, fixed_now):
    refresh_path = "%s/%s/refresh" % (TOKENS, TOKEN_ID)
    api = FakeAPI(lists={TOKENS: [service_token()]}, routes={("POST", refresh_path): service_token()})
    result = run_module(cloudflare_access_service_token, token_args(refresh=True), monkeypatch, capsys, api)
    assert result["changed"] is True
    assert "client_secret" not in result
    assert [(call.method, call.path) for call in api.writes()] == [("POST", refresh_path)]


def test_token_new_is_not_rotated(monkeypatch, capsys, fixed_now):
    api = FakeAPI(routes={("POST", TOKENS): created_service_token})
    result = run_module(cloudflare_access_service_token, token_args(rotate=True), monkeypatch, capsys, api,
                        no_log=True)
    assert result["client_secret"] == CLIENT_SECRET
    assert [call.path for call in api.writes()] == [TOKENS]
    assert "Service token 'azure-backend' is new, so it was not rotated or refreshed." in warning_texts(result)


@pytest.mark.parametrize("args, message", [
    ({"grace_period": "a day"}, "Invalid grace_period:"),
    ({"grace_period": "forever"}, "grace_period cannot be forever"),
    ({"state": "absent", "refresh": True}, "rotate, refresh and expire_previous_secret need state=present."),
])
def test_token_invalid_options_fail_before_request(monkeypatch, capsys, args, message):
    api = FakeAPI()
    result = run_module(cloudflare_access_service_token, token_args(**args), monkeypatch, capsys, api)
    assert result["failed"] is True
    assert message in result["msg"]
    assert not_built(api)


def test_token_expiry_warns(monkeypatch, capsys, fixed_now):
    expiring = dict(service_token(), expires_at="2026-12-14T12:00:00Z")
    api = FakeAPI(lists={TOKENS: [expiring]})
    result = run_module(cloudflare_access_service_token, token_args(), monkeypatch, capsys, api)
    assert result["changed"] is False
    assert result["service_token"]["days_left"] == 10
    assert any("expires on 2026-12-14T12:00:00Z, in 10 days" in text for text in warning_texts(result))


def test_token_expiry_fails_when_asked(monkeypatch, capsys, fixed_now):
    expired = dict(service_token(), expires_at="2026-12-01T12:00:00Z")
    api = FakeAPI(lists={TOKENS: [expired]})
    result = run_module(cloudflare_access_service_token, token_args(expiry_action="fail"), monkeypatch, capsys, api)
    assert result["failed"] is True
    assert "Service token 'azure-backend' expired on 2026-12-01T12:00:00Z" in result["msg"]
    assert api.writes() == []


def test_token_far_expiry_no_warning(monkeypatch, capsys, fixed_now):
    api = FakeAPI(lists={TOKENS: [service_token()]})
    result = run_module(cloudflare_access_service_token, token_args(), monkeypatch, capsys, api)
    assert warning_texts(result) == []


def test_token_info_marks_expiring(monkeypatch, capsys, fixed_now):
    tokens = [dict(service_token(), expires_at="2026-12-14T12:00:00Z", client_secret=CLIENT_SECRET),
              dict(service_token(), id="other", name="ci"),
              dict(service_token(), id="forever", name="azure-backend", expires_at=None)]
    api = FakeAPI(lists={TOKENS: tokens})
    result = run_module(cloudflare_access_service_token_info, {"account": "Homelab", "name": "azure-backend"},
                        monkeypatch, capsys, api)
    assert result["changed"] is False
    assert [(item["id"], item["days_left"], item["expiring"]) for item in result["service_tokens"]] == [
        (TOKEN_ID, 10, True), ("forever", None, False)]
    assert [item["id"] for item in result["expiring"]] == [TOKEN_ID]
    assert CLIENT_SECRET not in json.dumps(result)
    assert api.calls[0].params == {"name": "azure-backend"}
    assert api.writes() == []


# cloudflare_access_policy


def test_policy_allow_with_tokens_fails_before_request(monkeypatch, capsys):
    api = FakeAPI()
    args = {"account": "Homelab", "name": "p", "decision": "allow", "service_tokens": ["azure-backend"]}
    result = run_module(cloudflare_access_policy, args, monkeypatch, capsys, api)
    assert result["failed"] is True
    assert "includes a service token with decision 'allow'" in result["msg"]
    assert not_built(api)


@pytest.mark.parametrize("args, message", [
    ({"include": [{"everyone": {}}]}, "decision is required for policy 'p'"),
    ({"decision": "allow"}, "Policy 'p' needs at least one include rule"),
])
def test_policy_incomplete_fails_before_request(monkeypatch, capsys, args, message):
    api = FakeAPI()
    result = run_module(cloudflare_access_policy, dict(account="Homelab", name="p", **args), monkeypatch, capsys, api)
    assert result["failed"] is True
    assert message in result["msg"]
    assert not_built(api)


def test_policy_token_names_resolved(monkeypatch, capsys):
    api = FakeAPI(lists={TOKENS: [service_token()]}, routes={("POST", POLICIES): echo(id=POLICY_ID)})
    args = {"account": "Homelab", "name": "p", "service_tokens": ["azure-backend"], "any_valid_service_token": True}
    result = run_module(cloudflare_access_policy, args, monkeypatch, capsys, api)
    assert result["changed"] is True
    assert result["policy"]["decision"] == "non_identity"
    [write] = api.writes()
    assert write.body["include"] == [{"service_token": {"token_id": TOKEN_ID}}, {"any_valid_service_token": {}}]


def test_policy_missing_token_fails(monkeypatch, capsys):
    api = FakeAPI()
    result = run_module(cloudflare_access_policy, {"account": "Homelab", "name": "p", "service_tokens": ["ci"]},
                        monkeypatch, capsys, api)
    assert result["failed"] is True
    assert "Service token 'ci' was not found in the account" in result["msg"]
    assert api.writes() == []


def test_policy_check_mode_uses_placeholder(monkeypatch, capsys):
    api = FakeAPI()
    result = run_module(cloudflare_access_policy, {"account": "Homelab", "name": "p", "service_tokens": ["ci"]},
                        monkeypatch, capsys, api, check_mode=True)
    assert result["changed"] is True
    assert result["diff"]["after"]["access_policy p"]["include"] == [
        {"service_token": {"token_id": "<id of service token ci>"}}]
    assert api.writes() == []


def test_policy_rule_order_unchanged(monkeypatch, capsys):
    include = [{"email": {"email": "a@example.com"}}, {"email": {"email": "b@example.com"}}]
    current = {"id": POLICY_ID, "name": "p", "decision": "allow", "include": include, "exclude": [], "require": [],
               "session_duration": "24h"}
    api = FakeAPI(lists={POLICIES: [current]})
    args = {"account": "Homelab", "name": "p", "decision": "allow", "include": list(reversed(include))}
    result = run_module(cloudflare_access_policy, args, monkeypatch, capsys, api)
    assert result["changed"] is False
    assert api.writes() == []


# cloudflare_access_application


def app_policies():
    return [{"id": POLICY_ID, "name": "svc", "decision": "non_identity"},
            {"id": "8f7e6d5c-4b3a-4f2e-8d9c-8b7a6f5e4d3c", "name": "staff", "decision": "allow"}]


def test_app_created_with_service_auth_redirect(monkeypatch, capsys):
    api = FakeAPI(lists={POLICIES: app_policies()}, routes={("POST", APPS): echo(id=APP_ID, aud="aud")})
    args = {"account": "Homelab", "domain": "Chat.Example.com", "policies": [POLICY_ID.upper()]}
    result = run_module(cloudflare_access_application, args, monkeypatch, capsys, api)
    assert result["changed"] is True
    [write] = api.writes()
    assert write.body["domain"] == "chat.example.com"
    assert write.body["policies"] == [{"id": POLICY_ID, "precedence": 1}]
    assert write.body["service_auth_401_redirect"] is True


def test_app_with_allow_policy_keeps_redirect_unset(monkeypatch, capsys):
    api = FakeAPI(lists={POLICIES: app_policies()}, routes={("POST", APPS): echo(id=APP_ID, aud="aud")})
    args = {"account": "Homelab", "domain": "chat.example.com", "policies": ["svc", "staff"]}
    run_module(cloudflare_access_application, args, monkeypatch, capsys, api)
    [write] = api.writes()
    assert "service_auth_401_redirect" not in write.body
    assert [link["precedence"] for link in write.body["policies"]] == [1, 2]


def test_app_missing_policy_fails(monkeypatch, capsys):
    api = FakeAPI()
    args = {"account": "Homelab", "domain": "chat.example.com", "policies": ["svc"]}
    result = run_module(cloudflare_access_application, args, monkeypatch, capsys, api)
    assert result["failed"] is True
    assert "Access policy 'svc' was not found" in result["msg"]
    assert api.writes() == []


def test_app_check_mode_sends_no_write(monkeypatch, capsys):
    api = FakeAPI()
    args = {"account": "Homelab", "domain": "chat.example.com", "policies": ["svc"]}
    result = run_module(cloudflare_access_application, args, monkeypatch, capsys, api, check_mode=True)
    assert result["changed"] is True
    assert api.writes() == []


def test_app_domain_with_scheme_fails_before_request(monkeypatch, capsys):
    api = FakeAPI()
    result = run_module(cloudflare_access_application, {"account": "Homelab", "domain": "https://chat.example.com"},
                        monkeypatch, capsys, api)
    assert result["failed"] is True
    assert "Invalid domain 'https://chat.example.com'" in result["msg"]
    assert not_built(api)


# cloudflare_edge


def edge_args():
    return {
        "account": "Homelab",
        "zone": "example.com",
        "service_tokens": [{"name": "azure-backend", "duration": "8760h"}],
        "tunnels": [{"name": "home", "services": [{"hostname": "chat.example.com", "origin": "ollama",
                                                  "access": {"service_tokens": ["azure-backend"]}}]}],
    }


def edge_api():
    return FakeAPI(routes={
        ("POST", TOKENS): created_service_token,
        ("POST", TUNNELS): created_tunnel,
        ("PUT", CONFIG_PATH): lambda body: body,
        ("POST", RECORDS): echo(id="rec"),
        ("POST", POLICIES): echo(id=POLICY_ID),
        ("POST", APPS): echo(id=APP_ID, aud="aud"),
    })


def test_edge_invalid_plan_fails_before_request(monkeypatch, capsys):
    api = FakeAPI()
    args = edge_args()
    args["service_tokens"].append({"name": "azure-backend", "duration": "1y"})
    args["tunnels"][0]["services"].append({"hostname": "chat.example.org"})
    result = run_module(cloudflare_edge, args, monkeypatch, capsys, api)
    assert result["failed"] is True
    assert result["msg"].startswith("The edge description is invalid, so nothing was sent to Cloudflare: ")
    assert len(result["errors"]) == 5
    assert not_built(api)


def test_edge_check_mode_sends_no_write(monkeypatch, capsys):
    api = edge_api()
    result = run_module(cloudflare_edge, edge_args(), monkeypatch, capsys, api, check_mode=True)
    assert result["changed"] is True
    assert [item["action"] for item in result["objects"]] == ["create"] * 6
    assert "service_token_secrets" not in result
    assert api.writes() == []


def test_edge_token_create_needs_no_log(monkeypatch, capsys):
    api = edge_api()
    result = run_module(cloudflare_edge, edge_args(), monkeypatch, capsys, api)
    assert result["failed"] is True
    assert "Creating service tokens returns a secret" in result["msg"]
    assert api.writes() == []


def test_edge_creates_and_returns_secret_with_no_log(monkeypatch, capsys):
    api = edge_api()
    result = run_module(cloudflare_edge, edge_args(), monkeypatch, capsys, api, no_log=True)
    assert result["changed"] is True
    assert result["service_token_secrets"] == {"azure-backend": {"client_secret": CLIENT_SECRET,
                                                                 "client_id": "cid.access"}}
    assert result["tunnels"]["home"]["cname"] == TARGET
    assert result["account_id"] == ACCOUNT_ID
    assert [call.method for call in api.writes()] == ["POST", "POST", "PUT", "POST", "POST", "POST"]
    output = json.dumps({key: value for key, value in result.items() if key != "service_token_secrets"})
    assert CLIENT_SECRET not in output
    tunnel_secret = next(call.body["tunnel_secret"] for call in api.writes() if call.path == TUNNELS)
    assert tunnel_secret not in json.dumps(result)


def test_edge_without_token_creation_needs_no_no_log(monkeypatch, capsys):
    api = edge_api()
    api.lists[TOKENS] = [service_token()]
    result = run_module(cloudflare_edge, edge_args(), monkeypatch, capsys, api)
    assert result["changed"] is True
    assert "service_token_secrets" not in result
    assert [call.path for call in api.writes()][0] == TUNNELS


def test_edge_failed_lookup_stops_before_write(monkeypatch, capsys):
    api = edge_api()
    api.lists[RECORDS] = http_error(403, 10000, "Authentication error")
    result = run_module(cloudflare_edge, edge_args(), monkeypatch, capsys, api, no_log=True)
    assert result["failed"] is True
    assert result["status"] == 403
    assert api.writes() == []


# A module run through the real client, with HTTP responses from an httpx.MockTransport


def test_module_reports_retries_through_real_client(monkeypatch, capsys):
    responses = [
        httpx.Response(429, headers={"Retry-After": "2"}, json={"success": False, "errors": [], "result": None}),
        httpx.Response(200, json={"success": True, "errors": [], "result": [{"id": ACCOUNT_ID, "name": ACCOUNT_NAME}],
                                  "result_info": {"total_pages": 1}}),
        httpx.Response(200, json={"success": True, "errors": [], "result": [], "result_info": {"total_pages": 1}}),
    ]
    requests = []

    def respond(request):
        requests.append(request)
        return responses.pop(0)

    original_client = cloudflare.DefaultHttpxClient
    sleeps = []
    monkeypatch.setattr(cloudflare, "DefaultHttpxClient",
                        lambda **options: original_client(transport=httpx.MockTransport(respond), **options))
    monkeypatch.setattr(cloudflare_api, "CloudflareAPI", functools.partial(cloudflare_api.CloudflareAPI,
                                                                           sleep=sleeps.append))
    monkeypatch.delenv("CLOUDFLARE_EMAIL", raising=False)
    monkeypatch.delenv("CLOUDFLARE_API_KEY", raising=False)
    args = {"api_token": API_TOKEN, "account": ACCOUNT_NAME, "base_url": "https://api.cloudflare.test/client/v4"}
    with patch_module_args(args):
        with pytest.raises(SystemExit):
            cloudflare_tunnel_info.main()
    result = json.loads(capsys.readouterr().out)
    assert result["tunnels"] == []
    assert result["api_requests"] == {"GET": 3}
    assert result["api_retries"] == 1
    assert sleeps == [2.0]
    assert warning_texts(result) == ["1 Cloudflare API request(s) were retried (HTTP 429: 1)."]
    assert [request.url.path for request in requests] == [
        "/client/v4/accounts", "/client/v4/accounts", "/client/v4/%s" % TUNNELS]
    assert all(request.headers["authorization"] == "Bearer " + API_TOKEN for request in requests)
    assert API_TOKEN not in json.dumps(result)
