# Copyright (c) homelab.edge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Tests of the Cloudflare API emulator, mostly through the `cloudflare` SDK 5.9.

Going through the SDK's resource namespaces proves that the emulator speaks the wire format
the SDK expects; the schema check in conftest proves each request and response matches
Cloudflare's OpenAPI schema (minus the documented deviations).
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import re

import cloudflare
import httpx
import pytest

from tests.emulators import cloudflare_api
from tests.unit.emulators.conftest import ACCOUNT_ID, FULL_TOKEN, NO_DNS_TOKEN, PRO_ZONE_ID, READ_ONLY_TOKEN, ZONE_ID

A = ACCOUNT_ID
Z = ZONE_ID
SECRET_FORMAT = re.compile(r"cfast_[A-Za-z0-9]{40}[0-9a-f]{8}")


def raw(cf, method: str, path: str, token: str | None = FULL_TOKEN, **kwargs) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    with httpx.Client(trust_env=False) as session:
        return session.request(method, cf.base_url + path, headers=headers, **kwargs)


def parse(moment: str) -> dt.datetime:
    return dt.datetime.fromisoformat(moment)


def rate_limit_rule(**overrides):
    ratelimit = {"characteristics": ["cf.colo.id", "ip.src"], "period": 10, "requests_per_period": 30, "mitigation_timeout": 10}
    ratelimit.update(overrides.pop("ratelimit", {}))
    rule = {"description": "chat", "expression": '(http.request.uri.path eq "/api/chat")', "action": "block", "ratelimit": ratelimit}
    rule.update(overrides)
    return rule


# --- envelope, authentication, permissions ------------------------------------------------


def test_missing_token_is_403_10000(cf):
    response = raw(cf, "GET", "/zones", token=None)
    assert response.status_code == 403
    assert response.json() == {"success": False, "errors": [{"code": 10000, "message": "Authentication error"}], "messages": [], "result": None}


def test_unknown_token_is_403_10000(cf):
    response = raw(cf, "GET", "/accounts", token="not-a-token")
    assert response.status_code == 403
    assert response.json()["errors"][0]["code"] == 10000


def test_token_without_dns_permission(cf):
    assert raw(cf, "GET", "/zones", token=NO_DNS_TOKEN).status_code == 200
    response = raw(cf, "GET", f"/zones/{Z}/dns_records", token=NO_DNS_TOKEN)
    assert response.status_code == 403
    assert response.json()["errors"] == [{"code": 10000, "message": "Authentication error"}]
    assert response.json()["result"] is None


def test_read_token_cannot_write(cf):
    assert raw(cf, "GET", f"/accounts/{A}/cfd_tunnel", token=READ_ONLY_TOKEN).status_code == 200
    response = raw(cf, "POST", f"/accounts/{A}/cfd_tunnel", token=READ_ONLY_TOKEN, json={"name": "t"})
    assert response.status_code == 403
    assert cf.admin.state()["tunnels"] == {}


def test_unknown_route_is_failure_envelope(cf):
    response = raw(cf, "GET", "/nothing/here")
    assert response.status_code == 404
    body = response.json()
    assert body["success"] is False
    assert body["result"] is None
    assert body["errors"] and body["errors"][0]["code"] == 7003


def test_failures_never_answer_200(cf):
    cf.allow_schema_violations()
    cases = [
        ("POST", f"/accounts/{A}/cfd_tunnel", {}),
        ("GET", f"/zones/{Z}/dns_records/{'0' * 32}", None),
        ("GET", f"/zones/{Z}/rulesets/phases/http_ratelimit/entrypoint", None),
        ("POST", f"/zones/{Z}/dns_records", {"type": "A", "name": "x", "content": "not-an-ip", "ttl": 1}),
    ]
    for method, path, body in cases:
        response = raw(cf, method, path, json=body)
        assert response.status_code >= 400, path
        assert response.json()["success"] is False
        assert response.json()["errors"]


# --- accounts and zones -----------------------------------------------------------------------


def test_sdk_accounts_and_zones(cf, client):
    accounts = list(client.accounts.list())
    assert [(a.id, a.name) for a in accounts] == [(A, "Homelab")]

    zones = list(client.zones.list(name="example.com", account={"id": A}))
    assert len(zones) == 1
    assert zones[0].id == Z
    assert zones[0].plan.legacy_id == "free"
    assert zones[0].plan.id == "0feeeeeeeeeeeeeeeeeeeeeeeeeeeeee"
    assert zones[0].account.id == A

    assert cf.admin.log(path="/zones")[0]["query"] == {"name": "example.com", "account.id": A}


def test_zone_state_has_bot_fight_mode(cf):
    zone = cf.admin.state()["zones"][Z]
    assert zone["bot_fight_mode"] is False
    assert zone["plan"] == "free"


# --- tunnels -------------------------------------------------------------------------------


