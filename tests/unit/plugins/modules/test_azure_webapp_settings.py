# Copyright (c) homelab.edge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests of azure_webapp_settings: the planning functions, and main() with a fake SDK client."""

import json
import os
import sys
from types import SimpleNamespace

import pytest

REPO_ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "..", ".."))
sys.path.insert(0, os.path.join(REPO_ROOT, ".collections"))

from ansible.module_utils.testing import patch_module_args  # noqa: E402
from azure.core.exceptions import ClientAuthenticationError, HttpResponseError, ResourceNotFoundError  # noqa: E402

from ansible_collections.homelab.edge.plugins.module_utils import azure as azure_utils  # noqa: E402
from ansible_collections.homelab.edge.plugins.modules import azure_webapp_settings as module  # noqa: E402

SECRET_VALUE = "very-secret-value-2b7c"
CURRENT = {"WEBSITE_RUN_FROM_PACKAGE": "1", "EDGE_SERVICE_URL": "https://old.example.com", "CF_ACCESS_CLIENT_SECRET": SECRET_VALUE}


# normalize_value and normalize_settings


def test_string_value_passes_unchanged():
    assert module.normalize_value("A", "8000") == ("8000", None)


@pytest.mark.parametrize(
    "value, expected",
    [(8000, "8000"), (True, "true"), (False, "false"), (1.5, "1.5")],
)
def test_non_string_value_converted_with_warning(value, expected):
    text, warning = module.normalize_value("PORT", value)
    assert text == expected
    assert "App setting 'PORT' has a value of type %s" % type(value).__name__ in warning
    assert "Quote the value" in warning


@pytest.mark.parametrize("value", [None, ["a"], {"a": "b"}])
def test_unstorable_value_rejected(value):
    with pytest.raises(ValueError) as error:
        module.normalize_value("BAD", value)
    assert "Invalid value for app setting 'BAD'" in str(error.value)


def test_warning_never_contains_value():
    text, warning = module.normalize_value("PIN", 987654321)
    assert "987654321" not in warning


def test_key_vault_reference_forms_accepted():
    settings, warnings = module.normalize_settings(
        {
            "A": "@Microsoft.KeyVault(SecretUri=https://kv.vault.azure.net/secrets/s/)",
            "B": "@Microsoft.KeyVault(VaultName=kv;SecretName=s)",
            "C": "@Microsoft.KeyVault(VaultName=kv;SecretName=s;SecretVersion=abc)",
        }
    )
    assert warnings == []
    assert settings["B"] == "@Microsoft.KeyVault(VaultName=kv;SecretName=s)"


def test_malformed_key_vault_reference_warns():
    settings, warnings = module.normalize_settings({"S": "@Microsoft.KeyVault(VaultName=kv)"})
    assert len(warnings) == 1
    assert "App setting 'S' starts like a Key Vault reference" in warnings[0]


# plan_settings


def test_merge_adds_and_updates_keeps_others():
    plan = module.plan_settings(CURRENT, "merge", {"EDGE_SERVICE_URL": "https://chat.example.com", "CF_ACCESS_CLIENT_ID": "id"})
    assert plan["settings"]["WEBSITE_RUN_FROM_PACKAGE"] == "1"
    assert plan["settings"]["CF_ACCESS_CLIENT_SECRET"] == SECRET_VALUE
    assert plan["added"] == ["CF_ACCESS_CLIENT_ID"]
    assert plan["updated"] == ["EDGE_SERVICE_URL"]
    assert plan["removed"] == []


def test_merge_equal_values_plans_nothing():
    plan = module.plan_settings(CURRENT, "merge", {"WEBSITE_RUN_FROM_PACKAGE": "1"})
    assert plan["settings"] == CURRENT
    assert (plan["added"], plan["updated"], plan["removed"]) == ([], [], [])


def test_remove_deletes_listed_names_only():
    plan = module.plan_settings(CURRENT, "remove", names=["EDGE_SERVICE_URL", "ABSENT"])
    assert sorted(plan["settings"]) == ["CF_ACCESS_CLIENT_SECRET", "WEBSITE_RUN_FROM_PACKAGE"]
    assert plan["removed"] == ["EDGE_SERVICE_URL"]
    assert plan["added"] == []


def test_exact_replaces_and_reports_removed():
    plan = module.plan_settings(CURRENT, "exact", {"WEBSITE_RUN_FROM_PACKAGE": "0"})
    assert plan["settings"] == {"WEBSITE_RUN_FROM_PACKAGE": "0"}
    assert plan["updated"] == ["WEBSITE_RUN_FROM_PACKAGE"]
    assert plan["removed"] == ["CF_ACCESS_CLIENT_SECRET", "EDGE_SERVICE_URL"]


