# Copyright (c) homelab.edge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests of the homelab.edge.tunnel_ingress filter, called directly and through ansible-playbook."""

import json
import os
import subprocess
import sys

import pytest
import yaml

REPO_ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "..", ".."))
COLLECTIONS = os.path.join(REPO_ROOT, ".collections")
sys.path.insert(0, COLLECTIONS)

from ansible.errors import AnsibleFilterError  # noqa: E402

from ansible_collections.homelab.edge.plugins.filter.ingress import FilterModule, tunnel_ingress  # noqa: E402

VENV_BIN = os.path.dirname(sys.executable)

RULES = [
    {"hostname": "chat.example.com", "origin": "ollama", "origin_request": {"connect_timeout": 90}},
    {"service": "http_status:404"},
]


def ansible_env():
    env = dict(os.environ)
    env.update({
        "ANSIBLE_COLLECTIONS_PATH": COLLECTIONS,
        "ANSIBLE_CONFIG": os.path.join(REPO_ROOT, "ansible.cfg"),
        "ANSIBLE_NOCOLOR": "1",
        "NO_PROXY": "127.0.0.1,localhost",
        "PATH": VENV_BIN + os.pathsep + env.get("PATH", ""),
    })
    return env


def run_playbook(tmp_path, tasks):
    """Run tasks on localhost with the venv's Python and return the completed process."""
    playbook = tmp_path / "play.yml"
    playbook.write_text(yaml.safe_dump([{"hosts": "localhost", "gather_facts": False, "tasks": tasks}]))
    return subprocess.run(
        [
            os.path.join(VENV_BIN, "ansible-playbook"),
            "-i", "localhost,",
            "-c", "local",
            "-e", "ansible_python_interpreter=%s" % sys.executable,
            str(playbook),
        ],
        env=ansible_env(),
        cwd=str(tmp_path),
        capture_output=True,
        text=True,
        check=False,
    )


def test_filter_is_registered():
    assert FilterModule().filters() == {"tunnel_ingress": tunnel_ingress}


def test_filter_remote_form_by_default():
    result = tunnel_ingress(RULES)

    assert result == [
        {
            "hostname": "chat.example.com",
            "service": "http://127.0.0.1:11434",
            "originRequest": {"connectTimeout": 90, "httpHostHeader": "localhost:11434"},
        },
        {"service": "http_status:404"},
    ]


def test_filter_local_form():
    result = tunnel_ingress(RULES, format="local")

    assert result[0]["originRequest"] == {"connectTimeout": "1m30s", "httpHostHeader": "localhost:11434"}
    assert result[1] == {"service": "http_status:404"}


def test_filter_optional_catch_all():
    result = tunnel_ingress(RULES[:1], require_catch_all=False)

    assert [rule["hostname"] for rule in result] == ["chat.example.com"]


def test_filter_keeps_defaults_when_asked():
    rules = [{"service": "http_status:404", "originRequest": {"noTLSVerify": False}}]

    assert tunnel_ingress(rules, drop_defaults=False) == [
        {"service": "http_status:404", "originRequest": {"noTLSVerify": False}}
    ]


@pytest.mark.parametrize(
    "rules, fragments",
    [
        ([{"hostname": "chat.example.com", "service": "http://127.0.0.1:1"}], ["last ingress rule must match all URLs"]),
        (
            [{"hostname": "chat.example.com", "service": "localhost:11434"}, {"service": "http_status:404"}],
            ["Ingress rule #1", "'localhost:11434' is an invalid address"],
        ),
        (
            [{"hostname": "a.example.com", "service": "http://127.0.0.1:1", "originRequest": {"httpHostheader": "x"}},
             {"service": "http_status:404"}],
            ["Did you mean 'httpHostHeader'"],
        ),
    ],
    ids=["no catch-all", "service without scheme", "mistyped key"],
)
def test_filter_raises_library_message(rules, fragments):
    with pytest.raises(AnsibleFilterError) as caught:
        tunnel_ingress(rules)

    message = str(caught.value)
    assert message.startswith("tunnel_ingress: ")
    for fragment in fragments:
        assert fragment in message


@pytest.mark.parametrize(
    "arguments, fragment",
    [
        ({"format": "yaml"}, "format 'yaml' is not supported"),
        ({"require_catch_all": "no"}, "require_catch_all must be true or false"),
        ({"drop_defaults": 1}, "drop_defaults must be true or false"),
    ],
)
def test_filter_rejects_bad_arguments(arguments, fragment):
    with pytest.raises(AnsibleFilterError) as caught:
        tunnel_ingress(RULES, **arguments)
    assert fragment in str(caught.value)


def test_filter_renders_config_file_in_playbook(tmp_path):
    target = tmp_path / "config.yml"
    tasks = [{
        "name": "Render config.yml",
        "ansible.builtin.copy": {
            "dest": str(target),
            "mode": "0644",
            "content": "{{ {'ingress': rules | homelab.edge.tunnel_ingress(format='local')} | to_nice_yaml }}",
        },
        "vars": {"rules": RULES},
    }]

    completed = run_playbook(tmp_path, tasks)

    assert completed.returncode == 0, completed.stdout + completed.stderr
    rendered = yaml.safe_load(target.read_text())
    assert rendered == {
        "ingress": [
            {
                "hostname": "chat.example.com",
                "service": "http://127.0.0.1:11434",
                "originRequest": {"connectTimeout": "1m30s", "httpHostHeader": "localhost:11434"},
            },
            {"service": "http_status:404"},
        ]
    }


def test_filter_fails_playbook_with_message(tmp_path):
    target = tmp_path / "config.yml"
    tasks = [{
        "name": "Render config.yml",
        "ansible.builtin.copy": {
            "dest": str(target),
            "mode": "0644",
            "content": "{{ rules | homelab.edge.tunnel_ingress(format='local') | to_nice_yaml }}",
        },
        "vars": {"rules": [{"hostname": "chat.*.example.com", "service": "http://127.0.0.1:1"},
                           {"service": "http_status:404"}]},
    }]

    completed = run_playbook(tmp_path, tasks)

    assert completed.returncode != 0
    assert not target.exists()
    output = completed.stdout + completed.stderr
    assert "chat.*.example.com" in output
    assert "at most one wildcard" in output


def test_filter_documentation_renders():
    completed = subprocess.run(
        [os.path.join(VENV_BIN, "ansible-doc"), "-t", "filter", "--json", "homelab.edge.tunnel_ingress"],
        env=ansible_env(),
        capture_output=True,
        text=True,
        check=False,
    )

    assert completed.returncode == 0, completed.stderr
    entry = json.loads(completed.stdout)["homelab.edge.tunnel_ingress"]
    assert entry["doc"]["name"] == "tunnel_ingress"
    assert entry["doc"]["version_added"] == "0.1.0"
    assert set(entry["doc"]["options"]) == {"_input", "format", "require_catch_all", "drop_defaults"}
    assert "homelab.edge.tunnel_ingress" in entry["examples"]
    assert "_value" in entry["return"]
