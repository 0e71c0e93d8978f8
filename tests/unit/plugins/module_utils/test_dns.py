# Copyright (c) homelab.edge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests of the DNS record manager, with a FakeAPI in place of Cloudflare."""

import pytest

from tests.unit.plugins.modules.utils import RECORDS, TUNNEL_ID, ZONE, FakeAPI, Sequence, http_error

from ansible_collections.homelab.edge.plugins.module_utils.cloudflare_api import CloudflareError
from ansible_collections.homelab.edge.plugins.module_utils.dns import DnsManager, fqdn, record_view

TARGET = TUNNEL_ID + ".cfargotunnel.com"
OTHER_TARGET = "1c8b4d2f-2e3a-4d6c-8b9f-7a8e9d0c1b2f.cfargotunnel.com"


def record(record_type="CNAME", content=TARGET, record_id="r1", name="chat.example.com", **extra):
    item = {"id": record_id, "name": name, "type": record_type, "content": content, "proxied": True, "ttl": 1,
            "comment": None, "tags": []}
    item.update(extra)
    return item


def created(body):
    return dict(body, id="new", tags=[])


# fqdn


@pytest.mark.parametrize("name, expected", [
    ("@", "example.com"),
    ("", "example.com"),
    ("chat", "chat.example.com"),
    ("Chat.Lab", "chat.lab.example.com"),
    ("chat.example.com", "chat.example.com"),
    ("CHAT.EXAMPLE.COM.", "chat.example.com"),
    ("example.com", "example.com"),
    ("example.com.", "example.com"),
])
def test_fqdn_forms(name, expected):
    assert fqdn(name, "example.com.") == expected


def test_fqdn_outside_zone_rejected():
    with pytest.raises(CloudflareError) as error:
        fqdn("chat.example.org.", "example.com")
    assert str(error.value) == "DNS record name 'chat.example.org.' is not inside zone 'example.com'."


def test_fqdn_similar_suffix_not_inside_zone():
    assert fqdn("chat.badexample.com", "example.com") == "chat.badexample.com.example.com"


@pytest.mark.parametrize("name", ["https://chat.example.com", "chat.example.com/api", "chat:8080"])
def test_fqdn_url_rejected(name):
    with pytest.raises(CloudflareError) as error:
        fqdn(name, "example.com")
    assert "Invalid DNS record name '%s'" % name in str(error.value)
    assert "without a scheme, port or path" in str(error.value)


# ensure_present


def test_create_sends_full_name():
    api = FakeAPI(routes={("POST", RECORDS): created})
    outcome = DnsManager(api, ZONE).ensure_present("chat", "cname", TARGET, proxied=True)
    assert outcome.action == "create"
    assert outcome.name == "chat.example.com CNAME"
    assert api.calls[0].params == {"name.exact": "chat.example.com"}
    [write] = api.writes()
    assert (write.method, write.path, write.retry_writes) == ("POST", RECORDS, False)
    assert write.body == {"name": "chat.example.com", "type": "CNAME", "content": TARGET, "proxied": True, "ttl": 1}
    assert outcome.after["id"] == "new"


def test_create_sends_comment_and_ttl():
    api = FakeAPI(routes={("POST", RECORDS): created})
    DnsManager(api, ZONE).ensure_present("@", "A", "203.0.113.7", ttl=300, comment="origin")
    assert api.writes()[0].body == {"name": "example.com", "type": "A", "content": "203.0.113.7", "proxied": False,
                                    "ttl": 300, "comment": "origin"}


def test_matching_record_left_alone():
    api = FakeAPI(lists={RECORDS: [record()]})
    outcome = DnsManager(api, ZONE).ensure_present("chat.example.com", "CNAME", TARGET, proxied=True)
    assert outcome.action == "none"
    assert api.writes() == []


def test_content_case_and_dot_ignored():
    api = FakeAPI(lists={RECORDS: [record()]})
    outcome = DnsManager(api, ZONE).ensure_present("chat", "CNAME", TARGET.upper() + ".", proxied=True)
    assert outcome.action == "none"


def test_unset_options_not_compared():
    api = FakeAPI(lists={RECORDS: [record(ttl=300, comment="kept")]})
    outcome = DnsManager(api, ZONE).ensure_present("chat", "CNAME", TARGET)
    assert outcome.action == "none"


def test_update_keeps_tags_and_comment():
    current = record(proxied=False, comment="owned by edge", tags=["team:lab"])
    api = FakeAPI(lists={RECORDS: [current]}, routes={("PUT", RECORDS + "/r1"): created})
    outcome = DnsManager(api, ZONE).ensure_present("chat", "CNAME", TARGET, proxied=True)
    assert outcome.action == "update"
    assert outcome.before["proxied"] is False
    [write] = api.writes()
    assert (write.method, write.path) == ("PUT", RECORDS + "/r1")
    assert write.body == {"name": "chat.example.com", "type": "CNAME", "content": TARGET, "proxied": True, "ttl": 1,
                          "tags": ["team:lab"], "comment": "owned by edge"}


