"""Every playbook at -vvv, and the files Ansible leaves on the controller, scanned for every secret.

The run goes through site.yml, verify.yml, a rotation and teardown.yml on the whole demo (Cloudflare,
Azure, edge and home stand-ins). The secrets searched for are the Cloudflare API token, the Azure
service principal secret, the tunnel secret and token, and each client secret the web app held
during the run, plus anything in Cloudflare's client secret format.
"""

from __future__ import annotations

import os
import pathlib
import re

from tests.emulators import cloudflare_api
from tests.integration.harness import ROOT, run_playbook
from tests.integration.test_cloudflare_site import live_tunnels

PLAYBOOKS = ROOT / "playbooks"
SUBSCRIPTION = "00000000-0000-0000-0000-000000000001"
CLIENT_SECRET = re.compile(r"cfast_[A-Za-z0-9]{40}")


def held_secret(demo):
    return demo.azure.app_settings(SUBSCRIPTION, "rg-shop", "shop-web")["CF_ACCESS_CLIENT_SECRET"]


def files_containing(directory: pathlib.Path, secrets: list[str]) -> list[str]:
    found = []
    if not directory.exists():
        return found
    for path in directory.rglob("*"):
        if path.is_file() and not path.is_symlink():
            text = path.read_text(errors="ignore")
            found.extend(str(path) for secret in secrets if secret in text)
    return found


def test_playbooks_leak_no_secret(demo_edge):
    args = ["-vvv", *demo_edge.site_args()]
    site = run_playbook(ROOT / "site.yml", *args, env=demo_edge.env)
    assert site.returncode == 0, site.explain()
    state = demo_edge.cloudflare.state()
    tunnel = live_tunnels(state, "home")[0]
    first_secret = held_secret(demo_edge)

    verify = run_playbook(PLAYBOOKS / "verify.yml", *args, env=demo_edge.env)
    rotate = run_playbook(PLAYBOOKS / "rotate_service_token.yml", "-e", "edge_rotate_token=azure-backend", *args,
                          env=demo_edge.env)
    second_secret = held_secret(demo_edge)
    teardown = run_playbook(PLAYBOOKS / "teardown.yml", *args, env=demo_edge.env)

    for run in (verify, rotate, teardown):
        assert run.returncode == 0, run.explain()
    assert first_secret != second_secret
    secrets = [
        demo_edge.env["CLOUDFLARE_API_TOKEN"],
        demo_edge.env["AZURE_CLIENT_SECRET"],
        tunnel["secret"],
        cloudflare_api.tunnel_token(tunnel["account_id"], tunnel["id"], tunnel["secret"]),
        first_secret,
        second_secret,
    ]
    for run in (site, verify, rotate, teardown):
        for number, secret in enumerate(secrets):
            assert secret not in run.output, "secret %d appears in the output of %s" % (number, run.args)
        assert CLIENT_SECRET.findall(run.output) == []

    # Ansible's temporary directories on the controller: the harness's local temp and the default one.
    leftovers = files_containing(ROOT / ".run" / "ansible-tmp", secrets)
    leftovers += files_containing(pathlib.Path(os.path.expanduser("~/.ansible/tmp")), secrets)
    assert leftovers == []
