# -*- coding: utf-8 -*-
# Copyright (c) 2026, homelab.edge maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Validate, normalize, merge and render Cloudflare Tunnel ingress rules.

The checks follow cloudflared's own ingress validation (``cloudflared tunnel
ingress validate``), so that a bad rule fails before any API call or file
write. Rules are numbered from 1 in messages, as cloudflared numbers them.

Two output forms exist:

* the remote (wire) form that the Cloudflare API stores for tunnels with
  ``config_src: cloudflare``: camelCase ``originRequest`` keys and durations
  as integer seconds;
* the local form for ``config.yml``: the same keys, but durations as Go
  duration strings such as ``30s``, because cloudflared rejects an integer
  duration in YAML.

Standard library only, with Python 3.8 syntax, because module_utils may run
on managed hosts.
"""

import copy
import difflib
import ipaddress
import re
from fractions import Fraction
from urllib.parse import urlsplit


class IngressError(ValueError):
    """Invalid ingress rule or rule list.

    ``rule_number`` counts from 1 and is None for errors about the whole list.
    """

    def __init__(self, message, rule_number=None):
        super(IngressError, self).__init__(message)
        self.rule_number = rule_number


# Origin presets. Ollama bound to loopback responds 403 with an empty body to
# any Host header that is not local (since Ollama 0.1.29), so the preset
# rewrites Host. The service uses 127.0.0.1 because ``localhost`` may resolve
# to ::1, where Ollama does not listen by default.
OLLAMA_DEFAULT_PORT = 11434
ORIGIN_PRESETS = ("ollama",)
ORIGIN_PRESET_KEYS = ("preset", "port")

# The rule that a generated list ends with when the user gives no catch-all.
DEFAULT_CATCH_ALL = {"service": "http_status:404"}

MERGE_MODES = ("exact", "merge")

RULE_KEYS = ("hostname", "path", "service", "origin", "originRequest")
RULE_KEY_ALIASES = {"origin_request": "originRequest"}

# URL schemes that cloudflared proxies as HTTP, and the schemes it carries as
# TCP over WebSocket. cloudflared also accepts any other scheme with a host as
# TCP, but this library accepts only the schemes that the Cloudflare API
# documents, plus ws and wss.
HTTP_SCHEMES = ("http", "https", "ws", "wss")
TCP_SCHEMES = ("tcp", "ssh", "rdp", "smb")
UNIX_PREFIXES = ("unix:", "unix+tls:")
NAMED_SERVICES = ("hello_world", "hello-world", "bastion")
HTTP_STATUS_PREFIX = "http_status:"
# NOTE: cloudflared accepts http_status codes up to 999 and rejects 1000. This
# library is stricter and accepts only real HTTP status codes, 100 to 599.
HTTP_STATUS_MIN = 100
HTTP_STATUS_MAX = 599

SUPPORTED_SERVICES_TEXT = (
    "http://, https://, ws://, wss://, tcp://, ssh://, rdp://, smb:// URLs with a host, "
    "unix:/path, unix+tls:/path, http_status:NNN, hello_world or bastion"
)

# originRequest keys that cloudflared reads (config.OriginRequestConfig):
# camelCase name -> (snake_case alias, value kind, cloudflared default).
# A value equal to the default is dropped when normalizing with
# drop_defaults=True, because cloudflared behaves the same without it.
ORIGIN_REQUEST_SPEC = (
    ("connectTimeout", "connect_timeout", "duration", 30),
    ("tlsTimeout", "tls_timeout", "duration", 10),
    ("tcpKeepAlive", "tcp_keep_alive", "duration", 30),
    ("noHappyEyeballs", "no_happy_eyeballs", "bool", False),
    ("keepAliveConnections", "keep_alive_connections", "count", 100),
    ("keepAliveTimeout", "keep_alive_timeout", "duration", 90),
    ("httpHostHeader", "http_host_header", "string", ""),
    ("originServerName", "origin_server_name", "string", ""),
    ("matchSNItoHost", "match_sni_to_host", "bool", False),
    ("caPool", "ca_pool", "string", ""),
    ("noTLSVerify", "no_tls_verify", "bool", False),
    ("disableChunkedEncoding", "disable_chunked_encoding", "bool", False),
    ("bastionMode", "bastion_mode", "bool", False),
    ("proxyAddress", "proxy_address", "string", "127.0.0.1"),
    ("proxyPort", "proxy_port", "port", 0),
    ("proxyType", "proxy_type", "proxy_type", ""),
    ("ipRules", "ip_rules", "ip_rules", None),
    ("http2Origin", "http2_origin", "bool", False),
    ("access", "access", "access", None),
)
ORIGIN_REQUEST_KINDS = dict((name, kind) for name, _alias, kind, _default in ORIGIN_REQUEST_SPEC)
ORIGIN_REQUEST_DEFAULTS = dict((name, default) for name, _alias, _kind, default in ORIGIN_REQUEST_SPEC)
ORIGIN_REQUEST_ALIASES = dict((alias, name) for name, alias, _kind, _default in ORIGIN_REQUEST_SPEC)
# The Cloudflare Python SDK 5.9 spells matchSNItoHost this way in its models.
ORIGIN_REQUEST_ALIASES["match_sn_ito_host"] = "matchSNItoHost"
ORIGIN_REQUEST_ORDER = [name for name, _alias, _kind, _default in ORIGIN_REQUEST_SPEC]
DURATION_KEYS = [name for name, _alias, kind, _default in ORIGIN_REQUEST_SPEC if kind == "duration"]

ACCESS_KEYS = ("required", "teamName", "audTag", "environment")
ACCESS_ALIASES = {"team_name": "teamName", "aud_tag": "audTag"}
IP_RULE_KEYS = ("prefix", "ports", "allow")

PROXY_TYPES = ("", "socks")

# Go duration units in nanoseconds (time.ParseDuration).
_GO_DURATION_UNITS = {
    "ns": 1,
    "us": 1000,
    u"\u00b5s": 1000,
    u"\u03bcs": 1000,
    "ms": 1000000,
    "s": 1000000000,
    "m": 60 * 1000000000,
    "h": 3600 * 1000000000,
}
_GO_DURATION_PART = re.compile(u"([0-9]*(?:\\.[0-9]*)?)(ns|us|\u00b5s|\u03bcs|ms|s|m|h)")
_NANOSECONDS_PER_SECOND = 1000000000


# ---------------------------------------------------------------------------
# Small helpers


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def _is_str(value):
    return isinstance(value, str)


def _is_empty(value):
    return value is None or value == "" or value == [] or value == {}


def _suggest(name, candidates):
    """Return the candidate closest to a mistyped key, or None."""
    lowered = dict((candidate.lower(), candidate) for candidate in candidates)
    if str(name).lower() in lowered:
        return lowered[str(name).lower()]
    matches = difflib.get_close_matches(str(name), list(candidates), n=1, cutoff=0.6)
    if matches:
        return matches[0]
    return None


def _unknown_key_message(prefix, key, known, aliases, where):
    close = _suggest(key, list(known) + sorted(aliases))
    if close is None:
        fix = "Supported keys are: %s." % ", ".join(known)
        if aliases:
            fix += " The snake_case spelling of each key is accepted too."
    elif close.lower() == str(key).lower():
        fix = "Did you mean %r? Key names are case-sensitive." % close
    else:
        fix = "Did you mean %r?" % close
    return "%s: unknown key %r in %s. %s" % (prefix, key, where, fix)


def _rule_prefix(number, hostname=None):
    if hostname:
        return "Ingress rule #%d (hostname %r)" % (number, hostname)
    return "Ingress rule #%d" % number


# ---------------------------------------------------------------------------
# Durations


def parse_go_duration(text):
    """Parse a Go duration string such as ``1m30s`` into nanoseconds.

    Accepts what Go's time.ParseDuration accepts: an optional sign and a
    sequence of decimal numbers, each with a unit (ns, us, ms, s, m, h).
    Raises ValueError on any other text.
    """
    original = text
    sign = 1
    if text[:1] in ("+", "-"):
        sign = -1 if text[0] == "-" else 1
        text = text[1:]
    if text == "0":
        return 0
    if not text:
        raise ValueError("invalid duration %r" % original)

    total = Fraction(0)
    position = 0
    while position < len(text):
        match = _GO_DURATION_PART.match(text, position)
        if match is None or match.group(1) in ("", "."):
            raise ValueError("invalid duration %r" % original)
        total += Fraction(match.group(1)) * _GO_DURATION_UNITS[match.group(2)]
        position = match.end()
    return int(sign * total) if total.denominator == 1 else sign * total


def format_go_duration(seconds):
    """Format whole seconds the way Go's time.Duration.String does (``1m30s``)."""
    if seconds == 0:
        return "0s"
    hours, remainder = divmod(seconds, 3600)
    minutes, secs = divmod(remainder, 60)
    if hours:
        return "%dh%dm%ds" % (hours, minutes, secs)
    if minutes:
        return "%dm%ds" % (minutes, secs)
    return "%ds" % secs


