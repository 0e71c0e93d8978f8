"""The edge_verify role and the edge_probe module against the edge emulator.

The Cloudflare API emulator, the edge emulator and the Ollama stand-in run in this process.
The Cloudflare play creates the objects, a connector stand-in registers with the tunnel token,
and then each broken setup is made through the emulators' admin routes. Every test checks the
classification and fix that the run reports, and the edge emulator's own record of which step
answered, so that a wrong classification cannot pass by accident.
"""

from __future__ import annotations

import json
import socket
import threading

import httpx
import pytest

from tests.emulators import cloudflare_api, edge
from tests.emulators.admin import CloudflareAdmin, EmulatorAdmin
from tests.integration.conftest import REAL_CLOUDFLARE
from tests.integration.harness import ROOT, demo_seed, run_playbook, write_vars
from tests.standins import connector
from tests.standins.ollama import start as start_ollama

pytestmark = pytest.mark.skipif(REAL_CLOUDFLARE, reason="needs the edge emulator, which only exists locally")

CLOUDFLARE_PLAY = ROOT / "playbooks" / "cloudflare.yml"
VERIFY_PLAY = ROOT / "playbooks" / "verify.yml"
HOSTNAME = "chat.example.com"
OLLAMA_SERVICE = "http://127.0.0.1:11434"
SECRET_ENV = "EDGE_PROBE_TEST_CLIENT_SECRET"


class Edge:
    """The emulators of one test module, with helpers to break and inspect them."""

    def __init__(self, tmp_path):
        self.tmp_path = tmp_path
        self.seed = demo_seed()["cloudflare"]
        self.seed["validate"] = True
        self.cloudflare_server, self.cloudflare_info = cloudflare_api.start(self.seed, None)
        self.edge_server, self.edge_info = edge.start({"origin_response_timeout": 2}, None, cloudflare=self.cloudflare_server.app)
        self.ollama = start_ollama("127.0.0.1", 0, models=["llama3.2"])
        self.cloudflare = CloudflareAdmin(self.cloudflare_info["admin_url"])
        self.edge = EmulatorAdmin(self.edge_info["admin_url"])
        self.api_token = self.seed["api_tokens"][0]["value"]
        self.account_id = self.seed["accounts"][0]["id"]
        self.client_id = None
        self.client_secret = None
        self.connector_id = None
        self.origins = {OLLAMA_SERVICE: self.ollama.url}

    def stop(self):
        self.ollama.stop()
        self.edge_server.shutdown()
        self.cloudflare_server.shutdown()

    @property
    def env(self):
        return {"CLOUDFLARE_API_TOKEN": self.api_token, "CLOUDFLARE_BASE_URL": self.cloudflare_info["base_url"]}

    def variables(self, **extra):
        variables = {
            "edge_cloudflare_account": "Homelab",
            "edge_cloudflare_zone": "example.com",
            "edge_tunnels": [{"name": "home", "origins": "edge_origins", "services": [
                {"hostname": HOSTNAME, "origin": "ollama", "access": {"service_tokens": ["azure-backend"]}}]}],
            "edge_service_tokens": [{"name": "azure-backend", "duration": "8760h"}],
            "edge_connect_url": self.edge_info["url"],
        }
        variables.update(extra)
        return variables

    def create_service_token(self):
        """Create the token through the API, so that the test knows its secret."""
        response = httpx.post(
            "%s/accounts/%s/access/service_tokens" % (self.cloudflare_info["base_url"], self.account_id),
            headers={"Authorization": "Bearer %s" % self.api_token}, json={"name": "azure-backend"}, trust_env=False)
        assert response.status_code == 201, response.text
        self.client_id = response.json()["result"]["client_id"]
        self.client_secret = response.json()["result"]["client_secret"]

    def tunnel(self, state=None):
        state = state or self.cloudflare.state()
        return [t for t in state["tunnels"].values() if t["name"] == "home" and not t["deleted_at"]][0]

    def connect(self):
        tunnel = self.tunnel()
        token = cloudflare_api.tunnel_token(tunnel["account_id"], tunnel["id"], tunnel["secret"])
        self.connector_id = connector.connect(token, self.cloudflare_info["admin_url"], self.edge_info["admin_url"],
                                              origins=self.origins)

    def run_verify(self, secret=None, **extra):
        """Run verify.yml with the token's secret given by the user, through the environment."""
        secrets = {"azure-backend": {"client_id": self.client_id,
                                     "client_secret": "{{ lookup('env', '%s') }}" % SECRET_ENV}}
        variables = self.variables(edge_verify_service_token_secrets=secrets, **extra)
        path = write_vars(self.tmp_path, "verify.json", variables)
        env = dict(self.env, **{SECRET_ENV: secret or self.client_secret})
        return run_playbook(VERIFY_PLAY, "-e", "@%s" % path, env=env)

    def edge_requests(self):
        return self.edge.request("GET", "/edge/requests")["entries"]

    def clear_edge_requests(self):
        self.edge.request("DELETE", "/edge/requests")


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    """Emulators with the demo edge created by the Cloudflare play and a connector registered."""
    setup = Edge(tmp_path_factory.mktemp("edge"))
    try:
        setup.create_service_token()
        path = write_vars(setup.tmp_path, "edge.json", setup.variables())
        run = run_playbook(CLOUDFLARE_PLAY, "-e", "@%s" % path, env=setup.env)
        assert run.returncode == 0, run.explain()
        setup.connect()
        setup.baseline = setup.cloudflare.state()
        yield setup
    finally:
        setup.stop()


