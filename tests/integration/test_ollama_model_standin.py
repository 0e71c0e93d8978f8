# Copyright (c) homelab.edge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Integration tests of homelab.edge.ollama_model, run by ansible against the Ollama stand-in.

Each test checks the stand-in's model list and request log, not only the task result.
"""

import json
import os
import subprocess
import sys

import pytest

REPO_ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path.insert(0, os.path.join(REPO_ROOT, "tests", "standins"))

from ollama import start  # noqa: E402  (the stand-in package in tests/standins/ollama)

VENV_BIN = os.path.join(REPO_ROOT, ".venv", "bin")


@pytest.fixture
def ollama():
    server = start("127.0.0.1", 0, models=["present-model"], pull_errors={"broken-model": "unexpected EOF"})
    yield server
    server.stop()


def run_task(server, args, check=False, diff=False):
    """Run ollama_model once on localhost and return its task result."""
    env = dict(
        os.environ,
        ANSIBLE_COLLECTIONS_PATH=os.path.join(REPO_ROOT, ".collections"),
        ANSIBLE_CONFIG=os.path.join(REPO_ROOT, "ansible.cfg"),
        ANSIBLE_LOAD_CALLBACK_PLUGINS="1",
        ANSIBLE_STDOUT_CALLBACK="ansible.builtin.json",
        NO_PROXY="127.0.0.1,localhost",
    )
    args = dict(args, host=server.url)
    command = [
        os.path.join(VENV_BIN, "ansible"), "localhost", "-i", "localhost,", "-c", "local",
        "-e", "ansible_python_interpreter=" + os.path.join(VENV_BIN, "python"),
        "-m", "homelab.edge.ollama_model", "-a", json.dumps(args),
    ]
    if check:
        command.append("--check")
    if diff:
        command.append("--diff")
    completed = subprocess.run(command, env=env, cwd=REPO_ROOT, capture_output=True, text=True, check=False)
    output = json.loads(completed.stdout)
    return output["plays"][0]["tasks"][0]["hosts"]["localhost"]


def request_paths(server):
    return [(entry["method"], entry["path"]) for entry in server.requests]


def test_pull_missing_model(ollama):
    result = run_task(ollama, {"name": "llama3.2"})

    assert result.get("failed") is not True, result.get("msg")
    assert result["changed"] is True
    assert "llama3.2:latest" in ollama.models
    assert result["digest"] == ollama.models["llama3.2:latest"]["digest"]
    assert result["size"] == ollama.models["llama3.2:latest"]["size"]
    assert ("POST", "/api/pull") in request_paths(ollama)


def test_pull_is_idempotent(ollama):
    first = run_task(ollama, {"name": "llama3.2"})
    requests_after_first = len(ollama.requests)
    second = run_task(ollama, {"name": "llama3.2"})

    assert first["changed"] is True
    assert second["changed"] is False
    assert second["digest"] == first["digest"]
    later_paths = [(e["method"], e["path"]) for e in ollama.requests[requests_after_first:]]
    assert ("POST", "/api/pull") not in later_paths


def test_check_mode_pulls_nothing(ollama):
    result = run_task(ollama, {"name": "llama3.2"}, check=True, diff=True)

    assert result["changed"] is True
    assert "llama3.2:latest" not in ollama.models
    assert request_paths(ollama) == [("POST", "/api/show")]
    assert result["diff"]["before"]["state"] == "absent"


def test_pull_error_line_fails(ollama):
    result = run_task(ollama, {"name": "broken-model"})

    assert result["failed"] is True
    assert "unexpected EOF" in result["msg"]
    assert "broken-model:latest" not in ollama.models


def test_delete_present_model(ollama):
    result = run_task(ollama, {"name": "present-model", "state": "absent"})

    assert result["changed"] is True
    assert "present-model:latest" not in ollama.models
    assert ("DELETE", "/api/delete") in request_paths(ollama)


def test_delete_missing_model_unchanged(ollama):
    result = run_task(ollama, {"name": "never-pulled", "state": "absent"})

    assert result["changed"] is False
    assert ("DELETE", "/api/delete") not in request_paths(ollama)


def test_delete_check_mode_keeps_model(ollama):
    result = run_task(ollama, {"name": "present-model", "state": "absent"}, check=True)

    assert result["changed"] is True
    assert "present-model:latest" in ollama.models
    assert ("DELETE", "/api/delete") not in request_paths(ollama)


def test_requests_use_loopback_host_header(ollama):
    run_task(ollama, {"name": "llama3.2"})

    hosts = {entry["host"] for entry in ollama.requests}
    assert hosts == {"127.0.0.1:%d" % ollama.server_address[1]}


def test_stopped_server_fails_clearly():
    server = start("127.0.0.1", 0)
    server.stop()
    result = run_task(server, {"name": "llama3.2"})

    assert result["failed"] is True
    assert "Failed to reach Ollama" in result["msg"]
