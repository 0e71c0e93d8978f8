"""Every Cloudflare module, and the aggregate, under throttling, server errors, resets and slow answers.

One playbook runs each resource module on its own objects and then the cloudflare_edge plan and
apply on the demo data model. Before each module task, a ``uri`` task adds fault rules to the
emulator, so that the module's first read (and, for throttling, its first write) fails once.
The fault kinds rotate over the modules from one test case to the next: by default two
rotations, so every module meets two of the seven kinds and every kind meets at least two modules.
HOMELAB_EDGE_FAULT_ROTATIONS=all runs all seven rotations, so every module meets every kind. The checks use the emulator's request log
and state: each failed request was sent again and succeeded, and each object exists once.
"""

from __future__ import annotations

import json
import os

import pytest

from tests.integration.harness import run_playbook, write_vars
from tests.integration.test_cloudflare_site import SITE, edge_vars, live_tunnels, named, records
from tests.integration.test_reliability_interrupt import wait_until

# (label, fault rule without method, path and count); the rule then matches the module's first
# request of the given method.
FAULTS = [
    ("429 with Retry-After", {"kind": "status", "status": 429, "retry_after": 1}),
    ("429 without Retry-After", {"kind": "status", "status": 429}),
    ("500", {"kind": "status", "status": 500}),
    ("502", {"kind": "status", "status": 502}),
    ("503", {"kind": "status", "status": 503}),
    ("connection reset", {"kind": "reset"}),
    ("slow answer", {"kind": "delay", "delay": 1.5}),
]
THROTTLES = ("429 with Retry-After", "429 without Retry-After")
# Method of each module's first write on a fresh emulator. Only 429 is injected into writes: a
# 5xx or a reset leaves a create's outcome unknown, which test_lost_create_not_sent_twice covers.
WRITE_METHODS = {
    "cloudflare_access_service_token": "POST",
    "cloudflare_tunnel": "POST",
    "cloudflare_tunnel_ingress": "PUT",
    "cloudflare_dns_record": "POST",
    "cloudflare_access_policy": "POST",
    "cloudflare_access_application": "POST",
    "cloudflare_ruleset_rule": "PUT",
    "cloudflare_edge": "POST",
}

# Module tasks of the playbook: (module, arguments, no_log). Each one creates its own object.
MODULE_TASKS = [
    ("cloudflare_access_service_token", {"account": "Homelab", "name": "solo-token", "duration": "8760h"}, True),
    ("cloudflare_tunnel", {"account": "Homelab", "name": "solo"}, False),
    ("cloudflare_tunnel_ingress", {"account": "Homelab", "tunnel": "solo",
                                   "rules": [{"hostname": "solo.example.com", "service": "http://127.0.0.1:8080"}]},
     False),
    ("cloudflare_dns_record", {"zone": "example.com", "account": "Homelab", "name": "solo", "type": "CNAME",
                               "tunnel": "solo", "proxied": True}, False),
    ("cloudflare_access_policy", {"account": "Homelab", "name": "solo policy", "decision": "non_identity",
                                  "service_tokens": ["solo-token"]}, False),
    ("cloudflare_access_application", {"account": "Homelab", "domain": "solo.example.com",
                                       "policies": ["solo policy"]}, False),
    ("cloudflare_ruleset_rule", {"zone": "example.com", "phase": "http_request_firewall_custom", "ref": "solo_trace",
                                 "expression": 'http.host eq "solo.example.com" and http.request.method eq "TRACE"',
                                 "action": "block"}, False),
    ("cloudflare_tunnel_info", {"account": "Homelab", "name": "solo"}, False),
    ("cloudflare_access_service_token_info", {"account": "Homelab", "name": "solo-token"}, False),
]


def fault_task(admin_url: str, label: str, method: str) -> dict:
    rule = dict(dict(FAULTS)[label], method=method, path=".*", count=1)
    return {
        "name": "Inject %s into the next %s" % (label, method),
        "ansible.builtin.uri": {"url": admin_url + "/faults", "method": "POST", "body_format": "json", "body": rule,
                                "status_code": [200, 201]},
    }