@pytest.fixture
def edge_setup(prepared):
    """The prepared emulators, back in their baseline state before each test."""
    prepared.cloudflare.put_state(prepared.baseline)
    prepared.edge.request("POST", "/edge/connectors", {"client_id": prepared.connector_id, "origins": prepared.origins})
    prepared.clear_edge_requests()
    prepared.cloudflare.clear_log()
    yield prepared
    assert prepared.cloudflare.schema_violations() == []


def test_demo_path_passes_with_fresh_token(tmp_path):
    """site.yml's order: Cloudflare play, connector up, verify, with the secret only in memory."""
    setup = Edge(tmp_path)
    try:
        variables = write_vars(tmp_path, "edge.json", setup.variables())
        playbook = tmp_path / "site.yml"
        playbook.write_text(
            "- ansible.builtin.import_playbook: %s\n"
            "- name: Start the connector stand-in, as the cloudflared role would\n"
            "  hosts: localhost\n"
            "  gather_facts: false\n"
            "  tasks:\n"
            "    - name: Read the tunnel token\n"
            "      homelab.edge.cloudflare_tunnel:\n"
            "        account: Homelab\n"
            "        name: home\n"
            "        return_token: true\n"
            "      register: home_tunnel\n"
            "      no_log: true\n"
            "    - name: Register the connector\n"
            "      ansible.builtin.command:\n"
            "        argv: [%s, -m, tests.standins.connector, connect, --cloudflare-admin, %s, --edge-admin, %s,\n"
            "               --origin, '%s=%s']\n"
            "        chdir: %s\n"
            "      environment:\n"
            "        TUNNEL_TOKEN: '{{ home_tunnel.token }}'\n"
            "      changed_when: true\n"
            "- ansible.builtin.import_playbook: %s\n"
            % (CLOUDFLARE_PLAY, ROOT / ".venv" / "bin" / "python", setup.cloudflare_info["admin_url"],
               setup.edge_info["admin_url"], OLLAMA_SERVICE, setup.ollama.url, ROOT, VERIFY_PLAY))

        run = run_playbook(playbook, "-v", "-e", "@%s" % variables, env=setup.env)

        assert run.returncode == 0, run.explain()
        requests = setup.edge_requests()
        anonymous = [r for r in requests if not r["with_service_token"]]
        authenticated = [r for r in requests if r["with_service_token"]]
        assert [r["status"] for r in anonymous] == [401]
        assert [r["outcome"] for r in anonymous] == ["access_401"]
        assert [r["status"] for r in authenticated] == [200, 200], run.explain()
        assert all(r["outcome"] == "origin" and r["origin_host_header"] == "localhost:11434" for r in authenticated)
        tags = [r for r in setup.ollama.requests if r["path"] == "/api/tags"]
        assert len(tags) == 2
        assert all(r["host"] == "localhost:11434" for r in tags)
        assert "(access_denied_401)" in run.output
        assert "(ok)" in run.output

        state = setup.cloudflare.state()
        tunnel = setup.tunnel(state)
        assert tunnel["secret"] not in run.output
        assert cloudflare_api.tunnel_token(tunnel["account_id"], tunnel["id"], tunnel["secret"]) not in run.output
        assert "cfast_" not in run.output
    finally:
        setup.stop()


def test_verify_passes_with_user_secret(edge_setup):
    run = edge_setup.run_verify()

    assert run.returncode == 0, run.explain()
    statuses = [(r["with_service_token"], r["status"]) for r in edge_setup.edge_requests()]
    assert statuses == [(False, 401), (True, 200), (True, 200)]
    assert edge_setup.client_secret not in run.output


