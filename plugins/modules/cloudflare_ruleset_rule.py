#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) homelab.edge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: cloudflare_ruleset_rule
short_description: Manage one rate-limiting or WAF custom rule in a Cloudflare zone's phase entrypoint
version_added: 0.1.0
description:
  - Adds, updates or removes one rule, identified by O(ref), in the zone's entrypoint ruleset of the
    V(http_ratelimit) (rate limiting rules) or V(http_request_firewall_custom) (WAF custom rules) phase.
  - A zone has one entrypoint ruleset per phase, and writing it replaces all of its rules. The module reads the
    entrypoint, keeps every rule with another ref unchanged and in its place, and adds or replaces only its own
    rule. It never creates a second ruleset for the phase. When the zone has no entrypoint yet, the write creates it.
  - A new rule goes at the end of the list, where Cloudflare requires rate limiting rules to be. An existing rule
    keeps its position.
  - Only the fields that are set are compared, so a rule changed elsewhere in fields not set here is left alone.
  - Rate limiting rules are checked against the limits of the zone's plan before anything is sent, and a rule
    outside them fails with the limit and the setting to change.
options:
  account:
    description:
      - Account that holds O(zone), by name or id. It narrows the lookup of a zone given by name, and lets
        C(module_defaults) for the C(homelab.edge.cloudflare) group set one account for every module.
    type: str
  phase:
    description:
      - Phase whose zone entrypoint ruleset holds the rule.
    type: str
    required: true
    choices: [http_ratelimit, http_request_firewall_custom]
  ref:
    description:
      - Reference that identifies the rule across runs. Rules with other refs are never changed.
    type: str
    required: true
  expression:
    description:
      - Rules-language expression of the requests the rule matches, for example
        C(http.host eq "chat.example.com").
      - On the Free plan a rate limiting rule may only use the path fields (C(http.request.uri.path)) and the
        verified-bot fields (C(cf.client.bot)); Pro adds the host, URI, full URI and query fields; Business adds
        the method, source IP and user agent fields.
      - Required when the rule does not exist yet.
    type: str
  action:
    description:
      - What happens to a matching request. Rate limiting rules accept V(block), V(challenge), V(js_challenge),
        V(managed_challenge) and V(log); custom rules also accept V(skip).
      - Required when the rule does not exist yet.
    type: str
    choices: [block, challenge, js_challenge, managed_challenge, log, skip]
  action_parameters:
    description:
      - "Parameters of the action, for example C({response: {status_code: 429, content_type: text/plain,
        content: Too many requests}}) for V(block)."
      - Keys that are not set keep their current value.
    type: dict
  ratelimit:
    description:
      - Rate limit of a rule in the V(http_ratelimit) phase. Keys that are not set keep their current value.
    type: dict
    suboptions:
      requests_per_period:
        description: Number of requests allowed per O(ratelimit.period) and counting key. Required for a new rule.
        type: int
      period:
        description:
          - Counting period in seconds. Required for a new rule.
          - Free allows only V(10); Pro up to V(60); Business up to V(600).
        type: int
      mitigation_timeout:
        description:
          - Seconds for which the action applies once the limit is reached.
          - Free allows only V(10); Pro up to V(3600); Business up to V(86400).
          - Must be V(0) with the challenge actions on every plan but Enterprise; that is the default for them.
            Otherwise the default is the rule's current value, or V(10) for a new rule.
        type: int
      characteristics:
        description:
          - What requests are counted by, for example V(ip.src).
          - Cloudflare requires V(cf.colo.id) in every rate limiting rule, so the module adds it when it is
            missing. The default for a new rule is V(ip.src) and V(cf.colo.id).
          - Free and Pro allow only V(ip.src); Business also allows V(cf.unique_visitor_id).
        type: list
        elements: str
      counting_expression:
        description: Expression of the requests that are counted, when it differs from O(expression). Business and above.
        type: str
      requests_to_origin:
        description: Whether only requests that reach the origin are counted.
        type: bool
  description:
    description:
      - Description of the rule.
    type: str
  enabled:
    description:
      - Whether the rule is active. A new rule is enabled unless this is V(false).
    type: bool
  state:
    description:
      - Whether the rule exists. V(absent) removes only the rule with O(ref).
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
    details: The diff shows this rule before and after; the zone's other rules are not shown.
  action_group:
    description: The module belongs to the C(homelab.edge.cloudflare) group, so C(module_defaults) can set its connection options.
    support: full
    membership: [homelab.edge.cloudflare]
