#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) homelab.edge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: cloudflare_tunnel
short_description: Manage a Cloudflare Tunnel by name
version_added: 0.1.0
description:
  - Creates or deletes a Cloudflare Tunnel (cloudflared tunnel), found by its name among the live tunnels of
    an account. Soft-deleted tunnels with the same name are ignored.
  - Can return the tunnel's connector token, which C(cloudflared tunnel run) needs.
options:
  name:
    description:
      - Name of the tunnel. Names are unique among the live tunnels of an account.
    type: str
    required: true
  state:
    description:
      - V(present) creates the tunnel when it does not exist.
      - V(absent) removes the tunnel's connections and then deletes the tunnel. The connectors themselves
        keep retrying until they are stopped on their hosts.
    type: str
    choices: [present, absent]
    default: present
  config_src:
    description:
      - Where the tunnel's ingress rules live. V(cloudflare) keeps them in the tunnel's remote configuration
        (see M(homelab.edge.cloudflare_tunnel_ingress)); V(local) leaves them to a C(config.yml) on each
        connector host.
      - The API cannot switch an existing tunnel between the two; a mismatch is an error.
    type: str
    choices: [cloudflare, local]
    default: cloudflare
  return_token:
    description:
      - Return the connector token in RV(token).
      - The task must set C(no_log) set to V(true); the module fails otherwise, before any API call.
    type: bool
    default: false
extends_documentation_fragment:
  - homelab.edge.cloudflare
  - homelab.edge.cloudflare.account
attributes:
  check_mode:
    description: In check mode the module predicts its result and sends no write request.
    support: full
    details: Predicts the change without a write request. No token is returned for a tunnel that does not exist yet.
  diff_mode:
    description: In diff mode the module returns the object before and after the change.
    support: full
  action_group:
    description: The module belongs to the C(homelab.edge.cloudflare) group, so C(module_defaults) can set its connection options.
    support: full
    membership: [homelab.edge.cloudflare]
notes:
  - The connector token is a secret. It is returned only when O(return_token=true), and the module's own output
    never contains it otherwise.
  - Deleting a tunnel does not delete DNS records that point to it; remove them with
    M(homelab.edge.cloudflare_dns_record) first.
  - "API token permission: Account, Cloudflare Tunnel, Edit (Read for O(state=present) on an existing tunnel)."
author:
  - homelab.edge contributors (@homelab-edge)
"""

EXAMPLES = r"""
- name: Create the tunnel for the home services
  homelab.edge.cloudflare_tunnel:
    account: Homelab
    name: home

- name: Get the connector token for cloudflared
  homelab.edge.cloudflare_tunnel:
    account: Homelab
    name: home
    return_token: true
  register: home_tunnel
  no_log: true

- name: Delete the tunnel, after its connectors were stopped
  homelab.edge.cloudflare_tunnel:
    account: Homelab
    name: old
    state: absent
"""

RETURN = r"""
tunnel:
  description: The tunnel after the change. Empty after deletion or when, in check mode, it would be created.
  returned: always
  type: dict
  contains:
    id:
      description: Tunnel UUID.
      type: str
      sample: 0b7a3c1e-1f2d-4c5b-9a8e-6f7d8c9b0a1e
    name:
      description: Tunnel name.
      type: str
      sample: home
    config_src:
      description: V(cloudflare) or V(local).
      type: str
    status:
      description: V(inactive), V(degraded), V(healthy) or V(down).
      type: str
    connections:
      description: Number of active connections.
      type: int
cname:
  description: Target for DNS CNAME records that route a hostname to this tunnel.
  returned: when the tunnel exists
  type: str
  sample: 0b7a3c1e-1f2d-4c5b-9a8e-6f7d8c9b0a1e.cfargotunnel.com
token:
  description: The connector token, for C(cloudflared tunnel run --token-file). A secret.
  returned: when O(return_token=true) and the tunnel exists
  type: str
api_requests:
  description: API requests sent, by HTTP method.
  returned: always
  type: dict
  sample: {"GET": 2}
api_retries:
  description: Number of retried API requests.
  returned: always
  type: int
  sample: 0
"""

from ansible_collections.homelab.edge.plugins.module_utils.cloudflare_api import CloudflareError, CloudflareModule
from ansible_collections.homelab.edge.plugins.module_utils.reconcile import diff_of
from ansible_collections.homelab.edge.plugins.module_utils.tunnels import TUNNEL_CNAME_SUFFIX, TunnelManager, tunnel_view


def main():
    module = CloudflareModule(
        argument_spec=dict(
            account=dict(type="str", required=True),
            name=dict(type="str", required=True),
            state=dict(type="str", choices=["present", "absent"], default="present"),
            config_src=dict(type="str", choices=["cloudflare", "local"], default="cloudflare"),
            return_token=dict(type="bool", default=False),
        ),
        supports_check_mode=True,
    )
    params = module.params
    if params["return_token"] and params["state"] == "present":
        module.require_no_log("return_token=true")
    try:
        manager = TunnelManager(module.api, module.api.account_id(params["account"]), module.check_mode)
        if params["state"] == "absent":
            outcome = manager.ensure_absent(params["name"])
            module.exit_with(changed=outcome.changed, tunnel={}, diff=diff_of([outcome]))
        outcome = manager.ensure_present(params["name"], params["config_src"])
        tunnel = outcome.result if outcome.result and outcome.result.get("id") else None
        result = dict(changed=outcome.changed, diff=diff_of([outcome]), tunnel={})
        if tunnel is not None:
            result["tunnel"] = tunnel_view(tunnel)
            result["cname"] = tunnel["id"] + TUNNEL_CNAME_SUFFIX
            if params["return_token"]:
                token = manager.token(tunnel["id"], params["name"])
                result["token"] = token
        module.exit_with(**result)
    except CloudflareError as exc:
        module.fail_with(exc)


if __name__ == "__main__":
    main()
