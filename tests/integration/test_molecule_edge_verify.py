"""Run the edge_verify role's Molecule scenario and check that no secret reaches its output.

The scenario (roles/edge_verify/molecule/default) starts the Cloudflare API emulator, the edge
emulator and the home stand-in on 127.0.0.1, builds the edge with the cloudflare_edge role in its
prepare step, and probes it with the edge_verify role. Its verify step checks the edge emulator's
record of the probes. This test adds what the scenario cannot see: Molecule's whole output at
verbosity 3, checked for the API token, the tunnel secret and token, and service token client
secrets, and the emulator state files, checked for client secrets.
"""

from __future__ import annotations

import json

from tests.emulators import cloudflare_api
from tests.integration.molecule_runner import CLIENT_SECRET, last_lines, run_scenario


def test_molecule_default_scenario(tmp_path):
    returncode, text, state_dir = run_scenario("edge_verify", "EDGE_VERIFY_MOLECULE_STATE_DIR", tmp_path)

    assert returncode == 0, "molecule test failed; last lines:\n" + last_lines(text)
    assert "prepare: Executed: Successful" in text
    assert "idempotence: Executed: Successful" in text
    assert "verify: Executed: Successful" in text

    seed = json.loads((state_dir / "seed.json").read_text())
    state = json.loads((state_dir / "cloudflare.json").read_text())
    tunnels = [tunnel for tunnel in state["tunnels"].values() if not tunnel.get("deleted_at")]
    tokens = [token for token in state["service_tokens"].values() if token["name"] == "azure-backend"]
    assert len(tunnels) == 1, "the emulator state file does not contain the scenario's tunnel"
    assert len(tokens) == 1, "the emulator state file does not contain the scenario's service token"

    assert seed["cloudflare"]["api_tokens"][0]["value"] not in text
    tunnel = tunnels[0]
    assert tunnel["secret"] not in text, "the tunnel secret is in the output"
    assert cloudflare_api.tunnel_token(tunnel["account_id"], tunnel["id"], tunnel["secret"]) not in text
    assert CLIENT_SECRET.findall(text) == []

    # prepare.yml keeps the client secret only Ansible Vault encrypted; the emulator keeps a digest.
    for path in state_dir.rglob("*"):
        if path.is_file():
            assert CLIENT_SECRET.findall(path.read_text(errors="replace")) == [], f"{path} contains a client secret"
