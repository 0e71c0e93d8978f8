#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) homelab.edge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: cloudflare_dns_record
short_description: Manage one DNS record in a Cloudflare zone, including tunnel CNAMEs
version_added: 0.1.0
description:
  - Creates, updates or deletes the DNS record with a given name and type.
  - With O(tunnel), the record is the proxied CNAME that routes a hostname to a Cloudflare Tunnel.
  - A record that already exists with other content, or an A/AAAA record where a CNAME should go, is only
    taken over when O(overwrite=true). Records with other names are never touched.
options:
  name:
    description:
      - Record name, relative to the zone (V(chat)), V(@) for the zone apex, or a full name
        (V(chat.example.com)).
    type: str
    required: true
  type:
    description:
      - Record type. Defaults to V(CNAME) when O(tunnel) is set.
    type: str
    choices: [A, AAAA, CNAME, TXT, MX, NS, CAA, SRV, HTTPS, SVCB]
  content:
    description:
      - Record content. Required for O(state=present) unless O(tunnel) is set.
      - For O(state=absent), only a record with this content is deleted when it is given.
    type: str
  tunnel:
    description:
      - Name or UUID of a Cloudflare Tunnel in O(account). The record becomes a CNAME to
        C(<tunnel id>.cfargotunnel.com) and is proxied, because only proxied hostnames reach a tunnel.
    type: str
  account:
    description:
      - Account of O(tunnel), by name or id. Required when O(tunnel) is a name.
    type: str
  proxied:
    description:
      - Whether the record is proxied by Cloudflare. Defaults to V(true) with O(tunnel), where V(false) is
        rejected; otherwise an existing record keeps its value and a new one is not proxied.
    type: bool
  ttl:
    description:
      - TTL in seconds; V(1) means automatic. An existing record keeps its TTL when not set.
    type: int
  comment:
    description:
      - Record comment. An existing record keeps its comment when not set.
    type: str
  overwrite:
    description:
      - Take over a record with the same name that holds other content, or a conflicting A, AAAA or CNAME
        record, instead of failing.
    type: bool
    default: false
  state:
    description:
      - Whether the record exists.
    type: str
    choices: [present, absent]
    default: present
extends_documentation_fragment:
  - homelab.edge.cloudflare
  - homelab.edge.cloudflare.zone
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
  - "API token permissions: Zone, DNS, Edit; and Account, Cloudflare Tunnel, Read when O(tunnel) is a name."
author:
  - homelab.edge contributors (@homelab-edge)
"""

EXAMPLES = r"""
- name: Route chat.example.com to the home tunnel
  homelab.edge.cloudflare_dns_record:
    zone: example.com
    account: Homelab
    name: chat
    tunnel: home

- name: Take over a hostname that pointed elsewhere
  homelab.edge.cloudflare_dns_record:
    zone: example.com
    account: Homelab
    name: chat
    tunnel: home
    overwrite: true

- name: Remove the record
  homelab.edge.cloudflare_dns_record:
    zone: example.com
    name: chat
    type: CNAME
    state: absent
"""

RETURN = r"""
record:
  description: The record after the change; empty after deletion.
  returned: always
  type: dict
  contains:
    id:
      description: Record id.
      type: str
    name:
      description: Full record name.
      type: str
      sample: chat.example.com
    type:
      description: Record type.
      type: str
    content:
      description: Record content.
      type: str
    proxied:
      description: Whether Cloudflare proxies the record.
      type: bool
    ttl:
      description: TTL, 1 for automatic.
      type: int
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
from ansible_collections.homelab.edge.plugins.module_utils.dns import DnsManager, record_view
from ansible_collections.homelab.edge.plugins.module_utils.reconcile import diff_of
from ansible_collections.homelab.edge.plugins.module_utils.tunnels import (
    TUNNEL_CNAME_SUFFIX,
    UUID_PATTERN,
    TunnelManager,
)


def tunnel_target(module):
    tunnel = module.params["tunnel"]
    if UUID_PATTERN.match(tunnel.lower()):
        return tunnel.lower() + TUNNEL_CNAME_SUFFIX
    if not module.params["account"]:
        raise CloudflareError("Tunnel '%s' is given by name, so account is required to look it up." % tunnel)
    manager = TunnelManager(module.api, module.api.account_id(module.params["account"]))
    found = manager.find(tunnel)
    if found is None:
        if module.check_mode:
            return "<id of tunnel %s>%s" % (tunnel, TUNNEL_CNAME_SUFFIX)
        raise CloudflareError("Tunnel '%s' was not found in the account; create it first with "
                              "homelab.edge.cloudflare_tunnel." % tunnel)
    return found["id"] + TUNNEL_CNAME_SUFFIX


def main():
    module = CloudflareModule(
        argument_spec=dict(
            zone=dict(type="str", required=True),
            account=dict(type="str"),
            name=dict(type="str", required=True),
            type=dict(type="str", choices=["A", "AAAA", "CNAME", "TXT", "MX", "NS", "CAA", "SRV", "HTTPS", "SVCB"]),
            content=dict(type="str"),
            tunnel=dict(type="str"),
            proxied=dict(type="bool"),
            ttl=dict(type="int"),
            comment=dict(type="str"),
            overwrite=dict(type="bool", default=False),
            state=dict(type="str", choices=["present", "absent"], default="present"),
        ),
        mutually_exclusive=[("content", "tunnel")],
        supports_check_mode=True,
    )
    params = module.params
    record_type = params["type"] or ("CNAME" if params["tunnel"] else None)
    if record_type is None:
        module.fail_json(msg="Set type (for example CNAME or A), or tunnel for a tunnel CNAME.")
    if params["tunnel"] and record_type != "CNAME":
        module.fail_json(msg="A record routed to tunnel '%s' must be a CNAME, not %s." % (params["tunnel"], record_type))
    if params["tunnel"] and params["proxied"] is False:
        module.fail_json(msg="proxied=false is not possible with tunnel: an unproxied CNAME to cfargotunnel.com "
                             "does not reach the tunnel. Remove proxied, or manage a plain record without tunnel.")
    if params["state"] == "present" and not params["tunnel"] and params["content"] is None:
        module.fail_json(msg="content is required for state=present unless tunnel is set.")
    if params["ttl"] is not None and params["ttl"] != 1 and not 30 <= params["ttl"] <= 86400:
        module.fail_json(msg="Invalid ttl %s: use 1 for automatic, or 30 to 86400 seconds." % params["ttl"])
    try:
        api = module.api
        account_id = api.account_id(params["account"]) if params["account"] else None
        zone = api.zone(params["zone"], account_id)
        manager = DnsManager(api, zone, module.check_mode)
        content = tunnel_target(module) if params["tunnel"] else params["content"]
        if params["state"] == "absent":
            outcome = manager.ensure_absent(params["name"], record_type, content=content)
            module.exit_with(changed=outcome.changed, record={}, diff=diff_of([outcome]))
        proxied = True if params["tunnel"] else params["proxied"]
        outcome = manager.ensure_present(params["name"], record_type, content, proxied=proxied, ttl=params["ttl"],
                                         comment=params["comment"], overwrite=params["overwrite"])
        module.exit_with(changed=outcome.changed, record=record_view(outcome.result) or {}, diff=diff_of([outcome]))
    except CloudflareError as exc:
        module.fail_with(exc)


if __name__ == "__main__":
    main()
