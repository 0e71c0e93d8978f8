#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) homelab.edge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: cloudflare_edge
short_description: Reconcile tunnels, ingress, DNS, Access and edge rules for a set of services in one run
version_added: 0.1.0
description:
  - Brings the Cloudflare side of an edge to the described state in one module run, with one diff for all of
    it. For each tunnel it ensures the tunnel, its remote ingress rules, and for each service a proxied CNAME to
    the tunnel, a reusable Access policy with the Service Auth (V(non_identity)) decision for the service's
    service tokens, and a self-hosted Access application for the hostname.
  - After the Access objects, it ensures per zone the WAF custom rules (O(tunnels[].services[].firewall)) and the
    rate limiting rules (O(tunnels[].services[].rate_limit)) of the services. Each phase entrypoint ruleset is read
    once per zone, and rules that other tools or people made in it are kept unchanged and in their order.
  - It uses the same code as the single-resource modules (M(homelab.edge.cloudflare_tunnel),
    M(homelab.edge.cloudflare_tunnel_ingress), M(homelab.edge.cloudflare_dns_record),
    M(homelab.edge.cloudflare_access_service_token), M(homelab.edge.cloudflare_access_policy),
    M(homelab.edge.cloudflare_access_application), M(homelab.edge.cloudflare_ruleset_rule)), and pays Ansible's and the SDK's start-up cost once.
  - The whole input is validated before the first API request, and every object is read and its change
    predicted before the first write, so that a failing lookup (a missing permission, an unknown zone, a DNS
    record owned by something else) or a rate limit outside the zone's plan stops the run with nothing written. Objects that are not described are
    never changed; in the default ingress mode, ingress rules for other hostnames of the same tunnel are kept.
