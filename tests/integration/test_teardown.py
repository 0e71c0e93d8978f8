"""playbooks/teardown.yml against the Cloudflare emulator: removes what site.yml made, and only that."""

from __future__ import annotations

import httpx

from tests.emulators import cloudflare_api
from tests.integration.harness import ROOT, run_playbook, write_vars
from tests.integration.test_cloudflare_site import edge_vars, live_tunnels, named, records

CLOUDFLARE_PLAY = ROOT / "playbooks" / "cloudflare.yml"
TEARDOWN = ROOT / "playbooks" / "teardown.yml"


def api(cloudflare, method, path, body=None):
    response = httpx.request(method, "%s/%s" % (cloudflare.base_url, path), json=body, trust_env=False,
                             headers={"Authorization": "Bearer %s" % cloudflare.api_token})
    assert response.status_code < 300, response.text
    return response.json()["result"]


def full_edge(cloudflare):
    variables = edge_vars(cloudflare, rate_limit={"requests": 30, "period": 10},
                          firewall={"methods": ["GET", "POST"], "paths": ["/api/chat", "/api/tags"]})
    return variables


def test_teardown_removes_only_what_site_created(cloudflare, tmp_path):
    cloudflare.require_emulator()
    extra = write_vars(tmp_path, "edge.json", full_edge(cloudflare))
    zone = cloudflare.seed["zones"][0]["id"]

    # Someone else's rule in the same entrypoint, set before the site run.
    api(cloudflare, "PUT", "zones/%s/rulesets/phases/http_request_firewall_custom/entrypoint" % zone,
        {"rules": [{"ref": "theirs", "expression": "(ip.src eq 192.0.2.1)", "action": "block"}]})
    site = run_playbook(CLOUDFLARE_PLAY, "-e", "@%s" % extra, env=cloudflare.env)
    assert site.returncode == 0, site.explain()

    # Someone else's record that points at the same tunnel's hostname pattern must stay too.
    api(cloudflare, "POST", "zones/%s/dns_records" % zone,
        {"name": "blog.example.com", "type": "CNAME", "content": "blog.example.net", "ttl": 1, "proxied": True})
    state = cloudflare.admin.state()
    tunnel = live_tunnels(state, "home")[0]
    cloudflare.admin.register_connector(cloudflare_api.tunnel_token(tunnel["account_id"], tunnel["id"], tunnel["secret"]))
    records_before = len(records(cloudflare.admin.state()))

    teardown = run_playbook(TEARDOWN, "-e", "@%s" % extra, env=cloudflare.env)

    assert teardown.returncode == 0, teardown.explain()
    state = cloudflare.admin.state()
    assert live_tunnels(state, "home") == []
    assert named(state["service_tokens"], "azure-backend") == []
    assert named(state["access_policies"], "chat.example.com service auth") == []
    assert named(state["access_apps"], "chat.example.com", key="domain") == []
    assert records(state, "chat.example.com") == []
    assert len(records(state, "blog.example.com")) == 1
    assert len(records(state)) == records_before - 1
    refs = [rule.get("ref") for phases in state["rulesets"].values() for ruleset in phases.values()
            for rule in ruleset.get("rules", [])]
    assert refs == ["theirs"]

    again = run_playbook(TEARDOWN, "-e", "@%s" % extra, env=cloudflare.env)
    assert again.returncode == 0, again.explain()
    assert again.changed == 0, again.explain()


def test_teardown_check_mode_writes_nothing(cloudflare, tmp_path):
    cloudflare.require_emulator()
    extra = write_vars(tmp_path, "edge.json", full_edge(cloudflare))
    site = run_playbook(CLOUDFLARE_PLAY, "-e", "@%s" % extra, env=cloudflare.env)
    assert site.returncode == 0, site.explain()
    cloudflare.admin.clear_log()

    check = run_playbook(TEARDOWN, "--check", "--diff", "-e", "@%s" % extra, env=cloudflare.env)

    assert check.returncode == 0, check.explain()
    assert cloudflare.writes() == []
    assert "tunnel home" in check.output
    assert len(live_tunnels(cloudflare.admin.state(), "home")) == 1
