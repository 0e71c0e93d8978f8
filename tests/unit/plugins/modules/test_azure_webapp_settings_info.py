# Copyright (c) homelab.edge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests of azure_webapp_settings_info with a fake SDK client."""

import json
import os
import sys
from types import SimpleNamespace

import pytest

REPO_ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "..", ".."))
sys.path.insert(0, os.path.join(REPO_ROOT, ".collections"))

from ansible.module_utils.testing import patch_module_args  # noqa: E402

from ansible_collections.homelab.edge.plugins.module_utils import azure as azure_utils  # noqa: E402
from ansible_collections.homelab.edge.plugins.modules import azure_webapp_settings_info as module  # noqa: E402

SETTINGS = {"B_SECRET": "info-secret-3f9a", "A_URL": "https://chat.example.com"}


class FakeWebApps:
    def __init__(self):
        self.calls = []

    def list_application_settings(self, group, name):
        self.calls.append("list")
        return SimpleNamespace(properties=dict(SETTINGS))

    def list_slot_configuration_names(self, group, name):
        self.calls.append("list_sticky")
        return SimpleNamespace(app_setting_names=["B_SECRET"], connection_string_names=[], azure_storage_config_names=[])


def run_module(args, monkeypatch, capsys, no_log=False):
    web_apps = FakeWebApps()
    monkeypatch.setattr(azure_utils.AzureClientFactory, "web_client", lambda self: SimpleNamespace(web_apps=web_apps))
    args = dict({"subscription_id": "sub", "resource_group": "rg", "name": "app", "_ansible_no_log": no_log}, **args)
    with patch_module_args(args):
        with pytest.raises(SystemExit):
            module.main()
    return json.loads(capsys.readouterr().out), web_apps


def test_info_returns_sorted_names(monkeypatch, capsys):
    result, web_apps = run_module({}, monkeypatch, capsys)
    assert result["changed"] is False
    assert result["app_setting_names"] == ["A_URL", "B_SECRET"]
    assert result["slot_sticky_names"] == ["B_SECRET"]
    assert "app_settings" not in result
    assert "info-secret-3f9a" not in json.dumps(result)


def test_info_values_rejected_without_no_log(monkeypatch, capsys):
    result, web_apps = run_module({"return_values": True}, monkeypatch, capsys)
    assert result["failed"] is True
    assert "the task must set no_log: true" in result["msg"]
    assert web_apps.calls == []


def test_info_values_returned_with_no_log(monkeypatch, capsys):
    result, web_apps = run_module({"return_values": True}, monkeypatch, capsys, no_log=True)
    assert result["app_settings"] == SETTINGS
