"""Shared HTTP machinery for the local API emulators used by the tests and `make demo`.

An emulator is an :class:`EmulatorApp` subclass that turns a :class:`Request` into a
:class:`Response`. :func:`serve` wraps it in a threaded HTTP/1.1 server on loopback that adds
what every emulator needs:

* a request log (method, path, query, redacted JSON body, status, write flag, fault, schema
  violations), never containing header values;
* fault injection: rules that match a method and a path regex and respond with an error status,
  delay the request, or reset the connection, a given number of times;
* admin routes under ``/__emulator__/`` that need no authentication:

  ========  ===============================  ==============================================
  GET       /__emulator__/health             ``{"ok": true, "name": ...}``
  GET       /__emulator__/log                ``{"entries": [...]}``; ``?since=SEQ`` skips older ones
  DELETE    /__emulator__/log                clear the log
  GET       /__emulator__/faults             list the active fault rules
  POST      /__emulator__/faults             add a rule (see :meth:`FaultRule.from_json`)
  DELETE    /__emulator__/faults             remove all rules
  GET       /__emulator__/state              the whole emulator state as JSON
  PUT       /__emulator__/state              replace the whole state
  POST      /__emulator__/reset              back to the seeded state, log and faults cleared
  ========  ===============================  ==============================================

  An app adds its own admin routes through :meth:`EmulatorApp.admin_routes`.

Only the standard library is used, so other emulators can import this module without extra
packages.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import re
import socket
import struct
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable

LOG = logging.getLogger(__name__)

ADMIN_PREFIX = "/__emulator__"

# Keys whose values are replaced in logged request bodies, matched case-insensitively
# at any depth. Apps can extend the set through EmulatorApp.secret_keys.
DEFAULT_SECRET_KEYS = frozenset(
    {
        "client_secret",
        "previous_client_secret",
        "tunnel_secret",
        "token",
        "secret",
        "password",
        "api_token",
        "authorization",
    }
)
REDACTED = "**REDACTED**"


@dataclasses.dataclass
class Request:
    """One parsed HTTP request, as passed to an app."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes
    json: Any = None
    json_error: str | None = None

    def query_value(self, name: str, default: str | None = None) -> str | None:
        """Return the last value of a query parameter, or `default` when absent."""
        values = self.query.get(name)
        if not values:
            return default
        return values[-1]

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())


@dataclasses.dataclass
class Response:
    """One HTTP response: a JSON-able body (or None for no body) and extra headers."""

    status: int
    body: Any = None
    headers: dict[str, str] = dataclasses.field(default_factory=dict)


class ConnectionReset(Exception):
    """Raised inside request handling to close the socket without sending a response."""


