"""Check that the cloudflared role rejects wrong inputs before it changes anything.

Each case runs ansible-playbook with the role against localhost. The role must fail with a
message that names the variable and the fix, report no change, and leave its configuration
directory uncreated.
"""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys

import pytest

CHECKOUT = pathlib.Path(__file__).resolve().parents[2]
VALID_TOKEN = (
    "eyJhIjoiNWFiNGU5ZGZiZDQzNWQ5ZTdhNWU2ZjJjNGEzYzlmMTAiLCJ0IjoiOWIyZjZjMWUtM2Q0YS00ZTViLThjN2QtMGExYjJj"
    "M2Q0ZTVmIiwicyI6IkVSRVJFUkVSRVJFUkVSRVJFUkVSRVJFUkVSRVJFUkVSRVJFUkVSRVJFUkU9In0="
)
MALFORMED_TOKEN = "bm90LWEtdG9rZW4tYnV0LXNlY3JldA=="  # base64 of text that is not JSON

PLAYBOOK = """\
- name: Apply the cloudflared role
  hosts: localhost
  connection: local
  gather_facts: true
  pre_tasks:
    - name: Replace the platform facts when the case asks for it
      fake_platform_facts:
        os_family: "{{ fake_os_family }}"
      when: fake_os_family is defined
  roles:
    - role: homelab.edge.cloudflared
"""

FAKE_FACTS_MODULE = """\
#!/usr/bin/python
from ansible.module_utils.basic import AnsibleModule

module = AnsibleModule(argument_spec={"os_family": {"type": "str", "required": True}})
family = module.params["os_family"]
module.exit_json(changed=False, ansible_facts={"os_family": family, "system": family, "distribution": family})
"""

CASES = {
    "unknown install method": (
        {"cloudflared_install_method": "snap", "cloudflared_tunnel_token": VALID_TOKEN},
        "cloudflared_install_method",
    ),
    "homebrew on linux": (
        {"cloudflared_install_method": "homebrew", "cloudflared_tunnel_token": VALID_TOKEN},
        "Invalid cloudflared_install_method \"homebrew\"",
    ),
    "release without checksum": (
        {"cloudflared_install_method": "release", "cloudflared_tunnel_token": VALID_TOKEN},
        "Missing or invalid cloudflared_release_checksum",
    ),
    "missing token": ({}, "Missing token: cloudflared_tunnel_token is empty"),
    "malformed token": (
        {"cloudflared_tunnel_token": MALFORMED_TOKEN},
        "Invalid cloudflared_tunnel_token: the decoded text is not a JSON object",
    ),
    "ingress for remote tunnel": (
        {"cloudflared_tunnel_token": VALID_TOKEN, "cloudflared_ingress": [{"service": "http_status:404"}]},
        "Invalid combination: cloudflared_config_src \"cloudflare\"",
    ),
    "metrics on all interfaces": (
        {"cloudflared_tunnel_token": VALID_TOKEN, "cloudflared_metrics_address": "0.0.0.0:20241"},
        "Invalid cloudflared_metrics_address \"0.0.0.0:20241\"",
    ),
    "token in extra args": (
        {"cloudflared_tunnel_token": VALID_TOKEN, "cloudflared_run_extra_args": ["--token=abc"]},
        "cloudflared_run_extra_args contains --token",
    ),
    "host in two tunnels": (
        {"edge_tunnels": [{"name": "home", "origins": "ungrouped"}, {"name": "lab", "origins": "ungrouped"}]},
        "origins group of several tunnels (home, lab)",
    ),
    "unsupported platform": (
        {"cloudflared_tunnel_token": VALID_TOKEN, "fake_os_family": "Solaris"},
        "Unsupported platform: os_family Solaris",
    ),
}


def run_role(tmp_path: pathlib.Path, variables: dict) -> subprocess.CompletedProcess:
    (tmp_path / "library").mkdir(exist_ok=True)
    (tmp_path / "library" / "fake_platform_facts.py").write_text(FAKE_FACTS_MODULE)
    (tmp_path / "site.yml").write_text(PLAYBOOK)
    variables = {
        "ansible_python_interpreter": sys.executable,
        "cloudflared_config_dir": str(tmp_path / "etc-cloudflared"),
        **variables,
    }
    (tmp_path / "vars.json").write_text(json.dumps(variables))
    env = dict(os.environ)
    env.update({
        "ANSIBLE_COLLECTIONS_PATH": str(CHECKOUT / ".collections"),
        "ANSIBLE_CONFIG": str(CHECKOUT / "ansible.cfg"),
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_VERBOSITY": "3",
    })
    return subprocess.run(
        [str(CHECKOUT / ".venv" / "bin" / "ansible-playbook"), "-i", "localhost,", "-e", f"@{tmp_path / 'vars.json'}",
         str(tmp_path / "site.yml")],
        cwd=tmp_path, env=env, capture_output=True, text=True, check=False,
    )


@pytest.mark.parametrize("case", sorted(CASES))
def test_preflight_rejects(case, tmp_path):
    variables, expected_message = CASES[case]
    result = run_role(tmp_path, variables)
    output = result.stdout + result.stderr

    assert result.returncode != 0, f"the role accepted the input of case {case!r}"
    assert expected_message in " ".join(output.split()), output[-3000:]
    assert "changed=0" in output
    assert not (tmp_path / "etc-cloudflared").exists()


def test_preflight_hides_malformed_token(tmp_path):
    result = run_role(tmp_path, {"cloudflared_tunnel_token": MALFORMED_TOKEN})

    assert result.returncode != 0
    assert MALFORMED_TOKEN not in result.stdout + result.stderr
