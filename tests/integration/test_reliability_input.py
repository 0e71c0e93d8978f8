"""Malformed module arguments and inventories: each one fails with an error that names the value.

All cases run in one playbook, each in a block whose rescue records the failure message, so
that one ansible-playbook process covers the whole table. The emulator's request log must show
no write at the end.
"""

from __future__ import annotations

import json

import pytest

from tests.emulators import cloudflare_api
from tests.emulators.admin import CloudflareAdmin
from tests.integration.harness import demo_seed, run_playbook

GOOD_SERVICE = {"hostname": "chat.example.com", "origin": "ollama", "access": {"service_tokens": ["azure-backend"]}}
GOOD_TOKEN = {"name": "azure-backend", "duration": "8760h"}


def edge(services=None, tokens=None, **tunnel):
    """Return cloudflare_edge arguments with one tunnel; keyword arguments replace tunnel keys."""
    spec = {"name": "home", "services": services if services is not None else [dict(GOOD_SERVICE)]}
    spec.update(tunnel)
    return {"account": "Homelab", "zone": "example.com", "service_tokens": tokens or [dict(GOOD_TOKEN)],
            "tunnels": [spec]}


def service(**changes):
    item = dict(GOOD_SERVICE)
    for key, value in changes.items():
        if value is None:
            item.pop(key, None)
        else:
            item[key] = value
    return item


def inventory(**changes):
    """Return role variables (an inventory) of the demo with some keys replaced."""
    variables = {
        "edge_cloudflare_account": "Homelab",
        "edge_cloudflare_zone": "example.com",
        "edge_tunnels": [{"name": "home", "origins": "edge_origins", "services": [dict(GOOD_SERVICE)]}],
        "edge_service_tokens": [dict(GOOD_TOKEN)],
    }
    variables.update(changes)
    return variables


# (case id, module or "role", arguments or role variables, texts the message must contain)
CASES = [
    ("tunnel config_src", "cloudflare_tunnel", {"account": "Homelab", "name": "t", "config_src": "remote"},
     ["config_src", "remote"]),
    ("tunnel without name", "cloudflare_tunnel", {"account": "Homelab"}, ["name"]),
    ("dns name with scheme", "cloudflare_dns_record",
     {"zone": "example.com", "name": "https://chat.example.com", "type": "CNAME", "content": "x.example.net"},
     ["https://chat.example.com", "without a scheme"]),
    ("dns name outside zone", "cloudflare_dns_record",
     {"zone": "example.com", "name": "chat.example.org.", "type": "CNAME", "content": "x.example.net"},
     ["chat.example.org.", "not inside zone"]),
    ("dns type unknown", "cloudflare_dns_record",
     {"zone": "example.com", "name": "chat", "type": "CNAMEX", "content": "x.example.net"}, ["type", "CNAMEX"]),
    ("dns ttl not a number", "cloudflare_dns_record",
     {"zone": "example.com", "name": "chat", "type": "A", "content": "192.0.2.1", "ttl": "soon"}, ["ttl", "soon"]),
    ("token duration", "cloudflare_access_service_token",
     {"account": "Homelab", "name": "t", "duration": "1 year"}, ["1 year", "8760h"]),
    ("policy decision with tokens", "cloudflare_access_policy",
     {"account": "Homelab", "name": "p", "decision": "allow", "service_tokens": ["azure-backend"]},
     ["allow", "non_identity"]),
    ("policy decision unknown", "cloudflare_access_policy",
     {"account": "Homelab", "name": "p", "decision": "permit"}, ["decision", "permit"]),
    ("ingress origin unknown", "cloudflare_tunnel_ingress",
     {"account": "Homelab", "tunnel": "home", "rules": [{"hostname": "chat.example.com", "origin": "postgres"}]},
     ["postgres"]),
    ("ingress service scheme", "cloudflare_tunnel_ingress",
     {"account": "Homelab", "tunnel": "home", "rules": [{"hostname": "chat.example.com", "service": "ftp://h:21"}]},
     ["ftp://h:21"]),
    ("ingress wildcard inside", "cloudflare_tunnel_ingress",
     {"account": "Homelab", "tunnel": "home",
      "rules": [{"hostname": "chat.*.example.com", "service": "http://127.0.0.1:1"}]},
     ["chat.*.example.com"]),
    ("ingress mode unknown", "cloudflare_tunnel_ingress",
     {"account": "Homelab", "tunnel": "home", "mode": "replace",
      "rules": [{"hostname": "chat.example.com", "service": "http://127.0.0.1:1"}]}, ["mode", "replace"]),
    ("rule period", "cloudflare_ruleset_rule",
     {"zone": "example.com", "phase": "http_ratelimit", "ref": "r", "expression": 'http.host eq "a.example.com"',
      "action": "block", "ratelimit": {"requests_per_period": 5, "period": 7, "characteristics": ["ip.src"]}},
     ["7"]),
    ("rule phase unknown", "cloudflare_ruleset_rule",
     {"zone": "example.com", "phase": "http_request_late", "ref": "r", "expression": "true", "action": "block"},
     ["phase", "http_request_late"]),
    ("edge hostname missing", "cloudflare_edge", edge(services=[service(hostname=None)]), ["hostname"]),
    ("edge hostname outside zone", "cloudflare_edge", edge(services=[service(hostname="chat.example.org")]),
     ["chat.example.org", "example.com"]),
    ("edge no origin", "cloudflare_edge", edge(services=[service(origin=None)]), ["chat.example.com", "origin"]),
    ("edge tunnel twice", "cloudflare_edge",
     {**edge(), "tunnels": [{"name": "home", "services": []}, {"name": "home", "services": []}]},
     ["home", "twice"]),
    ("edge hostname twice", "cloudflare_edge", edge(services=[dict(GOOD_SERVICE), dict(GOOD_SERVICE)]),
     ["chat.example.com"]),
    ("edge rate limit requests", "cloudflare_edge",
     edge(services=[service(rate_limit={"requests": 0, "period": 10})]), ["rate_limit.requests", "0"]),
    ("edge rate limit period", "cloudflare_edge",
     edge(services=[service(rate_limit={"requests": 5, "period": 7})]), ["rate_limit.period", "7"]),
    ("edge firewall method", "cloudflare_edge",
     edge(services=[service(firewall={"methods": ["FETCH"]})]), ["FETCH"]),
    ("edge firewall path", "cloudflare_edge",
     edge(services=[service(firewall={"paths": ["api/chat"]})]), ["api/chat", "starts with /"]),
    ("edge token duration", "cloudflare_edge", edge(tokens=[{"name": "azure-backend", "duration": "one year"}]),
     ["one year"]),
    ("edge token twice", "cloudflare_edge", edge(tokens=[dict(GOOD_TOKEN), dict(GOOD_TOKEN)]),
     ["azure-backend", "twice"]),
    ("edge decision with tokens", "cloudflare_edge",
     edge(services=[service(access={"service_tokens": ["azure-backend"], "decision": "allow"})]),
     ["allow", "non_identity"]),
    ("edge ingress mode", "cloudflare_edge", edge(ingress_mode="replace"), ["ingress_mode", "replace"]),
    ("edge origin preset", "cloudflare_edge", edge(services=[service(origin="postgres")]), ["postgres"]),
    ("edge config_src", "cloudflare_edge", edge(config_src="remote"), ["config_src", "remote"]),
    ("edge no zone", "cloudflare_edge", {**edge(), "zone": None}, ["chat.example.com", "zone"]),
    ("role tunnels not a list", "role", inventory(edge_tunnels="home"), ["tunnels"]),
    ("role tunnel without name", "role",
     inventory(edge_tunnels=[{"services": [dict(GOOD_SERVICE)]}]), ["name"]),
    ("role service with scheme", "role",
     inventory(edge_tunnels=[{"name": "home", "services": [service(hostname="https://chat.example.com")]}]),
     ["https://chat.example.com"]),
    ("role token duration", "role",
     inventory(edge_service_tokens=[{"name": "azure-backend", "duration": "soon"}]), ["soon"]),
]


