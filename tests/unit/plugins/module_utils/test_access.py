# Copyright (c) homelab.edge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests of the Access managers (service tokens, reusable policies, applications) with a FakeAPI."""

import datetime
import json

import pytest

from tests.unit.plugins.modules.utils import ACCOUNT_ID, APPS, POLICIES, TOKENS, FakeAPI, Sequence, http_error

from ansible_collections.homelab.edge.plugins.module_utils import access
from ansible_collections.homelab.edge.plugins.module_utils.access import (
    ApplicationManager,
    PolicyManager,
    ServiceTokenManager,
    check_policy_decision,
    duration_seconds,
    same_duration,
)
from ansible_collections.homelab.edge.plugins.module_utils.cloudflare_api import CloudflareError

CLIENT_SECRET = "b9c1d0e7f6a5b4c3d2e1f0a9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d4e3f2a1b0c9"
TOKEN_ID = "3d2c1b0a-9f8e-4d7c-8b6a-5f4e3d2c1b0a"
POLICY_ID = "7e6d5c4b-3a2f-4e1d-9c8b-7a6f5e4d3c2b"
OTHER_POLICY_ID = "8f7e6d5c-4b3a-4f2e-8d9c-8b7a6f5e4d3c"
APP_ID = "9a8b7c6d-5e4f-4a3b-9c2d-1e0f9a8b7c6d"


def token(name="azure-backend", duration="8760h", token_id=TOKEN_ID):
    return {"id": token_id, "name": name, "client_id": "0123abcd.access", "duration": duration,
            "expires_at": "2027-12-04T00:00:00Z", "created_at": "2026-12-04T00:00:00Z"}


def created_token(body):
    return dict(token(body["name"], body.get("duration", "8760h")), client_secret=CLIENT_SECRET)


def policy(name="chat service auth", decision="non_identity", include=None, policy_id=POLICY_ID, **extra):
    item = {"id": policy_id, "name": name, "decision": decision,
            "include": include if include is not None else [{"service_token": {"token_id": TOKEN_ID}}],
            "exclude": [], "require": [], "session_duration": "24h"}
    item.update(extra)
    return item


def application(policies=None, **extra):
    item = {"id": APP_ID, "aud": "aud-tag", "uid": APP_ID, "name": "chat.example.com", "domain": "chat.example.com",
            "type": "self_hosted", "session_duration": "24h", "service_auth_401_redirect": True,
            "app_launcher_visible": True, "created_at": "2026-01-01T00:00:00Z", "updated_at": "2026-01-01T00:00:00Z",
            "policies": policies if policies is not None else [{"id": POLICY_ID, "name": "p", "precedence": 1}]}
    item.update(extra)
    return item


def echo(extra):
    return lambda body: dict(body, **extra)


# Durations


@pytest.mark.parametrize("text, seconds", [
    ("8760h", 31536000.0), ("8760h0m0s", 31536000.0), ("1h30m", 5400.0), ("90m", 5400.0), ("1.5h", 5400.0),
    ("30s", 30.0), ("500ms", 0.5), ("2us", 2e-6), ("2µs", 2e-6),
])
def test_duration_seconds(text, seconds):
    assert duration_seconds(text) == pytest.approx(seconds)


def test_duration_forever_is_none():
    assert duration_seconds("forever") is None


@pytest.mark.parametrize("text", ["", "1y", "8760", "h", "1h 30m", "-1h", "1d"])
def test_duration_invalid(text):
    with pytest.raises(ValueError):
        duration_seconds(text)


def test_same_duration_compares_lengths():
    assert same_duration("8760h", "8760h0m0s")
    assert same_duration("24h", "1440m")
    assert not same_duration("24h", "12h")
    assert same_duration("forever", "forever")
    assert not same_duration("forever", "8760h")
    assert not same_duration("bogus", "8760h")


# Service tokens


