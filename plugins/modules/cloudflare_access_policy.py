#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) homelab.edge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: cloudflare_access_policy
short_description: Manage a reusable Cloudflare Access policy
version_added: 0.1.0
description:
  - Creates, updates or deletes a reusable (account-level) Access policy, found by name.
  - A policy that admits service tokens gets the Service Auth decision V(non_identity). A service token in a
    policy with decision V(allow) is rejected before any API call, because Access would send such requests to a
    login page instead of admitting them.
options:
  name:
    description:
      - Name of the policy.
    type: str
    required: true
  state:
    description:
      - Whether the policy exists. A policy still attached to an application cannot be deleted.
    type: str
    choices: [present, absent]
    default: present
  decision:
    description:
      - What the policy does to matching requests. V(non_identity) is Service Auth, for service tokens.
      - Defaults to V(non_identity) when O(service_tokens) or O(any_valid_service_token) is set; otherwise it is
        required for O(state=present).
    type: str
    choices: [allow, deny, non_identity, bypass]
  service_tokens:
    description:
      - Service tokens, by name or id, that the policy admits. Each becomes an C(include) rule.
    type: list
    elements: str
    default: []
  any_valid_service_token:
    description:
      - Admit every valid service token of the account.
    type: bool
    default: false
  include:
    description:
      - 'Further C(include) rules, in the API''s form, for example C({"email_domain": {"domain": "example.com"}}).'
    type: list
    elements: dict
    default: []
  exclude:
    description:
      - C(exclude) rules, in the API's form.
    type: list
    elements: dict
    default: []
  require:
    description:
      - C(require) rules, in the API's form.
    type: list
    elements: dict
    default: []
  session_duration:
    description:
      - How long an Access session lasts, as a Go duration such as V(24h). Left alone when not set.
    type: str
extends_documentation_fragment:
  - homelab.edge.cloudflare
  - homelab.edge.cloudflare.account
attributes:
  check_mode:
    description: In check mode the module predicts its result and sends no write request.
    support: full
  diff_mode:
    description: In diff mode the module returns the object before and after the change.
    support: full
  action_group:
    description: The module belongs to the C(homelab.edge.cloudflare) group, so C(module_defaults) can set its connection options.
    support: full
    membership: [homelab.edge.cloudflare]
notes:
  - Rules are compared without regard to their order.
  - "API token permission: Account, Access: Apps and Policies, Edit; and Access: Service Tokens, Read when
    O(service_tokens) are given by name."
author:
  - homelab.edge contributors (@homelab-edge)
"""

EXAMPLES = r"""
- name: Admit only the Azure backend's service token
  homelab.edge.cloudflare_access_policy:
    account: Homelab
    name: azure-backend only
    service_tokens: [azure-backend]
"""

RETURN = r"""
policy:
  description: The policy after the change; empty after deletion.
  returned: always
  type: dict
  contains:
    id:
      description: Policy id, used to attach the policy to applications.
      type: str
    name:
      description: Policy name.
      type: str
    decision:
      description: The policy's decision.
      type: str
      sample: non_identity
    include:
      description: Include rules.
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

from ansible_collections.homelab.edge.plugins.module_utils.access import (
    PolicyManager,
    ServiceTokenManager,
    check_policy_decision,
    policy_view,
)
from ansible_collections.homelab.edge.plugins.module_utils.cloudflare_api import CloudflareError, CloudflareModule
from ansible_collections.homelab.edge.plugins.module_utils.reconcile import diff_of
from ansible_collections.homelab.edge.plugins.module_utils.tunnels import UUID_PATTERN


def service_token_rules(module, account_id):
    """Return include rules for the service tokens given by name or id."""
    rules = []
    tokens = ServiceTokenManager(module.api, account_id, module.check_mode)
    for token in module.params["service_tokens"]:
        if UUID_PATTERN.match(token.lower()):
            token_id = token.lower()
        else:
            found = tokens.find(token)
            if found is None:
                if not module.check_mode:
                    raise CloudflareError(
                        "Service token '%s' was not found in the account; create it first with "
                        "homelab.edge.cloudflare_access_service_token." % token)
                token_id = "<id of service token %s>" % token
            else:
                token_id = found["id"]
        rules.append({"service_token": {"token_id": token_id}})
    if module.params["any_valid_service_token"]:
        rules.append({"any_valid_service_token": {}})
    return rules


def main():
    module = CloudflareModule(
        argument_spec=dict(
            account=dict(type="str", required=True),
            name=dict(type="str", required=True),
            state=dict(type="str", choices=["present", "absent"], default="present"),
            decision=dict(type="str", choices=["allow", "deny", "non_identity", "bypass"]),
            service_tokens=dict(type="list", elements="str", default=[], no_log=False),
            any_valid_service_token=dict(type="bool", default=False, no_log=False),
            include=dict(type="list", elements="dict", default=[]),
            exclude=dict(type="list", elements="dict", default=[]),
            require=dict(type="list", elements="dict", default=[]),
            session_duration=dict(type="str"),
        ),
        supports_check_mode=True,
    )
    params = module.params
    uses_tokens = bool(params["service_tokens"]) or params["any_valid_service_token"]
    decision = params["decision"] or ("non_identity" if uses_tokens else None)
    if params["state"] == "present":
        if decision is None:
            module.fail_json(msg="decision is required for policy '%s' unless it admits service tokens." % params["name"])
        if not uses_tokens and not params["include"]:
            module.fail_json(msg="Policy '%s' needs at least one include rule: set service_tokens, "
                                 "any_valid_service_token or include." % params["name"])
        try:
            # Checked on the user's input before any API call; token rules are added below.
            check_policy_decision(params["name"], decision,
                                  params["include"] + ([{"service_token": {}}] if uses_tokens else []))
        except CloudflareError as exc:
            module.fail_json(msg=str(exc))
    try:
        account_id = module.api.account_id(params["account"])
        manager = PolicyManager(module.api, account_id, module.check_mode)
        if params["state"] == "absent":
            outcome = manager.ensure_absent(params["name"])
            module.exit_with(changed=outcome.changed, policy={}, diff=diff_of([outcome]))
        include = service_token_rules(module, account_id) + params["include"]
        outcome = manager.ensure_present(params["name"], decision, include, exclude=params["exclude"],
                                         require=params["require"], session_duration=params["session_duration"])
        for note in outcome.notes:
            module.warn(note)
        module.exit_with(changed=outcome.changed, policy=policy_view(outcome.result) or {}, diff=diff_of([outcome]))
    except CloudflareError as exc:
        module.fail_with(exc)


if __name__ == "__main__":
    main()
