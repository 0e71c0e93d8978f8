# Copyright (c) homelab.edge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests of the ingress rule library: validation, normalization, merge and the config.yml form."""

import copy
import os
import sys

import pytest

REPO_ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "..", ".."))
sys.path.insert(0, os.path.join(REPO_ROOT, ".collections"))

from ansible_collections.homelab.edge.plugins.module_utils.ingress import (  # noqa: E402
    DEFAULT_CATCH_ALL,
    IngressError,
    find_shadowed_rules,
    format_go_duration,
    ingress_equal,
    merge_ingress,
    parse_go_duration,
    to_local_config,
    validate_ingress,
)

CATCH_ALL = {"service": "http_status:404"}


def rules(*specific):
    """Return the given rules followed by the usual catch-all."""
    return list(specific) + [dict(CATCH_ALL)]


# ---------------------------------------------------------------------------
# Valid rule lists: (case id, input rules, expected wire form)

GOOD_CASES = [
    (
        "catch-all only",
        [{"service": "http_status:404"}],
        [{"service": "http_status:404"}],
    ),
    (
        "plain http origin",
        rules({"hostname": "app.example.com", "service": "http://127.0.0.1:8080"}),
        rules({"hostname": "app.example.com", "service": "http://127.0.0.1:8080"}),
    ),
    (
        "ollama preset",
        rules({"hostname": "chat.example.com", "origin": "ollama"}),
        rules({
            "hostname": "chat.example.com",
            "service": "http://127.0.0.1:11434",
            "originRequest": {"httpHostHeader": "localhost:11434"},
        }),
    ),
    (
        "ollama preset with port",
        rules({"hostname": "chat.example.com", "origin": {"preset": "ollama", "port": 11435}}),
        rules({
            "hostname": "chat.example.com",
            "service": "http://127.0.0.1:11435",
            "originRequest": {"httpHostHeader": "localhost:11435"},
        }),
    ),
    (
        "ollama preset with user override",
        rules({
            "hostname": "chat.example.com",
            "origin": "ollama",
            "origin_request": {"http_host_header": "ollama.internal", "connect_timeout": "1m"},
        }),
        rules({
            "hostname": "chat.example.com",
            "service": "http://127.0.0.1:11434",
            "originRequest": {"connectTimeout": 60, "httpHostHeader": "ollama.internal"},
        }),
    ),
    (
        "snake case keys become camel case",
        rules({
            "hostname": "app.example.com",
            "service": "https://127.0.0.1:8443",
            "origin_request": {
                "no_tls_verify": True,
                "origin_server_name": "app.internal",
                "keep_alive_connections": 10,
                "match_sni_to_host": True,
            },
        }),
        rules({
            "hostname": "app.example.com",
            "service": "https://127.0.0.1:8443",
            "originRequest": {
                "keepAliveConnections": 10,
                "originServerName": "app.internal",
                "matchSNItoHost": True,
                "noTLSVerify": True,
            },
        }),
    ),
    (
        "go durations become seconds",
        rules({
            "hostname": "app.example.com",
            "service": "http://127.0.0.1:8080",
            "originRequest": {"connectTimeout": "1m30s", "tlsTimeout": 5, "keepAliveTimeout": "2h", "tcpKeepAlive": "15s"},
        }),
        rules({
            "hostname": "app.example.com",
            "service": "http://127.0.0.1:8080",
            "originRequest": {"connectTimeout": 90, "tlsTimeout": 5, "tcpKeepAlive": 15, "keepAliveTimeout": 7200},
        }),
    ),
    (
        "default values dropped",
        rules({
            "hostname": "app.example.com",
            "path": "",
            "service": "http://127.0.0.1:8080",
            "originRequest": {
                "connectTimeout": "30s",
                "noTLSVerify": False,
                "httpHostHeader": "",
                "keepAliveConnections": 100,
                "proxyAddress": "127.0.0.1",
                "access": {"required": False},
                "ipRules": [],
            },
        }),
        rules({"hostname": "app.example.com", "service": "http://127.0.0.1:8080"}),
    ),
    (
        "wildcard first label and path",
        rules({"hostname": "*.example.com", "path": "^/api/(chat|tags)$", "service": "http://127.0.0.1:8080"}),
        rules({"hostname": "*.example.com", "path": "^/api/(chat|tags)$", "service": "http://127.0.0.1:8080"}),
    ),
    (
        "star catch-all loses hostname",
        rules({"hostname": "app.example.com", "service": "http://127.0.0.1:8080"})[:1] + [
            {"hostname": "*", "service": "http_status:503"}
        ],
        [
            {"hostname": "app.example.com", "service": "http://127.0.0.1:8080"},
            {"service": "http_status:503"},
        ],
    ),
    (
        "path only rule",
        rules({"path": "^/health$", "service": "hello_world"}),
        rules({"path": "^/health$", "service": "hello_world"}),
    ),
    (
        "same hostname with two paths",
        rules(
            {"hostname": "app.example.com", "path": "^/api/", "service": "http://127.0.0.1:8081"},
            {"hostname": "app.example.com", "service": "http://127.0.0.1:8080"},
        ),
        rules(
            {"hostname": "app.example.com", "path": "^/api/", "service": "http://127.0.0.1:8081"},
            {"hostname": "app.example.com", "service": "http://127.0.0.1:8080"},
        ),
    ),
    (
        "tcp ssh rdp smb unix services",
        rules(
            {"hostname": "a.example.com", "service": "tcp://127.0.0.1:5432"},
            {"hostname": "b.example.com", "service": "ssh://127.0.0.1:22"},
            {"hostname": "c.example.com", "service": "rdp://10.0.0.5:3389"},
            {"hostname": "d.example.com", "service": "smb://nas.lan:445"},
            {"hostname": "e.example.com", "service": "unix:/run/app.sock"},
            {"hostname": "f.example.com", "service": "unix+tls:/run/tls.sock"},
            {"hostname": "g.example.com", "service": "bastion"},
            {"hostname": "h.example.com", "service": "wss://127.0.0.1:9000"},
        ),
        rules(
            {"hostname": "a.example.com", "service": "tcp://127.0.0.1:5432"},
            {"hostname": "b.example.com", "service": "ssh://127.0.0.1:22"},
            {"hostname": "c.example.com", "service": "rdp://10.0.0.5:3389"},
            {"hostname": "d.example.com", "service": "smb://nas.lan:445"},
            {"hostname": "e.example.com", "service": "unix:/run/app.sock"},
            {"hostname": "f.example.com", "service": "unix+tls:/run/tls.sock"},
            {"hostname": "g.example.com", "service": "bastion"},
            {"hostname": "h.example.com", "service": "wss://127.0.0.1:9000"},
        ),
    ),
    (
        "access with team name",
        rules({
            "hostname": "app.example.com",
            "service": "http://127.0.0.1:8080",
            "originRequest": {"access": {"required": True, "team_name": "home", "aud_tag": ["aud1"]}},
        }),
        rules({
            "hostname": "app.example.com",
            "service": "http://127.0.0.1:8080",
            "originRequest": {"access": {"required": True, "teamName": "home", "audTag": ["aud1"]}},
        }),
    ),
    (
        "ip rules and proxy settings",
        rules({
            "hostname": "app.example.com",
            "service": "http://127.0.0.1:8080",
            "originRequest": {
                "proxyType": "socks",
                "proxyPort": 1080,
                "ipRules": [{"prefix": "10.0.0.0/8", "ports": [80, 443], "allow": True}],
            },
        }),
        rules({
            "hostname": "app.example.com",
            "service": "http://127.0.0.1:8080",
            "originRequest": {
                "proxyPort": 1080,
                "proxyType": "socks",
                "ipRules": [{"prefix": "10.0.0.0/8", "ports": [80, 443], "allow": True}],
            },
        }),
    ),
    (
        "RE2 syntax accepted",
        rules({"hostname": "app.example.com", "path": r"^/(?i)api/\pL+\z", "service": "http://127.0.0.1:8080"}),
        rules({"hostname": "app.example.com", "path": r"^/(?i)api/\pL+\z", "service": "http://127.0.0.1:8080"}),
    ),
]


