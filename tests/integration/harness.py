"""Run ansible-playbook from the checkout against the emulators, and read what happened.

The integration tests use these helpers instead of Ansible's Python API so that each run is a
real ``ansible-playbook`` process, exactly as a user starts it.

To run the same tests against the real Cloudflare API, set HOMELAB_EDGE_REAL_CLOUDFLARE=1 together
with CLOUDFLARE_API_TOKEN, and HOMELAB_EDGE_ACCOUNT and HOMELAB_EDGE_ZONE for a zone that may be
changed; tests that need the emulator's state or faults are then skipped.
"""

from __future__ import annotations

import copy
import json
import os
import pathlib
import re
import subprocess
import sys
from dataclasses import dataclass, field
from typing import Any

ROOT = pathlib.Path(__file__).resolve().parents[2]
VENV_BIN = pathlib.Path(sys.executable).parent
DEMO_SEED = ROOT / "tests" / "emulators" / "seeds" / "demo.json"
RECAP_LINE = re.compile(
    r"^(?P<host>\S+)\s+:\s+ok=(?P<ok>\d+)\s+changed=(?P<changed>\d+)\s+unreachable=(?P<unreachable>\d+)\s+"
    r"failed=(?P<failed>\d+)\s+skipped=(?P<skipped>\d+)\s+rescued=(?P<rescued>\d+)\s+ignored=(?P<ignored>\d+)",
    re.MULTILINE,
)


def demo_seed() -> dict[str, Any]:
    """Return a fresh copy of the demo seed (all emulator sections)."""
    return copy.deepcopy(json.loads(DEMO_SEED.read_text()))


def ansible_environment(extra: dict[str, str] | None = None) -> dict[str, str]:
    """Return the environment for ansible-playbook runs from this checkout."""
    env = dict(os.environ)
    for name in ("CLOUDFLARE_EMAIL", "CLOUDFLARE_API_KEY", "HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"):
        env.pop(name, None)
    env.update(
        ANSIBLE_COLLECTIONS_PATH=str(ROOT / ".collections"),
        ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"),
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_FORCE_COLOR="0",
        ANSIBLE_RETRY_FILES_ENABLED="0",
        ANSIBLE_LOCAL_TEMP=str(ROOT / ".run" / "ansible-tmp"),
        NO_PROXY="127.0.0.1,localhost,::1",
        no_proxy="127.0.0.1,localhost,::1",
        PATH=f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}",
    )
    env.update(extra or {})
    return env


@dataclass
class PlaybookRun:
    """The outcome of one ansible-playbook process."""

    args: list[str]
    returncode: int
    output: str
    recap: dict[str, dict[str, int]] = field(default_factory=dict)

    @property
    def changed(self) -> int:
        return sum(host["changed"] for host in self.recap.values())

    @property
    def failed(self) -> int:
        return sum(host["failed"] + host["unreachable"] for host in self.recap.values())

    def explain(self) -> str:
        """Return the last part of the output, for assertion messages."""
        return "ansible-playbook %s exited %d:\n%s" % (" ".join(self.args), self.returncode, self.output[-6000:])


def run_playbook(playbook: str | pathlib.Path, *args: str, env: dict[str, str] | None = None,
                 inventory: str | pathlib.Path = ROOT / "inventory" / "demo", timeout: float = 600) -> PlaybookRun:
    """Run ansible-playbook with the demo inventory (unless another is given) and collect its output."""
    command = [str(VENV_BIN / "ansible-playbook"), "-i", str(inventory), str(playbook), *args]
    (ROOT / ".run" / "ansible-tmp").mkdir(parents=True, exist_ok=True)
    completed = subprocess.run(command, cwd=ROOT, env=ansible_environment(env), stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True, timeout=timeout, check=False)
    recap = {}
    for match in RECAP_LINE.finditer(completed.stdout):
        values = match.groupdict()
        host = values.pop("host")
        recap[host] = {key: int(value) for key, value in values.items()}
    return PlaybookRun(command[1:], completed.returncode, completed.stdout, recap)


def write_vars(directory: pathlib.Path, name: str, variables: dict[str, Any]) -> pathlib.Path:
    """Write an extra-vars file (JSON, which ansible-playbook reads with -e @file)."""
    path = directory / name
    path.write_text(json.dumps(variables, indent=2))
    return path


def demo_environment(seed: dict[str, Any], info: dict[str, Any]) -> dict[str, str]:
    """Return the connection environment for the emulators started from ``seed`` (as scripts/demo sets it)."""
    env = {
        "CLOUDFLARE_BASE_URL": info["cloudflare"]["base_url"],
        "CLOUDFLARE_API_TOKEN": seed["cloudflare"]["api_tokens"][0]["value"],
    }
    if "azure" in info:
        principal = seed["azure"]["principals"][0]
        env.update(
            REQUESTS_CA_BUNDLE=info["azure"]["ca_path"],
            AZURE_RESOURCE_MANAGER_ENDPOINT=info["azure"]["base_url"],
            AZURE_AUTHORITY_HOST=info["azure"]["authority_host"],
            AZURE_CLIENT_ID=principal["client_id"],
            AZURE_CLIENT_SECRET=principal["client_secret"],
            AZURE_TENANT_ID=principal["tenant_id"],
        )
    return env
