# Copyright (c) homelab.edge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Check the supported ansible-core and Python versions that README.md states.

``requires_ansible`` in meta/runtime.yml is the supported ansible-core range. Modules and
module_utils run on the host that executes the task: ollama_model on the origin hosts, the others
normally on the controller. ansible-core 2.19 runs modules on Python 3.8 and later, so module code
must parse with the Python 3.8 grammar. The other plugins (filters, doc fragments) run only in the
controller's Ansible process, which ansible-core 2.19 starts on Python 3.11 or later.

``ast.parse(feature_version=...)`` rejects most newer syntax but not newer library functions, so
module code is also searched for the names that Python 3.9 to 3.11 added and that code written
today reaches for. That list cannot be complete: running the modules on the oldest Python is
the stronger check.
"""

import ast
import re
from importlib import metadata
from pathlib import Path

import pytest
import yaml
from ansible.release import __version__ as ANSIBLE_CORE_VERSION
from packaging.specifiers import SpecifierSet
from packaging.version import Version

REPO_ROOT = Path(__file__).resolve().parents[2]
PLUGINS_DIR = REPO_ROOT / "plugins"
RUNTIME_FILE = REPO_ROOT / "meta" / "runtime.yml"
GALAXY_FILE = REPO_ROOT / "galaxy.yml"
README_FILE = REPO_ROOT / "README.md"
COLLECTIONS_DIR = REPO_ROOT / ".collections" / "ansible_collections"

# The oldest Python that ansible-core 2.19 runs modules on, and the oldest it runs on itself.
MODULE_PYTHON = (3, 8)
CONTROLLER_PYTHON = (3, 11)
MODULE_CODE_DIRS = {"modules", "module_utils"}

# Standard library names newer than Python 3.8, with the version that added them.
NEWER_MODULES = {"zoneinfo": "3.9", "graphlib": "3.9", "tomllib": "3.11"}
NEWER_METHODS = {"removeprefix": "3.9", "removesuffix": "3.9", "bit_count": "3.10"}
NEWER_MEMBERS = {"functools": {"cache": "3.9"}, "itertools": {"pairwise": "3.10"}, "math": {"lcm": "3.9"}}
# Subscripting these at run time (list[str]) needs Python 3.9.
BUILTIN_GENERICS = {"list", "dict", "tuple", "set", "frozenset", "type"}


def requires_ansible():
    return yaml.safe_load(RUNTIME_FILE.read_text(encoding="utf-8"))["requires_ansible"]


def lower_bound(specifiers):
    """Return the version of the ``>=`` clause of ``specifiers``; fail when there is none."""
    bounds = [Version(spec.version) for spec in specifiers if spec.operator == ">="]
    assert len(bounds) == 1, "requires_ansible %r must have exactly one >= clause" % str(specifiers)
    return bounds[0]


def plugin_files():
    return sorted(PLUGINS_DIR.rglob("*.py"))


def oldest_python(path):
    plugin_type = path.relative_to(PLUGINS_DIR).parts[0]
    return MODULE_PYTHON if plugin_type in MODULE_CODE_DIRS else CONTROLLER_PYTHON


def module_code_files():
    return [path for path in plugin_files() if oldest_python(path) == MODULE_PYTHON]


def readme_section(title):
    """Return the text of the README section that starts with the ``## title`` heading."""
    text = README_FILE.read_text(encoding="utf-8")
    match = re.search(r"^## %s\n(.*?)(?=^## |\Z)" % re.escape(title), text, re.MULTILINE | re.DOTALL)
    assert match, "README.md has no '## %s' section" % title
    return match.group(1)


def annotation_nodes(tree):
    """Return the ids of every node inside an annotation."""
    roots = []
    for node in ast.walk(tree):
        if isinstance(node, ast.arg) and node.annotation is not None:
            roots.append(node.annotation)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.returns is not None:
            roots.append(node.returns)
        elif isinstance(node, ast.AnnAssign):
            roots.append(node.annotation)
    return {id(inner) for root in roots for inner in ast.walk(root)}


def postponed_annotations(tree):
    return any(
        isinstance(node, ast.ImportFrom) and node.module == "__future__"
        and any(alias.name == "annotations" for alias in node.names)
        for node in tree.body
    )


def newer_names(tree):
    """Return ``(line, description)`` for each use of a name that Python 3.8 lacks."""
    skipped = annotation_nodes(tree) if postponed_annotations(tree) else set()
    found = []
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            for alias in node.names:
                top = alias.name.split(".")[0]
                if top in NEWER_MODULES:
                    found.append((node.lineno, "import %s (Python %s)" % (top, NEWER_MODULES[top])))
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            top = node.module.split(".")[0]
            if top in NEWER_MODULES:
                found.append((node.lineno, "from %s import (Python %s)" % (top, NEWER_MODULES[top])))
            newer_members = NEWER_MEMBERS.get(top, {})
            for alias in node.names:
                if alias.name in newer_members:
                    found.append((node.lineno, "%s.%s (Python %s)" % (top, alias.name, newer_members[alias.name])))
        elif isinstance(node, ast.Attribute):
            if node.attr in NEWER_METHODS:
                found.append((node.lineno, ".%s() (Python %s)" % (node.attr, NEWER_METHODS[node.attr])))
            owner = node.value.id if isinstance(node.value, ast.Name) else ""
            newer_members = NEWER_MEMBERS.get(owner, {})
            if node.attr in newer_members:
                found.append((node.lineno, "%s.%s (Python %s)" % (owner, node.attr, newer_members[node.attr])))
        elif isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name) and node.value.id in BUILTIN_GENERICS:
            found.append((node.lineno, "%s[...] outside a postponed annotation (Python 3.9)" % node.value.id))
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "zip":
            if any(keyword.arg == "strict" for keyword in node.keywords):
                found.append((node.lineno, "zip(strict=...) (Python 3.10)"))
    return sorted(found)