def test_sdk_tunnel_lifecycle(cf, client):
    tunnels = client.zero_trust.tunnels.cloudflared
    secret = base64.b64encode(b"s" * 32).decode()
    created = tunnels.create(account_id=A, name="home", config_src="cloudflare", tunnel_secret=secret)
    assert created.status == "inactive"
    assert created.remote_config is True
    assert created.config_src == "cloudflare"
    assert created.deleted_at is None
    assert created.account_tag == A

    assert tunnels.get(created.id, account_id=A).name == "home"
    assert [t.id for t in tunnels.list(account_id=A, name="home", is_deleted=False)] == [created.id]

    renamed = tunnels.edit(created.id, account_id=A, name="home-2")
    assert renamed.name == "home-2"
    assert cf.admin.state()["tunnels"][created.id]["name"] == "home-2"

    token = tunnels.token.get(created.id, account_id=A)
    assert json.loads(base64.b64decode(token)) == {"a": A, "t": created.id, "s": secret}

    assert list(tunnels.connections.get(created.id, account_id=A)) == []
    assert tunnels.connections.delete(created.id, account_id=A) == {}

    deleted = tunnels.delete(created.id, account_id=A)
    assert deleted.deleted_at is not None
    assert cf.admin.state()["tunnels"][created.id]["deleted_at"] is not None


def test_tunnel_configuration_version_increments(cf, client):
    tunnels = client.zero_trust.tunnels.cloudflared
    tunnel = tunnels.create(account_id=A, name="home", config_src="cloudflare")
    before = tunnels.configurations.get(tunnel.id, account_id=A)
    assert before.version == 0

    config = {
        "ingress": [
            {
                "hostname": "chat.example.com",
                "service": "http://127.0.0.1:11434",
                "origin_request": {"http_host_header": "localhost:11434", "connect_timeout": 30},
            },
            {"service": "http_status:404"},
        ]
    }
    first = tunnels.configurations.update(tunnel.id, account_id=A, config=config)
    second = tunnels.configurations.update(tunnel.id, account_id=A, config=config)
    assert (first.version, second.version) == (1, 2)

    fetched = tunnels.configurations.get(tunnel.id, account_id=A)
    assert fetched.version == 2
    assert fetched.config.ingress[0].origin_request.http_host_header == "localhost:11434"
    stored = cf.admin.state()["tunnels"][tunnel.id]["configuration"]["config"]
    assert stored["ingress"][0]["originRequest"] == {"httpHostHeader": "localhost:11434", "connectTimeout": 30}


def test_tunnel_configuration_rejects_missing_catch_all(cf, client):
    tunnel = client.zero_trust.tunnels.cloudflared.create(account_id=A, name="home", config_src="cloudflare")
    with pytest.raises(cloudflare.BadRequestError) as raised:
        client.zero_trust.tunnels.cloudflared.configurations.update(
            tunnel.id, account_id=A, config={"ingress": [{"hostname": "chat.example.com", "service": "http://127.0.0.1:1"}]}
        )
    assert "last ingress rule must match all URLs" in raised.value.errors[0].message
    assert cf.admin.state()["tunnels"][tunnel.id]["configuration"] is None


def test_tunnel_duplicate_live_name_409(cf, client):
    client.zero_trust.tunnels.cloudflared.create(account_id=A, name="home")
    with pytest.raises(cloudflare.ConflictError) as raised:
        client.zero_trust.tunnels.cloudflared.create(account_id=A, name="home")
    assert raised.value.status_code == 409
    assert raised.value.errors[0].code == 1013
    assert "x-should-retry" not in raised.value.response.headers
    assert len(cf.admin.state()["tunnels"]) == 1


def test_tunnel_409_retried_by_sdk_defaults(cf, sdk_env):
    retrying = cloudflare.Cloudflare(api_token=FULL_TOKEN, base_url=cf.base_url, http_client=cloudflare.DefaultHttpxClient(trust_env=False))
    retrying.zero_trust.tunnels.cloudflared.create(account_id=A, name="home")
    cf.admin.clear_log()
    with pytest.raises(cloudflare.ConflictError):
        retrying.zero_trust.tunnels.cloudflared.create(account_id=A, name="home")
    assert [e["status"] for e in cf.admin.log()] == [409, 409, 409]


def test_tunnel_name_reusable_after_delete(cf, client):
    tunnels = client.zero_trust.tunnels.cloudflared
    first = tunnels.create(account_id=A, name="home")
    tunnels.delete(first.id, account_id=A)
    second = tunnels.create(account_id=A, name="home")
    assert second.id != first.id


def test_tunnel_is_deleted_filter_tri_state(cf, client):
    tunnels = client.zero_trust.tunnels.cloudflared
    live = tunnels.create(account_id=A, name="live")
    gone = tunnels.create(account_id=A, name="gone")
    tunnels.delete(gone.id, account_id=A)

    assert {t.id for t in tunnels.list(account_id=A)} == {live.id, gone.id}
    assert [t.id for t in tunnels.list(account_id=A, is_deleted=False)] == [live.id]
    assert [t.id for t in tunnels.list(account_id=A, is_deleted=True)] == [gone.id]
    assert tunnels.get(gone.id, account_id=A).deleted_at is not None


