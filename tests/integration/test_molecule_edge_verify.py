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
import os
import pathlib
import re
import subprocess

from tests.emulators import cloudflare_api

CHECKOUT = pathlib.Path(__file__).resolve().parents[2]
ROLE = CHECKOUT / "roles" / "edge_verify"
# Cloudflare's client secret format: cfast_, 40 letters and digits, then an 8-digit hex checksum.
CLIENT_SECRET = re.compile(r"cfast_[A-Za-z0-9]{40}[0-9a-f]{8}")


def molecule_environment(state_dir: pathlib.Path) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith(("ANSIBLE_", "MOLECULE_"))}
    for name in ("CLOUDFLARE_API_TOKEN", "CLOUDFLARE_BASE_URL", "CLOUDFLARE_EMAIL", "CLOUDFLARE_API_KEY"):
        env.pop(name, None)
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
        # create.yml keeps the emulator state here, so this test can read it after destroy.
        "EDGE_VERIFY_MOLECULE_STATE_DIR": str(state_dir),
    })
    return env


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
