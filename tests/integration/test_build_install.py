"""Build the collection tarball, install it offline, and run its Cloudflare play from the install.

This is what a Galaxy user gets: the tarball must contain the plugins, roles and playbooks and none of
the checkout's local tool installs, caches, emulator state or test output, and the installed copy
must work without the checkout. The play runs as ``ansible-playbook homelab.edge.cloudflare`` from
a directory outside the checkout, with a collections path that holds only the installed copy and
community.general (from .collections, where scripts/bootstrap unpacks it).
"""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys
import tarfile

import pytest
import yaml

from tests.integration.harness import RECAP_LINE, ROOT

VENV_BIN = pathlib.Path(sys.executable).parent
GALAXY = yaml.safe_load((ROOT / "galaxy.yml").read_text())
TARBALL_NAME = "%s-%s-%s.tar.gz" % (GALAXY["namespace"], GALAXY["name"], GALAXY["version"])

# Files a user of the installed collection needs.
REQUIRED_MEMBERS = [
    "MANIFEST.json",
    "FILES.json",
    "README.md",
    "CHANGELOG.rst",
    "meta/runtime.yml",
    "playbooks/cloudflare.yml",
    "playbooks/site.yml",
    "plugins/modules/cloudflare_edge.py",
    "plugins/module_utils/cloudflare_api.py",
    "plugins/doc_fragments/cloudflare.py",
    "roles/cloudflare_edge/tasks/main.yml",
    "roles/cloudflare_edge/meta/argument_specs.yml",
    "changelogs/changelog.yaml",
]

# Top-level folders of the checkout that must never reach the tarball.
EXCLUDED_TOP_LEVEL = {".venv", ".collections", ".cache", ".run", ".ansible", ".git", ".pytest_cache", ".ci"}