def fault_playbook(admin_url: str, rotation: int, edge: dict) -> list[dict]:
    """Build the playbook; module number i meets fault kind (i + rotation) modulo the number of kinds."""
    tasks = []
    module_tasks = list(MODULE_TASKS) + [("cloudflare_edge", None, False)]
    for index, (module, arguments, no_log) in enumerate(module_tasks):
        label = FAULTS[(index + rotation) % len(FAULTS)][0]
        tasks.append(fault_task(admin_url, label, "GET"))
        if label in THROTTLES and module in WRITE_METHODS:
            tasks.append(fault_task(admin_url, label, WRITE_METHODS[module]))
        if module == "cloudflare_edge":
            edge_args = {"account": "Homelab", "zone": "example.com", "service_tokens": edge["edge_service_tokens"],
                         "tunnels": edge["edge_tunnels"], "max_retries": 3}
            tasks.append({"name": "module cloudflare_edge plan", "homelab.edge.cloudflare_edge": edge_args,
                          "check_mode": True, "register": "plan"})
            tasks.append({"name": "module cloudflare_edge apply", "homelab.edge.cloudflare_edge": edge_args,
                          "no_log": True})
            continue
        task = {"name": "module %s" % module, "homelab.edge.%s" % module: dict(arguments, max_retries=3)}
        if no_log:
            task["no_log"] = True
        tasks.append(task)
    return [{"name": "Modules under faults", "hosts": "localhost", "gather_facts": False, "tasks": tasks}]


def task_results(output: str) -> dict[str, dict]:
    """Return the localhost result of each task from ansible.posix.json output, by task name."""
    report = json.loads(output[output.find("{"):])
    return {task["task"]["name"]: task["hosts"].get("localhost", {}) for play in report["plays"]
            for task in play["tasks"]}


def assert_each_fault_recovered(log: list[dict]) -> int:
    """Check that each request that met a fault was sent again and succeeded; return the fault count."""
    faulted = [entry for entry in log if entry["fault"] in ("status", "reset")]
    for entry in faulted:
        later = [other for other in log if other["seq"] > entry["seq"] and other["method"] == entry["method"]
                 and other["path"] == entry["path"] and other["status"] is not None and other["status"] < 400]
        assert later, "%s %s failed with %s and was not sent again" % (entry["method"], entry["path"], entry["fault"])
    return len(faulted)


def assert_objects_once(state: dict) -> None:
    assert len(live_tunnels(state, "solo")) == 1
    assert len(live_tunnels(state, "home")) == 1
    assert len(named(state["service_tokens"], "solo-token")) == 1
    assert len(named(state["service_tokens"], "azure-backend")) == 1
    assert len(named(state["access_policies"], "solo policy")) == 1
    assert len(named(state["access_policies"], "chat.example.com service auth")) == 1
    assert len(named(state["access_apps"], "solo.example.com", key="domain")) == 1
    assert len(named(state["access_apps"], "chat.example.com", key="domain")) == 1
    assert len(records(state, "solo.example.com")) == 1
    assert len(records(state, "chat.example.com")) == 1
    tunnel = live_tunnels(state, "solo")[0]
    assert records(state, "solo.example.com")[0]["content"] == tunnel["id"] + ".cfargotunnel.com"


# Two rotations keep the suite short; HOMELAB_EDGE_FAULT_ROTATIONS=all runs every pairing of module and kind.
ROTATIONS = range(len(FAULTS)) if os.environ.get("HOMELAB_EDGE_FAULT_ROTATIONS") == "all" else (0, 4)