def test_exact_same_set_plans_nothing():
    plan = module.plan_settings(CURRENT, "exact", dict(CURRENT))
    assert (plan["added"], plan["updated"], plan["removed"]) == ([], [], [])


def test_unknown_mode_rejected():
    with pytest.raises(ValueError):
        module.plan_settings(CURRENT, "replace", {})


# Slot settings and diff


def test_slot_sticky_merges_without_duplicates():
    names, added = module.plan_slot_sticky(["A", "B"], ["B", "C", "C"])
    assert names == ["A", "B", "C"]
    assert added == ["C"]


def test_slot_sticky_already_present():
    names, added = module.plan_slot_sticky(["A"], ["A"])
    assert names == ["A"]
    assert added == []


def test_diff_hides_values_marks_updates():
    plan = module.plan_settings(CURRENT, "merge", {"CF_ACCESS_CLIENT_SECRET": "new-secret-9d"})
    diff = module.build_diff(CURRENT, plan, [], ["CF_ACCESS_CLIENT_SECRET"])
    assert diff["after"]["app_settings"]["CF_ACCESS_CLIENT_SECRET"] == module.HIDDEN_CHANGED
    assert diff["after"]["app_settings"]["WEBSITE_RUN_FROM_PACKAGE"] == module.HIDDEN
    assert diff["after"]["slot_sticky_names"] == ["CF_ACCESS_CLIENT_SECRET"]
    assert SECRET_VALUE not in json.dumps(diff)
    assert "new-secret-9d" not in json.dumps(diff)


# main() with a fake WebSiteManagementClient


class FakeWebApps:
    """Records calls and serves settings per slot (None is production) like the SDK's web_apps."""

    def __init__(self, settings=None, slots=None, sticky=None, references=None, error=None):
        self.settings = {None: dict(settings or {})}
        self.settings.update({name: dict(values) for name, values in (slots or {}).items()})
        self.sticky = sticky or {"appSettingNames": [], "connectionStringNames": ["Db"], "azureStorageConfigNames": []}
        self.references = references or []
        self.error = error
        self.calls = []

    def _raise(self):
        if self.error is not None:
            raise self.error

    def list_application_settings(self, group, name):
        self.calls.append(("list", None))
        self._raise()
        return SimpleNamespace(properties=dict(self.settings[None]))

    def list_application_settings_slot(self, group, name, slot):
        self.calls.append(("list", slot))
        self._raise()
        return SimpleNamespace(properties=dict(self.settings[slot]))

    def update_application_settings(self, group, name, body):
        self.calls.append(("update", None))
        self.settings[None] = dict(body["properties"])

    def update_application_settings_slot(self, group, name, slot, body):
        self.calls.append(("update", slot))
        self.settings[slot] = dict(body["properties"])

    def list_slot_configuration_names(self, group, name):
        self.calls.append(("list_sticky", None))
        return SimpleNamespace(
            app_setting_names=list(self.sticky["appSettingNames"]),
            connection_string_names=list(self.sticky["connectionStringNames"]),
            azure_storage_config_names=list(self.sticky["azureStorageConfigNames"]),
        )

    def update_slot_configuration_names(self, group, name, body):
        self.calls.append(("update_sticky", None))
        self.sticky = dict(body["properties"])

    def get_app_settings_key_vault_references(self, group, name):
        self.calls.append(("references", None))
        return iter(self.references)

    def writes(self):
        return [call for call in self.calls if call[0].startswith("update")]


BASE_ARGS = {"subscription_id": "sub-0001", "resource_group": "rg-shop", "name": "shop-web"}


def warning_texts(result):
    """Return the warning messages of a module result; ansible-core 2.19 wraps each one in an event object."""
    texts = []
    for warning in result.get("warnings", []):
        texts.append(warning if isinstance(warning, str) else warning["event"]["msg"])
    return texts


def run_module(web_apps, args, monkeypatch, capsys, check_mode=False, diff=False):
    monkeypatch.setattr(
        azure_utils.AzureClientFactory, "web_client", lambda self: SimpleNamespace(web_apps=web_apps)
    )
    args = dict(BASE_ARGS, _ansible_check_mode=check_mode, _ansible_diff=diff, **args)
    with patch_module_args(args):
        with pytest.raises(SystemExit):
            module.main()
    return json.loads(capsys.readouterr().out)


def test_main_merge_writes_whole_set(monkeypatch, capsys):
    web_apps = FakeWebApps(settings=CURRENT)
    result = run_module(web_apps, {"app_settings": {"CF_ACCESS_CLIENT_ID": "id-1"}}, monkeypatch, capsys)
    assert result["changed"] is True
    assert result["added"] == ["CF_ACCESS_CLIENT_ID"]
    assert web_apps.writes() == [("update", None)]
    assert web_apps.settings[None] == dict(CURRENT, CF_ACCESS_CLIENT_ID="id-1")


