#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) homelab.edge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: cloudflare_tunnel_ingress
short_description: Manage the remote ingress rules of a Cloudflare Tunnel
version_added: 0.1.0
description:
  - Sets the ingress rules stored in the remote configuration of a tunnel with C(config_src=cloudflare). The
    tunnel's connectors receive them from Cloudflare.
  - The rules are validated as cloudflared validates them, before any API call. The catch-all rule must come last
    and only last; hostnames carry no scheme, port or path and a wildcard only as the whole first label; services
    need a scheme and a host and no path; C(http_status) codes are 100 to 599; C(originRequest) keys must be ones
    cloudflared knows.
  - Keys of the remote configuration other than C(ingress) (for example C(originRequest) defaults and
    C(warp-routing)) are kept.
options:
  tunnel:
    description:
      - Name or UUID of the tunnel.
    type: str
    required: true
  rules:
    description:
      - Ingress rules. Each has C(hostname), optional C(path) (a regular expression), and either C(service) (an
        origin URL or V(http_status:NNN)) or C(origin) (a preset), plus optional C(origin_request)
        (C(originRequest)) settings in snake_case or camelCase.
      - The preset V(ollama) points at V(http://127.0.0.1:11434) and rewrites the Host header to
        V(localhost:11434), because Ollama bound to loopback answers 403 with an empty body to any other Host.
      - "C({preset: ollama, port: 11435}) changes the port."
      - Durations are integer seconds or Go duration strings such as V(30s).
    type: list
    elements: dict
    required: true
  mode:
    description:
      - V(merge) adds or replaces the rules for the given hostname and path pairs and keeps the tunnel's other
        rules where they are; new rules go before the catch-all. The current catch-all stays unless the given
        rules end with one.
      - V(exact) makes the rule list exactly O(rules), followed by V(http_status:404) when they lack a catch-all.
    type: str
    choices: [merge, exact]
    default: merge
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
  - "API token permission: Account, Cloudflare Tunnel, Edit."
  - Tunnels with C(config_src=local) ignore remote rules; use the C(homelab.edge.cloudflared) role's C(config.yml) for them.
author:
  - homelab.edge contributors (@homelab-edge)
"""

EXAMPLES = r"""
- name: Publish Ollama on chat.example.com, keeping the tunnel's other hostnames
  homelab.edge.cloudflare_tunnel_ingress:
    account: Homelab
    tunnel: home
    rules:
      - hostname: chat.example.com
        origin: ollama

- name: Make the rule list exactly this
  homelab.edge.cloudflare_tunnel_ingress:
    account: Homelab
    tunnel: home
    mode: exact
    rules:
      - hostname: grafana.example.com
        service: http://127.0.0.1:3000
        origin_request:
          connect_timeout: 10s
      - service: http_status:404
"""

RETURN = r"""
ingress:
  description: The tunnel's complete ingress list after the change, in the API's form.
  returned: always
  type: list
  elements: dict
  sample: [{"hostname": "chat.example.com", "service": "http://127.0.0.1:11434",
            "originRequest": {"httpHostHeader": "localhost:11434"}}, {"service": "http_status:404"}]
changes:
  description: One entry per rule that was added, updated or removed, with C(change), C(hostname) and C(path).
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

from ansible_collections.homelab.edge.plugins.module_utils.cloudflare_api import CloudflareError, CloudflareModule
from ansible_collections.homelab.edge.plugins.module_utils.ingress import (
    IngressError,
    merge_ingress,
    normalize_current_ingress,
    validate_ingress,
)
from ansible_collections.homelab.edge.plugins.module_utils.reconcile import diff_of
from ansible_collections.homelab.edge.plugins.module_utils.tunnels import UUID_PATTERN, IngressManager, TunnelManager


def main():
    module = CloudflareModule(
        argument_spec=dict(
            account=dict(type="str", required=True),
            tunnel=dict(type="str", required=True),
            rules=dict(type="list", elements="dict", required=True),
            mode=dict(type="str", choices=["merge", "exact"], default="merge"),
        ),
        supports_check_mode=True,
    )
    params = module.params
    try:
        validate_ingress(params["rules"], require_catch_all=False)
    except IngressError as exc:
        module.fail_json(msg="Invalid ingress rules for tunnel '%s': %s" % (params["tunnel"], exc))
    try:
        account_id = module.api.account_id(params["account"])
        tunnel_ref = params["tunnel"]
        tunnels = TunnelManager(module.api, account_id, module.check_mode)
        if UUID_PATTERN.match(tunnel_ref.lower()):
            tunnel = module.api.get_or_none("accounts/%s/cfd_tunnel/%s" % (account_id, tunnel_ref.lower()),
                                            "read tunnel %s" % tunnel_ref)
            if tunnel and tunnel.get("deleted_at"):
                tunnel = None
        else:
            tunnel = tunnels.find(tunnel_ref)
        if tunnel is None:
            raise CloudflareError("Tunnel '%s' was not found; create it first with homelab.edge.cloudflare_tunnel."
                                  % tunnel_ref)
        if not (tunnel.get("remote_config") or tunnel.get("config_src") == "cloudflare"):
            raise CloudflareError("Tunnel '%s' has config_src local, so its connectors ignore remote ingress rules; "
                                  "render them into config.yml with the homelab.edge.cloudflared role instead."
                                  % tunnel_ref)
        manager = IngressManager(module.api, account_id, module.check_mode)
        current_config = manager.read(tunnel["id"], tunnel["name"])
        current_rules = normalize_current_ingress(current_config.get("ingress") or [])
        merged, changes = merge_ingress(current_rules, params["rules"], params["mode"])
        outcome = manager.ensure(tunnel["id"], tunnel["name"], merged,
                                 current_config=dict(current_config, ingress=current_rules))
        module.exit_with(changed=outcome.changed, ingress=merged, diff=diff_of([outcome]),
                         changes=[item for item in changes if item["change"] != "unchanged"])
    except (CloudflareError, IngressError) as exc:
        module.fail_with(exc)


if __name__ == "__main__":
    main()
