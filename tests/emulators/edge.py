"""Emulator of Cloudflare's edge for the hostnames in the Cloudflare API emulator's state.

A request to this server is treated like a request that reached Cloudflare for the hostname
in its ``Host`` header. The server speaks plain HTTP on loopback; clients connect to it and
send the public hostname in the Host header (the ``connect_url`` option of
``homelab.edge.edge_probe``).

The objects come from the Cloudflare API emulator running in the same process
(``cloudflare_api.RUNNING_APPS``, the app started last unless ``start`` is given another),
read afresh for every request, so a test changes the edge's behaviour through the API or the
Cloudflare emulator's admin state routes. The launcher starts ``cloudflare`` before ``edge``.

A request passes these steps in order, and the first step that answers ends it:

1. DNS. No zone holds the hostname, or the zone has no proxied A, AAAA or CNAME record for
   it: HTTP 530 with error 1001 (DNS resolution error). Real clients usually fail earlier
   with a DNS lookup error, because an unproxied tunnel CNAME resolves to nothing; this
   emulator answers 1001 for both cases so that a probe can still report them.
2. WAF custom rules (phase ``http_request_firewall_custom``): ``block`` answers 403 with
   error 1020, or the rule's custom response; the challenge actions answer 403 with
   ``cf-mitigated: challenge``; ``skip`` ends the phase; ``log`` does nothing.
3. Rate limiting (phase ``http_ratelimit``): requests counted per rule and client IP in
   windows of ``period`` seconds on the Cloudflare emulator's clock. Above
   ``requests_per_period``, ``block`` answers 429 with error 1015 (or the rule's custom
   response) for ``mitigation_timeout`` seconds, or for the rest of the window when the
   timeout is 0.
4. Bot Fight Mode (``bot_fight_mode`` of the zone): a request whose User-Agent does not
   start like a browser's (``Mozilla/5.0 (``) gets 403 with error 1010. Real Bot Fight
   Mode sends a managed challenge page; both stop a server-to-server client.
5. Access: the self-hosted application whose domain covers the hostname and path. Its
   policies are evaluated in precedence order for the service token in the
   ``CF-Access-Client-Id`` and ``CF-Access-Client-Secret`` headers, checked by the
   Cloudflare emulator. A ``non_identity`` policy that includes the token, or ``bypass``
   that includes everyone or the client IP, admits the request; ``deny`` that includes the
   token answers 403. ``allow`` needs an identity login, which this emulator has no
   identity provider for, so it never admits. A request that is not admitted gets 401 when
   the application has ``service_auth_401_redirect`` and at least one ``non_identity``
   policy (it was blocked by a Service Auth policy), and otherwise a 302 to
   ``https://<team domain>/cdn-cgi/access/login/<hostname>``.
6. Tunnel: the CNAME content ``<tunnel id>.cfargotunnel.com`` names the tunnel. A missing or
   deleted tunnel, or one without a connector, answers 530 with error 1033. A proxied
   record that does not point at a tunnel answers 521 (no origin servers are emulated).
7. Ingress: the tunnel's remote configuration (``config_src`` cloudflare) or the local rules
   a connector registered here. No rules: 503. The first rule whose hostname and path match
   decides: ``http_status:N`` answers N with an empty body, ``hello_world`` answers 200,
   ``http(s)://`` forwards the request. The service address goes through the connector's
   origin map first, which is how a test points ``http://127.0.0.1:11434`` at a stand-in on
   another port.
8. Origin: the request goes to the origin with the Host header from the rule's
   ``originRequest.httpHostHeader``, or the public hostname. Headers that Cloudflare adds
   (``Cf-Ray``, ``Cf-Connecting-Ip``, ``X-Forwarded-For``, ``X-Forwarded-Proto``, and
   ``Cf-Access-Jwt-Assertion`` after Access) are set, and the ``CF-Access-Client-*``
   headers are removed. The response streams back, chunk by chunk when the origin sends no
   Content-Length. Connection refused or reset: 502. No response headers within
   ``origin_response_timeout`` seconds (seed, default 100 like Cloudflare's proxy read
   timeout): 524.

Every response carries ``cf-ray`` and ``server: cloudflare``. Error pages are HTML with the
error code in the title, in ``<span class="cf-error-code">`` and in the text
``Error <code>``.

Admin routes (no authentication), besides those of :mod:`tests.emulators.httpserver`:

* ``POST /__emulator__/edge/connectors`` ``{"client_id", "origins"?, "ingress"?}``: what a
  connector registered with the Cloudflare emulator serves. ``origins`` maps an ingress
  service URL to the address that really serves it; ``ingress`` holds the local rules of a
  ``config_src: local`` tunnel.
* ``GET /__emulator__/edge/connectors``, ``DELETE /__emulator__/edge/connectors/{client_id}``.
* ``GET /__emulator__/edge/requests`` (``?since=SEQ``): one entry per edge request with the
  step that answered it (``outcome``), the status, the error code, the connector and the
  origin URL and Host header used. Header values are never recorded.
* ``DELETE /__emulator__/edge/requests``: clear those entries and the rate-limit counters.

The module also adds ``GET /client/v4/zones/{zone_id}/bot_management`` to the Cloudflare
emulator it reads from, because that emulator does not serve it; see
:func:`install_bot_management_route`.
"""

from __future__ import annotations

import base64
import copy
import dataclasses
import html
import http.client
import ipaddress
import json
import logging
import pathlib
import re
import secrets
import socket
import ssl
import threading
import time
import urllib.parse
from typing import Any, Iterator

