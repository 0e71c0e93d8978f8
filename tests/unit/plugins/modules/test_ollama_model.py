# Copyright (c) homelab.edge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests of the ollama_model module, with fetch_url replaced by scripted responses."""

import io
import json
import os
import socket
import sys

import pytest

REPO_ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "..", ".."))
sys.path.insert(0, os.path.join(REPO_ROOT, ".collections"))

from ansible.module_utils.testing import patch_module_args  # noqa: E402

from ansible_collections.homelab.edge.plugins.modules import ollama_model  # noqa: E402

TAGS = {"models": [{"name": "llama3.2:latest", "digest": "abc123", "size": 2019393189}]}


class ScriptedOllama:
    """Replacement for fetch_url: returns scripted responses per (method, path) and records calls."""

    def __init__(self, responses):
        self.responses = responses
        self.calls = []

    def __call__(self, module, url, data=None, headers=None, method=None, timeout=None, use_proxy=True):
        path = url.split("11434", 1)[1]
        self.calls.append({"method": method, "path": path, "body": json.loads(data) if data else None,
                           "timeout": timeout, "use_proxy": use_proxy})
        scripted = self.responses[(method, path)]
        if isinstance(scripted, list):
            scripted = scripted.pop(0)
        status, payload = scripted
        if status == 200:
            return FakeResponse(payload), {"status": 200, "msg": "OK"}
        if status == -1:
            return None, {"status": -1, "msg": payload}
        return None, {"status": status, "msg": "HTTP Error", "body": payload}

    def paths(self):
        return [(call["method"], call["path"]) for call in self.calls]


class FakeResponse(io.BytesIO):
    def __init__(self, payload):
        if isinstance(payload, (dict, list)):
            payload = json.dumps(payload)
        if isinstance(payload, str):
            payload = payload.encode("utf-8")
        super().__init__(payload)


class TimingOutResponse(io.BytesIO):
    """A pull stream that sends one progress line and then stalls past the socket timeout."""

    def __iter__(self):
        yield b'{"status": "pulling manifest"}\n'
        raise socket.timeout("timed out")


def pull_stream(*lines):
    return "".join(json.dumps(line) + "\n" for line in lines)


SUCCESSFUL_PULL = pull_stream(
    {"status": "pulling manifest"},
    {"status": "pulling abc123", "digest": "sha256:abc123", "total": 10, "completed": 10},
    {"status": "verifying sha256 digest"},
    {"status": "writing manifest"},
    {"status": "success"},
)
NOT_FOUND = json.dumps({"error": "model 'llama3.2:latest' not found"}).encode()


def run_module(args, ollama, monkeypatch, capsys, check_mode=False, diff=False):
    monkeypatch.setattr(ollama_model, "fetch_url", ollama)
    args = dict(args, _ansible_check_mode=check_mode, _ansible_diff=diff)
    with patch_module_args(args):
        with pytest.raises(SystemExit):
            ollama_model.main()
    return json.loads(capsys.readouterr().out)


def test_present_pulls_missing_model(monkeypatch, capsys):
    ollama = ScriptedOllama({
        ("POST", "/api/show"): (404, NOT_FOUND),
        ("POST", "/api/pull"): (200, SUCCESSFUL_PULL),
        ("GET", "/api/tags"): (200, TAGS),
    })
    result = run_module({"name": "llama3.2"}, ollama, monkeypatch, capsys)

    assert result["changed"] is True
    assert result["name"] == "llama3.2:latest"
    assert result["digest"] == "abc123"
    assert result["size"] == 2019393189
    assert ollama.paths() == [("POST", "/api/show"), ("POST", "/api/pull"), ("GET", "/api/tags")]
    assert ollama.calls[1]["body"] == {"model": "llama3.2:latest", "stream": True}


def test_present_model_already_there(monkeypatch, capsys):
    ollama = ScriptedOllama({
        ("POST", "/api/show"): (200, {"details": {}}),
        ("GET", "/api/tags"): (200, TAGS),
    })
    result = run_module({"name": "llama3.2:latest"}, ollama, monkeypatch, capsys)

    assert result["changed"] is False
    assert result["digest"] == "abc123"
    assert ("POST", "/api/pull") not in ollama.paths()