options:
  zone:
    description:
      - Zone of the services' hostnames, by domain name or id, unless a service sets its own O(tunnels[].services[].zone).
    type: str
  service_tokens:
    description:
      - Access service tokens to ensure, before the tunnels.
      - When this run creates a token, its client secret is returned in RV(service_token_secrets), and the task
        must set C(no_log) to V(true); otherwise the module fails before it writes anything.
    type: list
    elements: dict
    default: []
    suboptions:
      name:
        description: Token name.
        type: str
        required: true
      duration:
        description: Lifetime as a Go duration (V(8760h)) or V(forever). An existing token keeps its own when unset.
        type: str
      consumers:
        description: Accepted so that the shared data model can be passed as it is; used by the C(homelab.edge.azure_app_settings) role.
        type: list
        elements: dict
  tunnels:
    description:
      - Tunnels and the services they publish.
    type: list
    elements: dict
    default: []
    suboptions:
      name:
        description: Tunnel name.
        type: str
        required: true
      origins:
        description: Accepted so that the shared data model can be passed as it is; used by the C(homelab.edge.cloudflared) role.
        type: str
      config_src:
        description:
          - V(cloudflare) keeps the ingress rules in the tunnel's remote configuration, managed here.
          - V(local) leaves them to the C(config.yml) that the C(homelab.edge.cloudflared) role renders.
        type: str
        choices: [cloudflare, local]
        default: cloudflare
      ingress_mode:
        description:
          - V(merge) adds or updates the rules for the listed hostnames and keeps the tunnel's other rules.
          - V(exact) makes the rule list exactly the listed services followed by O(tunnels[].catch_all).
        type: str
        choices: [merge, exact]
        default: merge
      catch_all:
        description: Service of the last, catch-all ingress rule.
        type: str
        default: http_status:404
      services:
        description: Services published through this tunnel, one per hostname (and path).
        type: list
        elements: dict
        default: []
        suboptions:
          hostname:
            description: Public hostname, for example V(chat.example.com).
            type: str
            required: true
          zone:
            description: Zone that holds O(tunnels[].services[].hostname). Defaults to O(zone).
            type: str
          path:
            description: Path regular expression the ingress rule matches, as cloudflared reads it.
            type: str
          service:
            description: Origin URL, for example V(http://127.0.0.1:8080), or V(http_status:404).
            type: str
          origin:
            description:
              - Origin preset instead of O(tunnels[].services[].service). V(ollama) points at
                V(http://127.0.0.1:11434) and rewrites the Host header to V(localhost:11434), which Ollama accepts.
              - "A dict such as C({preset: ollama, port: 11435}) changes the port."
            type: raw
          origin_request:
            description: cloudflared C(originRequest) settings for this rule, in snake_case or camelCase.
            type: dict
          dns:
            description: DNS settings. C(overwrite=true) takes over an existing record for the hostname.
            type: dict
          access:
            description:
              - Access protection for the hostname. C(service_tokens) lists token names admitted by a reusable
                Service Auth policy (named C(policy_name), default C(<hostname> service auth)); C(policies) lists
                further existing reusable policies by name; C(session_duration), C(application_name) and
                C(service_auth_401_redirect) (default V(true) for service-token-only applications) set the
                application.
            type: dict
          rate_limit:
            description:
              - Rate limit for the hostname, applied as a rate limiting rule (phase V(http_ratelimit)) with the ref
                C(homelab_edge_rl_<hostname with dots replaced by underscores>), for example
                C(homelab_edge_rl_chat_example_com). Requests are counted per IP address and Cloudflare data center.
              - On Pro and higher plans the rule matches C(http.host eq "<hostname>"). The Free plan does not allow the
                host field in rate limiting rules, so there the rule matches the paths in
                O(tunnels[].services[].firewall.paths), or every path when none are listed, and so counts the
                requests to every hostname of the zone that match. The Free plan also allows only one rate limiting
                rule per zone.
              - The limits of the zone's plan are checked before anything is written; see
                M(homelab.edge.cloudflare_ruleset_rule).
              - Removing the key later does not delete the rule; delete it by its ref with
                M(homelab.edge.cloudflare_ruleset_rule) and O(homelab.edge.cloudflare_ruleset_rule#module:state=absent).
            type: dict
            suboptions:
              requests:
                description: Requests allowed per period and client IP address.
                type: int
                required: true
              period:
                description: Counting period in seconds. The Free plan allows only V(10).
                type: int
                required: true
              mitigation_timeout:
                description:
                  - Seconds for which the action applies once the limit is reached. The Free plan allows only V(10).
                  - Defaults to V(0) for the challenge actions, which require it, and otherwise to the rule's current
                    value, or V(10) for a new rule.
                type: int
              action:
                description: Action once the limit is reached.
                type: str
                choices: [block, challenge, js_challenge, managed_challenge, log]
                default: block
          firewall:
            description:
              - Requests let through to Access. A WAF custom rule (phase V(http_request_firewall_custom)) with the ref
                C(homelab_edge_fw_<hostname with dots replaced by underscores>) blocks requests to the hostname whose
                method or path is not listed.
              - Removing the key later does not delete the rule; delete it by its ref with
                M(homelab.edge.cloudflare_ruleset_rule).
            type: dict
            suboptions:
              methods:
                description: HTTP methods the backend uses, for example V(GET) and V(POST). Unset allows every method.
                type: list
                elements: str
              paths:
                description:
                  - Paths the backend uses, for example V(/api/chat). A path that ends with C(*) is a prefix, for
                    example V(/api/*). Unset allows every path.
                type: list
                elements: str
  state:
    description:
      - V(present) creates and updates what is described.
      - V(absent) removes it, in this order - the Access applications of the services, the Access policies this
        module names (C(access.policy_name) or C(<hostname> service auth)), the service tokens, the ruleset rules
        of the services, the DNS records that are CNAMEs to the described tunnels, and the tunnels after their
        connections are cleaned up. Then it reads everything again and fails if something is still there.
      - With V(absent), records, policies, rules and tunnels that the description does not name, and DNS records
        that point anywhere but the described tunnels, are left alone.
    type: str
    choices: [present, absent]
    default: present
  keep_tunnels:
    description:
      - With O(state=absent), leave the tunnels in place. Use it to remove everything else before the
        connectors on the origin hosts are stopped; delete the tunnels in a later run.
    type: bool
    default: false
extends_documentation_fragment:
  - homelab.edge.cloudflare
  - homelab.edge.cloudflare.account
attributes:
  check_mode:
    description: In check mode the module predicts its result and sends no write request.
    support: full
    details: Objects that would be created get placeholder ids such as C(<id of tunnel home>) in the diff.
  diff_mode:
    description: In diff mode the module returns the object before and after the change.
    support: full
    details: One diff for the whole edge, keyed by object; only objects that change appear. Secrets never appear.
  action_group:
    description: The module belongs to the C(homelab.edge.cloudflare) group, so C(module_defaults) can set its connection options.
    support: full
    membership: [homelab.edge.cloudflare]
notes:
  - "API token permissions: Account Settings Read (unless O(account) is an id), Zone Read, DNS Edit, Cloudflare
    Tunnel Edit, Access: Apps and Policies Edit, Access: Service Tokens Edit, and Zone WAF Edit when a service sets
    rate_limit or firewall."
author:
  - homelab.edge contributors (@homelab-edge)
"""

EXAMPLES = r"""
- name: Create the service token (its secret is only returned now)
  homelab.edge.cloudflare_edge:
    account: Homelab
    service_tokens:
      - name: azure-backend
        duration: 8760h
  register: edge_tokens
  no_log: true

- name: Publish Ollama on chat.example.com for that token only
  homelab.edge.cloudflare_edge:
    account: Homelab
    zone: example.com
    tunnels:
      - name: home
        services:
          - hostname: chat.example.com
            origin: ollama
            access:
              service_tokens: [azure-backend]
"""

RETURN = r"""
account_id:
  description: Id of the account, which later tasks can pass as O(account) to save a lookup.
  returned: always
  type: str
objects:
  description: Every object the run looked at, with the action taken (V(create), V(update), V(delete) or V(none)).
  returned: always
  type: list
  elements: dict
  sample: [{"kind": "tunnel", "name": "home", "action": "none"}]
tunnels:
  description: Per tunnel name, its C(id), C(cname) target and C(config_src).
  returned: always
  type: dict
service_tokens:
  description: Per token name, its C(id), C(client_id), C(duration) and C(expires_at); never the secret.
  returned: always
  type: dict
applications:
  description: Per hostname, the Access application's C(id) and C(aud) tag.
  returned: always
  type: dict
rules:
  description: Per hostname, the refs of its WAF custom rule (C(firewall)) and rate limiting rule (C(rate_limit)).
  returned: always
  type: dict
  sample: {"chat.example.com": {"firewall": "homelab_edge_fw_chat_example_com", "rate_limit": "homelab_edge_rl_chat_example_com"}}
service_token_secrets:
  description: Per token name created by this run, its C(client_id) and C(client_secret). Secrets.
  returned: when this run created a service token
  type: dict
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
from ansible_collections.homelab.edge.plugins.module_utils.edge import EdgePlan, EdgeReconciler
from ansible_collections.homelab.edge.plugins.module_utils.reconcile import diff_of

SERVICE_SPEC = dict(
    hostname=dict(type="str", required=True),
    zone=dict(type="str"),
    path=dict(type="str"),
    service=dict(type="str"),
    origin=dict(type="raw"),
    origin_request=dict(type="dict"),
    dns=dict(type="dict"),
    access=dict(type="dict"),
    rate_limit=dict(type="dict", options=dict(
        requests=dict(type="int", required=True),
        period=dict(type="int", required=True),
        mitigation_timeout=dict(type="int"),
        action=dict(type="str", choices=["block", "challenge", "js_challenge", "managed_challenge", "log"],
                    default="block"),
    )),
    firewall=dict(type="dict", options=dict(
        methods=dict(type="list", elements="str"),
        paths=dict(type="list", elements="str"),
    )),
)

TUNNEL_SPEC = dict(
    name=dict(type="str", required=True),
    origins=dict(type="str"),
    config_src=dict(type="str", choices=["cloudflare", "local"], default="cloudflare"),
    ingress_mode=dict(type="str", choices=["merge", "exact"], default="merge"),
    catch_all=dict(type="str", default="http_status:404"),
    services=dict(type="list", elements="dict", default=[], options=SERVICE_SPEC),
)

TOKEN_SPEC = dict(
    name=dict(type="str", required=True),
    duration=dict(type="str"),
    consumers=dict(type="list", elements="dict"),
)


def main():
    module = CloudflareModule(
        argument_spec=dict(
            account=dict(type="str", required=True),
            zone=dict(type="str"),
            service_tokens=dict(type="list", elements="dict", default=[], options=TOKEN_SPEC, no_log=False),
            tunnels=dict(type="list", elements="dict", default=[], options=TUNNEL_SPEC),
            state=dict(type="str", choices=["present", "absent"], default="present"),
            keep_tunnels=dict(type="bool", default=False),
        ),
        supports_check_mode=True,
    )
    plan = EdgePlan(module.params)
    if plan.errors:
        module.fail_json(msg="The edge description is invalid, so nothing was sent to Cloudflare: "
                             + " ".join(plan.errors), errors=plan.errors)
    try:
        # Read everything and predict the changes first, so that a lookup that fails (a missing
        # permission, an unknown zone, a record owned by something else) stops the run before
        # the first write. Without changes, the prediction is the result.
        reconciler = EdgeReconciler(module.api, plan, check_mode=True).run()
        if reconciler.changed and not module.check_mode:
            if reconciler.creates("service_token") and not module.no_log:
                # A created token returns the only copy of its secret; it must not reach the output.
                module.require_no_log("Creating service tokens")
            reconciler = EdgeReconciler(module.api, plan, check_mode=False).run()
            if plan.state == "absent":
                # Read everything again: whatever still exists was not really removed.
                leftovers = [outcome.label for outcome in EdgeReconciler(module.api, plan, check_mode=True).run().outcomes
                             if outcome.changed]
                if leftovers:
                    raise CloudflareError("These objects still exist after they were deleted: %s. Run again; if they "
                                          "remain, check them in the dashboard." % ", ".join(leftovers))
    except CloudflareError as exc:
        module.fail_with(exc)
    for warning in reconciler.warnings:
        module.warn(warning)
    result = dict(
        changed=reconciler.changed,
        diff=diff_of(reconciler.outcomes),
        objects=[outcome.summary() for outcome in reconciler.outcomes],
        tunnels=reconciler.tunnels,
        service_tokens=dict((name, token or {}) for name, token in reconciler.tokens.items()),
        applications=reconciler.applications,
        rules=reconciler.rules,
        account_id=reconciler.account_id,
    )
    if reconciler.secrets:
        result["service_token_secrets"] = reconciler.secrets
    module.exit_with(**result)


if __name__ == "__main__":
    main()
