# Copyright (c) homelab.edge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Check that ansible-doc renders every plugin and every role argument spec of the collection.

ansible-doc is what users read. It parses DOCUMENTATION, EXAMPLES and RETURN as YAML, so it fails on
errors that importing the module does not reveal, because Python treats those blocks as plain strings. One ansible-doc process per
plugin type renders everything at once (about half a second). Only when that fails is each plugin
rendered alone, so the failure names the broken file.
"""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
COLLECTION = "homelab.edge"

# Plugin directories whose files each document one plugin, mapped to ansible-doc's plugin type.
# Filter and test plugins are not listed because one file may hold several of them, documented in
# separate YAML files.
DOCUMENTED_PLUGIN_TYPES = {
    "modules": "module",
    "lookup": "lookup",
    "inventory": "inventory",
    "callback": "callback",
    "connection": "connection",
    "become": "become",
    "cache": "cache",
    "vars": "vars",
}


def find_plugins():
    """Return (ansible-doc type, plugin name, path) for each documented plugin file."""
    plugins = []
    for directory, plugin_type in sorted(DOCUMENTED_PLUGIN_TYPES.items()):
        for path in sorted((REPO_ROOT / "plugins" / directory).glob("*.py")):
            if path.name != "__init__.py":
                plugins.append((plugin_type, path.stem, path))
    return plugins


def find_roles():
    """Return the names of the roles under roles/."""
    roles_dir = REPO_ROOT / "roles"
    if not roles_dir.is_dir():
        return []
    return sorted(path.name for path in roles_dir.iterdir() if path.is_dir() and not path.name.startswith("."))


PLUGINS = find_plugins()
MODULES = [(name, path) for plugin_type, name, path in PLUGINS if plugin_type == "module"]
ROLES = find_roles()


@pytest.fixture(scope="session")
def doc_env(tmp_path_factory):
    """Return an environment in which ansible-doc loads homelab.edge from this checkout.

    A fresh collection path contains a symlink to the checkout, so the test needs no bootstrap step.
    .collections (community.general, ansible.posix) comes second, for doc fragments of other collections.
    """
    collections_root = tmp_path_factory.mktemp("collections")
    namespace_dir = collections_root / "ansible_collections" / "homelab"
    namespace_dir.mkdir(parents=True)
    (namespace_dir / "edge").symlink_to(REPO_ROOT, target_is_directory=True)

    env = dict(os.environ)
    env["ANSIBLE_COLLECTIONS_PATH"] = os.pathsep.join([str(collections_root), str(REPO_ROOT / ".collections")])
    env["ANSIBLE_NOCOLOR"] = "1"
    env.pop("ANSIBLE_COLLECTIONS_PATHS", None)
    return env


def run_ansible_doc(env, *arguments):
    """Run ansible-doc from the Python environment that runs pytest."""
    ansible_doc = Path(sys.executable).with_name("ansible-doc")
    return subprocess.run(
        [str(ansible_doc), *arguments],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )


def batch_result(cache, env, plugin_type, names):
    """Render all given plugins of one type in one ansible-doc call, once per session."""
    key = (plugin_type, tuple(names))
    if key not in cache:
        cache[key] = run_ansible_doc(env, "-t", plugin_type, *(f"{COLLECTION}.{name}" for name in names))
    return cache[key]


@pytest.fixture(scope="session")
def batch_cache():
    return {}


def assert_renders(batch_cache, doc_env, plugin_type, name, all_names):
    """Fail with ansible-doc's own error when the plugin or role does not render."""
    batch = batch_result(batch_cache, doc_env, plugin_type, all_names)
    if batch.returncode == 0:
        return batch.stdout

    single = run_ansible_doc(doc_env, "-t", plugin_type, f"{COLLECTION}.{name}")
    if single.returncode != 0:
        pytest.fail(
            f"ansible-doc -t {plugin_type} {COLLECTION}.{name} failed (exit {single.returncode}):\n{single.stderr}",
            pytrace=False,
        )
    return single.stdout