def test_token_create_returns_secret_only_in_secrets():
    api = FakeAPI(routes={("POST", TOKENS): created_token})
    outcome = ServiceTokenManager(api, ACCOUNT_ID).ensure_present("azure-backend", "8760h")
    assert outcome.action == "create"
    assert outcome.secrets == {"client_secret": CLIENT_SECRET}
    assert CLIENT_SECRET not in json.dumps([outcome.result, outcome.after, outcome.before])
    [write] = api.writes()
    assert (write.method, write.path, write.retry_writes) == ("POST", TOKENS, False)
    assert write.body == {"name": "azure-backend", "duration": "8760h"}


def test_token_create_without_duration_uses_default():
    api = FakeAPI(routes={("POST", TOKENS): created_token})
    outcome = ServiceTokenManager(api, ACCOUNT_ID).ensure_present("ci")
    assert api.writes()[0].body == {"name": "ci"}
    assert outcome.result["duration"] == "8760h"


def test_token_unchanged_has_no_secret():
    api = FakeAPI(lists={TOKENS: [token(duration="8760h0m0s")]})
    outcome = ServiceTokenManager(api, ACCOUNT_ID).ensure_present("azure-backend", "8760h")
    assert outcome.action == "none"
    assert outcome.secrets == {}
    assert api.writes() == []


def test_token_duration_updated():
    api = FakeAPI(lists={TOKENS: [token()]}, routes={("PUT", "%s/%s" % (TOKENS, TOKEN_ID)): echo({"id": TOKEN_ID})})
    outcome = ServiceTokenManager(api, ACCOUNT_ID).ensure_present("azure-backend", "720h")
    assert outcome.action == "update"
    assert outcome.before["duration"] == "8760h"
    assert outcome.after["duration"] == "720h"
    assert outcome.secrets == {}
    assert api.writes()[0].body == {"name": "azure-backend", "duration": "720h"}


def test_token_in_check_mode_sends_no_write():
    api = FakeAPI(lists={TOKENS: [token(name="other")]})
    manager = ServiceTokenManager(api, ACCOUNT_ID, check_mode=True)
    assert manager.ensure_present("azure-backend", "8760h").action == "create"
    api.lists[TOKENS] = [token()]
    assert manager.ensure_present("azure-backend", "720h").action == "update"
    assert manager.ensure_absent("azure-backend").action == "delete"
    assert api.writes() == []


def test_token_duplicate_names_rejected():
    api = FakeAPI(lists={TOKENS: [token(), token(token_id="second-id")]})
    with pytest.raises(CloudflareError) as error:
        ServiceTokenManager(api, ACCOUNT_ID).ensure_present("azure-backend")
    message = str(error.value)
    assert "2 service tokens are named 'azure-backend'" in message
    assert TOKEN_ID in message
    assert "second-id" in message
    assert api.writes() == []


def test_token_invalid_duration_rejected_before_write():
    api = FakeAPI()
    with pytest.raises(CloudflareError) as error:
        ServiceTokenManager(api, ACCOUNT_ID).ensure_present("ci", "1 year")
    assert "Invalid duration for service token 'ci'" in str(error.value)
    assert api.writes() == []


def test_token_lost_create_warns_secret_unknown():
    api = FakeAPI(lists={TOKENS: Sequence([], [token()])}, routes={("POST", TOKENS): http_error(502)})
    outcome = ServiceTokenManager(api, ACCOUNT_ID).ensure_present("azure-backend")
    assert outcome.action == "create"
    assert outcome.secrets == {}
    assert "its client secret is unknown" in outcome.notes[0]


def test_token_given_current_skips_lookup():
    api = FakeAPI()
    outcome = ServiceTokenManager(api, ACCOUNT_ID).ensure_present("azure-backend", current=token())
    assert outcome.action == "none"
    assert api.calls == []


def test_token_deleted():
    api = FakeAPI(lists={TOKENS: [token()]})
    outcome = ServiceTokenManager(api, ACCOUNT_ID).ensure_absent("azure-backend")
    assert outcome.action == "delete"
    assert [(call.method, call.path) for call in api.writes()] == [("DELETE", "%s/%s" % (TOKENS, TOKEN_ID))]


