"""Small client for the emulators' ``/__emulator__/`` admin routes, for tests.

Example::

    admin = EmulatorAdmin(info["cloudflare"]["admin_url"])
    admin.clear_log()
    admin.add_fault(method="POST", path=r"/cfd_tunnel$", status=429, retry_after=1)
    ... run a playbook ...
    assert [e["status"] for e in admin.log(method="POST")] == [429, 200]

Only the standard library is used, and proxies are bypassed, because the emulators listen on
loopback.
"""

from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.parse
import urllib.request
from typing import Any


class AdminError(Exception):
    """An admin request that the emulator rejected, with its status and message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"admin request failed with HTTP {status}: {message}")
        self.status = status


class EmulatorAdmin:
    """Client for the admin routes shared by every emulator (log, faults, state, reset)."""

    def __init__(self, admin_url: str, ca_path: str | None = None, timeout: float = 10.0) -> None:
        self.admin_url = admin_url.rstrip("/")
        self.timeout = timeout
        handlers: list[Any] = [urllib.request.ProxyHandler({})]
        if admin_url.startswith("https://"):
            handlers.append(urllib.request.HTTPSHandler(context=ssl.create_default_context(cafile=ca_path)))
        self._opener = urllib.request.build_opener(*handlers)

    def request(self, method: str, path: str, body: Any = None, query: dict[str, Any] | None = None) -> Any:
        """Send one admin request and return its decoded JSON body; raise AdminError on 4xx/5xx."""
        url = self.admin_url + path
        if query:
            url += "?" + urllib.parse.urlencode(query)
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
        try:
            with self._opener.open(request, timeout=self.timeout) as response:
                payload = response.read()
        except urllib.error.HTTPError as error:
            detail = error.read().decode(errors="replace")
            raise AdminError(error.code, detail) from None
        return json.loads(payload) if payload else None

    # -- request log

    def log(self, since: int = 0, method: str | None = None, path: str | None = None, writes_only: bool = False) -> list[dict[str, Any]]:
        """Return log entries after sequence number `since`, optionally filtered.

        `path` is a substring of the request path. Each entry has seq, method, path, query,
        body (redacted), status, write, fault and schema_violations.
        """
        entries = self.request("GET", "/log", query={"since": since})["entries"]
        if method is not None:
            entries = [e for e in entries if e["method"] == method.upper()]
        if path is not None:
            entries = [e for e in entries if path in e["path"]]
        if writes_only:
            entries = [e for e in entries if e["write"]]
        return entries

    def clear_log(self) -> None:
        self.request("DELETE", "/log")

    def schema_violations(self, since: int = 0) -> list[str]:
        """Return every schema violation recorded in the log, prefixed with method and path."""
        return [
            f"{entry['method']} {entry['path']}: {violation}"
            for entry in self.log(since=since)
            for violation in entry["schema_violations"]
        ]

    # -- faults

    def add_fault(
        self,
        method: str = "*",
        path: str = ".*",
        kind: str = "status",
        status: int = 503,
        retry_after: int | None = None,
        delay: float = 0.0,
        count: int | None = 1,
    ) -> dict[str, Any]:
        """Add a fault rule; `path` is a regular expression searched in the request path.

        `kind` is ``status`` (respond with `status`, and ``Retry-After`` when `retry_after` is
        set), ``delay`` (wait `delay` seconds, then respond normally) or ``reset`` (close the
        connection without a response). `count` is how many requests it hits; None means all.
        """
        rule = {
            "method": method,
            "path": path,
            "kind": kind,
            "status": status,
            "retry_after": retry_after,
            "delay": delay,
            "count": count,
        }
        return self.request("POST", "/faults", rule)

    def faults(self) -> list[dict[str, Any]]:
        return self.request("GET", "/faults")["faults"]

    def clear_faults(self) -> None:
        self.request("DELETE", "/faults")

    # -- state

    def state(self) -> Any:
        return self.request("GET", "/state")

    def put_state(self, state: Any) -> Any:
        return self.request("PUT", "/state", state)

    def reset(self) -> None:
        """Go back to the seeded state and clear the log and the faults."""
        self.request("POST", "/reset")


class CloudflareAdmin(EmulatorAdmin):
    """Admin client with the Cloudflare emulator's extra routes and state helpers."""

    def mutate_state(self, change: Any) -> Any:
        """Apply `change(state)` to the current state and store it, for drift tests.

        `change` edits the state dict in place. Returns the stored state.
        """
        state = self.state()
        change(state)
        return self.put_state(state)

    def register_connector(
        self, tunnel_token: str, origin_ip: str = "198.51.100.7", version: str = "2026.8.0", connections: int = 4
    ) -> dict[str, Any]:
        """Connect a connector to the tunnel that `tunnel_token` names; returns client_id and tunnel_id."""
        body = {"token": tunnel_token, "origin_ip": origin_ip, "version": version, "connections": connections}
        return self.request("POST", "/cloudflare/connectors", body)

    def connectors(self) -> list[dict[str, Any]]:
        return self.request("GET", "/cloudflare/connectors")["connectors"]

    def remove_connector(self, client_id: str) -> dict[str, Any]:
        return self.request("DELETE", f"/cloudflare/connectors/{urllib.parse.quote(client_id)}")

    def service_token_valid(self, client_id: str, client_secret: str) -> bool:
        """Return whether Access would accept this service token pair now."""
        return self.request("POST", "/cloudflare/access/check", {"client_id": client_id, "client_secret": client_secret})["valid"]

    def advance_clock(self, seconds: float) -> str:
        """Move the emulator's clock forward; returns the new emulator time (RFC 3339)."""
        return self.request("POST", "/cloudflare/clock", {"advance_seconds": seconds})["now"]