def test_present_check_mode_sends_no_pull(monkeypatch, capsys):
    ollama = ScriptedOllama({("POST", "/api/show"): (404, NOT_FOUND)})
    result = run_module({"name": "llama3.2"}, ollama, monkeypatch, capsys, check_mode=True, diff=True)

    assert result["changed"] is True
    assert result["digest"] is None
    assert result["size"] is None
    assert ollama.paths() == [("POST", "/api/show")]
    assert result["diff"]["before"] == {"name": "llama3.2:latest", "state": "absent"}
    assert result["diff"]["after"] == {"name": "llama3.2:latest", "state": "present"}


def test_pull_error_line_under_200_fails(monkeypatch, capsys):
    stream = pull_stream(
        {"status": "pulling manifest"},
        {"status": "pulling abc123", "digest": "sha256:abc123", "total": 10, "completed": 5},
        {"error": "max retries exceeded: unexpected EOF"},
    )
    ollama = ScriptedOllama({
        ("POST", "/api/show"): (404, NOT_FOUND),
        ("POST", "/api/pull"): (200, stream),
    })
    result = run_module({"name": "llama3.2"}, ollama, monkeypatch, capsys)

    assert result["failed"] is True
    assert "max retries exceeded: unexpected EOF" in result["msg"]
    assert "llama3.2:latest" in result["msg"]
    assert ("GET", "/api/tags") not in ollama.paths()


def test_pull_without_success_fails(monkeypatch, capsys):
    stream = pull_stream({"status": "pulling manifest"}, {"status": "writing manifest"})
    ollama = ScriptedOllama({
        ("POST", "/api/show"): (404, NOT_FOUND),
        ("POST", "/api/pull"): (200, stream),
    })
    result = run_module({"name": "llama3.2"}, ollama, monkeypatch, capsys)

    assert result["failed"] is True
    assert "without a success status" in result["msg"]
    assert "writing manifest" in result["msg"]


def test_pull_invalid_json_line_fails(monkeypatch, capsys):
    ollama = ScriptedOllama({
        ("POST", "/api/show"): (404, NOT_FOUND),
        ("POST", "/api/pull"): (200, '{"status": "pulling manifest"}\n<html>proxy error</html>\n'),
    })
    result = run_module({"name": "llama3.2"}, ollama, monkeypatch, capsys)

    assert result["failed"] is True
    assert "Invalid JSON line" in result["msg"]
    assert "proxy error" in result["msg"]


def test_pull_http_error_shows_ollama_message(monkeypatch, capsys):
    ollama = ScriptedOllama({
        ("POST", "/api/show"): (404, NOT_FOUND),
        ("POST", "/api/pull"): (500, json.dumps({"error": "disk full"}).encode()),
    })
    result = run_module({"name": "llama3.2"}, ollama, monkeypatch, capsys)

    assert result["failed"] is True
    assert "HTTP 500" in result["msg"]
    assert "disk full" in result["msg"]


def test_pull_stall_reports_timeout(monkeypatch, capsys):
    ollama = ScriptedOllama({
        ("POST", "/api/show"): (404, NOT_FOUND),
        ("POST", "/api/pull"): (200, ""),
    })

    def fetch_url(module, url, **kwargs):
        response, info = ollama(module, url, **kwargs)
        if url.endswith("/api/pull"):
            response = TimingOutResponse()
        return response, info

    result = run_module({"name": "llama3.2", "timeout": 7}, fetch_url, monkeypatch, capsys)

    assert result["failed"] is True
    assert "Timed out" in result["msg"]
    assert "7 s" in result["msg"]
    assert "pulling manifest" in result["msg"]


def test_absent_deletes_present_model(monkeypatch, capsys):
    ollama = ScriptedOllama({
        ("POST", "/api/show"): (200, {"details": {}}),
        ("DELETE", "/api/delete"): (200, ""),
    })
    result = run_module({"name": "llama3.2", "state": "absent"}, ollama, monkeypatch, capsys)

    assert result["changed"] is True
    assert ollama.paths() == [("POST", "/api/show"), ("DELETE", "/api/delete")]
    assert ollama.calls[1]["body"] == {"model": "llama3.2:latest"}


