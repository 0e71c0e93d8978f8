"""The home machine of the demo: an Ollama stand-in and a connector that joins the tunnel.

On a real edge, cloudflared runs on the origin host and connects as soon as its tunnel exists.
This stand-in does the same inside the emulator process: it serves an Ollama stand-in on a free
loopback port and watches the Cloudflare emulator; once a live tunnel with the seeded name exists,
it connects to it once, with a token in cloudflared's format, and tells the edge emulator that the
tunnel's ``http://127.0.0.1:11434`` service is the stand-in. It never connects to the same tunnel
twice, so a teardown that removes the tunnel's connections is not undone.

Seed keys (all optional): ``tunnel`` (default ``home``), ``models`` (installed model names, default
``["llama3.2:1b"]``), ``service_url`` (the ingress service the stand-in answers for, default
``http://127.0.0.1:11434``).
"""

from __future__ import annotations

import logging
import pathlib
import threading
from typing import Any

from tests.emulators import cloudflare_api
from tests.emulators.admin import CloudflareAdmin
from tests.standins import connector
from tests.standins.ollama import ollama_standin

LOG = logging.getLogger("tests.emulators.home")
POLL_SECONDS = 0.2


class Home:
    """The running stand-ins; ``shutdown()`` stops the watcher and the Ollama stand-in."""

    def __init__(self, seed: dict[str, Any], started: dict[str, Any], host: str) -> None:
        self.tunnel_name = seed.get("tunnel", "home")
        self.service_url = seed.get("service_url", "http://127.0.0.1:11434")
        self.cloudflare_admin = started["cloudflare"]["admin_url"]
        self.edge_admin = started["edge"]["admin_url"]
        self.ollama = ollama_standin.start(host=host, port=0, models=seed.get("models", ["llama3.2:1b"]))
        self.connected: set[str] = set()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._watch, name="home-connector", daemon=True)
        self.thread.start()

    def _live_tunnel(self) -> dict[str, Any] | None:
        app = cloudflare_api.RUNNING_APPS[-1]
        with app.lock:
            for tunnel in app.state["tunnels"].values():
                if tunnel["name"] == self.tunnel_name and not tunnel.get("deleted_at"):
                    return dict(tunnel)
        return None

    def _watch(self) -> None:
        while not self.stop.wait(POLL_SECONDS):
            tunnel = self._live_tunnel()
            if tunnel is None or tunnel["id"] in self.connected:
                continue
            token = cloudflare_api.tunnel_token(tunnel["account_id"], tunnel["id"], tunnel["secret"])
            try:
                # Connections left from before a restart of the emulators are stale, as they are when
                # a real origin host restarts: drop them, so the edge uses this connector.
                admin = CloudflareAdmin(self.cloudflare_admin)
                for stale in admin.connectors():
                    if stale.get("tunnel_id") == tunnel["id"]:
                        admin.remove_connector(stale["client_id"])
                connector.connect(token, self.cloudflare_admin, self.edge_admin,
                                  origins={self.service_url: self.ollama.url})
            except Exception:  # noqa: BLE001 (the watcher must keep running; the error is logged)
                LOG.exception("connector for tunnel %s failed to connect", tunnel["id"])
                continue
            self.connected.add(tunnel["id"])
            LOG.info("connector joined tunnel %s (%s)", self.tunnel_name, tunnel["id"])

    def shutdown(self) -> None:
        self.stop.set()
        self.thread.join(timeout=5)
        self.ollama.shutdown()


def start(seed_section: dict[str, Any], state_dir: pathlib.Path | None, host: str = "127.0.0.1",
          started: dict[str, Any] | None = None) -> tuple[Home, dict[str, Any]]:
    """Start the home stand-ins; needs the ``cloudflare`` and ``edge`` emulators started before."""
    started = started or {}
    if "cloudflare" not in started or "edge" not in started:
        raise RuntimeError("the home stand-in needs the 'cloudflare' and 'edge' emulators in the same seed")
    home = Home(seed_section or {}, started, host)
    return home, {"ollama_url": home.ollama.url, "tunnel": home.tunnel_name}
