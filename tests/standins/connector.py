"""Stand-in for a running cloudflared connector, for tests and the demo.

A connector registers with the Cloudflare API emulator from a tunnel token in the format that
cloudflared reads (base64 of the JSON object ``{"a": account tag, "t": tunnel id, "s": tunnel
secret}``), and then tells the edge emulator which local origins it serves. The edge emulator
forwards requests for the tunnel's hostnames to those origins.

From Python::

    client_id = connect(token, cloudflare_admin_url, edge_admin_url,
                        origins={"http://127.0.0.1:11434": ollama.url})
    ...
    disconnect(client_id, cloudflare_admin_url, edge_admin_url)

As a program (the token is read from a file or from TUNNEL_TOKEN, never from the command
line, where other users of the host could read it)::

    TUNNEL_TOKEN=... python -m tests.standins.connector connect \\
        --cloudflare-admin URL --edge-admin URL --origin http://127.0.0.1:11434=http://127.0.0.1:5000
    python -m tests.standins.connector disconnect --client-id ID --cloudflare-admin URL --edge-admin URL

``connect`` prints ``{"client_id": ...}`` as JSON.

``origins`` maps the service URL of an ingress rule (as the tunnel configuration writes it) to
the URL that really serves it here. Without an entry, the edge emulator connects to the
service URL itself, as cloudflared on the origin host would. ``ingress`` gives the local rules
of a tunnel with ``config_src: local``, which cloudflared would read from its config.yml.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import sys
from typing import Any

from tests.emulators.admin import AdminError, CloudflareAdmin, EmulatorAdmin


def connect(
    token: str,
    cloudflare_admin_url: str,
    edge_admin_url: str,
    origins: dict[str, str] | None = None,
    ingress: list[dict[str, Any]] | None = None,
    origin_ip: str = "198.51.100.7",
) -> str:
    """Register a connector for the tunnel that `token` names and return its client id.

    Raises AdminError when the Cloudflare emulator rejects the token (unknown or deleted
    tunnel, wrong secret) or the edge emulator rejects the origins.
    """
    registered = CloudflareAdmin(cloudflare_admin_url).register_connector(token, origin_ip=origin_ip)
    client_id = registered["client_id"]
    body: dict[str, Any] = {"client_id": client_id, "origins": dict(origins or {})}
    if ingress is not None:
        body["ingress"] = ingress
    EmulatorAdmin(edge_admin_url).request("POST", "/edge/connectors", body)
    return client_id


def disconnect(client_id: str, cloudflare_admin_url: str, edge_admin_url: str | None = None) -> None:
    """Take the connector away, as when cloudflared stops; an unknown id is not an error."""
    for admin, path in (
        (CloudflareAdmin(cloudflare_admin_url), f"/cloudflare/connectors/{client_id}"),
        (EmulatorAdmin(edge_admin_url) if edge_admin_url else None, f"/edge/connectors/{client_id}"),
    ):
        if admin is None:
            continue
        try:
            admin.request("DELETE", path)
        except AdminError as error:
            if error.status != 404:
                raise


def parse_origin(value: str) -> tuple[str, str]:
    service, separator, target = value.partition("=")
    if not separator or not service or not target:
        raise argparse.ArgumentTypeError(f"invalid --origin {value!r}: expected SERVICE_URL=ORIGIN_URL")
    return service, target


def read_token(token_file: pathlib.Path | None) -> str:
    if token_file is not None:
        return token_file.read_text().strip()
    token = os.environ.get("TUNNEL_TOKEN", "").strip()
    if not token:
        raise SystemExit("error: no tunnel token: pass --token-file FILE or set TUNNEL_TOKEN")
    return token


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.standins.connector", description=__doc__.split("\n\n", maxsplit=1)[0])
    commands = parser.add_subparsers(dest="command", required=True)
    up = commands.add_parser("connect", help="register a connector and the origins it serves")
    up.add_argument("--token-file", type=pathlib.Path, help="file with the tunnel token (default: TUNNEL_TOKEN)")
    up.add_argument("--origin", action="append", type=parse_origin, default=[], help="SERVICE_URL=ORIGIN_URL; repeatable")
    up.add_argument("--ingress-file", type=pathlib.Path, help="JSON list of local ingress rules (config_src local)")
    down = commands.add_parser("disconnect", help="remove a connector")
    down.add_argument("--client-id", required=True)
    for command in (up, down):
        command.add_argument("--cloudflare-admin", required=True, help="admin URL of the Cloudflare API emulator")
        command.add_argument("--edge-admin", required=True, help="admin URL of the edge emulator")
    args = parser.parse_args(argv)

    try:
        if args.command == "connect":
            ingress = json.loads(args.ingress_file.read_text()) if args.ingress_file else None
            client_id = connect(read_token(args.token_file), args.cloudflare_admin, args.edge_admin, dict(args.origin), ingress)
            print(json.dumps({"client_id": client_id}))
        else:
            disconnect(args.client_id, args.cloudflare_admin, args.edge_admin)
    except AdminError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
