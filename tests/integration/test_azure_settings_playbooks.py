# Copyright (c) homelab.edge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Run the Azure app settings modules and the azure_app_settings role through ansible-playbook.

Each test starts the Azure Resource Manager emulator over HTTPS on loopback with a fresh seed and
runs a playbook at -vvv. It then checks the emulator's state and request log: which settings
exist, how many app settings PUTs were sent, and the restart counter. Every run's output is also
searched for the managed values and the service principal secrets.
"""

import json
import os
import pathlib
import subprocess
import sys
import textwrap

import pytest
import yaml

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO_ROOT / "tests" / "emulators"))

import azure_arm  # noqa: E402
from httpserver import FaultRule  # noqa: E402

VENV_PYTHON = REPO_ROOT / ".venv" / "bin" / "python"
ANSIBLE_PLAYBOOK = REPO_ROOT / ".venv" / "bin" / "ansible-playbook"

SUBSCRIPTION = "6f1d2c3b-0000-4000-8000-00000000a001"
TENANT = "9a8b7c6d-0000-4000-8000-00000000e001"
WRITER_ID = "c0ffee00-0000-4000-8000-000000000001"
WRITER_SECRET = "sp-secret-writer-Qm7vX2"
READER_ID = "c0ffee00-0000-4000-8000-000000000002"
READER_SECRET = "sp-secret-reader-Lp3kW9"
GROUP = "rg-shop"
APP = "shop-web"

# Values the tests write. None of them may appear in any ansible-playbook output.
URL_VALUE = "https://chat.example.com"
TOKEN_CLIENT_ID = "5d2a1f0c9b8e7d6c5b4a39281706f5e4.access"
TOKEN_SECRET = "cf-token-secret-8c41b7e2d9f05a63"
OLD_TOKEN_SECRET = "cf-token-secret-old-1f2e3d4c"
MANAGED_VALUE = "managed-value-4e1d9a7c"
UNMANAGED = {"WEBSITE_RUN_FROM_PACKAGE": "1", "APPINSIGHTS_CONNECTION_STRING": "InstrumentationKey=unmanaged-71c2"}
SECRETS = (WRITER_SECRET, READER_SECRET, TOKEN_SECRET, OLD_TOKEN_SECRET, MANAGED_VALUE)


def azure_seed():
    return {
        "principals": [
            {"client_id": WRITER_ID, "client_secret": WRITER_SECRET, "tenant_id": TENANT},
            {
                "client_id": READER_ID,
                "client_secret": READER_SECRET,
                "tenant_id": TENANT,
                "role_assignments": [{"scope": f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{GROUP}", "role": "Reader"}],
            },
        ],
        "subscriptions": {
            SUBSCRIPTION: {
                "resource_groups": {
                    GROUP: {
                        "sites": {
                            APP: {
                                "app_settings": dict(UNMANAGED),
                                "slot_config_names": {
                                    "app_setting_names": ["WEBSITE_RUN_FROM_PACKAGE"],
                                    "connection_string_names": ["ShopDb"],
                                },
                                "slots": {"staging": {"app_settings": {"STAGING_ONLY": "yes"}}},
                            },
                            "other-web": {
                                "app_settings": {"CF_ACCESS_CLIENT_SECRET": OLD_TOKEN_SECRET, "KEEP_ME": "x"},
                            },
                        }
                    }
                }
            }
        },
        "key_vaults": {"kv-shop": {"secrets": ["cf-access-secret"]}},
    }


class AzureRun:
    """A started emulator plus helpers to run playbooks against it and read its log."""

    def __init__(self, server, info, workdir):
        self.server = server
        self.app = server.app
        self.info = info
        self.workdir = workdir
        self.inventory = workdir / "inventory.ini"
        self.inventory.write_text(
            f"localhost ansible_connection=local ansible_python_interpreter={VENV_PYTHON}\n", encoding="utf-8"
        )
        self.runs = 0

    def env(self, client_id=WRITER_ID, secret=WRITER_SECRET):
        env = {key: value for key, value in os.environ.items() if not key.startswith("AZURE_")}
        env.update(
            ANSIBLE_COLLECTIONS_PATH=str(REPO_ROOT / ".collections"),
            ANSIBLE_CONFIG=str(REPO_ROOT / "ansible.cfg"),
            ANSIBLE_LOCAL_TEMP=str(self.workdir / "ansible-local"),
            ANSIBLE_REMOTE_TEMP=str(self.workdir / "ansible-remote"),
            ANSIBLE_NOCOLOR="1",
            NO_PROXY="127.0.0.1,localhost",
            no_proxy="127.0.0.1,localhost",
            REQUESTS_CA_BUNDLE=self.info["ca_path"],
            AZURE_RESOURCE_MANAGER_ENDPOINT=self.info["base_url"],
            AZURE_AUTHORITY_HOST=self.info["authority_host"],
            AZURE_SUBSCRIPTION_ID=SUBSCRIPTION,
            AZURE_CLIENT_ID=client_id,
            AZURE_CLIENT_SECRET=secret,
            AZURE_TENANT_ID=TENANT,
            # Values reach the playbooks through the environment so that no test file on disk contains them.
            TEST_URL_VALUE=URL_VALUE,
            TEST_TOKEN_CLIENT_ID=TOKEN_CLIENT_ID,
            TEST_TOKEN_SECRET=TOKEN_SECRET,
            TEST_MANAGED_VALUE=MANAGED_VALUE,
            TEST_SP_SECRET=secret,
        )
        return env

    def playbook(self, text, *extra_args, env=None):
        """Run a playbook at -vvv, check that no secret appears in its output, and return the process."""
        self.runs += 1
        path = self.workdir / f"playbook-{self.runs}.yml"
        path.write_text(textwrap.dedent(text), encoding="utf-8")
        process = subprocess.run(
            [str(ANSIBLE_PLAYBOOK), "-i", str(self.inventory), str(path), "-vvv", *extra_args],
            env=env or self.env(),
            capture_output=True,
            text=True,
            check=False,
        )
        process.output = process.stdout + process.stderr
        for secret in SECRETS:
            assert secret not in process.output, f"a secret value leaked into the output of {path.name}"
        return process

    def task(self, module_args, *extra_args, env=None, task_extra=None):
        """Run one homelab.edge.azure_webapp_settings task; module_args is the YAML text of its arguments."""
        task = {"name": "Manage app settings", "homelab.edge.azure_webapp_settings": yaml.safe_load(module_args)}
        task.update(task_extra or {})
        play = [{"hosts": "localhost", "gather_facts": False, "tasks": [task]}]
        return self.playbook(yaml.safe_dump(play, sort_keys=False), *extra_args, env=env)

    def entries(self):
        return self.server.request_log.entries()

    def settings_puts(self):
        return [e for e in self.entries() if e["method"] == "PUT" and e["path"].lower().endswith("/config/appsettings")]

    def writes(self):
        return [e for e in self.entries() if e["write"]]


@pytest.fixture
def azure(tmp_path):
    server, info = azure_arm.start(azure_seed(), tmp_path / "emulator")
    try:
        yield AzureRun(server, info, tmp_path)
    finally:
        server.shutdown()


def settings(azure, name=APP, slot=None):
    return azure.app.app_settings(SUBSCRIPTION, GROUP, name, slot)


def restarts(azure, name=APP, slot=None):
    return azure.app.restart_count(SUBSCRIPTION, GROUP, name, slot)


MERGE_ARGS = """
    resource_group: rg-shop
    name: shop-web
    app_settings:
      EDGE_SERVICE_URL: "{{ lookup('env', 'TEST_URL_VALUE') }}"
      CF_ACCESS_CLIENT_SECRET: "{{ lookup('env', 'TEST_TOKEN_SECRET') }}"
      FEATURE_VALUE: "{{ lookup('env', 'TEST_MANAGED_VALUE') }}"