def clean_environment(extra: dict[str, str]) -> dict[str, str]:
    """Return an environment with no Ansible settings inherited from the caller, plus `extra`."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("ANSIBLE_")}
    for name in ("CLOUDFLARE_EMAIL", "CLOUDFLARE_API_KEY", "HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"):
        env.pop(name, None)
    env.update(
        NO_PROXY="127.0.0.1,localhost,::1",
        no_proxy="127.0.0.1,localhost,::1",
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_RETRY_FILES_ENABLED="0",
        PATH=f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
    )
    env.update(extra)
    return env


def run(command: list[str], cwd: pathlib.Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, stdin=subprocess.DEVNULL, check=False)


def explain(completed: subprocess.CompletedProcess) -> str:
    return "%s exited %d:\n%s" % (" ".join(completed.args), completed.returncode, completed.stdout[-6000:])


def changed_count(output: str) -> int:
    return sum(int(match.group("changed")) for match in RECAP_LINE.finditer(output))


@pytest.fixture(scope="module")
def tarball(tmp_path_factory) -> pathlib.Path:
    """Build the collection from the checkout, including whatever local installs and run files it contains."""
    dist = tmp_path_factory.mktemp("dist")
    env = clean_environment({"ANSIBLE_CONFIG": str(ROOT / "ansible.cfg")})
    built = run([str(VENV_BIN / "ansible-galaxy"), "collection", "build", "--output-path", str(dist), str(ROOT)],
                cwd=dist, env=env)
    assert built.returncode == 0, explain(built)
    path = dist / TARBALL_NAME
    assert path.is_file(), explain(built)
    return path


@pytest.fixture(scope="module")
def installed(tarball, tmp_path_factory) -> dict[str, pathlib.Path]:
    """Install the tarball offline into an empty collections path and return the paths and environment."""
    base = tmp_path_factory.mktemp("install")
    install_path = base / "installed"
    install_path.mkdir()

    # community.general and ansible.posix from the checkout's .collections, without homelab.edge.
    dependencies = base / "dependencies" / "ansible_collections"
    dependencies.mkdir(parents=True)
    bundled = ROOT / ".collections" / "ansible_collections"
    for namespace in ("community", "ansible"):
        assert (bundled / namespace).is_dir(), f"{bundled / namespace} is missing; run scripts/bootstrap first"
        (dependencies / namespace).symlink_to(bundled / namespace, target_is_directory=True)

    collections_path = os.pathsep.join([str(install_path), str(dependencies.parent)])
    config = base / "ansible.cfg"
    config.write_text("[defaults]\nretry_files_enabled = false\ninterpreter_python = auto_silent\n")
    env = clean_environment({
        "ANSIBLE_COLLECTIONS_PATH": collections_path,
        "ANSIBLE_CONFIG": str(config),
        "ANSIBLE_LOCAL_TEMP": str(base / "ansible-tmp"),
        "ANSIBLE_HOME": str(base / "ansible-home"),
    })
    done = run([str(VENV_BIN / "ansible-galaxy"), "collection", "install", "--offline", "-p", str(install_path),
                str(tarball)], cwd=base, env=env)
    assert done.returncode == 0, explain(done)
    return {"base": base, "collection": install_path / "ansible_collections" / "homelab" / "edge", "env": env}


def test_tarball_holds_collection_files(tarball):
    with tarfile.open(tarball) as archive:
        members = set(archive.getnames())

    missing = [name for name in REQUIRED_MEMBERS if name not in members]
    assert missing == []


def test_tarball_leaves_out_local_files(tarball):
    with tarfile.open(tarball) as archive:
        members = archive.getnames()

    top_level = sorted({name.split("/", 1)[0] for name in members} & EXCLUDED_TOP_LEVEL)
    assert top_level == []
    assert [name for name in members if name.startswith("tests/output")] == []
    assert [name for name in members if "__pycache__" in name.split("/")] == []
    assert [name for name in members if name.endswith((".pyc", ".retry", ".log", ".tar.gz"))] == []


def test_build_ignore_is_exercised():
    """The exclusion checks prove something only when the checkout contains those folders."""
    for name in (".venv", ".collections"):
        assert (ROOT / name).is_dir(), f"{name} is missing; run scripts/bootstrap first"


def test_install_uses_no_checkout(installed):
    paths = installed["env"]["ANSIBLE_COLLECTIONS_PATH"].split(os.pathsep)
    checkout = ROOT.resolve()
    for path in paths:
        resolved = pathlib.Path(path).resolve()
        assert resolved != checkout, path
        assert checkout not in resolved.parents, path
        # .collections links homelab.edge to the checkout; no directory on the path may do that.
        linked = resolved / "ansible_collections" / "homelab" / "edge"
        assert not linked.exists() or linked.resolve() != checkout, path

    listing = run([str(VENV_BIN / "ansible-galaxy"), "collection", "list", "--format", "json"],
                  cwd=installed["base"], env=installed["env"])
    assert listing.returncode == 0, explain(listing)
    found = {directory: names for directory, names in json.loads(listing.stdout).items() if "homelab.edge" in names}
    assert list(found) == [str(installed["collection"].parent.parent)]
    assert found[str(installed["collection"].parent.parent)]["homelab.edge"]["version"] == GALAXY["version"]
    assert not installed["collection"].is_symlink()


def test_installed_play_runs(installed, cloudflare):
    base = installed["base"]
    inventory = base / "hosts.yml"
    inventory.write_text(yaml.safe_dump({"all": {"hosts": {"localhost": {
        "ansible_connection": "local",
        "ansible_python_interpreter": sys.executable,
    }}}}))
    variables = base / "edge.json"
    variables.write_text(json.dumps({
        "edge_cloudflare_account": cloudflare.account,
        "edge_cloudflare_zone": cloudflare.zone,
        "edge_tunnels": [{"name": "home", "origins": "edge_origins", "services": [{
            "hostname": "chat." + cloudflare.zone,
            "origin": "ollama",
            "access": {"service_tokens": ["azure-backend"]},
        }]}],
        "edge_service_tokens": [{"name": "azure-backend", "duration": "8760h"}],
    }))
    env = dict(installed["env"], **cloudflare.env)
    command = [str(VENV_BIN / "ansible-playbook"), "-i", str(inventory), "-e", "@%s" % variables,
               "homelab.edge.cloudflare"]

    first = run(command, cwd=base, env=env)

    assert first.returncode == 0, explain(first)
    assert changed_count(first.stdout) > 0, explain(first)
    assert cloudflare.api_token not in first.stdout

    if cloudflare.admin is None:
        return
    state = cloudflare.admin.state()
    tunnels = [tunnel for tunnel in state["tunnels"].values() if tunnel["name"] == "home"
               and not tunnel.get("deleted_at")]
    assert len(tunnels) == 1
    records = [record for zone in state["dns_records"].values() for record in zone.values()
               if record["name"] == "chat." + cloudflare.zone]
    assert [record["content"] for record in records] == [tunnels[0]["id"] + ".cfargotunnel.com"]
    apps = [app for app in state["access_apps"].values() if app.get("domain") == "chat." + cloudflare.zone]
    assert len(apps) == 1

    cloudflare.admin.clear_log()
    second = run(command, cwd=base, env=env)

    assert second.returncode == 0, explain(second)
    assert changed_count(second.stdout) == 0, explain(second)
    assert cloudflare.writes() == []
