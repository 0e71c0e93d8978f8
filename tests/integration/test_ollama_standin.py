# Copyright (c) homelab.edge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Tests of the Ollama stand-in: the behaviour of real Ollama that other tests rely on."""

import http.client
import collections
import json
import os
import signal
import socket
import subprocess
import sys

import pytest

REPO_ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path.insert(0, os.path.join(REPO_ROOT, "tests", "standins"))

from ollama import start  # noqa: E402  (the stand-in package in tests/standins/ollama)

STANDIN_PROGRAM = os.path.join(REPO_ROOT, "tests", "standins", "ollama", "ollama")

Response = collections.namedtuple("Response", ["status", "headers", "body"])


@pytest.fixture
def ollama():
    server = start("127.0.0.1", 0, models=["present-model"], pull_errors={"broken-model": "unexpected EOF"})
    yield server
    server.stop()


def send(server, method, path, body=None, headers=None, port=None):
    """Send one request and return its Response (status, headers, body bytes)."""
    connection = http.client.HTTPConnection("127.0.0.1", port or server.server_address[1], timeout=30)
    try:
        payload = json.dumps(body) if body is not None else None
        connection.request(method, path, body=payload, headers=headers or {})
        response = connection.getresponse()
        return Response(response.status, response.headers, response.read())
    finally:
        connection.close()


def json_lines(data):
    return [json.loads(line) for line in data.decode().splitlines() if line.strip()]


@pytest.mark.parametrize("host", ["chat.example.com", "chat.example.com:443", "192.0.2.10:11434", "ollama.local"])
def test_public_host_header_rejected(ollama, host):
    response = send(ollama, "GET", "/api/version", headers={"Host": host})
    status = response.status
    body = response.body

    assert status == 403
    assert body == b""


@pytest.mark.parametrize("host", ["localhost:11434", "127.0.0.1", "127.0.0.1:8080", "[::1]:11434", "localhost"])
def test_loopback_host_header_accepted(ollama, host):
    response = send(ollama, "GET", "/api/version", headers={"Host": host})
    status = response.status
    body = response.body

    assert status == 200
    assert json.loads(body) == {"version": "0.32.3"}


def test_wildcard_bind_skips_host_check():
    server = start("0.0.0.0", 0)
    try:
        response = send(server, "GET", "/api/version", headers={"Host": "chat.example.com"})
        status = response.status
    finally:
        server.stop()

    assert status == 200


def test_root_reports_running(ollama):
    response = send(ollama, "GET", "/")
    status = response.status
    body = response.body

    assert status == 200
    assert body == b"Ollama is running"


def test_tags_lists_normalized_names(ollama):
    response = send(ollama, "GET", "/api/tags")
    status = response.status
    body = response.body
    models = json.loads(body)["models"]

    assert status == 200
    assert [model["name"] for model in models] == ["present-model:latest"]
    assert models[0]["size"] > 0
    assert len(models[0]["digest"]) == 64


def test_show_missing_model_404(ollama):
    response = send(ollama, "POST", "/api/show", {"model": "absent-model"})
    status = response.status
    body = response.body

    assert status == 404
    assert json.loads(body) == {"error": "model 'absent-model:latest' not found"}


def test_pull_streams_chunked_progress(ollama):
    response = send(ollama, "POST", "/api/pull", {"model": "llama3.2"})
    status = response.status
    headers = response.headers
    body = response.body
    lines = json_lines(body)

    assert status == 200
    assert headers["Transfer-Encoding"] == "chunked"
    assert headers["Content-Type"] == "application/x-ndjson"
    assert lines[0] == {"status": "pulling manifest"}
    assert lines[-1] == {"status": "success"}
    assert any("completed" in line for line in lines)
    assert "llama3.2:latest" in ollama.models


def test_pull_error_ends_stream_under_200(ollama):
    response = send(ollama, "POST", "/api/pull", {"model": "broken-model"})
    status = response.status
    body = response.body
    lines = json_lines(body)

    assert status == 200
    assert lines[-1] == {"error": "unexpected EOF"}
    assert all("error" not in line for line in lines[:-1])
    assert "broken-model:latest" not in ollama.models


def test_pull_unknown_registry_name_fails():
    server = start("127.0.0.1", 0, registry=["llama3.2"])
    try:
        response = send(server, "POST", "/api/pull", {"model": "no-such-model"})
        status = response.status
        body = response.body
    finally:
        server.stop()

    assert status == 200
    assert json_lines(body)[-1] == {"error": "pull model manifest: file does not exist"}


def test_pull_without_stream_returns_status(ollama):
    ok_response = send(ollama, "POST", "/api/pull", {"model": "llama3.2", "stream": False})
    ok_status = ok_response.status
    ok_body = ok_response.body
    error_response = send(ollama, "POST", "/api/pull", {"model": "broken-model", "stream": False})
    error_status = error_response.status
    error_body = error_response.body

    assert ok_status == 200
    assert json.loads(ok_body) == {"status": "success"}
    assert error_status == 500
    assert json.loads(error_body) == {"error": "unexpected EOF"}