from tests.emulators import cloudflare_api
from tests.emulators.httpserver import (
    EmulatorApp,
    EmulatorRequestHandler,
    EmulatorServer,
    Request,
    Response,
    json_response,
)

LOG = logging.getLogger(__name__)

TUNNEL_CNAME_SUFFIX = ".cfargotunnel.com"
DEFAULT_TEAM_DOMAIN = "homelab.cloudflareaccess.com"
# Cloudflare closes a proxied request when the origin sends no response headers within
# 100 seconds (the proxy read timeout of the Free, Pro and Business plans).
DEFAULT_ORIGIN_RESPONSE_TIMEOUT = 100.0
# cloudflared's default originRequest.connectTimeout, in seconds.
DEFAULT_CONNECT_TIMEOUT = 30.0
COLO = "AMS"
BROWSER_USER_AGENT = re.compile(r"^Mozilla/5\.0 \(")
HOP_BY_HOP_HEADERS = frozenset(
    {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer", "transfer-encoding", "upgrade"}
)
ACCESS_CREDENTIAL_HEADERS = ("cf-access-client-id", "cf-access-client-secret")
CHALLENGE_ACTIONS = ("challenge", "js_challenge", "managed_challenge")

# Error code -> (HTTP status, title, explanation) of Cloudflare's error pages.
ERROR_PAGES: dict[int, tuple[int, str, str]] = {
    1001: (530, "DNS resolution error", "The hostname has no proxied DNS record on Cloudflare."),
    1010: (403, "Access denied", "The owner of this website has banned your access based on your browser's signature."),
    1015: (429, "You are being rate limited", "The owner of this website has banned you temporarily from accessing this website."),
    1020: (403, "Access denied", "This website is using a security service to protect itself from online attacks."),
    1033: (530, "Cloudflare Tunnel error", "The tunnel behind this hostname has no running connector (cloudflared)."),
    502: (502, "Bad gateway", "The web server reported a bad gateway error."),
    521: (521, "Web server is down", "The web server is not returning a connection."),
    524: (524, "A timeout occurred", "The origin web server timed out responding to this request."),
}


# --- responses -----------------------------------------------------------------------------


@dataclasses.dataclass
class EdgeResponse(Response):
    """A response with a raw body, or a body streamed from the origin in chunks."""

    raw: bytes = b""
    stream: Iterator[bytes] | None = None


def new_ray_id() -> str:
    return f"{secrets.token_hex(8)}-{COLO}"


def edge_headers(ray_id: str, extra: dict[str, str] | None = None) -> dict[str, str]:
    headers = {"Server": "cloudflare", "CF-RAY": ray_id}
    headers.update(extra or {})
    return headers


def error_page(code: int, hostname: str, ray_id: str, client_ip: str) -> EdgeResponse:
    """Return Cloudflare's HTML error page for `code` (see ERROR_PAGES)."""
    status, title, explanation = ERROR_PAGES[code]
    host = html.escape(hostname)
    document = (
        "<!DOCTYPE html>\n"
        f'<html lang="en-US"><head><title>{host} | {code}: {html.escape(title)}</title>'
        '<meta charset="UTF-8" /></head>\n'
        '<body><div id="cf-wrapper"><div id="cf-error-details" class="cf-error-details-wrapper">\n'
        f'<h1><span class="cf-error-type">Error</span> <span class="cf-error-code">{code}</span></h1>\n'
        f'<h2 class="cf-subheadline">{html.escape(title)}</h2>\n'
        f"<p>Error {code}. {html.escape(explanation)}</p>\n"
        f'<div class="cf-footer"><span>Cloudflare Ray ID: <strong class="font-semibold">{ray_id}</strong></span>'
        f'<span>Your IP: {html.escape(client_ip)}</span><span>Performance &amp; security by Cloudflare</span></div>\n'
        "</div></div></body></html>\n"
    )
    headers = edge_headers(ray_id, {"Content-Type": "text/html; charset=UTF-8", "Cache-Control": "private, max-age=0, no-store"})
    return EdgeResponse(status=status, headers=headers, raw=document.encode())


def challenge_page(hostname: str, ray_id: str) -> EdgeResponse:
    document = (
        "<!DOCTYPE html><html lang=\"en-US\"><head><title>Just a moment...</title></head>"
        f"<body><noscript>Enable JavaScript and cookies to continue</noscript><p>{html.escape(hostname)}</p>"
        f"<p>Ray ID: {ray_id}</p></body></html>\n"
    )
    headers = edge_headers(ray_id, {"Content-Type": "text/html; charset=UTF-8", "cf-mitigated": "challenge"})
    return EdgeResponse(status=403, headers=headers, raw=document.encode())


def custom_rule_response(rule: dict[str, Any], ray_id: str) -> EdgeResponse | None:
    """Return the custom response of a block rule, or None when it uses Cloudflare's page."""
    response = (rule.get("action_parameters") or {}).get("response")
    if not isinstance(response, dict):
        return None
    headers = edge_headers(ray_id, {"Content-Type": str(response.get("content_type", "text/plain"))})
    return EdgeResponse(status=int(response.get("status_code", 429)), headers=headers, raw=str(response.get("content", "")).encode())


# --- rule expressions ------------------------------------------------------------------------


class ExpressionError(ValueError):
    """An expression outside the subset of Cloudflare's Rules language that is emulated."""


TOKEN_PATTERN = re.compile(
    r"""\s*(?:
        (?P<string>"(?:[^"\\]|\\.)*")
      | (?P<raw>r"[^"]*")
      | (?P<number>\d+(?:\.\d+)*(?:/\d+)?)
      | (?P<operator>==|!=|&&|\|\||>=|<=|[!<>~(){},\[\]])
      | (?P<word>[A-Za-z_][A-Za-z0-9_.]*)
    )""",
    re.VERBOSE,
)
COMPARISONS = {"eq", "ne", "lt", "le", "gt", "ge", "==", "!=", "<", "<=", ">", ">=", "contains", "matches", "~", "in"}
FUNCTIONS = {"starts_with", "ends_with", "lower", "upper", "len", "any", "all"}


def tokenize(expression: str) -> list[tuple[str, str]]:
    tokens = []
    position = 0
    text = expression.rstrip()
    while position < len(text):
        match = TOKEN_PATTERN.match(text, position)
        if match is None or match.end() == position:
            raise ExpressionError(f"unexpected character {text[position:position + 10]!r} at offset {position}")
        kind = match.lastgroup or ""
        tokens.append((kind, match.group(kind)))
        position = match.end()
    return tokens


class ExpressionParser:
    """Recursive-descent parser and evaluator for a subset of Cloudflare's Rules language.

    Supported: the fields that request_fields returns, string, number and IP literals, sets
    ``{...}``, the comparison operators (``eq`` ``ne`` ``lt`` ``le`` ``gt`` ``ge`` and their
    symbols, ``contains``, ``matches``/``~``, ``in``), ``not``/``!``, ``and``/``&&``,
    ``xor``, ``or``/``||``, parentheses and the functions ``starts_with``, ``ends_with``,
    ``lower``, ``upper`` and ``len``. Anything else raises ExpressionError.
    """

    def __init__(self, expression: str, fields: dict[str, Any]) -> None:
        self.tokens = tokenize(expression)
        self.position = 0
        self.fields = fields

    def evaluate(self) -> bool:
        value = self.parse_or()
        if self.position != len(self.tokens):
            raise ExpressionError(f"unexpected {self.tokens[self.position][1]!r} after a complete expression")
        return bool(value)

    def peek(self) -> str | None:
        return self.tokens[self.position][1] if self.position < len(self.tokens) else None

    def take(self, expected: str | None = None) -> tuple[str, str]:
        if self.position >= len(self.tokens):
            raise ExpressionError(f"expression ends early; expected {expected or 'a value'}")
        token = self.tokens[self.position]
        if expected is not None and token[1] != expected:
            raise ExpressionError(f"expected {expected!r}, found {token[1]!r}")
        self.position += 1
        return token

    def parse_or(self) -> Any:
        value = self.parse_xor()
        while self.peek() in ("or", "||"):
            self.take()
            right = self.parse_xor()
            value = bool(value) or bool(right)
        return value

    def parse_xor(self) -> Any:
        value = self.parse_and()
        while self.peek() in ("xor", "^^"):
            self.take()
            value = bool(value) != bool(self.parse_and())
        return value

    def parse_and(self) -> Any:
        value = self.parse_not()
        while self.peek() in ("and", "&&"):
            self.take()
            right = self.parse_not()
            value = bool(value) and bool(right)
        return value

    def parse_not(self) -> Any:
        if self.peek() in ("not", "!"):
            self.take()
            return not bool(self.parse_not())
        return self.parse_comparison()

    def parse_comparison(self) -> Any:
        left = self.parse_value()
        operator = self.peek()
        if operator not in COMPARISONS:
            return left
        self.take()
        if operator == "in":
            return self.compare_in(left, self.parse_set())
        right = self.parse_value()
        return self.compare(left, operator, right)

    def parse_set(self) -> list[Any]:
        self.take("{")
        items = []
        while self.peek() != "}":
            items.append(self.parse_value())
            if self.peek() == ",":
                self.take()
        self.take("}")
        return items

    def parse_value(self) -> Any:
        kind, text = self.take()
        if text == "(":
            value = self.parse_or()
            self.take(")")
            return value
        if kind == "string":
            return json.loads(text)
        if kind == "raw":
            return text[2:-1]
        if kind == "number":
            if text.isdigit():
                return int(text)
            return text
        if kind == "word":
            if text in ("true", "false"):
                return text == "true"
            if text in FUNCTIONS:
                return self.call(text)
            if text not in self.fields:
                raise ExpressionError(f"unsupported field {text!r}; supported: {', '.join(sorted(self.fields))}")
            return self.fields[text]
        raise ExpressionError(f"unexpected {text!r}")

    def call(self, name: str) -> Any:
        self.take("(")
        arguments = [self.parse_or()]
        while self.peek() == ",":
            self.take()
            arguments.append(self.parse_or())
        self.take(")")
        if name == "starts_with":
            return str(arguments[0]).startswith(str(arguments[1]))
        if name == "ends_with":
            return str(arguments[0]).endswith(str(arguments[1]))
        if name == "lower":
            return str(arguments[0]).lower()
        if name == "upper":
            return str(arguments[0]).upper()
        if name == "len":
            return len(arguments[0])
        raise ExpressionError(f"unsupported function {name!r}")

    @staticmethod
    def compare(left: Any, operator: str, right: Any) -> bool:
        if operator in ("eq", "=="):
            return left == right
        if operator in ("ne", "!="):
            return left != right
        if operator == "contains":
            return str(right) in str(left)
        if operator in ("matches", "~"):
            return re.search(str(right), str(left)) is not None
        ordering = {"lt": "<", "le": "<=", "gt": ">", "ge": ">="}.get(operator, operator)
        try:
            return {"<": left < right, "<=": left <= right, ">": left > right, ">=": left >= right}[ordering]
        except TypeError:
            raise ExpressionError(f"cannot compare {left!r} {operator} {right!r}") from None

    @staticmethod
    def compare_in(left: Any, items: list[Any]) -> bool:
        for item in items:
            if isinstance(item, str) and "/" in item and isinstance(left, str):
                try:
                    if ipaddress.ip_address(left) in ipaddress.ip_network(item, strict=False):
                        return True
                except ValueError:
                    pass
            if left == item:
                return True
        return False


def request_fields(request: Request, hostname: str, client_ip: str) -> dict[str, Any]:
    """Return the values of the Rules language fields for one request."""
    query = urllib.parse.urlencode(request.query, doseq=True)
    uri = request.path + (f"?{query}" if query else "")
    return {
        "http.host": hostname,
        "http.request.method": request.method,
        "http.request.uri": uri,
        "http.request.uri.path": request.path,
        "http.request.uri.query": query,
        "http.request.full_uri": f"https://{hostname}{uri}",
        "http.user_agent": request.header("user-agent") or "",
        "http.referer": request.header("referer") or "",
        "ip.src": client_ip,
        "cf.colo.id": 1,
        "cf.client.bot": False,
    }


def expression_matches(expression: str, fields: dict[str, Any]) -> bool:
    """Evaluate a rule expression; raise ExpressionError outside the emulated subset."""
    return ExpressionParser(expression, fields).evaluate()


# --- the edge ------------------------------------------------------------------------------


@dataclasses.dataclass
class EdgeContext:
    """What the steps of one request share."""

    request: Request
    hostname: str
    client_ip: str
    ray_id: str
    state: dict[str, Any]
    entry: dict[str, Any]
    fields: dict[str, Any] = dataclasses.field(default_factory=dict)
    zone: dict[str, Any] | None = None
    record: dict[str, Any] | None = None
    access_app: dict[str, Any] | None = None


class EdgeApp(EmulatorApp):
    """The emulated edge. See the module docstring for the steps of a request."""

    name = "edge"

    def __init__(self, cloudflare: cloudflare_api.CloudflareApp, seed: dict[str, Any]) -> None:
        super().__init__()
        self.cloudflare = cloudflare
        self.seed = copy.deepcopy(seed)
        self.team_domain = str(seed.get("team_domain", DEFAULT_TEAM_DOMAIN))
        self.origin_response_timeout = float(seed.get("origin_response_timeout", DEFAULT_ORIGIN_RESPONSE_TIMEOUT))
        self.connectors: dict[str, dict[str, Any]] = {}
        self.counters: dict[tuple[str, str, str], dict[str, float]] = {}
        self.requests: list[dict[str, Any]] = []
        self._next_seq = 1
        self._round_robin = 0
        self._log_lock = threading.Lock()

    # -- EmulatorApp hooks

    def error_body(self, status: int, message: str) -> Any:
        return {"error": message, "status": status}

    def is_write(self, request: Request) -> bool:
        return False

    def redact_body(self, body: Any) -> Any:
        # Request bodies that reach the edge belong to the origin's API; none are logged.
        return None

    def get_state(self) -> dict[str, Any]:
        with self.lock:
            return {"connectors": copy.deepcopy(self.connectors)}

    def set_state(self, state: dict[str, Any]) -> None:
        connectors = state.get("connectors")
        if not isinstance(connectors, dict):
            raise ValueError("missing or non-object key 'connectors'; GET the state first and change that document")
        with self.lock:
            self.connectors = copy.deepcopy(connectors)

    def reset(self) -> None:
        with self.lock:
            self.connectors = {}
            self.counters = {}
        with self._log_lock:
            self.requests = []

    def admin_routes(self) -> list[tuple[str, str, Any]]:
        return [
            ("POST", r"/edge/connectors", self.admin_add_connector),
            ("GET", r"/edge/connectors", lambda r, m: json_response(200, self.get_state())),
            ("DELETE", r"/edge/connectors/(?P<client_id>[^/]+)", self.admin_remove_connector),
            ("GET", r"/edge/requests", self.admin_requests),
            ("DELETE", r"/edge/requests", self.admin_clear_requests),
        ]

    # -- admin routes

    def admin_add_connector(self, request: Request, match: re.Match[str]) -> Response:
        data = request.json if isinstance(request.json, dict) else {}
        client_id = data.get("client_id")
        if not isinstance(client_id, str) or not client_id:
            return json_response(400, {"error": "missing field 'client_id': pass the id that the Cloudflare emulator returned"})
        origins = data.get("origins") or {}
        if not isinstance(origins, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in origins.items()):
            return json_response(400, {"error": "invalid 'origins': expected an object of service URL to origin URL strings"})
        ingress = data.get("ingress")
        if ingress is not None and not isinstance(ingress, list):
            return json_response(400, {"error": "invalid 'ingress': expected a list of ingress rules"})
        entry = {"origins": {normalize_service(k): v for k, v in origins.items()}, "ingress": ingress}
        with self.lock:
            self.connectors[client_id] = entry
        LOG.info("edge: connector %s serves %s", client_id, sorted(entry["origins"]))
        return json_response(201, dict(entry, client_id=client_id))

    def admin_remove_connector(self, request: Request, match: re.Match[str]) -> Response:
        with self.lock:
            removed = self.connectors.pop(match["client_id"], None)
        if removed is None:
            return json_response(404, {"error": f"connector {match['client_id']} is not registered with the edge"})
        return json_response(200, {"client_id": match["client_id"]})

    def admin_requests(self, request: Request, match: re.Match[str]) -> Response:
        since = int(request.query_value("since", "0") or 0)
        with self._log_lock:
            entries = [dict(entry) for entry in self.requests if entry["seq"] > since]
        return json_response(200, {"entries": entries})

    def admin_clear_requests(self, request: Request, match: re.Match[str]) -> Response:
        with self._log_lock:
            self.requests = []
        with self.lock:
            self.counters = {}
        return json_response(200, {"cleared": True})

    # -- request handling

    def handle(self, request: Request) -> Response:
        hostname = strip_port(request.header("host") or "").lower().rstrip(".")
        client_ip = getattr(request, "client_ip", "127.0.0.1")
        entry: dict[str, Any] = {
            "host": hostname,
            "method": request.method,
            "path": request.path,
            "client_ip": client_ip,
            "with_service_token": bool(request.header("cf-access-client-id")),
            "outcome": None,
            "status": None,
            "error_code": None,
        }
        context = EdgeContext(
            request=request,
            hostname=hostname,
            client_ip=client_ip,
            ray_id=new_ray_id(),
            state=self.cloudflare.get_state(),
            entry=entry,
        )
        context.fields = request_fields(request, hostname, client_ip)
        response = self._answer(context)
        entry["status"] = response.status
        entry["ray_id"] = context.ray_id
        self._log(entry)
        return response

    def _answer(self, context: EdgeContext) -> EdgeResponse:
        steps = (self._dns, self._custom_rules, self._rate_limit, self._bot_fight_mode, self._access)
        for step in steps:
            response = step(context)
            if response is not None:
                return response
        return self._tunnel(context)

    def _log(self, entry: dict[str, Any]) -> None:
        with self._log_lock:
            entry["seq"] = self._next_seq
            self._next_seq += 1
            self.requests.append(entry)

    def _fail(self, context: EdgeContext, outcome: str, code: int) -> EdgeResponse:
        context.entry["outcome"] = outcome
        context.entry["error_code"] = code
        return error_page(code, context.hostname, context.ray_id, context.client_ip)

    # -- step 1: DNS

    def _dns(self, context: EdgeContext) -> EdgeResponse | None:
        zones = [z for z in context.state["zones"].values() if context.hostname == z["name"] or context.hostname.endswith("." + z["name"])]
        if not zones:
            return self._fail(context, "dns_no_zone", 1001)
        zone = max(zones, key=lambda z: len(z["name"]))
        records = [
            r
            for r in context.state["dns_records"].get(zone["id"], {}).values()
            if r["name"].lower() == context.hostname and r["type"] in ("A", "AAAA", "CNAME")
        ]
        proxied = [r for r in records if r.get("proxied")]
        if not proxied:
            return self._fail(context, "dns_not_proxied" if records else "dns_no_record", 1001)
        context.zone = zone
        context.record = proxied[0]
        return None

    # -- steps 2 and 3: rulesets

    def _rules(self, context: EdgeContext, phase: str) -> list[dict[str, Any]]:
        assert context.zone is not None
        ruleset = context.state["rulesets"].get(context.zone["id"], {}).get(phase) or {}
        return [rule for rule in ruleset.get("rules", []) if rule.get("enabled", True)]

    def _matches(self, context: EdgeContext, rule: dict[str, Any], expression: str | None = None) -> bool:
        try:
            return expression_matches(expression or rule.get("expression", ""), context.fields)
        except ExpressionError as error:
            LOG.error("edge: rule %s has an expression outside the emulated subset, so it never matches: %s", rule.get("id"), error)
            context.entry.setdefault("expression_errors", []).append(f"rule {rule.get('id')}: {error}")
            return False

    def _custom_rules(self, context: EdgeContext) -> EdgeResponse | None:
        for rule in self._rules(context, "http_request_firewall_custom"):
            if not self._matches(context, rule):
                continue
            action = rule.get("action")
            if action == "skip":
                return None
            if action == "block":
                context.entry["rule_id"] = rule.get("id")
                custom = custom_rule_response(rule, context.ray_id)
                if custom is not None:
                    context.entry["outcome"] = "waf_block"
                    return custom
                return self._fail(context, "waf_block", 1020)
            if action in CHALLENGE_ACTIONS:
                context.entry["outcome"] = "waf_challenge"
                context.entry["rule_id"] = rule.get("id")
                return challenge_page(context.hostname, context.ray_id)
        return None

    def _rate_limit(self, context: EdgeContext) -> EdgeResponse | None:
        assert context.zone is not None
        now = self.cloudflare.now().timestamp()
        for rule in self._rules(context, "http_ratelimit"):
            if not self._matches(context, rule):
                continue
            limit = rule.get("ratelimit") or {}
            counting = limit.get("counting_expression") or None
            counted = counting is None or self._matches(context, rule, counting)
            # NOTE: requests are counted per rule and client IP only; characteristics other
            # than ip.src and cf.colo.id are not emulated.
            key = (context.zone["id"], str(rule.get("id")), context.client_ip)
            with self.lock:
                counter = self.counters.setdefault(key, {"window_start": now, "count": 0, "blocked_until": 0.0})
                period = float(limit.get("period", 60))
                if now - counter["window_start"] >= period:
                    counter["window_start"], counter["count"] = now, 0
                blocked = now < counter["blocked_until"]
                if not blocked and counted:
                    counter["count"] += 1
                    if counter["count"] > int(limit.get("requests_per_period", 1)):
                        blocked = True
                        timeout = float(limit.get("mitigation_timeout", 0) or 0)
                        counter["blocked_until"] = now + timeout if timeout else counter["window_start"] + period
            if not blocked:
                continue
            action = rule.get("action")
            context.entry["rule_id"] = rule.get("id")
            if action == "log":
                continue
            if action in CHALLENGE_ACTIONS:
                context.entry["outcome"] = "rate_limit_challenge"
                return challenge_page(context.hostname, context.ray_id)
            custom = custom_rule_response(rule, context.ray_id)
            if custom is not None:
                context.entry["outcome"] = "rate_limited"
                return custom
            return self._fail(context, "rate_limited", 1015)
        return None

    # -- step 4: Bot Fight Mode

    def _bot_fight_mode(self, context: EdgeContext) -> EdgeResponse | None:
        assert context.zone is not None
        if not context.zone.get("bot_fight_mode"):
            return None
        if BROWSER_USER_AGENT.match(context.request.header("user-agent") or ""):
            return None
        return self._fail(context, "bot_fight_mode", 1010)

    # -- step 5: Access

    def _find_access_app(self, context: EdgeContext) -> dict[str, Any] | None:
        best: tuple[int, dict[str, Any]] | None = None
        for app in context.state["access_apps"].values():
            if app.get("type") != "self_hosted":
                continue
            domains = [app["domain"]] + [d.get("uri", "") for d in app.get("destinations") or [] if d.get("type") == "public"]
            for domain in domains:
                host, separator, path = domain.partition("/")
                if not hostname_matches(host.lower(), context.hostname):
                    continue
                if path and not context.request.path.lstrip("/").startswith(path):
                    continue
                if best is None or len(path) > best[0]:
                    best = (len(path), app)
        return best[1] if best else None

    def _access(self, context: EdgeContext) -> EdgeResponse | None:
        app = self._find_access_app(context)
        if app is None:
            return None
        context.access_app = app
        request = context.request
        client_id = request.header("cf-access-client-id")
        client_secret = request.header("cf-access-client-secret")
        token_id = None
        if client_id and client_secret:
            token_id = self.cloudflare.check_service_token(client_id, client_secret)
        context.entry["access_app_id"] = app["id"]
        context.entry["service_token_id"] = token_id

        policies = []
        for link in sorted(app.get("policies", []), key=lambda link: link["precedence"]):
            policy = context.state["access_policies"].get(link["id"])
            if policy is not None:
                policies.append(policy)
        for policy in policies:
            if not self._policy_matches(policy, token_id, context.client_ip):
                continue
            decision = policy["decision"]
            context.entry["access_policy"] = policy["name"]
            if decision == "non_identity" and token_id is not None:
                context.entry["access_decision"] = "admitted"
                return None
            if decision == "bypass":
                context.entry["access_decision"] = "bypassed"
                return None
            if decision == "deny":
                context.entry["access_decision"] = "denied"
                context.entry["outcome"] = "access_denied"
                return EdgeResponse(status=403, headers=edge_headers(context.ray_id, {"Content-Type": "text/plain"}), raw=b"Forbidden\n")
            # allow needs an identity login, which a service token request does not have.

        service_auth = any(policy["decision"] == "non_identity" for policy in policies)
        if app.get("service_auth_401_redirect") and service_auth:
            context.entry["outcome"] = "access_401"
            context.entry["access_decision"] = "rejected"
            return EdgeResponse(status=401, headers=edge_headers(context.ray_id), raw=b"")
        context.entry["outcome"] = "access_login_redirect"
        context.entry["access_decision"] = "login"
        query = urllib.parse.urlencode({"kid": app["aud"], "redirect_url": request.path, "meta": secrets.token_urlsafe(24)})
        location = f"https://{self.team_domain}/cdn-cgi/access/login/{context.hostname}?{query}"
        return EdgeResponse(status=302, headers=edge_headers(context.ray_id, {"Location": location}), raw=b"")

    @staticmethod
    def _policy_matches(policy: dict[str, Any], token_id: str | None, client_ip: str) -> bool:
        def rule_matches(rule: dict[str, Any]) -> bool:
            selector, value = next(iter(rule.items()))
            if selector == "service_token":
                return token_id is not None and value.get("token_id") == token_id
            if selector == "any_valid_service_token":
                return token_id is not None
            if selector == "everyone":
                return True
            if selector == "ip":
                try:
                    return ipaddress.ip_address(client_ip) in ipaddress.ip_network(value.get("ip", ""), strict=False)
                except ValueError:
                    return False
            # Identity selectors (email, group, ...) never match: no identity provider is emulated.
            return False

        include = policy.get("include") or []
        if not any(rule_matches(rule) for rule in include):
            return False
        if any(rule_matches(rule) for rule in policy.get("exclude") or []):
            return False
        return all(rule_matches(rule) for rule in policy.get("require") or [])

    # -- steps 6 and 7: tunnel and ingress

    def _tunnel(self, context: EdgeContext) -> EdgeResponse:
        record = context.record
        assert record is not None
        content = (record.get("content") or "").lower().rstrip(".")
        if record["type"] != "CNAME" or not content.endswith(TUNNEL_CNAME_SUFFIX):
            return self._fail(context, "no_origin_server", 521)
        tunnel_id = content[: -len(TUNNEL_CNAME_SUFFIX)]
        context.entry["tunnel_id"] = tunnel_id
        tunnel = context.state["tunnels"].get(tunnel_id)
        if tunnel is None or tunnel.get("deleted_at") or not tunnel.get("connectors"):
            return self._fail(context, "tunnel_down", 1033)

        connectors = tunnel["connectors"]
        with self.lock:
            connector = connectors[self._round_robin % len(connectors)]
            self._round_robin += 1
            served = copy.deepcopy(self.connectors.get(connector["id"], {"origins": {}, "ingress": None}))
        context.entry["connector_id"] = connector["id"]

        if tunnel.get("config_src") == "cloudflare":
            config = (tunnel.get("configuration") or {}).get("config") or {}
        else:
            config = {"ingress": served.get("ingress") or []}
        rules = config.get("ingress") or []
        if not rules:
            context.entry["outcome"] = "no_ingress_rules"
            return EdgeResponse(status=503, headers=edge_headers(context.ray_id), raw=b"")
        rule = next((r for r in rules if self._ingress_matches(r, context)), None)
        if rule is None:
            # cloudflared refuses a rule list without a catch-all, so this happens only with
            # hand-written state.
            context.entry["outcome"] = "no_ingress_rule"
            return EdgeResponse(status=503, headers=edge_headers(context.ray_id), raw=b"")
        service = rule["service"]
        context.entry["ingress_service"] = service
        status_match = re.fullmatch(r"http_status:(\d{3})", service)
        if status_match:
            context.entry["outcome"] = "ingress_status"
            return EdgeResponse(status=int(status_match.group(1)), headers=edge_headers(context.ray_id), raw=b"")
        if service == "hello_world":
            context.entry["outcome"] = "hello_world"
            return EdgeResponse(status=200, headers=edge_headers(context.ray_id, {"Content-Type": "text/plain"}), raw=b"Hello, world!\n")
        if not re.match(r"https?://", service):
            context.entry["outcome"] = "unsupported_service"
            return self._fail(context, "unsupported_service", 502)
        origin_request = dict(config.get("originRequest") or {})
        origin_request.update(rule.get("originRequest") or {})
        origin_url = served["origins"].get(normalize_service(service), service)
        return self._forward(context, origin_url, origin_request)

    @staticmethod
    def _ingress_matches(rule: dict[str, Any], context: EdgeContext) -> bool:
        hostname = (rule.get("hostname") or "").lower()
        if hostname and not hostname_matches(hostname, context.hostname):
            return False
        path = rule.get("path")
        if path:
            try:
                return re.search(path, context.request.path) is not None
            except re.error:
                return False
        return True

    # -- step 8: origin

    def _forward(self, context: EdgeContext, origin_url: str, origin_request: dict[str, Any]) -> EdgeResponse:
        request = context.request
        target = urllib.parse.urlsplit(origin_url)
        host_header = origin_request.get("httpHostHeader") or context.hostname
        context.entry["origin_url"] = origin_url
        context.entry["origin_host_header"] = host_header

        headers = {
            key: value
            for key, value in request.headers.items()
            if key not in HOP_BY_HOP_HEADERS and key not in ACCESS_CREDENTIAL_HEADERS and key not in ("host", "content-length")
        }
        headers.update(
            {
                "host": host_header,
                "cf-ray": context.ray_id,
                "cf-connecting-ip": context.client_ip,
                "x-forwarded-for": context.client_ip,
                "x-forwarded-proto": "https",
                "cf-visitor": '{"scheme":"https"}',
            }
        )
        if context.access_app is not None:
            headers["cf-access-jwt-assertion"] = unsigned_access_jwt(context.access_app, context.entry.get("service_token_id"))
        if request.body:
            headers["content-length"] = str(len(request.body))

        connect_timeout = float(origin_request.get("connectTimeout") or DEFAULT_CONNECT_TIMEOUT)
        port = target.port or (443 if target.scheme == "https" else 80)
        if target.scheme == "https":
            tls = ssl.create_default_context()
            if origin_request.get("noTLSVerify"):
                tls.check_hostname = False
                tls.verify_mode = ssl.CERT_NONE
            connection: http.client.HTTPConnection = http.client.HTTPSConnection(target.hostname, port, timeout=connect_timeout, context=tls)
        else:
            connection = http.client.HTTPConnection(target.hostname, port, timeout=connect_timeout)
        base_path = target.path.rstrip("/")
        query = urllib.parse.urlencode(request.query, doseq=True)
        path = base_path + request.path + (f"?{query}" if query else "")
        try:
            connection.connect()
        except OSError as error:
            # Refused, reset, unresolvable or not connected within connectTimeout: cloudflared
            # reports the origin as unreachable, and Cloudflare responds with 502.
            connection.close()
            LOG.info("edge: origin %s unreachable for %s: %s", origin_url, context.hostname, error)
            return self._fail(context, "origin_unreachable", 502)
        try:
            assert connection.sock is not None
            connection.sock.settimeout(self.origin_response_timeout)
            connection.request(request.method, path, body=request.body or None, headers=headers)
            response = connection.getresponse()
        except (socket.timeout, TimeoutError):
            connection.close()
            return self._fail(context, "origin_timeout", 524)
        except (OSError, http.client.HTTPException) as error:
            connection.close()
            LOG.info("edge: origin %s failed for %s: %s", origin_url, context.hostname, error)
            return self._fail(context, "origin_unreachable", 502)

        context.entry["outcome"] = "origin"
        out_headers = edge_headers(context.ray_id)
        for key, value in response.getheaders():
            lowered = key.lower()
            if lowered in HOP_BY_HOP_HEADERS or lowered in ("server", "content-length", "date"):
                continue
            out_headers[key] = value
        length = response.getheader("content-length")
        if length is not None or request.method == "HEAD" or response.status in (204, 304):
            try:
                body = response.read()
            except (socket.timeout, TimeoutError):
                connection.close()
                return self._fail(context, "origin_timeout", 524)
            except (ConnectionError, OSError, http.client.HTTPException):
                connection.close()
                return self._fail(context, "origin_unreachable", 502)
            connection.close()
            return EdgeResponse(status=response.status, headers=out_headers, raw=body)
        return EdgeResponse(status=response.status, headers=out_headers, stream=stream_body(response, connection))


def stream_body(response: http.client.HTTPResponse, connection: http.client.HTTPConnection) -> Iterator[bytes]:
    """Yield the origin's body as it arrives, then close the connection."""
    try:
        while True:
            try:
                chunk = response.read1(65536)
            except (socket.timeout, TimeoutError, ConnectionError, OSError, http.client.HTTPException) as error:
                LOG.info("edge: origin stream ended early: %s", error)
                return
            if not chunk:
                return
            yield chunk
    finally:
        connection.close()


def unsigned_access_jwt(app: dict[str, Any], token_id: str | None) -> str:
    """Return a JWT-shaped value for Cf-Access-Jwt-Assertion; the signature is not real."""

    def part(document: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(document, separators=(",", ":")).encode()).decode().rstrip("=")

    claims = {"aud": [app["aud"]], "common_name": token_id or "", "iat": int(time.time()), "type": "app"}
    return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(claims)}.emulator"


