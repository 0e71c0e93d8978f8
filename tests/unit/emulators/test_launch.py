# Copyright (c) homelab.edge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Tests of the emulator launcher: registry, foreground and daemon modes, and the demo seed."""

from __future__ import annotations

import json
import os
import pathlib
import signal
import subprocess
import sys

import pytest

from tests.emulators import launch
from tests.emulators.admin import CloudflareAdmin

REPO_ROOT = pathlib.Path(__file__).resolve().parents[3]
DEMO_SEED = REPO_ROOT / "tests" / "emulators" / "seeds" / "demo.json"


def test_registry_names_cloudflare():
    assert launch.EMULATORS["cloudflare"] == "tests.emulators.cloudflare_api"


def test_missing_module_is_clear_error(monkeypatch, tmp_path):
    monkeypatch.setitem(launch.EMULATORS, "future", "tests.emulators.not_written_yet")
    with pytest.raises(launch.LaunchError, match="'future'.*does not exist yet"):
        launch.start_all({"future": {}}, tmp_path, "127.0.0.1")


def test_missing_module_skipped_when_unnamed(monkeypatch, tmp_path):
    monkeypatch.setitem(launch.EMULATORS, "future", "tests.emulators.not_written_yet")
    servers, info = launch.start_all({"cloudflare": {}}, tmp_path, "127.0.0.1")
    launch.stop_all(servers)
    assert list(info) == ["cloudflare"]


def test_unknown_seed_key_rejected(tmp_path):
    seed = tmp_path / "seed.json"
    seed.write_text(json.dumps({"cloudfare": {}}))
    with pytest.raises(launch.LaunchError, match="unknown emulators"):
        launch.load_seed(seed)


def test_demo_seed_content():
    seed = launch.load_seed(DEMO_SEED)["cloudflare"]
    assert [a["name"] for a in seed["accounts"]] == ["Homelab"]
    assert len(seed["accounts"][0]["id"]) == 32
    assert [(z["name"], z["plan"]) for z in seed["zones"]] == [("example.com", "free")]
    permissions = {t["name"]: set(t["permissions"]) for t in seed["api_tokens"]}
    assert "DNS Write" in permissions["homelab-edge"]
    assert not any(p.startswith("DNS") for p in permissions["homelab-edge-without-dns"])
    assert {(r["type"], r["name"]) for r in seed["dns_records"]} >= {("A", "www"), ("MX", "@")}


def test_foreground_stops_on_sigterm(tmp_path):
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.emulators.launch", "--seed", str(DEMO_SEED), "--state-dir", str(tmp_path)],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        info = json.loads(process.stdout.readline())
        admin = CloudflareAdmin(info["cloudflare"]["admin_url"])
        assert admin.request("GET", "/health") == {"ok": True, "name": "cloudflare"}
        assert json.loads((tmp_path / "emulators.json").read_text()) == info
    finally:
        process.send_signal(signal.SIGTERM)
        remaining_stdout, remaining_stderr = process.communicate(timeout=30)
    assert process.returncode == 0
    assert remaining_stdout == ""


def test_daemon_writes_pid_and_info(tmp_path):
    completed = subprocess.run(
        [sys.executable, "-m", "tests.emulators.launch", "--seed", str(DEMO_SEED), "--state-dir", str(tmp_path), "--daemon"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        # The assert below checks the exit status and shows stderr when it is not 0.
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    info = json.loads(completed.stdout)
    pid = int((tmp_path / "emulators.pid").read_text())
    try:
        admin = CloudflareAdmin(info["cloudflare"]["admin_url"])
        assert admin.request("GET", "/health")["ok"] is True
        assert (tmp_path / "cloudflare.json").stat().st_mode & 0o777 == 0o600
    finally:
        os.kill(pid, signal.SIGTERM)


def test_daemon_reports_start_failure(tmp_path):
    seed = tmp_path / "seed.json"
    seed.write_text(json.dumps({"cloudflare": {"dns_records": [{"zone": "missing.example", "type": "A", "name": "x", "content": "192.0.2.1"}]}}))
    completed = subprocess.run(
        [sys.executable, "-m", "tests.emulators.launch", "--seed", str(seed), "--state-dir", str(tmp_path / "state"), "--daemon"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        # The launcher is expected to exit with status 1 here.
        check=False,
    )
    assert completed.returncode == 1
    assert "missing.example" in completed.stderr
    assert completed.stdout == ""
    assert not (tmp_path / "state" / "emulators.pid").exists()