def redact(value: Any, secret_keys: frozenset[str] = DEFAULT_SECRET_KEYS) -> Any:
    """Return a deep copy of `value` with the values of secret keys replaced by REDACTED."""
    if isinstance(value, dict):
        return {
            key: (REDACTED if key.lower() in secret_keys and value[key] not in (None, "") else redact(item, secret_keys))
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [redact(item, secret_keys) for item in value]
    return value


@dataclasses.dataclass
class FaultRule:
    """A fault to inject into requests that match `method` and `path_regex`.

    `kind` is one of:

    * ``status``: respond with `status` (for example 429, 500, 502, 503) and the app's error
      envelope; with `retry_after` set, also send ``Retry-After: <seconds>``;
    * ``delay``: sleep `delay` seconds, then handle the request normally;
    * ``reset``: close the connection without a response (the client sees a reset).

    `count` is how many matching requests the rule applies to; None means every one.
    """

    method: str
    path_regex: str
    kind: str
    status: int = 503
    retry_after: int | None = None
    delay: float = 0.0
    count: int | None = 1
    id: int = 0

    KINDS = ("status", "delay", "reset")

    def __post_init__(self) -> None:
        if self.kind not in self.KINDS:
            raise ValueError(f"invalid fault kind {self.kind!r}: expected one of {', '.join(self.KINDS)}")
        if self.kind == "status" and not 400 <= int(self.status) <= 599:
            raise ValueError(f"invalid fault status {self.status!r}: expected an HTTP error status 400-599")
        if self.count is not None and int(self.count) < 1:
            raise ValueError(f"invalid fault count {self.count!r}: expected a positive integer or null")
        self._pattern = re.compile(self.path_regex)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> FaultRule:
        """Build a rule from ``{"method", "path", "kind", "status", "retry_after", "delay", "count"}``.

        `method` defaults to ``*`` (any), `path` is a regular expression searched in the
        request path (query excluded).
        """
        if not isinstance(data, dict):
            raise ValueError("invalid fault: expected a JSON object")
        return cls(
            method=str(data.get("method", "*")).upper(),
            path_regex=str(data.get("path", ".*")),
            kind=str(data.get("kind", "status")),
            status=int(data.get("status", 503)),
            retry_after=None if data.get("retry_after") is None else int(data["retry_after"]),
            delay=float(data.get("delay", 0.0)),
            count=None if data.get("count", 1) is None else int(data.get("count", 1)),
        )

    def matches(self, method: str, path: str) -> bool:
        return self.method in ("*", method) and self._pattern.search(path) is not None

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "method": self.method,
            "path": self.path_regex,
            "kind": self.kind,
            "status": self.status,
            "retry_after": self.retry_after,
            "delay": self.delay,
            "count": self.count,
        }


class FaultList:
    """Thread-safe list of fault rules; each match uses up one count of the first matching rule."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rules: list[FaultRule] = []
        self._next_id = 1

    def add(self, rule: FaultRule) -> FaultRule:
        with self._lock:
            rule.id = self._next_id
            self._next_id += 1
            self._rules.append(rule)
        return rule

    def clear(self) -> None:
        with self._lock:
            self._rules.clear()

    def list(self) -> list[dict[str, Any]]:
        with self._lock:
            return [rule.to_json() for rule in self._rules]

    def take(self, method: str, path: str) -> FaultRule | None:
        """Return the first rule matching the request and use up one of its counts."""
        with self._lock:
            for rule in self._rules:
                if not rule.matches(method, path):
                    continue
                if rule.count is not None:
                    rule.count -= 1
                    if rule.count == 0:
                        self._rules.remove(rule)
                return rule
        return None


class RequestLog:
    """Thread-safe, append-only list of request entries with increasing `seq` numbers."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: list[dict[str, Any]] = []
        self._next_seq = 1

    def append(self, entry: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            entry["seq"] = self._next_seq
            self._next_seq += 1
            self._entries.append(entry)
        return entry

    def entries(self, since: int = 0) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(entry) for entry in self._entries if entry["seq"] > since]

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


AdminHandler = Callable[[Request, "re.Match[str]"], Response]


class EmulatorApp:
    """Base class of an emulated API. Subclasses override the hooks below.

    `handle` runs for every non-admin request that no fault intercepted; it may raise
    :class:`ConnectionReset`. All hooks may be called from several threads at once, so
    subclasses guard their state with `self.lock`.
    """

    name = "emulator"
    secret_keys: frozenset[str] = DEFAULT_SECRET_KEYS

    def __init__(self) -> None:
        self.lock = threading.RLock()

    def handle(self, request: Request) -> Response:
        raise NotImplementedError

    def error_body(self, status: int, message: str) -> Any:
        """Return the body of an injected error response in this API's error format."""
        return {"error": {"code": status, "message": message}}

    def is_write(self, request: Request) -> bool:
        return request.method not in ("GET", "HEAD", "OPTIONS")

    def redact_body(self, body: Any) -> Any:
        """Return the request body as it may appear in the log, with secrets replaced."""
        return redact(body, self.secret_keys)

    def check_schema(self, request: Request, response: Response) -> list[str]:
        """Return schema violations of a handled request and its response; the base class checks nothing."""
        return []

    def get_state(self) -> Any:
        raise NotImplementedError

    def set_state(self, state: Any) -> None:
        raise NotImplementedError

    def reset(self) -> None:
        raise NotImplementedError

    def admin_routes(self) -> list[tuple[str, str, AdminHandler]]:
        """Return extra admin routes as ``(method, path regex under /__emulator__, handler)``."""
        return []


