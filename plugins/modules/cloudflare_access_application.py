#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) homelab.edge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: cloudflare_access_application
short_description: Manage a self-hosted Cloudflare Access application for a hostname
version_added: 0.1.0
description:
  - Creates, updates or deletes the self-hosted Access application that protects one hostname, and attaches
    reusable Access policies to it in order of precedence.
  - The application is found by its domain. Fields the module does not manage are kept as they are.
options:
  domain:
    description:
      - Hostname (optionally with a path) the application protects, for example V(chat.example.com).
    type: str
    required: true
  name:
    description:
      - Display name. Defaults to O(domain).
    type: str
  policies:
    description:
      - Reusable policies, by name or id, in order of precedence (the first one is evaluated first).
    type: list
    elements: str
    default: []
  session_duration:
    description:
      - How long an Access session lasts, as a Go duration such as V(24h). Left alone when not set.
    type: str
  service_auth_401_redirect:
    description:
      - Answer a request that fails a Service Auth policy with HTTP 401 instead of a redirect to the login page.
      - Defaults to V(true) when every attached policy has the V(non_identity) decision, which suits an API that
        only service tokens call, and is left alone otherwise.
    type: bool
  app_launcher_visible:
    description:
      - Whether the application shows in the App Launcher. Left alone when not set.
    type: bool
  state:
    description:
      - Whether the application exists.
    type: str
    choices: [present, absent]
    default: present
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
  - "API token permission: Account, Access: Apps and Policies, Edit."
author:
  - homelab.edge contributors (@homelab-edge)
"""

EXAMPLES = r"""
- name: Protect chat.example.com with the service-token policy
  homelab.edge.cloudflare_access_application:
    account: Homelab
    domain: chat.example.com
    policies: [azure-backend only]
"""

RETURN = r"""
application:
  description: The application after the change; empty after deletion.
  returned: always
  type: dict
  contains:
    id:
      description: Application id.
      type: str
    aud:
      description: Audience tag of the application, which origins can check in the Access JWT.
      type: str
    domain:
      description: Protected hostname.
      type: str
    policies:
      description: Attached policies with id, name and precedence.
      type: list
      elements: dict
    service_auth_401_redirect:
      description: Whether failed Service Auth requests get 401.
      type: bool
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
    ApplicationManager,
    PolicyManager,
    application_view,
)
from ansible_collections.homelab.edge.plugins.module_utils.cloudflare_api import CloudflareError, CloudflareModule
from ansible_collections.homelab.edge.plugins.module_utils.reconcile import diff_of
from ansible_collections.homelab.edge.plugins.module_utils.tunnels import UUID_PATTERN


def resolve_policies(module, account_id):
    """Return attached policies as dicts with id, name, precedence and decision."""
    if not module.params["policies"]:
        return []
    manager = PolicyManager(module.api, account_id, module.check_mode)
    resolved = []
    for precedence, reference in enumerate(module.params["policies"], start=1):
        if UUID_PATTERN.match(reference.lower()):
            found = next((item for item in manager.all() if item.get("id") == reference.lower()), None)
        else:
            found = manager.find(reference)
        if found is None:
            if not module.check_mode:
                raise CloudflareError("Access policy '%s' was not found; create it first with "
                                      "homelab.edge.cloudflare_access_policy." % reference)
            found = {"id": "<id of policy %s>" % reference, "name": reference, "decision": None}
        resolved.append({"id": found["id"], "name": found.get("name"), "precedence": precedence,
                         "decision": found.get("decision")})
    return resolved


def main():
    module = CloudflareModule(
        argument_spec=dict(
            account=dict(type="str", required=True),
            domain=dict(type="str", required=True),
            name=dict(type="str"),
            policies=dict(type="list", elements="str", default=[]),
            session_duration=dict(type="str"),
            service_auth_401_redirect=dict(type="bool"),
            app_launcher_visible=dict(type="bool"),
            state=dict(type="str", choices=["present", "absent"], default="present"),
        ),
        supports_check_mode=True,
    )
    params = module.params
    domain = params["domain"].strip().lower()
    if "://" in domain:
        module.fail_json(msg="Invalid domain '%s': give the hostname without a scheme, for example "
                             "chat.example.com." % params["domain"])
    try:
        account_id = module.api.account_id(params["account"])
        manager = ApplicationManager(module.api, account_id, module.check_mode)
        if params["state"] == "absent":
            outcome = manager.ensure_absent(domain)
            module.exit_with(changed=outcome.changed, application={}, diff=diff_of([outcome]))
        policies = resolve_policies(module, account_id)
        redirect = params["service_auth_401_redirect"]
        if redirect is None and policies and all(item["decision"] in ("non_identity", None) for item in policies):
            redirect = True
        outcome = manager.ensure_present(domain, name=params["name"], policies=policies,
                                         session_duration=params["session_duration"],
                                         service_auth_401_redirect=redirect,
                                         app_launcher_visible=params["app_launcher_visible"])
        module.exit_with(changed=outcome.changed, application=application_view(outcome.result) or {},
                         diff=diff_of([outcome]))
    except CloudflareError as exc:
        module.fail_with(exc)


if __name__ == "__main__":
    main()