@pytest.mark.parametrize("rule_list, expected", [case[1:] for case in GOOD_CASES], ids=[case[0] for case in GOOD_CASES])
def test_validate_good_cases(rule_list, expected):
    original = copy.deepcopy(rule_list)

    assert validate_ingress(rule_list) == expected
    assert rule_list == original, "validate_ingress must not change its input"


# ---------------------------------------------------------------------------
# Invalid rule lists: (case id, input rules, rule number or None, substrings of the message)

BAD_CASES = [
    (
        "empty list",
        [],
        None,
        ["empty", "catch-all"],
    ),
    (
        "last rule not catch-all",
        [{"hostname": "chat.example.com", "service": "http://127.0.0.1:11434"}],
        1,
        ["last ingress rule must match all URLs", "should not have a hostname or path filter", "http_status:404"],
    ),
    (
        "last rule has only a path",
        [{"path": "^/api", "service": "http://127.0.0.1:8080"}],
        1,
        ["last ingress rule must match all URLs"],
    ),
    (
        "catch-all before last",
        [{"service": "http_status:404"}, {"hostname": "a.example.com", "service": "http://127.0.0.1:1"}, CATCH_ALL],
        1,
        ["Rule #1 is matching the hostname ''", "will match every hostname", "never be triggered", "rules #2 to #3"],
    ),
    (
        "star catch-all before last",
        [{"hostname": "*", "service": "http_status:404"}, dict(CATCH_ALL)],
        1,
        ["Rule #1 is matching the hostname '*'", "(rule #2)"],
    ),
    (
        "hostname with port",
        rules({"hostname": "chat.example.com:443", "service": "http://127.0.0.1:1"}),
        1,
        ["hostname cannot contain a port", "'chat.example.com:443'", "':443'"],
    ),
    (
        "hostname with scheme",
        rules({"hostname": "https://chat.example.com", "service": "http://127.0.0.1:1"}),
        1,
        ["contains a scheme", "'chat.example.com'"],
    ),
    (
        "hostname with path",
        rules({"hostname": "chat.example.com/api", "service": "http://127.0.0.1:1"}),
        1,
        ["contains a path", "hostname: 'chat.example.com'", "path: '^/api'"],
    ),
    (
        "wildcard in middle label",
        rules({"hostname": "chat.*.example.com", "service": "http://127.0.0.1:1"}),
        1,
        ["at most one wildcard", "only as the whole first label", "*.example.com"],
    ),
    (
        "two wildcards",
        rules({"hostname": "*.*.example.com", "service": "http://127.0.0.1:1"}),
        1,
        ["at most one wildcard"],
    ),
    (
        "wildcard inside first label",
        rules({"hostname": "*chat.example.com", "service": "http://127.0.0.1:1"}),
        1,
        ["only as the whole first label"],
    ),
    (
        "service without scheme",
        rules({"hostname": "chat.example.com", "service": "localhost:11434"}),
        1,
        ["'localhost:11434' is an invalid address", "scheme and a hostname", "http://localhost:11434"],
    ),
    (
        "service without hostname",
        rules({"hostname": "chat.example.com", "service": "http://:8080"}),
        1,
        ["'http://:8080' is an invalid address", "scheme and a hostname"],
    ),
    (
        "service with path",
        rules({"hostname": "chat.example.com", "service": "http://127.0.0.1:11434/api"}),
        1,
        ["don't support proxying to a different path", "service: http://127.0.0.1:11434"],
    ),
    (
        "service with trailing slash",
        rules({"hostname": "chat.example.com", "service": "http://127.0.0.1:11434/"}),
        1,
        ["don't support proxying to a different path"],
    ),
    (
        "service with bad port",
        rules({"hostname": "chat.example.com", "service": "http://127.0.0.1:99999"}),
        1,
        ["invalid port", "1 to 65535"],
    ),
    (
        "service with unsupported scheme",
        rules({"hostname": "chat.example.com", "service": "ftp://127.0.0.1:21"}),
        1,
        ["unsupported scheme 'ftp'", "tcp://"],
    ),
    (
        "missing service",
        rules({"hostname": "chat.example.com"}),
        1,
        ["has no service", "origin"],
    ),
    (
        "http status above 599",
        rules({"hostname": "a.example.com", "service": "http://127.0.0.1:1"})[:1] + [{"service": "http_status:1000"}],
        2,
        ["invalid HTTP status code: 1000", "100 to 599"],
    ),
    (
        "http status not a number",
        [{"service": "http_status:abc"}],
        1,
        ["invalid HTTP status code: abc"],
    ),
    (
        "http status with non-ASCII digits",
        [{"service": u"http_status:\u0664\u0660\u0664"}],
        1,
        ["invalid HTTP status code"],
    ),
    (
        "unix without socket path",
        rules({"hostname": "a.example.com", "service": "unix:"}),
        1,
        ["no socket path"],
    ),
    (
        "invalid path regex",
        rules({"hostname": "a.example.com", "path": "^/api/(", "service": "http://127.0.0.1:1"}),
        1,
        ["Rule #1 has an invalid regex", "'^/api/('"],
    ),
    (
        "lookahead rejected as RE2 does",
        rules({"hostname": "a.example.com", "path": "^/(?!admin)", "service": "http://127.0.0.1:1"}),
        1,
        ["invalid regex", "lookahead"],
    ),
    (
        "backreference rejected as RE2 does",
        rules({"hostname": "a.example.com", "path": r"^/(a)\1", "service": "http://127.0.0.1:1"}),
        1,
        ["invalid regex", "backreferences"],
    ),
    (
        "nested repetition rejected as RE2 does",
        rules({"hostname": "a.example.com", "path": "^/a*+", "service": "http://127.0.0.1:1"}),
        1,
        ["invalid regex", "nested repetition"],
    ),
    (
        "mistyped originRequest key",
        rules({"hostname": "a.example.com", "service": "http://127.0.0.1:1", "originRequest": {"httpHostheader": "x"}}),
        1,
        ["unknown key 'httpHostheader'", "did you mean 'httpHostHeader'", "case-sensitive"],
    ),
    (
        "mistyped rule key",
        rules({"hostname": "a.example.com", "service": "http://127.0.0.1:1", "originrequest": {}}),
        1,
        ["unknown key 'originrequest'", "did you mean 'originRequest'"],
    ),
    (
        "unrelated unknown key lists supported keys",
        rules({"hostname": "a.example.com", "service": "http://127.0.0.1:1", "originRequest": {"zzz": 1}}),
        1,
        ["unknown key 'zzz'", "supported keys are", "httpHostHeader", "snake_case spelling"],
    ),
    (
        "camel and snake for the same key",
        rules({
            "hostname": "a.example.com",
            "service": "http://127.0.0.1:1",
            "originRequest": {"connectTimeout": 10, "connect_timeout": 20},
        }),
        1,
        ["sets 'connectTimeout' twice"],
    ),
    (
        "duration string without unit",
        rules({"hostname": "a.example.com", "service": "http://127.0.0.1:1", "originRequest": {"connectTimeout": "30"}}),
        1,
        ["invalid duration '30'", "30s", "without quotes"],
    ),
    (
        "duration with fraction of a second",
        rules({"hostname": "a.example.com", "service": "http://127.0.0.1:1", "originRequest": {"tlsTimeout": "1500ms"}}),
        1,
        ["'1500ms'", "whole seconds", "2s"],
    ),
    (
        "negative duration",
        rules({"hostname": "a.example.com", "service": "http://127.0.0.1:1", "originRequest": {"tlsTimeout": -5}}),
        1,
        ["cannot be negative"],
    ),
    (
        "float duration",
        rules({"hostname": "a.example.com", "service": "http://127.0.0.1:1", "originRequest": {"tlsTimeout": 30.0}}),
        1,
        ["invalid value 30.0", "integer seconds"],
    ),
    (
        "quoted boolean",
        rules({"hostname": "a.example.com", "service": "http://127.0.0.1:1", "originRequest": {"noTLSVerify": "true"}}),
        1,
        ["originRequest.noTLSVerify is 'true'", "without quotes"],
    ),
    (
        "boolean where integer expected",
        rules({"hostname": "a.example.com", "service": "http://127.0.0.1:1", "originRequest": {"keepAliveConnections": True}}),
        1,
        ["keepAliveConnections is True"],
    ),
    (
        "access required without team name",
        rules({
            "hostname": "a.example.com",
            "service": "http://127.0.0.1:1",
            "originRequest": {"access": {"required": True, "audTag": ["aud1"]}},
        }),
        1,
        ["no teamName", "['aud1']", "team name"],
    ),
    (
        "access audTag as string",
        rules({
            "hostname": "a.example.com",
            "service": "http://127.0.0.1:1",
            "originRequest": {"access": {"required": True, "teamName": "home", "audTag": "aud1"}},
        }),
        1,
        ["audTag must be a list", "'aud1'"],
    ),
    (
        "invalid ip rule prefix",
        rules({
            "hostname": "a.example.com",
            "service": "http://127.0.0.1:1",
            "originRequest": {"ipRules": [{"prefix": "10.0.0.300/8", "allow": True}]},
        }),
        1,
        ["invalid prefix '10.0.0.300/8'", "CIDR"],
    ),
    (
        "invalid proxy type",
        rules({"hostname": "a.example.com", "service": "http://127.0.0.1:1", "originRequest": {"proxyType": "http"}}),
        1,
        ["proxyType is 'http'", "socks"],
    ),
    (
        "duplicate hostname and path",
        rules(
            {"hostname": "a.example.com", "service": "http://127.0.0.1:1"},
            {"hostname": "b.example.com", "service": "http://127.0.0.1:2"},
            {"hostname": "a.example.com", "service": "http://127.0.0.1:3"},
        ),
        3,
        ["rule #3 repeats hostname 'a.example.com' of rule #1"],
    ),
    (
        "service and origin together",
        rules({"hostname": "a.example.com", "service": "http://127.0.0.1:1", "origin": "ollama"}),
        1,
        ["both service", "keep only one"],
    ),
    (
        "unknown origin preset",
        rules({"hostname": "a.example.com", "origin": "jupyter"}),
        1,
        ["origin preset 'jupyter' is not known", "ollama"],
    ),
    (
        "origin preset with bad port",
        rules({"hostname": "a.example.com", "origin": {"preset": "ollama", "port": 0}}),
        1,
        ["origin port 0 is invalid"],
    ),
    (
        "origin preset with unknown key",
        rules({"hostname": "a.example.com", "origin": {"preset": "ollama", "prot": 11435}}),
        1,
        ["unknown key 'prot'", "did you mean 'port'?"],
    ),
    (
        "rule that is not a mapping",
        ["a.example.com", dict(CATCH_ALL)],
        1,
        ["must be a mapping"],
    ),
    (
        "error numbers the second rule",
        rules(
            {"hostname": "a.example.com", "service": "http://127.0.0.1:1"},
            {"hostname": "b.example.com:8080", "service": "http://127.0.0.1:2"},
        ),
        2,
        ["Ingress rule #2", "'b.example.com:8080'"],
    ),
]