def json_response(status: int, body: Any, headers: dict[str, str] | None = None) -> Response:
    return Response(status=status, body=body, headers=dict(headers or {}))


class EmulatorServer(ThreadingHTTPServer):
    """Threaded HTTP server that owns one app, its request log and its fault rules."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], app: EmulatorApp) -> None:
        self.app = app
        self.request_log = RequestLog()
        self.faults = FaultList()
        self._thread: threading.Thread | None = None
        super().__init__(address, EmulatorRequestHandler)

    @property
    def host(self) -> str:
        return self.server_address[0]

    @property
    def port(self) -> int:
        return self.server_address[1]

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start_in_thread(self) -> EmulatorServer:
        """Serve in a daemon thread and return self; stop with :meth:`shutdown`."""
        self._thread = threading.Thread(target=self.serve_forever, name=f"{self.app.name}-server", daemon=True)
        self._thread.start()
        LOG.info("%s emulator listening on %s", self.app.name, self.url)
        return self

    def shutdown(self) -> None:
        super().shutdown()
        self.server_close()
        LOG.info("%s emulator on %s stopped", self.app.name, self.url)

    def admin(self, request: Request) -> Response:
        """Dispatch an admin request (path already stripped of ADMIN_PREFIX)."""
        path = request.path[len(ADMIN_PREFIX):] or "/"
        for method, pattern, handler in self._admin_table():
            if method != request.method:
                continue
            match = re.fullmatch(pattern, path)
            if match:
                return handler(request, match)
        return json_response(404, {"error": f"no admin route {request.method} {request.path}"})

    def _admin_table(self) -> list[tuple[str, str, AdminHandler]]:
        return [
            ("GET", r"/health", lambda r, m: json_response(200, {"ok": True, "name": self.app.name})),
            ("GET", r"/log", self._get_log),
            ("DELETE", r"/log", self._clear_log),
            ("GET", r"/faults", lambda r, m: json_response(200, {"faults": self.faults.list()})),
            ("POST", r"/faults", self._add_fault),
            ("DELETE", r"/faults", self._clear_faults),
            ("GET", r"/state", lambda r, m: json_response(200, self.app.get_state())),
            ("PUT", r"/state", self._put_state),
            ("POST", r"/reset", self._reset),
            *self.app.admin_routes(),
        ]

    def _get_log(self, request: Request, match: re.Match[str]) -> Response:
        since = int(request.query_value("since", "0") or 0)
        return json_response(200, {"entries": self.request_log.entries(since)})

    def _clear_log(self, request: Request, match: re.Match[str]) -> Response:
        self.request_log.clear()
        return json_response(200, {"cleared": True})

    def _add_fault(self, request: Request, match: re.Match[str]) -> Response:
        try:
            rule = self.faults.add(FaultRule.from_json(request.json))
        except (ValueError, TypeError, re.error) as error:
            return json_response(400, {"error": str(error)})
        return json_response(201, rule.to_json())

    def _clear_faults(self, request: Request, match: re.Match[str]) -> Response:
        self.faults.clear()
        return json_response(200, {"cleared": True})

    def _put_state(self, request: Request, match: re.Match[str]) -> Response:
        if not isinstance(request.json, dict):
            return json_response(400, {"error": "invalid state: expected a JSON object body"})
        try:
            self.app.set_state(request.json)
        except (KeyError, TypeError, ValueError) as error:
            return json_response(400, {"error": f"invalid state: {error}"})
        return json_response(200, self.app.get_state())

    def _reset(self, request: Request, match: re.Match[str]) -> Response:
        self.app.reset()
        self.request_log.clear()
        self.faults.clear()
        return json_response(200, {"reset": True})


class EmulatorRequestHandler(BaseHTTPRequestHandler):
    """Parse requests, apply faults, call the app, write JSON responses and log them."""

    server: EmulatorServer
    protocol_version = "HTTP/1.1"
    server_version = "homelab-edge-emulator"
    sys_version = ""

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in separate writes; without TCP_NODELAY, Nagle's algorithm
        # and the client's delayed ACK add about 40 ms to every keep-alive request.
        try:
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass

    def do_GET(self) -> None:  # noqa: N802 (name fixed by BaseHTTPRequestHandler)
        self._dispatch()

    do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_GET

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (signature fixed)
        LOG.debug("%s %s", self.address_string(), format % args)

    def _read_request(self) -> Request:
        split = urllib.parse.urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length > 0 else b""
        request = Request(
            method=self.command,
            path=urllib.parse.unquote(split.path),
            query=urllib.parse.parse_qs(split.query, keep_blank_values=True),
            headers={key.lower(): value for key, value in self.headers.items()},
            body=body,
        )
        if body.strip():
            try:
                request.json = json.loads(body)
            except ValueError as error:
                request.json_error = str(error)
        return request

    def _dispatch(self) -> None:
        request = self._read_request()
        if request.path.startswith(ADMIN_PREFIX + "/") or request.path == ADMIN_PREFIX:
            self._send(self.server.admin(request))
            return

        app = self.server.app
        entry: dict[str, Any] = {
            "method": request.method,
            "path": request.path,
            "query": {key: values[-1] if len(values) == 1 else values for key, values in request.query.items()},
            "body": app.redact_body(request.json) if request.json is not None else None,
            "write": app.is_write(request),
            "fault": None,
            "status": None,
            "schema_violations": [],
        }

        fault = self.server.faults.take(request.method, request.path)
        if fault is not None:
            entry["fault"] = fault.kind
            if fault.kind == "reset":
                self.server.request_log.append(entry)
                self._reset_connection()
                return
            if fault.kind == "status":
                headers = {}
                if fault.retry_after is not None:
                    headers["Retry-After"] = str(fault.retry_after)
                response = Response(fault.status, app.error_body(fault.status, "injected fault"), headers)
                entry["status"] = response.status
                self.server.request_log.append(entry)
                self._send(response)
                return
            time.sleep(fault.delay)

        try:
            response = app.handle(request)
        except ConnectionReset:
            entry["status"] = None
            self.server.request_log.append(entry)
            self._reset_connection()
            return
        except Exception:  # noqa: BLE001 (a bug in an emulator must still answer and be logged)
            LOG.exception("%s emulator failed on %s %s", app.name, request.method, request.path)
            response = Response(500, app.error_body(500, "emulator internal error"))

        entry["status"] = response.status
        try:
            entry["schema_violations"] = app.check_schema(request, response)
        except Exception as error:  # noqa: BLE001 (a broken check must not drop the response)
            LOG.exception("%s schema check failed on %s %s", app.name, request.method, request.path)
            entry["schema_violations"] = [f"schema check failed: {type(error).__name__}: {error}"]
        self.server.request_log.append(entry)
        self._send(response)

    def _send(self, response: Response) -> None:
        payload = b"" if response.body is None else json.dumps(response.body).encode()
        self.send_response(response.status)
        if response.body is not None:
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        for key, value in response.headers.items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)

    def _reset_connection(self) -> None:
        # SO_LINGER with a zero timeout makes close() send a TCP RST instead of a FIN.
        self.close_connection = True
        try:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
        self.connection.close()


def serve(app: EmulatorApp, host: str = "127.0.0.1", port: int = 0) -> EmulatorServer:
    """Start `app` on host:port (port 0 lets the OS choose) in a daemon thread."""
    return EmulatorServer((host, port), app).start_in_thread()