@pytest.mark.parametrize("rotation", ROTATIONS)
def test_modules_recover_from_faults(cloudflare, tmp_path, rotation):
    cloudflare.require_emulator()
    edge = edge_vars(cloudflare, rate_limit={"requests": 30, "period": 10})
    playbook = tmp_path / "faults.yml"
    playbook.write_text(json.dumps(fault_playbook(cloudflare.admin.admin_url, rotation, edge)))

    run = run_playbook(playbook, env=dict(cloudflare.env, ANSIBLE_STDOUT_CALLBACK="ansible.posix.json"))

    assert run.returncode == 0, run.explain()
    results = task_results(run.output)
    log = cloudflare.admin.log()
    faults = assert_each_fault_recovered(log)
    slow = [entry for entry in log if entry["fault"] == "delay"]
    retries = sum(result.get("api_retries", 0) for result in results.values())
    print("rotation %d: %d faults answered, %d slow answers, %d retries reported"
          % (rotation, faults, len(slow), retries))
    assert cloudflare.admin.faults() == [], "a fault rule was never reached"
    for index, (module, _arguments, no_log) in enumerate(MODULE_TASKS + [("cloudflare_edge", None, False)]):
        label = FAULTS[(index + rotation) % len(FAULTS)][0]
        name = "module cloudflare_edge plan" if module == "cloudflare_edge" else "module %s" % module
        if no_log or label == "slow answer":
            continue
        assert results[name].get("api_retries", 0) >= 1, "%s did not report the retry after %s" % (module, label)
        assert "were retried" in " ".join(results[name].get("warnings", [])), module
    assert faults >= len(MODULE_TASKS) - 1
    assert_objects_once(cloudflare.admin.state())


def test_retry_budget_exhausted_fails_clearly(cloudflare, tmp_path):
    cloudflare.require_emulator()
    cloudflare.admin.add_fault(method="GET", path=r"/cfd_tunnel$", kind="status", status=503, count=None)
    variables = write_vars(tmp_path, "edge.json", dict(edge_vars(cloudflare), cloudflare_edge_max_retries=2))

    run = run_playbook(SITE, "-e", "@%s" % variables, env=cloudflare.env)

    assert run.returncode != 0
    assert "Failed to look up tunnel 'home': HTTP 503" in run.output, run.explain()
    assert "Gave up after 2 retries; raise max_retries or try again later." in run.output, run.explain()
    tunnel_reads = cloudflare.admin.log(method="GET", path="/cfd_tunnel")
    print("budget of 2 retries: %d tunnel list requests sent" % len(tunnel_reads))
    assert len(tunnel_reads) == 3
    assert cloudflare.writes() == []


def test_lost_create_not_sent_twice(cloudflare, tmp_path):
    """A create applied after the client timed out fails clearly; the next run adopts the tunnel."""
    cloudflare.require_emulator()
    cloudflare.admin.add_fault(method="POST", path=r"/cfd_tunnel$", kind="delay", delay=3.0, count=1)
    playbook = tmp_path / "lost.yml"
    playbook.write_text(json.dumps([{"hosts": "localhost", "gather_facts": False, "tasks": [
        {"name": "Create the tunnel with a short timeout",
         "homelab.edge.cloudflare_tunnel": {"account": "Homelab", "name": "lost", "timeout": 1.0}},
    ]}]))

    first = run_playbook(playbook, env=cloudflare.env)

    # The module looked the tunnel up after the timeout, before the emulator applied the create.
    assert first.returncode != 0
    assert "Failed to create tunnel 'lost': APITimeoutError" in first.output, first.explain()
    wait_until(lambda: any(entry["status"] for entry in cloudflare.admin.log(method="POST", path="/cfd_tunnel")),
               "the delayed create to be applied")
    second = run_playbook(playbook, env=cloudflare.env)
    assert second.returncode == 0, second.explain()
    assert second.changed == 0, second.explain()
    assert len(live_tunnels(cloudflare.admin.state(), "lost")) == 1
    assert len(cloudflare.admin.log(method="POST", path="/cfd_tunnel")) == 1


def test_slow_site_run_writes_once(cloudflare, tmp_path):
    cloudflare.require_emulator()
    cloudflare.admin.add_fault(method="*", path=".*", kind="delay", delay=0.2, count=None)
    run = run_playbook(SITE, "-e", "@%s" % write_vars(tmp_path, "edge.json", edge_vars(cloudflare)),
                       env=cloudflare.env)
    assert run.returncode == 0, run.explain()
    writes = cloudflare.writes()
    print("slow site run: %d writes" % len(writes))
    assert len(writes) == len({(entry["method"], entry["path"]) for entry in writes})