def test_unknown_secret_skips_with_message(edge_setup):
    variables = write_vars(edge_setup.tmp_path, "nosecret.json", edge_setup.variables())
    run = run_playbook(VERIFY_PLAY, "-e", "@%s" % variables, env=edge_setup.env)

    assert run.returncode == 0, run.explain()
    assert "its client secret is not known in this run" in run.output
    assert [r["with_service_token"] for r in edge_setup.edge_requests()] == [False]


def break_policy_decision(state):
    for policy in state["access_policies"].values():
        if policy["name"] == "chat.example.com service auth":
            policy["decision"] = "allow"


def break_host_header(state):
    for tunnel in state["tunnels"].values():
        for rule in (tunnel.get("configuration") or {}).get("config", {}).get("ingress", []):
            rule.pop("originRequest", None)


def break_dns_proxied(state):
    for records in state["dns_records"].values():
        for record in records.values():
            if record["name"] == HOSTNAME:
                record["proxied"] = False


BROKEN = [
    pytest.param("policy", "access_login_redirect", "access_login_redirect", "decision non_identity", id="allow-policy"),
    pytest.param("host_header", "origin_host_header", "origin", "httpHostHeader to localhost:11434", id="no-host-rewrite"),
    pytest.param("origin_down", "origin_refused", "origin_unreachable", "start it on the origin host", id="origin-down"),
    pytest.param("connector", "tunnel_down", "tunnel_down", "start cloudflared", id="connector-not-running"),
    pytest.param("dns", "dns", "dns_not_proxied", "proxied", id="dns-not-proxied"),
    pytest.param("secret", "access_denied_401", "access_401", "current client id and secret", id="wrong-secret"),
]


@pytest.mark.parametrize(("broken", "classification", "outcome", "fix"), BROKEN)
def test_broken_setup_names_cause(edge_setup, broken, classification, outcome, fix):
    secret = None
    if broken == "policy":
        edge_setup.cloudflare.mutate_state(break_policy_decision)
    elif broken == "host_header":
        edge_setup.cloudflare.mutate_state(break_host_header)
    elif broken == "origin_down":
        with socket.socket() as unused:
            unused.bind(("127.0.0.1", 0))
            closed_port = unused.getsockname()[1]
        edge_setup.edge.request("POST", "/edge/connectors", {
            "client_id": edge_setup.connector_id, "origins": {OLLAMA_SERVICE: "http://127.0.0.1:%d" % closed_port}})
    elif broken == "connector":
        edge_setup.cloudflare.remove_connector(edge_setup.connector_id)
    elif broken == "dns":
        edge_setup.cloudflare.mutate_state(break_dns_proxied)
    elif broken == "secret":
        secret = "cfast_" + "x" * 48

    run = edge_setup.run_verify(secret=secret)

    assert run.returncode != 0, run.explain()
    assert "(%s)" % classification in run.output, run.explain()
    assert fix in run.output, run.explain()
    authenticated = [r for r in edge_setup.edge_requests() if r["with_service_token"]]
    assert authenticated, "the probe with the service token never reached the edge"
    assert authenticated[0]["outcome"] == outcome
    assert edge_setup.client_secret not in run.output
    if secret:
        assert secret not in run.output


def test_bot_fight_mode_warns_and_blocks(edge_setup):
    def turn_on(state):
        for zone in state["zones"].values():
            zone["bot_fight_mode"] = True
    edge_setup.cloudflare.mutate_state(turn_on)

    run = edge_setup.run_verify()

    assert run.returncode != 0
    assert "Bot Fight Mode is on for zone example.com" in run.output, run.explain()
    assert "(cloudflare_error_1010)" in run.output, run.explain()
    outcomes = {r["outcome"] for r in edge_setup.edge_requests()}
    assert outcomes == {"bot_fight_mode"}
    reads = edge_setup.cloudflare.log(path="/bot_management")
    assert [entry["status"] for entry in reads] == [200]


# --- the emulator's other steps, probed with the module directly --------------------------------


def probe(edge_setup, tmp_path, **options):
    """Run one edge_probe task and return its registered result."""
    task = dict({"url": "https://%s/api/tags" % HOSTNAME, "connect_url": edge_setup.edge_info["url"],
                 "expect": ["ok"]}, **options)
    result_file = tmp_path / "probe-result.json"
    playbook = tmp_path / "probe.yml"
    playbook.write_text(json.dumps([{"hosts": "localhost", "gather_facts": False, "tasks": [
        {"name": "Probe", "homelab.edge.edge_probe": task, "register": "probe", "failed_when": False},
        {"name": "Keep the result", "ansible.builtin.copy": {"content": "{{ probe | to_json }}", "dest": str(result_file)}},
    ]}]))
    run = run_playbook(playbook, env=edge_setup.env)
    assert run.returncode == 0, run.explain()
    return json.loads(result_file.read_text())