def test_update_in_check_mode_sends_no_write():
    api = FakeAPI(lists={RECORDS: [record(ttl=300)]})
    outcome = DnsManager(api, ZONE, check_mode=True).ensure_present("chat", "CNAME", TARGET, ttl=120)
    assert outcome.action == "update"
    assert outcome.after["ttl"] == 120
    assert api.writes() == []


def test_create_in_check_mode_sends_no_write():
    api = FakeAPI()
    outcome = DnsManager(api, ZONE, check_mode=True).ensure_present("chat", "CNAME", TARGET, proxied=True)
    assert outcome.action == "create"
    assert outcome.after == {"id": None, "name": "chat.example.com", "type": "CNAME", "content": TARGET,
                             "proxied": True, "ttl": 1, "comment": None}
    assert api.writes() == []


def test_record_pointing_elsewhere_rejected():
    api = FakeAPI(lists={RECORDS: [record(content=OTHER_TARGET)]})
    with pytest.raises(CloudflareError) as error:
        DnsManager(api, ZONE).ensure_present("chat", "CNAME", TARGET)
    message = str(error.value)
    assert "DNS record chat.example.com CNAME already exists and points to '%s', not '%s'" % (
        OTHER_TARGET, TARGET) in message
    assert "set overwrite to take it over" in message
    assert api.writes() == []


def test_record_pointing_elsewhere_taken_over():
    api = FakeAPI(lists={RECORDS: [record(content=OTHER_TARGET)]}, routes={("PUT", RECORDS + "/r1"): created})
    outcome = DnsManager(api, ZONE).ensure_present("chat", "CNAME", TARGET, overwrite=True)
    assert outcome.action == "update"
    assert [(call.method, call.body["content"]) for call in api.writes()] == [("PUT", TARGET)]


@pytest.mark.parametrize("existing_type, record_type", [("A", "CNAME"), ("AAAA", "CNAME"), ("CNAME", "A")])
def test_conflicting_type_rejected_without_overwrite(existing_type, record_type):
    api = FakeAPI(lists={RECORDS: [record(record_type=existing_type, content="203.0.113.9")]})
    with pytest.raises(CloudflareError) as error:
        DnsManager(api, ZONE).ensure_present("chat", record_type, "198.51.100.1" if record_type == "A" else TARGET)
    message = str(error.value)
    assert "the zone already has a %s record pointing to 203.0.113.9 for that name" % existing_type in message
    assert "set overwrite to replace it" in message
    assert api.writes() == []


def test_conflicting_type_replaced_with_overwrite():
    api = FakeAPI(lists={RECORDS: [record(record_type="A", content="203.0.113.9", record_id="a1"),
                                   record(record_type="TXT", content="v=spf1", record_id="t1")]},
                  routes={("POST", RECORDS): created})
    outcome = DnsManager(api, ZONE).ensure_present("chat", "CNAME", TARGET, proxied=True, overwrite=True)
    assert outcome.action == "create"
    assert outcome.before == {"replaced": [record_view(record(record_type="A", content="203.0.113.9",
                                                              record_id="a1"))]}
    assert [(call.method, call.path) for call in api.writes()] == [("DELETE", RECORDS + "/a1"), ("POST", RECORDS)]


def test_conflict_overwrite_in_check_mode_sends_no_write():
    api = FakeAPI(lists={RECORDS: [record(record_type="A", content="203.0.113.9")]})
    outcome = DnsManager(api, ZONE, check_mode=True).ensure_present("chat", "CNAME", TARGET, overwrite=True)
    assert outcome.action == "create"
    assert api.writes() == []


def test_other_types_do_not_conflict():
    api = FakeAPI(lists={RECORDS: [record(record_type="TXT", content="hello")]}, routes={("POST", RECORDS): created})
    assert DnsManager(api, ZONE).ensure_present("chat", "CNAME", TARGET).action == "create"
    assert [call.method for call in api.writes()] == ["POST"]


def test_duplicate_cnames_rejected():
    api = FakeAPI(lists={RECORDS: [record(), record(record_id="r2")]})
    with pytest.raises(CloudflareError) as error:
        DnsManager(api, ZONE).ensure_present("chat", "CNAME", TARGET)
    assert "Zone contains 2 CNAME records named chat.example.com" in str(error.value)


def test_existing_records_skip_lookup():
    api = FakeAPI()
    outcome = DnsManager(api, ZONE).ensure_present("chat", "CNAME", TARGET, existing=[record()])
    assert outcome.action == "none"
    assert api.calls == []


