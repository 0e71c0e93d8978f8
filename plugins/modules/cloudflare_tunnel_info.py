#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) homelab.edge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: cloudflare_tunnel_info
short_description: Read Cloudflare Tunnels, their connectors and configuration version
version_added: 0.1.0
description:
  - Lists the live tunnels of an account, or one tunnel by name, with status, connectors and, for tunnels with
    remote configuration, the configuration version and ingress rules.
options:
  name:
    description:
      - Only the tunnel with this name. Without it, every live tunnel of the account.
    type: str
  include_deleted:
    description:
      - Also list soft-deleted tunnels.
    type: bool
    default: false
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
  - Never returns a tunnel token; use M(homelab.edge.cloudflare_tunnel) with O(homelab.edge.cloudflare_tunnel#module:return_token=true).
  - "API token permission: Account, Cloudflare Tunnel, Read."
author:
  - homelab.edge contributors (@homelab-edge)
"""

EXAMPLES = r"""
- name: Check that the home tunnel has connectors
  homelab.edge.cloudflare_tunnel_info:
    account: Homelab
    name: home
  register: home_info

- name: Fail when no connector is connected
  ansible.builtin.assert:
    that: home_info.tunnels[0].connectors | length > 0
    fail_msg: Tunnel home has no running connector; check cloudflared on the origin hosts.
"""

RETURN = r"""
tunnels:
  description: The matching tunnels.
  returned: always
  type: list
  elements: dict
  contains:
    id:
      description: Tunnel UUID.
      type: str
    name:
      description: Tunnel name.
      type: str
    status:
      description: V(inactive), V(degraded), V(healthy) or V(down).
      type: str
    config_src:
      description: V(cloudflare) or V(local).
      type: str
    deleted_at:
      description: When the tunnel was deleted, or null.
      type: str
    connectors:
      description: Connected cloudflared instances with C(id), C(version), C(arch), C(config_version) and C(connections).
      type: list
      elements: dict
    config_version:
      description: Version of the remote configuration, for tunnels with C(config_src=cloudflare).
      type: int
    ingress:
      description: Remote ingress rules, for tunnels with C(config_src=cloudflare).
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

from ansible_collections.homelab.edge.plugins.module_utils.cloudflare_api import CloudflareError, CloudflareModule
from ansible_collections.homelab.edge.plugins.module_utils.tunnels import TunnelManager, tunnel_view


def describe(api, manager, tunnel):
    info = tunnel_view(tunnel)
    info["deleted_at"] = tunnel.get("deleted_at")
    info["conns_active_at"] = tunnel.get("conns_active_at")
    if tunnel.get("deleted_at"):
        info["connectors"] = []
        return info
    connectors = manager.connections(tunnel["id"], tunnel["name"])
    info["connectors"] = [
        {
            "id": item.get("id"),
            "version": item.get("version"),
            "arch": item.get("arch"),
            "config_version": item.get("config_version"),
            "run_at": item.get("run_at"),
            "connections": len(item.get("conns") or []),
        }
        for item in connectors
    ]
    if info["config_src"] == "cloudflare":
        config = api.get_or_none("%s/%s/configurations" % (manager.base, tunnel["id"]),
                                 "read the configuration of tunnel '%s'" % tunnel["name"]) or {}
        info["config_version"] = config.get("version")
        info["ingress"] = (config.get("config") or {}).get("ingress") or []
    return info


def main():
    module = CloudflareModule(
        argument_spec=dict(
            account=dict(type="str", required=True),
            name=dict(type="str"),
            include_deleted=dict(type="bool", default=False),
        ),
        supports_check_mode=True,
    )
    params = module.params
    try:
        manager = TunnelManager(module.api, module.api.account_id(params["account"]))
        query = {}
        if params["name"]:
            query["name"] = params["name"]
        if not params["include_deleted"]:
            query["is_deleted"] = "false"
        items = module.api.list_all(manager.base, "list tunnels", query)
        if params["name"]:
            items = [item for item in items if item.get("name") == params["name"]]
        if not params["include_deleted"]:
            items = [item for item in items if not item.get("deleted_at")]
        module.exit_with(changed=False, tunnels=[describe(module.api, manager, item) for item in items])
    except CloudflareError as exc:
        module.fail_with(exc)


if __name__ == "__main__":
    main()