@pytest.mark.parametrize(
    "rule_list, rule_number, fragments", [case[1:] for case in BAD_CASES], ids=[case[0] for case in BAD_CASES]
)
def test_validate_bad_cases(rule_list, rule_number, fragments):
    with pytest.raises(IngressError) as caught:
        validate_ingress(rule_list)

    message = str(caught.value)
    assert caught.value.rule_number == rule_number, message
    for fragment in fragments:
        assert fragment.lower() in message.lower(), "%r not in %r" % (fragment, message)


def test_ingress_error_is_value_error():
    assert issubclass(IngressError, ValueError)


def test_validate_without_catch_all():
    specific = [{"hostname": "a.example.com", "service": "http://127.0.0.1:1"}]

    assert validate_ingress(specific, require_catch_all=False) == specific
    assert validate_ingress([], require_catch_all=False) == []


def test_validate_catch_all_still_last_when_optional():
    rule_list = [dict(CATCH_ALL), {"hostname": "a.example.com", "service": "http://127.0.0.1:1"}]

    with pytest.raises(IngressError) as caught:
        validate_ingress(rule_list, require_catch_all=False)
    assert caught.value.rule_number == 1


def test_validate_keeps_defaults_when_asked():
    rule_list = rules({
        "hostname": "a.example.com",
        "service": "http://127.0.0.1:1",
        "originRequest": {"connectTimeout": "30s", "noTLSVerify": False},
    })

    result = validate_ingress(rule_list, drop_defaults=False)

    assert result[0]["originRequest"] == {"connectTimeout": 30, "noTLSVerify": False}
    assert result[1]["originRequest"] == {}


