"""Fixtures shared by the integration tests: emulators started in the test process."""

from __future__ import annotations

import os

import pytest

from tests.emulators import cloudflare_api, launch
from tests.emulators.admin import CloudflareAdmin
from tests.integration.harness import demo_environment, demo_seed

REAL_CLOUDFLARE = os.environ.get("HOMELAB_EDGE_REAL_CLOUDFLARE") == "1"


class CloudflareTarget:
    """Where a test sends its Cloudflare requests: the emulator, or the real API when asked for."""

    def __init__(self, base_url, api_token, account, zone, admin=None, seed=None):
        self.base_url = base_url
        self.api_token = api_token
        self.account = account
        self.zone = zone
        self.admin = admin
        self.seed = seed

    @property
    def env(self) -> dict[str, str]:
        env = {"CLOUDFLARE_API_TOKEN": self.api_token}
        if self.base_url:
            env["CLOUDFLARE_BASE_URL"] = self.base_url
        return env

    def writes(self) -> list[dict]:
        return self.admin.log(writes_only=True)

    def require_emulator(self) -> None:
        if self.admin is None:
            pytest.skip("needs the emulator's state, log or faults")


@pytest.fixture
def cloudflare():
    """A Cloudflare emulator with the demo seed and schema validation, or the real API."""
    if REAL_CLOUDFLARE:
        yield CloudflareTarget(None, os.environ["CLOUDFLARE_API_TOKEN"], os.environ["HOMELAB_EDGE_ACCOUNT"],
                               os.environ["HOMELAB_EDGE_ZONE"])
        return
    seed = demo_seed()["cloudflare"]
    seed["validate"] = True
    server, info = cloudflare_api.start(seed, None)
    admin = CloudflareAdmin(info["admin_url"])
    try:
        yield CloudflareTarget(info["base_url"], seed["api_tokens"][0]["value"], "Homelab", "example.com",
                               admin=admin, seed=seed)
        assert admin.schema_violations() == [], "the emulator saw requests or sent responses outside the schema"
    finally:
        server.shutdown()


class DemoEdge:
    """Every emulator of the demo seed, started in this process, and how to reach them."""

    def __init__(self, seed, servers, info):
        self.seed = seed
        self.servers = servers
        self.info = info
        self.env = demo_environment(seed, info)
        self.cloudflare = CloudflareAdmin(info["cloudflare"]["admin_url"])
        self.azure = next(server.app for server in servers if getattr(getattr(server, "app", None), "name", "") == "azure")

    def site_args(self):
        return ["-e", "edge_connect_url=%s" % self.info["edge"]["url"]]


@pytest.fixture
def demo_edge(tmp_path):
    """The whole demo (Cloudflare, Azure, edge and home stand-ins) with a fresh state."""
    if REAL_CLOUDFLARE:
        pytest.skip("needs the emulators")
    seed = demo_seed()
    seed["cloudflare"]["validate"] = True
    seed["azure"].pop("persist", None)
    servers, info = launch.start_all(seed, tmp_path, "127.0.0.1")
    try:
        yield DemoEdge(seed, servers, info)
    finally:
        launch.stop_all(servers)