def normalize_service(service: str) -> str:
    return service.strip().rstrip("/").lower()


def strip_port(host: str) -> str:
    if host.startswith("["):
        return host[1:].partition("]")[0]
    if host.count(":") == 1:
        return host.split(":")[0]
    return host


def hostname_matches(pattern: str, hostname: str) -> bool:
    """Match a hostname against an exact name or a ``*.example.com`` wildcard."""
    if pattern.startswith("*."):
        return hostname.endswith(pattern[1:]) and hostname != pattern[2:]
    return pattern == hostname


# --- HTTP plumbing -------------------------------------------------------------------------


class EdgeRequestHandler(EmulatorRequestHandler):
    """Request handler that records the client address and sends raw and streamed bodies."""

    server_version = "cloudflare"

    def _read_request(self) -> Request:
        request = super()._read_request()
        request.client_ip = self.client_address[0]  # type: ignore[attr-defined]
        return request

    def _send(self, response: Response) -> None:
        if not isinstance(response, EdgeResponse):
            super()._send(response)
            return
        self.send_response_only(response.status)
        self.send_header("Date", self.date_time_string())
        for key, value in response.headers.items():
            self.send_header(key, value)
        if response.stream is None:
            self.send_header("Content-Length", str(len(response.raw)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(response.raw)
            return
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for chunk in response.stream:
            self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            self.wfile.flush()
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()


class EdgeServer(EmulatorServer):
    """Emulator server for an :class:`EdgeApp`."""

    app: EdgeApp

    def __init__(self, address: tuple[str, int], app: EdgeApp) -> None:
        super().__init__(address, app)
        self.RequestHandlerClass = EdgeRequestHandler


# --- the bot management read on the Cloudflare emulator --------------------------------------

BOT_MANAGEMENT_PATH = r"/zones/(?P<zone_id>[^/]+)/bot_management"


def install_bot_management_route(app: cloudflare_api.CloudflareApp) -> None:
    """Add ``GET /zones/{zone_id}/bot_management`` to a Cloudflare emulator that lacks it.

    The result has the fields of a Free-plan zone (``fight_mode`` from the zone's
    ``bot_fight_mode``), as the cloudflare SDK 5.9 type ``BotFightModeConfiguration`` lists
    them.
    """
    if any(pattern.pattern == BOT_MANAGEMENT_PATH for route_method, pattern, handler, permission in app.routes):
        return

    def get_bot_management(request: Request, match: re.Match[str]) -> dict[str, Any]:
        zone = app.state["zones"].get(match["zone_id"])
        if zone is None:
            raise cloudflare_api.ApiError(
                404, cloudflare_api.ROUTE_NOT_FOUND, f"Could not route to /zones/{match['zone_id']}, perhaps your object identifier is invalid?"
            )
        return cloudflare_api.envelope(
            {
                "fight_mode": bool(zone.get("bot_fight_mode")),
                "enable_js": bool(zone.get("bot_fight_mode")),
                "ai_bots_protection": "disabled",
                "crawler_protection": "disabled",
                "using_latest_model": True,
            }
        )

    # NOTE: which permission group the real read needs is unconfirmed; Zone Read is
    # assumed, so that the demo token can read it.
    app.routes.append(("GET", re.compile(BOT_MANAGEMENT_PATH), get_bot_management, "Zone Read"))


# --- start --------------------------------------------------------------------------------


def start(
    seed_section: dict[str, Any],
    state_dir: pathlib.Path | None,
    host: str = "127.0.0.1",
    cloudflare: cloudflare_api.CloudflareApp | None = None,
) -> tuple[EdgeServer, dict[str, Any]]:
    """Start the edge for `cloudflare` (default: the Cloudflare emulator started last here).

    Seed keys: ``port`` (0 or absent: chosen by the OS), ``team_domain`` (Access login host,
    default ``homelab.cloudflareaccess.com``) and ``origin_response_timeout`` (seconds, default
    100). The edge keeps no state on disk; `state_dir` is accepted for the launcher's interface.
    """
    if cloudflare is None:
        if not cloudflare_api.RUNNING_APPS:
            raise RuntimeError(
                "the edge emulator needs a Cloudflare API emulator in the same process: "
                "start cloudflare_api first (a seed file needs a 'cloudflare' section as well as 'edge')"
            )
        cloudflare = cloudflare_api.RUNNING_APPS[-1]
    install_bot_management_route(cloudflare)
    app = EdgeApp(cloudflare, seed_section or {})
    server = EdgeServer((host, int((seed_section or {}).get("port", 0))), app)
    server.start_in_thread()
    info = {
        "url": server.url,
        "admin_url": f"{server.url}/__emulator__",
        "host": server.host,
        "port": server.port,
        "team_domain": app.team_domain,
    }
    return server, info


__all__ = ["EdgeApp", "EdgeServer", "expression_matches", "install_bot_management_route", "start"]