notes:
  - "API token permissions: Zone, Zone WAF, Edit; and Zone, Zone, Read when O(zone) is a domain name."
  - "The plan limits checked here are Cloudflare's published limits for rate limiting rules. Free allows one rule
    per zone with a 10 second period and a 10 second mitigation timeout, counting by IP address. Pro allows two
    rules, periods up to one minute and timeouts up to one hour. Business allows five rules, periods up to ten
    minutes, timeouts up to one day, and counting by IP with NAT support. Enterprise limits depend on the contract
    and are not checked. The number of custom rules per plan is not checked either."
  - The rule is written with one request that carries every rule of the entrypoint. A rule that someone else
    changes between this module's read and its write is sent back as it was read.
seealso:
  - module: homelab.edge.cloudflare_edge
author:
  - homelab.edge contributors (@homelab-edge)
"""

EXAMPLES = r"""
- name: Allow 30 requests per 10 seconds and IP address on a Free zone
  homelab.edge.cloudflare_ruleset_rule:
    zone: example.com
    phase: http_ratelimit
    ref: chat_rate_limit
    description: Rate limit of the chat API
    expression: starts_with(http.request.uri.path, "/api/")
    action: block
    ratelimit:
      requests_per_period: 30
      period: 10
      mitigation_timeout: 10

- name: Let only GET and POST to the chat API through to Access
  homelab.edge.cloudflare_ruleset_rule:
    zone: example.com
    phase: http_request_firewall_custom
    ref: chat_allowed_requests
    description: Requests the chat backend does not use
    expression: >-
      http.host eq "chat.example.com" and
      (not http.request.method in {"GET" "POST"} or not http.request.uri.path in {"/api/chat" "/api/tags"})
    action: block

- name: Remove the rate limit and keep the zone's other rules
  homelab.edge.cloudflare_ruleset_rule:
    zone: example.com
    phase: http_ratelimit
    ref: chat_rate_limit
    state: absent
"""

RETURN = r"""
rule:
  description: The rule after the change; empty after removal. In check mode, a new rule has no C(id).
  returned: always
  type: dict
  contains:
    ref:
      description: Rule reference.
      type: str
      sample: chat_rate_limit
    id:
      description: Rule id.
      type: str
    expression:
      description: Expression of the matched requests.
      type: str
    action:
      description: Action of the rule.
      type: str
    action_parameters:
      description: Parameters of the action.
      type: dict
    ratelimit:
      description: Rate limit of a rate limiting rule.
      type: dict
    description:
      description: Rule description.
      type: str
    enabled:
      description: Whether the rule is active.
      type: bool
plan:
  description: The zone's plan, as the rate limiting checks read it (V(free), V(pro), V(business), V(enterprise)).
  returned: always
  type: str
  sample: free
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
from ansible_collections.homelab.edge.plugins.module_utils.reconcile import diff_of
from ansible_collections.homelab.edge.plugins.module_utils.rulesets import PHASE_ACTIONS, RulesetRuleManager

RATELIMIT_SPEC = dict(
    requests_per_period=dict(type="int"),
    period=dict(type="int"),
    mitigation_timeout=dict(type="int"),
    characteristics=dict(type="list", elements="str"),
    counting_expression=dict(type="str"),
    requests_to_origin=dict(type="bool"),
)


def main():
    module = CloudflareModule(
        argument_spec=dict(
            zone=dict(type="str", required=True),
            account=dict(type="str"),
            phase=dict(type="str", required=True, choices=sorted(PHASE_ACTIONS)),
            ref=dict(type="str", required=True),
            expression=dict(type="str"),
            action=dict(type="str", choices=["block", "challenge", "js_challenge", "managed_challenge", "log", "skip"]),
            action_parameters=dict(type="dict"),
            ratelimit=dict(type="dict", options=RATELIMIT_SPEC),
            description=dict(type="str"),
            enabled=dict(type="bool"),
            state=dict(type="str", choices=["present", "absent"], default="present"),
        ),
        supports_check_mode=True,
    )
    params = module.params
    if not params["ref"].strip():
        module.fail_json(msg="ref is empty; set it to a name that identifies the rule, such as chat_rate_limit.")
    try:
        account_id = module.api.account_id(params["account"]) if params["account"] else None
        zone = module.api.zone(params["zone"], account_id)
        manager = RulesetRuleManager(module.api, zone, params["phase"], module.check_mode)
        if params["state"] == "absent":
            outcome = manager.ensure_absent(params["ref"])
        else:
            outcome = manager.ensure_present(
                params["ref"], expression=params["expression"], action=params["action"],
                action_parameters=params["action_parameters"], ratelimit=params["ratelimit"],
                description=params["description"], enabled=params["enabled"])
    except CloudflareError as exc:
        module.fail_with(exc)
    for note in outcome.notes:
        module.warn(note)
    module.exit_with(changed=outcome.changed, rule=outcome.result or {}, plan=manager.plan, diff=diff_of([outcome]))


if __name__ == "__main__":
    main()
