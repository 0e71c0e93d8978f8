"""The Cloudflare play killed after each API write in turn, then run again.

The emulator delays the Nth write with a ``delay`` fault. Once the request has arrived (its
fault rule is used up), the test kills ansible-playbook and every process below it with
SIGKILL. A process group is not enough: Ansible's workers call setsid(), so the module process
would live on and send the next writes. The
emulator then applies the write, whose answer nobody reads: "interrupted after write N". A
second run must end in the state that one uninterrupted run leaves, with no duplicates.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time

import pytest

from tests.integration.harness import ROOT, VENV_BIN, ansible_environment, run_playbook, write_vars
from tests.integration.test_cloudflare_site import SITE, edge_vars, live_tunnels, named, records

# The writes of a first run on the demo seed, in order: (method, path regex).
WRITES = [
    ("POST", r"/access/service_tokens$"),
    ("POST", r"/cfd_tunnel$"),
    ("PUT", r"/cfd_tunnel/[^/]+/configurations$"),
    ("POST", r"/dns_records$"),
    ("POST", r"/access/policies$"),
    ("POST", r"/access/apps$"),
    ("PUT", r"/rulesets/phases/http_ratelimit/entrypoint$"),
]
HOLD_SECONDS = 4.0
WAIT_LIMIT = 300.0


def descendants(pid):
    """Return the ids of every process below ``pid``, read from /proc."""
    children = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % entry) as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(entry))
    found = []
    stack = [pid]
    while stack:
        for child in children.get(stack.pop(), []):
            found.append(child)
            stack.append(child)
    return found


def kill_tree(pid):
    """Stop the process tree first, so that no process forks or sends a request, then kill it."""
    for signum in (signal.SIGSTOP, signal.SIGKILL):
        for member in [pid] + descendants(pid):
            try:
                os.kill(member, signum)
            except ProcessLookupError:
                pass


def site_vars(target):
    return edge_vars(target, rate_limit={"requests": 30, "period": 10})


def wait_until(condition, description):
    """Poll ``condition`` until it returns true; fail after WAIT_LIMIT seconds."""
    deadline = time.monotonic() + WAIT_LIMIT
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail("timed out waiting for %s" % description)
        time.sleep(0.1)


def assert_converged(state):
    """Check that the state holds exactly the objects of one run, linked to each other."""
    tunnels = live_tunnels(state, "home")
    assert len(tunnels) == 1, tunnels
    tunnel = tunnels[0]
    assert [rule.get("hostname") for rule in tunnel["configuration"]["config"]["ingress"]] == ["chat.example.com", None]
    chat = records(state, "chat.example.com")
    assert len(chat) == 1, chat
    assert chat[0]["content"] == tunnel["id"] + ".cfargotunnel.com"
    tokens = named(state["service_tokens"], "azure-backend")
    assert len(tokens) == 1, tokens
    policies = named(state["access_policies"], "chat.example.com service auth")
    assert len(policies) == 1, policies
    assert policies[0]["include"] == [{"service_token": {"token_id": tokens[0]["id"]}}]
    apps = named(state["access_apps"], "chat.example.com", key="domain")
    assert len(apps) == 1, apps
    assert [link["id"] for link in apps[0]["policies"]] == [policies[0]["id"]]
    zone_rulesets = next(iter(state["rulesets"].values()))
    refs = [rule.get("ref") for rule in zone_rulesets["http_ratelimit"]["rules"]]
    assert refs == ["homelab_edge_rl_chat_example_com"], refs


def test_uninterrupted_run_writes_in_expected_order(cloudflare, tmp_path):
    cloudflare.require_emulator()
    variables = write_vars(tmp_path, "edge.json", site_vars(cloudflare))
    run = run_playbook(SITE, "-e", "@%s" % variables, env=cloudflare.env)
    assert run.returncode == 0, run.explain()
    writes = cloudflare.writes()
    assert [entry["method"] for entry in writes] == [method for method, _pattern in WRITES]
    for entry, (_method, pattern) in zip(writes, WRITES):
        assert re.search(pattern, entry["path"]), (entry["path"], pattern)
    assert_converged(cloudflare.admin.state())


@pytest.mark.parametrize("number", range(1, len(WRITES) + 1))
def test_rerun_after_kill_converges(cloudflare, tmp_path, number):
    cloudflare.require_emulator()
    method, pattern = WRITES[number - 1]
    cloudflare.admin.add_fault(method=method, path=pattern, kind="delay", delay=HOLD_SECONDS, count=1)
    variables = write_vars(tmp_path, "edge.json", site_vars(cloudflare))
    command = [str(VENV_BIN / "ansible-playbook"), "-i", str(ROOT / "inventory" / "demo"), str(SITE),
               "-e", "@%s" % variables]
    process = subprocess.Popen(command, cwd=ROOT, env=ansible_environment(cloudflare.env), stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, start_new_session=True)  # noqa: S603
    try:
        wait_until(lambda: not cloudflare.admin.faults() or process.poll() is not None, "write %d" % number)
        assert process.poll() is None, "the play ended before write %d" % number
    finally:
        kill_tree(process.pid)
        process.wait()
    wait_until(lambda: any(entry["status"] is not None for entry in cloudflare.admin.log(method=method)
                           if re.search(pattern, entry["path"])), "the held write to be applied")
    writes_before = len(cloudflare.writes())
    print("interrupted after write %d (%s %s); %d writes applied" % (number, method, pattern, writes_before))
    assert writes_before == number

    rerun = run_playbook(SITE, "-e", "@%s" % variables, env=cloudflare.env)

    assert rerun.returncode == 0, rerun.explain()
    assert_converged(cloudflare.admin.state())
    print("rerun after write %d sent %d more writes" % (number, len(cloudflare.writes()) - writes_before))
    assert len(cloudflare.writes()) - writes_before == len(WRITES) - number
