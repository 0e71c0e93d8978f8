"""Start the emulators named in a seed file, in one process.

Usage::

    python -m tests.emulators.launch --seed FILE --state-dir DIR [--daemon] [--host 127.0.0.1]

The seed file is a JSON object with one top-level key per emulator (``cloudflare``,
``azure``, ``edge``, ``home``). Each key maps, through EMULATORS, to a module that exposes
``start(seed_section, state_dir, host) -> (server, info)``; `server` has ``shutdown()`` and
`info` is JSON-able connection information. Once every emulator listens, the launcher prints
one JSON line ``{"<key>": info, ...}`` to stdout and writes the same document to
DIR/emulators.json.

Without ``--daemon`` it then runs until SIGTERM or SIGINT. With ``--daemon`` it forks, the
child writes DIR/emulators.pid and keeps serving (its log goes to DIR/emulators.log), and
the parent prints the JSON line and exits 0 once the child listens, or exits 1 with the
child's error.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import json
import logging
import os
import pathlib
import signal
import sys
import threading
from typing import Any

LOG = logging.getLogger("tests.emulators.launch")

# Seed key -> module that implements it. A module listed here may not exist yet; that is an
# error only when a seed file names its key.
EMULATORS = {
    "cloudflare": "tests.emulators.cloudflare_api",
    "azure": "tests.emulators.azure_arm",
    "edge": "tests.emulators.edge",
    "home": "tests.emulators.home",
}

INFO_FILE = "emulators.json"
PID_FILE = "emulators.pid"
LOG_FILE = "emulators.log"


class LaunchError(Exception):
    """A seed or an emulator module that cannot be started, with the reason."""


def load_seed(path: pathlib.Path) -> dict[str, Any]:
    try:
        seed = json.loads(path.read_text())
    except FileNotFoundError:
        raise LaunchError(f"seed file {path} not found") from None
    except ValueError as error:
        raise LaunchError(f"seed file {path} is not valid JSON: {error}") from None
    if not isinstance(seed, dict):
        raise LaunchError(f"seed file {path} must contain a JSON object with one key per emulator")
    unknown = sorted(set(seed) - set(EMULATORS))
    if unknown:
        raise LaunchError(f"seed file {path} names unknown emulators {unknown}; known: {sorted(EMULATORS)}")
    return seed


def start_all(seed: dict[str, Any], state_dir: pathlib.Path, host: str) -> tuple[list[Any], dict[str, Any]]:
    """Start the emulators of `seed` in EMULATORS order; on any failure stop those already started."""
    servers: list[Any] = []
    info: dict[str, Any] = {}
    try:
        for key, module_name in EMULATORS.items():
            if key not in seed:
                continue
            try:
                module = importlib.import_module(module_name)
            except ModuleNotFoundError as error:
                if error.name != module_name:
                    raise
                raise LaunchError(
                    f"the seed names emulator {key!r}, but its module {module_name} does not exist yet; "
                    f"remove {key!r} from the seed or add the module"
                ) from None
            if "started" in inspect.signature(module.start).parameters:
                # An emulator that works with the ones started before it gets their connection info.
                server, connection = module.start(seed[key] or {}, state_dir, host, started=dict(info))
            else:
                server, connection = module.start(seed[key] or {}, state_dir, host)
            servers.append(server)
            info[key] = connection
            LOG.info("started %s emulator: %s", key, json.dumps(connection))
    except BaseException:
        stop_all(servers)
        raise
    return servers, info


def stop_all(servers: list[Any]) -> None:
    for server in reversed(servers):
        try:
            server.shutdown()
        except Exception:  # noqa: BLE001 (stopping must go on for the other servers)
            LOG.exception("failed to stop emulator %r", server)


def install_stop_handlers() -> threading.Event:
    """Return an event that SIGTERM and SIGINT set; install it before announcing readiness."""
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda number, frame: stop.set())
    return stop


def wait_for(stop: threading.Event) -> None:
    while not stop.wait(3600):
        pass


def write_info(state_dir: pathlib.Path, info: dict[str, Any]) -> None:
    temporary = state_dir / (INFO_FILE + ".tmp")
    temporary.write_text(json.dumps(info, indent=2) + "\n")
    os.replace(temporary, state_dir / INFO_FILE)


def run_foreground(seed: dict[str, Any], state_dir: pathlib.Path, host: str) -> int:
    stop = install_stop_handlers()
    servers, info = start_all(seed, state_dir, host)
    try:
        write_info(state_dir, info)
        print(json.dumps(info), flush=True)
        wait_for(stop)
    finally:
        stop_all(servers)
        LOG.info("emulators stopped")
    return 0


def run_daemon(seed: dict[str, Any], state_dir: pathlib.Path, host: str) -> int:
    """Fork a serving child; return once it reports that it listens (0) or failed (1)."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid > 0:
        os.close(write_end)
        with os.fdopen(read_end) as pipe:
            report = pipe.read()
        if not report.startswith("{"):
            print(f"emulators failed to start: {report.strip() or 'the child exited without a report'}", file=sys.stderr)
            return 1
        print(report.strip(), flush=True)
        return 0

    os.close(read_end)
    os.setsid()
    devnull = os.open(os.devnull, os.O_RDWR)
    log_descriptor = os.open(state_dir / LOG_FILE, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    os.dup2(devnull, 0)
    os.dup2(log_descriptor, 1)
    os.dup2(log_descriptor, 2)
    stop = install_stop_handlers()
    pipe = os.fdopen(write_end, "w")
    try:
        servers, info = start_all(seed, state_dir, host)
    except Exception as error:  # noqa: BLE001 (reported to the parent, then exit)
        LOG.exception("emulators failed to start")
        pipe.write(f"{type(error).__name__}: {error}")
        pipe.close()
        os._exit(1)
    write_info(state_dir, info)
    (state_dir / PID_FILE).write_text(f"{os.getpid()}\n")
    pipe.write(json.dumps(info))
    pipe.close()
    try:
        wait_for(stop)
    finally:
        stop_all(servers)
        (state_dir / PID_FILE).unlink(missing_ok=True)
        LOG.info("emulators stopped")
    os._exit(0)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m tests.emulators.launch", description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--seed", required=True, type=pathlib.Path, help="JSON seed file with one key per emulator")
    parser.add_argument(
        "--state-dir", required=True, type=pathlib.Path, help="directory for persisted state, TLS files, PID and info files"
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    parser.add_argument("--daemon", action="store_true", help="fork, write the PID file and return once listening")
    parser.add_argument("-v", "--verbose", action="store_true", help="log each request")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
        stream=sys.stderr,
    )
    try:
        seed = load_seed(args.seed)
        args.state_dir.mkdir(parents=True, exist_ok=True)
        if args.daemon:
            return run_daemon(seed, args.state_dir, args.host)
        return run_foreground(seed, args.state_dir, args.host)
    except LaunchError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