def test_absent_missing_model_unchanged(monkeypatch, capsys):
    ollama = ScriptedOllama({("POST", "/api/show"): (404, NOT_FOUND)})
    result = run_module({"name": "llama3.2", "state": "absent"}, ollama, monkeypatch, capsys)

    assert result["changed"] is False
    assert ollama.paths() == [("POST", "/api/show")]


def test_absent_check_mode_sends_no_delete(monkeypatch, capsys):
    ollama = ScriptedOllama({("POST", "/api/show"): (200, {"details": {}})})
    result = run_module({"name": "llama3.2", "state": "absent"}, ollama, monkeypatch, capsys, check_mode=True)

    assert result["changed"] is True
    assert ollama.paths() == [("POST", "/api/show")]


def test_absent_delete_race_unchanged(monkeypatch, capsys):
    ollama = ScriptedOllama({
        ("POST", "/api/show"): (200, {"details": {}}),
        ("DELETE", "/api/delete"): (404, NOT_FOUND),
    })
    result = run_module({"name": "llama3.2", "state": "absent"}, ollama, monkeypatch, capsys)

    assert result["changed"] is False


def test_unreachable_server_fails_clearly(monkeypatch, capsys):
    ollama = ScriptedOllama({("POST", "/api/show"): (-1, "Request failed: <urlopen error [Errno 111] Connection refused>")})
    result = run_module({"name": "llama3.2"}, ollama, monkeypatch, capsys)

    assert result["failed"] is True
    assert "Failed to reach Ollama at http://127.0.0.1:11434" in result["msg"]
    assert "Connection refused" in result["msg"]


def test_forbidden_host_header_explained(monkeypatch, capsys):
    ollama = ScriptedOllama({("POST", "/api/show"): (403, b"")})
    result = run_module({"name": "llama3.2"}, ollama, monkeypatch, capsys)

    assert result["failed"] is True
    assert "403" in result["msg"]
    assert "loopback" in result["msg"]


def test_show_server_error_fails(monkeypatch, capsys):
    ollama = ScriptedOllama({("POST", "/api/show"): (500, json.dumps({"error": "database locked"}).encode())})
    result = run_module({"name": "llama3.2"}, ollama, monkeypatch, capsys)

    assert result["failed"] is True
    assert "database locked" in result["msg"]


def test_model_missing_from_tags_fails(monkeypatch, capsys):
    ollama = ScriptedOllama({
        ("POST", "/api/show"): (200, {"details": {}}),
        ("GET", "/api/tags"): (200, {"models": []}),
    })
    result = run_module({"name": "llama3.2"}, ollama, monkeypatch, capsys)

    assert result["failed"] is True
    assert "missing from GET /api/tags" in result["msg"]


def test_loopback_host_bypasses_proxy(monkeypatch, capsys):
    ollama = ScriptedOllama({("POST", "/api/show"): (404, NOT_FOUND)})
    run_module({"name": "llama3.2", "state": "absent", "timeout": 12}, ollama, monkeypatch, capsys)

    assert ollama.calls[0]["use_proxy"] is False
    assert ollama.calls[0]["timeout"] == 12


@pytest.mark.parametrize("args, expected", [
    ({"name": "llama 3"}, "Invalid model name 'llama 3'"),
    ({"name": ":latest"}, "Invalid model name ':latest'"),
    ({"name": "llama3.2", "host": "127.0.0.1:11434"}, "Invalid host '127.0.0.1:11434'"),
    ({"name": "llama3.2", "host": "ftp://127.0.0.1"}, "Invalid host 'ftp://127.0.0.1'"),
    ({"name": "llama3.2", "timeout": 0}, "Invalid timeout 0"),
])
def test_invalid_parameters_rejected(args, expected, monkeypatch, capsys):
    ollama = ScriptedOllama({})
    result = run_module(args, ollama, monkeypatch, capsys)

    assert result["failed"] is True
    assert expected in result["msg"]
    assert ollama.calls == []


@pytest.mark.parametrize("name, expected", [
    ("llama3.2", "llama3.2:latest"),
    ("qwen2.5:0.5b", "qwen2.5:0.5b"),
    ("library/llama3.2", "library/llama3.2:latest"),
    ("registry.example.com:5000/team/model", "registry.example.com:5000/team/model:latest"),
])
def test_normalize_model_name(name, expected):
    assert ollama_model.normalize_model_name(name) == expected