def test_tunnel_delete_accepts_empty_json_body(cf, client):
    tunnel = client.zero_trust.tunnels.cloudflared.create(account_id=A, name="home")
    response = raw(cf, "DELETE", f"/accounts/{A}/cfd_tunnel/{tunnel.id}", json={})
    assert response.status_code == 200
    assert response.json()["result"]["deleted_at"] is not None


def test_tunnel_secret_too_short_rejected(cf, client):
    cf.allow_schema_violations()
    with pytest.raises(cloudflare.BadRequestError):
        client.zero_trust.tunnels.cloudflared.create(account_id=A, name="home", tunnel_secret=base64.b64encode(b"short").decode())
    assert cf.admin.state()["tunnels"] == {}


def test_unknown_tunnel_404(cf, client):
    with pytest.raises(cloudflare.NotFoundError):
        client.zero_trust.tunnels.cloudflared.get("00000000-0000-4000-8000-000000000000", account_id=A)


def test_connector_changes_status(cf, client):
    tunnels = client.zero_trust.tunnels.cloudflared
    tunnel = tunnels.create(account_id=A, name="home", config_src="cloudflare")
    token = tunnels.token.get(tunnel.id, account_id=A)

    connector = cf.admin.register_connector(token)
    assert connector["tunnel_id"] == tunnel.id
    healthy = tunnels.get(tunnel.id, account_id=A)
    assert healthy.status == "healthy"
    assert healthy.conns_active_at is not None
    assert len(healthy.connections) == 4
    assert {c.client_id for c in healthy.connections} == {connector["client_id"]}
    clients = list(tunnels.connections.get(tunnel.id, account_id=A))
    assert [c.id for c in clients] == [connector["client_id"]]

    cf.admin.remove_connector(connector["client_id"])
    down = tunnels.get(tunnel.id, account_id=A)
    assert down.status == "down"
    assert down.connections == []
    assert down.conns_inactive_at is not None


def test_connector_wrong_secret_rejected(cf, client):
    tunnel = client.zero_trust.tunnels.cloudflared.create(account_id=A, name="home")
    forged = cloudflare_api.tunnel_token(A, tunnel.id, base64.b64encode(b"x" * 32).decode())
    with pytest.raises(Exception) as raised:
        cf.admin.register_connector(forged)
    assert raised.value.status == 403
    assert cf.admin.connectors() == []


def test_connector_gets_config_version(cf, client):
    tunnels = client.zero_trust.tunnels.cloudflared
    tunnel = tunnels.create(account_id=A, name="home", config_src="cloudflare")
    cf.admin.register_connector(tunnels.token.get(tunnel.id, account_id=A))
    tunnels.configurations.update(tunnel.id, account_id=A, config={"ingress": [{"service": "http_status:404"}]})
    clients = list(tunnels.connections.get(tunnel.id, account_id=A))
    assert clients[0].config_version == 1


def test_tunnel_delete_refused_with_connections(cf, client):
    tunnels = client.zero_trust.tunnels.cloudflared
    tunnel = tunnels.create(account_id=A, name="home")
    cf.admin.register_connector(tunnels.token.get(tunnel.id, account_id=A))

    with pytest.raises(cloudflare.BadRequestError) as raised:
        tunnels.delete(tunnel.id, account_id=A)
    assert raised.value.errors[0].code == 1022
    assert cf.admin.state()["tunnels"][tunnel.id]["deleted_at"] is None

    deleted = tunnels.delete(tunnel.id, account_id=A, extra_query={"cascade": "true"})
    assert deleted.deleted_at is not None
    assert deleted.connections == []


def test_tunnel_delete_after_connections_cleanup(cf, client):
    tunnels = client.zero_trust.tunnels.cloudflared
    tunnel = tunnels.create(account_id=A, name="home")
    cf.admin.register_connector(tunnels.token.get(tunnel.id, account_id=A))
    tunnels.connections.delete(tunnel.id, account_id=A)
    assert tunnels.delete(tunnel.id, account_id=A).deleted_at is not None


# --- pagination --------------------------------------------------------------------------------


def test_sdk_pagination_45_items(cf, client):
    for number in range(45):
        client.zero_trust.tunnels.cloudflared.create(account_id=A, name=f"tunnel-{number:02d}")
    cf.admin.clear_log()

    names = [t.name for t in client.zero_trust.tunnels.cloudflared.list(account_id=A, per_page=20)]
    assert names == [f"tunnel-{number:02d}" for number in range(45)]

    requests = cf.admin.log(method="GET")
    assert [e["query"].get("page", "1") for e in requests] == ["1", "2", "3", "4"]
    assert len(requests) == 4


def test_page_past_end_is_empty(cf):
    response = raw(cf, "GET", f"/zones/{Z}/dns_records", params={"page": 5, "per_page": 1})
    body = response.json()
    assert body["result"] == []
    assert body["result_info"] == {"page": 5, "per_page": 1, "count": 0, "total_count": 2, "total_pages": 2}


