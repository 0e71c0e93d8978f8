#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) homelab.edge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: azure_webapp_settings
short_description: Merge, remove or replace the app settings of an Azure App Service web app
version_added: 0.1.0
description:
  - Manages the application settings of an Azure App Service web app or one of its deployment slots, without
    deleting the settings it does not manage.
  - Azure's update call replaces the whole set of app settings, and every update restarts the app. The module
    therefore reads the current settings first, computes the new set for O(mode), and sends the update only when
    the new set differs from the current one. An unchanged run sends no update and does not restart the app.
  - Setting values are never shown. The diff, the result and every message list setting names only.
extends_documentation_fragment:
  - homelab.edge.azure
options:
  resource_group:
    description:
      - Name of the resource group that contains the web app.
    type: str
    required: true
  name:
    description:
      - Name of the web app.
    type: str
    required: true
  slot:
    description:
      - Name of a deployment slot of the web app, for example V(staging). Without it the module manages the
        production slot (the web app itself).
    type: str
  mode:
    description:
      - V(merge) sets the names given in O(app_settings) and keeps every other setting.
      - V(remove) deletes the names listed in O(setting_names) and keeps every other setting. Names that are
        already absent are ignored.
      - V(exact) makes the set of app settings exactly O(app_settings). Every other setting is deleted, including
        settings that deployment tools or the portal added (for example C(WEBSITE_RUN_FROM_PACKAGE)).
    type: str
    choices: [merge, remove, exact]
    default: merge
  app_settings:
    description:
      - Settings to write, as a mapping of name to value. Required with O(mode=merge) and O(mode=exact).
      - Azure stores every value as a string, and values are compared as strings. A number or boolean is
        converted to a string (V(true) and V(false) for booleans) with a warning, so quote such values in YAML.
      - A value may be a Key Vault reference such as
        C(@Microsoft.KeyVault(SecretUri=https://myvault.vault.azure.net/secrets/mysecret/)), which App Service
        resolves through the app's managed identity. See O(check_key_vault_references).
      - This option is C(no_log), so every value given here is masked in all Ansible output of the task.
    type: dict
  setting_names:
    description:
      - Names of the settings to delete. Required with O(mode=remove) and not allowed in the other modes.
    type: list
    elements: str
  slot_sticky:
    description:
      - Setting names to mark as slot settings, which stay with their slot when slots are swapped.
      - The names are added to the web app's slot configuration names, which apply to every slot of the app.
        Names already marked stay marked. The module never removes a name from that list.
    type: list
    elements: str
    default: []
  check_key_vault_references:
    description:
      - Read back, after any update, whether App Service resolved the Key Vault references among the app
        settings, and return them in RV(key_vault_references).
      - The module warns about each reference that is not resolved, with Azure's status and details.
      - In check mode the status describes the settings as they are before the pending update.
    type: bool
    default: false
attributes:
  check_mode:
    description: Can run in check mode and return the change it would make without making it.
    support: full
    details: In check mode the module reads the settings, reports what would change, and sends no update.
  diff_mode:
    description: Returns the setting names before and after the change when diff mode is on.
    support: full
    details: The diff lists setting names and slot setting names. Every value is shown as a placeholder.
notes:
  - Writes app settings with the C(WebApps_UpdateApplicationSettings) operation of Azure Resource Manager
    (api-version 2025-05-01 through azure-mgmt-web 11), which restarts the app. The module never restarts the
    app on its own.
  - Azure has no concurrency control for app settings. Two writers that update the same web app at the same
    time can lose each other's changes.
  - The principal needs C(Microsoft.Web/sites/config/list/action) to read settings and
    C(Microsoft.Web/sites/config/write) to change them, as in the built-in Website Contributor role. Reader is
    not enough, because reading setting values is a list action.
  - Ansible masks every C(no_log) value wherever it appears in output. A very short value, such as V(1), can
    therefore also mask unrelated text in the result of the same task.
seealso:
  - module: homelab.edge.azure_webapp_settings_info
author:
  - homelab.edge contributors (@homelab-edge)
"""

EXAMPLES = r"""
- name: Give the backend the public URL and the Access service token, keeping its other settings
  homelab.edge.azure_webapp_settings:
    subscription_id: "00000000-0000-0000-0000-000000000000"
    resource_group: rg-shop
    name: shop-web
    app_settings:
      EDGE_SERVICE_URL: https://chat.example.com
      CF_ACCESS_CLIENT_ID: "{{ token.client_id }}"
      CF_ACCESS_CLIENT_SECRET: "@Microsoft.KeyVault(VaultName=kv-shop;SecretName=cf-access-secret)"
    check_key_vault_references: true
  no_log: true

- name: Set a setting on the staging slot and keep it with that slot on swap
  homelab.edge.azure_webapp_settings:
    resource_group: rg-shop
    name: shop-web
    slot: staging
    app_settings:
      EDGE_SERVICE_URL: https://chat-staging.example.com
    slot_sticky:
      - EDGE_SERVICE_URL

- name: Delete settings that are no longer used
  homelab.edge.azure_webapp_settings:
    resource_group: rg-shop
    name: shop-web
    mode: remove
    setting_names:
      - OLD_CHATBOT_URL

- name: Make the settings of a scratch app exactly this set
  homelab.edge.azure_webapp_settings:
    resource_group: rg-scratch
    name: scratch-web
    mode: exact
    app_settings:
      WEBSITE_RUN_FROM_PACKAGE: "1"
      FEATURE_FLAG: "true"
"""

RETURN = r"""
added:
  description: Names of the settings that were added (or would be, in check mode).
  returned: always
  type: list
  elements: str
  sample: [CF_ACCESS_CLIENT_ID]
updated:
  description: Names of the settings whose value changed (or would change, in check mode).
  returned: always
  type: list
  elements: str
  sample: [EDGE_SERVICE_URL]
removed:
  description: Names of the settings that were deleted (or would be, in check mode).
  returned: always
  type: list
  elements: str
  sample: []
app_setting_names:
  description: Names of all app settings after the update, sorted.
  returned: always
  type: list
  elements: str
  sample: [CF_ACCESS_CLIENT_ID, EDGE_SERVICE_URL, WEBSITE_RUN_FROM_PACKAGE]
slot_sticky_added:
  description: Setting names that were added to the slot settings of the web app.
  returned: always
  type: list
  elements: str
  sample: [EDGE_SERVICE_URL]
slot_sticky_names:
  description:
    - Setting names marked as slot settings after the update, sorted.
    - Empty when O(slot_sticky) is empty, because the module then does not read them.
  returned: always
  type: list
  elements: str
  sample: [EDGE_SERVICE_URL]
key_vault_references:
  description: Key Vault references among the app settings and whether App Service resolved them.
  returned: when O(check_key_vault_references=true)
  type: list
  elements: dict
  contains:
    name:
      description: Name of the app setting.
      type: str
    status:
      description: Azure's status, for example V(Resolved), V(SecretNotFound), V(AccessToKeyVaultDenied).
      type: str
    vault_name:
      description: Name of the key vault.
      type: str
    secret_name:
      description: Name of the secret.
      type: str
    details:
      description: Azure's explanation of the status.
      type: str
"""

import re

from ansible_collections.homelab.edge.plugins.module_utils.azure import AzureModule, AzureOperationError, WebAppSettings

HIDDEN = "<hidden>"
HIDDEN_CHANGED = "<hidden, changed>"
KEY_VAULT_PREFIX = "@Microsoft.KeyVault("
KEY_VAULT_REFERENCE = re.compile(
    r"^@Microsoft\.KeyVault\((SecretUri=https://[^;()\s]+|VaultName=[^;()\s]+;SecretName=[^;()\s]+(;SecretVersion=[^;()\s]*)?)\)$"
)


def normalize_value(name, value):
    """Return ``(string_value, warning)`` for one setting; warning is None for a string.

    Raises ValueError for values Azure cannot store (null, lists, mappings).
    """
    if isinstance(value, str):
        return value, None
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, (int, float)):
        text = str(value)
    else:
        raise ValueError(
            "Invalid value for app setting '%s': expected a string but got %s. Quote the value, or use "
            "mode=remove with setting_names to delete the setting." % (name, "null" if value is None else type(value).__name__)
        )
    warning = (
        "App setting '%s' has a value of type %s, so it is stored as a string (booleans as 'true' or 'false'). "
        "Quote the value in YAML to choose the exact string and silence this warning." % (name, type(value).__name__)
    )
    return text, warning


def normalize_settings(app_settings):
    """Return the settings with string names and values, plus the warnings for converted values."""
    normalized = {}
    warnings = []
    for name, value in (app_settings or {}).items():
        text, warning = normalize_value(str(name), value)
        normalized[str(name)] = text
        if warning:
            warnings.append(warning)
        if text.startswith(KEY_VAULT_PREFIX) and not KEY_VAULT_REFERENCE.match(text):
            warnings.append(
                "App setting '%s' starts like a Key Vault reference but does not match "
                "@Microsoft.KeyVault(SecretUri=...) or @Microsoft.KeyVault(VaultName=...;SecretName=...), so App "
                "Service will pass it to the app as literal text." % name
            )
    return normalized, warnings


def plan_settings(current, mode, desired=None, names=None):
    """Compute the new settings for ``mode`` and which names it adds, updates and removes.

    ``current`` and ``desired`` map names to string values. Returns a dict with ``settings``
    (the complete new set, as Azure must receive it) and sorted ``added``, ``updated`` and
    ``removed`` name lists.
    """
    desired = desired or {}
    if mode == "merge":
        settings = dict(current)
        settings.update(desired)
    elif mode == "remove":
        names_to_remove = set(names or [])
        settings = dict((name, value) for name, value in current.items() if name not in names_to_remove)
    elif mode == "exact":
        settings = dict(desired)
    else:
        raise ValueError("Invalid mode '%s': expected merge, remove or exact." % mode)

    return dict(
        settings=settings,
        added=sorted(set(settings) - set(current)),
        updated=sorted(name for name in settings if name in current and current[name] != settings[name]),
        removed=sorted(set(current) - set(settings)),
    )


def plan_slot_sticky(current_names, sticky):
    """Return ``(new_names, added)`` after adding ``sticky`` to the current slot setting names."""
    current_names = list(current_names or [])
    added = [name for name in sticky if name not in current_names]
    added = sorted(set(added))
    return current_names + added, added


def build_diff(current, plan, sticky_before, sticky_after):
    """Return a diff of setting names in which every value is a placeholder."""
    before = dict((name, HIDDEN) for name in current)
    after = dict((name, HIDDEN_CHANGED if name in plan["updated"] else HIDDEN) for name in plan["settings"])
    return dict(
        before=dict(app_settings=before, slot_sticky_names=sorted(sticky_before)),
        after=dict(app_settings=after, slot_sticky_names=sorted(sticky_after)),
    )


def check_parameters(module):
    params = module.params
    if params["mode"] == "remove":
        if params["app_settings"] is not None:
            module.fail_json(msg="Invalid options: app_settings is not used with mode=remove. List the names to delete in setting_names.")
        if not params["setting_names"]:
            module.fail_json(msg="Missing setting_names: mode=remove needs the names of the settings to delete.")
    else:
        if params["setting_names"] is not None:
            module.fail_json(msg="Invalid options: setting_names is only used with mode=remove; with mode=%s give app_settings." % params["mode"])
        if params["app_settings"] is None:
            module.fail_json(msg="Missing app_settings: mode=%s needs a mapping of setting names to values." % params["mode"])
    if any(not name for name in params["slot_sticky"]):
        module.fail_json(msg="Invalid slot_sticky: setting names must not be empty.")


def run(module):
    params = module.params
    check_parameters(module)
    try:
        desired, warnings = normalize_settings(params["app_settings"])
    except ValueError as error:
        module.fail_json(msg=str(error))
    for warning in warnings:
        module.warn(warning)

    webapp = WebAppSettings(module)
    current = webapp.read_settings()
    plan = plan_settings(current, params["mode"], desired, params["setting_names"])
    settings_changed = bool(plan["added"] or plan["updated"] or plan["removed"])

    sticky_before, sticky_after, sticky_added = [], [], []
    slot_config_names = None
    if params["slot_sticky"]:
        slot_config_names = webapp.read_slot_config_names()
        sticky_before = slot_config_names["appSettingNames"]
        sticky_after, sticky_added = plan_slot_sticky(sticky_before, params["slot_sticky"])

    if not module.check_mode:
        if settings_changed:
            webapp.write_settings(plan["settings"])
        if sticky_added:
            slot_config_names["appSettingNames"] = sticky_after
            webapp.write_slot_config_names(slot_config_names)

    result = dict(
        changed=settings_changed or bool(sticky_added),
        added=plan["added"],
        updated=plan["updated"],
        removed=plan["removed"],
        app_setting_names=sorted(plan["settings"]),
        slot_sticky_added=sticky_added,
        slot_sticky_names=sorted(sticky_after),
    )
    if module._diff:
        result["diff"] = build_diff(current, plan, sticky_before, sticky_after)
    if params["check_key_vault_references"]:
        references = webapp.read_key_vault_references()
        for reference in references:
            if reference["status"] != "Resolved":
                module.warn(
                    "Key Vault reference in app setting '%s' of %s is not resolved: %s (%s). App Service passes "
                    "the literal reference text to the app until it resolves."
                    % (reference["name"], webapp.resource, reference["status"], reference["details"])
                )
        result["key_vault_references"] = references
    module.exit_json(**result)


def main():
    module = AzureModule(
        argument_spec=dict(
            resource_group=dict(type="str", required=True),
            name=dict(type="str", required=True),
            slot=dict(type="str"),
            mode=dict(type="str", default="merge", choices=["merge", "remove", "exact"]),
            app_settings=dict(type="dict", no_log=True),
            setting_names=dict(type="list", elements="str"),
            slot_sticky=dict(type="list", elements="str", default=[]),
            check_key_vault_references=dict(type="bool", default=False),
        ),
        supports_check_mode=True,
    )
    try:
        run(module)
    except AzureOperationError as error:
        module.fail_json(msg=error.message, error_code=error.code, status_code=error.status)


if __name__ == "__main__":
    main()
