#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) homelab.edge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: cloudflare_access_service_token_info
short_description: List Cloudflare Access service tokens with their expiry
version_added: 0.1.0
description:
  - Lists the Access service tokens of an account, or those with one name, with id, client id, duration, expiry
    and the days left before they expire. Never returns a client secret; Cloudflare does not return it either.
options:
  name:
    description:
      - Only the tokens with this name.
    type: str
  expiry_warning_days:
    description:
      - Tokens that expire within this many days are flagged with C(expiring=true) and listed in RV(expiring).
    type: int
    default: 30
extends_documentation_fragment:
  - homelab.edge.cloudflare
  - homelab.edge.cloudflare.account
attributes:
  check_mode:
    description: In check mode the module predicts its result and sends no write request.
    support: full
    details: This module never changes anything.
  diff_mode:
    description: In diff mode the module returns the object before and after the change.
    support: none
  action_group:
    description: The module belongs to the C(homelab.edge.cloudflare) group, so C(module_defaults) can set its connection options.
    support: full
    membership: [homelab.edge.cloudflare]
notes:
  - "API token permission: Account, Access: Service Tokens, Read."
author:
  - homelab.edge contributors (@homelab-edge)
"""

EXAMPLES = r"""
- name: List tokens that expire within 60 days
  homelab.edge.cloudflare_access_service_token_info:
    account: Homelab
    expiry_warning_days: 60
  register: tokens

- name: Show them
  ansible.builtin.debug:
    msg: "{{ item.name }} expires in {{ item.days_left }} days"
  loop: "{{ tokens.expiring }}"
"""

RETURN = r"""
service_tokens:
  description: The tokens, oldest first.
  returned: always
  type: list
  elements: dict
  contains:
    id:
      description: Token id.
      type: str
    name:
      description: Token name.
      type: str
    client_id:
      description: Value for the C(CF-Access-Client-Id) header.
      type: str
    duration:
      description: Lifetime of the token.
      type: str
    expires_at:
      description: When the token stops working, RFC 3339; null when it does not expire.
      type: str
    days_left:
      description: Whole days until it expires, negative once expired; null when it does not expire.
      type: int
    expiring:
      description: Whether it expires within O(expiry_warning_days) days.
      type: bool
expiring:
  description: The tokens of RV(service_tokens) with C(expiring=true).
  returned: always
  type: list
  elements: dict
api_requests:
  description: API requests sent, by HTTP method.
  returned: always
  type: dict
api_retries:
  description: Number of retried API requests.
  returned: always
  type: int
"""

from ansible_collections.homelab.edge.plugins.module_utils.access import ServiceTokenManager, days_left, token_view
from ansible_collections.homelab.edge.plugins.module_utils.cloudflare_api import CloudflareError, CloudflareModule


def main():
    module = CloudflareModule(
        argument_spec=dict(
            account=dict(type="str", required=True),
            name=dict(type="str"),
            expiry_warning_days=dict(type="int", default=30),
        ),
        supports_check_mode=True,
    )
    params = module.params
    try:
        manager = ServiceTokenManager(module.api, module.api.account_id(params["account"]))
        query = {"name": params["name"]} if params["name"] else None
        items = module.api.list_all(manager.base, "list service tokens", query)
        if params["name"]:
            items = [item for item in items if item.get("name") == params["name"]]
        tokens = []
        for item in items:
            token = token_view(item)
            token["days_left"] = days_left(item)
            token["expiring"] = token["days_left"] is not None and token["days_left"] < params["expiry_warning_days"]
            tokens.append(token)
        module.exit_with(changed=False, service_tokens=tokens, expiring=[token for token in tokens if token["expiring"]])
    except CloudflareError as exc:
        module.fail_with(exc)


if __name__ == "__main__":
    main()
