# -*- coding: utf-8 -*-
# Copyright (c) homelab.edge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Outcome records and diff helpers shared by the resource managers."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import copy
import json

REDACTED = "<redacted>"
SECRET_KEYS = frozenset(["client_secret", "token", "tunnel_secret", "secret", "api_token"])


class Outcome:
    """What a resource manager did, or would do in check mode, to one object.

    ``action`` is one of ``create``, ``update``, ``delete`` or ``none``. ``before`` and ``after``
    are the normalized views used for diffs; they never hold secrets. ``result`` is the
    object as the module returns it. ``secrets`` contains values obtained by this run (a new
    client secret, a tunnel token) that the caller may return under ``no_log``.
    """

    def __init__(self, kind, name, action="none", before=None, after=None, result=None, secrets=None,
                 notes=None):
        self.kind = kind
        self.name = name
        self.action = action
        self.before = before
        self.after = after
        self.result = result if result is not None else after
        self.secrets = secrets or {}
        self.notes = notes or []

    @property
    def changed(self):
        return self.action != "none"

    @property
    def label(self):
        return "%s %s" % (self.kind, self.name)

    def summary(self):
        return {"kind": self.kind, "name": self.name, "action": self.action}


def redact(value):
    """Return a deep copy of ``value`` with every secret-looking key replaced."""
    if isinstance(value, dict):
        return dict((key, REDACTED if key in SECRET_KEYS and item else redact(item)) for key, item in value.items())
    if isinstance(value, list):
        return [redact(item) for item in value]
    return copy.deepcopy(value)


def canonical(value):
    """Return a stable text form of a JSON value, for order-insensitive comparisons."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def diff_of(outcomes):
    """Build an Ansible ``diff`` dict from outcomes, keeping only the objects that change."""
    before = {}
    after = {}
    for outcome in outcomes:
        if not outcome.changed:
            continue
        if outcome.before is not None:
            before[outcome.label] = redact(outcome.before)
        if outcome.after is not None:
            after[outcome.label] = redact(outcome.after)
    return {"before": before, "after": after}


def subset_differs(current, desired):
    """Tell whether any key given in ``desired`` has another value in ``current``.

    Keys whose desired value is None are left out of the comparison, so options the user did
    not set never cause a change.
    """
    for key, value in desired.items():
        if value is None:
            continue
        if isinstance(value, (dict, list)):
            if canonical(value) != canonical(current.get(key)):
                return True
        elif current.get(key) != value:
            return True
    return False
