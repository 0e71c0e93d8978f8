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

import yaml

from tests.integration.molecule_runner import CHECKOUT, last_lines, run_scenario

SCENARIO = CHECKOUT / "roles" / "azure_app_settings" / "molecule" / "default"


def scenario_credentials() -> dict[str, str]:
    group_vars = yaml.safe_load((SCENARIO / "molecule.yml").read_text())["provisioner"]["inventory"]["group_vars"]
    return group_vars["all"]["azure_app_settings_test_credentials"]["azure-backend"]


def test_molecule_default_scenario(tmp_path):
    returncode, text, state_dir = run_scenario("azure_app_settings", "AZURE_APP_SETTINGS_MOLECULE_STATE_DIR", tmp_path)

    assert returncode == 0, "molecule test failed; last lines:\n" + last_lines(text)
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
