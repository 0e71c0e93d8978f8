"""The Cloudflare play of site.yml against the Cloudflare API emulator (or the real API)."""

from __future__ import annotations

import re

import httpx
import pytest

from tests.emulators import cloudflare_api
from tests.integration.harness import ROOT, run_playbook, write_vars

SITE = ROOT / "playbooks" / "cloudflare.yml"
SECRET_PATTERN = re.compile(r"cfast_[A-Za-z0-9]{40}")


def edge_vars(target, **service_overrides):
    service = {
        "hostname": "chat." + target.zone,
        "origin": "ollama",
        "access": {"service_tokens": ["azure-backend"]},
    }
    service.update(service_overrides)
    return {
        "edge_cloudflare_account": target.account,
        "edge_cloudflare_zone": target.zone,
        "edge_tunnels": [{"name": "home", "origins": "edge_origins", "services": [service]}],
        "edge_service_tokens": [{"name": "azure-backend", "duration": "8760h"}],
    }


def run_site(target, tmp_path, *args, variables=None, name="edge.json"):
    extra = write_vars(tmp_path, name, variables or edge_vars(target))
    return run_playbook(SITE, "-e", "@%s" % extra, *args, env=target.env)


def records(state, name=None):
    """Return the DNS records of every zone in the emulator state, optionally only those named ``name``."""
    found = [record for zone in state["dns_records"].values() for record in zone.values()]
    return [record for record in found if name is None or record["name"] == name]


def live_tunnels(state, name):
    return [t for t in state["tunnels"].values() if t["name"] == name and not t.get("deleted_at")]


def named(collection, name, key="name"):
    return [item for item in collection.values() if item.get(key) == name]


def test_first_run_creates_every_object(cloudflare, tmp_path):
    cloudflare.require_emulator()
    run = run_site(cloudflare, tmp_path)
    assert run.returncode == 0, run.explain()

    state = cloudflare.admin.state()
    tunnels = live_tunnels(state, "home")
    assert len(tunnels) == 1
    tunnel = tunnels[0]
    assert tunnel["config_src"] == "cloudflare"

    ingress = tunnel["configuration"]["config"]["ingress"]
    assert ingress[0]["hostname"] == "chat.example.com"
    assert ingress[0]["service"] == "http://127.0.0.1:11434"
    assert ingress[0]["originRequest"]["httpHostHeader"] == "localhost:11434"
    assert ingress[-1] == {"service": "http_status:404"}

    chat = records(state, "chat.example.com")
    assert len(chat) == 1
    assert chat[0]["type"] == "CNAME"
    assert chat[0]["content"] == tunnel["id"] + ".cfargotunnel.com"
    assert chat[0]["proxied"] is True

    tokens = named(state["service_tokens"], "azure-backend")
    assert len(tokens) == 1

    policies = named(state["access_policies"], "chat.example.com service auth")
    assert len(policies) == 1
    assert policies[0]["decision"] == "non_identity"
    assert policies[0]["include"] == [{"service_token": {"token_id": tokens[0]["id"]}}]

    apps = named(state["access_apps"], "chat.example.com", key="domain")
    assert len(apps) == 1
    assert apps[0]["type"] == "self_hosted"
    assert [link["id"] for link in apps[0]["policies"]] == [policies[0]["id"]]
    assert apps[0]["service_auth_401_redirect"] is True

    seeded = cloudflare.seed["dns_records"]
    assert len(records(state)) == len(seeded) + 1


def test_second_run_changes_nothing(cloudflare, tmp_path):
    first = run_site(cloudflare, tmp_path)
    assert first.returncode == 0, first.explain()
    if cloudflare.admin:
        cloudflare.admin.clear_log()

    second = run_site(cloudflare, tmp_path)

    assert second.returncode == 0, second.explain()
    assert second.changed == 0, second.explain()
    if cloudflare.admin:
        assert cloudflare.writes() == []
        reads = cloudflare.admin.log()
        # One read per managed object (token, tunnel, ingress, DNS record, policies, application)
        # plus the account and zone lookups.
        assert len(reads) <= 8, [entry["path"] for entry in reads]


