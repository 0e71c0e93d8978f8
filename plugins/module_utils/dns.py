# -*- coding: utf-8 -*-
# Copyright (c) homelab.edge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Read, compare and write DNS records of one Cloudflare zone."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.homelab.edge.plugins.module_utils.cloudflare_api import CloudflareError
from ansible_collections.homelab.edge.plugins.module_utils.reconcile import Outcome

# Record types that cannot share a name with a CNAME (and a CNAME cannot share a name with them).
ADDRESS_TYPES = frozenset(["A", "AAAA", "CNAME"])
MANAGED_FIELDS = ("content", "proxied", "ttl", "comment")
# Errors of a create that clashes with a record of the same name: 81053 (A, AAAA or CNAME
# present), 81054 (CNAME present) and 81058 (identical record present).
RACE_CODES = (81053, 81054, 81058)


def fqdn(name, zone_name):
    """Return the full name of ``name`` in ``zone_name``; accept ``@``, relative names and FQDNs."""
    zone_name = zone_name.rstrip(".").lower()
    text = (name or "").strip().rstrip(".").lower()
    if text in ("", "@"):
        return zone_name
    if "://" in text or "/" in text or ":" in text:
        raise CloudflareError(
            "Invalid DNS record name '%s': give a host name such as 'chat' or 'chat.%s', without a scheme, "
            "port or path." % (name, zone_name))
    if text == zone_name or text.endswith("." + zone_name):
        return text
    if (name or "").strip().endswith("."):
        raise CloudflareError("DNS record name '%s' is not inside zone '%s'." % (name, zone_name))
    return "%s.%s" % (text, zone_name)


def same_content(record_type, left, right):
    """Compare record contents; host names (CNAME, NS, MX) ignore case and a trailing dot."""
    left, right = left or "", right or ""
    if record_type in ("CNAME", "NS", "MX"):
        return left.rstrip(".").lower() == right.rstrip(".").lower()
    return left == right


def record_view(record):
    if record is None:
        return None
    return {
        "id": record.get("id"),
        "name": record.get("name"),
        "type": record.get("type"),
        "content": record.get("content"),
        "proxied": record.get("proxied"),
        "ttl": record.get("ttl"),
        "comment": record.get("comment"),
    }


