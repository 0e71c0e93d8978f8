# -*- coding: utf-8 -*-
# Copyright (c) homelab.edge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Read, compare and write Cloudflare Tunnels and their remote ingress configuration."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64
import os
import re

from ansible_collections.homelab.edge.plugins.module_utils.cloudflare_api import CloudflareError
from ansible_collections.homelab.edge.plugins.module_utils.reconcile import Outcome, canonical

TUNNEL_CNAME_SUFFIX = ".cfargotunnel.com"
UUID_PATTERN = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def tunnel_view(tunnel):
    """Return the fields of a tunnel that diffs and results show."""
    if tunnel is None:
        return None
    config_src = tunnel.get("config_src")
    if config_src is None:
        config_src = "cloudflare" if tunnel.get("remote_config") else "local"
    return {
        "id": tunnel.get("id"),
        "name": tunnel.get("name"),
        "config_src": config_src,
        "status": tunnel.get("status"),
        "created_at": tunnel.get("created_at"),
        "connections": len(tunnel.get("connections") or []),
    }


class TunnelManager:
    """Tunnels of one account, found by name among the live (not soft-deleted) ones."""

    def __init__(self, api, account_id, check_mode=False):
        self.api = api
        self.account_id = account_id
        self.check_mode = check_mode
        self.base = "accounts/%s/cfd_tunnel" % account_id

    def find(self, name):
        """Return the live tunnel named ``name``, or None."""
        items = self.api.list_all(self.base, "look up tunnel '%s'" % name,
                                  {"name": name, "is_deleted": "false"}, per_page=50)
        live = [item for item in items if item.get("name") == name and not item.get("deleted_at")]
        if len(live) > 1:
            raise CloudflareError(
                "More than one live tunnel is named '%s' (ids %s); delete the extra ones in the dashboard."
                % (name, ", ".join(item["id"] for item in live)))
        return live[0] if live else None

    def ids_named(self, name):
        """Return the ids of every tunnel, live or soft-deleted, that was ever named ``name``."""
        items = self.api.list_all(self.base, "look up tunnels named '%s'" % name, {"name": name}, per_page=50)
        return [item["id"] for item in items if item.get("name") == name]

    def ensure_present(self, name, config_src="cloudflare"):
        current = self.find(name)
        if current is not None:
            view = tunnel_view(current)
            if view["config_src"] != config_src:
                raise CloudflareError(
                    "Tunnel '%s' exists with config_src '%s', but '%s' was requested. The API cannot switch a "
                    "tunnel between local and remote configuration: set config_src to '%s', or delete the tunnel "
                    "(state=absent) and create it again." % (name, view["config_src"], config_src, view["config_src"]))
            return Outcome("tunnel", name, "none", before=view, after=view, result=current)
        desired = {"name": name, "config_src": config_src}
        if self.check_mode:
            after = dict(tunnel_view(dict(desired, status="inactive")), id=None)
            return Outcome("tunnel", name, "create", before=None, after=after, result=after)
        body = dict(desired, tunnel_secret=base64.b64encode(os.urandom(32)).decode("ascii"))
        action = "create tunnel '%s'" % name
        try:
            created = self.api.result("POST", self.base, action, body=body, retry_writes=False)
        except CloudflareError as exc:
            # The outcome of a create that failed on the network or with a 5xx is unknown, and a
            # 409 (error 1013) means that another run created the tunnel after find(): look again
            # and adopt the tunnel that is there.
            if exc.status is not None and exc.status < 500 and exc.status != 409:
                raise
            created = self.find(name)
            if created is None:
                raise
        return Outcome("tunnel", name, "create", before=None, after=tunnel_view(created), result=created)

    def ensure_absent(self, name):
        current = self.find(name)
        if current is None:
            return Outcome("tunnel", name, "none")
        view = tunnel_view(current)
        if not self.check_mode:
            path = "%s/%s" % (self.base, current["id"])
            # Cloudflare refuses to delete a tunnel with live connections (error 1022).
            self.api.request("DELETE", path + "/connections", "clean up connections of tunnel '%s'" % name)
            try:
                self.api.request("DELETE", path, "delete tunnel '%s'" % name)
            except CloudflareError as exc:
                if exc.status != 404:
                    raise
        return Outcome("tunnel", name, "delete", before=view, after=None, result=view)

    def token(self, tunnel_id, name):
        """Return the connector token of a tunnel (a secret)."""
        return self.api.result("GET", "%s/%s/token" % (self.base, tunnel_id), "read the token of tunnel '%s'" % name)

    def connections(self, tunnel_id, name):
        return self.api.result("GET", "%s/%s/connections" % (self.base, tunnel_id),
                               "list the connectors of tunnel '%s'" % name) or []


class IngressManager:
    """The remote configuration (``config_src: cloudflare``) of one tunnel."""

    def __init__(self, api, account_id, check_mode=False):
        self.api = api
        self.account_id = account_id
        self.check_mode = check_mode

    def path(self, tunnel_id):
        return "accounts/%s/cfd_tunnel/%s/configurations" % (self.account_id, tunnel_id)

    def read(self, tunnel_id, name):
        """Return the remote ``config`` dict of a tunnel (empty when none was ever stored)."""
        if tunnel_id is None:
            return {}
        result = self.api.get_or_none(self.path(tunnel_id), "read the configuration of tunnel '%s'" % name)
        return ((result or {}).get("config")) or {}

    def ensure(self, tunnel_id, name, ingress, current_config=None):
        """Store ``ingress`` (already validated and merged) as the tunnel's ingress list.

        Keys of the remote configuration other than ``ingress`` are kept as they are.
        """
        if current_config is None:
            current_config = self.read(tunnel_id, name)
        current_ingress = current_config.get("ingress") or []
        before = {"ingress": current_ingress}
        after = {"ingress": ingress}
        if canonical(current_ingress) == canonical(ingress):
            return Outcome("tunnel_ingress", name, "none", before=before, after=after, result=after)
        if not self.check_mode:
            config = dict(current_config)
            config["ingress"] = ingress
            self.api.request("PUT", self.path(tunnel_id), "update the ingress rules of tunnel '%s'" % name,
                             body={"config": config})
        action = "update" if current_ingress else "create"
        return Outcome("tunnel_ingress", name, action, before=before if current_ingress else None, after=after,
                       result=after)