def test_token_absent_is_noop():
    api = FakeAPI()
    assert ServiceTokenManager(api, ACCOUNT_ID).ensure_absent("azure-backend").action == "none"
    assert api.writes() == []


# Policy decision


@pytest.mark.parametrize("rule", [{"service_token": {"token_id": TOKEN_ID}}, {"any_valid_service_token": {}}])
@pytest.mark.parametrize("decision", ["allow", "deny", "bypass"])
def test_service_token_needs_non_identity(decision, rule):
    with pytest.raises(CloudflareError) as error:
        check_policy_decision("p", decision, [rule])
    assert "Access policy 'p' includes a service token with decision '%s'" % decision in str(error.value)
    assert "Set decision to non_identity" in str(error.value)


def test_unknown_decision_rejected():
    with pytest.raises(CloudflareError) as error:
        check_policy_decision("p", "permit", [])
    assert "Invalid decision 'permit' for Access policy 'p'" in str(error.value)


def test_allow_with_email_rule_accepted():
    check_policy_decision("p", "allow", [{"email": {"email": "me@example.com"}}])


def test_allow_with_token_rejected_before_request():
    api = FakeAPI()
    with pytest.raises(CloudflareError):
        PolicyManager(api, ACCOUNT_ID).ensure_present("p", "allow", [{"service_token": {"token_id": TOKEN_ID}}])
    assert api.calls == []


# Policies


def test_policy_created():
    api = FakeAPI(routes={("POST", POLICIES): echo({"id": POLICY_ID})})
    include = [{"service_token": {"token_id": TOKEN_ID}}]
    outcome = PolicyManager(api, ACCOUNT_ID).ensure_present("p", "non_identity", include, session_duration="12h")
    assert outcome.action == "create"
    assert outcome.after["id"] == POLICY_ID
    [write] = api.writes()
    assert write.retry_writes is False
    assert write.body == {"name": "p", "decision": "non_identity", "include": include, "exclude": [], "require": [],
                          "session_duration": "12h"}


def test_policy_rule_order_ignored():
    include = [{"service_token": {"token_id": TOKEN_ID}}, {"any_valid_service_token": {}}]
    api = FakeAPI(lists={POLICIES: [policy(name="p", include=include)]})
    outcome = PolicyManager(api, ACCOUNT_ID).ensure_present("p", "non_identity", list(reversed(include)))
    assert outcome.action == "none"
    assert api.writes() == []


def test_policy_session_duration_compared_by_length():
    api = FakeAPI(lists={POLICIES: [policy(name="p")]})
    outcome = PolicyManager(api, ACCOUNT_ID).ensure_present(
        "p", "non_identity", [{"service_token": {"token_id": TOKEN_ID}}], session_duration="1440m")
    assert outcome.action == "none"


def test_policy_changed_rules_updated():
    api = FakeAPI(lists={POLICIES: [policy(name="p")]},
                  routes={("PUT", "%s/%s" % (POLICIES, POLICY_ID)): echo({"id": POLICY_ID})})
    include = [{"any_valid_service_token": {}}]
    outcome = PolicyManager(api, ACCOUNT_ID).ensure_present("p", "non_identity", include)
    assert outcome.action == "update"
    [write] = api.writes()
    assert write.method == "PUT"
    assert write.body == {"name": "p", "decision": "non_identity", "include": include, "exclude": [], "require": [],
                          "session_duration": "24h"}


def test_policy_in_check_mode_sends_no_write():
    api = FakeAPI(lists={POLICIES: [policy(name="p")]})
    manager = PolicyManager(api, ACCOUNT_ID, check_mode=True)
    assert manager.ensure_present("p", "non_identity", [{"any_valid_service_token": {}}]).action == "update"
    assert manager.ensure_present("q", "non_identity", [{"any_valid_service_token": {}}]).action == "create"
    assert manager.ensure_absent("p").action == "delete"
    assert api.writes() == []


