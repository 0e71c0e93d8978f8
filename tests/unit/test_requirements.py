# Copyright (c) homelab.edge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Check that requirements.txt lists every third-party package that code under plugins/ imports.

Users install requirements.txt next to the collection, so a package that plugins import but the file
does not list breaks on their machines even when the development venv happens to have it. A package
must be listed by its own name: one that arrives only as a dependency of a listed package (httpx
through cloudflare, azure-core through azure-identity) can disappear in any upgrade of that package.

Import names are mapped to distributions through the metadata of the packages installed in the
Python environment that runs pytest, so each imported package must also be installed there.
"""

import ast
import sys
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

REPO_ROOT = Path(__file__).resolve().parents[2]
PLUGINS_DIR = REPO_ROOT / "plugins"
REQUIREMENTS_FILE = REPO_ROOT / "requirements.txt"

# Plugin types that run only inside the controller's Ansible process. They may use the libraries that
# ansible-core itself requires, because those are present wherever ansible-core is installed. Modules and
# module_utils are excluded because they run on managed hosts, where only the standard library is certain.
CONTROLLER_PLUGIN_DIRS = {
    "action", "become", "cache", "callback", "cliconf", "connection", "filter", "httpapi",
    "inventory", "lookup", "netconf", "shell", "strategy", "terminal", "test", "vars",
}

# Top-level names that are not third-party packages: Ansible itself and this collection's own code.
FIRST_PARTY_NAMES = {"ansible", "ansible_collections", "__future__"}


def read_requirements():
    """Return the canonical distribution names listed in requirements.txt."""
    names = set()
    for line_number, raw_line in enumerate(REQUIREMENTS_FILE.read_text(encoding="utf-8").splitlines(), start=1):
        line = raw_line.split("#", 1)[0].strip()
        if not line or line.startswith("-"):
            continue
        try:
            names.add(canonicalize_name(Requirement(line).name))
        except InvalidRequirement as error:
            pytest.fail(f"requirements.txt line {line_number} is not a valid requirement ({error}): {raw_line!r}")
    return names


def imported_modules(path):
    """Yield (line number, dotted module name) for each absolute import in a Python file."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.lineno, node.module


def third_party_imports():
    """Return (path, line number, dotted module name) for every third-party import under plugins/."""
    found = []
    for path in sorted(PLUGINS_DIR.rglob("*.py")):
        for line_number, module_name in imported_modules(path):
            top_level = module_name.split(".", 1)[0]
            if top_level in FIRST_PARTY_NAMES or top_level in sys.stdlib_module_names:
                continue
            found.append((path, line_number, module_name))
    return found


def build_file_index():
    """Map each installed top-level import name to [(path parts inside it, distribution name)]."""
    index = {}
    for distribution in metadata.distributions():
        name = canonicalize_name(distribution.metadata["Name"])
        for file in distribution.files or []:
            parts = Path(file).with_suffix("").parts if file.suffix == ".py" else Path(file).parts
            if parts and not parts[0].endswith((".dist-info", ".egg-info", ".data")) and parts[0] != "..":
                index.setdefault(parts[0], []).append((parts, name))
    return index


def distributions_providing(index, module_name):
    """Return the distributions that install the package or module `module_name`.

    Namespace packages such as azure are shared by many distributions, so the match uses the whole
    dotted path, and azure.mgmt.web maps to azure-mgmt-web only. When no distribution installs that
    exact path, as for a name defined inside a module, the longest matching prefix decides.
    """
    import_parts = tuple(module_name.split("."))
    candidates = index.get(import_parts[0], [])
    for length in range(len(import_parts), 0, -1):
        prefix = import_parts[:length]
        providers = {name for parts, name in candidates if parts[:length] == prefix}
        if providers:
            return providers
    return set()


def ansible_core_requirements():
    """Return the canonical names of the distributions that ansible-core requires."""
    names = set()
    for requirement in metadata.requires("ansible-core") or []:
        parsed = Requirement(requirement)
        if parsed.marker is None or parsed.marker.evaluate({"extra": ""}):
            names.add(canonicalize_name(parsed.name))
    return names


IMPORTS = third_party_imports()


@pytest.fixture(scope="module")
def file_index():
    return build_file_index()


@pytest.fixture(scope="module")
def listed():
    return read_requirements()


def test_requirements_file_parses(listed):
    assert listed, "requirements.txt lists no packages"


@pytest.mark.parametrize(
    ("path", "line_number", "module_name"),
    IMPORTS,
    ids=[f"{path.relative_to(REPO_ROOT)}:{line_number}:{module_name}" for path, line_number, module_name in IMPORTS],
)
def test_import_is_listed(file_index, listed, path, line_number, module_name):
    location = f"{path.relative_to(REPO_ROOT)}:{line_number}"
    providers = distributions_providing(file_index, module_name)
    assert providers, (
        f"{location} imports {module_name}, which no installed distribution provides; install it into the "
        f"venv and add it to requirements.txt (and pin it in requirements-dev.txt)"
    )

    allowed = set(listed)
    if path.relative_to(PLUGINS_DIR).parts[0] in CONTROLLER_PLUGIN_DIRS:
        allowed |= ansible_core_requirements()
    assert providers & allowed, (
        f"{location} imports {module_name} from {', '.join(sorted(providers))}, which requirements.txt does not "
        f"list; add it to requirements.txt with a version range"
    )


def test_distribution_lookup_uses_full_path(file_index):
    # A namespace package must not match every azure-* distribution.
    providers = distributions_providing(file_index, "azure.mgmt.web")
    assert providers == {"azure-mgmt-web"}
    assert distributions_providing(file_index, "yaml") == {"pyyaml"}
    assert distributions_providing(file_index, "no_such_package_anywhere") == set()
