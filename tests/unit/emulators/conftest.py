# Copyright (c) homelab.edge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Fixtures that run one Cloudflare emulator per test module and reset it for every test.

After each test, every logged request and response must have passed the OpenAPI check,
unless the test called ``cf.allow_schema_violations()`` because it sends invalid input
on purpose.
"""

from __future__ import annotations

import copy
import dataclasses
import pathlib
from typing import Any

import pytest

from tests.emulators import cloudflare_api
from tests.emulators.admin import CloudflareAdmin

ACCOUNT_ID = "5f1c0a9e7b3d4e2a8c6b1d0f9e8a7b6c"
ZONE_ID = "0d7e4c2b9a8f4e3d8c1b6a5f4e3d2c1b"
PRO_ZONE_ID = "9a8b7c6d5e4f40312a1b2c3d4e5f6a7b"
FULL_TOKEN = "test-token-all-permissions"
NO_DNS_TOKEN = "test-token-without-dns"
READ_ONLY_TOKEN = "test-token-read-only"

SEED: dict[str, Any] = {
    "validate": True,
    "accounts": [{"id": ACCOUNT_ID, "name": "Homelab"}],
    "zones": [
        {"id": ZONE_ID, "name": "example.com", "account_id": ACCOUNT_ID, "plan": "free"},
        {"id": PRO_ZONE_ID, "name": "example.org", "account_id": ACCOUNT_ID, "plan": "pro"},
    ],
    "api_tokens": [
        {"name": "full", "value": FULL_TOKEN, "permissions": list(cloudflare_api.ALL_PERMISSIONS)},
        {
            "name": "no-dns",
            "value": NO_DNS_TOKEN,
            "permissions": [p for p in cloudflare_api.ALL_PERMISSIONS if not p.startswith("DNS")],
        },
        {
            "name": "read-only",
            "value": READ_ONLY_TOKEN,
            "permissions": [p for p in cloudflare_api.ALL_PERMISSIONS if p.endswith("Read")],
        },
    ],
    "dns_records": [
        {"zone": "example.com", "type": "A", "name": "www", "content": "203.0.113.10", "proxied": True, "ttl": 1},
        {"zone": "example.com", "type": "MX", "name": "@", "content": "mail.example.com", "priority": 10, "ttl": 3600},
    ],
}


@dataclasses.dataclass
class CloudflareFixture:
    """A running emulator plus what tests need to talk to it."""

    server: cloudflare_api.CloudflareServer
    info: dict[str, Any]
    admin: CloudflareAdmin
    check_schema: bool = True

    @property
    def app(self) -> cloudflare_api.CloudflareApp:
        return self.server.app

    @property
    def base_url(self) -> str:
        return self.info["base_url"]

    def allow_schema_violations(self) -> None:
        self.check_schema = False


@pytest.fixture(scope="module")
def cf_server():
    server, info = cloudflare_api.start(copy.deepcopy(SEED), None)
    yield server, info
    server.shutdown()


@pytest.fixture
def cf(cf_server):
    server, info = cf_server
    server.app.reset()
    server.request_log.clear()
    server.faults.clear()
    fixture = CloudflareFixture(server=server, info=info, admin=CloudflareAdmin(info["admin_url"]))
    yield fixture
    if fixture.check_schema:
        violations = [
            f"{e['method']} {e['path']}: {v}" for e in server.request_log.entries() for v in e["schema_violations"]
        ]
        assert violations == []


@pytest.fixture
def sdk_env(monkeypatch):
    """Remove credentials from the environment that would override the API token."""
    for name in ("CLOUDFLARE_EMAIL", "CLOUDFLARE_API_KEY", "CLOUDFLARE_API_USER_SERVICE_KEY", "CLOUDFLARE_API_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")


@pytest.fixture
def client(cf, sdk_env):
    """SDK client with retries off, so each call is exactly one request."""
    import cloudflare

    return cloudflare.Cloudflare(
        api_token=FULL_TOKEN,
        base_url=cf.base_url,
        max_retries=0,
        http_client=cloudflare.DefaultHttpxClient(trust_env=False),
    )


@pytest.fixture
def state_dir(tmp_path) -> pathlib.Path:
    return tmp_path / "state"