def test_requires_ansible_admits_installed_core():
    specifiers = SpecifierSet(requires_ansible())

    assert ANSIBLE_CORE_VERSION in specifiers, (
        "meta/runtime.yml requires_ansible %r does not admit the installed ansible-core %s; widen the range "
        "or install a version inside it" % (str(specifiers), ANSIBLE_CORE_VERSION)
    )


def test_galaxy_file_has_no_core_range():
    galaxy = yaml.safe_load(GALAXY_FILE.read_text(encoding="utf-8"))

    # galaxy.yml has no field for the supported range; a second copy there would go stale.
    assert "requires_ansible" not in galaxy, "move requires_ansible from galaxy.yml to meta/runtime.yml"


@pytest.mark.parametrize("role", sorted(path.name for path in (REPO_ROOT / "roles").iterdir() if path.is_dir()))
def test_role_minimum_matches_runtime(role):
    meta = yaml.safe_load((REPO_ROOT / "roles" / role / "meta" / "main.yml").read_text(encoding="utf-8"))
    minimum = Version(str(meta["galaxy_info"]["min_ansible_version"]))

    assert minimum == lower_bound(SpecifierSet(requires_ansible())), (
        "roles/%s/meta/main.yml min_ansible_version %s differs from the lower bound of requires_ansible %r "
        "in meta/runtime.yml" % (role, minimum, requires_ansible())
    )


@pytest.mark.parametrize("dependency", sorted(yaml.safe_load(GALAXY_FILE.read_text(encoding="utf-8"))["dependencies"]))
def test_dependency_supports_core_range(dependency):
    """Check that the installed dependency is in galaxy.yml's range and runs on our oldest ansible-core."""
    allowed = SpecifierSet(yaml.safe_load(GALAXY_FILE.read_text(encoding="utf-8"))["dependencies"][dependency])
    namespace, name = dependency.split(".")
    installed = COLLECTIONS_DIR / namespace / name
    if not installed.is_dir():
        pytest.skip("%s is not installed in .collections; run scripts/bootstrap" % dependency)
    manifest = yaml.safe_load((installed / "MANIFEST.json").read_text(encoding="utf-8"))
    version = manifest["collection_info"]["version"]
    dependency_range = SpecifierSet(yaml.safe_load((installed / "meta" / "runtime.yml").read_text(encoding="utf-8"))["requires_ansible"])

    assert version in allowed, "installed %s %s is outside galaxy.yml's range %s" % (dependency, version, allowed)
    assert str(lower_bound(SpecifierSet(requires_ansible()))) in dependency_range, (
        "%s %s requires ansible-core %s, which excludes the oldest version in our requires_ansible %r"
        % (dependency, version, dependency_range, requires_ansible())
    )
    assert ANSIBLE_CORE_VERSION in dependency_range


def test_readme_states_supported_versions():
    section = readme_section("Supported versions")

    assert "`%s`" % requires_ansible() in section, "README.md must state requires_ansible exactly as meta/runtime.yml"
    assert "Python %d.%d" % MODULE_PYTHON in section
    assert "Python %d.%d" % CONTROLLER_PYTHON in section


def test_readme_names_sdk_python_minimum():
    """Check that README states the Python that the installed cloudflare SDK requires."""
    requires_python = metadata.metadata("cloudflare").get("Requires-Python")
    minimum = re.fullmatch(r">=\s*(\d+\.\d+)", requires_python or "")
    if minimum is None:
        pytest.skip("cloudflare's Requires-Python %r is not a plain >= clause" % requires_python)

    assert "Python %s" % minimum.group(1) in readme_section("Supported versions")


@pytest.mark.parametrize("path", plugin_files(), ids=lambda path: str(path.relative_to(REPO_ROOT)))
def test_plugin_parses_with_oldest_grammar(path):
    version = oldest_python(path)

    try:
        ast.parse(path.read_text(encoding="utf-8"), filename=str(path), feature_version=version)
    except SyntaxError as error:
        pytest.fail("%s:%s uses syntax newer than Python %d.%d: %s" % (path.relative_to(REPO_ROOT), error.lineno, *version, error.msg))


@pytest.mark.parametrize("path", module_code_files(), ids=lambda path: str(path.relative_to(REPO_ROOT)))
def test_module_code_avoids_newer_names(path):
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))

    assert newer_names(tree) == [], "%s uses names that Python %d.%d lacks" % (path.relative_to(REPO_ROOT), *MODULE_PYTHON)


@pytest.mark.parametrize(
    "source",
    [
        "import zoneinfo\n",
        "from functools import cache\n",
        "import itertools\nitertools.pairwise([])\n",
        "'ab'.removeprefix('a')\n",
        "x = list[str]\n",
        "def f(x: dict[str, int]): pass\n",
        "zip([], [], strict=True)\n",
    ],
)
def test_newer_names_are_found(source):
    assert newer_names(ast.parse(source)) != []


def test_postponed_annotations_are_allowed():
    source = "from __future__ import annotations\ndef f(x: dict[str, int]) -> list[str]: pass\n"

    assert newer_names(ast.parse(source)) == []


@pytest.mark.parametrize(
    "source",
    [
        "match x:\n    case 1:\n        pass\n",
        "with (open(a) as b, open(c) as d):\n    pass\n",
        "try:\n    pass\nexcept* ValueError:\n    pass\n",
    ],
)
def test_module_grammar_rejects_newer_syntax(source):
    with pytest.raises(SyntaxError):
        ast.parse(source, feature_version=MODULE_PYTHON)