def test_check_diff_shows_drift_without_writing(cloudflare, tmp_path):
    cloudflare.require_emulator()
    first = run_site(cloudflare, tmp_path)
    assert first.returncode == 0, first.explain()

    def drift(state):
        for record in records(state, "chat.example.com"):
            record["proxied"] = False
        for tunnel in live_tunnels(state, "home"):
            tunnel["configuration"]["config"]["ingress"][0].pop("originRequest")
    cloudflare.admin.mutate_state(drift)
    cloudflare.admin.clear_log()

    check = run_site(cloudflare, tmp_path, "--check", "--diff", "-vvv")

    assert check.returncode == 0, check.explain()
    assert cloudflare.writes() == []
    assert "-        proxied: false" in check.output or "proxied: false" in check.output, check.explain()
    assert "+                httpHostHeader: localhost:11434" in check.output, check.explain()
    assert cloudflare.api_token not in check.output
    assert not SECRET_PATTERN.search(check.output)

    fixed = run_site(cloudflare, tmp_path)
    assert fixed.returncode == 0, fixed.explain()
    record = records(cloudflare.admin.state(), "chat.example.com")[0]
    assert record["proxied"] is True


def test_verbose_output_holds_no_secret(cloudflare, tmp_path):
    cloudflare.require_emulator()
    variables = edge_vars(cloudflare)
    extra = write_vars(tmp_path, "edge.json", variables)
    token_playbook = tmp_path / "token.yml"
    token_playbook.write_text(
        "- hosts: localhost\n"
        "  gather_facts: false\n"
        "  tasks:\n"
        "    - name: Read the tunnel token\n"
        "      homelab.edge.cloudflare_tunnel:\n"
        "        account: Homelab\n"
        "        name: home\n"
        "        return_token: true\n"
        "      register: home_tunnel\n"
        "      no_log: true\n"
        "    - name: Check the token\n"
        "      ansible.builtin.assert:\n"
        "        that: home_tunnel.token | length > 40\n"
        "        quiet: true\n"
    )
    site = run_playbook(SITE, "-vvv", "--diff", "-e", "@%s" % extra, env=cloudflare.env)
    token = run_playbook(token_playbook, "-vvv", env=cloudflare.env)
    assert site.returncode == 0, site.explain()
    assert token.returncode == 0, token.explain()

    state = cloudflare.admin.state()
    tunnel = live_tunnels(state, "home")[0]
    tunnel_token = cloudflare_api.tunnel_token(tunnel["account_id"], tunnel["id"], tunnel["secret"])
    for output in (site.output, token.output):
        assert cloudflare.api_token not in output
        assert not SECRET_PATTERN.search(output)
        assert tunnel["secret"] not in output
        assert tunnel_token not in output


BAD_INPUTS = [
    pytest.param(
        {"edge_tunnels": [{"name": "home", "services": [{"hostname": "https://chat.example.com", "origin": "ollama"}]}]},
        "https://chat.example.com", id="url-as-hostname"),
    pytest.param(
        {"edge_tunnels": [{"name": "home", "catch_all": "http_status:999",
                           "services": [{"hostname": "chat.example.com", "origin": "ollama"}]}]},
        "999", id="bad-catch-all-status"),
    pytest.param(
        {"edge_tunnels": [{"name": "home", "services": [{"hostname": "chat.example.com",
                                                         "service": "localhost:11434"}]}]},
        "localhost:11434", id="service-without-scheme"),
    pytest.param(
        {"edge_cloudflare_zone": "nosuch.example"},
        "nosuch.example", id="unknown-zone"),
    pytest.param(
        {"edge_service_tokens": [{"name": "azure-backend", "duration": "one year"}]},
        "one year", id="bad-duration"),
    pytest.param(
        {"edge_tunnels": [{"name": "home", "services": [
            {"hostname": "chat.example.com", "origin": "ollama",
             "access": {"service_tokens": ["azure-backend"], "decision": "allow"}}]}]},
        "non_identity", id="service-token-under-allow"),
]


@pytest.mark.parametrize(("override", "expected"), BAD_INPUTS)
def test_bad_input_fails_before_any_write(cloudflare, tmp_path, override, expected):
    cloudflare.require_emulator()
    variables = edge_vars(cloudflare)
    variables.update(override)
    run = run_site(cloudflare, tmp_path, variables=variables)
    assert run.returncode != 0, run.explain()
    assert expected in run.output, run.explain()
    assert cloudflare.writes() == []


def test_bad_api_token_fails_with_hint(cloudflare, tmp_path):
    cloudflare.require_emulator()
    extra = write_vars(tmp_path, "edge.json", edge_vars(cloudflare))
    run = run_playbook(SITE, "-e", "@%s" % extra, env=dict(cloudflare.env, CLOUDFLARE_API_TOKEN="not-a-real-token"))
    assert run.returncode != 0
    assert "HTTP 403" in run.output, run.explain()
    assert "10000" in run.output, run.explain()
    assert "permission" in run.output
    assert "not-a-real-token" not in run.output
    assert cloudflare.writes() == []


