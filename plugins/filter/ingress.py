# -*- coding: utf-8 -*-
# Copyright (c) 2026, homelab.edge maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
name: tunnel_ingress
short_description: Validate and normalize Cloudflare Tunnel ingress rules
version_added: 0.1.0
author: homelab.edge maintainers
description:
  - Validates a list of Cloudflare Tunnel ingress rules with the same checks as
    C(cloudflared tunnel ingress validate) and returns them normalized.
  - The default output, O(format=remote), is the form that the Cloudflare API stores for tunnels with
    C(config_src=cloudflare), with C(originRequest) keys in camelCase and durations as integer seconds.
  - With O(format=local) the output is the list for the C(ingress) key of cloudflared's
    C(config.yml), with durations as Go duration strings such as V(30s) or V(1m30s).
  - Keys with empty values, and with O(drop_defaults=true) also keys with cloudflared's default values,
    are left out, so that the output compares equal to what the API returns for the same rules.
  - Invalid rules make the filter fail with a message that names the rule number
    (counting from 1, as cloudflared does), the invalid value and the fix.
options:
  _input:
    description:
      - The ingress rules, in order. cloudflared uses the first rule whose hostname and path match a request.
      - Each rule is a dictionary with these keys.
      - C(hostname), the public hostname. It must not contain a scheme, a port or a path.
        A wildcard V(*) is allowed only as the whole first label, as in V(*.example.com).
      - C(path), a Go RE2 regular expression matched anywhere in the request path, so anchor it with C(^).
      - C(service), the origin, for example V(http://127.0.0.1:8080), V(https://host:8443),
        V(tcp://host:22), V(ssh://host:22), V(rdp://host:3389), V(smb://host:445), V(unix:/path/to/socket),
        V(unix+tls:/path/to/socket), V(http_status:404), V(hello_world) or V(bastion).
        A URL must have a scheme and a host and no path.
      - >-
        C(origin), a preset instead of C(service). V(ollama) sets service V(http://127.0.0.1:11434) and
        C(originRequest.httpHostHeader) V(localhost:11434), because Ollama bound to loopback answers 403
        to any other Host header. Use C({preset: ollama, port: 11435}) for another port, which both values then use.
        Keys given in C(originRequest) override the preset's keys.
      - C(originRequest) or C(origin_request), the origin settings, with camelCase or snake_case keys,
        for example C(httpHostHeader) or C(http_host_header). Supported keys are C(connectTimeout),
        C(tlsTimeout), C(tcpKeepAlive), C(keepAliveTimeout) (integer seconds or Go duration strings),
        C(noHappyEyeballs), C(matchSNItoHost), C(noTLSVerify), C(disableChunkedEncoding), C(bastionMode),
        C(http2Origin) (booleans), C(keepAliveConnections), C(proxyPort) (integers), C(httpHostHeader),
        C(originServerName), C(caPool), C(proxyAddress), C(proxyType) (strings), C(ipRules)
        (a list of C(prefix), C(ports), C(allow)) and C(access) (C(required), C(teamName), C(audTag), C(environment)).
      - >-
        The last rule must be a catch-all without hostname and path, such as C({service: http_status:404}),
        unless O(require_catch_all=false).
    type: list
    elements: dict
    required: true
  format:
    description:
      - V(remote) returns the Cloudflare API form, with durations as integer seconds.
      - V(local) returns the C(config.yml) form, with durations as Go duration strings.
    type: str
    choices: [remote, local]
    default: remote
  require_catch_all:
    description:
      - Whether the list must end with a catch-all rule.
      - With V(false) a catch-all is optional, but if present it must still be the last rule.
    type: bool
    default: true
  drop_defaults:
    description:
      - Whether to leave out C(originRequest) values that equal cloudflared's defaults,
        for example C(connectTimeout) V(30) or C(noTLSVerify) V(false).
      - Set V(false) when a top-level C(originRequest) in the tunnel configuration sets other defaults,
        because then an explicit default value in a rule is an override.
    type: bool
    default: true
notes:
  - cloudflared compiles C(path) with Go's RE2. This filter checks it with Python's C(re) after rejecting
    constructs that RE2 does not support (lookaround, backreferences, atomic groups), so a rare
    pattern may pass here and still fail in cloudflared.
  - Only real HTTP status codes from 100 to 599 are accepted for C(http_status), although cloudflared
    accepts codes up to 999.
"""

EXAMPLES = r"""
- name: Render the ingress rules of a locally managed tunnel into config.yml
  ansible.builtin.copy:
    dest: /etc/cloudflared/config.yml
    mode: "0644"
    content: "{{ config | to_nice_yaml }}"
  vars:
    config:
      tunnel: 6ff42ae2-765d-4adf-8112-31c55c1551ef
      credentials-file: /etc/cloudflared/6ff42ae2-765d-4adf-8112-31c55c1551ef.json
      ingress: "{{ rules | homelab.edge.tunnel_ingress(format='local') }}"
    rules:
      - hostname: chat.example.com
        origin: ollama
        origin_request:
          connect_timeout: 1m
      - service: http_status:404

- name: Show the rules in the form the Cloudflare API stores
  ansible.builtin.debug:
    msg: "{{ rules | homelab.edge.tunnel_ingress }}"
  vars:
    rules:
      - hostname: chat.example.com
        origin:
          preset: ollama
          port: 11435
      - hostname: "*.example.com"
        path: ^/health$
        service: http://127.0.0.1:8080
      - service: http_status:404
  # msg:
  #   - hostname: chat.example.com
  #     service: http://127.0.0.1:11435
  #     originRequest: {httpHostHeader: "localhost:11435"}
  #   - hostname: "*.example.com"
  #     path: ^/health$
  #     service: http://127.0.0.1:8080
  #   - service: http_status:404

- name: Validate rules that a module completes with a catch-all later
  ansible.builtin.assert:
    that: (services | homelab.edge.tunnel_ingress(require_catch_all=false) | length) > 0
  vars:
    services:
      - hostname: chat.example.com
        origin: ollama
"""

RETURN = r"""
_value:
  description:
    - The normalized rules, in the input order, each with the keys C(hostname), C(path), C(service) and
      C(originRequest), where set.
    - C(hostname) is left out for the catch-all, also when the input used V(*).
    - An C(origin) preset is expanded into C(service) and C(originRequest).
    - C(originRequest) keys are camelCase. Durations are integer seconds for O(format=remote) and
      Go duration strings for O(format=local).
  type: list
  elements: dict
"""

from ansible.errors import AnsibleFilterError

from ansible_collections.homelab.edge.plugins.module_utils.ingress import (
    IngressError,
    to_local_config,
    validate_ingress,
)

OUTPUT_FORMATS = ("remote", "local")


def tunnel_ingress(rules, format="remote", require_catch_all=True, drop_defaults=True):
    """Validate ingress rules and return them in the remote or local (config.yml) form."""
    if format not in OUTPUT_FORMATS:
        raise AnsibleFilterError(
            "tunnel_ingress: format %r is not supported; use 'remote' or 'local'." % (format,)
        )
    for name, value in (("require_catch_all", require_catch_all), ("drop_defaults", drop_defaults)):
        if not isinstance(value, bool):
            raise AnsibleFilterError(
                "tunnel_ingress: %s must be true or false, not %r." % (name, value)
            )

    try:
        if format == "local":
            return to_local_config(rules, require_catch_all=require_catch_all, drop_defaults=drop_defaults)
        return validate_ingress(rules, require_catch_all=require_catch_all, drop_defaults=drop_defaults)
    except IngressError as error:
        raise AnsibleFilterError("tunnel_ingress: %s" % error)


class FilterModule(object):
    """Cloudflare Tunnel ingress filters."""

    def filters(self):
        return {"tunnel_ingress": tunnel_ingress}