def test_invalid_per_page_rejected(cf):
    cf.allow_schema_violations()
    response = raw(cf, "GET", "/zones", params={"per_page": 100})
    assert response.status_code == 400


# --- DNS records ---------------------------------------------------------------------------------


def test_sdk_dns_lifecycle(cf, client):
    records = client.dns.records
    tunnel_target = "6ff42ae2-765d-4adf-8112-31c55c1551ef.cfargotunnel.com"
    created = records.create(
        zone_id=Z,
        name="chat",
        type="CNAME",
        ttl=1,
        content=tunnel_target,
        proxied=True,
        comment="managed by ansible",
        tags=["owner:ansible"],
    )
    assert created.name == "chat.example.com"
    assert created.proxied is True
    assert created.type == "CNAME"

    assert records.get(created.id, zone_id=Z).content == tunnel_target
    replaced = records.update(created.id, zone_id=Z, name="chat.example.com", type="CNAME", ttl=1, content=tunnel_target, proxied=True)
    assert replaced.comment is None
    assert replaced.tags == []

    patched = records.edit(created.id, zone_id=Z, name="chat.example.com", type="CNAME", ttl=300, proxied=False)
    assert patched.ttl == 300
    assert patched.content == tunnel_target
    assert cf.admin.state()["dns_records"][Z][created.id]["ttl"] == 300

    assert records.delete(created.id, zone_id=Z).id == created.id
    assert created.id not in cf.admin.state()["dns_records"][Z]


def test_dns_name_filters_case_insensitive(cf, client):
    client.dns.records.create(zone_id=Z, name="Chat", type="CNAME", ttl=1, content="t.cfargotunnel.com", proxied=True)
    by_exact = list(client.dns.records.list(zone_id=Z, name={"exact": "CHAT.example.COM"}, type="CNAME"))
    by_plain = list(client.dns.records.list(zone_id=Z, name="chat.EXAMPLE.com"))
    by_relative = raw(cf, "GET", f"/zones/{Z}/dns_records", params={"name": "www"}).json()["result"]
    assert [r.name for r in by_exact] == ["chat.example.com"]
    assert [r.name for r in by_plain] == ["chat.example.com"]
    # Name filters compare full names, so a relative name matches nothing.
    assert by_relative == []
    assert list(client.dns.records.list(zone_id=Z, name={"exact": "chat.example.com"}, type="A")) == []


def test_dns_type_filter_case_insensitive(cf):
    # The schema lists upper-case types only, so this request is off-schema on purpose.
    cf.allow_schema_violations()
    by_type = raw(cf, "GET", f"/zones/{Z}/dns_records", params={"type": "mx"}).json()["result"]
    assert [r["name"] for r in by_type] == ["example.com"]


def test_dns_apex_name(cf, client):
    record = client.dns.records.create(zone_id=Z, name="@", type="TXT", ttl=1, content="hello")
    assert record.name == "example.com"


def test_dns_cname_conflicts_with_a(cf, client):
    with pytest.raises(cloudflare.BadRequestError) as raised:
        client.dns.records.create(zone_id=Z, name="www", type="CNAME", ttl=1, content="t.cfargotunnel.com", proxied=True)
    assert raised.value.errors[0].code == 81053
    assert len(cf.admin.state()["dns_records"][Z]) == 2


def test_dns_a_conflicts_with_cname(cf, client):
    client.dns.records.create(zone_id=Z, name="chat", type="CNAME", ttl=1, content="t.cfargotunnel.com", proxied=True)
    with pytest.raises(cloudflare.BadRequestError) as raised:
        client.dns.records.create(zone_id=Z, name="chat", type="A", ttl=1, content="192.0.2.1")
    assert raised.value.errors[0].code == 81053


def test_dns_txt_next_to_cname_81054(cf, client):
    client.dns.records.create(zone_id=Z, name="chat", type="CNAME", ttl=1, content="t.cfargotunnel.com", proxied=True)
    with pytest.raises(cloudflare.BadRequestError) as raised:
        client.dns.records.create(zone_id=Z, name="chat", type="TXT", ttl=1, content="x")
    assert raised.value.errors[0].code == 81054


def test_dns_identical_record_81058(cf, client):
    with pytest.raises(cloudflare.BadRequestError) as raised:
        client.dns.records.create(zone_id=Z, name="www.example.com", type="A", ttl=1, content="203.0.113.10", proxied=True)
    assert raised.value.status_code == 400
    assert raised.value.errors[0].code == 81058


def test_dns_unknown_id_404_81044(cf, client):
    with pytest.raises(cloudflare.NotFoundError) as raised:
        client.dns.records.get("0" * 32, zone_id=Z)
    assert raised.value.errors[0].code == 81044


def test_dns_update_keeps_index_consistent(cf, client):
    record = client.dns.records.create(zone_id=Z, name="old", type="A", ttl=1, content="192.0.2.1")
    client.dns.records.update(record.id, zone_id=Z, name="new", type="A", ttl=1, content="192.0.2.1")
    assert list(client.dns.records.list(zone_id=Z, name="old.example.com")) == []
    assert [r.id for r in client.dns.records.list(zone_id=Z, name="new.example.com")] == [record.id]


