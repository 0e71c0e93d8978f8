# Copyright (c) homelab.edge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Tests of the OpenAPI check: it reports real violations, and every deviation is still needed."""

from __future__ import annotations

import pytest

from tests.emulators import openapi_check
from tests.emulators.openapi_check import DEVIATIONS, OpenAPIChecker, load_checker

ACCOUNT = "5f1c0a9e7b3d4e2a8c6b1d0f9e8a7b6c"
ZONE = "0d7e4c2b9a8f4e3d8c1b6a5f4e3d2c1b"
TUNNEL = "2423e4e1-cf4c-4f44-ada8-7a0d1594d01e"
RECORD = "bb09df380e7749fc815205fef7b02c9d"
NOW = "2026-12-04T20:20:23.569262Z"


def ok(result):
    return {"success": True, "errors": [], "messages": [], "result": result}


def tunnel(**overrides):
    value = {
        "id": TUNNEL, "account_tag": ACCOUNT, "name": "home", "created_at": NOW, "deleted_at": None,
        "connections": [], "conns_active_at": None, "conns_inactive_at": None, "metadata": {},
        "remote_config": True, "status": "inactive", "tun_type": "cfd_tunnel",
    }
    value.update(overrides)
    return value


def record(**overrides):
    value = {
        "id": RECORD, "name": "chat.example.com", "type": "CNAME", "content": "t.cfargotunnel.com",
        "proxied": True, "proxiable": True, "ttl": 1, "created_on": NOW, "modified_on": NOW, "tags": [], "meta": {},
    }
    value.update(overrides)
    return value


FAILURE = {
    "success": False,
    "errors": [{"code": 81053, "message": "An A, AAAA, or CNAME record with that host already exists."}],
    "messages": [],
    "result": None,
}
CNAME_BODY = {"name": "chat.example.com", "type": "CNAME", "content": "t.cfargotunnel.com", "ttl": 1, "proxied": True}
RULE = {"expression": "true", "action": "managed_challenge", "enabled": True}

# One case per deviation, in DEVIATIONS order: (kind, method, path, query, body or status+body).
DEVIATION_CASES = [
    ("request", "DELETE", f"/accounts/{ACCOUNT}/cfd_tunnel/{TUNNEL}", None),
    ("request", "PUT", f"/accounts/{ACCOUNT}/cfd_tunnel/{TUNNEL}/configurations", {"config": {"ingress": [{"service": "http_status:404"}]}}),
    ("response", "GET", f"/accounts/{ACCOUNT}/cfd_tunnel/{TUNNEL}", (200, ok(tunnel()))),
    ("request", "POST", f"/zones/{ZONE}/dns_records", CNAME_BODY),
    ("request", "PATCH", f"/zones/{ZONE}/dns_records/{RECORD}", {"name": "chat.example.com", "type": "CNAME", "ttl": 1}),
    ("request", "PUT", f"/zones/{ZONE}/rulesets/phases/http_ratelimit/entrypoint", {"rules": []}),
    ("response", "POST", f"/zones/{ZONE}/dns_records", (400, FAILURE)),
    ("request", "PUT", f"/zones/{ZONE}/rulesets/phases/http_request_firewall_custom/entrypoint", {"rules": [RULE]}),
    ("response", "PUT", f"/zones/{ZONE}/rulesets/phases/http_ratelimit/entrypoint", (200, ok(None))),
]


def run_case(checker, case):
    kind, method, path, payload = case
    if kind == "request":
        return checker.check_request(method, path, {}, payload, payload is not None)
    status, body = payload
    return checker.check_response(method, path, status, body)


def test_every_deviation_has_a_case():
    assert len(DEVIATION_CASES) == len(DEVIATIONS)


def test_deviation_reasons_present():
    for deviation in DEVIATIONS:
        assert len(deviation.reason) > 40, deviation


@pytest.mark.parametrize("index", range(len(DEVIATION_CASES)))
def test_deviation_still_needed(index, monkeypatch):
    checker = load_checker()
    assert run_case(checker, DEVIATION_CASES[index]) == []

    others = tuple(d for i, d in enumerate(DEVIATIONS) if i != index)
    monkeypatch.setattr(openapi_check, "DEVIATIONS", others)
    assert run_case(checker, DEVIATION_CASES[index]) != []


def test_reports_bad_enum_in_response():
    violations = load_checker().check_response("GET", f"/accounts/{ACCOUNT}/cfd_tunnel/{TUNNEL}", 200, ok(tunnel(status="sleeping")))
    assert [v.location for v in violations] == ["body/result/status"]


def test_reports_missing_dns_field():
    bad = record()
    del bad["proxiable"]
    violations = load_checker().check_response("GET", f"/zones/{ZONE}/dns_records/{RECORD}", 200, ok(bad))
    assert any("'proxiable' is a required property" in v.message for v in violations)


def test_reports_bad_request_body():
    violations = load_checker().check_request("POST", f"/accounts/{ACCOUNT}/cfd_tunnel", {}, {"config_src": "local"}, True)
    assert [v.message for v in violations] == ["'name' is a required property"]


def test_reports_bad_query_parameter():
    violations = load_checker().check_request("GET", "/zones", {"per_page": ["500"]}, None, False)
    assert [v.location for v in violations] == ["query/per_page"]


def test_reports_undeclared_status():
    violations = load_checker().check_response("GET", "/accounts", 500, {"success": False})
    assert [v.message for v in violations] == ["status 500 is not declared"]


def test_failure_envelope_still_checked():
    bad_failure = {"success": False, "errors": [{"message": "no code"}], "messages": [], "result": None}
    violations = load_checker().check_response("POST", f"/zones/{ZONE}/dns_records", 400, bad_failure)
    assert any("'code' is a required property" in v.message for v in violations)


def test_paths_outside_schema_ignored():
    checker = load_checker()
    assert checker.check_request("GET", "/user/tokens/verify", {}, None, False) == []
    assert checker.check_response("GET", "/user/tokens/verify", 200, {}) == []


def test_messages_do_not_quote_objects():
    secret = "cfast_" + "A" * 48
    body = ok({"id": "x", "client_secret": secret, "name": 5})
    checker = OpenAPIChecker(load_checker().spec)
    violations = checker.check_response("POST", f"/accounts/{ACCOUNT}/access/service_tokens", 201, body)
    assert violations
    assert all(secret not in str(v) for v in violations)


def test_missing_schema_file_error(monkeypatch, tmp_path):
    monkeypatch.setenv(openapi_check.SCHEMA_ENV, str(tmp_path / "absent.json"))
    load_checker.cache_clear()
    try:
        with pytest.raises(FileNotFoundError, match=openapi_check.SCHEMA_ENV):
            load_checker()
    finally:
        monkeypatch.delenv(openapi_check.SCHEMA_ENV)
        load_checker.cache_clear()
