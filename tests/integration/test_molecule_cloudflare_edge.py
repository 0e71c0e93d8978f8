"""Run the cloudflare_edge role's Molecule scenario and check that no secret reaches its output.

The scenario (roles/cloudflare_edge/molecule/default) runs the role on the controller against the
Cloudflare API emulator, which its create step starts on 127.0.0.1, so it needs neither root nor
a test host. Its verify step checks the emulator's state and request log. This test adds what the
scenario cannot see: Molecule's whole output at verbosity 3, checked for the API token, the tunnel
secrets and tokens, and service token client secrets.
"""

from __future__ import annotations

import json

from tests.emulators import cloudflare_api
from tests.integration.molecule_runner import CLIENT_SECRET, last_lines, run_scenario


def test_molecule_default_scenario(tmp_path):
    returncode, text, state_dir = run_scenario("cloudflare_edge", "CLOUDFLARE_EDGE_MOLECULE_STATE_DIR", tmp_path)

    assert returncode == 0, "molecule test failed; last lines:\n" + last_lines(text)
    assert "idempotence: Executed: Successful" in text
    assert "verify: Executed: Successful" in text

    seed = json.loads((state_dir / "seed.json").read_text())
    state = json.loads((state_dir / "cloudflare.json").read_text())
    tunnels = [tunnel for tunnel in state["tunnels"].values() if not tunnel.get("deleted_at")]
    assert len(tunnels) == 2, "the emulator state file does not contain the scenario's two tunnels"

    assert seed["cloudflare"]["api_tokens"][0]["value"] not in text
    for tunnel in tunnels:
        token = cloudflare_api.tunnel_token(tunnel["account_id"], tunnel["id"], tunnel["secret"])
        assert tunnel["secret"] not in text, f"the secret of tunnel {tunnel['name']} is in the output"
        assert token not in text, f"the token of tunnel {tunnel['name']} is in the output"
    assert CLIENT_SECRET.findall(text) == []
