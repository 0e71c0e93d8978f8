# Copyright (c) homelab.edge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests of the outcome records and diff helpers shared by the resource managers."""

# Importing the test helpers puts the collection on sys.path.
import tests.unit.plugins.modules.utils  # noqa: F401  pylint: disable=unused-import

from ansible_collections.homelab.edge.plugins.module_utils.reconcile import (
    REDACTED,
    Outcome,
    canonical,
    diff_of,
    redact,
    subset_differs,
)


def test_outcome_changed_per_action():
    assert Outcome("tunnel", "home", "create").changed
    assert Outcome("tunnel", "home", "update").changed
    assert Outcome("tunnel", "home", "delete").changed
    assert not Outcome("tunnel", "home", "none").changed


def test_outcome_result_defaults_to_after():
    outcome = Outcome("tunnel", "home", "create", after={"id": "t"})
    assert outcome.result == {"id": "t"}
    assert Outcome("tunnel", "home", after={"id": "t"}, result={"id": "r"}).result == {"id": "r"}


def test_outcome_label_and_summary():
    outcome = Outcome("dns_record", "chat.example.com CNAME", "update")
    assert outcome.label == "dns_record chat.example.com CNAME"
    assert outcome.summary() == {"kind": "dns_record", "name": "chat.example.com CNAME", "action": "update"}
    assert outcome.secrets == {}
    assert outcome.notes == []


def test_redact_replaces_nested_secrets():
    value = {
        "name": "home",
        "tunnel_secret": "c2VjcmV0",
        "items": [{"client_secret": "abc", "client_id": "id.access"}, {"token": "eyJh"}],
        "config": {"api_token": "t", "secret": "s"},
    }
    redacted = redact(value)
    assert redacted == {
        "name": "home",
        "tunnel_secret": REDACTED,
        "items": [{"client_secret": REDACTED, "client_id": "id.access"}, {"token": REDACTED}],
        "config": {"api_token": REDACTED, "secret": REDACTED},
    }
    assert value["tunnel_secret"] == "c2VjcmV0"
    assert value["items"][0]["client_secret"] == "abc"


def test_redact_keeps_empty_secret_values():
    assert redact({"token": None, "secret": ""}) == {"token": None, "secret": ""}


def test_redact_returns_copy():
    value = {"list": [1, 2]}
    copied = redact(value)
    copied["list"].append(3)
    assert value == {"list": [1, 2]}


def test_canonical_ignores_key_order():
    assert canonical({"a": 1, "b": [1, {"d": 2, "c": 3}]}) == canonical({"b": [1, {"c": 3, "d": 2}], "a": 1})
    assert canonical([1, 2]) != canonical([2, 1])


def test_diff_of_keeps_changed_objects_only():
    outcomes = [
        Outcome("tunnel", "home", "none", before={"id": "t"}, after={"id": "t"}),
        Outcome("dns_record", "chat", "create", before=None, after={"name": "chat"}),
        Outcome("service_token", "ci", "delete", before={"id": "s", "client_secret": "x"}, after=None),
        Outcome("access_policy", "p", "update", before={"n": 1}, after={"n": 2}),
    ]
    diff = diff_of(outcomes)
    assert diff == {
        "before": {"service_token ci": {"id": "s", "client_secret": REDACTED}, "access_policy p": {"n": 1}},
        "after": {"dns_record chat": {"name": "chat"}, "access_policy p": {"n": 2}},
    }


def test_diff_of_no_outcomes():
    assert diff_of([]) == {"before": {}, "after": {}}


def test_subset_differs_ignores_unset_options():
    current = {"ttl": 1, "proxied": True, "comment": "x"}
    assert not subset_differs(current, {"ttl": None, "proxied": True})
    assert subset_differs(current, {"ttl": 300})
    assert subset_differs(current, {"missing": "value"})


def test_subset_differs_compares_structures_canonically():
    current = {"config": {"a": 1, "b": 2}, "rules": [1, 2]}
    assert not subset_differs(current, {"config": {"b": 2, "a": 1}})
    assert subset_differs(current, {"rules": [2, 1]})
