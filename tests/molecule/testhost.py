#!/usr/bin/env python3
"""Build, boot and stop throwaway Debian test hosts for the Molecule scenarios.

One debootstrapped Debian bookworm root file system is built once and cached under
``<checkout>/.cache/testhost``. Each test host boots that file system with systemd-nspawn,
with systemd as PID 1. ``--volatile=overlay`` sends its writes to a tmpfs, so the cache stays
untouched. Each host has its own veth link and takes ssh logins as root with a key made for it.

Commands (all need root, and the packages from scripts/install-test-host-packages):

    testhost.py build                      build the cached root file system if it is missing
    testhost.py start NAME [--serve DIR]   boot host NAME, print its details as JSON
    testhost.py stop NAME                  power host NAME off and stop its HTTP server
    testhost.py show NAME                  print the details of a running host as JSON

``--serve DIR`` also starts an HTTP server on the controller side of the veth link, port 8080,
that serves DIR to the test host (for example a release binary the role downloads).
"""

import argparse
import fcntl
import functools
import hashlib
import http.server
import ipaddress
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

CHECKOUT = Path(__file__).resolve().parents[2]
CACHE_DIR = Path(os.environ.get("HOMELAB_EDGE_TESTHOST_CACHE", CHECKOUT / ".cache" / "testhost"))
RUN_DIR = Path(os.environ.get("HOMELAB_EDGE_TESTHOST_RUN", CHECKOUT / ".run" / "testhosts"))

SUITE = "bookworm"
MIRROR = os.environ.get("HOMELAB_EDGE_DEBIAN_MIRROR", "http://deb.debian.org/debian")
INCLUDE = "python3,systemd,systemd-sysv,dbus,openssh-server,iproute2,ca-certificates"

# Each host gets the /30 network 10.231.N.0/30: the controller side is .1 and the host is .2.
NETWORK_PREFIX = "10.231"
HTTP_PORT = 8080

# Interface names are limited to 15 bytes, and nspawn names the controller side "ve-<machine>".
MAX_NAME_LENGTH = 12

# Deadlines for waiting on the host. They bound a hung boot and are not measurements.
BOOT_DEADLINE_SECONDS = 90
STOP_DEADLINE_SECONDS = 30


def log(message):
    print(f"testhost: {message}", file=sys.stderr, flush=True)


def fail(message):
    log(message)
    sys.exit(1)


def rootfs_path():
    key = hashlib.sha256(f"{SUITE} {MIRROR} minbase {INCLUDE} v1".encode()).hexdigest()[:12]
    return CACHE_DIR / f"{SUITE}-{key}" / "rootfs"


