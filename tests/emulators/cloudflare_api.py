"""Stateful emulator of the Cloudflare v4 API, for the tests and `make demo`.

It serves, under ``/client/v4/``, the operations this collection calls: accounts and zones,
Cloudflare Tunnels (with connections, token and remote configuration), DNS records, Access
applications, reusable Access policies, Access service tokens, and zone phase entrypoint
rulesets for ``http_ratelimit`` and ``http_request_firewall_custom``. Responses use
Cloudflare's envelope ``{"success", "errors", "messages", "result", "result_info"}``; every
failure is a 4xx/5xx with ``success: false``, ``result: null`` and at least one error.

Authentication is ``Authorization: Bearer <token>`` with tokens from the seed. Each operation
needs one permission group (the names are Cloudflare's); a "Write" group also grants the
matching "Read". A missing, unknown or insufficient token gets HTTP 403 with code 10000.

==========================================================  ====================================
operation                                                   permission group
==========================================================  ====================================
GET  /accounts                                              Account Settings Read
GET  /zones                                                 Zone Read
GET  /accounts/{a}/cfd_tunnel[/{t}[/connections|token|      Cloudflare Tunnel Read
configurations]]
POST, PATCH, PUT, DELETE under /accounts/{a}/cfd_tunnel     Cloudflare Tunnel Write
GET  /zones/{z}/dns_records[/{id}]                          DNS Read
POST, PUT, PATCH, DELETE under /zones/{z}/dns_records       DNS Write
GET  /accounts/{a}/access/apps|policies[/{id}]              Access: Apps and Policies Read
POST, PUT, DELETE under /accounts/{a}/access/apps|policies  Access: Apps and Policies Write
GET  /accounts/{a}/access/service_tokens[/{id}]             Access: Service Tokens Read
POST, PUT, DELETE under .../access/service_tokens           Access: Service Tokens Write
GET  /zones/{z}/rulesets/phases/{phase}/entrypoint          Zone WAF Read
PUT  /zones/{z}/rulesets/phases/{phase}/entrypoint          Zone WAF Write
==========================================================  ====================================

Error codes. Observed in live Cloudflare responses: 10000 (authentication), 1013 (duplicate
tunnel name, HTTP 409), 1022 (tunnel delete with active connections), 81044 (DNS record
not found), 81053/81054/81058 (DNS conflicts, HTTP 400), 10003 (missing ruleset entrypoint,
HTTP 404). The codes in the ``UNCONFIRMED`` block below are this emulator's choice where no
live response was available; modules must not depend on them.

Admin routes (no authentication, loopback only) come from :mod:`tests.emulators.httpserver`,
plus:

* ``POST /__emulator__/cloudflare/connectors`` ``{"token", "origin_ip"?, "version"?, "arch"?,
  "connections"?}``: register a connector the way cloudflared does with a tunnel token; the
  token's account, tunnel and secret must match. Returns ``{"client_id", "tunnel_id"}``.
* ``GET /__emulator__/cloudflare/connectors``: all connectors with their tunnel ids.
* ``DELETE /__emulator__/cloudflare/connectors/{client_id}``: the connector goes away.
* ``POST /__emulator__/cloudflare/access/check`` ``{"client_id", "client_secret"}``: whether
  Access would accept that service token pair now; returns ``{"valid", "service_token_id"}``.
* ``POST /__emulator__/cloudflare/clock`` ``{"advance_seconds"}``: move the emulator's clock
  forward, for expiry and grace-period tests.

State is kept in memory. With a state directory, it is also written to ``cloudflare.json``
there (mode 0600) after each successful write, and read back on start. API tokens are not
part of the state: they always come from the seed. Service token client secrets are stored
only as SHA-256 digests. Tunnel secrets are stored as given, because the token endpoint
must return them.
"""

from __future__ import annotations

import base64
import binascii
import copy
import datetime as dt
import hashlib
import ipaddress
import json
import logging
import os
import pathlib
import re
import secrets
import string
import uuid
import zlib
from typing import Any, Callable

from tests.emulators.httpserver import (
    DEFAULT_SECRET_KEYS,
    REDACTED,
    EmulatorApp,
    EmulatorServer,
    Request,
    Response,
    json_response,
)

LOG = logging.getLogger(__name__)

API_PREFIX = "/client/v4"
STATE_FILE = "cloudflare.json"

# --- error codes -------------------------------------------------------------------------

AUTH_ERROR = 10000
TUNNEL_NAME_CONFLICT = 1013
TUNNEL_HAS_CONNECTIONS = 1022
DNS_RECORD_NOT_FOUND = 81044
DNS_HOST_CONFLICT = 81053
DNS_CNAME_CONFLICT = 81054
DNS_IDENTICAL_RECORD = 81058
RULESET_ENTRYPOINT_NOT_FOUND = 10003

# UNCONFIRMED: codes (and for some, the HTTP status) chosen here without a live response.
ROUTE_NOT_FOUND = 7003  # code from the schema's generic failure example; status 404 chosen here
INVALID_REQUEST = 1001  # generic input validation failure, HTTP 400
TUNNEL_NOT_FOUND = 1003  # HTTP 404
DNS_VALIDATION_ERROR = 1004  # HTTP 400, with the detail in the message
DNS_RECORD_NOT_PROXIABLE = 9004  # HTTP 400
ACCESS_NOT_FOUND = 12130  # HTTP 404, applications, policies and service tokens
ACCESS_INVALID_REQUEST = 12131  # HTTP 400
ACCESS_DOMAIN_CONFLICT = 12132  # HTTP 400, an application already protects the domain
ACCESS_POLICY_IN_USE = 12133  # HTTP 400, reusable policy still attached to applications
RULESET_VALIDATION_ERROR = 20120  # HTTP 400, with source.pointer to the offending field

# --- permissions ----------------------------------------------------------------------------

ALL_PERMISSIONS = (
    "Account Settings Read",
    "Account Settings Write",
    "Zone Read",
    "Zone Write",
    "DNS Read",
    "DNS Write",
    "Cloudflare Tunnel Read",
    "Cloudflare Tunnel Write",
    "Access: Apps and Policies Read",
    "Access: Apps and Policies Write",
    "Access: Service Tokens Read",
    "Access: Service Tokens Write",
    "Zone WAF Read",
    "Zone WAF Write",
)


def token_has_permission(granted: set[str], needed: str) -> bool:
    """Return whether the granted permission groups include `needed`; Write implies Read."""
    if needed in granted:
        return True
    if needed.endswith(" Read"):
        return needed[: -len("Read")] + "Write" in granted
    return False


# --- plans --------------------------------------------------------------------------------

PLAN_NAMES = {"free": "Free Website", "pro": "Pro Website", "business": "Business Website", "enterprise": "Enterprise Website"}
# Cloudflare's Free plan id is a fixed well-known value; the others are stable stand-ins.
PLAN_IDS = {
    "free": "0feeeeeeeeeeeeeeeeeeeeeeeeeeeeee",
    "pro": hashlib.md5(b"pro").hexdigest(),
    "business": hashlib.md5(b"business").hexdigest(),
    "enterprise": hashlib.md5(b"enterprise").hexdigest(),
}

# Rate limiting rules per plan: rule count, allowed periods and mitigation timeouts (seconds),
# allowed counting characteristics (None = any), and whether a counting expression is allowed.
SUPPORTED_PERIODS = (10, 15, 20, 30, 40, 45, 60, 90, 120, 180, 240, 300, 480, 600, 900, 1200, 1800, 2400, 3600, 65535, 86400)
SUPPORTED_TIMEOUTS = (0, 10, 60, 120, 300, 600, 3600, 86400)
RATE_LIMIT_PLANS: dict[str, dict[str, Any]] = {
    "free": {"rules": 1, "periods": (10,), "timeouts": (10,), "characteristics": ("cf.colo.id", "ip.src"), "counting_expression": False},
    "pro": {
        "rules": 2,
        "periods": tuple(p for p in SUPPORTED_PERIODS if p <= 60),
        "timeouts": tuple(t for t in SUPPORTED_TIMEOUTS if t <= 3600),
        "characteristics": ("cf.colo.id", "ip.src"),
        "counting_expression": False,
    },
    "business": {
        "rules": 5,
        "periods": tuple(p for p in SUPPORTED_PERIODS if p <= 600),
        "timeouts": SUPPORTED_TIMEOUTS,
        "characteristics": ("cf.colo.id", "ip.src", "cf.unique_visitor_id"),
        "counting_expression": True,
    },
    # NOTE: Enterprise limits depend on the contract; 100 rules is a stand-in.
    "enterprise": {"rules": 100, "periods": SUPPORTED_PERIODS, "timeouts": SUPPORTED_TIMEOUTS, "characteristics": None, "counting_expression": True},
}
CHALLENGE_ACTIONS = ("challenge", "js_challenge", "managed_challenge")
PHASE_ACTIONS = {
    "http_ratelimit": ("block", "challenge", "js_challenge", "managed_challenge", "log"),
    "http_request_firewall_custom": ("block", "challenge", "js_challenge", "managed_challenge", "log", "skip"),
}

DNS_TYPES = (
    "A", "AAAA", "CAA", "CERT", "CNAME", "DNSKEY", "DS", "HTTPS", "LOC", "MX", "NAPTR", "NS",
    "OPENPGPKEY", "PTR", "SMIMEA", "SRV", "SSHFP", "SVCB", "TLSA", "TXT", "URI",
)
PROXIABLE_TYPES = ("A", "AAAA", "CNAME")
DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")
DURATION_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600}


class ApiError(Exception):
    """A failed API call, turned into Cloudflare's failure envelope by the app."""

    def __init__(self, status: int, code: int, message: str, pointer: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.errors = [error_item(code, message, pointer)]

    @classmethod
    def many(cls, status: int, errors: list[dict[str, Any]]) -> ApiError:
        error = cls(status, errors[0]["code"], errors[0]["message"])
        error.errors = errors
        return error


def error_item(code: int, message: str, pointer: str | None = None) -> dict[str, Any]:
    item: dict[str, Any] = {"code": code, "message": message}
    if pointer is not None:
        item["source"] = {"pointer": pointer}
    return item


def envelope(result: Any, result_info: dict[str, Any] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"success": True, "errors": [], "messages": [], "result": result}
    if result_info is not None:
        body["result_info"] = result_info
    return body


def failure(errors: list[dict[str, Any]]) -> dict[str, Any]:
    return {"success": False, "errors": errors, "messages": [], "result": None}


# --- small helpers ---------------------------------------------------------------------------


def hex32() -> str:
    return uuid.uuid4().hex


def format_time(moment: dt.datetime) -> str:
    return moment.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(value: str) -> dt.datetime:
    moment = dt.datetime.fromisoformat(value)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.timezone.utc)
    return moment


def parse_duration(value: str) -> dt.timedelta | None:
    """Parse a Go duration (``8760h``, ``1h30m``) into a timedelta; ``forever`` gives None.

    Raises ValueError for anything else.
    """
    if value == "forever":
        return None
    if not value or DURATION_PART.sub("", value) != "":
        raise ValueError(value)
    seconds = sum(float(number) * DURATION_UNITS[unit] for number, unit in DURATION_PART.findall(value))
    return dt.timedelta(seconds=seconds)


