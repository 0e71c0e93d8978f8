#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) homelab.edge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: azure_webapp_settings_info
short_description: Read the app setting names of an Azure App Service web app
version_added: 0.1.0
description:
  - Returns the names of the application settings of an Azure App Service web app or one of its deployment
    slots, and the names marked as slot settings.
  - Values are returned only with O(return_values=true), and then only from a task that sets C(no_log) to true.
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
      - Name of a deployment slot of the web app. Without it the module reads the production slot.
    type: str
  return_values:
    description:
      - Also return the setting values in RV(app_settings).
      - Values often contain secrets, so the module fails unless the task sets C(no_log) to true. The values are
        then kept out of Ansible's output and logs but still reach a registered variable. Keep that variable out
        of later output and files too.
    type: bool
    default: false
  key_vault_references:
    description:
      - Also return the Key Vault references among the settings and whether App Service resolved them.
    type: bool
    default: false
attributes:
  check_mode:
    description: Can run in check mode.
    support: full
    details: The module only reads, so it runs the same in check mode.
  diff_mode:
    description: Would return a diff in diff mode.
    support: none
    details: The module changes nothing, so it has no diff.
notes:
  - Reading setting names needs the same C(Microsoft.Web/sites/config/list/action) permission as reading values,
    because Azure returns both in one call. The Reader role is not enough.
seealso:
  - module: homelab.edge.azure_webapp_settings
author:
  - homelab.edge contributors (@homelab-edge)
"""

EXAMPLES = r"""
- name: Check which settings the backend has
  homelab.edge.azure_webapp_settings_info:
    resource_group: rg-shop
    name: shop-web
  register: shop_settings

- name: Fail when the Access client id is missing
  ansible.builtin.assert:
    that: "'CF_ACCESS_CLIENT_ID' in shop_settings.app_setting_names"
    fail_msg: shop-web has no CF_ACCESS_CLIENT_ID setting; run the consumer play.

- name: Read the values of the staging slot (never printed)
  homelab.edge.azure_webapp_settings_info:
    resource_group: rg-shop
    name: shop-web
    slot: staging
    return_values: true
  register: staging_settings
  no_log: true
"""

RETURN = r"""
app_setting_names:
  description: Names of all app settings, sorted.
  returned: always
  type: list
  elements: str
  sample: [CF_ACCESS_CLIENT_ID, EDGE_SERVICE_URL, WEBSITE_RUN_FROM_PACKAGE]
slot_sticky_names:
  description: Setting names marked as slot settings of the web app. The list is shared by all slots.
  returned: always
  type: list
  elements: str
  sample: [EDGE_SERVICE_URL]
app_settings:
  description: Settings as a mapping of name to value.
  returned: when O(return_values=true)
  type: dict
key_vault_references:
  description: Key Vault references among the app settings and whether App Service resolved them.
  returned: when O(key_vault_references=true)
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

from ansible_collections.homelab.edge.plugins.module_utils.azure import AzureModule, AzureOperationError, WebAppSettings


def run(module):
    if module.params["return_values"] and not module.no_log:
        module.fail_json(
            msg="return_values=true returns secret setting values, so the task must set no_log: true. Add "
            "no_log: true to the task, or leave return_values false to get setting names only."
        )

    webapp = WebAppSettings(module)
    settings = webapp.read_settings()
    slot_config_names = webapp.read_slot_config_names()
    result = dict(
        changed=False,
        app_setting_names=sorted(settings),
        slot_sticky_names=sorted(slot_config_names["appSettingNames"]),
    )
    if module.params["return_values"]:
        result["app_settings"] = settings
    if module.params["key_vault_references"]:
        result["key_vault_references"] = webapp.read_key_vault_references()
    module.exit_json(**result)


def main():
    module = AzureModule(
        argument_spec=dict(
            resource_group=dict(type="str", required=True),
            name=dict(type="str", required=True),
            slot=dict(type="str"),
            return_values=dict(type="bool", default=False),
            key_vault_references=dict(type="bool", default=False),
        ),
        supports_check_mode=True,
    )
    try:
        run(module)
    except AzureOperationError as error:
        module.fail_json(msg=error.message, error_code=error.code, status_code=error.status)


if __name__ == "__main__":
    main()
