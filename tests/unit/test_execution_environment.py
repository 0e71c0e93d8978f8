# Copyright (c) homelab.edge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Check execution-environment.yml, the ansible-builder definition of the AWX image.

An image that misses a package fails only when a job runs in AWX. These tests therefore run
ansible-builder's own validation and check the files that the definition names. Every Python package
in requirements.txt, every collection dependency in galaxy.yml and the collection tarball must reach
the image.
"""

import fnmatch
from pathlib import Path

import pytest
import yaml
from ansible_builder.user_definition import UserDefinition
from ansible.release import __version__ as ansible_core_version
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFINITION_FILE = REPO_ROOT / "execution-environment.yml"
DEFINITION = yaml.safe_load(DEFINITION_FILE.read_text(encoding="utf-8"))
DEPENDENCIES = DEFINITION.get("dependencies", {})
GALAXY = yaml.safe_load((REPO_ROOT / "galaxy.yml").read_text(encoding="utf-8"))
RUNTIME = yaml.safe_load((REPO_ROOT / "meta" / "runtime.yml").read_text(encoding="utf-8"))


def requirement_lines(path):
    """Return the requirement lines of a pip requirements file, without comments and options."""
    lines = []
    for raw_line in path.read_text(encoding="utf-8").splitlines():
        line = raw_line.split("#", 1)[0].strip()
        if line and not line.startswith("-"):
            lines.append(line)
    return lines


def python_dependencies():
    """Return the canonical names of the Python packages that the definition installs."""
    entry = DEPENDENCIES["python"]
    if isinstance(entry, str):
        lines = requirement_lines(REPO_ROOT / entry)
    else:
        lines = entry
    return {canonicalize_name(Requirement(line).name) for line in lines}


def test_definition_is_version_3():
    assert DEFINITION["version"] == 3


def test_definition_passes_ansible_builder_validation():
    definition = UserDefinition(str(DEFINITION_FILE))

    # Raises DefinitionError on a schema violation or a dependency file that does not exist.
    definition.validate()


@pytest.mark.parametrize("key", ["python", "galaxy", "system"])
def test_dependency_file_exists(key):
    entry = DEPENDENCIES.get(key)

    assert isinstance(entry, str), f"dependencies.{key} must name a file, found {entry!r}"
    assert (REPO_ROOT / entry).is_file(), f"dependencies.{key} names {entry}, which does not exist"


def test_python_dependencies_cover_requirements():
    listed = {canonicalize_name(Requirement(line).name) for line in requirement_lines(REPO_ROOT / "requirements.txt")}

    assert listed, "requirements.txt lists no packages"
    assert sorted(listed - python_dependencies()) == []


def test_galaxy_dependencies_cover_galaxy_yml():
    requirements = yaml.safe_load((REPO_ROOT / DEPENDENCIES["galaxy"]).read_text(encoding="utf-8"))
    listed = {entry["name"] for entry in requirements["collections"]}

    assert sorted(set(GALAXY.get("dependencies") or {}) - listed) == []


def test_system_dependencies_have_ssh_client():
    lines = (REPO_ROOT / DEPENDENCIES["system"]).read_text(encoding="utf-8").splitlines()
    packages = {line.split()[0] for line in lines if line.strip() and not line.startswith("#")}

    assert "openssh-clients" in packages
    assert "openssh-client" in packages


def test_ansible_core_matches_requires_ansible():
    image_specifier = Requirement(DEPENDENCIES["ansible_core"]["package_pip"]).specifier
    required = SpecifierSet(RUNTIME["requires_ansible"])

    assert Requirement(DEPENDENCIES["ansible_core"]["package_pip"]).name == "ansible-core"
    assert str(image_specifier) != "", "pin ansible-core to the range of requires_ansible in meta/runtime.yml"
    # The development venv runs a supported ansible-core, so the image's range must admit it too.
    assert required.contains(ansible_core_version)
    assert image_specifier.contains(ansible_core_version)


def test_python_interpreter_is_supported():
    interpreter = DEPENDENCIES["python_interpreter"]["python_path"]
    version = Path(interpreter).name.removeprefix("python")

    # ansible-core 2.19 runs on Python 3.11 or later on the controller.
    assert tuple(int(part) for part in version.split(".")) >= (3, 11)


def test_build_files_match_tarball_name():
    tarball = "%s-%s-%s.tar.gz" % (GALAXY["namespace"], GALAXY["name"], GALAXY["version"])
    sources = [entry["src"] for entry in DEFINITION.get("additional_build_files", [])]

    assert [source for source in sources if fnmatch.fnmatch(tarball, source)] != []
