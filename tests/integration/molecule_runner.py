"""Run a role's Molecule scenario that works on the controller against the emulators.

The cloudflare_edge, azure_app_settings and edge_verify scenarios need neither root nor a test
host. Each test runs `molecule test` at verbosity 3, where a leaked secret would show, and then
checks the whole output and the files the scenario leaves in its state directory.
"""

from __future__ import annotations

import os
import pathlib
import re
import subprocess

CHECKOUT = pathlib.Path(__file__).resolve().parents[2]
# Cloudflare's client secret format: cfast_, 40 letters and digits, then an 8-digit hex checksum.
CLIENT_SECRET = re.compile(r"cfast_[A-Za-z0-9]{40}[0-9a-f]{8}")
# Settings of the caller's environment that would point the scenario at other services or credentials.
DROPPED_PREFIXES = ("ANSIBLE_", "MOLECULE_", "AZURE_")
DROPPED_NAMES = ("CLOUDFLARE_API_TOKEN", "CLOUDFLARE_BASE_URL", "CLOUDFLARE_EMAIL", "CLOUDFLARE_API_KEY",
                 "REQUESTS_CA_BUNDLE")


def molecule_environment(state_variable: str, state_dir: pathlib.Path) -> dict[str, str]:
    """Return the environment for one scenario; its create step keeps its files in ``state_dir``."""
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(DROPPED_PREFIXES) and key not in DROPPED_NAMES}
    env.update({
        "ANSIBLE_COLLECTIONS_PATH": str(CHECKOUT / ".collections"),
        "ANSIBLE_CONFIG": str(CHECKOUT / "ansible.cfg"),
        "NO_PROXY": "127.0.0.1,localhost",
        "no_proxy": "127.0.0.1,localhost",
        "PATH": f"{CHECKOUT / '.venv' / 'bin'}{os.pathsep}{env.get('PATH', '')}",
        # Verbosity 3 prints module arguments and results, where a leak would show.
        "ANSIBLE_VERBOSITY": "3",
        "ANSIBLE_NOCOLOR": "1",
        "PY_COLORS": "0",
        state_variable: str(state_dir),
    })
    return env


def run_scenario(role: str, state_variable: str, tmp_path: pathlib.Path) -> tuple[int, str, pathlib.Path]:
    """Run `molecule test` for the default scenario of ``role``; return its exit code, output and state dir."""
    state_dir = tmp_path / "emulators"
    log = tmp_path / "molecule-default.log"
    with log.open("w") as output:
        result = subprocess.run(
            [str(CHECKOUT / ".venv" / "bin" / "molecule"), "test", "--scenario-name", "default"],
            cwd=CHECKOUT / "roles" / role, env=molecule_environment(state_variable, state_dir),
            stdout=output, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, check=False,
        )
    return result.returncode, log.read_text(errors="replace"), state_dir


def last_lines(text: str, count: int = 80) -> str:
    return "\n".join(text.splitlines()[-count:])
