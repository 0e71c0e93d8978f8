# Copyright (c) homelab.edge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Drive the Azure Resource Manager emulator with the real Azure SDK and check Azure's behaviour.

These tests pin the behaviour the modules rely on. A PUT of app settings replaces the whole set
and restarts the app, and a slotConfigNames PUT replaces all three lists. Entra ID and ARM
return their error codes, and the request log never contains a value or a secret.
"""

import json
import pathlib
import sys

import pytest
import requests
from azure.core.exceptions import ClientAuthenticationError, HttpResponseError, ServiceRequestError
from azure.identity import ClientSecretCredential
from azure.mgmt.web import WebSiteManagementClient

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO_ROOT / "tests" / "emulators"))

import azure_arm  # noqa: E402

SUB = "sub-emulator-0001"
TENANT = "tenant-emulator-0001"
WRITER = ("writer-client-0001", "writer-secret-a81f")
READER = ("reader-client-0002", "reader-secret-c93d")
VALUE = "setting-value-5e2b"

SEED = {
    "principals": [
        {"client_id": WRITER[0], "client_secret": WRITER[1], "tenant_id": TENANT},
        {
            "client_id": READER[0],
            "client_secret": READER[1],
            "tenant_id": TENANT,
            "role_assignments": [{"scope": f"/subscriptions/{SUB}/resourceGroups/rg", "role": "Reader"}],
        },
    ],
    "subscriptions": {
        SUB: {
            "resource_groups": {
                "rg": {
                    "sites": {
                        "app": {
                            "app_settings": {"KEEP": VALUE},
                            "slot_config_names": {"app_setting_names": ["KEEP"], "connection_string_names": ["Db"]},
                            "slots": {"staging": {"app_settings": {"S": "1"}}},
                        },
                        "no-identity": {
                            "identity": "None",
                            "app_settings": {"REF": "@Microsoft.KeyVault(VaultName=kv;SecretName=present)"},
                        },
                    }
                }
            }
        }
    },
    "key_vaults": {"kv": {"secrets": ["present"]}},
}


@pytest.fixture
def emulator(tmp_path):
    server, info = azure_arm.start(SEED, tmp_path)
    try:
        yield server, info
    finally:
        server.shutdown()


def client(info, principal=WRITER, tenant=TENANT, trust_ca=True):
    ca = info["ca_path"] if trust_ca else None
    transport = {"connection_verify": ca} if ca else {}
    credential = ClientSecretCredential(
        tenant,
        principal[0],
        principal[1],
        authority=info["authority_host"],
        disable_instance_discovery=True,
        retry_total=0,
        **transport,
    )
    return WebSiteManagementClient(credential, SUB, base_url=info["base_url"], retry_total=0, **transport)


def test_put_replaces_whole_set_and_restarts(emulator):
    server, info = emulator
    web = client(info).web_apps
    web.update_application_settings("rg", "app", {"properties": {"ONLY": "x"}})
    assert web.list_application_settings("rg", "app").properties == {"ONLY": "x"}
    assert server.app.restart_count(SUB, "rg", "app") == 1
    assert server.app.restart_count(SUB, "rg", "app", "staging") == 0


def test_slot_put_touches_slot_only(emulator):
    server, info = emulator
    web = client(info).web_apps
    web.update_application_settings_slot("rg", "app", "staging", {"properties": {"T": "2"}})
    assert server.app.app_settings(SUB, "rg", "app", "staging") == {"T": "2"}
    assert server.app.app_settings(SUB, "rg", "app") == {"KEEP": VALUE}
    assert server.app.restart_count(SUB, "rg", "app", "staging") == 1


def test_slot_config_names_put_replaces_all_lists(emulator):
    server, info = emulator
    web = client(info).web_apps
    web.update_slot_configuration_names("rg", "app", {"properties": {"appSettingNames": ["A"]}})
    names = web.list_slot_configuration_names("rg", "app")
    assert names.app_setting_names == ["A"]
    assert server.app.slot_config_names(SUB, "rg", "app")["connectionStringNames"] == []


@pytest.mark.parametrize(
    "principal, tenant, code",
    [
        ((WRITER[0], "wrong-secret"), TENANT, "AADSTS7000215"),
        (("unknown-client", "x"), TENANT, "AADSTS700016"),
    ],
)
def test_token_errors_use_entra_codes(emulator, principal, tenant, code):
    server, info = emulator
    with pytest.raises(ClientAuthenticationError) as error:
        client(info, principal, tenant).web_apps.list_application_settings("rg", "app")
    assert code in str(error.value)


def test_unknown_tenant_fails(emulator):
    server, info = emulator
    with pytest.raises((ClientAuthenticationError, ValueError)):
        client(info, WRITER, "no-such-tenant").web_apps.list_application_settings("rg", "app")


@pytest.mark.parametrize(
    "group, name, slot, code",
    [
        ("rg", "missing", None, "ResourceNotFound"),
        ("rg", "app", "missing", "ResourceNotFound"),
        ("no-rg", "app", None, "ResourceGroupNotFound"),
    ],
)
def test_missing_resources_return_arm_codes(emulator, group, name, slot, code):
    server, info = emulator
    web = client(info).web_apps
    with pytest.raises(HttpResponseError) as error:
        if slot:
            web.list_application_settings_slot(group, name, slot)
        else:
            web.list_application_settings(group, name)
    assert error.value.status_code == 404
    assert error.value.error.code == code


def test_reader_cannot_list_settings(emulator):
    server, info = emulator
    web = client(info, READER).web_apps
    with pytest.raises(HttpResponseError) as error:
        web.list_application_settings("rg", "app")
    assert error.value.status_code == 403
    assert error.value.error.code == "AuthorizationFailed"
    assert web.list_slot_configuration_names("rg", "app").app_setting_names == ["KEEP"]


def test_key_vault_reference_statuses(emulator):
    server, info = emulator
    web = client(info).web_apps
    web.update_application_settings(
        "rg",
        "app",
        {
            "properties": {
                "OK": "@Microsoft.KeyVault(SecretUri=https://kv.vault.azure.net/secrets/present/)",
                "GONE": "@Microsoft.KeyVault(VaultName=kv;SecretName=absent)",
                "VAULT": "@Microsoft.KeyVault(VaultName=other;SecretName=present)",
                "PLAIN": "text",
            }
        },
    )
    statuses = {ref.name: ref.status for ref in web.get_app_settings_key_vault_references("rg", "app")}
    assert statuses == {"OK": "Resolved", "GONE": "SecretNotFound", "VAULT": "VaultNotFound"}
    [no_identity] = list(web.get_app_settings_key_vault_references("rg", "no-identity"))
    assert no_identity.status == "MSINotEnabled"


def test_arm_requires_token_and_api_version(emulator):
    server, info = emulator
    path = f"{info['base_url']}/subscriptions/{SUB}/resourceGroups/rg/providers/Microsoft.Web/sites/app/config/appsettings/list"
    anonymous = requests.post(path + "?api-version=2025-05-01", verify=info["ca_path"], timeout=10)
    assert anonymous.status_code == 401
    assert anonymous.json()["error"]["code"] == "AuthenticationFailed"
    forged = requests.post(path, headers={"Authorization": "Bearer forged"}, verify=info["ca_path"], timeout=10)
    assert forged.status_code == 401
    assert forged.json()["error"]["code"] == "InvalidAuthenticationToken"

    credential = ClientSecretCredential(
        TENANT, WRITER[0], WRITER[1], authority=info["authority_host"], disable_instance_discovery=True,
        connection_verify=info["ca_path"],
    )
    token = credential.get_token("https://management.azure.com/.default").token
    unversioned = requests.post(path, headers={"Authorization": f"Bearer {token}"}, verify=info["ca_path"], timeout=10)
    assert unversioned.status_code == 400
    assert unversioned.json()["error"]["code"] == "MissingApiVersionParameter"


def test_untrusted_certificate_rejected(emulator, monkeypatch):
    server, info = emulator
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    with pytest.raises((ServiceRequestError, ClientAuthenticationError)):
        client(info, trust_ca=False).web_apps.list_application_settings("rg", "app")


def test_request_log_has_no_values_or_secrets(emulator):
    server, info = emulator
    web = client(info).web_apps
    web.update_application_settings("rg", "app", {"properties": {"KEEP": VALUE, "NEW": "new-value-71aa"}})
    web.list_application_settings("rg", "app")
    log = json.dumps(server.request_log.entries())
    for secret in (VALUE, "new-value-71aa", WRITER[1]):
        assert secret not in log
    [put] = [entry for entry in server.request_log.entries() if entry["method"] == "PUT"]
    assert sorted(put["body"]["properties"]) == ["KEEP", "NEW"]
    assert put["write"] is True
    listing = [entry for entry in server.request_log.entries() if entry["path"].endswith("/list")]
    assert all(entry["write"] is False for entry in listing)