def test_token_without_dns_permission_writes_nothing(cloudflare, tmp_path):
    cloudflare.require_emulator()
    limited = cloudflare.seed["api_tokens"][1]
    assert "DNS Write" not in limited["permissions"]
    extra = write_vars(tmp_path, "edge.json", edge_vars(cloudflare))
    run = run_playbook(SITE, "-e", "@%s" % extra, env=dict(cloudflare.env, CLOUDFLARE_API_TOKEN=limited["value"]))
    assert run.returncode != 0
    assert "DNS records named 'chat.example.com'" in run.output, run.explain()
    assert "10000" in run.output
    assert cloudflare.writes() == []


def test_duplicate_service_token_names_are_an_error(cloudflare, tmp_path):
    cloudflare.require_emulator()
    base = cloudflare.base_url
    headers = {"Authorization": "Bearer %s" % cloudflare.api_token}
    account = cloudflare.seed["accounts"][0]["id"]
    for attempt in range(2):
        response = httpx.post("%s/accounts/%s/access/service_tokens" % (base, account), headers=headers,
                              json={"name": "azure-backend"}, trust_env=False)
        assert response.status_code == 201
    cloudflare.admin.clear_log()

    run = run_site(cloudflare, tmp_path)

    assert run.returncode != 0
    assert "2 service tokens are named 'azure-backend'" in run.output, run.explain()
    assert cloudflare.writes() == []


def test_cname_owned_by_something_else_is_kept(cloudflare, tmp_path):
    cloudflare.require_emulator()
    base = cloudflare.base_url
    headers = {"Authorization": "Bearer %s" % cloudflare.api_token}
    zone = cloudflare.seed["zones"][0]["id"]
    response = httpx.post("%s/zones/%s/dns_records" % (base, zone), headers=headers, trust_env=False,
                          json={"name": "chat.example.com", "type": "CNAME", "content": "other.example.net",
                                "ttl": 1, "proxied": False})
    assert response.status_code == 200
    cloudflare.admin.clear_log()

    run = run_site(cloudflare, tmp_path)

    assert run.returncode != 0
    assert "already exists and points to 'other.example.net'" in run.output, run.explain()
    assert "overwrite" in run.output
    assert cloudflare.writes() == []

    taken = edge_vars(cloudflare, dns={"overwrite": True})
    run = run_site(cloudflare, tmp_path, variables=taken, name="taken.json")
    assert run.returncode == 0, run.explain()
    chat = records(cloudflare.admin.state(), "chat.example.com")
    assert len(chat) == 1
    assert chat[0]["content"].endswith(".cfargotunnel.com")


def test_runs_converge_through_throttling_and_errors(cloudflare, tmp_path):
    cloudflare.require_emulator()
    cloudflare.admin.add_fault(method="GET", path=r"/access/service_tokens$", status=429, retry_after=1, count=1)
    cloudflare.admin.add_fault(method="POST", path=r"/cfd_tunnel$", status=429, count=1)
    cloudflare.admin.add_fault(method="PUT", path=r"/configurations$", status=500, count=1)
    cloudflare.admin.add_fault(method="GET", path=r"/dns_records$", status=503, count=2)

    run = run_site(cloudflare, tmp_path, "-v")

    assert run.returncode == 0, run.explain()
    assert "were retried" in run.output, run.explain()
    state = cloudflare.admin.state()
    assert len(live_tunnels(state, "home")) == 1
    assert len(named(state["service_tokens"], "azure-backend")) == 1
    faulted = [entry for entry in cloudflare.admin.log() if entry.get("fault")]
    assert len(faulted) == 5

    again = run_site(cloudflare, tmp_path)
    assert again.changed == 0, again.explain()


def test_fault_outlasting_retries_fails_clearly(cloudflare, tmp_path):
    cloudflare.require_emulator()
    cloudflare.admin.add_fault(method="GET", path=r"/accounts$", status=503, count=None)
    variables = edge_vars(cloudflare)
    extra = write_vars(tmp_path, "edge.json", variables)
    playbook = tmp_path / "one.yml"
    playbook.write_text(
        "- hosts: localhost\n"
        "  gather_facts: false\n"
        "  tasks:\n"
        "    - name: Look up the tunnel\n"
        "      homelab.edge.cloudflare_tunnel_info:\n"
        "        account: Homelab\n"
        "        max_retries: 2\n"
    )
    run = run_playbook(playbook, "-e", "@%s" % extra, env=cloudflare.env)
    assert run.returncode != 0
    assert "HTTP 503" in run.output, run.explain()
    assert "Gave up after 2 retries" in run.output, run.explain()
