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
  rotate:
    description:
      - Give the token a new client secret, returned in RV(client_secret). The client id stays the same.
      - The previous secret keeps working for O(grace_period), so that consumers can switch without
        downtime. Cloudflare keeps only one previous secret, so a second rotation within the grace period
        ends the grace period of the first.
      - Every run with O(rotate=true) rotates; the module never rotates on its own.
    type: bool
    default: false
  grace_period:
    description:
      - With O(rotate=true), how long the previous secret keeps working, as a Go duration such as V(24h).
        V(0s) revokes it at once.
    type: str
    default: 24h
  refresh:
    description:
      - Extend the token's expiry by its duration. The client secret does not change; use O(rotate) for a new
        secret.
      - Every run with O(refresh=true) refreshes.
    type: bool
    default: false
  expire_previous_secret:
    description:
      - End the grace period of an earlier rotation now, so that only the current secret works.
      - The API does not report whether a grace period is running, so this always reports a change.
    type: bool
    default: false
  expiry_warning_days:
    description:
      - Warn (or fail, see O(expiry_action)) when the token expires within this many days.
      - V(0) turns the check off.
    type: int
    default: 30
  expiry_action:
    description:
      - What happens when the token expires within O(expiry_warning_days). V(fail) fails the task after any
        requested change was made, so that a scheduled run draws attention.
    type: str
    choices: [warn, fail]
    default: warn
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
    details: The diff shows the name, client id, duration and expiry, never the client secret.
  action_group:
    description: The module belongs to the C(homelab.edge.cloudflare) group, so C(module_defaults) can set its connection options.
    support: full
    membership: [homelab.edge.cloudflare]
notes:
  - Cloudflare returns the client secret only when the token is created or rotated. This module returns it in
    RV(client_secret) only then. A task that may create a token must set C(no_log) set to V(true); otherwise the module
    fails before it creates anything, so that the secret can neither leak into the output nor be lost.
  - "API token permission: Account, Access: Service Tokens, Edit."
author:
  - homelab.edge contributors (@homelab-edge)
"""

EXAMPLES = r"""
- name: Create the token the Azure backend uses
  homelab.edge.cloudflare_access_service_token:
    account: Homelab
    name: azure-backend
    duration: 8760h
  register: backend_token
  no_log: true

- name: Rotate the secret; the previous one keeps working for a day
  homelab.edge.cloudflare_access_service_token:
    account: Homelab
    name: azure-backend
    rotate: true
    grace_period: 24h
  register: rotated
  no_log: true

- name: Extend the token's expiry without changing its secret
  homelab.edge.cloudflare_access_service_token:
    account: Homelab
    name: azure-backend
    refresh: true

- name: Fail a scheduled run two weeks before the token expires
  homelab.edge.cloudflare_access_service_token:
    account: Homelab
    name: azure-backend
    expiry_warning_days: 14
    expiry_action: fail

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
    days_left:
      description: Whole days until the token expires; null for a token that does not expire.
      type: int
    previous_client_secret_expires_at:
      description: When the previous secret stops working.
      type: str
      returned: after a rotation
client_secret:
  description: Value for the C(CF-Access-Client-Secret) header. A secret.
  returned: when the token was created or rotated by this task
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

from ansible_collections.homelab.edge.plugins.module_utils.access import (
    ServiceTokenManager,
    days_left,
    duration_seconds,
)
from ansible_collections.homelab.edge.plugins.module_utils.cloudflare_api import CloudflareError, CloudflareModule
from ansible_collections.homelab.edge.plugins.module_utils.reconcile import diff_of


def check_expiry(module, token):
    """Warn or fail when the token expires within expiry_warning_days."""
    threshold = module.params["expiry_warning_days"]
    remaining = days_left(token)
    if not threshold or remaining is None or remaining >= threshold:
        return None
    if remaining < 0:
        text = "Service token '%s' expired on %s; Access refuses it. " % (token["name"], token["expires_at"])
    else:
        text = "Service token '%s' expires on %s, in %d days. " % (token["name"], token["expires_at"], remaining)
    text += ("Run with refresh=true to extend it with the same secret, or rotate=true for a new secret, and "
             "update its consumers.")
    if module.params["expiry_action"] == "fail":
        return text
    module.warn(text)
    return None


def main():
    module = CloudflareModule(
        argument_spec=dict(
            account=dict(type="str", required=True),
            name=dict(type="str", required=True),
            state=dict(type="str", choices=["present", "absent"], default="present"),
            duration=dict(type="str"),
            rotate=dict(type="bool", default=False),
            grace_period=dict(type="str", default="24h"),
            refresh=dict(type="bool", default=False),
            expire_previous_secret=dict(type="bool", default=False, no_log=False),
            expiry_warning_days=dict(type="int", default=30),
            expiry_action=dict(type="str", choices=["warn", "fail"], default="warn"),
        ),
        mutually_exclusive=[("rotate", "refresh", "expire_previous_secret")],
        supports_check_mode=True,
    )
    params = module.params
    try:
        grace_seconds = duration_seconds(params["grace_period"])
    except ValueError as exc:
        module.fail_json(msg="Invalid grace_period: %s." % exc)
    if grace_seconds is None:
        module.fail_json(msg="grace_period cannot be forever; give a duration such as 24h, or 0s.")
    # Checked before the no_log check below, because a no_log task hides its error message.
    if params["duration"] is not None:
        try:
            duration_seconds(params["duration"])
        except ValueError as exc:
            module.fail_json(msg="Invalid duration for service token '%s': %s." % (params["name"], exc))
    if params["state"] == "absent" and (params["rotate"] or params["refresh"] or params["expire_previous_secret"]):
        module.fail_json(msg="rotate, refresh and expire_previous_secret need state=present.")
    if params["rotate"] and not module.check_mode:
        module.require_no_log("Rotating service token '%s'" % params["name"])
    try:
        manager = ServiceTokenManager(module.api, module.api.account_id(params["account"]), module.check_mode)
        current = manager.find(params["name"])
        if params["state"] == "absent":
            outcome = manager.ensure_absent(params["name"], current=current)
            module.exit_with(changed=outcome.changed, service_token={}, diff=diff_of([outcome]))
        if current is None and not module.check_mode:
            module.require_no_log("Creating service token '%s'" % params["name"])
        outcomes = [manager.ensure_present(params["name"], params["duration"], current=current, lookup=False)]
        token = outcomes[0].result
        if current is not None:
            if params["rotate"]:
                outcomes.append(manager.rotate(dict(current, **(token or {})), grace_seconds))
            elif params["refresh"]:
                outcomes.append(manager.refresh(dict(current, **(token or {}))))
            elif params["expire_previous_secret"]:
                outcomes.append(manager.expire_previous_secret(dict(current, **(token or {}))))
            token = outcomes[-1].result or token
        elif params["rotate"] or params["refresh"] or params["expire_previous_secret"]:
            module.warn("Service token '%s' is new, so it was not rotated or refreshed." % params["name"])
        for outcome in outcomes:
            for note in outcome.notes:
                module.warn(note)
        token = dict(token or {})
        token["days_left"] = days_left(token)
        result = dict(changed=any(outcome.changed for outcome in outcomes), service_token=token,
                      diff=diff_of(outcomes))
        for outcome in outcomes:
            if outcome.secrets.get("client_secret"):
                result["client_secret"] = outcome.secrets["client_secret"]
        failure = check_expiry(module, token)
        if failure:
            module.fail_with(failure, **result)
        module.exit_with(**result)
    except CloudflareError as exc:
        module.fail_with(exc)


if __name__ == "__main__":
    main()
