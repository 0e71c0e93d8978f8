#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) homelab.edge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: cloudflare_access_service_token
short_description: Manage a Cloudflare Access service token by name
version_added: 0.1.0
description:
  - Creates, updates or deletes an Access service token of an account. A backend sends the token's client id
    and client secret in the C(CF-Access-Client-Id) and C(CF-Access-Client-Secret) headers to pass an Access
    policy with the Service Auth (V(non_identity)) decision.
  - The token is found by name. More than one token with the same name is an error, not a guess.
options:
  name:
    description:
      - Name of the service token.
    type: str
    required: true
  state:
    description:
      - V(present) creates the token when missing and updates its duration when it differs.
      - V(absent) deletes it. Backends that still send it are then refused.
    type: str
    choices: [present, absent]
    default: present
  duration:
    description:
      - Lifetime of the token as a Go duration (V(8760h) is one year) or V(forever).
      - Cloudflare's default is V(8760h). When not set, the duration of an existing token is left alone.
      - Changing the duration of an existing token restarts its lifetime from now.
    type: str
extends_documentation_fragment:
  - homelab.edge.cloudflare
  - homelab.edge.cloudflare.account
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
    details: The diff shows the name, client id, duration and expiry, never the client secret.
  action_group:
    support: full
    membership: [homelab.edge.cloudflare]
notes:
  - Cloudflare returns the client secret only when the token is created. This module returns it in
    RV(client_secret) only then. A task that may create a token must set C(no_log) set to V(true); otherwise the module
    fails before it creates anything, so that the secret can neither leak into the output nor be lost.
  - "API token permission: Account, Access: Service Tokens, Edit."
author:
  - homelab.edge contributors
"""

EXAMPLES = r"""
- name: Create the token the Azure backend uses
  homelab.edge.cloudflare_access_service_token:
    account: Homelab
    name: azure-backend
    duration: 8760h
  register: backend_token
  no_log: true

- name: Remove a token that is no longer used
  homelab.edge.cloudflare_access_service_token:
    account: Homelab
    name: old-backend
    state: absent
"""

RETURN = r"""
service_token:
  description: The token after the change, without its secret.
  returned: always
  type: dict
  contains:
    id:
      description: Token id, used in Access policy rules.
      type: str
    name:
      description: Token name.
      type: str
    client_id:
      description: Value for the C(CF-Access-Client-Id) header.
      type: str
      sample: 0123456789abcdef0123456789abcdef.access
    duration:
      description: Lifetime of the token.
      type: str
      sample: 8760h
    expires_at:
      description: When the token stops working, RFC 3339.
      type: str
client_secret:
  description: Value for the C(CF-Access-Client-Secret) header. A secret.
  returned: when the token was created by this task
  type: str
api_requests:
  description: API requests sent, by HTTP method.
  returned: always
  type: dict
api_retries:
  description: Number of retried API requests.
  returned: always
  type: int
"""

from ansible_collections.homelab.edge.plugins.module_utils.access import ServiceTokenManager
from ansible_collections.homelab.edge.plugins.module_utils.cloudflare_api import CloudflareError, CloudflareModule
from ansible_collections.homelab.edge.plugins.module_utils.reconcile import diff_of


def main():
    module = CloudflareModule(
        argument_spec=dict(
            account=dict(type="str", required=True),
            name=dict(type="str", required=True),
            state=dict(type="str", choices=["present", "absent"], default="present"),
            duration=dict(type="str"),
        ),
        supports_check_mode=True,
    )
    params = module.params
    try:
        manager = ServiceTokenManager(module.api, module.api.account_id(params["account"]), module.check_mode)
        current = manager.find(params["name"])
        if params["state"] == "absent":
            outcome = manager.ensure_absent(params["name"], current=current)
            module.exit_with(changed=outcome.changed, service_token={}, diff=diff_of([outcome]))
        if current is None and not module.check_mode:
            module.require_no_log("Creating service token '%s'" % params["name"])
        outcome = manager.ensure_present(params["name"], params["duration"], current=current, lookup=False)
        for note in outcome.notes:
            module.warn(note)
        result = dict(changed=outcome.changed, service_token=outcome.result or {}, diff=diff_of([outcome]))
        if outcome.secrets.get("client_secret"):
            result["client_secret"] = outcome.secrets["client_secret"]
        module.exit_with(**result)
    except CloudflareError as exc:
        module.fail_with(exc)


if __name__ == "__main__":
    main()