def test_policy_list_read_once():
    api = FakeAPI(lists={POLICIES: [policy(name="p"), policy(name="q", policy_id=OTHER_POLICY_ID)]})
    manager = PolicyManager(api, ACCOUNT_ID)
    assert manager.find("p")["id"] == POLICY_ID
    assert manager.find("q")["id"] == OTHER_POLICY_ID
    assert len(api.calls) == 1


def test_policy_duplicates_rejected():
    api = FakeAPI(lists={POLICIES: [policy(name="p"), policy(name="p", policy_id=OTHER_POLICY_ID)]})
    with pytest.raises(CloudflareError) as error:
        PolicyManager(api, ACCOUNT_ID).find("p")
    assert "2 reusable Access policies are named 'p'" in str(error.value)


def test_policy_deleted():
    api = FakeAPI(lists={POLICIES: [policy(name="p")]})
    manager = PolicyManager(api, ACCOUNT_ID)
    assert manager.ensure_absent("p").action == "delete"
    assert manager.find("p") is None
    assert [(call.method, call.path) for call in api.writes()] == [("DELETE", "%s/%s" % (POLICIES, POLICY_ID))]


# Applications

LINKS = [{"id": POLICY_ID, "name": "p", "precedence": 1}]


def test_app_created_with_policy_links():
    api = FakeAPI(routes={("POST", APPS): echo({"id": APP_ID, "aud": "aud-tag"})})
    outcome = ApplicationManager(api, ACCOUNT_ID).ensure_present("chat.example.com", policies=LINKS,
                                                                 service_auth_401_redirect=True)
    assert outcome.action == "create"
    assert api.calls[0].params == {"domain": "chat.example.com", "exact": "true"}
    [write] = api.writes()
    assert write.retry_writes is False
    assert write.body == {"name": "chat.example.com", "domain": "chat.example.com", "type": "self_hosted",
                          "policies": [{"id": POLICY_ID, "precedence": 1}], "service_auth_401_redirect": True}


def test_app_unchanged_not_written():
    api = FakeAPI(lists={APPS: [application()]})
    outcome = ApplicationManager(api, ACCOUNT_ID).ensure_present("Chat.example.com".lower(), policies=LINKS,
                                                                 service_auth_401_redirect=True)
    assert outcome.action == "none"
    assert api.writes() == []


def test_app_update_keeps_unmanaged_fields():
    current = application(allowed_idps=["idp-1"], cors_headers={"allow_all_origins": True},
                          custom_deny_message="Go away", tags=["lab"])
    api = FakeAPI(lists={APPS: [current]}, routes={("PUT", "%s/%s" % (APPS, APP_ID)): echo({"id": APP_ID})})
    links = LINKS + [{"id": OTHER_POLICY_ID, "name": "q", "precedence": 2}]
    outcome = ApplicationManager(api, ACCOUNT_ID).ensure_present("chat.example.com", policies=links)
    assert outcome.action == "update"
    [write] = api.writes()
    assert write.method == "PUT"
    assert write.body["allowed_idps"] == ["idp-1"]
    assert write.body["cors_headers"] == {"allow_all_origins": True}
    assert write.body["custom_deny_message"] == "Go away"
    assert write.body["tags"] == ["lab"]
    assert write.body["policies"] == [{"id": POLICY_ID, "precedence": 1}, {"id": OTHER_POLICY_ID, "precedence": 2}]
    for field in ("id", "aud", "uid", "created_at", "updated_at"):
        assert field not in write.body


def test_app_precedence_change_updates():
    current = application(policies=[{"id": POLICY_ID, "precedence": 2}, {"id": OTHER_POLICY_ID, "precedence": 1}])
    api = FakeAPI(lists={APPS: [current]})
    links = [{"id": POLICY_ID, "precedence": 1}, {"id": OTHER_POLICY_ID, "precedence": 2}]
    outcome = ApplicationManager(api, ACCOUNT_ID, check_mode=True).ensure_present("chat.example.com", policies=links)
    assert outcome.action == "update"
    assert api.writes() == []