def test_validate_rejects_non_list():
    with pytest.raises(IngressError) as caught:
        validate_ingress({"hostname": "a.example.com"})
    assert "must be a list" in str(caught.value)


# ---------------------------------------------------------------------------
# Go durations


@pytest.mark.parametrize(
    "text, nanoseconds",
    [
        ("0", 0),
        ("30s", 30 * 10**9),
        ("1m30s", 90 * 10**9),
        ("1.5h", 5400 * 10**9),
        ("1h0m0s", 3600 * 10**9),
        ("250ms", 250 * 10**6),
        ("-2s", -2 * 10**9),
        ("1us", 1000),
        (u"1\u00b5s", 1000),
    ],
)
def test_parse_go_duration(text, nanoseconds):
    assert parse_go_duration(text) == nanoseconds


@pytest.mark.parametrize("text", ["", "30", "s", "1x", "1m30", "1 s", "--1s", "."])
def test_parse_go_duration_rejects(text):
    with pytest.raises(ValueError):
        parse_go_duration(text)


@pytest.mark.parametrize(
    "seconds, text", [(0, "0s"), (30, "30s"), (90, "1m30s"), (600, "10m0s"), (3600, "1h0m0s"), (3725, "1h2m5s")]
)
def test_format_go_duration(seconds, text):
    assert format_go_duration(seconds) == text
    assert parse_go_duration(text) == seconds * 10**9


