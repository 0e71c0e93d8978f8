"""Two site runs of the same inventory at once.

What is guaranteed: both runs end with one tunnel, one CNAME, one service token, one policy and
one Access application per name, linked to each other, and a third run changes nothing. A
tunnel, record or application that the other run created first is adopted (Cloudflare returns
409 or a conflict error). Service tokens and policies may share a name at Cloudflare, so every
run lists the name again after its create and deletes its own copy when an older one exists.
The run that lost the service token race does not have the token's client secret; it says so
in a warning and the token must be rotated before that run's consumers can use it.
"""

from __future__ import annotations

import subprocess

from tests.integration.harness import ROOT, VENV_BIN, ansible_environment, run_playbook, write_vars
from tests.integration.test_cloudflare_site import SITE
from tests.integration.test_reliability_interrupt import assert_converged, site_vars


def start_site(target, variables):
    command = [str(VENV_BIN / "ansible-playbook"), "-i", str(ROOT / "inventory" / "demo"), str(SITE),
               "-e", "@%s" % variables]
    return subprocess.Popen(command, cwd=ROOT, env=ansible_environment(target.env), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def test_two_runs_at_once_match_one(cloudflare, tmp_path):
    cloudflare.require_emulator()
    variables = write_vars(tmp_path, "edge.json", site_vars(cloudflare))
    # The emulator delays each run's first create by 3 seconds, so that both runs look the
    # objects up before either of them has created one.
    cloudflare.admin.add_fault(method="POST", path=r"/access/service_tokens$", kind="delay", delay=3.0, count=2)

    first = start_site(cloudflare, variables)
    second = start_site(cloudflare, variables)
    outputs = [first.communicate()[0], second.communicate()[0]]

    assert first.returncode == 0, outputs[0][-4000:]
    assert second.returncode == 0, outputs[1][-4000:]
    state = cloudflare.admin.state()
    assert_converged(state)
    creates = [entry for entry in cloudflare.writes() if entry["method"] == "POST"]
    deletes = [entry for entry in cloudflare.writes() if entry["method"] == "DELETE"]
    print("two runs at once: %d creates, %d deletes of a duplicate; creates: %s" % (
        len(creates), len(deletes), ", ".join("%s %s" % (entry["path"].rsplit("/", 1)[-1], entry["status"])
                                              for entry in creates)))
    assert len(cloudflare.admin.log(method="POST", path="/access/service_tokens")) == 2
    assert len([entry for entry in deletes if "/access/service_tokens/" in entry["path"]]) == 1
    warned = [output for output in outputs if "Another run created service token 'azure-backend'" in output]
    assert len(warned) == 1

    cloudflare.admin.clear_log()
    third = run_playbook(SITE, "-e", "@%s" % variables, env=cloudflare.env)
    assert third.returncode == 0, third.explain()
    assert third.changed == 0, third.explain()
    assert cloudflare.writes() == []
