# Copyright (c) homelab.edge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Test doubles for the Cloudflare unit tests: a scripted API object and a module runner.

``FakeAPI`` has the methods of ``CloudflareAPI`` that the managers and modules call. It
sends nothing: each call is logged in ``calls``, and the response comes from the routes the
test set up. Tests then check which requests were made, and that none was a write in check
mode.
"""

import copy
import json
import os
import sys
from collections import namedtuple

import pytest

REPO_ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "..", ".."))
if os.path.join(REPO_ROOT, ".collections") not in sys.path:
    sys.path.insert(0, os.path.join(REPO_ROOT, ".collections"))

from ansible.module_utils.testing import patch_module_args  # noqa: E402

from ansible_collections.homelab.edge.plugins.module_utils import cloudflare_api  # noqa: E402
from ansible_collections.homelab.edge.plugins.module_utils.cloudflare_api import CloudflareError  # noqa: E402

ACCOUNT_ID = "5f1c0a9e7b3d4e2a8c6b1d0f9e8a7b6c"
ACCOUNT_NAME = "Homelab"
ZONE_ID = "0d7e4c2b9a8f4e3d8c1b6a5f4e3d2c1b"
ZONE = {"id": ZONE_ID, "name": "example.com", "plan": "free"}
TUNNEL_ID = "0b7a3c1e-1f2d-4c5b-9a8e-6f7d8c9b0a1e"
API_TOKEN = "unit-test-api-token-5d1e"

TUNNELS = "accounts/%s/cfd_tunnel" % ACCOUNT_ID
TOKENS = "accounts/%s/access/service_tokens" % ACCOUNT_ID
POLICIES = "accounts/%s/access/policies" % ACCOUNT_ID
APPS = "accounts/%s/access/apps" % ACCOUNT_ID
RECORDS = "zones/%s/dns_records" % ZONE_ID

Call = namedtuple("Call", "method path params body retry_writes")


class Sequence:
    """Successive responses for one route; the last response repeats once the others are used."""

    def __init__(self, *responses):
        self.responses = list(responses)

    def next(self):
        if len(self.responses) > 1:
            return self.responses.pop(0)
        return self.responses[0]


def http_error(status, code=None, message="error"):
    """Return the CloudflareError that CloudflareAPI raises for an HTTP error response."""
    errors = [{"code": code, "message": message}] if code is not None else []
    return CloudflareError(message, action="test request", status=status, errors=errors)


class FakeAPI:
    """Stand-in for CloudflareAPI with scripted responses and a log of every call.

    ``lists`` maps a path to the items that ``list_all`` returns. ``routes`` maps
    ``(method, path)`` to the result of ``request``/``result``. A response may be a value, an
    exception to raise, a callable that gets the request body, or a Sequence of those.
    A route that is not set returns None, as an empty ``result`` does.
    """

    def __init__(self, lists=None, routes=None, zones=None):
        self.lists = dict(lists or {})
        self.routes = dict(routes or {})
        self.zones = dict(zones or {"example.com": ZONE})
        self.calls = []
        self.retries = 0
        self.retried = {}

    def _respond(self, response, body):
        if isinstance(response, Sequence):
            response = response.next()
        if isinstance(response, BaseException):
            raise response
        if callable(response):
            response = response(body)
        return copy.deepcopy(response)

    def list_all(self, path, action, params=None, per_page=50):
        self.calls.append(Call("GET", path, dict(params or {}), None, True))
        return self._respond(self.lists.get(path, []), None) or []

    def request(self, method, path, action, params=None, body=None, retry_writes=True):
        self.calls.append(Call(method, path, dict(params or {}), copy.deepcopy(body), retry_writes))
        return {"success": True, "errors": [], "result": self._respond(self.routes.get((method, path)), body)}

    def result(self, method, path, action, params=None, body=None, retry_writes=True):
        return self.request(method, path, action, params=params, body=body, retry_writes=retry_writes)["result"]

    def get_or_none(self, path, action, params=None):
        try:
            return self.result("GET", path, action, params=params)
        except CloudflareError as exc:
            if exc.status == 404:
                return None
            raise

    def account_id(self, account):
        return ACCOUNT_ID

    def zone(self, zone, account_id=None):
        return dict(self.zones[zone.rstrip(".").lower()])

    def summary(self):
        requests = {}
        for call in self.calls:
            requests[call.method] = requests.get(call.method, 0) + 1
        return {"requests": requests, "retries": self.retries, "retried": dict(self.retried)}

    # -- helpers for assertions -------------------------------------------------------------

    def writes(self):
        return [call for call in self.calls if call.method != "GET"]

    def methods(self):
        return [(call.method, call.path) for call in self.calls]


def run_module(module, args, monkeypatch, capsys, api=None, check_mode=False, diff=True, no_log=False):
    """Run ``module.main()`` with ``args`` and return its JSON result.

    CloudflareAPI is replaced by ``api`` (a FakeAPI), so the module sends nothing. The
    keyword arguments the module passed to CloudflareAPI are stored in ``api.init_args``.
    tests/unit/conftest.py empties the module warning list before each test.
    """
    api = api if api is not None else FakeAPI()

    def build_api(**kwargs):
        api.init_args = kwargs
        return api

    monkeypatch.setattr(cloudflare_api, "CloudflareAPI", build_api)
    module_args = dict(api_token=API_TOKEN, _ansible_check_mode=check_mode, _ansible_diff=diff,
                       _ansible_no_log=no_log)
    module_args.update(args)
    with patch_module_args(module_args):
        with pytest.raises(SystemExit):
            module.main()
    return json.loads(capsys.readouterr().out)


def warning_texts(result):
    """Return the warning messages of a module result; ansible-core 2.19 wraps each in an event object."""
    texts = []
    for warning in result.get("warnings", []):
        texts.append(warning if isinstance(warning, str) else warning["event"]["msg"])
    return texts