# ---------------------------------------------------------------------------
# Local config.yml form


def test_local_config_uses_go_durations():
    rule_list = rules({
        "hostname": "chat.example.com",
        "origin": "ollama",
        "originRequest": {"connectTimeout": 90, "keepAliveTimeout": 3600, "noTLSVerify": True},
    })

    local = to_local_config(rule_list)

    assert local[0] == {
        "hostname": "chat.example.com",
        "service": "http://127.0.0.1:11434",
        "originRequest": {
            "connectTimeout": "1m30s",
            "keepAliveTimeout": "1h0m0s",
            "httpHostHeader": "localhost:11434",
            "noTLSVerify": True,
        },
    }
    assert local[1] == CATCH_ALL


def test_round_trip_remote_local_remote():
    remote = validate_ingress(rules(
        {"hostname": "chat.example.com", "origin": "ollama", "originRequest": {"tlsTimeout": "45s"}},
        {"hostname": "*.example.com", "path": "^/api/", "service": "https://127.0.0.1:8443",
         "originRequest": {"tcpKeepAlive": 75, "access": {"required": True, "teamName": "home", "audTag": ["a"]}}},
    ))

    local = to_local_config(remote)
    back = validate_ingress(local)

    assert local[0]["originRequest"]["tlsTimeout"] == "45s"
    assert local[1]["originRequest"]["tcpKeepAlive"] == "1m15s"
    assert back == remote
    assert ingress_equal(local, remote)


