"""Run the cloudflared role's Molecule scenarios and check that no tunnel token leaks.

Each scenario boots a systemd-nspawn test host (tests/molecule/testhost.py), so these tests need
root and the packages that scripts/install-test-host-packages installs. They fail, rather than
skip, when those are missing, so that a machine without them cannot pass by accident.
"""

from __future__ import annotations

import os
import pathlib
import shutil
import subprocess

import pytest
import yaml

CHECKOUT = pathlib.Path(__file__).resolve().parents[2]
ROLE = CHECKOUT / "roles" / "cloudflared"
TOKENS = yaml.safe_load((ROLE / "molecule" / "test_tokens.yml").read_text())
SECRETS = [TOKENS["test_tunnel_token_first"], TOKENS["test_tunnel_token_second"]]


def molecule_environment() -> dict[str, str]:
    env = dict(os.environ)
    env.update({
        "ANSIBLE_COLLECTIONS_PATH": str(CHECKOUT / ".collections"),
        "ANSIBLE_CONFIG": str(CHECKOUT / "ansible.cfg"),
        "NO_PROXY": "127.0.0.1,localhost",
        "no_proxy": "127.0.0.1,localhost",
        "PATH": f"{CHECKOUT / '.venv' / 'bin'}{os.pathsep}{env.get('PATH', '')}",
        # Verbosity 3 (-vvv) prints module arguments and results, where a leak would show.
        "ANSIBLE_VERBOSITY": "3",
        "ANSIBLE_NOCOLOR": "1",
        "PY_COLORS": "0",
    })
    return env


def check_test_host_requirements() -> None:
    if os.geteuid() != 0:
        pytest.fail("the Molecule scenarios need root, to run debootstrap, systemd-nspawn and ip")
    missing = [tool for tool in ("debootstrap", "systemd-nspawn", "ssh") if shutil.which(tool) is None]
    if missing:
        pytest.fail(f"missing {', '.join(missing)}; run scripts/install-test-host-packages as root")


def files_containing(directory: pathlib.Path, secret: str) -> list[str]:
    found = []
    for path in directory.rglob("*"):
        if path.is_file() and not path.is_symlink():
            try:
                if secret in path.read_text(errors="ignore"):
                    found.append(str(path))
            except OSError:
                continue
    return found


@pytest.mark.parametrize("scenario", ["linux", "macos"])
def test_molecule_scenario(scenario, tmp_path):
    check_test_host_requirements()
    log = tmp_path / f"molecule-{scenario}.log"
    with log.open("w") as output:
        result = subprocess.run(
            [str(CHECKOUT / ".venv" / "bin" / "molecule"), "test", "--scenario-name", scenario],
            cwd=ROLE, env=molecule_environment(), stdout=output, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, check=False,
        )
    text = log.read_text(errors="replace")
    assert result.returncode == 0, f"molecule test -s {scenario} failed; last lines:\n" + "\n".join(
        text.splitlines()[-80:])

    # The scenario's verify step changes the token once, so both tokens passed through the role.
    for number, secret in enumerate(SECRETS, start=1):
        assert secret not in text, f"token {number} appears in the molecule output at verbosity 3"
    # Controller-side files: the test host state, and Molecule's inventory and ephemeral files.
    for directory in (CHECKOUT / ".run" / "testhosts", pathlib.Path.home() / ".ansible" / "tmp"):
        if directory.exists():
            for number, secret in enumerate(SECRETS, start=1):
                assert files_containing(directory, secret) == [], f"token {number} written to a controller file"