"""


# Modes that keep unmanaged settings


def test_merge_keeps_unmanaged_settings(azure):
    first = azure.task(MERGE_ARGS)
    assert first.returncode == 0, first.output
    assert "changed: [localhost]" in first.output
    expected = dict(UNMANAGED, EDGE_SERVICE_URL=URL_VALUE, CF_ACCESS_CLIENT_SECRET=TOKEN_SECRET, FEATURE_VALUE=MANAGED_VALUE)
    assert settings(azure) == expected
    assert len(azure.settings_puts()) == 1
    assert restarts(azure) == 1

    second = azure.task(MERGE_ARGS)
    assert second.returncode == 0, second.output
    assert "ok: [localhost]" in second.output
    assert settings(azure) == expected
    assert len(azure.settings_puts()) == 1
    assert restarts(azure) == 1


def test_merge_logs_names_not_values(azure):
    azure.task(MERGE_ARGS)
    [put] = azure.settings_puts()
    assert sorted(put["body"]["properties"]) == sorted(
        list(UNMANAGED) + ["EDGE_SERVICE_URL", "CF_ACCESS_CLIENT_SECRET", "FEATURE_VALUE"]
    )
    assert TOKEN_SECRET not in json.dumps(azure.entries())


def test_merge_updates_changed_value_only(azure):
    azure.task(MERGE_ARGS)
    env = azure.env()
    env["TEST_MANAGED_VALUE"] = "another-managed-value-0b9e"
    result = azure.task(MERGE_ARGS, env=env)
    assert result.returncode == 0, result.output
    assert settings(azure)["FEATURE_VALUE"] == "another-managed-value-0b9e"
    assert settings(azure)["WEBSITE_RUN_FROM_PACKAGE"] == "1"
    assert len(azure.settings_puts()) == 2
    assert restarts(azure) == 2


def test_remove_keeps_unmanaged_settings(azure):
    azure.task(MERGE_ARGS)
    remove_args = """
        resource_group: rg-shop
        name: shop-web
        mode: remove
        setting_names: [FEATURE_VALUE, NEVER_EXISTED]
    """
    first = azure.task(remove_args)
    assert first.returncode == 0, first.output
    assert "FEATURE_VALUE" not in settings(azure)
    assert settings(azure) == dict(UNMANAGED, EDGE_SERVICE_URL=URL_VALUE, CF_ACCESS_CLIENT_SECRET=TOKEN_SECRET)
    assert len(azure.settings_puts()) == 2

    second = azure.task(remove_args)
    assert second.returncode == 0, second.output
    assert settings(azure) == dict(UNMANAGED, EDGE_SERVICE_URL=URL_VALUE, CF_ACCESS_CLIENT_SECRET=TOKEN_SECRET)
    assert len(azure.settings_puts()) == 2
    assert restarts(azure) == 2


def test_exact_replaces_whole_set(azure):
    exact_args = """
        resource_group: rg-shop
        name: shop-web
        mode: exact
        app_settings:
          ONLY_THIS: "{{ lookup('env', 'TEST_MANAGED_VALUE') }}"
    """
    first = azure.task(exact_args)
    assert first.returncode == 0, first.output
    assert settings(azure) == {"ONLY_THIS": MANAGED_VALUE}

    second = azure.task(exact_args)
    assert second.returncode == 0, second.output
    assert len(azure.settings_puts()) == 1
    assert restarts(azure) == 1


# Slots, slot settings, check mode, diff


def test_slot_merge_leaves_production_alone(azure):
    args = """
        resource_group: rg-shop
        name: shop-web
        slot: staging
        app_settings:
          EDGE_SERVICE_URL: "{{ lookup('env', 'TEST_URL_VALUE') }}"
        slot_sticky: [EDGE_SERVICE_URL]
    """
    first = azure.task(args)
    assert first.returncode == 0, first.output
    assert settings(azure, slot="staging") == {"STAGING_ONLY": "yes", "EDGE_SERVICE_URL": URL_VALUE}
    assert settings(azure) == UNMANAGED
    assert restarts(azure, slot="staging") == 1
    assert restarts(azure) == 0
    names = azure.app.slot_config_names(SUBSCRIPTION, GROUP, APP)
    assert names["appSettingNames"] == ["WEBSITE_RUN_FROM_PACKAGE", "EDGE_SERVICE_URL"]
    assert names["connectionStringNames"] == ["ShopDb"]

    second = azure.task(args)
    assert second.returncode == 0, second.output
    assert len(azure.writes()) == 2
    assert restarts(azure, slot="staging") == 1


def test_check_mode_sends_no_write(azure):
    result = azure.task(MERGE_ARGS, "--check", "--diff")
    assert result.returncode == 0, result.output
    assert "changed: [localhost]" in result.output
    assert "+        EDGE_SERVICE_URL: <hidden>" in result.output
    assert azure.writes() == []
    assert settings(azure) == UNMANAGED


def test_numbers_and_booleans_warn_not_rewrite(azure):
    args = """
        resource_group: rg-shop
        name: shop-web
        app_settings:
          PORT: 8000
          FEATURE_ON: true
    """
    first = azure.task(args)
    assert first.returncode == 0, first.output
    assert "App setting 'PORT' has a value of type int" in first.output
    assert "App setting 'FEATURE_ON' has a value of type bool" in first.output
    assert settings(azure)["PORT"] == "8000"
    assert settings(azure)["FEATURE_ON"] == "true"

    second = azure.task(args)
    assert second.returncode == 0, second.output
    assert len(azure.settings_puts()) == 1
    assert restarts(azure) == 1


def test_key_vault_reference_status(azure):
    args = """
        resource_group: rg-shop
        name: shop-web
        app_settings:
          CF_ACCESS_CLIENT_SECRET: "@Microsoft.KeyVault(VaultName=kv-shop;SecretName=cf-access-secret)"
          MISSING_SECRET: "@Microsoft.KeyVault(SecretUri=https://kv-shop.vault.azure.net/secrets/nope/)"
        check_key_vault_references: true
    """
    result = azure.task(args, task_extra={"register": "written"})
    assert result.returncode == 0, result.output
    assert "Key Vault reference in app setting 'MISSING_SECRET'" in result.output
    assert "SecretNotFound" in result.output
    assert "status: Resolved" in result.output
    operations = [e["path"] for e in azure.entries() if e["path"].endswith("/config/configreferences/appsettings")]
    assert len(operations) == 1


def test_throttled_write_is_retried(azure):
    azure.server.faults.add(
        FaultRule(method="PUT", path_regex=r"/config/appsettings$", kind="status", status=429, retry_after=0, count=1)
    )
    result = azure.task(MERGE_ARGS)
    assert result.returncode == 0, result.output
    puts = azure.settings_puts()
    assert [entry["fault"] for entry in puts] == ["status", None]
    assert settings(azure)["FEATURE_VALUE"] == MANAGED_VALUE
    assert restarts(azure) == 1


# Errors: a clear message and no write


ERROR_CASES = {
    "bad credentials": (
        MERGE_ARGS,
        {"secret": "wrong-secret-value"},
        ["AADSTS7000215", "web app 'shop-web'", "Check client_id, secret and tenant"],
    ),
    "missing web app": (
        MERGE_ARGS.replace("name: shop-web", "name: no-such-web"),
        {},
        ["ResourceNotFound", "web app 'no-such-web'", "check name, resource_group, slot and subscription_id"],
    ),
    "missing slot": (
        MERGE_ARGS.replace("name: shop-web", "name: shop-web\n    slot: nightly"),
        {},
        ["ResourceNotFound", "slot 'nightly' of web app 'shop-web'", "check name, resource_group, slot"],
    ),
    "mistyped mode": (
        MERGE_ARGS.replace("name: shop-web", "name: shop-web\n    mode: merg"),
        {},
        ["value of mode must be one of: merge, remove, exact, got: merg"],
    ),
    "no permission": (
        MERGE_ARGS,
        {"client_id": READER_ID, "secret": READER_SECRET},
        ["AuthorizationFailed", "Microsoft.Web/sites/config/list/action", "Website Contributor"],
    ),
}


@pytest.mark.parametrize("case", sorted(ERROR_CASES))
def test_error_is_clear_without_write(azure, case):
    args, credentials, fragments = ERROR_CASES[case]
    result = azure.task(args, env=azure.env(**credentials))
    assert result.returncode != 0, result.output
    message = " ".join(result.output.split())
    for fragment in fragments:
        assert fragment in message
    assert azure.writes() == []
    assert settings(azure) == UNMANAGED
    assert restarts(azure) == 0


@pytest.mark.parametrize("secret, succeeds", [(WRITER_SECRET, True), ("wrong-secret-value", False)])
def test_explicit_principal_options(azure, secret, succeeds):
    env = azure.env(secret=secret)
    for name in ("AZURE_CLIENT_ID", "AZURE_CLIENT_SECRET", "AZURE_TENANT_ID"):
        del env[name]
    args = MERGE_ARGS + f"""
    client_id: {WRITER_ID}
    secret: "{{{{ lookup('env', 'TEST_SP_SECRET') }}}}"
    tenant: {TENANT}
    """
    result = azure.task(args, env=env)
    message = " ".join(result.output.split())
    assert secret not in result.output
    if succeeds:
        assert result.returncode == 0, result.output
        assert settings(azure)["FEATURE_VALUE"] == MANAGED_VALUE
        return
    assert result.returncode != 0
    assert f"service principal '{WRITER_ID}' in tenant '{TENANT}'" in message
    assert "AADSTS7000215" in message
    assert azure.writes() == []


def test_mistyped_mode_sends_no_request(azure):
    result = azure.task(MERGE_ARGS.replace("name: shop-web", "name: shop-web\n    mode: Merge"))
    assert result.returncode != 0
    assert azure.entries() == []


# Info module


def test_info_returns_names_only(azure):
    result = azure.playbook(
        """
        - hosts: localhost
          gather_facts: false
          tasks:
            - name: Read names
              homelab.edge.azure_webapp_settings_info:
                resource_group: rg-shop
                name: shop-web
              register: info
            - name: Check names and the absence of values
              ansible.builtin.assert:
                that:
                  - info.app_setting_names == ['APPINSIGHTS_CONNECTION_STRING', 'WEBSITE_RUN_FROM_PACKAGE']
                  - info.slot_sticky_names == ['WEBSITE_RUN_FROM_PACKAGE']
                  - info.app_settings is not defined
        """
    )
    assert result.returncode == 0, result.output
    assert "InstrumentationKey=unmanaged-71c2" not in result.output
    assert azure.writes() == []


def test_info_values_require_no_log(azure):
    rejected = azure.playbook(
        """
        - hosts: localhost
          gather_facts: false
          tasks:
            - name: Read values without no_log
              homelab.edge.azure_webapp_settings_info:
                resource_group: rg-shop
                name: shop-web
                return_values: true
        """
    )
    assert rejected.returncode != 0
    assert "the task must set no_log: true" in " ".join(rejected.output.split())
    assert azure.entries() == []

    accepted = azure.playbook(
        """
        - hosts: localhost
          gather_facts: false
          tasks:
            - name: Read values with no_log
              homelab.edge.azure_webapp_settings_info:
                resource_group: rg-shop
                name: shop-web
                return_values: true
              register: info
              no_log: true
            - name: Check a value without printing it
              ansible.builtin.assert:
                that: info.app_settings.APPINSIGHTS_CONNECTION_STRING == 'InstrumentationKey=unmanaged-71c2'
                quiet: true
        """
    )
    assert accepted.returncode == 0, accepted.output
    assert "InstrumentationKey=unmanaged-71c2" not in accepted.output


# The azure_app_settings role through playbooks/consumers.yml


def role_playbook(azure, tokens, credentials_expression, fact="cloudflare_edge_credentials"):
    """Write the data model to a vars file and return a playbook that sets the credentials fact and runs the role."""
    model = {
        "edge_tunnels": [
            {
                "name": "home",
                "origins": "edge_origins",
                "services": [
                    {"hostname": "chat.example.com", "origin": "ollama", "access": {"service_tokens": ["azure-backend"]}},
                    {"hostname": "status.example.com", "origin": "http://127.0.0.1:9000"},
                ],
            }
        ],
        "edge_service_tokens": tokens,
    }
    (azure.workdir / "model.yml").write_text(yaml.safe_dump(model), encoding="utf-8")
    return f"""
        - hosts: localhost
          gather_facts: false
          tasks:
            - name: Stand in for the Cloudflare play's in-memory credentials
              ansible.builtin.set_fact:
                {fact}: {credentials_expression}
              no_log: true

        - ansible.builtin.import_playbook: {REPO_ROOT / 'playbooks' / 'consumers.yml'}
    """


BACKEND_TOKEN = {
    "name": "azure-backend",
    "duration": "8760h",
    "consumers": [
        {"azure_webapp": {"subscription_id": SUBSCRIPTION, "resource_group": GROUP, "name": APP}},
        {
            "azure_webapp": {
                "subscription_id": SUBSCRIPTION,
                "resource_group": GROUP,
                "name": APP,
                "slot": "staging",
                "slot_sticky": True,
                "settings": {"url": "CHATBOT_URL"},
            }
        },
    ],
}
WITH_SECRET = (
    "\"{{ {'azure-backend': {'client_id': lookup('env', 'TEST_TOKEN_CLIENT_ID'), "
    "'client_secret': lookup('env', 'TEST_TOKEN_SECRET')}} }}\""
)
WITHOUT_SECRET = "\"{{ {'azure-backend': {'client_id': lookup('env', 'TEST_TOKEN_CLIENT_ID')}} }}\""


def run_role(azure, playbook):
    return azure.playbook(playbook, "-e", f"@{azure.workdir / 'model.yml'}")


def test_role_writes_every_consumer(azure):
    playbook = role_playbook(azure, [BACKEND_TOKEN], WITH_SECRET)
    first = run_role(azure, playbook)
    assert first.returncode == 0, first.output
    assert settings(azure) == dict(
        UNMANAGED,
        EDGE_SERVICE_URL="https://chat.example.com",
        CF_ACCESS_CLIENT_ID=TOKEN_CLIENT_ID,
        CF_ACCESS_CLIENT_SECRET=TOKEN_SECRET,
    )
    assert settings(azure, slot="staging") == {
        "STAGING_ONLY": "yes",
        "CHATBOT_URL": "https://chat.example.com",
        "CF_ACCESS_CLIENT_ID": TOKEN_CLIENT_ID,
        "CF_ACCESS_CLIENT_SECRET": TOKEN_SECRET,
    }
    sticky = azure.app.slot_config_names(SUBSCRIPTION, GROUP, APP)["appSettingNames"]
    assert sorted(sticky) == ["CF_ACCESS_CLIENT_ID", "CF_ACCESS_CLIENT_SECRET", "CHATBOT_URL", "WEBSITE_RUN_FROM_PACKAGE"]
    assert "added CF_ACCESS_CLIENT_ID, CF_ACCESS_CLIENT_SECRET, EDGE_SERVICE_URL" in first.output

    second = run_role(azure, playbook)
    assert second.returncode == 0, second.output
    assert len(azure.settings_puts()) == 2
    assert restarts(azure) == 1
    assert restarts(azure, slot="staging") == 1


@pytest.mark.parametrize("fact", ["cloudflare_edge_credentials", "edge_service_token_credentials"])
def test_role_without_secret_keeps_old_secret(azure, fact):
    token = {
        "name": "azure-backend",
        "consumers": [{"azure_webapp": {"subscription_id": SUBSCRIPTION, "resource_group": GROUP, "name": "other-web"}}],
    }
    # Without self-healing, which would rotate the token, the consumer keeps the secret it has.
    result = azure.playbook(role_playbook(azure, [token], WITHOUT_SECRET, fact=fact),
                            "-e", f"@{azure.workdir / 'model.yml'}", "-e", "edge_self_heal=false")
    assert result.returncode == 0, result.output
    assert settings(azure, name="other-web") == {
        "CF_ACCESS_CLIENT_SECRET": OLD_TOKEN_SECRET,
        "KEEP_ME": "x",
        "EDGE_SERVICE_URL": "https://chat.example.com",
        "CF_ACCESS_CLIENT_ID": TOKEN_CLIENT_ID,
    }
    message = " ".join(result.output.split())
    assert "The client secret of service token azure-backend is not known in this run" in message
    assert "rotate the service token" in message


def test_role_check_mode_writes_nothing(azure):
    checked = azure.playbook(
        role_playbook(azure, [BACKEND_TOKEN], WITH_SECRET), "-e", f"@{azure.workdir / 'model.yml'}", "--check"
    )
    assert checked.returncode == 0, checked.output
    assert "added CF_ACCESS_CLIENT_ID, CF_ACCESS_CLIENT_SECRET, EDGE_SERVICE_URL" in checked.output
    assert azure.writes() == []
    assert settings(azure) == UNMANAGED


ROLE_ERROR_CASES = {
    "consumer without resource group": (
        {"name": "azure-backend", "consumers": [{"azure_webapp": {"subscription_id": SUBSCRIPTION, "name": APP}}]},
        WITH_SECRET,
        "missing required arguments: resource_group",
    ),
    "token protects no service": (
        {
            "name": "unused-token",
            "consumers": [{"azure_webapp": {"subscription_id": SUBSCRIPTION, "resource_group": GROUP, "name": APP}}],
        },
        WITH_SECRET,
        "the services protected by that token are none",
    ),
    "hostname not protected by token": (
        {
            "name": "azure-backend",
            "consumers": [
                {
                    "azure_webapp": {
                        "subscription_id": SUBSCRIPTION,
                        "resource_group": GROUP,
                        "name": APP,
                        "hostname": "status.example.com",
                    }
                }
            ],
        },
        WITH_SECRET,
        "set azure_webapp.hostname to one of those hostnames",
    ),
    "credentials missing": (BACKEND_TOKEN, "{}", "Missing client id for service token azure-backend"),
}


@pytest.mark.parametrize("case", sorted(ROLE_ERROR_CASES))
def test_role_rejects_bad_input_before_azure(azure, case):
    token, credentials, fragment = ROLE_ERROR_CASES[case]
    result = run_role(azure, role_playbook(azure, [token], credentials))
    assert result.returncode != 0, result.output
    assert fragment in " ".join(result.output.split())
    assert azure.entries() == []