def test_dns_large_zone_uses_name_index(cf, client, monkeypatch):
    state = cf.admin.state()
    now = "2026-01-01T00:00:00.000000Z"
    for number in range(10_000):
        record_id = f"{number:032x}"
        state["dns_records"][Z][record_id] = {
            "id": record_id, "zone_id": Z, "zone_name": "example.com", "name": f"host-{number}.example.com",
            "type": "A", "content": "192.0.2.1", "proxied": False, "proxiable": True, "ttl": 1, "tags": [],
            "settings": {}, "meta": {}, "created_on": now, "modified_on": now,
        }
    cf.admin.put_state(state)

    calls = []
    original = cloudflare_api.string_filter_matches
    monkeypatch.setattr(cloudflare_api, "string_filter_matches", lambda *args: calls.append(args) or original(*args))
    found = list(client.dns.records.list(zone_id=Z, name={"exact": "host-9876.example.com"}, type="A"))
    assert [r.id for r in found] == [f"{9876:032x}"]
    # Only the indexed candidates are compared, not all 10,000 records.
    assert len(calls) <= 2


# --- Access policies and applications ---------------------------------------------------------


def make_service_token(client, name="azure-backend", **kwargs):
    return client.zero_trust.access.service_tokens.create(account_id=A, name=name, **kwargs)


def make_policy(client, token_id):
    return client.zero_trust.access.policies.create(
        account_id=A, name="service auth", decision="non_identity", include=[{"service_token": {"token_id": token_id}}]
    )


def test_sdk_policy_lifecycle(cf, client):
    policies = client.zero_trust.access.policies
    token = make_service_token(client)
    created = make_policy(client, token.id)
    assert created.reusable is True
    assert created.app_count == 0
    assert created.decision == "non_identity"

    assert [p.id for p in policies.list(account_id=A)] == [created.id]
    assert policies.get(created.id, account_id=A).name == "service auth"
    updated = policies.update(created.id, account_id=A, name="any token", decision="non_identity", include=[{"any_valid_service_token": {}}])
    assert updated.name == "any token"
    assert cf.admin.state()["access_policies"][created.id]["include"] == [{"any_valid_service_token": {}}]

    assert policies.delete(created.id, account_id=A).id == created.id
    assert cf.admin.state()["access_policies"] == {}


def test_policy_status_codes(cf, client):
    token = make_service_token(client)
    body = {"name": "p", "decision": "non_identity", "include": [{"service_token": {"token_id": token.id}}]}
    created = raw(cf, "POST", f"/accounts/{A}/access/policies", json=body)
    assert created.status_code == 201
    deleted = raw(cf, "DELETE", f"/accounts/{A}/access/policies/{created.json()['result']['id']}")
    assert deleted.status_code == 202
    assert deleted.json()["result"] == {"id": created.json()["result"]["id"]}


def test_policy_unknown_service_token_rejected(cf, client):
    with pytest.raises(cloudflare.BadRequestError):
        make_policy(client, "00000000-0000-4000-8000-000000000000")
    assert cf.admin.state()["access_policies"] == {}


def test_sdk_application_lifecycle(cf, client):
    apps = client.zero_trust.access.applications
    policy = make_policy(client, make_service_token(client).id)
    created = apps.create(
        account_id=A, type="self_hosted", domain="chat.example.com", name="chat",
        policies=[{"id": policy.id, "precedence": 1}], service_auth_401_redirect=True,
    )
    assert re.fullmatch(r"[0-9a-f]{64}", created.aud)
    assert created.policies[0].id == policy.id
    assert created.policies[0].decision == "non_identity"
    assert created.policies[0].precedence == 1
    assert created.service_auth_401_redirect is True
    assert client.zero_trust.access.policies.get(policy.id, account_id=A).app_count == 1

    assert [a.id for a in apps.list(account_id=A, domain="chat.example.com", exact=True)] == [created.id]
    assert apps.get(created.id, account_id=A).aud == created.aud

    replaced = apps.update(created.id, account_id=A, type="self_hosted", domain="chat.example.com", policies=[policy.id])
    assert replaced.service_auth_401_redirect is False
    assert replaced.aud == created.aud
    assert replaced.policies[0].id == policy.id

    assert apps.delete(created.id, account_id=A).id == created.id
    assert cf.admin.state()["access_apps"] == {}


def test_application_status_codes(cf, client):
    body = {"type": "self_hosted", "domain": "chat.example.com"}
    created = raw(cf, "POST", f"/accounts/{A}/access/apps", json=body)
    assert created.status_code == 201
    app_id = created.json()["result"]["id"]
    deleted = raw(cf, "DELETE", f"/accounts/{A}/access/apps/{app_id}")
    assert deleted.status_code == 202
    assert deleted.json()["result"] == {"id": app_id}


