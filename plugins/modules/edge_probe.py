#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) homelab.edge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: edge_probe
short_description: Send one request through a public hostname at Cloudflare and classify the answer
version_added: 0.1.0
description:
  - Sends a request to a hostname published through Cloudflare (DNS, WAF, rate limiting, Access, Tunnel,
    origin) and names the step that answered, with a fix in one sentence when the answer is not the
    expected one.
  - The request carries an Access service token when O(client_id) and O(client_secret) are given, and
    never follows redirects, so an Access login redirect is seen as such.
  - The module fails when the classification is not in O(expect). Register the result and set
    C(failed_when) to collect several probes before failing.
  - With O(zone), the module also reads the zone's Bot Fight Mode setting through the Cloudflare API and
    warns when it is on, because it challenges server-to-server clients.
options:
  url:
    description:
      - Full URL to request, for example V(https://chat.example.com/api/tags).
      - Give either O(url) or O(hostname).
    type: str
  hostname:
    description:
      - Public hostname to request, with O(path) and O(scheme).
    type: str
  path:
    description:
      - Path and query of the request when O(hostname) is given.
    type: str
    default: /
  scheme:
    description:
      - Scheme of the public URL when O(hostname) is given.
    type: str
    choices: [https, http]
    default: https
  method:
    description:
      - HTTP method.
    type: str
    default: GET
  headers:
    description:
      - Extra request headers.
      - Do not put the service token here. Use O(client_id) and O(client_secret), which are never logged.
    type: dict
    default: {}
  body:
    description:
      - "Request body. A dict or list is sent as JSON with C(Content-Type: application/json)."
    type: raw
  client_id:
    description:
      - Client id of an Access service token, sent as C(CF-Access-Client-Id).
    type: str
  client_secret:
    description:
      - Client secret of the Access service token, sent as C(CF-Access-Client-Secret). It is never returned
        or logged.
    type: str
  expected_status:
    description:
      - HTTP statuses that count as a successful answer from the origin (classification V(ok)).
    type: list
    elements: int
    default: [200]
  response_format:
    description:
      - V(json) makes a successful status with a body that is not JSON count as V(unexpected_body).
    type: str
    choices: [any, json]
    default: any
  expect:
    description:
      - Classifications that count as passed. The module fails on any other.
      - For a request without a service token to an application that only admits service tokens, use
        V([access_denied_401, access_login_redirect]).
    type: list
    elements: str
    default: [ok]
  repeat:
    description:
      - How many times to send the request. Each attempt sends the credentials again and no cookie, as a
        backend must do, because Access does not accept its session cookie for service tokens.
      - The result describes the first attempt that did not pass, or the last one.
    type: int
    default: 1
  timeout:
    description:
      - Seconds to wait for the connection and for the response headers.
    type: float
    default: 30
  connect_url:
    description:
      - Scheme, address and port to connect to instead of the public hostname, for example
        V(http://127.0.0.1:8443) for a local edge emulator. The public hostname is still sent in the
        C(Host) header.
      - Over V(https), the TLS server name is the address of O(connect_url), not the hostname.
    type: str
  validate_certs:
    description:
      - Whether to verify the TLS certificate of the server.
    type: bool
    default: true
  user_agent:
    description:
      - C(User-Agent) header. The default does not look like a browser, as a server-to-server client does
        not, so the probe sees what such a client sees from Bot Fight Mode.
    type: str
    default: homelab.edge-probe/0.1
  zone:
    description:
      - Zone of the hostname, by domain name or id. When set, the module reads the zone's Bot Fight Mode
        setting (C(GET /zones/{zone_id}/bot_management)) and warns when it is on.
    type: str
  api_token:
    description:
      - Cloudflare API token for the O(zone) read. If not set, the value of the E(CLOUDFLARE_API_TOKEN)
        environment variable is used.
    type: str
  api_base_url:
    description:
      - Base URL of the Cloudflare v4 API for the O(zone) read. If not set, the value of the
        E(CLOUDFLARE_BASE_URL) environment variable is used, and then V(https://api.cloudflare.com/client/v4).
    type: str
attributes:
  check_mode:
    description: Can run in check mode.
    support: full
    details:
      - The module only reads, so it sends its requests in check mode too.
  diff_mode:
    description: Would return a diff in diff mode.
    support: none
notes:
  - Classifications are V(ok), V(access_login_redirect), V(access_denied_401), V(origin_host_header),
    V(tunnel_down), V(origin_refused), V(origin_timeout), V(no_ingress_rule), V(rate_limited), V(dns),
    V(cloudflare_challenge), V(cloudflare_error_<code>) for other Cloudflare error pages (such as 1010 and
    1020), V(unexpected_status), V(unexpected_body), V(timeout), V(unreachable) and V(tls_error).
  - A 401 is taken to come from Access and a 403 with an empty body from an origin that rejected the Host
    header, as Ollama does. An origin that itself answers 401, or 403 without a body, is misread.
  - Cloudflare answers a proxied request that the origin leaves without response headers for 100 seconds
    with 524 (Free, Pro and Business plans). Set O(timeout) above 100 to see that answer.
  - The module uses C(ansible.module_utils.urls) for the probe. The O(zone) read needs the C(cloudflare)
    Python SDK 5.x.
author:
  - homelab.edge contributors (@homelab-edge)
"""

EXAMPLES = r"""
- name: Access refuses a request without the service token
  homelab.edge.edge_probe:
    url: https://chat.example.com/api/tags
    expect: [access_denied_401, access_login_redirect]

- name: The service token reaches Ollama, twice, and Bot Fight Mode is checked
  homelab.edge.edge_probe:
    url: https://chat.example.com/api/tags
    client_id: "{{ vault_chat_client_id }}"
    client_secret: "{{ vault_chat_client_secret }}"
    response_format: json
    repeat: 2
    zone: example.com
  register: chat_probe

- name: Report the latency
  ansible.builtin.debug:
    msg: "{{ chat_probe.url }} answered in {{ chat_probe.latency_ms }} ms"

- name: Probe through a local edge emulator, sending the public hostname
  homelab.edge.edge_probe:
    hostname: chat.example.com
    path: /api/tags
    connect_url: http://127.0.0.1:8443
    expect: [ok, tunnel_down]
"""

RETURN = r"""
url:
  description: Public URL that was probed.
  returned: always
  type: str
  sample: https://chat.example.com/api/tags
status:
  description: HTTP status of the answer, or V(null) when no answer came.
  returned: always
  type: int
  sample: 200
classification:
  description: The step that answered, as listed in the notes.
  returned: always
  type: str
  sample: ok
fix:
  description: What to change, in one sentence, or V(null) for V(ok).
  returned: always
  type: str
  sample: Set originRequest.httpHostHeader to localhost:11434 on the tunnel's ingress rule for chat.example.com.
passed:
  description: Whether the classification is in O(expect).
  returned: always
  type: bool
latency_ms:
  description: Milliseconds from sending the request to receiving the response headers.
  returned: always
  type: float
total_ms:
  description: Milliseconds from sending the request to the end of the body read (at most 64 KiB are read).
  returned: always
  type: float
cf_ray:
  description: Cloudflare Ray ID of the answer, to quote to Cloudflare support.
  returned: when Cloudflare sent one
  type: str
error_code:
  description: Cloudflare error code found in an error page, such as 1033.
  returned: when the answer is a Cloudflare error page
  type: int
location:
  description: C(Location) header of a redirect.
  returned: when the answer is a redirect
  type: str
content_type:
  description: C(Content-Type) of the answer.
  returned: when an answer came
  type: str
json:
  description: The body parsed as JSON.
  returned: when the body is JSON
  type: raw
body_excerpt:
  description: The first 300 characters of the body.
  returned: when an answer came
  type: str
attempts:
  description: Status, classification and latency of every attempt.
  returned: always
  type: list
  elements: dict
bot_fight_mode:
  description: Whether Bot Fight Mode is on for O(zone), or V(null) when it could not be read.
  returned: when O(zone) is set
  type: bool
"""

import json
import re
import socket
import ssl
import time

from ansible.module_utils.basic import AnsibleModule, env_fallback
from ansible.module_utils.common.text.converters import to_native, to_text
from ansible.module_utils.six.moves.urllib.error import HTTPError, URLError
from ansible.module_utils.six.moves.urllib.parse import urlsplit, urlunsplit
from ansible.module_utils.urls import open_url

try:
    from ansible_collections.homelab.edge.plugins.module_utils.cloudflare_api import (
        CloudflareAPI,
        CloudflareError,
    )
except ImportError:  # pragma: no cover - the collection always ships it
    CloudflareAPI = None
    CloudflareError = Exception

MAX_BODY_BYTES = 65536
EXCERPT_CHARS = 300
CLOUDFLARE_CODE_PATTERNS = (
    re.compile(r'class="cf-error-code">\s*(\d{3,4})\s*<'),
    re.compile(r"\berror code:\s*(\d{3,4})\b", re.IGNORECASE),
    re.compile(r"\bError\s+(\d{3,4})\b"),
)
ACCESS_LOGIN_PATTERN = re.compile(r"^https://[^/]+\.cloudflareaccess\.com/|/cdn-cgi/access/login", re.IGNORECASE)


def cloudflare_error_code(headers, text):
    """Return the error code of a Cloudflare error page, or None for any other answer."""
    if (headers.get("server") or "").lower() != "cloudflare" and "cf-ray" not in headers:
        return None
    for pattern in CLOUDFLARE_CODE_PATTERNS:
        match = pattern.search(text)
        if match:
            return int(match.group(1))
    return None


def classify_answer(status, headers, text, credentials_sent, expected_status, response_format, hostname,
                    bot_fight_mode=None):
    """Return (classification, fix, error_code) for one HTTP answer.

    ``headers`` has lower-case names. ``text`` is the start of the body.
    """
    code = cloudflare_error_code(headers, text) if status >= 400 else None
    if code in (1001, 1016) or (status == 530 and code is None):
        return "dns", fix_dns(hostname), code
    if code == 1033:
        return ("tunnel_down", "The tunnel behind %s has no running connector: start cloudflared on the origin hosts "
                "(role homelab.edge.cloudflared) with this tunnel's token." % hostname, code)
    if status == 429 or code == 1015:
        return ("rate_limited", "A Cloudflare rate limiting rule blocked the request: raise the service's "
                "rate_limit.requests for %s or send fewer requests, and wait for the rule's mitigation timeout."
                % hostname, code)
    if status == 524 or code == 524:
        return ("origin_timeout", "The origin sent no response within Cloudflare's 100-second limit: stream the "
                "response (stream: true for Ollama) or make the request faster.", code)
    if status == 502 or code == 502:
        return ("origin_refused", "cloudflared could not reach the origin service: start it on the origin host and "
                "make the ingress rule's service URL match its listen address (for Ollama http://127.0.0.1:11434, "
                "because localhost may resolve to ::1).", code)
    if headers.get("cf-mitigated") == "challenge":
        return "cloudflare_challenge", fix_bot(bot_fight_mode, challenge=True), code
    if code == 1010:
        return "cloudflare_error_1010", fix_bot(bot_fight_mode, challenge=False), code
    if code == 1020:
        return ("cloudflare_error_1020", "A WAF custom rule blocked the request: allow this method and path in the "
                "service's firewall settings (firewall.methods and firewall.paths) or change the rule.", code)
    if code is not None:
        return ("cloudflare_error_%d" % code, "Cloudflare answered with error %d: look the code up in Cloudflare's "
                "error reference and quote the Ray ID %s to Cloudflare support." % (code, headers.get("cf-ray")), code)

    location = headers.get("location") or ""
    if 300 <= status < 400 and ACCESS_LOGIN_PATTERN.search(location):
        if credentials_sent:
            fix = ("Access sent its login page although a service token was sent: make the Access policy that includes "
                   "the token use decision non_identity (Service Auth), because a token under an allow policy is "
                   "never admitted, and check the token's client id and secret.")
        else:
            fix = ("Access sent its login page to a request without a service token; set service_auth_401_redirect "
                   "on the Access application to get 401 instead.")
        return "access_login_redirect", fix, None
    if status == 401:
        if credentials_sent:
            fix = ("Access rejected the service token: give the token's current client id and secret (rotate the "
                   "token if the secret is lost), and check that it has not expired and that a non_identity policy "
                   "on the application includes it.")
        else:
            fix = "Access rejected a request without a service token, as a service-token-only application should."
        return "access_denied_401", fix, None

    if status in expected_status:
        if response_format == "json" and not is_json(text):
            return ("unexpected_body", "The origin answered %d but the body is not JSON: check that the ingress rule "
                    "for %s points at the intended service." % (status, hostname), None)
        return "ok", None, None
    if status == 403 and not text.strip():
        return ("origin_host_header", "The origin answered 403 with an empty body, as Ollama does for a public Host "
                "header: set originRequest.httpHostHeader to localhost:11434 on the tunnel's ingress rule for %s "
                "(the ollama origin preset does this)." % hostname, None)
    if status in (503, 404) and not text.strip():
        return ("no_ingress_rule", "The request reached the tunnel's catch-all rule: add an ingress rule for %s to "
                "the tunnel's configuration." % hostname, None)
    return ("unexpected_status", "The origin answered HTTP %d instead of %s: check the request's path and method for "
            "the origin service." % (status, " or ".join(str(s) for s in expected_status)), None)


def fix_dns(hostname):
    return ("No proxied DNS record leads %s to Cloudflare: create a CNAME to <tunnel id>.cfargotunnel.com with proxied "
            "set to true, or set proxied on the existing record." % hostname)


def fix_bot(bot_fight_mode, challenge):
    what = "challenged" if challenge else "blocked"
    if bot_fight_mode:
        return ("Bot Fight Mode %s the non-browser client and WAF skip rules cannot exempt it: turn Bot Fight Mode off "
                "in the zone's security settings." % what)
    return ("Cloudflare %s the client's signature (Bot Fight Mode, Browser Integrity Check or a challenge rule): turn "
            "Bot Fight Mode off for the zone, or find the rule in the zone's security events by the Ray ID." % what)


def is_json(text):
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


def classify_error(exc, hostname):
    """Return (classification, fix) for a request that got no HTTP answer."""
    reason = getattr(exc, "reason", exc)
    if isinstance(reason, socket.gaierror):
        return "dns", fix_dns(hostname)
    if isinstance(reason, (socket.timeout, TimeoutError)) or "timed out" in to_native(reason):
        return "timeout", ("No answer came within the timeout: raise timeout, or check the network path to "
                           "Cloudflare.")
    if isinstance(reason, ssl.SSLError) or "CERTIFICATE" in to_native(reason).upper():
        return "tls_error", ("The TLS handshake failed: check the hostname's edge certificate, or set validate_certs "
                             "to false only for a test server.")
    return "unreachable", ("The connection failed (%s): check the network path, and connect_url when it is set."
                           % to_native(reason))


class Probe:
    """One probe of a URL, possibly repeated."""

    def __init__(self, module):
        self.module = module
        params = module.params
        if params["url"]:
            parts = urlsplit(params["url"])
            if parts.scheme not in ("http", "https") or not parts.hostname:
                module.fail_json(msg="Invalid url %r: expected an http or https URL with a hostname, such as "
                                     "https://chat.example.com/api/tags." % params["url"])
            self.hostname = parts.hostname.lower()
            self.url = params["url"]
            request_path = urlunsplit(("", "", parts.path or "/", parts.query, ""))
        else:
            self.hostname = params["hostname"].strip().lower().rstrip(".")
            if not re.match(r"^[a-z0-9.-]+$", self.hostname):
                module.fail_json(msg="Invalid hostname %r: give a bare hostname such as chat.example.com, without "
                                     "scheme, port or path." % params["hostname"])
            request_path = params["path"] if params["path"].startswith("/") else "/" + params["path"]
            self.url = "%s://%s%s" % (params["scheme"], self.hostname, request_path)
        self.target = self.url
        self.headers = dict((str(k), str(v)) for k, v in (params["headers"] or {}).items())
        if params["connect_url"]:
            connect = urlsplit(params["connect_url"])
            if connect.scheme not in ("http", "https") or not connect.netloc:
                module.fail_json(msg="Invalid connect_url %r: expected scheme, address and port, such as "
                                     "http://127.0.0.1:8443." % params["connect_url"])
            self.target = "%s://%s%s" % (connect.scheme, connect.netloc, request_path)
            self.headers["Host"] = self.hostname
        self.credentials_sent = bool(params["client_id"] and params["client_secret"])
        if self.credentials_sent:
            self.headers["CF-Access-Client-Id"] = params["client_id"]
            self.headers["CF-Access-Client-Secret"] = params["client_secret"]
        self.data = None
        body = params["body"]
        if isinstance(body, (dict, list)):
            self.data = json.dumps(body).encode("utf-8")
            self.headers.setdefault("Content-Type", "application/json")
        elif body is not None:
            self.data = to_text(body).encode("utf-8")

    def attempt(self, bot_fight_mode):
        params = self.module.params
        started = time.monotonic()
        result = dict(status=None, cf_ray=None)
        try:
            response = open_url(self.target, data=self.data, headers=self.headers, method=params["method"].upper(),
                                timeout=params["timeout"], validate_certs=params["validate_certs"],
                                follow_redirects="none", http_agent=params["user_agent"], force=True)
        except HTTPError as exc:
            response = exc
        except (URLError, socket.error, ssl.SSLError) as exc:
            elapsed = (time.monotonic() - started) * 1000.0
            classification, fix = classify_error(exc, self.hostname)
            result.update(classification=classification, fix=fix, latency_ms=round(elapsed, 1),
                          total_ms=round(elapsed, 1), error=to_native(getattr(exc, "reason", exc)))
            return result
        latency = (time.monotonic() - started) * 1000.0
        status = getattr(response, "status", None) or response.getcode()
        headers = dict((k.lower(), v) for k, v in response.headers.items()) if response.headers else {}
        try:
            raw = response.read(MAX_BODY_BYTES) or b""
        except (socket.error, ssl.SSLError, ValueError):
            raw = b""
        finally:
            response.close()
        total = (time.monotonic() - started) * 1000.0
        text = raw.decode("utf-8", "replace")
        classification, fix, code = classify_answer(
            status, headers, text, self.credentials_sent, params["expected_status"], params["response_format"],
            self.hostname, bot_fight_mode)
        result.update(status=status, classification=classification, fix=fix, latency_ms=round(latency, 1),
                      total_ms=round(total, 1), cf_ray=headers.get("cf-ray"), content_type=headers.get("content-type"),
                      body_excerpt=text[:EXCERPT_CHARS])
        if code is not None:
            result["error_code"] = code
        if headers.get("location"):
            result["location"] = headers["location"]
        if text and is_json(text):
            result["json"] = json.loads(text)
        return result


def read_bot_fight_mode(module):
    """Return (fight_mode or None, warning or None) for the zone option."""
    params = module.params
    zone = params["zone"]
    if CloudflareAPI is None:
        return None, "Bot Fight Mode of zone %s was not read: the collection's Cloudflare client is missing." % zone
    try:
        api = CloudflareAPI(api_token=params["api_token"], base_url=params["api_base_url"],
                            timeout=min(params["timeout"], 30.0), max_retries=2,
                            validate_certs=params["validate_certs"])
        zone_id = api.zone(zone)["id"]
        settings = api.result("GET", "zones/%s/bot_management" % zone_id,
                              "read the bot management settings of zone %s" % zone) or {}
    except CloudflareError as exc:
        return None, ("Bot Fight Mode of zone %s could not be read, so the probe cannot tell whether it challenges "
                      "server-to-server calls: %s" % (zone, exc))
    fight_mode = bool(settings.get("fight_mode"))
    if fight_mode:
        return True, ("Bot Fight Mode is on for zone %s. It challenges server-to-server clients such as an Azure App "
                      "Service backend, and WAF skip rules cannot exempt them: turn it off in the zone's security "
                      "settings, or use Super Bot Fight Mode (Pro plan and higher), whose rules can be skipped."
                      % zone)
    return False, None


def main():
    module = AnsibleModule(
        argument_spec=dict(
            url=dict(type="str"),
            hostname=dict(type="str"),
            path=dict(type="str", default="/"),
            scheme=dict(type="str", choices=["https", "http"], default="https"),
            method=dict(type="str", default="GET"),
            headers=dict(type="dict", default={}),
            body=dict(type="raw"),
            client_id=dict(type="str", no_log=True),
            client_secret=dict(type="str", no_log=True),
            expected_status=dict(type="list", elements="int", default=[200]),
            response_format=dict(type="str", choices=["any", "json"], default="any"),
            expect=dict(type="list", elements="str", default=["ok"]),
            repeat=dict(type="int", default=1),
            timeout=dict(type="float", default=30.0),
            connect_url=dict(type="str"),
            validate_certs=dict(type="bool", default=True),
            user_agent=dict(type="str", default="homelab.edge-probe/0.1"),
            zone=dict(type="str"),
            api_token=dict(type="str", no_log=True, fallback=(env_fallback, ["CLOUDFLARE_API_TOKEN"])),
            api_base_url=dict(type="str", fallback=(env_fallback, ["CLOUDFLARE_BASE_URL"])),
        ),
        required_one_of=[("url", "hostname")],
        mutually_exclusive=[("url", "hostname")],
        required_together=[("client_id", "client_secret")],
        supports_check_mode=True,
    )
    if module.params["repeat"] < 1:
        module.fail_json(msg="Invalid repeat %d: send the request at least once (repeat: 1)." % module.params["repeat"])

    probe = Probe(module)
    result = dict(changed=False, url=probe.url)
    bot_fight_mode = None
    if module.params["zone"]:
        bot_fight_mode, warning = read_bot_fight_mode(module)
        result["bot_fight_mode"] = bot_fight_mode
        if warning:
            module.warn(warning)

    expect = module.params["expect"]
    attempts = []
    chosen = None
    for attempt_number in range(module.params["repeat"]):
        outcome = probe.attempt(bot_fight_mode)
        attempts.append(dict((key, outcome.get(key)) for key in ("status", "classification", "latency_ms")))
        chosen = outcome
        if outcome["classification"] not in expect:
            break
    result.update(chosen)
    result["attempts"] = attempts
    result["passed"] = chosen["classification"] in expect
    if not result["passed"]:
        number = len(attempts)
        status = "HTTP %s" % chosen["status"] if chosen["status"] is not None else "no answer"
        module.fail_json(
            msg="Probe %s %s%s got %s (%s), expected %s. Fix: %s" % (
                module.params["method"].upper(), probe.url,
                " (attempt %d)" % number if module.params["repeat"] > 1 else "",
                status, chosen["classification"], " or ".join(expect), chosen["fix"] or "none needed"),
            **result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