def test_local_config_rejects_invalid_rules():
    with pytest.raises(IngressError):
        to_local_config([{"hostname": "a.example.com", "service": "http://127.0.0.1:1"}])


# ---------------------------------------------------------------------------
# Comparison


def test_ingress_equal_across_spellings():
    user = rules({"hostname": "chat.example.com", "origin": "ollama", "origin_request": {"connect_timeout": "10s"}})
    api = [
        {
            "hostname": "chat.example.com",
            "path": "",
            "service": "http://127.0.0.1:11434",
            "originRequest": {"httpHostHeader": "localhost:11434", "connectTimeout": 10, "noTLSVerify": False},
        },
        {"hostname": "", "service": "http_status:404", "originRequest": {}},
    ]

    assert ingress_equal(user, api)


def test_ingress_equal_detects_differences():
    first = rules({"hostname": "a.example.com", "service": "http://127.0.0.1:1"})
    other_service = rules({"hostname": "a.example.com", "service": "http://127.0.0.1:2"})
    other_order = [
        {"hostname": "b.example.com", "service": "http://127.0.0.1:1"},
        {"hostname": "a.example.com", "service": "http://127.0.0.1:1"},
        dict(CATCH_ALL),
    ]
    second_first = [other_order[1], other_order[0], dict(CATCH_ALL)]

    assert not ingress_equal(first, other_service)
    assert not ingress_equal(other_order, second_first)