def test_policy_in_use_cannot_be_deleted(cf, client):
    policy = make_policy(client, make_service_token(client).id)
    app = client.zero_trust.access.applications.create(account_id=A, type="self_hosted", domain="chat.example.com", policies=[policy.id])
    with pytest.raises(cloudflare.BadRequestError) as raised:
        client.zero_trust.access.policies.delete(policy.id, account_id=A)
    assert raised.value.errors[0].code == cloudflare_api.ACCESS_POLICY_IN_USE
    assert policy.id in cf.admin.state()["access_policies"]

    client.zero_trust.access.applications.delete(app.id, account_id=A)
    client.zero_trust.access.policies.delete(policy.id, account_id=A)


def test_application_duplicate_domain_rejected(cf, client):
    client.zero_trust.access.applications.create(account_id=A, type="self_hosted", domain="chat.example.com")
    with pytest.raises(cloudflare.BadRequestError):
        client.zero_trust.access.applications.create(account_id=A, type="self_hosted", domain="chat.example.com")
    assert len(cf.admin.state()["access_apps"]) == 1


# --- service tokens -----------------------------------------------------------------------------


def test_service_token_create_returns_secret_once(cf, client):
    created = make_service_token(client)
    assert SECRET_FORMAT.fullmatch(created.client_secret)
    assert re.fullmatch(r"[0-9a-f]{32}\.access", created.client_id)
    expires = parse(created.expires_at) - parse(created.created_at)
    assert expires == dt.timedelta(hours=8760)

    tokens = client.zero_trust.access.service_tokens
    bodies = [
        raw(cf, "GET", f"/accounts/{A}/access/service_tokens/{created.id}").json(),
        raw(cf, "GET", f"/accounts/{A}/access/service_tokens").json(),
        raw(cf, "PUT", f"/accounts/{A}/access/service_tokens/{created.id}", json={"name": "renamed"}).json(),
        raw(cf, "POST", f"/accounts/{A}/access/service_tokens/{created.id}/refresh").json(),
    ]
    for body in bodies:
        results = body["result"] if isinstance(body["result"], list) else [body["result"]]
        assert all("client_secret" not in result for result in results)
        assert created.client_secret not in json.dumps(body)
    deleted = tokens.delete(created.id, account_id=A)
    assert not hasattr(deleted, "client_secret")
    assert deleted.model_extra.get("client_secret") is None


def test_service_token_create_status_201(cf):
    response = raw(cf, "POST", f"/accounts/{A}/access/service_tokens", json={"name": "t"})
    assert response.status_code == 201


def test_service_token_forever(cf, client):
    token = make_service_token(client, duration="forever")
    assert token.expires_at is None


def test_service_token_secret_validity(cf, client):
    token = make_service_token(client)
    assert cf.admin.service_token_valid(token.client_id, token.client_secret) is True
    assert cf.admin.service_token_valid(token.client_id, token.client_secret + "x") is False
    assert cf.app.check_service_token(token.client_id, token.client_secret) == token.id
    stored = json.dumps(cf.admin.state())
    assert token.client_secret not in stored


def test_service_token_rotate_immediate(cf, client):
    token = make_service_token(client)
    rotated = client.zero_trust.access.service_tokens.rotate(token.id, account_id=A)
    assert SECRET_FORMAT.fullmatch(rotated.client_secret)
    assert rotated.client_secret != token.client_secret
    assert rotated.client_id == token.client_id
    assert cf.admin.service_token_valid(token.client_id, token.client_secret) is False
    assert cf.admin.service_token_valid(token.client_id, rotated.client_secret) is True


def test_service_token_rotate_grace_period(cf, client):
    token = make_service_token(client)
    grace_end = (dt.datetime.now(dt.timezone.utc) + dt.timedelta(hours=1)).isoformat()
    rotated = client.zero_trust.access.service_tokens.rotate(token.id, account_id=A, previous_client_secret_expires_at=grace_end)
    assert cf.admin.service_token_valid(token.client_id, token.client_secret) is True
    assert cf.admin.service_token_valid(token.client_id, rotated.client_secret) is True

    cf.admin.advance_clock(2 * 3600)
    assert cf.admin.service_token_valid(token.client_id, token.client_secret) is False
    assert cf.admin.service_token_valid(token.client_id, rotated.client_secret) is True


def test_service_token_refresh_extends(cf, client):
    token = make_service_token(client, duration="24h")
    refreshed = client.zero_trust.access.service_tokens.refresh(token.id, account_id=A)
    assert refreshed.expires_at - parse(token.expires_at) == dt.timedelta(hours=24)


def test_service_token_expiry_and_disable(cf, client):
    token = make_service_token(client, duration="1h")
    cf.admin.advance_clock(2 * 3600)
    assert cf.admin.service_token_valid(token.client_id, token.client_secret) is False

    other = make_service_token(client, name="other")
    client.zero_trust.access.service_tokens.update(other.id, account_id=A, enabled=False)
    assert cf.admin.service_token_valid(other.client_id, other.client_secret) is False


def test_service_token_list_filter(cf, client):
    make_service_token(client, name="one")
    make_service_token(client, name="two")
    assert [t.name for t in client.zero_trust.access.service_tokens.list(account_id=A, name="two")] == ["two"]