def test_delete_removes_model(ollama):
    first_response = send(ollama, "DELETE", "/api/delete", {"model": "present-model"})
    first_status = first_response.status
    second_response = send(ollama, "DELETE", "/api/delete", {"model": "present-model"})
    second_status = second_response.status
    second_body = second_response.body

    assert first_status == 200
    assert "present-model:latest" not in ollama.models
    assert second_status == 404
    assert "not found" in json.loads(second_body)["error"]


def test_chat_streams_reply(ollama):
    request = {"model": "present-model", "messages": [{"role": "user", "content": "hello there"}]}
    response = send(ollama, "POST", "/api/chat", request)
    status = response.status
    headers = response.headers
    body = response.body
    lines = json_lines(body)

    assert status == 200
    assert headers["Transfer-Encoding"] == "chunked"
    assert len(lines) > 2
    assert all(line["done"] is False for line in lines[:-1])
    assert lines[-1]["done"] is True
    assert lines[-1]["done_reason"] == "stop"
    assert "".join(line["message"]["content"] for line in lines) == "Stand-in reply to: hello there"


def test_chat_without_stream_single_object(ollama):
    request = {"model": "present-model", "stream": False, "messages": [{"role": "user", "content": "hi"}]}
    response = send(ollama, "POST", "/api/chat", request)
    status = response.status
    body = response.body
    reply = json.loads(body)

    assert status == 200
    assert reply["done"] is True
    assert reply["message"] == {"role": "assistant", "content": "Stand-in reply to: hi"}


def test_chat_missing_model_404(ollama):
    response = send(ollama, "POST", "/api/chat", {"model": "absent-model", "messages": []})
    status = response.status

    assert status == 404


def test_foreign_origin_rejected(ollama):
    response = send(ollama, "GET", "/api/tags", headers={"Origin": "https://chat.example.com"})
    status = response.status

    assert status == 403


def test_configured_origin_allowed():
    server = start("127.0.0.1", 0, origins=["https://chat.example.com"])
    try:
        response = send(server, "GET", "/api/tags", headers={"Origin": "https://chat.example.com"})
        status = response.status
        headers = response.headers
        local_response = send(server, "GET", "/api/tags", headers={"Origin": "http://localhost:3000"})
        local_status = local_response.status
    finally:
        server.stop()

    assert status == 200
    assert headers["Access-Control-Allow-Origin"] == "https://chat.example.com"
    assert local_status == 200


def test_requests_are_logged(ollama):
    send(ollama, "POST", "/api/show", {"model": "present-model"}, headers={"Host": "localhost:11434"})

    assert ollama.requests[-1]["method"] == "POST"
    assert ollama.requests[-1]["path"] == "/api/show"
    assert ollama.requests[-1]["host"] == "localhost:11434"
    assert ollama.requests[-1]["body"] == {"model": "present-model"}


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_until_serving(process, port):
    """Poll until the program accepts connections; fail if it exits or never listens."""
    for attempt in range(600):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            pass
        try:
            process.wait(timeout=0.05)
        except subprocess.TimeoutExpired:
            continue
        pytest.fail("ollama serve exited with %s: %s" % (process.returncode, process.stderr.read()))
    pytest.fail("ollama serve did not listen on port %d" % port)


def run_serve(tmp_path, port):
    environment = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "OLLAMA_HOST": "127.0.0.1:%d" % port,
        "OLLAMA_MODELS": str(tmp_path / "models"),
        "OLLAMA_KEEP_ALIVE": "24h",
    }
    process = subprocess.Popen([sys.executable, STANDIN_PROGRAM, "serve"], env=environment,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_until_serving(process, port)
    return process


def stop_serve(process):
    process.send_signal(signal.SIGTERM)
    stderr = process.communicate(timeout=30)[1]
    return process.returncode, stderr


def test_program_serves_and_keeps_models(tmp_path):
    port = free_port()
    process = run_serve(tmp_path, port)
    response = send(None, "POST", "/api/pull", {"model": "llama3.2"}, port=port)
    status = response.status
    returncode, stderr = stop_serve(process)

    assert status == 200
    assert returncode == 0
    assert 'msg="server config"' in stderr
    assert "OLLAMA_HOST:127.0.0.1:%d" % port in stderr
    assert "OLLAMA_KEEP_ALIVE:24h" in stderr

    process = run_serve(tmp_path, port)
    response = send(None, "GET", "/api/tags", port=port)
    body = response.body
    stop_serve(process)

    assert [model["name"] for model in json.loads(body)["models"]] == ["llama3.2:latest"]


def test_program_requires_home_or_models(tmp_path):
    environment = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "OLLAMA_HOST": "127.0.0.1:%d" % free_port()}
    completed = subprocess.run([sys.executable, STANDIN_PROGRAM, "serve"], env=environment,
                               capture_output=True, text=True, timeout=30, check=False)

    assert completed.returncode != 0
    assert "HOME" in completed.stderr


def test_program_prints_version():
    completed = subprocess.run([sys.executable, STANDIN_PROGRAM, "--version"], capture_output=True, text=True, check=False)

    assert completed.returncode == 0
    assert completed.stdout.strip() == "ollama version is 0.32.3"