@pytest.mark.parametrize(
    ("plugin_type", "name"),
    [(plugin_type, name) for plugin_type, name, _path in PLUGINS],
    ids=[f"{plugin_type}-{name}" for plugin_type, name, _path in PLUGINS],
)
def test_plugin_doc_renders(batch_cache, doc_env, plugin_type, name):
    same_type = [other for other_type, other, _path in PLUGINS if other_type == plugin_type]
    output = assert_renders(batch_cache, doc_env, plugin_type, name, same_type)
    assert f"{COLLECTION}.{name}" in output, f"ansible-doc output does not name {COLLECTION}.{name}"


@pytest.fixture(scope="session")
def module_docs(doc_env):
    """Return ansible-doc's JSON for every module that renders, keyed by short module name."""
    names = [name for name, _path in MODULES]
    if not names:
        return {}
    result = run_ansible_doc(doc_env, "--json", "-t", "module", *(f"{COLLECTION}.{name}" for name in names))
    if result.returncode != 0:
        # test_plugin_doc_renders reports the broken modules. Collect the others one by one.
        docs = {}
        for name in names:
            single = run_ansible_doc(doc_env, "--json", "-t", "module", f"{COLLECTION}.{name}")
            if single.returncode == 0:
                docs.update(json.loads(single.stdout))
    else:
        docs = json.loads(result.stdout)
    return {full_name.rsplit(".", 1)[-1]: doc for full_name, doc in docs.items()}


@pytest.mark.parametrize(("name", "path"), MODULES, ids=[name for name, _path in MODULES])
def test_module_doc_conventions(module_docs, name, path):
    if name not in module_docs:
        pytest.skip(f"{name} does not render; test_plugin_doc_renders reports why")
    documentation = module_docs[name]["doc"]

    assert documentation.get("module") == name, f"{path}: DOCUMENTATION.module must be {name!r}"
    assert documentation.get("version_added"), f"{path}: DOCUMENTATION needs version_added (for example 0.1.0)"
    attributes = documentation.get("attributes") or {}
    for attribute in ("check_mode", "diff_mode"):
        assert attribute in attributes, f"{path}: DOCUMENTATION.attributes needs {attribute} with its support level"

    examples = module_docs[name].get("examples") or ""
    assert f"{COLLECTION}.{name}:" in examples, f"{path}: EXAMPLES must call the module by its FQCN {COLLECTION}.{name}"
    parsed_examples = yaml.safe_load(examples)
    assert isinstance(parsed_examples, list) and parsed_examples, f"{path}: EXAMPLES must be a YAML list of tasks"


def read_argument_specs(role):
    """Return the argument_specs mapping of a role, from meta/argument_specs.yml or meta/main.yml."""
    meta_dir = REPO_ROOT / "roles" / role / "meta"
    for file_name in ("argument_specs.yml", "argument_specs.yaml", "main.yml", "main.yaml"):
        path = meta_dir / file_name
        if path.is_file():
            try:
                content = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
            except yaml.YAMLError as error:
                pytest.fail(f"roles/{role}/meta/{file_name} is not valid YAML: {error}", pytrace=False)
            if isinstance(content, dict) and "argument_specs" in content:
                return content["argument_specs"]
    return None


@pytest.mark.parametrize("role", ROLES)
def test_role_argument_spec_renders(batch_cache, doc_env, role):
    specs = read_argument_specs(role)
    assert specs, f"roles/{role}: no argument_specs in meta/argument_specs.yml; every role declares its variables there"
    assert "main" in specs, f"roles/{role}: argument_specs has no 'main' entry point, so tasks/main.yml is not validated"

    output = assert_renders(batch_cache, doc_env, "role", role, ROLES)
    assert re.search(rf"{re.escape(COLLECTION)}\.{re.escape(role)}\b", output), (
        f"ansible-doc output does not name {COLLECTION}.{role}"
    )
