"""Run the azure_app_settings role's Molecule scenario and check that no secret reaches its output.

The scenario (roles/azure_app_settings/molecule/default) runs the role on the controller against
the Azure Resource Manager emulator, which its create step starts on 127.0.0.1, so it needs
neither root nor an Azure subscription. Its verify step checks the web app's settings, restart
count and the emulator's request log. This test adds what the scenario cannot see: Molecule's
whole output at verbosity 3, checked for the service token's client secret and the service
principal's secret, and the files the scenario leaves on the controller.
"""

from __future__ import annotations

import json
import os
import pathlib
import subprocess

import yaml

CHECKOUT = pathlib.Path(__file__).resolve().parents[2]
ROLE = CHECKOUT / "roles" / "azure_app_settings"
SCENARIO = ROLE / "molecule" / "default"


def molecule_environment(state_dir: pathlib.Path) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith(("ANSIBLE_", "MOLECULE_", "AZURE_"))}
    env.pop("REQUESTS_CA_BUNDLE", None)
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
        # create.yml keeps the seed, TLS files and emulator log here, so this test can read them.
        "AZURE_APP_SETTINGS_MOLECULE_STATE_DIR": str(state_dir),
    })
    return env


def scenario_credentials() -> dict[str, str]:
    group_vars = yaml.safe_load((SCENARIO / "molecule.yml").read_text())["provisioner"]["inventory"]["group_vars"]
    return group_vars["all"]["azure_app_settings_test_credentials"]["azure-backend"]


def test_molecule_default_scenario(tmp_path):
    state_dir = tmp_path / "emulators"
    log = tmp_path / "molecule-default.log"

    with log.open("w") as output:
        result = subprocess.run(
            [str(CHECKOUT / ".venv" / "bin" / "molecule"), "test", "--scenario-name", "default"],
            cwd=ROLE, env=molecule_environment(state_dir), stdout=output, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, check=False,
        )
    text = log.read_text(errors="replace")

    assert result.returncode == 0, "molecule test failed; last lines:\n" + "\n".join(text.splitlines()[-80:])
    assert "idempotence: Executed: Successful" in text
    assert "verify: Executed: Successful" in text

    seed = json.loads((state_dir / "seed.json").read_text())
    principal_secret = seed["azure"]["principals"][0]["client_secret"]
    token_secret = scenario_credentials()["client_secret"]
    assert principal_secret not in text, "the service principal's secret is in the output"
    assert token_secret not in text, "the service token's client secret is in the output"

    # The emulator runs without a state file, so no file of the run contains a setting value.
    assert not (state_dir / "azure.json").exists()
    for path in state_dir.rglob("*"):
        if path.is_file():
            assert token_secret not in path.read_text(errors="replace"), f"{path} contains the client secret"
