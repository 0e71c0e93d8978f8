"""The cloudflared role's token step against the Cloudflare API emulator (or the real API).

Hosts that run replicas of one tunnel must share one API call for its token, hosts of another
tunnel get that tunnel's token, and no token may appear in the output.
"""

from __future__ import annotations

import sys

from tests.integration.harness import run_playbook, write_vars

PLAYBOOK = """\
- name: Get the tunnel tokens for the origin hosts
  hosts: all
  gather_facts: false
  tasks:
    - name: Run the role's token step
      ansible.builtin.include_role:
        name: homelab.edge.cloudflared
        tasks_from: token

    - name: Check which tokens the hosts got
      ansible.builtin.assert:
        that:
          - hostvars['mini1'].__cloudflared_token | length > 0
          - hostvars['mini1'].__cloudflared_token == hostvars['mini2'].__cloudflared_token
          - hostvars['lab1'].__cloudflared_token | length > 0
          - hostvars['lab1'].__cloudflared_token != hostvars['mini1'].__cloudflared_token
          - hostvars['mini1'].__cloudflared_tunnel == 'home'
          - hostvars['lab1'].__cloudflared_tunnel == 'lab'
          - hostvars['mini1'].__cloudflared_tunnel_id | length == 36
        quiet: true
      run_once: true
"""

INVENTORY = """\
[edge_origins]
mini1
mini2

[lab_origins]
lab1

[all:vars]
ansible_connection=local
ansible_python_interpreter={python}
"""

# Every tunnel token is base64 of JSON that starts with {"a":", so this prefix finds any of them.
TOKEN_PREFIX = "eyJhIjoi"


def test_token_fetched_once_per_tunnel(cloudflare, tmp_path):
    (tmp_path / "inventory.ini").write_text(INVENTORY.format(python=sys.executable))
    (tmp_path / "tokens.yml").write_text(PLAYBOOK)
    variables = write_vars(tmp_path, "edge.json", {
        "cloudflared_cloudflare_account": cloudflare.account,
        "edge_tunnels": [{"name": "home", "origins": "edge_origins"}, {"name": "lab", "origins": "lab_origins"}],
    })
    if cloudflare.admin is not None:
        cloudflare.admin.clear_log()

    run = run_playbook(tmp_path / "tokens.yml", "-e", "@%s" % variables, "-vvv", env=cloudflare.env,
                       inventory=tmp_path / "inventory.ini")

    assert run.returncode == 0, run.explain()
    assert TOKEN_PREFIX not in run.output
    if cloudflare.admin is not None:
        token_reads = [entry for entry in cloudflare.admin.log(method="GET") if entry["path"].endswith("/token")]
        assert len(token_reads) == 2, token_reads