def test_app_in_check_mode_sends_no_write():
    api = FakeAPI()
    manager = ApplicationManager(api, ACCOUNT_ID, check_mode=True)
    outcome = manager.ensure_present("chat.example.com", policies=LINKS, session_duration="12h")
    assert outcome.action == "create"
    assert outcome.after["session_duration"] == "12h"
    api.lists[APPS] = [application()]
    assert manager.ensure_absent("chat.example.com").action == "delete"
    assert api.writes() == []


def test_app_duplicates_rejected():
    api = FakeAPI(lists={APPS: [application(), application(id="second-app")]})
    with pytest.raises(CloudflareError) as error:
        ApplicationManager(api, ACCOUNT_ID).find("chat.example.com")
    assert "2 Access applications protect 'chat.example.com'" in str(error.value)


def test_app_deleted():
    api = FakeAPI(lists={APPS: [application()]})
    assert ApplicationManager(api, ACCOUNT_ID).ensure_absent("chat.example.com").action == "delete"
    assert [(call.method, call.path) for call in api.writes()] == [("DELETE", "%s/%s" % (APPS, APP_ID))]


# Rotation, refresh and expiry of service tokens

NOW = datetime.datetime(2026, 12, 4, 12, 0, 0, tzinfo=datetime.timezone.utc)
ROTATE_PATH = "%s/%s/rotate" % (TOKENS, TOKEN_ID)
REFRESH_PATH = "%s/%s/refresh" % (TOKENS, TOKEN_ID)


@pytest.fixture
def fixed_now(monkeypatch):
    monkeypatch.setattr(access, "utc_now", lambda: NOW)


def test_rotate_sends_grace_end_and_returns_secret(fixed_now):
    api = FakeAPI(routes={("POST", ROTATE_PATH): dict(token(), client_secret=CLIENT_SECRET)})
    outcome = ServiceTokenManager(api, ACCOUNT_ID).rotate(token(), 24 * 3600)
    assert outcome.action == "rotate"
    assert outcome.secrets == {"client_secret": CLIENT_SECRET}
    assert CLIENT_SECRET not in json.dumps([outcome.before, outcome.after, outcome.result])
    [write] = api.writes()
    assert (write.method, write.path, write.retry_writes) == ("POST", ROTATE_PATH, False)
    assert write.body == {"previous_client_secret_expires_at": "2026-12-05T12:00:00Z"}
    assert outcome.after["previous_client_secret_expires_at"] == "2026-12-05T12:00:00Z"


def test_rotate_without_grace_revokes_at_once(fixed_now):
    api = FakeAPI(routes={("POST", ROTATE_PATH): dict(token(), client_secret=CLIENT_SECRET)})
    ServiceTokenManager(api, ACCOUNT_ID).rotate(token(), 0)
    assert api.writes()[0].body == {}


def test_rotate_in_check_mode_sends_no_write(fixed_now):
    api = FakeAPI()
    outcome = ServiceTokenManager(api, ACCOUNT_ID, check_mode=True).rotate(token(), 3600)
    assert outcome.action == "rotate"
    assert outcome.secrets == {}
    assert api.writes() == []


def test_refresh_keeps_secret():
    refreshed = token()
    refreshed["expires_at"] = "2028-01-01T00:00:00Z"
    api = FakeAPI(routes={("POST", REFRESH_PATH): refreshed})
    outcome = ServiceTokenManager(api, ACCOUNT_ID).refresh(token())
    assert outcome.action == "refresh"
    assert outcome.after["expires_at"] == "2028-01-01T00:00:00Z"
    assert outcome.secrets == {}
    assert [(call.method, call.path) for call in api.writes()] == [("POST", REFRESH_PATH)]