def _duration_seconds(value, prefix, key):
    """Convert integer seconds or a Go duration string to integer seconds."""
    if _is_int(value):
        if value < 0:
            raise IngressError(
                "%s: originRequest.%s is %r, but a timeout cannot be negative. "
                "Use a value of 0 or more seconds." % (prefix, key, value)
            )
        return int(value)

    if not _is_str(value):
        raise IngressError(
            "%s: originRequest.%s has the invalid value %r (%s). Use integer seconds "
            "such as 30 or a Go duration string such as 30s or 1m30s."
            % (prefix, key, value, type(value).__name__)
        )

    try:
        nanoseconds = parse_go_duration(value.strip())
    except ValueError:
        fix = "a Go duration string such as 30s or 1m30s"
        if re.match(r"^[0-9]+$", value.strip()):
            fix = "%ss, or the integer %s without quotes" % (value.strip(), value.strip())
        raise IngressError(
            "%s: originRequest.%s has the invalid duration %r. Use %s."
            % (prefix, key, value, fix)
        )
    if nanoseconds < 0:
        raise IngressError(
            "%s: originRequest.%s is %r, but a timeout cannot be negative." % (prefix, key, value)
        )
    if nanoseconds % _NANOSECONDS_PER_SECOND:
        raise IngressError(
            "%s: originRequest.%s is %r, but the Cloudflare API stores durations as whole "
            "seconds. Round it to whole seconds, for example %ds."
            % (prefix, key, value, max(1, int(round(nanoseconds / _NANOSECONDS_PER_SECOND))))
        )
    return int(nanoseconds // _NANOSECONDS_PER_SECOND)


# ---------------------------------------------------------------------------
# originRequest


def _canonical_keys(mapping, aliases, known, prefix, where):
    """Rename snake_case aliases to camelCase and reject unknown or repeated keys."""
    result = {}
    for key, value in mapping.items():
        name = aliases.get(key, key)
        if name not in known:
            raise IngressError(_unknown_key_message(prefix, key, known, aliases, where))
        if name in result:
            raise IngressError(
                "%s: %s sets %r twice, once in camelCase and once in snake_case. Keep one of them."
                % (prefix, where, name)
            )
        result[name] = value
    return result


def _normalize_access(value, prefix, drop_defaults):
    if not isinstance(value, dict):
        raise IngressError(
            "%s: originRequest.access must be a mapping with required, teamName and audTag, not %r."
            % (prefix, value)
        )
    access = _canonical_keys(value, ACCESS_ALIASES, ACCESS_KEYS, prefix, "originRequest.access")
    result = {}

    required = access.get("required")
    if required is not None and not isinstance(required, bool):
        raise IngressError(
            "%s: originRequest.access.required is %r. Write true or false without quotes."
            % (prefix, required)
        )
    if required or (required is False and not drop_defaults):
        result["required"] = required

    for key in ("teamName", "environment"):
        text = access.get(key)
        if text is not None and not _is_str(text):
            raise IngressError(
                "%s: originRequest.access.%s must be a string, not %r." % (prefix, key, text)
            )
        if text:
            result[key] = text

    aud_tags = access.get("audTag")
    if aud_tags is not None:
        if not isinstance(aud_tags, list) or not all(_is_str(tag) for tag in aud_tags):
            raise IngressError(
                "%s: originRequest.access.audTag must be a list of Access application AUD tags, "
                "not %r. Write it as a YAML list, even for one tag." % (prefix, aud_tags)
            )
        if aud_tags:
            result["audTag"] = list(aud_tags)

    if result.get("required") and result.get("audTag") and not result.get("teamName"):
        raise IngressError(
            "%s: originRequest.access has required: true and audTag %r but no teamName. "
            "Set teamName to your Zero Trust team name (the <team> in <team>.cloudflareaccess.com)."
            % (prefix, result["audTag"])
        )
    return result


def _normalize_ip_rules(value, prefix):
    if not isinstance(value, list):
        raise IngressError(
            "%s: originRequest.ipRules must be a list of {prefix, ports, allow} mappings, not %r."
            % (prefix, value)
        )
    result = []
    for index, item in enumerate(value, start=1):
        where = "originRequest.ipRules item %d" % index
        if not isinstance(item, dict):
            raise IngressError("%s: %s must be a mapping with prefix, ports and allow, not %r." % (prefix, where, item))
        for key in item:
            if key not in IP_RULE_KEYS:
                raise IngressError(_unknown_key_message(prefix, key, IP_RULE_KEYS, {}, where))

        ip_rule = {}
        network = item.get("prefix")
        if network is not None:
            try:
                ipaddress.ip_network(str(network), strict=False)
            except ValueError:
                raise IngressError(
                    "%s: %s has the invalid prefix %r. Use a CIDR such as 10.0.0.0/8." % (prefix, where, network)
                )
            ip_rule["prefix"] = str(network)
        ports = item.get("ports")
        if ports is not None:
            if not isinstance(ports, list) or not all(_is_int(port) and 1 <= port <= 65535 for port in ports):
                raise IngressError(
                    "%s: %s has the invalid ports %r. Use a list of port numbers from 1 to 65535."
                    % (prefix, where, ports)
                )
            ip_rule["ports"] = [int(port) for port in ports]
        allow = item.get("allow")
        if allow is not None:
            if not isinstance(allow, bool):
                raise IngressError(
                    "%s: %s has allow %r. Write true or false without quotes." % (prefix, where, allow)
                )
            ip_rule["allow"] = allow
        result.append(ip_rule)
    return result


def _normalize_origin_value(key, value, prefix, drop_defaults):
    """Check one originRequest value against its kind and return the wire value."""
    kind = ORIGIN_REQUEST_KINDS[key]
    if kind == "duration":
        return _duration_seconds(value, prefix, key)
    if kind == "bool":
        if not isinstance(value, bool):
            raise IngressError(
                "%s: originRequest.%s is %r (%s). Write true or false without quotes."
                % (prefix, key, value, type(value).__name__)
            )
        return value
    if kind in ("count", "port"):
        upper = 65535 if kind == "port" else None
        if not _is_int(value) or value < 0 or (upper is not None and value > upper):
            limit = "from 0 to 65535" if upper else "of 0 or more"
            raise IngressError(
                "%s: originRequest.%s is %r. Use an integer %s." % (prefix, key, value, limit)
            )
        return int(value)
    if kind == "string":
        if not _is_str(value):
            raise IngressError(
                "%s: originRequest.%s is %r (%s). Use a string." % (prefix, key, value, type(value).__name__)
            )
        return str(value)
    if kind == "proxy_type":
        if value not in PROXY_TYPES:
            raise IngressError(
                "%s: originRequest.proxyType is %r. Use \"socks\" or leave it unset." % (prefix, value)
            )
        return value
    if kind == "ip_rules":
        return _normalize_ip_rules(value, prefix)
    return _normalize_access(value, prefix, drop_defaults)


def normalize_origin_request(value, prefix="originRequest", drop_defaults=True):
    """Validate an originRequest mapping and return it in wire form.

    Keys may be camelCase or snake_case. Durations become integer seconds.
    With ``drop_defaults``, values equal to cloudflared's defaults and empty
    values are left out, so two equivalent mappings compare equal.
    Raises IngressError naming ``prefix``, the key and the fix.
    """
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise IngressError("%s: originRequest must be a mapping, not %r." % (prefix, value))

    options = _canonical_keys(value, ORIGIN_REQUEST_ALIASES, ORIGIN_REQUEST_ORDER, prefix, "originRequest")
    result = {}
    for key in ORIGIN_REQUEST_ORDER:
        if key not in options or options[key] is None:
            continue
        normalized = _normalize_origin_value(key, options[key], prefix, drop_defaults)
        if drop_defaults and (_is_empty(normalized) or normalized == ORIGIN_REQUEST_DEFAULTS[key]):
            continue
        result[key] = normalized
    return result


# ---------------------------------------------------------------------------
# hostname, path, service


def _check_hostname(hostname, prefix):
    if not _is_str(hostname):
        raise IngressError("%s: hostname must be a string, not %r." % (prefix, hostname))
    if hostname == "":
        return

    if "://" in hostname:
        bare = hostname.split("://", 1)[1].split("/", 1)[0]
        raise IngressError(
            "%s: hostname %r contains a scheme. A hostname is a bare name such as %r, "
            "and the scheme of the origin belongs in service." % (prefix, hostname, bare)
        )
    if "/" in hostname:
        host, path = hostname.split("/", 1)
        raise IngressError(
            "%s: hostname %r contains a path. Set hostname: %r and path: %r (a regular expression) instead."
            % (prefix, hostname, host, "^/" + path)
        )
    if re.search(r"\s", hostname):
        raise IngressError("%s: hostname %r contains whitespace. Remove it." % (prefix, hostname))
    # Same test as cloudflared: anything that splits into host and port is rejected.
    port_match = re.match(r"^(\[[^\]]*\]|[^:]*):([^:]*)$", hostname)
    if port_match:
        raise IngressError(
            "%s: hostname %r contains a port, but a hostname cannot contain a port. "
            "Remove %r (cloudflared ignores the request port when matching)."
            % (prefix, hostname, ":" + port_match.group(2))
        )

    wildcards = hostname.count("*")
    first_label = hostname.split(".", 1)[0]
    if wildcards > 1 or (wildcards == 1 and first_label != "*"):
        raise IngressError(
            "%s: hostname %r is not a valid pattern. A hostname pattern can have at most one wildcard "
            "character (\"*\"), and only as the whole first label for subdomains, as in *.example.com."
            % (prefix, hostname)
        )


# Constructs of Python's re that Go's RE2 (used by cloudflared for path) rejects.
_RE2_REJECTED_GROUPS = (
    ("(?=", "lookahead"),
    ("(?!", "negative lookahead"),
    ("(?<=", "lookbehind"),
    ("(?<!", "negative lookbehind"),
    ("(?>", "atomic group"),
    ("(?P=", "named backreference"),
    ("(?#", "comment group"),
    ("(?(", "conditional group"),
)


def _translate_re2(pattern):
    """Rewrite an RE2 pattern into an equivalent-enough Python pattern, or explain why RE2 rejects it.

    Returns (python_pattern, None) or (None, reason). The translation only has
    to keep the pattern's validity, not its meaning: RE2-only classes such as
    \\pL or [[:alpha:]] become a plain class.
    """
    output = []
    index = 0
    length = len(pattern)
    in_class = False
    previous_was_quantifier = False
    while index < length:
        char = pattern[index]

        if char == "\\":
            if index + 1 >= length:
                return None, "trailing backslash at end of expression"
            following = pattern[index + 1]
            if following in "123456789" and not in_class:
                return None, "invalid escape sequence: backreferences such as \\%s are not supported" % following
            if following == "z":
                output.append("\\Z")
                index += 2
            elif following in "pP":
                end = index + 3
                if index + 2 < length and pattern[index + 2] == "{":
                    close = pattern.find("}", index + 2)
                    if close < 0:
                        return None, "invalid character class range: missing } after \\%s{" % following
                    end = close + 1
                output.append("\\w")
                index = end
            elif following == "Q":
                close = pattern.find("\\E", index + 2)
                literal = pattern[index + 2:] if close < 0 else pattern[index + 2:close]
                output.append(re.escape(literal))
                index = length if close < 0 else close + 2
            else:
                output.append(pattern[index:index + 2])
                index += 2
            previous_was_quantifier = False
            continue

        if in_class:
            if pattern.startswith("[:", index):
                close = pattern.find(":]", index + 2)
                if close > 0:
                    output.append("a")
                    index = close + 2
                    continue
            if char == "]":
                in_class = False
            output.append(char)
            index += 1
            continue

        if char == "[":
            in_class = True
            output.append(char)
            index += 1
            if index < length and pattern[index] == "^":
                output.append("^")
                index += 1
            if index < length and pattern[index] == "]":
                output.append("\\]")
                index += 1
            previous_was_quantifier = False
            continue

        if char == "(":
            for opener, name in _RE2_REJECTED_GROUPS:
                if pattern.startswith(opener, index):
                    return None, "invalid or unsupported Perl syntax: %s %r" % (name, opener)
            if pattern.startswith("(?<", index):
                output.append("(?P<")
                index += 3
                previous_was_quantifier = False
                continue
            flags = re.match(r"\(\?([imsU]*)(-[imsU]*)?(:|\))", pattern[index:])
            if flags:
                # RE2 allows flag groups anywhere and has the U flag. Python accepts
                # flag groups only at the start and has no U flag, so both are dropped.
                if flags.group(3) == ")":
                    group_text = ""
                else:
                    group_text = flags.group(0).replace("U", "")
                    if group_text == "(?-:":
                        group_text = "(?:"
                output.append(group_text)
                index += len(flags.group(0))
                previous_was_quantifier = False
                continue

        if char in "*+?":
            if previous_was_quantifier and char != "?":
                return None, "invalid nested repetition operator: %r" % pattern[index - 1:index + 1]
            previous_was_quantifier = char != "?" or not previous_was_quantifier
            output.append(char)
            index += 1
            continue

        previous_was_quantifier = False
        output.append(char)
        index += 1

    return "".join(output), None


def _check_path(path, prefix, number):
    if not _is_str(path):
        raise IngressError("%s: path must be a string (a regular expression), not %r." % (prefix, path))
    if path == "":
        return
    translated, reason = _translate_re2(path)
    if reason is None:
        try:
            re.compile(translated)
        except re.error as error:
            reason = str(error)
    if reason is not None:
        raise IngressError(
            "Rule #%d has an invalid regex in path %r: %s. The path is a Go RE2 regular expression "
            "matched anywhere in the request path. Fix the expression, for example ^/api/." % (number, path, reason),
            rule_number=number,
        )


def _check_service(service, prefix):
    if service is None or service == "":
        raise IngressError(
            "%s has no service. Set service to one of %s, or set origin to a preset (ollama)."
            % (prefix, SUPPORTED_SERVICES_TEXT)
        )
    if not _is_str(service):
        raise IngressError("%s: service must be a string, not %r." % (prefix, service))

    if service in NAMED_SERVICES:
        return
    if service.startswith(HTTP_STATUS_PREFIX):
        code = service[len(HTTP_STATUS_PREFIX):]
        if not re.match(r"^[0-9]+$", code) or not HTTP_STATUS_MIN <= int(code) <= HTTP_STATUS_MAX:
            raise IngressError(
                "%s: service %r has an invalid HTTP status code: %s. Use a code from %d to %d, "
                "for example http_status:404." % (prefix, service, code, HTTP_STATUS_MIN, HTTP_STATUS_MAX)
            )
        return
    for unix_prefix in UNIX_PREFIXES:
        if service.startswith(unix_prefix):
            if service[len(unix_prefix):] == "":
                raise IngressError(
                    "%s: service %r has no socket path. Write it as %s/path/to/socket."
                    % (prefix, service, unix_prefix)
                )
            return

    parts = urlsplit(service)
    if "://" not in service or not parts.scheme or not parts.hostname:
        example = "http://" + service if "://" not in service else "http://127.0.0.1:8080"
        raise IngressError(
            "%s: service %r is an invalid address, please make sure it has a scheme and a hostname, "
            "for example %s." % (prefix, service, example)
        )
    scheme = parts.scheme.lower()
    if scheme not in HTTP_SCHEMES + TCP_SCHEMES:
        raise IngressError(
            "%s: service %r uses the unsupported scheme %r. Use one of %s."
            % (prefix, service, parts.scheme, SUPPORTED_SERVICES_TEXT)
        )
    try:
        parts.port
    except ValueError:
        raise IngressError(
            "%s: service %r has an invalid port. Use a number from 1 to 65535." % (prefix, service)
        )
    if parts.path or parts.query or parts.fragment:
        origin = "%s://%s" % (parts.scheme, parts.netloc)
        raise IngressError(
            "%s: service %r is an invalid address, ingress rules don't support proxying to a different "
            "path on the origin service, because the path will be the same as the path in the request. "
            "Use service: %s and, to select requests by path, the path key." % (prefix, service, origin)
        )


# ---------------------------------------------------------------------------
# Origin presets


def _expand_origin(origin, prefix):
    """Return (service, originRequest) for an origin preset."""
    if _is_str(origin):
        settings = {"preset": origin}
    elif isinstance(origin, dict):
        settings = dict(origin)
    else:
        raise IngressError(
            "%s: origin must be a preset name such as ollama or a mapping such as "
            "{preset: ollama, port: 11435}, not %r." % (prefix, origin)
        )
    for key in settings:
        if key not in ORIGIN_PRESET_KEYS:
            raise IngressError(_unknown_key_message(prefix, key, ORIGIN_PRESET_KEYS, {}, "origin"))

    preset = settings.get("preset")
    if preset not in ORIGIN_PRESETS:
        raise IngressError(
            "%s: origin preset %r is not known. Supported presets: %s."
            % (prefix, preset, ", ".join(ORIGIN_PRESETS))
        )

    port = settings.get("port", OLLAMA_DEFAULT_PORT)
    if not _is_int(port) or not 1 <= port <= 65535:
        raise IngressError(
            "%s: origin port %r is invalid. Use a port number from 1 to 65535." % (prefix, port)
        )
    service = "http://127.0.0.1:%d" % port
    return service, {"httpHostHeader": "localhost:%d" % port}


# ---------------------------------------------------------------------------
# Rules


def is_catch_all(rule):
    """Return True for a normalized rule that matches every request (no hostname, no path)."""
    return rule.get("hostname", "") in ("", "*") and not rule.get("path")


def rule_key(rule):
    """Return the (hostname, path) pair that identifies a normalized rule."""
    return rule.get("hostname", ""), rule.get("path", "")


def _rule_label(rule):
    hostname, path = rule_key(rule)
    if hostname == "" and path == "":
        return "the catch-all rule"
    if path and hostname:
        return "hostname %r with path %r" % (hostname, path)
    if path:
        return "path %r" % path
    return "hostname %r" % hostname


def normalize_rule(rule, number, drop_defaults=True):
    """Validate one rule (numbered from 1) and return its wire form.

    Checks keys, hostname, path, service and originRequest, and expands an
    origin preset. List-level checks (catch-all position, duplicates) are in
    validate_ingress.
    """
    if not isinstance(rule, dict):
        raise IngressError(
            "Ingress rule #%d must be a mapping with hostname and service, not %r." % (number, rule),
            rule_number=number,
        )
    hostname = rule.get("hostname")
    prefix = _rule_prefix(number, hostname if _is_str(hostname) else None)
    try:
        fields = _canonical_keys(rule, RULE_KEY_ALIASES, RULE_KEYS, prefix, "the rule")
        hostname = fields.get("hostname") or ""
        path = fields.get("path") or ""
        _check_hostname(hostname, _rule_prefix(number))
        _check_path(path, prefix, number)

        preset_request = {}
        service = fields.get("service")
        if fields.get("origin") is not None:
            if service:
                raise IngressError(
                    "%s sets both service %r and origin %r. Keep only one of them."
                    % (prefix, service, fields["origin"])
                )
            service, preset_request = _expand_origin(fields["origin"], prefix)
        _check_service(service, prefix)

        user_request = fields.get("originRequest")
        if user_request is not None and not isinstance(user_request, dict):
            raise IngressError("%s: originRequest must be a mapping, not %r." % (prefix, user_request))
        # Keys the user sets override the preset's keys.
        combined = dict(preset_request)
        combined.update(
            _canonical_keys(user_request or {}, ORIGIN_REQUEST_ALIASES, ORIGIN_REQUEST_ORDER, prefix, "originRequest")
        )
        origin_request = normalize_origin_request(combined, prefix, drop_defaults)
    except IngressError as error:
        error.rule_number = number
        raise

    result = {}
    if hostname and not (hostname == "*" and not path):
        result["hostname"] = hostname
    if path:
        result["path"] = path
    result["service"] = service
    if origin_request or not drop_defaults:
        result["originRequest"] = origin_request
    return result


def validate_ingress(rules, require_catch_all=True, drop_defaults=True):
    """Validate a list of ingress rules as cloudflared does and return their wire form.

    ``rules`` are mappings with hostname, path, service, origin (a preset) and
    originRequest (or origin_request), with camelCase or snake_case keys.
    With ``require_catch_all``, the list must end with exactly one catch-all
    rule (no hostname, no path), as cloudflared requires. Without it, a
    catch-all is optional, but if present it must still be last.

    ``drop_defaults`` leaves out originRequest values equal to cloudflared's
    defaults. Turn it off when a top-level originRequest sets other defaults,
    because then an explicit default in a rule is an override.

    Raises IngressError naming the rule number (from 1), the bad value and the fix.
    """
    if rules is None:
        rules = []
    if not isinstance(rules, list):
        raise IngressError("Ingress rules must be a list of mappings, not %r." % (rules,))
    if not rules:
        if require_catch_all:
            raise IngressError(
                "The ingress rule list is empty, but a tunnel needs at least one rule. "
                "Add rules ending with a catch-all such as {service: http_status:404}."
            )
        return []

    normalized = [normalize_rule(rule, number, drop_defaults) for number, rule in enumerate(rules, start=1)]
    total = len(normalized)

    seen = {}
    for number, rule in enumerate(normalized, start=1):
        is_last = number == total
        if is_catch_all(rule) and not is_last:
            original = rules[number - 1].get("hostname") or ""
            if number + 1 == total:
                following = "rule #%d" % total
            else:
                following = "rules #%d to #%d" % (number + 1, total)
            raise IngressError(
                "Rule #%d is matching the hostname %r, but this will match every hostname, meaning the "
                "rules which follow it (%s) will never be triggered. Move it to the end of the "
                "list or give it a hostname or path." % (number, original, following),
                rule_number=number,
            )
        if is_last and require_catch_all and not is_catch_all(rule):
            raise IngressError(
                "Ingress rule #%d (%s) is the last rule, but the last ingress rule must match all URLs "
                "(i.e. it should not have a hostname or path filter). Add a catch-all rule such as "
                "{service: http_status:404} at the end." % (number, _rule_label(rule)),
                rule_number=number,
            )

        key = rule_key(rule)
        if key in seen:
            raise IngressError(
                "Ingress rule #%d repeats %s of rule #%d, so cloudflared would never use rule #%d. "
                "Remove one of the two rules or give them different paths."
                % (number, _rule_label(rule), seen[key], number),
                rule_number=number,
            )
        seen[key] = number
    return normalized


def find_shadowed_rules(rules):
    """Return messages for normalized rules that an earlier rule always matches first.

    cloudflared uses the first matching rule, so a rule for chat.example.com
    after a rule for *.example.com without a path is never used. Only rules
    shadowed by an earlier rule without a path are reported.
    """
    messages = []
    for later_index, later in enumerate(rules):
        later_host = later.get("hostname", "")
        if is_catch_all(later):
            continue
        for earlier_index, earlier in enumerate(rules[:later_index]):
            earlier_host = earlier.get("hostname", "")
            if earlier.get("path") or not earlier_host:
                continue
            covered = earlier_host == later_host
            if earlier_host.startswith("*.") and not covered:
                suffix = earlier_host[1:]
                covered = later_host.endswith(suffix) and later_host != suffix
            if covered:
                messages.append(
                    "Ingress rule #%d (%s) is never used, because rule #%d (hostname %r) matches "
                    "its requests first. Move rule #%d above rule #%d."
                    % (later_index + 1, _rule_label(later), earlier_index + 1, earlier_host,
                       later_index + 1, earlier_index + 1)
                )
                break
    return messages


# ---------------------------------------------------------------------------
# Current rules as read from the API


def _normalize_current_rule(rule, drop_defaults=True):
    """Normalize a rule read from the API without rejecting it.

    Known keys get the same normalization as in validate_ingress. Unknown keys
    and values that do not validate are kept unchanged, so that a rule written
    by the dashboard or a newer cloudflared survives a merge.
    """
    rule = dict(rule)
    request = rule.pop("originRequest", None)
    if request is None:
        request = rule.pop("origin_request", None)
    else:
        rule.pop("origin_request", None)

    result = {}
    hostname = rule.pop("hostname", None) or ""
    path = rule.pop("path", None) or ""
    if hostname and not (hostname == "*" and not path):
        result["hostname"] = hostname
    if path:
        result["path"] = path
    service = rule.pop("service", None)
    if service is not None:
        result["service"] = service
    for key, value in rule.items():
        if not _is_empty(value):
            result[key] = copy.deepcopy(value)

    if isinstance(request, dict):
        normalized_request = {}
        for key, value in request.items():
            name = ORIGIN_REQUEST_ALIASES.get(key, key)
            if value is None:
                continue
            if name in ORIGIN_REQUEST_KINDS:
                try:
                    value = _normalize_origin_value(name, value, "current rule", drop_defaults)
                except IngressError:
                    pass
                if drop_defaults and (_is_empty(value) or value == ORIGIN_REQUEST_DEFAULTS[name]):
                    continue
            normalized_request[name] = copy.deepcopy(value)
        if normalized_request:
            result["originRequest"] = normalized_request
    elif not _is_empty(request):
        result["originRequest"] = copy.deepcopy(request)
    return result


def normalize_current_ingress(rules, drop_defaults=True):
    """Normalize rules read from the API (see _normalize_current_rule) without raising."""
    return [_normalize_current_rule(rule, drop_defaults) for rule in (rules or []) if isinstance(rule, dict)]


def _normalize_for_comparison(rules, drop_defaults):
    try:
        return validate_ingress(rules, require_catch_all=False, drop_defaults=drop_defaults)
    except IngressError:
        return normalize_current_ingress(rules, drop_defaults)


def ingress_equal(first, second, drop_defaults=True):
    """Return True when two rule lists are the same after normalization.

    Both lists may be in user, remote or local form. A list that does not
    validate is compared in its leniently normalized form. Rules are compared
    in order, because cloudflared uses the first rule that matches.
    """
    return _normalize_for_comparison(first, drop_defaults) == _normalize_for_comparison(second, drop_defaults)


# ---------------------------------------------------------------------------
# Merge


def _change(action, rule):
    hostname, path = rule_key(rule)
    return {"change": action, "hostname": hostname, "path": path}


def merge_ingress(current_rules, desired_rules, mode="merge", drop_defaults=True):
    """Combine the current rules of a tunnel with the desired ones.

    Returns (rules, changes). ``rules`` is the full validated list to store,
    ending with a catch-all. ``changes`` lists one
    ``{"change": added|updated|unchanged|removed, "hostname", "path"}`` entry
    per rule that the result contains or drops; the catch-all has hostname "".

    Mode ``exact``: the result is the desired rules, ending with the desired
    catch-all, or {service: http_status:404} if none is given.
    Mode ``merge``: current rules whose hostname and path are not desired stay
    where they are. A desired rule replaces the current rule with the same
    hostname and path in place, or else is added before the catch-all. The
    current catch-all stays unless the desired rules end with one.

    Raises IngressError for an invalid desired rule or an unknown mode.
    """
    if mode not in MERGE_MODES:
        raise IngressError(
            "Ingress merge mode %r is not supported. Use one of: %s." % (mode, ", ".join(MERGE_MODES))
        )
    desired = validate_ingress(desired_rules, require_catch_all=False, drop_defaults=drop_defaults)
    current = normalize_current_ingress(current_rules, drop_defaults)

    desired_catch_all = desired.pop() if desired and is_catch_all(desired[-1]) else None
    current_catch_all = None
    current_specific = []
    for rule in current:
        if is_catch_all(rule):
            current_catch_all = rule
        else:
            current_specific.append(rule)
    current_by_key = dict((rule_key(rule), rule) for rule in current_specific)
    desired_by_key = dict((rule_key(rule), rule) for rule in desired)

    def classify(rule):
        existing = current_by_key.get(rule_key(rule))
        if existing is None:
            return _change("added", rule)
        return _change("unchanged" if existing == rule else "updated", rule)

    changes = []
    if mode == "exact":
        merged = list(desired)
        changes.extend(classify(rule) for rule in desired)
        changes.extend(
            _change("removed", rule) for rule in current_specific if rule_key(rule) not in desired_by_key
        )
        catch_all = desired_catch_all or dict(DEFAULT_CATCH_ALL)
    else:
        merged = []
        for rule in current_specific:
            replacement = desired_by_key.get(rule_key(rule))
            merged.append(replacement if replacement is not None else rule)
        merged.extend(rule for rule in desired if rule_key(rule) not in current_by_key)
        changes.extend(classify(rule) for rule in desired)
        catch_all = desired_catch_all or current_catch_all or dict(DEFAULT_CATCH_ALL)

    if current_catch_all is None:
        changes.append(_change("added", catch_all))
    else:
        changes.append(_change("unchanged" if current_catch_all == catch_all else "updated", catch_all))
    merged.append(catch_all)
    return merged, changes


# ---------------------------------------------------------------------------
# Local config.yml form


def _durations_to_go(origin_request):
    result = {}
    for key, value in origin_request.items():
        if key in DURATION_KEYS and _is_int(value):
            value = format_go_duration(value)
        result[key] = copy.deepcopy(value)
    return result


def to_local_config(rules, require_catch_all=True, drop_defaults=True):
    """Validate rules and return them in config.yml form.

    The result is the list for the ``ingress:`` key of cloudflared's
    config.yml: the same keys as the remote form, with durations as Go
    duration strings (``30s``, ``1m30s``), because cloudflared rejects an
    integer duration in YAML. validate_ingress accepts this form back and
    returns the remote form.
    """
    result = []
    for rule in validate_ingress(rules, require_catch_all=require_catch_all, drop_defaults=drop_defaults):
        local_rule = dict(rule)
        if "originRequest" in local_rule:
            local_rule["originRequest"] = _durations_to_go(local_rule["originRequest"])
        result.append(local_rule)
    return result