# --- rulesets --------------------------------------------------------------------------------------


def test_entrypoint_missing_404_10003(cf, client):
    with pytest.raises(cloudflare.NotFoundError) as raised:
        client.rulesets.phases.get("http_ratelimit", zone_id=Z)
    assert raised.value.errors[0].code == 10003
    assert raised.value.errors[0].message == "could not find entrypoint ruleset in the http_ratelimit phase"


def test_entrypoint_put_creates_and_versions(cf, client):
    first = client.rulesets.phases.update("http_ratelimit", zone_id=Z, rules=[rate_limit_rule(ref="chat")])
    assert first["version"] == "1"
    assert first["kind"] == "zone"
    rule = first["rules"][0]
    assert re.fullmatch(r"[0-9a-f]{32}", rule["id"])
    assert rule["ref"] == "chat"
    assert rule["version"] == "1"
    assert rule["enabled"] is True

    fetched = client.rulesets.phases.get("http_ratelimit", zone_id=Z)
    assert fetched.rules[0].ratelimit.period == 10

    changed = rate_limit_rule(id=rule["id"], ref="chat", ratelimit={"requests_per_period": 50})
    second = client.rulesets.phases.update("http_ratelimit", zone_id=Z, rules=[changed])
    assert second["version"] == "2"
    assert second["rules"][0]["id"] == rule["id"]
    assert second["rules"][0]["version"] == "2"

    emptied = client.rulesets.phases.update("http_ratelimit", zone_id=Z, rules=[])
    assert emptied["rules"] == []
    assert emptied["version"] == "3"


def test_entrypoint_dry_run_changes_nothing(cf, client):
    result = client.rulesets.phases.update("http_ratelimit", zone_id=Z, rules=[rate_limit_rule()], dry_run=True)
    assert result is None
    assert cf.admin.state()["rulesets"][Z] == {}
    assert cf.admin.log(method="PUT")[0]["write"] is False


def test_custom_rules_phase(cf, client):
    rule = {"expression": '(http.host eq "chat.example.com" and not http.request.method in {"GET" "POST"})', "action": "block"}
    result = client.rulesets.phases.update("http_request_firewall_custom", zone_id=Z, rules=[rule])
    assert result["phase"] == "http_request_firewall_custom"
    assert result["rules"][0]["action"] == "block"


@pytest.mark.parametrize(
    ("rules", "message"),
    [
        ([rate_limit_rule(ratelimit={"period": 60})], "not entitled to use the period 60, can only use a period among [10]"),
        ([rate_limit_rule(ratelimit={"mitigation_timeout": 60})], "not entitled to use a mitigation timeout different from 10"),
        ([rate_limit_rule(), rate_limit_rule(description="second")], "not entitled to use more than 1 rate limiting rule(s) on the free plan"),
        ([rate_limit_rule(action="managed_challenge")], "mitigation timeout must be 0 when using the action managed_challenge"),
        (
            [rate_limit_rule(ratelimit={"characteristics": ["cf.colo.id", "http.request.headers[\"x-api-key\"]"]})],
            'not entitled to use the characteristic http.request.headers["x-api-key"], can only use characteristics among [cf.colo.id ip.src]',
        ),
        ([rate_limit_rule(ratelimit={"characteristics": ["ip.src"]})], "characteristics must include cf.colo.id"),
    ],
)
def test_free_plan_rate_limit_checks(cf, client, rules, message):
    with pytest.raises(cloudflare.BadRequestError) as raised:
        client.rulesets.phases.update("http_ratelimit", zone_id=Z, rules=rules)
    assert message in [error.message for error in raised.value.errors]
    assert all(error.source is not None and error.source.pointer for error in raised.value.errors)
    assert cf.admin.state()["rulesets"][Z] == {}


def test_free_plan_challenge_with_zero_timeout(cf, client):
    rule = rate_limit_rule(action="managed_challenge", ratelimit={"mitigation_timeout": 0})
    assert client.rulesets.phases.update("http_ratelimit", zone_id=Z, rules=[rule])["version"] == "1"


def test_pro_plan_allows_period_60(cf, client):
    rules = [rate_limit_rule(ratelimit={"period": 60, "mitigation_timeout": 60}), rate_limit_rule(description="b")]
    assert len(client.rulesets.phases.update("http_ratelimit", zone_id=PRO_ZONE_ID, rules=rules)["rules"]) == 2


# --- faults ----------------------------------------------------------------------------------------


def test_fault_429_with_retry_after(cf, client):
    cf.admin.add_fault(method="GET", path=r"/zones$", status=429, retry_after=3)
    with pytest.raises(cloudflare.RateLimitError) as raised:
        list(client.zones.list())
    assert raised.value.response.headers["retry-after"] == "3"
    assert raised.value.body["success"] is False
    assert raised.value.errors
    assert list(client.zones.list())
    # The second listing reads page 1 and the empty page 2.
    assert [(e["status"], e["fault"]) for e in cf.admin.log()] == [(429, "status"), (200, None), (200, None)]