def test_refresh_in_check_mode_sends_no_write():
    api = FakeAPI()
    assert ServiceTokenManager(api, ACCOUNT_ID, check_mode=True).refresh(token()).action == "refresh"
    assert api.writes() == []


def test_expire_previous_secret_sends_now(fixed_now):
    api = FakeAPI()
    outcome = ServiceTokenManager(api, ACCOUNT_ID).expire_previous_secret(token())
    assert outcome.action == "update"
    [write] = api.writes()
    assert (write.method, write.path) == ("PUT", "%s/%s" % (TOKENS, TOKEN_ID))
    assert write.body == {"name": "azure-backend", "previous_client_secret_expires_at": "2026-12-04T12:00:00Z"}


@pytest.mark.parametrize("expires_at, days", [
    ("2027-12-04T12:00:00Z", 365),
    ("2026-12-14T11:59:59.123456789Z", 9),
    ("2026-12-04T14:00:00+02:00", 0),
    ("2026-12-03T12:00:00Z", -1),
    (None, None),
])
def test_days_left(expires_at, days):
    assert access.days_left({"expires_at": expires_at}, now=NOW) == days


# Concurrent creates


def test_token_race_keeps_oldest():
    mine = dict(token(token_id="newer-id"), created_at="2026-12-04T12:00:01Z")
    theirs = dict(token(token_id="older-id"), created_at="2026-12-04T12:00:00Z")
    api = FakeAPI(lists={TOKENS: Sequence([], [mine, theirs])},
                  routes={("POST", TOKENS): dict(mine, client_secret=CLIENT_SECRET)})
    outcome = ServiceTokenManager(api, ACCOUNT_ID).ensure_present("azure-backend")
    assert outcome.result["id"] == "older-id"
    assert outcome.secrets == {}
    assert "Another run created service token 'azure-backend' at the same time" in outcome.notes[0]
    assert [(call.method, call.path) for call in api.writes()] == [
        ("POST", TOKENS), ("DELETE", "%s/newer-id" % TOKENS)]


def test_token_race_winner_keeps_secret():
    mine = dict(token(token_id="older-id"), created_at="2026-12-04T12:00:00Z")
    theirs = dict(token(token_id="newer-id"), created_at="2026-12-04T12:00:01Z")
    api = FakeAPI(lists={TOKENS: Sequence([], [mine, theirs])},
                  routes={("POST", TOKENS): dict(mine, client_secret=CLIENT_SECRET)})
    outcome = ServiceTokenManager(api, ACCOUNT_ID).ensure_present("azure-backend")
    assert outcome.result["id"] == "older-id"
    assert outcome.secrets == {"client_secret": CLIENT_SECRET}
    assert [call.method for call in api.writes()] == ["POST"]


def test_policy_race_keeps_oldest():
    mine = policy(name="p", policy_id="newer-id", created_at="2026-12-04T12:00:01Z")
    theirs = policy(name="p", policy_id="older-id", created_at="2026-12-04T12:00:00Z")
    api = FakeAPI(lists={POLICIES: Sequence([], [mine, theirs])}, routes={("POST", POLICIES): mine})
    outcome = PolicyManager(api, ACCOUNT_ID).ensure_present("p", "non_identity", mine["include"])
    assert outcome.result["id"] == "older-id"
    assert "Another run created Access policy 'p' at the same time" in outcome.notes[0]
    assert [(call.method, call.path) for call in api.writes()] == [
        ("POST", POLICIES), ("DELETE", "%s/newer-id" % POLICIES)]


def test_app_domain_conflict_adopts_application():
    api = FakeAPI(lists={APPS: Sequence([], [application()])},
                  routes={("POST", APPS): http_error(400, 12132, "domain already in use")})
    outcome = ApplicationManager(api, ACCOUNT_ID).ensure_present("chat.example.com", policies=LINKS)
    assert outcome.result["id"] == APP_ID
    assert [call.method for call in api.calls] == ["GET", "POST", "GET"]