def case_block(index: int, case_id: str, module: str, arguments: dict) -> dict:
    if module == "role":
        task = {"name": "case %d" % index, "ansible.builtin.include_role": {"name": "homelab.edge.cloudflare_edge"},
                "vars": arguments}
    else:
        task = {"name": "case %d" % index, "homelab.edge.%s" % module: arguments}
    return {
        "name": "Case %d: %s" % (index, case_id),
        "block": [task, {"name": "case %d passed" % index, "ansible.builtin.set_fact": {"unexpected_%d" % index: True}}],
        "rescue": [{"name": "case %d error" % index,
                    "ansible.builtin.set_fact": {"message_%d" % index: "{{ ansible_failed_result.msg }}"}}],
    }


@pytest.fixture(scope="module")
def outcome(tmp_path_factory):
    """Run every case once against a fresh emulator; return the message per case id and the request log.

    A case that did not fail maps to None.
    """
    seed = demo_seed()["cloudflare"]
    server, info = cloudflare_api.start(seed, None)
    admin = CloudflareAdmin(info["admin_url"])
    env = {"CLOUDFLARE_API_TOKEN": seed["api_tokens"][0]["value"], "CLOUDFLARE_BASE_URL": info["base_url"],
           "ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json"}
    blocks = [case_block(index, case_id, module, arguments)
              for index, (case_id, module, arguments, _expected) in enumerate(CASES)]
    playbook = tmp_path_factory.mktemp("input") / "input.yml"
    playbook.write_text(json.dumps([{"hosts": "localhost", "gather_facts": False, "tasks": blocks}]))
    try:
        run = run_playbook(playbook, env=env)
        log = admin.log()
    finally:
        server.shutdown()
    report = json.loads(run.output[run.output.find("{"):])
    messages = {}
    for play in report["plays"]:
        for task in play["tasks"]:
            facts = task["hosts"].get("localhost", {}).get("ansible_facts", {})
            for key, value in facts.items():
                index = int(key.rsplit("_", 1)[1])
                messages[CASES[index][0]] = None if key.startswith("unexpected_") else str(value)
    return messages, log


def test_input_table_has_thirty_cases():
    assert len(CASES) >= 30
    assert len({case[0] for case in CASES}) == len(CASES)


def test_bad_input_sends_no_write(outcome):
    _messages, log = outcome
    writes = [entry for entry in log if entry["write"]]
    print("bad input: %d cases, %d requests, %d writes" % (len(CASES), len(log), len(writes)))
    assert writes == []


@pytest.mark.parametrize("case_id, needles", [(case[0], case[3]) for case in CASES], ids=[case[0] for case in CASES])
def test_bad_input_named_in_error(outcome, case_id, needles):
    messages, _log = outcome
    assert case_id in messages, "case %s did not run" % case_id
    message = messages[case_id]
    assert message is not None, "case %s was accepted" % case_id
    for needle in needles:
        assert needle in message, "case %s: %r not in the error: %s" % (case_id, needle, message)