def sha256(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def new_client_secret() -> str:
    """Return a secret in Cloudflare's current format: cfast_, 40 alphanumerics, 8-char checksum."""
    alphabet = string.ascii_letters + string.digits
    body = "".join(secrets.choice(alphabet) for position in range(40))
    return f"cfast_{body}{zlib.crc32(body.encode()):08x}"


def tunnel_token(account_tag: str, tunnel_id: str, secret_b64: str) -> str:
    """Encode a tunnel token like cloudflared expects: base64 of JSON {"a", "t", "s"}."""
    payload = json.dumps({"a": account_tag, "t": tunnel_id, "s": secret_b64}, separators=(",", ":"))
    return base64.b64encode(payload.encode()).decode()


def decode_tunnel_token(token: str) -> dict[str, str]:
    """Decode a tunnel token; raises ValueError naming what is wrong."""
    try:
        payload = json.loads(base64.b64decode(token, validate=True))
    except (binascii.Error, ValueError):
        raise ValueError("invalid tunnel token: expected base64 of a JSON object") from None
    if not isinstance(payload, dict) or not all(isinstance(payload.get(key), str) for key in ("a", "t", "s")):
        raise ValueError('invalid tunnel token: the JSON object needs string fields "a", "t" and "s"')
    return payload


def parse_bool(value: str | None, name: str) -> bool | None:
    if value is None or value == "":
        return None
    lowered = value.lower()
    if lowered in ("true", "1"):
        return True
    if lowered in ("false", "0"):
        return False
    raise ApiError(400, INVALID_REQUEST, f"Invalid value for {name}: {value!r}. Expected true or false.")


def paginate(
    request: Request,
    items: list[Any],
    *,
    default_per_page: int,
    min_per_page: int = 1,
    max_per_page: int = 1000,
    total_pages: bool = False,
) -> dict[str, Any]:
    """Cut one page out of `items` and return the success envelope with result_info.

    A page past the end returns an empty result, which is what ends the SDK's iteration.
    """
    try:
        page = int(request.query_value("page", "1") or 1)
        per_page = int(request.query_value("per_page", str(default_per_page)) or default_per_page)
    except ValueError:
        raise ApiError(400, INVALID_REQUEST, "Invalid pagination: page and per_page must be integers.") from None
    if page < 1:
        raise ApiError(400, INVALID_REQUEST, f"Invalid value for page: {page}. It must be 1 or greater.")
    if not min_per_page <= per_page <= max_per_page:
        raise ApiError(
            400,
            INVALID_REQUEST,
            f"Invalid value for per_page: {per_page}. It must be between {min_per_page} and {max_per_page}.",
        )
    start = (page - 1) * per_page
    chunk = items[start : start + per_page]
    info = {"page": page, "per_page": per_page, "count": len(chunk), "total_count": len(items)}
    if total_pages:
        info["total_pages"] = (len(items) + per_page - 1) // per_page
    return envelope(chunk, info)


def body_object(request: Request, required: bool = True) -> dict[str, Any]:
    """Return the JSON object body, {} when absent and optional; raise 400 otherwise."""
    if request.json_error is not None:
        raise ApiError(400, INVALID_REQUEST, f"Invalid JSON body: {request.json_error}")
    if request.json is None:
        if required:
            raise ApiError(400, INVALID_REQUEST, "Missing JSON body: this operation needs a JSON object.")
        return {}
    if not isinstance(request.json, dict):
        raise ApiError(400, INVALID_REQUEST, "Invalid JSON body: expected a JSON object.")
    return request.json


def require_string(body: dict[str, Any], key: str, code: int = INVALID_REQUEST) -> str:
    value = body.get(key)
    if not isinstance(value, str) or not value.strip():
        raise ApiError(400, code, f"Missing or invalid field {key!r}: expected a non-empty string.", f"/{key}")
    return value


def string_filter_matches(actual: str | None, operator: str, expected: str) -> bool:
    """Apply a Cloudflare list filter (exact, contains, startswith, endswith) case-insensitively."""
    actual_lower = (actual or "").lower()
    expected_lower = expected.lower()
    if operator == "exact":
        return actual_lower == expected_lower
    if operator == "contains":
        return expected_lower in actual_lower
    if operator == "startswith":
        return actual_lower.startswith(expected_lower)
    if operator == "endswith":
        return actual_lower.endswith(expected_lower)
    raise ApiError(400, INVALID_REQUEST, f"Invalid filter operator {operator!r}.")


# --- the application ------------------------------------------------------------------------

Handler = Callable[[Request, re.Match[str]], dict[str, Any] | tuple[int, dict[str, Any]]]


class CloudflareApp(EmulatorApp):
    """The emulated API: routing, authentication, state and the admin extensions."""

    name = "cloudflare"
    secret_keys = DEFAULT_SECRET_KEYS

    def __init__(self, seed: dict[str, Any], state_dir: pathlib.Path | None = None, validate: bool = False) -> None:
        super().__init__()
        self.seed = copy.deepcopy(seed)
        self.state_dir = state_dir
        self.validate = validate
        self.clock_offset = dt.timedelta(0)
        self.api_tokens = {
            entry["value"]: {"name": entry.get("name", ""), "permissions": set(entry.get("permissions", []))}
            for entry in seed.get("api_tokens", [])
        }
        self.routes = self._build_routes()
        self.state: dict[str, Any] = {}
        self.dns_name_index: dict[str, dict[str, set[str]]] = {}
        loaded = self._load_persisted()
        if loaded is None:
            self.reset()
        else:
            self.set_state(loaded, persist=False)

    # -- clock

    def now(self) -> dt.datetime:
        return dt.datetime.now(dt.timezone.utc) + self.clock_offset

    def now_text(self) -> str:
        return format_time(self.now())

    # -- state handling

    def reset(self) -> None:
        with self.lock:
            self.clock_offset = dt.timedelta(0)
            self.set_state(self._seeded_state())

    def _seeded_state(self) -> dict[str, Any]:
        created = self.now_text()
        state: dict[str, Any] = {
            "accounts": {},
            "zones": {},
            "tunnels": {},
            "dns_records": {},
            "access_apps": {},
            "access_policies": {},
            "service_tokens": {},
            "rulesets": {},
        }
        for account in self.seed.get("accounts", []):
            state["accounts"][account["id"]] = {
                "id": account["id"],
                "name": account["name"],
                "type": account.get("type", "standard"),
                "settings": {"enforce_twofactor": False, "abuse_contact_email": None},
                "created_on": created,
            }
        for zone in self.seed.get("zones", []):
            account_id = zone.get("account_id") or next(iter(state["accounts"]))
            zone_id = zone["id"]
            state["zones"][zone_id] = {
                "id": zone_id,
                "name": zone["name"].lower(),
                "account_id": account_id,
                "plan": zone.get("plan", "free"),
                "status": zone.get("status", "active"),
                "bot_fight_mode": bool(zone.get("bot_fight_mode", False)),
                "created_on": created,
            }
            state["dns_records"][zone_id] = {}
            state["rulesets"][zone_id] = {}
        for record in self.seed.get("dns_records", []):
            zone_id = self._zone_id_by_name(state, record["zone"])
            stored = self._new_dns_record(state["zones"][zone_id], dict(record, zone=None), created)
            state["dns_records"][zone_id][stored["id"]] = stored
        return state

    @staticmethod
    def _zone_id_by_name(state: dict[str, Any], name: str) -> str:
        for zone_id, zone in state["zones"].items():
            if zone["name"] == name.lower():
                return zone_id
        raise ValueError(f"seed DNS record names unknown zone {name!r}: add the zone to the seed's zones")

    def get_state(self) -> dict[str, Any]:
        with self.lock:
            return copy.deepcopy(self.state)

    def set_state(self, state: dict[str, Any], persist: bool = True) -> None:
        required = ("accounts", "zones", "tunnels", "dns_records", "access_apps", "access_policies", "service_tokens", "rulesets")
        missing = [key for key in required if not isinstance(state.get(key), dict)]
        if missing:
            raise ValueError(f"missing or non-object keys {missing}; GET the state first and change that document")
        with self.lock:
            self.state = copy.deepcopy(state)
            self._rebuild_dns_index()
            if persist:
                self._persist()

    def _rebuild_dns_index(self) -> None:
        self.dns_name_index = {}
        for zone_id, records in self.state["dns_records"].items():
            index: dict[str, set[str]] = {}
            for record_id, record in records.items():
                index.setdefault(record["name"].lower(), set()).add(record_id)
            self.dns_name_index[zone_id] = index

    def _load_persisted(self) -> dict[str, Any] | None:
        if self.state_dir is None:
            return None
        path = self.state_dir / STATE_FILE
        if not path.exists():
            return None
        LOG.info("loading Cloudflare emulator state from %s", path)
        return json.loads(path.read_text())

    def _persist(self) -> None:
        if self.state_dir is None:
            return
        self.state_dir.mkdir(parents=True, exist_ok=True)
        path = self.state_dir / STATE_FILE
        temporary = path.with_suffix(".tmp")
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w") as handle:
            json.dump(self.state, handle)
        os.replace(temporary, path)

    # -- request handling

    def error_body(self, status: int, message: str) -> dict[str, Any]:
        return failure([error_item(status if status >= 1000 else 10000 + status, message)])

    def is_write(self, request: Request) -> bool:
        if request.query_value("dry_run") == "true":
            return False
        return request.method not in ("GET", "HEAD")

    def handle(self, request: Request) -> Response:
        if not request.path.startswith(API_PREFIX + "/"):
            return json_response(404, failure([error_item(ROUTE_NOT_FOUND, "No route for the URI")]))
        path = request.path[len(API_PREFIX) :]
        try:
            granted = self._authenticate(request)
            handler, match, permission = self._route(request.method, path)
            if not token_has_permission(granted, permission):
                raise ApiError(403, AUTH_ERROR, "Authentication error")
            with self.lock:
                outcome = handler(request, match)
                status, body = outcome if isinstance(outcome, tuple) else (200, outcome)
                if self.is_write(request) and status < 300:
                    self._persist()
        except ApiError as error:
            LOG.info("%s %s failed with HTTP %s: %s", request.method, request.path, error.status, error.errors)
            return json_response(error.status, failure(error.errors))
        return json_response(status, body)

    def _authenticate(self, request: Request) -> set[str]:
        header = request.header("authorization") or ""
        scheme, separator, value = header.partition(" ")
        token = self.api_tokens.get(value.strip()) if scheme.lower() == "bearer" else None
        if token is None:
            raise ApiError(403, AUTH_ERROR, "Authentication error")
        return token["permissions"]

    def _route(self, method: str, path: str) -> tuple[Handler, re.Match[str], str]:
        path_matched = False
        for route_method, pattern, handler, permission in self.routes:
            match = pattern.fullmatch(path)
            if match is None:
                continue
            path_matched = True
            if route_method == method:
                return handler, match, permission
        if path_matched:
            raise ApiError(405, ROUTE_NOT_FOUND, f"Method {method} not allowed for {API_PREFIX}{path}")
        raise ApiError(404, ROUTE_NOT_FOUND, "No route for the URI")

    def _build_routes(self) -> list[tuple[str, re.Pattern[str], Handler, str]]:
        account = r"/accounts/(?P<account_id>[^/]+)"
        zone = r"/zones/(?P<zone_id>[^/]+)"
        tunnel = account + r"/cfd_tunnel/(?P<tunnel_id>[^/]+)"
        table: list[tuple[str, str, Handler, str]] = [
            ("GET", r"/accounts", self.list_accounts, "Account Settings Read"),
            ("GET", r"/zones", self.list_zones, "Zone Read"),
            ("GET", zone, self.get_zone, "Zone Read"),
            ("GET", account + r"/cfd_tunnel", self.list_tunnels, "Cloudflare Tunnel Read"),
            ("POST", account + r"/cfd_tunnel", self.create_tunnel, "Cloudflare Tunnel Write"),
            ("GET", tunnel, self.get_tunnel, "Cloudflare Tunnel Read"),
            ("PATCH", tunnel, self.update_tunnel, "Cloudflare Tunnel Write"),
            ("DELETE", tunnel, self.delete_tunnel, "Cloudflare Tunnel Write"),
            ("GET", tunnel + r"/connections", self.list_connections, "Cloudflare Tunnel Read"),
            ("DELETE", tunnel + r"/connections", self.delete_connections, "Cloudflare Tunnel Write"),
            ("GET", tunnel + r"/token", self.get_tunnel_token, "Cloudflare Tunnel Read"),
            ("GET", tunnel + r"/configurations", self.get_configuration, "Cloudflare Tunnel Read"),
            ("PUT", tunnel + r"/configurations", self.put_configuration, "Cloudflare Tunnel Write"),
            ("GET", zone + r"/dns_records", self.list_dns_records, "DNS Read"),
            ("POST", zone + r"/dns_records", self.create_dns_record, "DNS Write"),
            ("GET", zone + r"/dns_records/(?P<record_id>[^/]+)", self.get_dns_record, "DNS Read"),
            ("PUT", zone + r"/dns_records/(?P<record_id>[^/]+)", self.put_dns_record, "DNS Write"),
            ("PATCH", zone + r"/dns_records/(?P<record_id>[^/]+)", self.patch_dns_record, "DNS Write"),
            ("DELETE", zone + r"/dns_records/(?P<record_id>[^/]+)", self.delete_dns_record, "DNS Write"),
            ("GET", account + r"/access/apps", self.list_apps, "Access: Apps and Policies Read"),
            ("POST", account + r"/access/apps", self.create_app, "Access: Apps and Policies Write"),
            ("GET", account + r"/access/apps/(?P<app_id>[^/]+)", self.get_app, "Access: Apps and Policies Read"),
            ("PUT", account + r"/access/apps/(?P<app_id>[^/]+)", self.put_app, "Access: Apps and Policies Write"),
            ("DELETE", account + r"/access/apps/(?P<app_id>[^/]+)", self.delete_app, "Access: Apps and Policies Write"),
            ("GET", account + r"/access/policies", self.list_policies, "Access: Apps and Policies Read"),
            ("POST", account + r"/access/policies", self.create_policy, "Access: Apps and Policies Write"),
            ("GET", account + r"/access/policies/(?P<policy_id>[^/]+)", self.get_policy, "Access: Apps and Policies Read"),
            ("PUT", account + r"/access/policies/(?P<policy_id>[^/]+)", self.put_policy, "Access: Apps and Policies Write"),
            ("DELETE", account + r"/access/policies/(?P<policy_id>[^/]+)", self.delete_policy, "Access: Apps and Policies Write"),
            ("GET", account + r"/access/service_tokens", self.list_service_tokens, "Access: Service Tokens Read"),
            ("POST", account + r"/access/service_tokens", self.create_service_token, "Access: Service Tokens Write"),
            ("GET", account + r"/access/service_tokens/(?P<token_id>[^/]+)", self.get_service_token, "Access: Service Tokens Read"),
            ("PUT", account + r"/access/service_tokens/(?P<token_id>[^/]+)", self.put_service_token, "Access: Service Tokens Write"),
            ("DELETE", account + r"/access/service_tokens/(?P<token_id>[^/]+)", self.delete_service_token, "Access: Service Tokens Write"),
            ("POST", account + r"/access/service_tokens/(?P<token_id>[^/]+)/rotate", self.rotate_service_token, "Access: Service Tokens Write"),
            ("POST", account + r"/access/service_tokens/(?P<token_id>[^/]+)/refresh", self.refresh_service_token, "Access: Service Tokens Write"),
            ("GET", zone + r"/rulesets/phases/(?P<phase>[^/]+)/entrypoint", self.get_entrypoint, "Zone WAF Read"),
            ("PUT", zone + r"/rulesets/phases/(?P<phase>[^/]+)/entrypoint", self.put_entrypoint, "Zone WAF Write"),
        ]
        return [(method, re.compile(pattern), handler, permission) for method, pattern, handler, permission in table]

    def check_schema(self, request: Request, response: Response) -> list[str]:
        if not self.validate or not request.path.startswith(API_PREFIX + "/"):
            return []
        from tests.emulators.openapi_check import load_checker

        checker = load_checker()
        path = request.path[len(API_PREFIX) :]
        violations = checker.check_request(request.method, path, request.query, request.json, request.json is not None)
        violations += checker.check_response(request.method, path, response.status, response.body)
        return [self._scrub(str(violation), request.json, response.body) for violation in violations]

    def _scrub(self, message: str, *documents: Any) -> str:
        """Remove secret values from a schema violation message, which quotes the instance."""
        for value in _secret_values(documents, self.secret_keys):
            message = message.replace(value, REDACTED)
        return message

    def admin_routes(self) -> list[tuple[str, str, Any]]:
        return [
            ("POST", r"/cloudflare/connectors", self.register_connector),
            ("GET", r"/cloudflare/connectors", self.list_connectors),
            ("DELETE", r"/cloudflare/connectors/(?P<client_id>[^/]+)", self.remove_connector),
            ("POST", r"/cloudflare/access/check", self.admin_check_service_token),
            ("POST", r"/cloudflare/clock", self.admin_advance_clock),
        ]

    # -- lookups shared by the handlers

    def _account(self, match: re.Match[str]) -> dict[str, Any]:
        account = self.state["accounts"].get(match["account_id"])
        if account is None:
            raise ApiError(
                404, ROUTE_NOT_FOUND, f"Could not route to /accounts/{match['account_id']}, perhaps your object identifier is invalid?"
            )
        return account

    def _zone(self, match: re.Match[str]) -> dict[str, Any]:
        zone = self.state["zones"].get(match["zone_id"])
        if zone is None:
            raise ApiError(
                404, ROUTE_NOT_FOUND, f"Could not route to /zones/{match['zone_id']}, perhaps your object identifier is invalid?"
            )
        return zone

    # -- accounts and zones

    def list_accounts(self, request: Request, match: re.Match[str]) -> dict[str, Any]:
        name = request.query_value("name")
        accounts = [a for a in self.state["accounts"].values() if name is None or a["name"].lower() == name.lower()]
        accounts.sort(key=lambda a: a["name"].lower(), reverse=request.query_value("direction") == "desc")
        result = [dict(a) for a in accounts]
        return paginate(request, result, default_per_page=20, min_per_page=5, max_per_page=50)

    def zone_view(self, zone: dict[str, Any]) -> dict[str, Any]:
        account = self.state["accounts"][zone["account_id"]]
        plan = zone["plan"]
        return {
            "id": zone["id"],
            "name": zone["name"],
            "status": zone["status"],
            "paused": False,
            "type": "full",
            "development_mode": 0,
            "name_servers": ["ada.ns.cloudflare.com", "bob.ns.cloudflare.com"],
            "original_name_servers": [],
            "original_registrar": None,
            "original_dnshost": None,
            "created_on": zone["created_on"],
            "modified_on": zone["created_on"],
            "activated_on": zone["created_on"],
            "meta": {"step": 2, "custom_certificate_quota": 0, "page_rule_quota": 3, "phishing_detected": False},
            "owner": {"id": account["id"], "type": "organization", "name": account["name"]},
            "account": {"id": account["id"], "name": account["name"]},
            "permissions": [],
            "plan": {
                "id": PLAN_IDS[plan],
                "name": PLAN_NAMES[plan],
                "legacy_id": plan,
                "price": 0,
                "currency": "USD",
                "frequency": "",
                "is_subscribed": True,
                "can_subscribe": False,
                "legacy_discount": False,
                "externally_managed": False,
            },
        }

    def get_zone(self, request: Request, match: re.Match[str]) -> dict[str, Any]:
        # NOTE: GET /zones/{zone_id} is outside the OpenAPI subset, so its responses are not
        # schema-checked; the body is the same zone object as a /zones list item, which is.
        return envelope(self.zone_view(self._zone(match)))

    def list_zones(self, request: Request, match: re.Match[str]) -> dict[str, Any]:
        checks: list[Callable[[dict[str, Any]], bool]] = []
        name = request.query_value("name")
        if name is not None:
            operator, separator, operand = name.partition(":")
            operators = {
                "equal": lambda z: z["name"] == operand.lower(),
                "not_equal": lambda z: z["name"] != operand.lower(),
                "starts_with": lambda z: z["name"].startswith(operand.lower()),
                "ends_with": lambda z: z["name"].endswith(operand.lower()),
                "contains": lambda z: operand.lower() in z["name"],
            }
            if operand and operator in operators:
                checks.append(operators[operator])
            else:
                checks.append(lambda z: z["name"] == name.lower())
        if request.query_value("status") is not None:
            checks.append(lambda z: z["status"] == request.query_value("status"))
        if request.query_value("account.id") is not None:
            checks.append(lambda z: z["account_id"] == request.query_value("account.id"))
        if request.query_value("account.name") is not None:
            checks.append(lambda z: self.state["accounts"][z["account_id"]]["name"] == request.query_value("account.name"))
        match_any = request.query_value("match") == "any"
        zones = [
            z
            for z in self.state["zones"].values()
            if not checks or (any(c(z) for c in checks) if match_any else all(c(z) for c in checks))
        ]
        zones.sort(key=lambda z: z["name"], reverse=request.query_value("direction") == "desc")
        return paginate(request, [self.zone_view(z) for z in zones], default_per_page=20, min_per_page=5, max_per_page=50)

    # -- tunnels

    def tunnel_view(self, tunnel: dict[str, Any]) -> dict[str, Any]:
        connections = [conn for connector in tunnel["connectors"] for conn in connector["conns"]]
        if connections:
            status = "healthy"
        elif tunnel["conns_active_at"] is not None:
            status = "down"
        else:
            status = "inactive"
        return {
            "id": tunnel["id"],
            "account_tag": tunnel["account_id"],
            "name": tunnel["name"],
            "created_at": tunnel["created_at"],
            "deleted_at": tunnel["deleted_at"],
            "connections": copy.deepcopy(connections),
            "conns_active_at": tunnel["conns_active_at"],
            "conns_inactive_at": tunnel["conns_inactive_at"],
            "metadata": {},
            "remote_config": tunnel["config_src"] == "cloudflare",
            "config_src": tunnel["config_src"],
            "status": status,
            "tun_type": "cfd_tunnel",
        }

    def _tunnel(self, match: re.Match[str]) -> dict[str, Any]:
        account = self._account(match)
        tunnel = self.state["tunnels"].get(match["tunnel_id"])
        if tunnel is None or tunnel["account_id"] != account["id"]:
            raise ApiError(404, TUNNEL_NOT_FOUND, f"Tunnel {match['tunnel_id']} not found.")
        return tunnel

    def _live_tunnel(self, match: re.Match[str]) -> dict[str, Any]:
        # NOTE: real behaviour of writes to a deleted tunnel is unconfirmed; they are rejected here.
        tunnel = self._tunnel(match)
        if tunnel["deleted_at"] is not None:
            raise ApiError(404, TUNNEL_NOT_FOUND, f"Tunnel {tunnel['id']} has been deleted.")
        return tunnel

    def list_tunnels(self, request: Request, match: re.Match[str]) -> dict[str, Any]:
        account = self._account(match)
        is_deleted = parse_bool(request.query_value("is_deleted"), "is_deleted")
        name = request.query_value("name")
        uuid_filter = request.query_value("uuid")
        status = request.query_value("status")
        include_prefix = request.query_value("include_prefix")
        exclude_prefix = request.query_value("exclude_prefix")
        existed_at = request.query_value("existed_at")
        tunnels = []
        for tunnel in self.state["tunnels"].values():
            if tunnel["account_id"] != account["id"]:
                continue
            if is_deleted is not None and (tunnel["deleted_at"] is not None) != is_deleted:
                continue
            if name is not None and tunnel["name"] != name:
                continue
            if uuid_filter is not None and tunnel["id"] != uuid_filter:
                continue
            if include_prefix is not None and not tunnel["name"].startswith(include_prefix):
                continue
            if exclude_prefix is not None and tunnel["name"].startswith(exclude_prefix):
                continue
            if existed_at is not None and not self._existed_at(tunnel, existed_at):
                continue
            view = self.tunnel_view(tunnel)
            if status is not None and view["status"] != status:
                continue
            tunnels.append(view)
        # NOTE: was_active_at and was_inactive_at are accepted but not applied.
        tunnels.sort(key=lambda t: t["created_at"])
        return paginate(request, tunnels, default_per_page=20, min_per_page=1, max_per_page=1000)

    @staticmethod
    def _existed_at(tunnel: dict[str, Any], moment_text: str) -> bool:
        try:
            moment = parse_time(moment_text)
        except ValueError:
            raise ApiError(400, INVALID_REQUEST, f"Invalid value for existed_at: {moment_text!r}. Expected an RFC 3339 time.") from None
        if parse_time(tunnel["created_at"]) > moment:
            return False
        return tunnel["deleted_at"] is None or parse_time(tunnel["deleted_at"]) > moment

    def create_tunnel(self, request: Request, match: re.Match[str]) -> dict[str, Any]:
        account = self._account(match)
        body = body_object(request)
        name = require_string(body, "name")
        config_src = body.get("config_src", "local")
        if config_src not in ("local", "cloudflare"):
            raise ApiError(400, INVALID_REQUEST, f"Invalid config_src {config_src!r}: expected local or cloudflare.", "/config_src")
        secret = body.get("tunnel_secret")
        if secret is None:
            secret = base64.b64encode(secrets.token_bytes(32)).decode()
        else:
            try:
                decoded = base64.b64decode(secret, validate=True) if isinstance(secret, str) else b""
            except binascii.Error:
                decoded = b""
            if len(decoded) < 32:
                raise ApiError(
                    400, INVALID_REQUEST, "Invalid tunnel_secret: it must be at least 32 bytes, encoded as base64.", "/tunnel_secret"
                )
        for other in self.state["tunnels"].values():
            if other["account_id"] == account["id"] and other["name"] == name and other["deleted_at"] is None:
                raise ApiError(409, TUNNEL_NAME_CONFLICT, "You already have a tunnel with this name.")
        # NOTE: Cloudflare's own client reads an undocumented `token` field from this response.
        # Whether the API always sends it is unconfirmed, so it is left out here.
        tunnel = {
            "id": str(uuid.uuid4()),
            "account_id": account["id"],
            "name": name,
            "secret": secret,
            "config_src": config_src,
            "created_at": self.now_text(),
            "deleted_at": None,
            "conns_active_at": None,
            "conns_inactive_at": None,
            "connectors": [],
            "configuration": None,
        }
        self.state["tunnels"][tunnel["id"]] = tunnel
        return envelope(self.tunnel_view(tunnel))

    def get_tunnel(self, request: Request, match: re.Match[str]) -> dict[str, Any]:
        return envelope(self.tunnel_view(self._tunnel(match)))

    def update_tunnel(self, request: Request, match: re.Match[str]) -> dict[str, Any]:
        tunnel = self._live_tunnel(match)
        body = body_object(request)
        if "name" in body:
            name = require_string(body, "name")
            for other in self.state["tunnels"].values():
                if other is not tunnel and other["account_id"] == tunnel["account_id"] and other["name"] == name and other["deleted_at"] is None:
                    raise ApiError(409, TUNNEL_NAME_CONFLICT, "You already have a tunnel with this name.")
            tunnel["name"] = name
        if "tunnel_secret" in body:
            secret = body["tunnel_secret"]
            try:
                decoded = base64.b64decode(secret, validate=True) if isinstance(secret, str) else b""
            except binascii.Error:
                decoded = b""
            if len(decoded) < 32:
                raise ApiError(
                    400, INVALID_REQUEST, "Invalid tunnel_secret: it must be at least 32 bytes, encoded as base64.", "/tunnel_secret"
                )
            tunnel["secret"] = secret
        return envelope(self.tunnel_view(tunnel))

    def delete_tunnel(self, request: Request, match: re.Match[str]) -> dict[str, Any]:
        tunnel = self._live_tunnel(match)
        if request.json_error is not None:
            raise ApiError(400, INVALID_REQUEST, f"Invalid JSON body: {request.json_error}")
        cascade = parse_bool(request.query_value("cascade"), "cascade")
        if tunnel["connectors"] and not cascade:
            # NOTE: the code and message are observed; HTTP 400 is unconfirmed.
            raise ApiError(400, TUNNEL_HAS_CONNECTIONS, "Cannot delete tunnel because it has active connections.")
        self._remove_connectors(tunnel, None)
        tunnel["deleted_at"] = self.now_text()
        return envelope(self.tunnel_view(tunnel))

    def list_connections(self, request: Request, match: re.Match[str]) -> dict[str, Any]:
        tunnel = self._tunnel(match)
        clients = [
            {
                "id": connector["id"],
                "arch": connector["arch"],
                "config_version": connector["config_version"],
                "conns": copy.deepcopy(connector["conns"]),
                "features": list(connector["features"]),
                "run_at": connector["run_at"],
                "version": connector["version"],
            }
            for connector in tunnel["connectors"]
        ]
        return envelope(clients)

    def delete_connections(self, request: Request, match: re.Match[str]) -> dict[str, Any]:
        tunnel = self._tunnel(match)
        client_id = request.query_value("client_id")
        self._remove_connectors(tunnel, client_id)
        # NOTE: the real result of this call is unconfirmed; an empty object matches the schema.
        return envelope({})

    def _remove_connectors(self, tunnel: dict[str, Any], client_id: str | None) -> int:
        before = len(tunnel["connectors"])
        tunnel["connectors"] = [c for c in tunnel["connectors"] if client_id is not None and c["id"] != client_id]
        removed = before - len(tunnel["connectors"])
        if removed and not tunnel["connectors"]:
            tunnel["conns_inactive_at"] = self.now_text()
        return removed

    def get_tunnel_token(self, request: Request, match: re.Match[str]) -> dict[str, Any]:
        tunnel = self._live_tunnel(match)
        return envelope(tunnel_token(tunnel["account_id"], tunnel["id"], tunnel["secret"]))

    def configuration_view(self, tunnel: dict[str, Any]) -> dict[str, Any]:
        configuration = tunnel["configuration"] or {}
        return {
            "account_id": tunnel["account_id"],
            "tunnel_id": tunnel["id"],
            "config": copy.deepcopy(configuration.get("config")),
            "source": tunnel["config_src"],
            "version": configuration.get("version", 0),
            "created_at": configuration.get("created_at", tunnel["created_at"]),
        }

    def get_configuration(self, request: Request, match: re.Match[str]) -> dict[str, Any]:
        # NOTE: what Cloudflare returns before the first PUT is unconfirmed; here config is
        # null and version 0.
        return envelope(self.configuration_view(self._tunnel(match)))

    def put_configuration(self, request: Request, match: re.Match[str]) -> dict[str, Any]:
        tunnel = self._live_tunnel(match)
        body = body_object(request)
        config = body.get("config")
        if not isinstance(config, dict):
            raise ApiError(400, INVALID_REQUEST, "Missing or invalid field 'config': expected an object.", "/config")
        validate_ingress(config.get("ingress"))
        previous = tunnel["configuration"] or {"version": 0}
        version = previous["version"] + 1
        tunnel["configuration"] = {"config": copy.deepcopy(config), "version": version, "created_at": self.now_text()}
        for connector in tunnel["connectors"]:
            connector["config_version"] = version
        return envelope(self.configuration_view(tunnel))

    # -- connectors (admin)

    def register_connector(self, request: Request, match: re.Match[str]) -> Response:
        data = request.json if isinstance(request.json, dict) else {}
        token = data.get("token")
        if not isinstance(token, str):
            return json_response(400, {"error": "missing field 'token': pass the tunnel token string"})
        try:
            payload = decode_tunnel_token(token)
        except ValueError as error:
            return json_response(400, {"error": str(error)})
        with self.lock:
            tunnel = self.state["tunnels"].get(payload["t"])
            if tunnel is None or tunnel["account_id"] != payload["a"]:
                return json_response(404, {"error": f"tunnel {payload['t']} not found in account {payload['a']}"})
            if tunnel["deleted_at"] is not None:
                return json_response(409, {"error": f"tunnel {tunnel['id']} has been deleted"})
            if not secrets.compare_digest(payload["s"], tunnel["secret"]):
                LOG.warning("connector rejected for tunnel %s: wrong tunnel secret", tunnel["id"])
                return json_response(403, {"error": f"wrong tunnel secret for tunnel {tunnel['id']}"})
            now = self.now_text()
            client_id = str(uuid.uuid4())
            version = str(data.get("version", "2026.8.0"))
            colos = ("ams01", "fra02", "ams08", "fra11")
            count = int(data.get("connections", 4))
            connector = {
                "id": client_id,
                "arch": str(data.get("arch", "linux_amd64")),
                "version": version,
                "config_version": (tunnel["configuration"] or {}).get("version", 0),
                "features": ["serialized_headers", "support_datagram_v3_2"],
                "run_at": now,
                "conns": [
                    {
                        "id": str(uuid.uuid4()),
                        "uuid": str(uuid.uuid4()),
                        "client_id": client_id,
                        "client_version": version,
                        "colo_name": colos[index % len(colos)],
                        "is_pending_reconnect": False,
                        "opened_at": now,
                        "origin_ip": str(data.get("origin_ip", "198.51.100.7")),
                    }
                    for index in range(count)
                ],
            }
            if not tunnel["connectors"]:
                tunnel["conns_active_at"] = now
            tunnel["connectors"].append(connector)
            self._persist()
        return json_response(201, {"client_id": client_id, "tunnel_id": tunnel["id"]})

    def list_connectors(self, request: Request, match: re.Match[str]) -> Response:
        with self.lock:
            connectors = [
                {"client_id": connector["id"], "tunnel_id": tunnel["id"], "connections": len(connector["conns"])}
                for tunnel in self.state["tunnels"].values()
                for connector in tunnel["connectors"]
            ]
        return json_response(200, {"connectors": connectors})

    def remove_connector(self, request: Request, match: re.Match[str]) -> Response:
        client_id = match["client_id"]
        with self.lock:
            for tunnel in self.state["tunnels"].values():
                if self._remove_connectors(tunnel, client_id):
                    self._persist()
                    return json_response(200, {"client_id": client_id, "tunnel_id": tunnel["id"]})
        return json_response(404, {"error": f"connector {client_id} not found"})

    # -- DNS records

    def _new_dns_record(self, zone: dict[str, Any], body: dict[str, Any], now: str) -> dict[str, Any]:
        record_type = body.get("type")
        if record_type not in DNS_TYPES:
            raise ApiError(400, DNS_VALIDATION_ERROR, f"DNS Validation Error: invalid record type {record_type!r}.", "/type")
        raw_name = body.get("name")
        if not isinstance(raw_name, str) or not raw_name.strip():
            raise ApiError(400, DNS_VALIDATION_ERROR, "DNS Validation Error: the record name is missing.", "/name")
        record = {
            "id": hex32(),
            "zone_id": zone["id"],
            "zone_name": zone["name"],
            "name": fqdn(raw_name, zone["name"]),
            "type": record_type,
            "created_on": now,
        }
        self._apply_dns_fields(record, body, now, replace=True)
        return record

    def _apply_dns_fields(self, record: dict[str, Any], body: dict[str, Any], now: str, replace: bool) -> None:
        """Validate and copy the writable fields; with `replace`, absent fields get defaults."""
        defaults = {"content": None, "proxied": False, "ttl": 1, "comment": None, "tags": [], "settings": {}}
        for key, default in defaults.items():
            if key in body:
                value = body[key]
            elif replace:
                value = default
            else:
                continue
            if key == "comment" and value is not None and record.get("comment") != value:
                record["comment_modified_on"] = now
            if key == "tags" and value != record.get("tags", []):
                record["tags_modified_on"] = now
            record[key] = copy.deepcopy(value)
        for key in ("priority", "data"):
            if key in body:
                record[key] = copy.deepcopy(body[key])
            elif replace:
                record.pop(key, None)
        record["modified_on"] = now
        record["proxiable"] = record["type"] in PROXIABLE_TYPES
        record["meta"] = {"auto_added": False, "managed_by_apps": False, "managed_by_argo_tunnel": False}
        validate_dns_record(record)

    def dns_view(self, record: dict[str, Any]) -> dict[str, Any]:
        view = copy.deepcopy(record)
        # NOTE: whether Cloudflare sends "comment": null or leaves it out is unconfirmed. The
        # 2024 schema does not allow null, so an absent comment is left out.
        if view.get("comment") is None:
            view.pop("comment", None)
        return view

    def _dns_conflicts(self, zone_id: str, candidate: dict[str, Any], ignore_id: str | None = None) -> None:
        index = self.dns_name_index.get(zone_id, {})
        records = self.state["dns_records"][zone_id]
        others = [records[i] for i in index.get(candidate["name"].lower(), ()) if i != ignore_id]
        for other in others:
            same_content = (other.get("content") or "").lower().rstrip(".") == (candidate.get("content") or "").lower().rstrip(".")
            if other["type"] == candidate["type"] and same_content and other.get("data") == candidate.get("data"):
                raise ApiError(400, DNS_IDENTICAL_RECORD, "An identical record already exists.")
        # NOTE: the real API's choice between 81053 and 81054 for every type pair is
        # unconfirmed; A/AAAA/CNAME clashes give 81053, other types next to a CNAME 81054.
        for other in others:
            if candidate["type"] == "CNAME" and other["type"] in PROXIABLE_TYPES:
                raise ApiError(400, DNS_HOST_CONFLICT, "An A, AAAA, or CNAME record with that host already exists.")
            if other["type"] == "CNAME" and candidate["type"] in PROXIABLE_TYPES:
                raise ApiError(400, DNS_HOST_CONFLICT, "An A, AAAA, or CNAME record with that host already exists.")
            if other["type"] == "CNAME":
                raise ApiError(400, DNS_CNAME_CONFLICT, "A CNAME record with that host already exists.")

    def _index_dns(self, zone_id: str, record: dict[str, Any]) -> None:
        self.dns_name_index.setdefault(zone_id, {}).setdefault(record["name"].lower(), set()).add(record["id"])

    def _unindex_dns(self, zone_id: str, record: dict[str, Any]) -> None:
        ids = self.dns_name_index.get(zone_id, {}).get(record["name"].lower())
        if ids is not None:
            ids.discard(record["id"])
            if not ids:
                del self.dns_name_index[zone_id][record["name"].lower()]

    def _dns_record(self, zone: dict[str, Any], match: re.Match[str]) -> dict[str, Any]:
        record = self.state["dns_records"][zone["id"]].get(match["record_id"])
        if record is None:
            raise ApiError(404, DNS_RECORD_NOT_FOUND, "Record does not exist.")
        return record

    def list_dns_records(self, request: Request, match: re.Match[str]) -> dict[str, Any]:
        zone = self._zone(match)
        records = self.state["dns_records"][zone["id"]]
        match_any = request.query_value("match") == "any"
        checks: list[Callable[[dict[str, Any]], bool]] = []
        exact_names: list[str] = []

        for key, values in request.query.items():
            value = values[-1]
            field, separator, operator = key.partition(".")
            if field == "name":
                operator = operator or "exact"
                if operator == "exact":
                    exact_names.append(value.lower())
                checks.append(lambda r, o=operator, v=value: string_filter_matches(r["name"], o, v))
            elif field == "content":
                checks.append(lambda r, o=operator or "exact", v=value: string_filter_matches(r.get("content"), o, v))
            elif key == "type":
                checks.append(lambda r, v=value.upper(): r["type"] == v)
            elif key == "proxied":
                expected = parse_bool(value, "proxied")
                checks.append(lambda r, e=expected: r.get("proxied") == e)
            elif field == "comment":
                checks.append(self._presence_filter("comment", operator, value))
            elif field == "tag":
                checks.append(self._tag_filter(operator, value))
            elif key == "search":
                checks.append(
                    lambda r, v=value.lower(): any(v in str(r.get(k) or "").lower() for k in ("name", "content", "comment"))
                )

        if exact_names and not match_any:
            candidates = [records[i] for name in set(exact_names) for i in self.dns_name_index.get(zone["id"], {}).get(name, ())]
        else:
            candidates = list(records.values())
        if checks:
            if match_any:
                candidates = [r for r in candidates if any(check(r) for check in checks)]
            else:
                candidates = [r for r in candidates if all(check(r) for check in checks)]

        order = request.query_value("order", "type")
        if order not in ("type", "name", "content", "ttl", "proxied"):
            raise ApiError(400, INVALID_REQUEST, f"Invalid value for order: {order!r}.")
        candidates.sort(key=lambda r: (str(r.get(order)), r["name"], r["id"]), reverse=request.query_value("direction") == "desc")
        return paginate(
            request, [self.dns_view(r) for r in candidates], default_per_page=100, max_per_page=5_000_000, total_pages=True
        )

    @staticmethod
    def _presence_filter(key: str, operator: str, value: str) -> Callable[[dict[str, Any]], bool]:
        if operator == "present":
            return lambda r: bool(r.get(key))
        if operator == "absent":
            return lambda r: not r.get(key)
        return lambda r: string_filter_matches(r.get(key), operator or "exact", value)

    @staticmethod
    def _tag_filter(operator: str, value: str) -> Callable[[dict[str, Any]], bool]:
        def tag_matches(record: dict[str, Any]) -> bool:
            tags = record.get("tags") or []
            if operator == "present":
                return any(tag.split(":", 1)[0].lower() == value.lower() for tag in tags)
            if operator == "absent":
                return not any(tag.split(":", 1)[0].lower() == value.lower() for tag in tags)
            return any(string_filter_matches(tag, operator or "exact", value) for tag in tags)

        return tag_matches

    def create_dns_record(self, request: Request, match: re.Match[str]) -> dict[str, Any]:
        zone = self._zone(match)
        record = self._new_dns_record(zone, body_object(request), self.now_text())
        self._dns_conflicts(zone["id"], record)
        self.state["dns_records"][zone["id"]][record["id"]] = record
        self._index_dns(zone["id"], record)
        return envelope(self.dns_view(record))

    def get_dns_record(self, request: Request, match: re.Match[str]) -> dict[str, Any]:
        zone = self._zone(match)
        return envelope(self.dns_view(self._dns_record(zone, match)))

    def put_dns_record(self, request: Request, match: re.Match[str]) -> dict[str, Any]:
        return self._update_dns_record(request, match, replace=True)

    def patch_dns_record(self, request: Request, match: re.Match[str]) -> dict[str, Any]:
        return self._update_dns_record(request, match, replace=False)

    def _update_dns_record(self, request: Request, match: re.Match[str], replace: bool) -> dict[str, Any]:
        zone = self._zone(match)
        current = self._dns_record(zone, match)
        body = body_object(request)
        updated = copy.deepcopy(current)
        if replace or "type" in body:
            record_type = body.get("type")
            if record_type not in DNS_TYPES:
                raise ApiError(400, DNS_VALIDATION_ERROR, f"DNS Validation Error: invalid record type {record_type!r}.", "/type")
            updated["type"] = record_type
        if replace or "name" in body:
            if not isinstance(body.get("name"), str) or not body["name"].strip():
                raise ApiError(400, DNS_VALIDATION_ERROR, "DNS Validation Error: the record name is missing.", "/name")
            updated["name"] = fqdn(body["name"], zone["name"])
        self._apply_dns_fields(updated, body, self.now_text(), replace=replace)
        self._dns_conflicts(zone["id"], updated, ignore_id=current["id"])
        self._unindex_dns(zone["id"], current)
        self.state["dns_records"][zone["id"]][current["id"]] = updated
        self._index_dns(zone["id"], updated)
        return envelope(self.dns_view(updated))

    def delete_dns_record(self, request: Request, match: re.Match[str]) -> dict[str, Any]:
        zone = self._zone(match)
        record = self._dns_record(zone, match)
        del self.state["dns_records"][zone["id"]][record["id"]]
        self._unindex_dns(zone["id"], record)
        return envelope({"id": record["id"]})

    # -- Access policies

    def policy_view(self, policy: dict[str, Any]) -> dict[str, Any]:
        view = {key: copy.deepcopy(value) for key, value in policy.items() if key not in ("account_id", "app_id")}
        view["app_count"] = sum(
            1 for app in self.state["access_apps"].values() if any(link["id"] == policy["id"] for link in app["policies"])
        )
        view["reusable"] = policy.get("app_id") is None
        return view

    def _policy(self, account: dict[str, Any], policy_id: str) -> dict[str, Any]:
        policy = self.state["access_policies"].get(policy_id)
        if policy is None or policy["account_id"] != account["id"] or policy.get("app_id") is not None:
            raise ApiError(404, ACCESS_NOT_FOUND, f"Access policy {policy_id} not found.")
        return policy

    def _policy_fields(self, account: dict[str, Any], body: dict[str, Any]) -> dict[str, Any]:
        name = require_string(body, "name", ACCESS_INVALID_REQUEST)
        decision = body.get("decision")
        if decision not in ("allow", "deny", "non_identity", "bypass"):
            raise ApiError(
                400, ACCESS_INVALID_REQUEST, f"Invalid decision {decision!r}: expected allow, deny, non_identity or bypass.", "/decision"
            )
        fields: dict[str, Any] = {"name": name, "decision": decision}
        for key in ("include", "exclude", "require"):
            rules = body.get(key, [] if key != "include" else None)
            if not isinstance(rules, list) or (key == "include" and not rules):
                raise ApiError(400, ACCESS_INVALID_REQUEST, f"Invalid {key!r}: expected a list of rule objects (include needs at least one).", f"/{key}")
            for index, rule in enumerate(rules):
                self._validate_access_rule(account, rule, f"/{key}/{index}")
            fields[key] = copy.deepcopy(rules)
        session_duration = body.get("session_duration", "24h")
        try:
            parse_duration(session_duration)
        except (ValueError, TypeError):
            raise ApiError(
                400,
                ACCESS_INVALID_REQUEST,
                f"Invalid session_duration {session_duration!r}: expected a duration such as 24h.",
                "/session_duration",
            ) from None
        fields["session_duration"] = session_duration
        for key, default in (
            ("approval_required", False),
            ("isolation_required", False),
            ("purpose_justification_required", False),
        ):
            fields[key] = bool(body.get(key, default))
        for key in ("approval_groups", "purpose_justification_prompt", "mfa_config", "connection_rules"):
            if key in body:
                fields[key] = copy.deepcopy(body[key])
        return fields

    def _validate_access_rule(self, account: dict[str, Any], rule: Any, pointer: str) -> None:
        if not isinstance(rule, dict) or len(rule) != 1:
            raise ApiError(400, ACCESS_INVALID_REQUEST, "Invalid rule: each rule is an object with exactly one selector key.", pointer)
        selector, value = next(iter(rule.items()))
        if not isinstance(value, dict):
            raise ApiError(400, ACCESS_INVALID_REQUEST, f"Invalid rule {selector!r}: its value must be an object.", pointer)
        if selector == "service_token":
            token_id = value.get("token_id")
            token = self.state["service_tokens"].get(token_id) if isinstance(token_id, str) else None
            if token is None or token["account_id"] != account["id"]:
                raise ApiError(400, ACCESS_INVALID_REQUEST, f"Service token {token_id!r} not found in this account.", pointer + "/service_token/token_id")

    def list_policies(self, request: Request, match: re.Match[str]) -> dict[str, Any]:
        account = self._account(match)
        policies = [
            self.policy_view(p)
            for p in self.state["access_policies"].values()
            if p["account_id"] == account["id"] and p.get("app_id") is None
        ]
        policies.sort(key=lambda p: p["created_at"])
        # NOTE: the default page size of Access lists is unconfirmed; 25 is a stand-in.
        return paginate(request, policies, default_per_page=25, max_per_page=1000)

    def create_policy(self, request: Request, match: re.Match[str]) -> tuple[int, dict[str, Any]]:
        account = self._account(match)
        fields = self._policy_fields(account, body_object(request))
        now = self.now_text()
        policy = {"id": str(uuid.uuid4()), "account_id": account["id"], **fields, "created_at": now, "updated_at": now}
        self.state["access_policies"][policy["id"]] = policy
        return 201, envelope(self.policy_view(policy))

    def get_policy(self, request: Request, match: re.Match[str]) -> dict[str, Any]:
        account = self._account(match)
        return envelope(self.policy_view(self._policy(account, match["policy_id"])))

    def put_policy(self, request: Request, match: re.Match[str]) -> dict[str, Any]:
        account = self._account(match)
        policy = self._policy(account, match["policy_id"])
        fields = self._policy_fields(account, body_object(request))
        replaced = {key: policy[key] for key in ("id", "account_id", "created_at")}
        replaced.update(fields)
        replaced["updated_at"] = self.now_text()
        self.state["access_policies"][policy["id"]] = replaced
        return envelope(self.policy_view(replaced))

    def delete_policy(self, request: Request, match: re.Match[str]) -> tuple[int, dict[str, Any]]:
        account = self._account(match)
        policy = self._policy(account, match["policy_id"])
        users = [app["id"] for app in self.state["access_apps"].values() if any(link["id"] == policy["id"] for link in app["policies"])]
        if users:
            # NOTE: the real error for this case is unconfirmed; code and wording are this emulator's.
            raise ApiError(
                400,
                ACCESS_POLICY_IN_USE,
                f"Access policy {policy['id']} is still used by {len(users)} application(s): {', '.join(users)}. Remove it from them first.",
            )
        del self.state["access_policies"][policy["id"]]
        return 202, envelope({"id": policy["id"]})

    # -- Access applications

    def app_view(self, app: dict[str, Any]) -> dict[str, Any]:
        view = {key: copy.deepcopy(value) for key, value in app.items() if key not in ("account_id", "policies")}
        expanded = []
        for link in sorted(app["policies"], key=lambda link: link["precedence"]):
            policy = self.state["access_policies"].get(link["id"])
            if policy is None:
                continue
            item = self.policy_view(policy)
            item["precedence"] = link["precedence"]
            expanded.append(item)
        view["policies"] = expanded
        return view

    def _app(self, account: dict[str, Any], app_id: str) -> dict[str, Any]:
        app = self.state["access_apps"].get(app_id)
        if app is None or app["account_id"] != account["id"]:
            raise ApiError(404, ACCESS_NOT_FOUND, f"Access application {app_id} not found.")
        return app

    def _app_fields(self, account: dict[str, Any], body: dict[str, Any], app_id: str) -> tuple[dict[str, Any], list[Any]]:
        app_type = require_string(body, "type", ACCESS_INVALID_REQUEST)
        if app_type != "self_hosted":
            # NOTE: only self-hosted applications are emulated.
            raise ApiError(400, ACCESS_INVALID_REQUEST, f"Unsupported application type {app_type!r} in this emulator: use self_hosted.", "/type")
        domain = require_string(body, "domain", ACCESS_INVALID_REQUEST)
        for other in self.state["access_apps"].values():
            if other["id"] != app_id and other["account_id"] == account["id"] and other["domain"].lower() == domain.lower():
                # NOTE: the real error for a duplicate domain is unconfirmed.
                raise ApiError(400, ACCESS_DOMAIN_CONFLICT, f"An Access application for domain {domain} already exists ({other['id']}).", "/domain")
        session_duration = body.get("session_duration", "24h")
        try:
            parse_duration(session_duration)
        except (ValueError, TypeError):
            raise ApiError(
                400,
                ACCESS_INVALID_REQUEST,
                f"Invalid session_duration {session_duration!r}: expected a duration such as 24h.",
                "/session_duration",
            ) from None
        fields = {key: copy.deepcopy(value) for key, value in body.items() if key not in ("id", "aud", "created_at", "updated_at", "policies")}
        fields.update(
            {
                "type": app_type,
                "domain": domain,
                "name": body.get("name", domain),
                "session_duration": session_duration,
                "app_launcher_visible": body.get("app_launcher_visible", True),
                "auto_redirect_to_identity": body.get("auto_redirect_to_identity", False),
                "enable_binding_cookie": body.get("enable_binding_cookie", False),
                "http_only_cookie_attribute": body.get("http_only_cookie_attribute", True),
                "options_preflight_bypass": body.get("options_preflight_bypass", False),
                "service_auth_401_redirect": body.get("service_auth_401_redirect", False),
                "allowed_idps": body.get("allowed_idps", []),
                "tags": body.get("tags", []),
                "self_hosted_domains": body.get("self_hosted_domains", [domain]),
                "destinations": body.get("destinations", [{"type": "public", "uri": domain}]),
            }
        )
        policies = body.get("policies", [])
        if not isinstance(policies, list):
            raise ApiError(400, ACCESS_INVALID_REQUEST, "Invalid 'policies': expected a list.", "/policies")
        return fields, policies

    def _link_policies(self, account: dict[str, Any], app_id: str, items: list[Any]) -> list[dict[str, Any]]:
        """Turn the request's policies[] into stored links, creating inline policies."""
        links: list[dict[str, Any]] = []
        kinds = set()
        for index, item in enumerate(items):
            pointer = f"/policies/{index}"
            if isinstance(item, str):
                policy_id, precedence, inline = item, index + 1, None
            elif isinstance(item, dict) and ("decision" in item or "include" in item):
                policy_id, precedence, inline = None, item.get("precedence", index + 1), item
            elif isinstance(item, dict) and isinstance(item.get("id"), str):
                policy_id, precedence, inline = item["id"], item.get("precedence", index + 1), None
            else:
                raise ApiError(400, ACCESS_INVALID_REQUEST, "Invalid policy item: expected a policy id, {id, precedence} or an inline policy.", pointer)
            kinds.add("inline" if inline is not None else "reusable")
            if not isinstance(precedence, int) or precedence < 1:
                raise ApiError(400, ACCESS_INVALID_REQUEST, f"Invalid precedence {precedence!r}: expected a positive integer.", pointer + "/precedence")
            if inline is None:
                self._policy(account, policy_id)
            links.append({"id": policy_id, "precedence": precedence, "inline": inline})
        if len(kinds) > 1:
            raise ApiError(400, ACCESS_INVALID_REQUEST, "Reusable and inline policies are mutually exclusive.", "/policies")
        precedences = [link["precedence"] for link in links]
        if len(set(precedences)) != len(precedences):
            raise ApiError(400, ACCESS_INVALID_REQUEST, "Policy precedence must be unique within an application.", "/policies")

        stored = []
        now = self.now_text()
        for link in links:
            if link["inline"] is not None:
                fields = self._policy_fields(account, link["inline"])
                policy = {"id": str(uuid.uuid4()), "account_id": account["id"], "app_id": app_id, **fields, "created_at": now, "updated_at": now}
                self.state["access_policies"][policy["id"]] = policy
                link["id"] = policy["id"]
            stored.append({"id": link["id"], "precedence": link["precedence"]})
        return stored

    def _drop_inline_policies(self, app_id: str) -> None:
        for policy_id in [pid for pid, p in self.state["access_policies"].items() if p.get("app_id") == app_id]:
            del self.state["access_policies"][policy_id]

    def list_apps(self, request: Request, match: re.Match[str]) -> dict[str, Any]:
        account = self._account(match)
        exact = parse_bool(request.query_value("exact"), "exact")
        operator = "exact" if exact else "contains"
        apps = [a for a in self.state["access_apps"].values() if a["account_id"] == account["id"]]
        for key in ("name", "domain"):
            value = request.query_value(key)
            if value is not None:
                apps = [a for a in apps if string_filter_matches(a.get(key), operator, value)]
        aud = request.query_value("aud")
        if aud is not None:
            apps = [a for a in apps if a["aud"] == aud]
        search = request.query_value("search")
        if search is not None:
            apps = [a for a in apps if search.lower() in a["name"].lower() or search.lower() in a["domain"].lower()]
        apps.sort(key=lambda a: a["created_at"])
        return paginate(request, [self.app_view(a) for a in apps], default_per_page=25, max_per_page=1000)

    def create_app(self, request: Request, match: re.Match[str]) -> tuple[int, dict[str, Any]]:
        account = self._account(match)
        app_id = str(uuid.uuid4())
        fields, policies = self._app_fields(account, body_object(request), app_id)
        now = self.now_text()
        app = {"id": app_id, "account_id": account["id"], "aud": secrets.token_hex(32), **fields, "created_at": now, "updated_at": now}
        app["policies"] = self._link_policies(account, app_id, policies)
        self.state["access_apps"][app_id] = app
        return 201, envelope(self.app_view(app))

    def get_app(self, request: Request, match: re.Match[str]) -> dict[str, Any]:
        account = self._account(match)
        return envelope(self.app_view(self._app(account, match["app_id"])))

    def put_app(self, request: Request, match: re.Match[str]) -> dict[str, Any]:
        account = self._account(match)
        current = self._app(account, match["app_id"])
        fields, policies = self._app_fields(account, body_object(request), current["id"])
        replaced = {key: current[key] for key in ("id", "account_id", "aud", "created_at")}
        replaced.update(fields)
        replaced["updated_at"] = self.now_text()
        self._drop_inline_policies(current["id"])
        replaced["policies"] = self._link_policies(account, current["id"], policies)
        self.state["access_apps"][current["id"]] = replaced
        return envelope(self.app_view(replaced))

    def delete_app(self, request: Request, match: re.Match[str]) -> tuple[int, dict[str, Any]]:
        account = self._account(match)
        app = self._app(account, match["app_id"])
        del self.state["access_apps"][app["id"]]
        self._drop_inline_policies(app["id"])
        return 202, envelope({"id": app["id"]})

    # -- Access service tokens

    def service_token_view(self, token: dict[str, Any]) -> dict[str, Any]:
        return {
            "id": token["id"],
            "name": token["name"],
            "client_id": token["client_id"],
            "duration": token["duration"],
            "enabled": token["enabled"],
            "expires_at": token["expires_at"],
            "created_at": token["created_at"],
            "updated_at": token["updated_at"],
        }

    def _service_token(self, account: dict[str, Any], token_id: str) -> dict[str, Any]:
        token = self.state["service_tokens"].get(token_id)
        if token is None or token["account_id"] != account["id"]:
            raise ApiError(404, ACCESS_NOT_FOUND, f"Access service token {token_id} not found.")
        return token

    def _expiry(self, duration: str, start: dt.datetime) -> str | None:
        try:
            length = parse_duration(duration)
        except (ValueError, TypeError):
            raise ApiError(
                400, ACCESS_INVALID_REQUEST, f"Invalid duration {duration!r}: expected a duration such as 8760h, or forever.", "/duration"
            ) from None
        # NOTE: what expires_at holds for a "forever" token is unconfirmed; null here.
        return None if length is None else format_time(start + length)

    def _parse_expiry_time(self, body: dict[str, Any]) -> str:
        value = body.get("previous_client_secret_expires_at")
        if value is None:
            return self.now_text()
        try:
            return format_time(parse_time(value))
        except (ValueError, TypeError):
            raise ApiError(
                400,
                ACCESS_INVALID_REQUEST,
                f"Invalid previous_client_secret_expires_at {value!r}: expected an RFC 3339 time.",
                "/previous_client_secret_expires_at",
            ) from None

    def _new_secret(self, token: dict[str, Any], previous_expires_at: str | None) -> str:
        secret = new_client_secret()
        current = token["secrets"][0] if token["secrets"] else None
        token["secrets"] = [{"sha256": sha256(secret), "expires_at": None}]
        if current is not None and previous_expires_at is not None:
            token["secrets"].append({"sha256": current["sha256"], "expires_at": previous_expires_at})
        return secret

    def list_service_tokens(self, request: Request, match: re.Match[str]) -> dict[str, Any]:
        account = self._account(match)
        tokens = [t for t in self.state["service_tokens"].values() if t["account_id"] == account["id"]]
        name = request.query_value("name")
        if name is not None:
            tokens = [t for t in tokens if t["name"] == name]
        search = request.query_value("search")
        if search is not None:
            tokens = [t for t in tokens if search.lower() in t["name"].lower()]
        tokens.sort(key=lambda t: t["created_at"])
        return paginate(request, [self.service_token_view(t) for t in tokens], default_per_page=25, max_per_page=1000)

    def create_service_token(self, request: Request, match: re.Match[str]) -> tuple[int, dict[str, Any]]:
        account = self._account(match)
        body = body_object(request)
        name = require_string(body, "name", ACCESS_INVALID_REQUEST)
        duration = body.get("duration", "8760h")
        now = self.now()
        token = {
            "id": str(uuid.uuid4()),
            "account_id": account["id"],
            "name": name,
            "client_id": f"{hex32()}.access",
            "duration": duration,
            "enabled": bool(body.get("enabled", True)),
            "expires_at": self._expiry(duration, now),
            "created_at": format_time(now),
            "updated_at": format_time(now),
            "client_secret_version": int(body.get("client_secret_version", 1)),
            "secrets": [],
        }
        secret = self._new_secret(token, None)
        self.state["service_tokens"][token["id"]] = token
        return 201, envelope(dict(self.service_token_view(token), client_secret=secret))

    def get_service_token(self, request: Request, match: re.Match[str]) -> dict[str, Any]:
        account = self._account(match)
        return envelope(self.service_token_view(self._service_token(account, match["token_id"])))

    def put_service_token(self, request: Request, match: re.Match[str]) -> dict[str, Any]:
        account = self._account(match)
        token = self._service_token(account, match["token_id"])
        body = body_object(request, required=False)
        now = self.now()
        if "name" in body:
            token["name"] = require_string(body, "name", ACCESS_INVALID_REQUEST)
        if "duration" in body:
            token["expires_at"] = self._expiry(body["duration"], now)
            token["duration"] = body["duration"]
        if "enabled" in body:
            token["enabled"] = bool(body["enabled"])
            if not token["enabled"]:
                token["secrets"] = token["secrets"][:1]
        new_secret = None
        version = body.get("client_secret_version")
        if version is not None and int(version) > token["client_secret_version"]:
            # Raising client_secret_version rotates the secret. The new secret is returned,
            # because there is no other way to learn it.
            token["client_secret_version"] = int(version)
            new_secret = self._new_secret(token, self._parse_expiry_time(body))
        elif "previous_client_secret_expires_at" in body:
            # Without a rotation, the field moves the end of the running grace period (for
            # example to now, which ends it). NOTE: unconfirmed against the live API; the
            # API documents the field on update without saying what it does there.
            expires_at = self._parse_expiry_time(body)
            for entry in token["secrets"][1:]:
                entry["expires_at"] = expires_at
        token["updated_at"] = format_time(now)
        view = self.service_token_view(token)
        if new_secret is not None:
            view["client_secret"] = new_secret
        return envelope(view)

    def rotate_service_token(self, request: Request, match: re.Match[str]) -> dict[str, Any]:
        account = self._account(match)
        token = self._service_token(account, match["token_id"])
        body = body_object(request, required=False)
        secret = self._new_secret(token, self._parse_expiry_time(body))
        token["client_secret_version"] += 1
        token["updated_at"] = self.now_text()
        return envelope(dict(self.service_token_view(token), client_secret=secret))

    def refresh_service_token(self, request: Request, match: re.Match[str]) -> dict[str, Any]:
        account = self._account(match)
        token = self._service_token(account, match["token_id"])
        if token["expires_at"] is not None:
            # NOTE: whether Cloudflare extends from the old expiry or from now is unconfirmed;
            # this extends from the later of the two.
            start = max(parse_time(token["expires_at"]), self.now())
            token["expires_at"] = self._expiry(token["duration"], start)
        token["updated_at"] = self.now_text()
        return envelope(self.service_token_view(token))

    def delete_service_token(self, request: Request, match: re.Match[str]) -> dict[str, Any]:
        account = self._account(match)
        token = self._service_token(account, match["token_id"])
        del self.state["service_tokens"][token["id"]]
        return envelope(self.service_token_view(token))

    def check_service_token(self, client_id: str, client_secret: str) -> str | None:
        """Return the id of the service token that Access would accept for this pair now, or None."""
        digest = sha256(client_secret)
        with self.lock:
            now = self.now()
            for token in self.state["service_tokens"].values():
                if token["client_id"] != client_id:
                    continue
                if not token["enabled"]:
                    return None
                if token["expires_at"] is not None and parse_time(token["expires_at"]) <= now:
                    return None
                for entry in token["secrets"]:
                    valid = entry["expires_at"] is None or parse_time(entry["expires_at"]) > now
                    if valid and secrets.compare_digest(entry["sha256"], digest):
                        return token["id"]
                return None
        return None

    def admin_check_service_token(self, request: Request, match: re.Match[str]) -> Response:
        data = request.json if isinstance(request.json, dict) else {}
        client_id, client_secret = data.get("client_id"), data.get("client_secret")
        if not isinstance(client_id, str) or not isinstance(client_secret, str):
            return json_response(400, {"error": "missing fields: pass client_id and client_secret as strings"})
        token_id = self.check_service_token(client_id, client_secret)
        return json_response(200, {"valid": token_id is not None, "service_token_id": token_id})

    def admin_advance_clock(self, request: Request, match: re.Match[str]) -> Response:
        data = request.json if isinstance(request.json, dict) else {}
        try:
            seconds = float(data["advance_seconds"])
        except (KeyError, TypeError, ValueError):
            return json_response(400, {"error": "missing or invalid advance_seconds: pass a number of seconds"})
        with self.lock:
            self.clock_offset += dt.timedelta(seconds=seconds)
            now = self.now_text()
        return json_response(200, {"now": now})

    # -- rulesets

    def get_entrypoint(self, request: Request, match: re.Match[str]) -> dict[str, Any]:
        zone = self._zone(match)
        phase = match["phase"]
        ruleset = self.state["rulesets"].setdefault(zone["id"], {}).get(phase)
        if ruleset is None:
            raise ApiError(404, RULESET_ENTRYPOINT_NOT_FOUND, f"could not find entrypoint ruleset in the {phase} phase")
        return envelope(copy.deepcopy(ruleset))

    def put_entrypoint(self, request: Request, match: re.Match[str]) -> dict[str, Any]:
        zone = self._zone(match)
        phase = match["phase"]
        if phase not in PHASE_ACTIONS:
            # NOTE: only the two phases this collection uses are emulated.
            raise ApiError(400, RULESET_VALIDATION_ERROR, f"Unsupported phase {phase!r} in this emulator: use {' or '.join(PHASE_ACTIONS)}.")
        body = body_object(request)
        rules = body.get("rules", [])
        if not isinstance(rules, list):
            raise ApiError(400, RULESET_VALIDATION_ERROR, "Invalid 'rules': expected a list.", "/rules")
        errors = validate_rules(phase, rules, zone["plan"])
        if errors:
            raise ApiError.many(400, errors)
        current = self.state["rulesets"].setdefault(zone["id"], {}).get(phase)
        now = self.now_text()
        new_rules = self._assign_rule_ids(current, rules, now)
        ruleset = {
            "id": current["id"] if current else hex32(),
            "name": body.get("name") or (current["name"] if current else "default"),
            "description": body.get("description", current["description"] if current else ""),
            "kind": "zone",
            "phase": phase,
            "version": str(int(current["version"]) + 1) if current else "1",
            "last_updated": now,
            "rules": new_rules,
        }
        if request.query_value("dry_run") == "true":
            return envelope(None)
        self.state["rulesets"][zone["id"]][phase] = ruleset
        return envelope(copy.deepcopy(ruleset))

    @staticmethod
    def _assign_rule_ids(current: dict[str, Any] | None, rules: list[dict[str, Any]], now: str) -> list[dict[str, Any]]:
        existing = {rule["id"]: rule for rule in (current or {}).get("rules", [])}
        result = []
        for rule in rules:
            content = {key: copy.deepcopy(value) for key, value in rule.items() if key not in ("id", "version", "last_updated", "ref")}
            content.setdefault("enabled", True)
            content.setdefault("description", "")
            previous = existing.get(rule.get("id", ""))
            if previous is not None:
                old_content = {key: value for key, value in previous.items() if key not in ("id", "version", "last_updated", "ref")}
                changed = old_content != content or rule.get("ref", previous["ref"]) != previous["ref"]
                stored = {
                    "id": previous["id"],
                    "ref": rule.get("ref", previous["ref"]),
                    "version": str(int(previous["version"]) + 1) if changed else previous["version"],
                    "last_updated": now if changed else previous["last_updated"],
                    **content,
                }
            else:
                rule_id = hex32()
                stored = {"id": rule_id, "ref": rule.get("ref", rule_id), "version": "1", "last_updated": now, **content}
            result.append(stored)
        return result


def _secret_values(documents: tuple[Any, ...], secret_keys: frozenset[str]) -> list[str]:
    """Collect string values stored under secret keys anywhere in the documents."""
    found: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key.lower() in secret_keys and isinstance(value, str) and value:
                    found.append(value)
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    for document in documents:
        walk(document)
    return sorted(set(found), key=len, reverse=True)


def fqdn(name: str, zone_name: str) -> str:
    """Return the full record name: ``@`` is the apex, relative names get the zone appended."""
    name = name.strip().rstrip(".").lower()
    if name in ("@", ""):
        return zone_name
    if name == zone_name or name.endswith("." + zone_name):
        return name
    return f"{name}.{zone_name}"


def validate_dns_record(record: dict[str, Any]) -> None:
    """Raise ApiError when a record's content, TTL or proxied flag is invalid for its type."""
    record_type, content = record["type"], record.get("content")
    needs_content = record_type in ("A", "AAAA", "CNAME", "MX", "NS", "PTR", "TXT")
    if needs_content and (not isinstance(content, str) or not content):
        raise ApiError(400, DNS_VALIDATION_ERROR, f"DNS Validation Error: content is required for a {record_type} record.", "/content")
    if record_type == "A":
        try:
            ipaddress.IPv4Address(content)
        except ValueError:
            raise ApiError(400, DNS_VALIDATION_ERROR, f"Content for A record is invalid. Must be a valid IPv4 address, got {content!r}.", "/content") from None
    if record_type == "AAAA":
        try:
            ipaddress.IPv6Address(content)
        except ValueError:
            raise ApiError(
                400,
                DNS_VALIDATION_ERROR,
                f"Content for AAAA record is invalid. Must be a valid IPv6 address, got {content!r}.",
                "/content",
            ) from None
    if record_type == "CNAME" and content.rstrip(".").lower() == record["name"]:
        raise ApiError(400, DNS_VALIDATION_ERROR, "Content for CNAME record is invalid. It must not match the record's name.", "/content")
    if record_type == "MX" and not isinstance(record.get("priority"), int):
        raise ApiError(400, DNS_VALIDATION_ERROR, "DNS Validation Error: an MX record needs an integer priority.", "/priority")
    ttl = record.get("ttl")
    if not isinstance(ttl, int) or isinstance(ttl, bool) or not (ttl == 1 or 60 <= ttl <= 86400):
        raise ApiError(400, DNS_VALIDATION_ERROR, f"Invalid TTL {ttl!r}. Must be between 60 and 86400 seconds, or 1 for Automatic.", "/ttl")
    if not isinstance(record.get("proxied"), bool):
        raise ApiError(400, DNS_VALIDATION_ERROR, "Invalid proxied: expected true or false.", "/proxied")
    if record["proxied"] and record_type not in PROXIABLE_TYPES:
        raise ApiError(400, DNS_RECORD_NOT_PROXIABLE, f"A {record_type} record cannot be proxied.", "/proxied")
    comment = record.get("comment")
    if comment is not None and (not isinstance(comment, str) or "\n" in comment or "\r" in comment):
        raise ApiError(400, DNS_VALIDATION_ERROR, "Invalid comment: expected a string without line breaks.", "/comment")
    tags = record.get("tags")
    if not isinstance(tags, list) or not all(isinstance(t, str) and re.fullmatch(r"[A-Za-z0-9_-]+:.*", t) for t in tags):
        raise ApiError(400, DNS_VALIDATION_ERROR, "Invalid tags: expected a list of name:value strings.", "/tags")


def validate_ingress(ingress: Any) -> None:
    """Raise ApiError unless `ingress` is a rule list cloudflared would accept."""
    if not isinstance(ingress, list) or not ingress:
        raise ApiError(400, INVALID_REQUEST, "Invalid config.ingress: at least one ingress rule needs to be defined.", "/config/ingress")
    for index, rule in enumerate(ingress):
        pointer = f"/config/ingress/{index}"
        if not isinstance(rule, dict) or not isinstance(rule.get("service"), str) or not rule["service"]:
            raise ApiError(400, INVALID_REQUEST, f"Invalid ingress rule {index}: it needs a service.", pointer)
        hostname = rule.get("hostname") or ""
        if hostname.count("*") > 1 or ("*" in hostname and not hostname.startswith("*.")):
            raise ApiError(
                400,
                INVALID_REQUEST,
                f"Invalid ingress rule {index}: hostname patterns can have at most one wildcard character (\"*\") and it can only be used for subdomains.",
                pointer + "/hostname",
            )
    last = ingress[-1]
    if last.get("hostname") or last.get("path"):
        raise ApiError(
            400,
            INVALID_REQUEST,
            "Invalid config.ingress: the last ingress rule must match all URLs (it must not have a hostname or path filter).",
            f"/config/ingress/{len(ingress) - 1}",
        )


def validate_rules(phase: str, rules: list[Any], plan: str) -> list[dict[str, Any]]:
    """Return error items for rules the phase or the zone's plan does not accept."""
    errors: list[dict[str, Any]] = []

    def fail(message: str, pointer: str) -> None:
        errors.append(error_item(RULESET_VALIDATION_ERROR, message, pointer))

    refs: set[str] = set()
    for index, rule in enumerate(rules):
        pointer = f"/rules/{index}"
        if not isinstance(rule, dict):
            fail("rule must be an object", pointer)
            continue
        action = rule.get("action")
        if action not in PHASE_ACTIONS[phase]:
            fail(f"invalid action {action!r} for phase {phase}: expected one of {', '.join(PHASE_ACTIONS[phase])}", pointer + "/action")
        expression = rule.get("expression")
        if not isinstance(expression, str) or not expression.strip():
            fail("expression is required and must be a non-empty string", pointer + "/expression")
        if "enabled" in rule and not isinstance(rule["enabled"], bool):
            fail("enabled must be a boolean", pointer + "/enabled")
        ref = rule.get("ref")
        if ref is not None:
            if ref in refs:
                fail(f"duplicate rule ref {ref!r}", pointer + "/ref")
            refs.add(ref)
        if phase == "http_ratelimit":
            errors.extend(_rate_limit_errors(rule, action, plan, pointer))

    if phase == "http_ratelimit":
        limit = RATE_LIMIT_PLANS[plan]["rules"]
        if len(rules) > limit:
            fail(f"not entitled to use more than {limit} rate limiting rule(s) on the {plan} plan", "/rules")
    return errors


def _rate_limit_errors(rule: dict[str, Any], action: Any, plan: str, pointer: str) -> list[dict[str, Any]]:
    # NOTE: the "not entitled" messages follow live Free-plan rejections; their error code
    # and the wording for the rule count and characteristics are unconfirmed.
    limits = RATE_LIMIT_PLANS[plan]
    errors: list[dict[str, Any]] = []
    ratelimit = rule.get("ratelimit")
    if not isinstance(ratelimit, dict):
        return [error_item(RULESET_VALIDATION_ERROR, "ratelimit is required in the http_ratelimit phase", pointer + "/ratelimit")]
    pointer += "/ratelimit"

    characteristics = ratelimit.get("characteristics")
    if not isinstance(characteristics, list) or not characteristics:
        errors.append(error_item(RULESET_VALIDATION_ERROR, "characteristics is required", pointer + "/characteristics"))
    else:
        if "cf.colo.id" not in characteristics:
            errors.append(error_item(RULESET_VALIDATION_ERROR, "characteristics must include cf.colo.id", pointer + "/characteristics"))
        allowed = limits["characteristics"]
        for position, characteristic in enumerate(characteristics):
            if allowed is not None and characteristic not in allowed:
                errors.append(
                    error_item(
                        RULESET_VALIDATION_ERROR,
                        f"not entitled to use the characteristic {characteristic}, can only use characteristics among [{' '.join(allowed)}]",
                        f"{pointer}/characteristics/{position}",
                    )
                )

    period = ratelimit.get("period")
    if not isinstance(period, int) or period not in SUPPORTED_PERIODS:
        errors.append(error_item(RULESET_VALIDATION_ERROR, f"period {period!r} is not supported", pointer + "/period"))
    elif period not in limits["periods"]:
        allowed_periods = " ".join(str(p) for p in limits["periods"])
        errors.append(
            error_item(
                RULESET_VALIDATION_ERROR,
                f"not entitled to use the period {period}, can only use a period among [{allowed_periods}]",
                pointer + "/period",
            )
        )

    if "requests_per_period" not in ratelimit and "score_per_period" not in ratelimit:
        errors.append(error_item(RULESET_VALIDATION_ERROR, "requests_per_period is required", pointer + "/requests_per_period"))
    elif "requests_per_period" in ratelimit and (not isinstance(ratelimit["requests_per_period"], int) or ratelimit["requests_per_period"] < 1):
        errors.append(error_item(RULESET_VALIDATION_ERROR, "requests_per_period must be a positive integer", pointer + "/requests_per_period"))

    timeout = ratelimit.get("mitigation_timeout", 0)
    if action in CHALLENGE_ACTIONS and plan != "enterprise":
        if timeout != 0:
            errors.append(
                error_item(RULESET_VALIDATION_ERROR, f"mitigation timeout must be 0 when using the action {action}", pointer + "/mitigation_timeout")
            )
    elif not isinstance(timeout, int) or timeout not in SUPPORTED_TIMEOUTS:
        errors.append(error_item(RULESET_VALIDATION_ERROR, f"mitigation timeout {timeout!r} is not supported", pointer + "/mitigation_timeout"))
    elif plan == "free" and timeout != 10:
        errors.append(
            error_item(RULESET_VALIDATION_ERROR, "not entitled to use a mitigation timeout different from 10", pointer + "/mitigation_timeout")
        )
    elif timeout not in limits["timeouts"] and timeout != 0:
        errors.append(
            error_item(RULESET_VALIDATION_ERROR, f"not entitled to use the mitigation timeout {timeout}", pointer + "/mitigation_timeout")
        )

    if ratelimit.get("counting_expression") and not limits["counting_expression"]:
        errors.append(error_item(RULESET_VALIDATION_ERROR, "not entitled to use a custom counting expression", pointer + "/counting_expression"))
    return errors


class CloudflareServer(EmulatorServer):
    """Emulator server whose app is a :class:`CloudflareApp`, with helpers for tests."""

    app: CloudflareApp

    @property
    def base_url(self) -> str:
        return f"{self.url}{API_PREFIX}"

    def shutdown(self) -> None:
        super().shutdown()
        if self.app in RUNNING_APPS:
            RUNNING_APPS.remove(self.app)


# Apps started by start() in this process, so another emulator (the edge emulator) can ask
# which service token secrets are valid without going through HTTP.
RUNNING_APPS: list[CloudflareApp] = []


def start(seed_section: dict[str, Any], state_dir: pathlib.Path | None, host: str = "127.0.0.1") -> tuple[CloudflareServer, dict[str, Any]]:
    """Start the emulator from the seed's ``cloudflare`` section; return the server and its connection info.

    Seed keys: ``accounts`` ([{id, name}]), ``zones`` ([{id, name, account_id, plan,
    bot_fight_mode}]), ``api_tokens`` ([{name, value, permissions}]), ``dns_records``
    ([{zone, type, name, content, ...}]), optional ``port`` (0 or absent: chosen by the OS)
    and ``validate`` (check every request and response against the OpenAPI schema and log
    the violations).
    """
    app = CloudflareApp(seed_section, state_dir=state_dir, validate=bool(seed_section.get("validate", False)))
    server = CloudflareServer((host, int(seed_section.get("port", 0))), app)
    server.start_in_thread()
    RUNNING_APPS.append(app)
    info = {
        "base_url": server.base_url,
        "admin_url": f"{server.url}/__emulator__",
        "host": server.host,
        "port": server.port,
        "accounts": {a["name"]: a["id"] for a in app.state["accounts"].values()},
        "zones": {z["name"]: z["id"] for z in app.state["zones"].values()},
        "validate": app.validate,
    }
    return server, info


__all__ = ["CloudflareApp", "CloudflareServer", "start", "tunnel_token", "decode_tunnel_token", "RUNNING_APPS"]