def test_waf_block_rule_gives_1020(edge_setup, tmp_path):
    zone_id = edge_setup.seed["zones"][0]["id"]
    response = httpx.put(
        "%s/zones/%s/rulesets/phases/http_request_firewall_custom/entrypoint" % (edge_setup.cloudflare_info["base_url"], zone_id),
        headers={"Authorization": "Bearer %s" % edge_setup.api_token}, trust_env=False,
        json={"rules": [{"action": "block", "expression": 'not http.request.uri.path in {"/api/chat"}'}]})
    assert response.status_code == 200, response.text

    result = probe(edge_setup, tmp_path)

    assert result["classification"] == "cloudflare_error_1020"
    assert result["error_code"] == 1020
    assert result["status"] == 403
    assert result["cf_ray"]
    assert [r["outcome"] for r in edge_setup.edge_requests()] == ["waf_block"]


def test_rate_limit_gives_429(edge_setup, tmp_path):
    zone_id = edge_setup.seed["zones"][0]["id"]
    rule = {"action": "block", "expression": 'http.request.uri.path eq "/api/tags"',
            "ratelimit": {"characteristics": ["cf.colo.id", "ip.src"], "period": 10, "requests_per_period": 1,
                          "mitigation_timeout": 10}}
    response = httpx.put(
        "%s/zones/%s/rulesets/phases/http_ratelimit/entrypoint" % (edge_setup.cloudflare_info["base_url"], zone_id),
        headers={"Authorization": "Bearer %s" % edge_setup.api_token}, trust_env=False, json={"rules": [rule]})
    assert response.status_code == 200, response.text

    result = probe(edge_setup, tmp_path, repeat=2, expect=["access_denied_401"])

    assert [attempt["classification"] for attempt in result["attempts"]] == ["access_denied_401", "rate_limited"]
    assert result["status"] == 429
    assert [r["outcome"] for r in edge_setup.edge_requests()] == ["access_401", "rate_limited"]
    edge_setup.cloudflare.advance_clock(11)
    again = probe(edge_setup, tmp_path, expect=["access_denied_401"])
    assert again["passed"] is True


def test_origin_timeout_gives_524(edge_setup, tmp_path):
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(1)
    accepted = []
    threading.Thread(target=lambda: accepted.append(silent.accept()), daemon=True).start()
    edge_setup.edge.request("POST", "/edge/connectors", {
        "client_id": edge_setup.connector_id, "origins": {OLLAMA_SERVICE: "http://127.0.0.1:%d" % silent.getsockname()[1]}})
    try:
        result = probe(edge_setup, tmp_path, client_id=edge_setup.client_id, client_secret=edge_setup.client_secret)
    finally:
        silent.close()

    assert result["classification"] == "origin_timeout"
    assert result["status"] == 524
    assert "stream" in result["fix"]
    assert [r["outcome"] for r in edge_setup.edge_requests()] == ["origin_timeout"]


def test_no_ingress_rule_reaches_catch_all(edge_setup, tmp_path):
    def drop_rule(state):
        for tunnel in state["tunnels"].values():
            config = (tunnel.get("configuration") or {}).get("config")
            if config:
                config["ingress"] = [rule for rule in config["ingress"] if rule.get("hostname") != HOSTNAME]
    edge_setup.cloudflare.mutate_state(drop_rule)

    result = probe(edge_setup, tmp_path, client_id=edge_setup.client_id, client_secret=edge_setup.client_secret)

    assert result["classification"] == "no_ingress_rule"
    assert result["status"] == 404
    assert [r["outcome"] for r in edge_setup.edge_requests()] == ["ingress_status"]


def test_streamed_chat_passes_through(edge_setup):
    response = httpx.post(
        edge_setup.edge_info["url"] + "/api/chat", trust_env=False,
        headers={"Host": HOSTNAME, "CF-Access-Client-Id": edge_setup.client_id,
                 "CF-Access-Client-Secret": edge_setup.client_secret},
        json={"model": "llama3.2", "messages": [{"role": "user", "content": "hi there"}]})

    assert response.status_code == 200
    assert response.headers["transfer-encoding"] == "chunked"
    lines = [json.loads(line) for line in response.text.splitlines()]
    assert lines[-1]["done"] is True
    assert len(lines) > 2
    forwarded = [r for r in edge_setup.ollama.requests if r["path"] == "/api/chat"][-1]
    assert forwarded["host"] == "localhost:11434"