def test_ingress_equal_keeps_unknown_api_keys():
    api = [{"service": "http_status:404", "originRequest": {"futureOption": 1}}]

    assert not ingress_equal(api, [dict(CATCH_ALL)])
    assert ingress_equal(api, copy.deepcopy(api))


# ---------------------------------------------------------------------------
# Merge

CURRENT = [
    {"hostname": "a.example.com", "service": "http://127.0.0.1:1"},
    {"hostname": "b.example.com", "path": "", "service": "http://127.0.0.1:2",
     "originRequest": {"connectTimeout": 30, "futureOption": "kept"}},
    {"hostname": "c.example.com", "service": "http://127.0.0.1:3"},
    {"service": "http_status:503"},
]


def changes_by_host(changes):
    return dict((change["hostname"], change["change"]) for change in changes)


def test_merge_keeps_order_and_positions():
    desired = [
        {"hostname": "new.example.com", "service": "http://127.0.0.1:9"},
        {"hostname": "b.example.com", "service": "http://127.0.0.1:22"},
    ]

    merged, changes = merge_ingress(CURRENT, desired, "merge")

    assert [rule.get("hostname", "") for rule in merged] == [
        "a.example.com", "b.example.com", "c.example.com", "new.example.com", ""
    ]
    assert merged[1] == {"hostname": "b.example.com", "service": "http://127.0.0.1:22"}
    assert merged[0] == CURRENT[0]
    assert merged[-1] == {"service": "http_status:503"}
    assert changes_by_host(changes) == {"new.example.com": "added", "b.example.com": "updated", "": "unchanged"}


def test_merge_reports_unchanged_rule():
    desired = [{"hostname": "a.example.com", "service": "http://127.0.0.1:1", "originRequest": {"noTLSVerify": False}}]

    merged, changes = merge_ingress(CURRENT, desired, "merge")

    assert changes_by_host(changes)["a.example.com"] == "unchanged"
    assert ingress_equal(merged, CURRENT)


def test_merge_keeps_unknown_keys_of_other_rules():
    merged, _changes = merge_ingress(CURRENT, [{"hostname": "a.example.com", "service": "http://127.0.0.1:7"}], "merge")

    assert merged[1]["originRequest"] == {"futureOption": "kept"}


def test_merge_replaces_catch_all_when_given():
    desired = [{"hostname": "a.example.com", "service": "http://127.0.0.1:1"}, {"service": "http_status:404"}]

    merged, changes = merge_ingress(CURRENT, desired, "merge")

    assert merged[-1] == {"service": "http_status:404"}
    assert len(merged) == 4
    assert changes_by_host(changes)[""] == "updated"


