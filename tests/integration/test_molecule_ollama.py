"""Run the ollama role's Molecule scenarios (Linux on an nspawn test host, macOS with stand-ins).

Like the cloudflared scenarios, these need root and the packages of
scripts/install-test-host-packages, and fail rather than skip without them.
"""

from __future__ import annotations

import subprocess

import pytest

from tests.integration.test_molecule_cloudflared import CHECKOUT, check_test_host_requirements, molecule_environment

ROLE = CHECKOUT / "roles" / "ollama"


@pytest.mark.parametrize("scenario", ["linux", "macos"])
def test_ollama_molecule_scenario(scenario, tmp_path):
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