class DnsManager:
    """DNS records of one zone, identified by name and type."""

    def __init__(self, api, zone, check_mode=False):
        self.api = api
        self.zone = zone
        self.check_mode = check_mode
        self.base = "zones/%s/dns_records" % zone["id"]

    def records_named(self, name):
        """Return every record of any type with the full name ``name``."""
        return self.api.list_all(self.base, "look up DNS records named '%s'" % name,
                                 {"name.exact": name}, per_page=100)

    def ensure_present(self, name, record_type, content, proxied=None, ttl=None, comment=None,
                       overwrite=False, existing=None):
        """Create or update the ``record_type`` record called ``name``.

        A record of the same name and type whose content differs, and an A, AAAA or CNAME record
        that conflicts with a CNAME, are only replaced when ``overwrite`` is true.
        """
        name = fqdn(name, self.zone["name"])
        record_type = record_type.upper()
        if existing is None:
            existing = self.records_named(name)
        same_type = [item for item in existing if item.get("type") == record_type]
        conflicts = []
        if record_type == "CNAME":
            conflicts = [item for item in existing if item.get("type") in ADDRESS_TYPES and item.get("type") != "CNAME"]
        elif record_type in ADDRESS_TYPES:
            conflicts = [item for item in existing if item.get("type") == "CNAME"]
        label = "%s %s" % (name, record_type)

        if conflicts and not overwrite:
            raise CloudflareError(
                "DNS record %s cannot be created: the zone already has %s for that name. Remove it, or set "
                "overwrite to replace it." % (label, ", ".join(
                    "a %s record pointing to %s" % (item.get("type"), item.get("content")) for item in conflicts)))
        # Several A or AAAA records may share a name (round robin): prefer the one with this content.
        current = next((item for item in same_type if same_content(record_type, item.get("content"), content)),
                       same_type[0] if same_type else None)
        if record_type == "CNAME" and len(same_type) > 1:
            raise CloudflareError("Zone contains %d CNAME records named %s; remove the extra ones." % (len(same_type), name))
        if current is not None and not same_content(record_type, current.get("content"), content) and not overwrite:
            raise CloudflareError(
                "DNS record %s already exists and points to '%s', not '%s'. It was not created by this run; set "
                "overwrite to take it over, or choose another hostname." % (label, current.get("content"), content))

        desired = {
            "name": name,
            "type": record_type,
            "content": content,
            "proxied": proxied,
            "ttl": ttl,
            "comment": comment,
        }
        if current is not None and not conflicts:
            before = record_view(current)
            wanted = dict(before)
            for key in MANAGED_FIELDS:
                if desired[key] is not None:
                    wanted[key] = desired[key]
            if same_content(record_type, before["content"], content):
                wanted["content"] = before["content"]
            if wanted == before:
                return Outcome("dns_record", label, "none", before=before, after=before, result=current)
            if self.check_mode:
                return Outcome("dns_record", label, "update", before=before, after=wanted, result=wanted)
            body = {
                "name": name, "type": record_type, "content": wanted["content"], "proxied": wanted["proxied"],
                "ttl": wanted["ttl"] or 1, "tags": current.get("tags") or [],
            }
            # PUT replaces the record: keep the fields of other record types (MX priority, SRV data).
            for key in ("priority", "data"):
                if current.get(key) is not None:
                    body[key] = current[key]
            # PUT replaces the record; a comment that is not sent is removed.
            if wanted["comment"] is not None:
                body["comment"] = wanted["comment"]
            updated = self.api.result("PUT", "%s/%s" % (self.base, current["id"]), "update DNS record %s" % label,
                                      body=body)
            return Outcome("dns_record", label, "update", before=before, after=record_view(updated), result=updated)

        after = record_view(dict(desired, ttl=ttl or 1, proxied=bool(proxied)))
        before = None
        if conflicts:
            before = {"replaced": [record_view(item) for item in conflicts]}
        if self.check_mode:
            return Outcome("dns_record", label, "create", before=before, after=after, result=after)
        for item in conflicts:
            self.delete(item, "%s %s" % (name, item.get("type")))
        body = {"name": name, "type": record_type, "content": content, "proxied": bool(proxied), "ttl": ttl or 1}
        if comment is not None:
            body["comment"] = comment
        try:
            created = self.api.result("POST", self.base, "create DNS record %s" % label, body=body,
                                      retry_writes=False)
        except CloudflareError as exc:
            # A 5xx or network error leaves the outcome unknown. A conflict (81053, 81054, 81058)
            # after the lookup above means that another run created a record of this name since.
            # Either way, adopt a record of this type that has the same content.
            conflict = any(exc.has_code(code) for code in RACE_CODES)
            if exc.status is not None and exc.status < 500 and not conflict:
                raise
            created = next((item for item in self.records_named(name) if item.get("type") == record_type
                            and item.get("content", "").rstrip(".").lower() == content.rstrip(".").lower()), None)
            if created is None:
                raise
        return Outcome("dns_record", label, "create", before=before, after=record_view(created), result=created)

    def ensure_absent(self, name, record_type, content=None, existing=None):
        """Delete the record; with ``content`` given, only a record holding that content."""
        name = fqdn(name, self.zone["name"])
        record_type = record_type.upper()
        label = "%s %s" % (name, record_type)
        if existing is None:
            existing = self.records_named(name)
        matches = [item for item in existing if item.get("type") == record_type and (
            content is None or item.get("content", "").rstrip(".").lower() == content.rstrip(".").lower())]
        if not matches:
            return Outcome("dns_record", label, "none")
        if not self.check_mode:
            for item in matches:
                self.delete(item, label)
        return Outcome("dns_record", label, "delete", before=record_view(matches[0]), after=None,
                       result=record_view(matches[0]))

    def delete(self, record, label):
        try:
            self.api.request("DELETE", "%s/%s" % (self.base, record["id"]), "delete DNS record %s" % label)
        except CloudflareError as exc:
            if exc.status != 404:
                raise