def test_main_unchanged_sends_no_update(monkeypatch, capsys):
    web_apps = FakeWebApps(settings=CURRENT)
    result = run_module(web_apps, {"app_settings": {"WEBSITE_RUN_FROM_PACKAGE": 1}}, monkeypatch, capsys)
    assert result["changed"] is False
    assert web_apps.writes() == []
    assert any("has a value of type int" in warning for warning in warning_texts(result))


def test_main_check_mode_sends_no_update(monkeypatch, capsys):
    web_apps = FakeWebApps(settings=CURRENT)
    args = {"mode": "exact", "app_settings": {"ONLY": "x"}, "slot_sticky": ["ONLY"]}
    result = run_module(web_apps, args, monkeypatch, capsys, check_mode=True, diff=True)
    assert result["changed"] is True
    assert result["removed"] == sorted(CURRENT)
    assert result["slot_sticky_added"] == ["ONLY"]
    assert web_apps.writes() == []
    assert SECRET_VALUE not in json.dumps(result)


def test_main_slot_uses_slot_operations(monkeypatch, capsys):
    web_apps = FakeWebApps(settings=CURRENT, slots={"staging": {"S": "1"}})
    result = run_module(web_apps, {"slot": "staging", "app_settings": {"T": "2"}}, monkeypatch, capsys)
    assert result["changed"] is True
    assert web_apps.calls == [("list", "staging"), ("update", "staging")]
    assert web_apps.settings["staging"] == {"S": "1", "T": "2"}
    assert web_apps.settings[None] == CURRENT


def test_main_slot_sticky_keeps_other_lists(monkeypatch, capsys):
    web_apps = FakeWebApps(settings=CURRENT)
    args = {"app_settings": {"WEBSITE_RUN_FROM_PACKAGE": "1"}, "slot_sticky": ["WEBSITE_RUN_FROM_PACKAGE"]}
    result = run_module(web_apps, args, monkeypatch, capsys)
    assert result["changed"] is True
    assert web_apps.writes() == [("update_sticky", None)]
    assert web_apps.sticky["appSettingNames"] == ["WEBSITE_RUN_FROM_PACKAGE"]
    assert web_apps.sticky["connectionStringNames"] == ["Db"]


def test_main_result_has_no_values(monkeypatch, capsys):
    web_apps = FakeWebApps(settings=CURRENT)
    result = run_module(web_apps, {"app_settings": {"NEW": "fresh-value-77"}}, monkeypatch, capsys, diff=True)
    assert "fresh-value-77" not in json.dumps(result)
    assert SECRET_VALUE not in json.dumps(result)
    assert result["diff"]["after"]["app_settings"]["NEW"] == module.HIDDEN


def test_main_remove_requires_setting_names(monkeypatch, capsys):
    web_apps = FakeWebApps(settings=CURRENT)
    result = run_module(web_apps, {"mode": "remove"}, monkeypatch, capsys)
    assert result["failed"] is True
    assert "Missing setting_names" in result["msg"]
    assert web_apps.calls == []


def test_main_setting_names_rejected_in_merge(monkeypatch, capsys):
    web_apps = FakeWebApps(settings=CURRENT)
    result = run_module(web_apps, {"app_settings": {}, "setting_names": ["A"]}, monkeypatch, capsys)
    assert result["failed"] is True
    assert "setting_names is only used with mode=remove" in result["msg"]


def test_main_key_vault_status_warns(monkeypatch, capsys):
    reference = SimpleNamespace(name="S", status="AccessToKeyVaultDenied", vault_name="kv", secret_name="s", details="denied")
    web_apps = FakeWebApps(settings={"S": "@Microsoft.KeyVault(VaultName=kv;SecretName=s)"}, references=[reference])
    result = run_module(web_apps, {"app_settings": {}, "check_key_vault_references": True}, monkeypatch, capsys)
    assert result["key_vault_references"][0]["status"] == "AccessToKeyVaultDenied"
    assert any("'S'" in warning and "AccessToKeyVaultDenied" in warning for warning in warning_texts(result))


def test_main_not_found_fails_without_write(monkeypatch, capsys):
    error = ResourceNotFoundError(message="not found")
    error.status_code = 404
    error.error = SimpleNamespace(code="ResourceNotFound", message="The Resource 'Microsoft.Web/sites/app' was not found.")
    web_apps = FakeWebApps(settings=CURRENT, error=error)
    result = run_module(web_apps, {"app_settings": {"A": "https://chat.example.com"}}, monkeypatch, capsys)
    assert result["failed"] is True
    assert result["error_code"] == "ResourceNotFound"
    assert "web app 'shop-web' in resource group 'rg-shop' of subscription 'sub-0001'" in result["msg"]
    assert "check name, resource_group, slot and subscription_id" in result["msg"]
    assert web_apps.writes() == []