@pytest.mark.parametrize("status", [500, 502, 503])
def test_fault_server_errors(cf, client, status):
    cf.admin.add_fault(path="/dns_records", status=status, count=2)
    for attempt in range(2):
        with pytest.raises(cloudflare.InternalServerError) as raised:
            list(client.dns.records.list(zone_id=Z))
        assert raised.value.status_code == status
        assert "retry-after" not in raised.value.response.headers
    assert list(client.dns.records.list(zone_id=Z))
    assert cf.admin.faults() == []


def test_fault_429_retried_by_sdk(cf, sdk_env):
    retrying = cloudflare.Cloudflare(api_token=FULL_TOKEN, base_url=cf.base_url, http_client=cloudflare.DefaultHttpxClient(trust_env=False))
    cf.admin.add_fault(method="GET", path=r"/accounts$", status=429, retry_after=1, count=1)
    assert [a.id for a in retrying.accounts.list()] == [A]
    assert [e["status"] for e in cf.admin.log()] == [429, 200, 200]


def test_fault_connection_reset(cf, client):
    cf.admin.add_fault(method="POST", path="/cfd_tunnel", kind="reset")
    with pytest.raises(cloudflare.APIConnectionError):
        client.zero_trust.tunnels.cloudflared.create(account_id=A, name="home")
    entry = cf.admin.log()[0]
    assert entry["fault"] == "reset"
    assert entry["status"] is None
    assert cf.admin.state()["tunnels"] == {}


def test_fault_delay_then_normal_answer(cf, client):
    cf.admin.add_fault(method="GET", path="/accounts", kind="delay", delay=0.01)
    assert [a.id for a in client.accounts.list()] == [A]
    assert cf.admin.log()[0]["fault"] == "delay"
    assert cf.admin.log()[0]["status"] == 200


def test_fault_rejects_invalid_rule(cf):
    with pytest.raises(Exception) as raised:
        cf.admin.add_fault(kind="explode")
    assert raised.value.status == 400


# --- request log, admin, persistence -------------------------------------------------------------


def test_log_records_writes_and_redacts(cf, client):
    secret = base64.b64encode(b"k" * 32).decode()
    tunnel = client.zero_trust.tunnels.cloudflared.create(account_id=A, name="home", tunnel_secret=secret)
    token = make_service_token(client)
    client.zero_trust.access.service_tokens.rotate(token.id, account_id=A)
    client.zero_trust.tunnels.cloudflared.get(tunnel.id, account_id=A)

    entries = cf.admin.log()
    create = entries[0]
    assert create["method"] == "POST"
    assert create["path"] == f"/client/v4/accounts/{A}/cfd_tunnel"
    assert create["write"] is True
    assert create["status"] == 200
    assert create["body"]["tunnel_secret"] == "**REDACTED**"
    assert create["body"]["name"] == "home"
    assert entries[-1]["write"] is False

    dumped = json.dumps(entries)
    assert secret not in dumped
    assert FULL_TOKEN not in dumped
    assert token.client_secret not in dumped


def test_admin_state_drift(cf, client):
    record = next(iter(client.dns.records.list(zone_id=Z, name="www.example.com")))

    def change(state):
        state["dns_records"][Z][record.id]["content"] = "198.51.100.99"

    cf.admin.mutate_state(change)
    assert client.dns.records.get(record.id, zone_id=Z).content == "198.51.100.99"
    assert [r.id for r in client.dns.records.list(zone_id=Z, name="www.example.com")] == [record.id]

    cf.admin.reset()
    assert cf.admin.log() == []
    assert [r.content for r in client.dns.records.list(zone_id=Z, name="www.example.com")] == ["203.0.113.10"]


def test_admin_put_state_rejects_garbage(cf):
    with pytest.raises(Exception) as raised:
        cf.admin.put_state({"accounts": {}})
    assert raised.value.status == 400


def test_state_persists_across_restart(state_dir, sdk_env):
    from tests.unit.emulators.conftest import SEED

    server, info = cloudflare_api.start(json.loads(json.dumps(SEED)), state_dir)
    try:
        sdk = cloudflare.Cloudflare(api_token=FULL_TOKEN, base_url=info["base_url"], max_retries=0, http_client=cloudflare.DefaultHttpxClient(trust_env=False))
        tunnel = sdk.zero_trust.tunnels.cloudflared.create(account_id=A, name="persisted")
    finally:
        server.shutdown()
    path = state_dir / "cloudflare.json"
    assert path.stat().st_mode & 0o777 == 0o600

    server, info = cloudflare_api.start(json.loads(json.dumps(SEED)), state_dir)
    try:
        sdk = cloudflare.Cloudflare(api_token=FULL_TOKEN, base_url=info["base_url"], max_retries=0, http_client=cloudflare.DefaultHttpxClient(trust_env=False))
        assert sdk.zero_trust.tunnels.cloudflared.get(tunnel.id, account_id=A).name == "persisted"
    finally:
        server.shutdown()