def locked(path):
    """Open and exclusively lock PATH, so that parallel runs wait for each other."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = open(path, "w")
    fcntl.flock(handle, fcntl.LOCK_EX)
    return handle


def build():
    """Build the cached root file system unless it exists, and return its path."""
    rootfs = rootfs_path()
    with locked(rootfs.parent / ".lock"):
        if (rootfs / "etc" / "debian_version").exists():
            return rootfs

        if shutil.which("debootstrap") is None:
            fail("debootstrap not found; run scripts/install-test-host-packages as root first")

        staging = rootfs.parent / "rootfs.partial"
        shutil.rmtree(staging, ignore_errors=True)
        log(f"building the {SUITE} root file system in {rootfs} (about a minute)")
        command = [
            "debootstrap", "--variant=minbase", f"--include={INCLUDE}", SUITE, str(staging), MIRROR,
        ]
        result = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, check=False)
        if result.returncode != 0:
            tail = "\n".join(result.stdout.splitlines()[-20:])
            fail(f"debootstrap failed with exit code {result.returncode}:\n{tail}")

        prepare_rootfs(staging)
        staging.rename(rootfs)
        return rootfs


def prepare_rootfs(rootfs):
    """Trim the package caches and make sshd accept the per-host key for root."""
    for cache in ("var/cache/apt/archives", "var/lib/apt/lists"):
        for entry in (rootfs / cache).glob("*"):
            if entry.is_file():
                entry.unlink()

    sshd_drop_in = rootfs / "etc/ssh/sshd_config.d/testhost.conf"
    sshd_drop_in.write_text(
        "# Test host: root logs in with the key bound to /root/.ssh/authorized_keys at boot.\n"
        "PermitRootLogin prohibit-password\n"
        "PasswordAuthentication no\n"
        "UseDNS no\n"
    )
    (rootfs / "root/.ssh").mkdir(mode=0o700, exist_ok=True)
    # An empty file is the mount point for the read-only key bound in at boot.
    (rootfs / "root/.ssh/authorized_keys").touch(mode=0o600)


def validate_name(name):
    if not name or len(name) > MAX_NAME_LENGTH or not all(c.isalnum() or c == "-" for c in name):
        fail(
            f"invalid host name {name!r}: use 1 to {MAX_NAME_LENGTH} letters, digits or hyphens, "
            "because nspawn derives the 15-byte interface name ve-NAME from it"
        )


def used_subnet_numbers():
    output = subprocess.run(
        ["ip", "-4", "-o", "addr", "show"], stdout=subprocess.PIPE, text=True, check=True
    ).stdout
    numbers = set()
    for line in output.split("\n"):
        for field in line.split():
            if field.startswith(NETWORK_PREFIX + "."):
                numbers.add(int(field.split(".")[2]))
    return numbers


def descendants(pid):
    """Yield the process ids below PID, breadth first."""
    queue = [pid]
    while queue:
        current = queue.pop(0)
        try:
            children_file = Path(f"/proc/{current}/task/{current}/children")
            children = [int(c) for c in children_file.read_text().split()]
        except (FileNotFoundError, ProcessLookupError):
            continue
        for child in children:
            yield child
            queue.append(child)


def find_leader(nspawn_pid):
    """Return the pid of systemd running as PID 1 inside the container, or None."""
    for pid in descendants(nspawn_pid):
        try:
            if Path(f"/proc/{pid}/comm").read_text().strip() == "systemd":
                return pid
        except FileNotFoundError:
            continue
    return None


def process_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def ssh_banner_ready(address):
    try:
        with socket.create_connection((address, 22), timeout=2) as connection:
            return connection.recv(64).startswith(b"SSH-")
    except OSError:
        return False


def start(name, serve_dir):
    validate_name(name)
    rootfs = build()

    host_dir = RUN_DIR / name
    details_file = host_dir / "host.json"
    if details_file.exists():
        fail(f"test host {name} is already running (see {details_file}); stop it first")
    host_dir.mkdir(parents=True, exist_ok=True)

    key = host_dir / "id_ed25519"
    if not key.exists():
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"testhost-{name}", "-f", str(key)],
            check=True,
        )
    authorized_keys = host_dir / "authorized_keys"
    shutil.copyfile(key.with_suffix(".pub"), authorized_keys)
    os.chmod(authorized_keys, 0o600)

    with locked(RUN_DIR / ".network.lock"):
        used = used_subnet_numbers()
        subnet = next((n for n in range(1, 255) if n not in used), None)
        if subnet is None:
            fail(f"no free {NETWORK_PREFIX}.N.0/30 network left for test host {name}")
        controller_address = f"{NETWORK_PREFIX}.{subnet}.1"
        host_address = f"{NETWORK_PREFIX}.{subnet}.2"

        console_log = open(host_dir / "nspawn.log", "w")
        command = [
            "systemd-nspawn", "-D", str(rootfs), "-M", name,
            "--boot", "--register=no", "--keep-unit", "--volatile=overlay",
            "--network-veth", f"--bind-ro={authorized_keys}:/root/.ssh/authorized_keys",
            "--console=passive",
        ]
        nspawn = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=console_log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        details = {
            "name": name,
            "nspawn_pid": nspawn.pid,
            "address": host_address,
            "controller_address": controller_address,
            "identity_file": str(key),
            "rootfs": str(rootfs),
            "log": str(host_dir / "nspawn.log"),
        }
        details_file.write_text(json.dumps(details, indent=2) + "\n")

        leader = wait_for(lambda: find_leader(nspawn.pid), nspawn, name, "systemd to start")
        details["leader_pid"] = leader
        interface = f"ve-{name}"
        wait_for(lambda: Path(f"/sys/class/net/{interface}").exists(), nspawn, name, interface)
        subprocess.run(["ip", "addr", "add", f"{controller_address}/30", "dev", interface], check=True)
        subprocess.run(["ip", "link", "set", interface, "up"], check=True)

    wait_for(
        lambda: Path(f"/proc/{leader}/root/sys/class/net/host0").exists() or host0_present(leader),
        nspawn, name, "the host0 interface",
    )
    nsenter = ["nsenter", "-t", str(leader), "-n", "--"]
    subprocess.run(nsenter + ["ip", "addr", "add", f"{host_address}/30", "dev", "host0"], check=True)
    subprocess.run(nsenter + ["ip", "link", "set", "host0", "up"], check=True)

    wait_for(lambda: ssh_banner_ready(host_address), nspawn, name, f"sshd on {host_address}:22")

    if serve_dir:
        details["http_url"] = f"http://{controller_address}:{HTTP_PORT}"
        details["http_pid"] = start_http_server(controller_address, Path(serve_dir), host_dir)

    details_file.write_text(json.dumps(details, indent=2) + "\n")
    print(json.dumps(details))


def host0_present(leader):
    result = subprocess.run(
        ["nsenter", "-t", str(leader), "-n", "--", "ip", "link", "show", "host0"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False,
    )
    return result.returncode == 0


def wait_for(condition, nspawn, name, what):
    deadline = time.monotonic() + BOOT_DEADLINE_SECONDS
    while time.monotonic() < deadline:
        if nspawn.poll() is not None:
            stop(name, quiet=True)
            fail(f"systemd-nspawn for test host {name} exited with {nspawn.returncode}; "
                 f"see {RUN_DIR / name / 'nspawn.log'}")
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    stop(name, quiet=True)
    fail(f"timed out after {BOOT_DEADLINE_SECONDS} s waiting for {what} on test host {name}")


def start_http_server(address, directory, host_dir):
    """Start a detached HTTP server for DIRECTORY on ADDRESS and return its pid."""
    if not directory.is_dir():
        fail(f"directory to serve not found: {directory}")
    access_log = open(host_dir / "http.log", "a")
    server = subprocess.Popen(
        [sys.executable, os.path.abspath(__file__), "_http", address, str(directory)],
        stdin=subprocess.DEVNULL, stdout=access_log, stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection((address, HTTP_PORT), timeout=1).close()
            return server.pid
        except OSError:
            if server.poll() is not None:
                fail(f"HTTP server for {directory} exited; see {host_dir / 'http.log'}")
            time.sleep(0.05)
    fail(f"timed out waiting for the HTTP server on {address}:{HTTP_PORT}")


def serve_http(address, directory):
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=directory)
    http.server.ThreadingHTTPServer((address, HTTP_PORT), handler).serve_forever()


def terminate(pid, deadline_seconds):
    """Send SIGTERM to PID, wait for it to exit, then SIGKILL it. Return True if it was running."""
    if not pid or not process_alive(pid):
        return False
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + deadline_seconds
    while time.monotonic() < deadline:
        try:
            finished, _status = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            finished = 0 if process_alive(pid) else pid
        if finished or not process_alive(pid):
            return True
        time.sleep(0.1)
    log(f"process {pid} did not exit after SIGTERM; sending SIGKILL")
    os.kill(pid, signal.SIGKILL)
    return True


def stop(name, quiet=False):
    validate_name(name)
    host_dir = RUN_DIR / name
    details_file = host_dir / "host.json"
    if not details_file.exists():
        if not quiet:
            log(f"test host {name} is not running")
        return
    details = json.loads(details_file.read_text())

    terminate(details.get("http_pid"), 5)
    # SIGTERM makes nspawn ask systemd in the container for a clean poweroff.
    terminate(details.get("nspawn_pid"), STOP_DEADLINE_SECONDS)
    details_file.unlink()


def show(name):
    validate_name(name)
    details_file = RUN_DIR / name / "host.json"
    if not details_file.exists():
        fail(f"test host {name} is not running")
    print(details_file.read_text().strip())


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("build", help="build the cached root file system if it is missing")
    start_parser = commands.add_parser("start", help="boot a test host and print its details")
    start_parser.add_argument("name")
    start_parser.add_argument("--serve", metavar="DIR", help="serve DIR over HTTP on port 8080")
    stop_parser = commands.add_parser("stop", help="power a test host off")
    stop_parser.add_argument("name")
    show_parser = commands.add_parser("show", help="print the details of a running test host")
    show_parser.add_argument("name")
    http_parser = commands.add_parser("_http")
    http_parser.add_argument("address", type=ipaddress.ip_address)
    http_parser.add_argument("directory")
    arguments = parser.parse_args()

    if arguments.command != "_http" and os.geteuid() != 0:
        fail("must run as root, because it runs debootstrap, systemd-nspawn and ip")
    if arguments.command == "build":
        print(build())
    elif arguments.command == "start":
        start(arguments.name, arguments.serve)
    elif arguments.command == "stop":
        stop(arguments.name)
    elif arguments.command == "show":
        show(arguments.name)
    elif arguments.command == "_http":
        serve_http(str(arguments.address), arguments.directory)


if __name__ == "__main__":
    main()
