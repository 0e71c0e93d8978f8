#!/usr/bin/env python3
# Copyright (c) homelab.edge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Stand-in for the Ollama server and its ``ollama`` program, for tests only.

It serves the part of Ollama's HTTP API that homelab.edge uses, with the behaviour of
Ollama 0.32 where it matters to the collection:

- ``GET|HEAD /``, ``/api/version``, ``/api/tags``, ``POST /api/show``, ``POST /api/pull``
  (streamed as JSON lines, or one object with ``"stream": false``), ``DELETE /api/delete``
  and ``POST /api/chat`` (streamed or not).
- Model names without a tag get ``:latest``.
- A pull that fails after progress was sent ends with an ``{"error": ...}`` line while the
  HTTP status stays 200, as real Ollama does.
- A server bound to a loopback address responds with 403 and an empty body when the Host header
  names anything but ``localhost`` or a loopback IP address (any port). Real Ollama also
  admits its own host name and names ending in ``.local``, ``.internal`` or ``.localhost``.
  NOTE: the stand-in rejects those, so a test cannot rely on them.
- A request with an ``Origin`` header outside the built-in origins and ``OLLAMA_ORIGINS``
  gets 403, as the CORS check of real Ollama does.

Use it from Python::

    server = start("127.0.0.1", 0, models=["llama3.2"])
    ...  # server.url, server.models, server.requests
    server.stop()

or as a program, ``ollama serve``, configured by the environment like real Ollama:

- ``OLLAMA_HOST``: listen address, default ``127.0.0.1:11434``.
- ``OLLAMA_MODELS``: directory where the stand-in keeps its model list, default
  ``$HOME/.ollama/models``. Like real Ollama, the program exits with an error when neither
  this nor ``HOME`` is set.
- ``OLLAMA_ORIGINS`` and ``OLLAMA_KEEP_ALIVE``, which the startup log line shows.
- ``OLLAMA_STANDIN_REQUEST_LOG`` (stand-in only): file that receives one JSON line per request.
- ``OLLAMA_STANDIN_PULL_ERRORS`` (stand-in only): JSON object that maps a model name to the
  error its pull ends with.