def test_lost_create_response_finds_record():
    api = FakeAPI(lists={RECORDS: Sequence([], [record(record_type="TXT", content="x"), record()])},
                  routes={("POST", RECORDS): http_error(503)})
    outcome = DnsManager(api, ZONE).ensure_present("chat", "CNAME", TARGET)
    assert outcome.result["id"] == "r1"
    assert [call.method for call in api.calls] == ["GET", "POST", "GET"]


def test_rejected_create_raises():
    api = FakeAPI(routes={("POST", RECORDS): http_error(400, 9005, "Content for CNAME record is invalid")})
    with pytest.raises(CloudflareError):
        DnsManager(api, ZONE).ensure_present("chat", "CNAME", TARGET)
    assert [call.method for call in api.calls] == ["GET", "POST"]


def test_conflicting_create_adopts_same_content():
    # Error 81053 after an empty lookup: another run created the record in between.
    api = FakeAPI(lists={RECORDS: Sequence([], [record()])},
                  routes={("POST", RECORDS): http_error(400, 81053, "record already exists")})
    outcome = DnsManager(api, ZONE).ensure_present("chat", "CNAME", TARGET)
    assert outcome.result["id"] == "r1"
    assert [call.method for call in api.calls] == ["GET", "POST", "GET"]


def test_conflicting_create_other_content_raises():
    api = FakeAPI(lists={RECORDS: Sequence([], [record(content=OTHER_TARGET)])},
                  routes={("POST", RECORDS): http_error(400, 81053, "record already exists")})
    with pytest.raises(CloudflareError) as error:
        DnsManager(api, ZONE).ensure_present("chat", "CNAME", TARGET)
    assert error.value.has_code(81053)


def test_round_robin_matching_record_found():
    first = record(record_type="A", content="203.0.113.1", record_id="a1", proxied=False)
    second = record(record_type="A", content="203.0.113.2", record_id="a2", proxied=False)
    api = FakeAPI(lists={RECORDS: [first, second]})
    outcome = DnsManager(api, ZONE).ensure_present("chat", "A", "203.0.113.2")
    assert outcome.action == "none"
    assert api.writes() == []


def test_mx_update_keeps_priority():
    current = record(record_type="MX", content="mail.example.com", name="example.com", priority=10, ttl=3600)
    api = FakeAPI(lists={RECORDS: [current]}, routes={("PUT", RECORDS + "/r1"): created})
    DnsManager(api, ZONE).ensure_present("@", "MX", "mail.example.com", ttl=300)
    assert api.writes()[0].body.get("priority") == 10


# ensure_absent


def test_delete_every_matching_record():
    api = FakeAPI(lists={RECORDS: [record(record_type="A", content="203.0.113.1", record_id="a1"),
                                   record(record_type="A", content="203.0.113.2", record_id="a2"),
                                   record(record_type="TXT", content="keep", record_id="t1")]})
    outcome = DnsManager(api, ZONE).ensure_absent("chat", "a")
    assert outcome.action == "delete"
    assert outcome.before["id"] == "a1"
    assert [call.path for call in api.writes()] == [RECORDS + "/a1", RECORDS + "/a2"]


def test_delete_only_matching_content():
    api = FakeAPI(lists={RECORDS: [record(record_type="A", content="203.0.113.1", record_id="a1"),
                                   record(record_type="A", content="203.0.113.2", record_id="a2")]})
    DnsManager(api, ZONE).ensure_absent("chat", "A", content="203.0.113.2")
    assert [call.path for call in api.writes()] == [RECORDS + "/a2"]


def test_delete_other_content_is_noop():
    api = FakeAPI(lists={RECORDS: [record(content=OTHER_TARGET)]})
    assert DnsManager(api, ZONE).ensure_absent("chat", "CNAME", content=TARGET).action == "none"
    assert api.writes() == []


def test_delete_in_check_mode_sends_no_write():
    api = FakeAPI(lists={RECORDS: [record()]})
    assert DnsManager(api, ZONE, check_mode=True).ensure_absent("chat", "CNAME").action == "delete"
    assert api.writes() == []


def test_delete_tolerates_already_deleted():
    api = FakeAPI(lists={RECORDS: [record()]}, routes={("DELETE", RECORDS + "/r1"): http_error(404)})
    assert DnsManager(api, ZONE).ensure_absent("chat", "CNAME").action == "delete"


def test_delete_raises_other_errors():
    api = FakeAPI(lists={RECORDS: [record()]}, routes={("DELETE", RECORDS + "/r1"): http_error(403, 10000)})
    with pytest.raises(CloudflareError):
        DnsManager(api, ZONE).ensure_absent("chat", "CNAME")