def test_merge_into_empty_adds_default_catch_all():
    merged, changes = merge_ingress([], [{"hostname": "chat.example.com", "origin": "ollama"}], "merge")

    assert merged == [
        {"hostname": "chat.example.com", "service": "http://127.0.0.1:11434",
         "originRequest": {"httpHostHeader": "localhost:11434"}},
        DEFAULT_CATCH_ALL,
    ]
    assert changes_by_host(changes) == {"chat.example.com": "added", "": "added"}


def test_merge_same_hostname_other_path_is_new_rule():
    desired = [{"hostname": "a.example.com", "path": "^/api/", "service": "http://127.0.0.1:8"}]

    merged, changes = merge_ingress(CURRENT, desired, "merge")

    assert [(rule.get("hostname", ""), rule.get("path", "")) for rule in merged] == [
        ("a.example.com", ""), ("b.example.com", ""), ("c.example.com", ""), ("a.example.com", "^/api/"), ("", "")
    ]
    assert changes[0] == {"change": "added", "hostname": "a.example.com", "path": "^/api/"}


def test_merge_exact_replaces_everything():
    desired = [{"hostname": "c.example.com", "service": "http://127.0.0.1:3"},
               {"hostname": "d.example.com", "service": "http://127.0.0.1:4"}]

    merged, changes = merge_ingress(CURRENT, desired, "exact")

    assert merged == desired + [DEFAULT_CATCH_ALL]
    assert changes_by_host(changes) == {
        "c.example.com": "unchanged",
        "d.example.com": "added",
        "a.example.com": "removed",
        "b.example.com": "removed",
        "": "updated",
    }


def test_merge_exact_with_own_catch_all():
    desired = [{"hostname": "c.example.com", "service": "http://127.0.0.1:3"}, {"service": "http_status:503"}]

    merged, changes = merge_ingress(CURRENT, desired, "exact")

    assert merged == desired
    assert changes_by_host(changes)[""] == "unchanged"


def test_merge_result_is_valid():
    merged, _changes = merge_ingress(CURRENT[:1] + CURRENT[2:], [{"hostname": "z.example.com", "origin": "ollama"}])

    assert validate_ingress(merged) == merged


def test_merge_validates_desired():
    with pytest.raises(IngressError) as caught:
        merge_ingress(CURRENT, [{"hostname": "a.example.com:80", "service": "http://127.0.0.1:1"}], "merge")
    assert "cannot contain a port" in str(caught.value)


def test_merge_rejects_unknown_mode():
    with pytest.raises(IngressError) as caught:
        merge_ingress(CURRENT, [], "replace")
    assert "'replace'" in str(caught.value)
    assert "exact, merge" in str(caught.value)


def test_merge_does_not_change_inputs():
    current = copy.deepcopy(CURRENT)
    desired = [{"hostname": "b.example.com", "service": "http://127.0.0.1:22"}]
    desired_copy = copy.deepcopy(desired)

    merged, _changes = merge_ingress(current, desired, "merge")
    merged[0]["service"] = "http://changed"

    assert current == CURRENT
    assert desired == desired_copy


# ---------------------------------------------------------------------------
# Shadowed rules


def test_shadowed_rule_after_wildcard():
    rule_list = validate_ingress(rules(
        {"hostname": "*.example.com", "service": "http://127.0.0.1:1"},
        {"hostname": "chat.example.com", "service": "http://127.0.0.1:2"},
        {"hostname": "example.com", "service": "http://127.0.0.1:3"},
    ))

    messages = find_shadowed_rules(rule_list)

    assert len(messages) == 1
    assert "rule #2" in messages[0]
    assert "rule #1" in messages[0]


def test_no_shadow_when_earlier_rule_has_path():
    rule_list = validate_ingress(rules(
        {"hostname": "chat.example.com", "path": "^/api/", "service": "http://127.0.0.1:1"},
        {"hostname": "chat.example.com", "service": "http://127.0.0.1:2"},
    ))

    assert find_shadowed_rules(rule_list) == []