# module_utils: error translation and credential choice


class FakeModule:
    def __init__(self, **params):
        self.params = dict(
            subscription_id="sub",
            client_id=None,
            secret=None,
            tenant=None,
            cloud_environment="AzureCloud",
            base_url=None,
            authority_host=None,
            max_retries=0,
            timeout=5,
        )
        self.params.update(params)
        self.failures = []

    def fail_json(self, **result):
        self.failures.append(result)
        raise SystemExit(1)


def test_credential_error_names_principal():
    factory = azure_utils.AzureClientFactory(FakeModule(client_id="cid", secret="s", tenant="tid"))
    error = ClientAuthenticationError(message="Authentication failed: AADSTS7000215: Invalid client secret provided.")
    translated = azure_utils.translate_error(error, "read the app settings", "web app 'w'", factory)
    assert translated.code == "ClientAuthenticationError"
    assert "service principal 'cid' in tenant 'tid'" in translated.message
    assert "AADSTS7000215" in translated.message


def test_forbidden_error_suggests_role():
    error = HttpResponseError(message="forbidden")
    error.status_code = 403
    error.error = SimpleNamespace(code="AuthorizationFailed", message="The client 'cid' does not have authorization.")
    factory = azure_utils.AzureClientFactory(FakeModule())
    translated = azure_utils.translate_error(error, "write the app settings", "web app 'w'", factory)
    assert translated.status == 403
    assert "Website Contributor" in translated.message


def test_unknown_exception_returned_unchanged():
    error = KeyError("x")
    factory = azure_utils.AzureClientFactory(FakeModule())
    assert azure_utils.translate_error(error, "read", "w", factory) is error


def test_explicit_principal_uses_client_secret_credential():
    factory = azure_utils.AzureClientFactory(
        FakeModule(client_id="cid", secret="s", tenant="tid", authority_host="https://127.0.0.1:9")
    )
    credential = factory.credential()
    assert type(credential).__name__ == "ClientSecretCredential"


def test_no_principal_uses_default_chain():
    factory = azure_utils.AzureClientFactory(FakeModule())
    credential = factory.credential()
    assert type(credential).__name__ == "DefaultAzureCredential"


def test_overrides_select_endpoints():
    factory = azure_utils.AzureClientFactory(
        FakeModule(cloud_environment="AzureUSGovernment", base_url="https://127.0.0.1:8443/")
    )
    assert factory.base_url == "https://127.0.0.1:8443"
    assert factory.authority_host == "https://login.microsoftonline.us"
    assert factory.credential_scope == "https://management.usgovcloudapi.net/.default"


def test_incomplete_principal_rejected():
    fake = FakeModule(client_id="cid")
    factory = azure_utils.AzureClientFactory(fake)
    with pytest.raises(SystemExit):
        factory.check_parameters()
    assert "Incomplete service principal: client_id given but secret, tenant missing" in fake.failures[0]["msg"]


def test_plain_http_endpoint_rejected():
    fake = FakeModule(base_url="http://127.0.0.1:8080")
    factory = azure_utils.AzureClientFactory(fake)
    with pytest.raises(SystemExit):
        factory.check_parameters()
    assert "must be https URLs" in fake.failures[0]["msg"]


def test_azcollection_environment_selects_principal(monkeypatch):
    monkeypatch.setenv("AZURE_CLIENT_ID", "env-client")
    monkeypatch.setenv("AZURE_SECRET", "env-secret")
    monkeypatch.setenv("AZURE_TENANT", "env-tenant")
    factory = azure_utils.AzureClientFactory(FakeModule())
    assert (factory.client_id, factory.secret, factory.tenant) == ("env-client", "env-secret", "env-tenant")


def test_workload_identity_environment_uses_default_chain(monkeypatch):
    # AZURE_CLIENT_ID and AZURE_TENANT_ID without a secret are how workload identity and
    # user-assigned managed identity are configured, so they must not become an incomplete principal.
    monkeypatch.setenv("AZURE_CLIENT_ID", "env-client")
    monkeypatch.setenv("AZURE_TENANT_ID", "env-tenant")
    monkeypatch.delenv("AZURE_SECRET", raising=False)
    fake = FakeModule()
    factory = azure_utils.AzureClientFactory(fake)
    factory.check_parameters()
    assert fake.failures == []
    assert factory.client_id is None
    assert "AZURE_CLIENT_ID 'env-client' from the environment" in factory.describe_principal()