The file uses only the standard library, so it can be installed as ``bin/ollama`` on a test
host that has nothing but ``python3``.
"""

import argparse
import fnmatch
import hashlib
import ipaddress
import json
import logging
import os
import signal
import sys
import threading
import urllib.error
import urllib.request
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from socket import AF_INET6

LOG = logging.getLogger("ollama-standin")

DEFAULT_VERSION = "0.32.3"
DEFAULT_PORT = 11434
MODEL_LIST_FILE = "standin-models.json"

# Origins that real Ollama admits before OLLAMA_ORIGINS is added to them.
BUILTIN_ORIGINS = [
    "http://localhost", "https://localhost", "http://localhost:*", "https://localhost:*",
    "http://127.0.0.1", "https://127.0.0.1", "http://127.0.0.1:*", "https://127.0.0.1:*",
    "http://0.0.0.0", "https://0.0.0.0", "http://0.0.0.0:*", "https://0.0.0.0:*",
    "app://*", "file://*", "tauri://*", "vscode-webview://*", "vscode-file://*",
]

# Error line that ends the pull of a name the registry does not have.
MANIFEST_NOT_FOUND = "pull model manifest: file does not exist"


def normalize_model_name(name):
    """Return the model name with ``:latest`` added when it has no tag."""
    last_segment = name.rsplit("/", 1)[-1]
    if ":" in last_segment:
        return name
    return name + ":latest"


def parse_ollama_host(value):
    """Parse an OLLAMA_HOST value into ``(host, port)`` the way Ollama 0.32 does.

    The form is ``[scheme://]host[:port][/path]``. Without a port, ``http://`` means 80,
    ``https://`` 443 and a bare host 11434. An empty value means ``127.0.0.1:11434``, and an
    empty host before a port means every interface.
    """
    value = (value or "").strip().strip("\"'")
    default_port = DEFAULT_PORT
    if "://" in value:
        scheme, value = value.split("://", 1)
        default_port = 443 if scheme == "https" else 80
    value = value.split("/", 1)[0]
    if not value:
        return "127.0.0.1", DEFAULT_PORT

    if value.startswith("["):
        host, bracket, rest = value[1:].partition("]")
        port_text = rest[1:] if bracket and rest.startswith(":") else ""
    elif value.count(":") == 1:
        host, port_text = value.split(":")
    else:
        host, port_text = value, ""

    if not host:
        # Like Go's net.Listen, ":11434" means every interface.
        host = "0.0.0.0"
    try:
        port = int(port_text) if port_text else default_port
    except ValueError:
        # Real Ollama falls back to its default port on an invalid one.
        port = DEFAULT_PORT
    return host, port


def is_loopback_host(host):
    """Return whether ``host`` (a Host header without its port) names a loopback address."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def strip_port(host_header):
    """Return the host part of a Host header value, without port or IPv6 brackets."""
    if host_header.startswith("["):
        return host_header[1:].partition("]")[0]
    if host_header.count(":") == 1:
        return host_header.split(":")[0]
    return host_header


def now_rfc3339():
    return datetime.now(timezone.utc).isoformat(timespec="microseconds").replace("+00:00", "Z")


def make_model_entry(name, size=None):
    """Build the /api/tags entry of a model; digest and size are derived from the name."""
    name = normalize_model_name(name)
    digest = hashlib.sha256(name.encode("utf-8")).hexdigest()
    if size is None:
        size = 1000000 + int(digest[:6], 16)
    return {
        "name": name,
        "model": name,
        "modified_at": now_rfc3339(),
        "size": size,
        "digest": digest,
        "details": {
            "parent_model": "",
            "format": "gguf",
            "family": "standin",
            "families": ["standin"],
            "parameter_size": "1B",
            "quantization_level": "Q4_K_M",
        },
    }


class OllamaStandin(ThreadingHTTPServer):
    """HTTP server with the stand-in's state: installed models and a request log.

    ``models`` maps normalized names to their /api/tags entries. ``requests`` lists one dict
    per request (method, path, host, origin, body), in arrival order.
    """

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, host, port, models=(), pull_errors=None, registry=None,
                 version=DEFAULT_VERSION, origins=None, state_dir=None, request_log=None):
        if ":" in host:
            self.address_family = AF_INET6
        super().__init__((host, port), OllamaRequestHandler)
        self.version = version
        self.pull_errors = {normalize_model_name(k): v for k, v in (pull_errors or {}).items()}
        self.registry = None if registry is None else {normalize_model_name(n) for n in registry}
        self.allowed_origins = BUILTIN_ORIGINS + [o.strip() for o in (origins or []) if o.strip()]
        self.state_dir = state_dir
        self.request_log = request_log
        self.lock = threading.Lock()
        self.requests = []
        self.models = {}
        self._thread = None

        if state_dir:
            self._load_models()
        for model in models:
            if isinstance(model, dict):
                entry = make_model_entry(model["name"], model.get("size"))
            else:
                entry = make_model_entry(model)
            self.models[entry["name"]] = entry
        self.checks_host = ipaddress.ip_address(self.server_address[0]).is_loopback

    @property
    def url(self):
        host, port = self.server_address[:2]
        if ":" in host:
            host = "[%s]" % host
        return "http://%s:%d" % (host, port)

    def stop(self):
        """Stop serving and close the listening socket."""
        self.shutdown()
        self.server_close()
        if self._thread is not None:
            self._thread.join()

    def record_request(self, entry):
        with self.lock:
            self.requests.append(entry)
        if self.request_log:
            with open(self.request_log, "a", encoding="utf-8") as log_file:
                log_file.write(json.dumps(entry) + "\n")

    def add_model(self, name):
        entry = make_model_entry(name)
        with self.lock:
            self.models[entry["name"]] = entry
            self._save_models()
        return entry

    def delete_model(self, name):
        with self.lock:
            removed = self.models.pop(normalize_model_name(name), None)
            self._save_models()
        return removed

    def _load_models(self):
        path = os.path.join(self.state_dir, MODEL_LIST_FILE)
        try:
            with open(path, encoding="utf-8") as state_file:
                self.models = json.load(state_file)
        except FileNotFoundError:
            self.models = {}

    def _save_models(self):
        if not self.state_dir:
            return
        os.makedirs(self.state_dir, exist_ok=True)
        path = os.path.join(self.state_dir, MODEL_LIST_FILE)
        with open(path + ".tmp", "w", encoding="utf-8") as state_file:
            json.dump(self.models, state_file, indent=2)
        os.replace(path + ".tmp", path)


class OllamaRequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "ollama-standin"

    def log_message(self, format, *args):  # noqa: A002 - signature fixed by http.server
        LOG.info("%s %s", self.address_string(), format % args)

    # Dispatch

    def do_HEAD(self):
        self.handle_request("HEAD")

    def do_GET(self):
        self.handle_request("GET")

    def do_POST(self):
        self.handle_request("POST")

    def do_DELETE(self):
        self.handle_request("DELETE")

    def do_OPTIONS(self):
        self.handle_request("OPTIONS")

    def handle_request(self, method):
        body = self.read_json_body()
        host_header = self.headers.get("Host", "")
        origin = self.headers.get("Origin")
        self.server.record_request({
            "method": method,
            "path": self.path,
            "host": host_header,
            "origin": origin,
            "body": body,
        })

        if self.server.checks_host and host_header and not is_loopback_host(strip_port(host_header)):
            self.send_empty(403)
            return
        if origin is not None and not self.origin_allowed(origin):
            self.send_empty(403)
            return
        if method == "OPTIONS":
            self.send_empty(204)
            return

        routes = {
            ("GET", "/"): self.route_root,
            ("HEAD", "/"): self.route_root,
            ("GET", "/api/version"): self.route_version,
            ("HEAD", "/api/version"): self.route_version,
            ("GET", "/api/tags"): self.route_tags,
            ("HEAD", "/api/tags"): self.route_tags,
            ("POST", "/api/show"): self.route_show,
            ("POST", "/api/pull"): self.route_pull,
            ("DELETE", "/api/delete"): self.route_delete,
            ("POST", "/api/chat"): self.route_chat,
        }
        route = routes.get((method, self.path.split("?", 1)[0]))
        if route is None:
            self.send_text(404, "404 page not found")
            return
        if body is _INVALID_JSON:
            self.send_json(400, {"error": "invalid request body: not JSON"})
            return
        route(method, body or {})

    # Routes

    def route_root(self, method, body):
        self.send_text(200, "Ollama is running", head_only=(method == "HEAD"))

    def route_version(self, method, body):
        self.send_json(200, {"version": self.server.version}, head_only=(method == "HEAD"))

    def route_tags(self, method, body):
        with self.server.lock:
            models = sorted(self.server.models.values(), key=lambda m: m["name"])
        self.send_json(200, {"models": models}, head_only=(method == "HEAD"))

    def route_show(self, method, body):
        name = self.model_name(body)
        if name is None:
            return
        entry = self.server.models.get(name)
        if entry is None:
            self.send_json(404, {"error": "model '%s' not found" % name})
            return
        self.send_json(200, {
            "license": "",
            "modelfile": "# Modelfile generated by the Ollama stand-in\nFROM %s\n" % name,
            "parameters": "",
            "template": "{{ .Prompt }}",
            "details": entry["details"],
            "model_info": {"general.architecture": "standin"},
            "capabilities": ["completion"],
            "modified_at": entry["modified_at"],
        })

    def route_pull(self, method, body):
        name = self.model_name(body)
        if name is None:
            return
        error = self.server.pull_errors.get(name)
        if error is None and self.server.registry is not None and name not in self.server.registry:
            error = MANIFEST_NOT_FOUND
        entry = make_model_entry(name)

        if not body.get("stream", True):
            if error is not None:
                self.send_json(500, {"error": error})
                return
            self.server.add_model(name)
            self.send_json(200, {"status": "success"})
            return

        lines = [{"status": "pulling manifest"}]
        if error == MANIFEST_NOT_FOUND:
            lines.append({"error": error})
        else:
            digest = "sha256:" + entry["digest"]
            total = entry["size"]
            status = "pulling %s" % entry["digest"][:12]
            for completed in (0, total // 2, total):
                lines.append({"status": status, "digest": digest, "total": total, "completed": completed})
            if error is not None:
                lines.append({"error": error})
            else:
                lines += [
                    {"status": "verifying sha256 digest"},
                    {"status": "writing manifest"},
                    {"status": "success"},
                ]
        self.send_stream(lines)
        if error is None:
            self.server.add_model(name)

    def route_delete(self, method, body):
        name = self.model_name(body)
        if name is None:
            return
        if self.server.delete_model(name) is None:
            self.send_json(404, {"error": "model '%s' not found" % name})
            return
        self.send_empty(200)

    def route_chat(self, method, body):
        name = self.model_name(body)
        if name is None:
            return
        if name not in self.server.models:
            self.send_json(404, {"error": "model '%s' not found" % name})
            return
        messages = body.get("messages") or []
        prompt = messages[-1].get("content", "") if messages else ""
        words = ("Stand-in reply to: " + prompt).split(" ")

        def chunk(content, done):
            line = {
                "model": name,
                "created_at": now_rfc3339(),
                "message": {"role": "assistant", "content": content},
                "done": done,
            }
            if done:
                line.update({"done_reason": "stop", "total_duration": 1000, "eval_count": len(words)})
            return line

        if not body.get("stream", True):
            self.send_json(200, chunk(" ".join(words), True))
            return
        lines = [chunk(word if i == 0 else " " + word, False) for i, word in enumerate(words)]
        lines.append(chunk("", True))
        self.send_stream(lines)

    # Helpers

    def origin_allowed(self, origin):
        return any(fnmatch.fnmatchcase(origin, pattern) for pattern in self.server.allowed_origins)

    def model_name(self, body):
        """Return the normalized model name of a request, or send 400 and return None."""
        name = body.get("model") or body.get("name")
        if not isinstance(name, str) or not name.strip():
            self.send_json(400, {"error": "model is required"})
            return None
        return normalize_model_name(name.strip())

    def read_json_body(self):
        length = int(self.headers.get("Content-Length") or 0)
        if length <= 0:
            return None
        raw = self.rfile.read(length)
        try:
            return json.loads(raw)
        except ValueError:
            return _INVALID_JSON

    def send_cors_headers(self):
        origin = self.headers.get("Origin")
        if origin is not None:
            self.send_header("Access-Control-Allow-Origin", origin)
            self.send_header("Vary", "Origin")

    def send_empty(self, status):
        self.send_response(status)
        self.send_cors_headers()
        self.send_header("Content-Length", "0")
        self.end_headers()

    def send_text(self, status, text, head_only=False):
        data = text.encode("utf-8")
        self.send_response(status)
        self.send_cors_headers()
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if not head_only:
            self.wfile.write(data)

    def send_json(self, status, document, head_only=False):
        data = json.dumps(document).encode("utf-8")
        self.send_response(status)
        self.send_cors_headers()
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if not head_only:
            self.wfile.write(data)

    def send_stream(self, lines):
        """Send JSON lines with chunked transfer encoding, one chunk per line, flushed."""
        self.send_response(200)
        self.send_cors_headers()
        self.send_header("Content-Type", "application/x-ndjson")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for line in lines:
            data = (json.dumps(line) + "\n").encode("utf-8")
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
            self.wfile.flush()
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()


_INVALID_JSON = object()


def start(host="127.0.0.1", port=DEFAULT_PORT, models=(), **options):
    """Start a stand-in server in a background thread and return it.

    ``port`` 0 picks a free port (see ``server.url``). ``models`` lists the installed
    models, as names or ``{"name", "size"}`` dicts. ``pull_errors`` maps a model name to
    the error its pull ends with. ``registry`` lists the names that can be pulled, and any
    name can be pulled when it is unset. The other options are ``version``, ``origins``
    (extra allowed CORS origins), ``state_dir`` and ``request_log``.
    """
    server = OllamaStandin(host, port, models=models, **options)
    thread = threading.Thread(target=server.serve_forever, name="ollama-standin", daemon=True)
    thread.start()
    server._thread = thread
    return server


def server_config_from_environment(environ):
    """Build the keyword arguments of ``OllamaStandin``, except host and port, from OLLAMA_* variables.

    Raises SystemExit, as real Ollama panics, when neither OLLAMA_MODELS nor HOME is set.
    """
    models_dir = environ.get("OLLAMA_MODELS", "").strip()
    if not models_dir:
        home = environ.get("HOME", "").strip()
        if not home:
            raise SystemExit("Error: $HOME is not defined, so the models directory is unknown;"
                             " set HOME or OLLAMA_MODELS")
        models_dir = os.path.join(home, ".ollama", "models")

    pull_errors = {}
    if environ.get("OLLAMA_STANDIN_PULL_ERRORS"):
        pull_errors = json.loads(environ["OLLAMA_STANDIN_PULL_ERRORS"])

    return {
        "origins": environ.get("OLLAMA_ORIGINS", "").split(","),
        "state_dir": models_dir,
        "request_log": environ.get("OLLAMA_STANDIN_REQUEST_LOG") or None,
        "pull_errors": pull_errors,
    }


def serve(environ):
    """Run ``ollama serve`` in the foreground until SIGTERM or SIGINT."""
    config = server_config_from_environment(environ)
    host, port = parse_ollama_host(environ.get("OLLAMA_HOST", ""))
    env_map = " ".join("%s:%s" % (k, v) for k, v in sorted(environ.items()) if k.startswith("OLLAMA_"))
    LOG.info('msg="server config" env="map[%s]"', env_map)

    # The handlers are installed before the socket listens, so a client that connects at once
    # and sends SIGTERM still gets a clean stop.
    stop_requested = threading.Event()
    servers = []

    def handle_stop(signum, frame):
        LOG.info("received signal %d, stopping", signum)
        stop_requested.set()
        for running_server in servers:
            threading.Thread(target=running_server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, handle_stop)
    signal.signal(signal.SIGINT, handle_stop)

    try:
        server = OllamaStandin(host, port, **config)
    except OSError as error:
        LOG.error("Error: listen tcp %s:%d: %s", host, port, error)
        return 1
    servers.append(server)
    LOG.info('msg="Listening on %s:%d (version %s)"', host, port, server.version)
    if stop_requested.is_set():
        server.server_close()
        LOG.info("stopped")
        return 0

    server.serve_forever()
    server.server_close()
    LOG.info("stopped")
    return 0


def list_models(environ):
    """Run ``ollama list`` against the server named by OLLAMA_HOST."""
    host, port = parse_ollama_host(environ.get("OLLAMA_HOST", ""))
    if host in ("0.0.0.0", "::"):
        host = "127.0.0.1"
    if ":" in host:
        host = "[%s]" % host
    try:
        with urllib.request.urlopen("http://%s:%d/api/tags" % (host, port), timeout=10) as response:
            models = json.load(response)["models"]
    except (urllib.error.URLError, OSError) as error:
        print("Error: could not connect to ollama server at %s:%d: %s" % (host, port, error), file=sys.stderr)
        return 1
    print("NAME\tID\tSIZE\tMODIFIED")
    for model in models:
        print("%s\t%s\t%d\t%s" % (model["name"], model["digest"][:12], model["size"], model["modified_at"]))
    return 0


def main(argv=None):
    parser = argparse.ArgumentParser(prog="ollama", description="Stand-in for the ollama program.")
    parser.add_argument("-v", "--version", action="store_true", help="print the version and exit")
    subcommands = parser.add_subparsers(dest="command")
    subcommands.add_parser("serve", help="run the HTTP server configured by OLLAMA_* variables")
    subcommands.add_parser("list", help="list the models on the server named by OLLAMA_HOST")
    args = parser.parse_args(argv)

    logging.basicConfig(stream=sys.stderr, level=logging.INFO,
                        format="time=%(asctime)s level=%(levelname)s source=standin %(message)s")
    if args.version:
        print("ollama version is %s" % DEFAULT_VERSION)
        return 0
    if args.command == "serve":
        return serve(os.environ)
    if args.command == "list":
        return list_models(os.environ)
    parser.print_help(sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
