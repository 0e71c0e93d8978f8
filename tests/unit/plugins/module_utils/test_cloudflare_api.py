# Copyright (c) homelab.edge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests of the Cloudflare API client: retries, pagination, lookups, errors and the module base class.

Requests go through the real SDK into an ``httpx.MockTransport``, so the headers and query
strings checked here are the ones that would be sent. No socket is opened and nothing sleeps:
the client gets a ``sleep`` that records the delays.
"""

import email.utils
import json
from types import SimpleNamespace

import cloudflare
import httpx
import pytest

from tests.unit.plugins.modules.utils import (
    ACCOUNT_ID,
    ZONE_ID,
    FakeAPI,
    patch_module_args,
    warning_texts,
)

from ansible_collections.homelab.edge.plugins.module_utils import cloudflare_api
from ansible_collections.homelab.edge.plugins.module_utils.cloudflare_api import (
    CloudflareAPI,
    CloudflareError,
    CloudflareModule,
    is_cloudflare_id,
)

BASE_URL = "https://api.cloudflare.test/client/v4"
TOKEN = "unit-test-bearer-token-9c2f"
FIXED_NOW = 1_800_000_000.0


def envelope(result, result_info=None):
    body = {"success": True, "errors": [], "messages": [], "result": result}
    if result_info is not None:
        body["result_info"] = result_info
    return body


def error_body(code, message):
    return {"success": False, "errors": [{"code": code, "message": message}], "messages": [], "result": None}


class Transport:
    """Scripted HTTP responses for an httpx.MockTransport, with a log of the requests received.

    Each response is an ``httpx.Response``, an exception to raise (``httpx.ConnectError``,
    ``httpx.ReadTimeout``), or a callable that gets the request. The last response repeats.
    """

    def __init__(self, *responses):
        self.responses = list(responses)
        self.requests = []

    def __call__(self, request):
        self.requests.append(request)
        response = self.responses.pop(0) if len(self.responses) > 1 else self.responses[0]
        if callable(response) and not isinstance(response, httpx.Response):
            response = response(request)
        if isinstance(response, BaseException):
            raise response
        return response

    def methods(self):
        return [request.method for request in self.requests]


def ok(result=None, result_info=None):
    return httpx.Response(200, json=envelope(result if result is not None else {}, result_info))


def failure(status, code=None, message="error", headers=None):
    body = error_body(code, message) if code is not None else {"success": False, "errors": [], "result": None}
    return httpx.Response(status, json=body, headers=headers or {})


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    for name in ("CLOUDFLARE_EMAIL", "CLOUDFLARE_API_KEY", "CLOUDFLARE_API_USER_SERVICE_KEY",
                 "CLOUDFLARE_API_TOKEN", "CLOUDFLARE_BASE_URL", "CLOUDFLARE_CUSTOM_HEADERS"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def make_api(monkeypatch):
    """Return a factory of CloudflareAPI clients whose requests go to a Transport.

    The client's ``sleeps`` attribute lists the delays it asked for, and ``http_options``
    the keyword arguments it passed to the SDK's HTTP client.
    """
    original_client = cloudflare.DefaultHttpxClient

    def factory(transport, **kwargs):
        http_options = {}

        def build_http_client(**options):
            http_options.update(options)
            return original_client(transport=httpx.MockTransport(transport), **options)

        monkeypatch.setattr(cloudflare, "DefaultHttpxClient", build_http_client)
        sleeps = []
        kwargs.setdefault("base_url", BASE_URL)
        api = CloudflareAPI(TOKEN, sleep=sleeps.append, **kwargs)
        api.sleeps = sleeps
        api.http_options = http_options
        return api

    return factory


# Retries


def test_retry_429_honours_retry_after_seconds(make_api):
    transport = Transport(failure(429, 10429, "Rate limited", {"Retry-After": "7"}), ok({"id": "a"}))
    messages = []
    api = make_api(transport, on_retry=messages.append)
    assert api.result("GET", "accounts/%s" % ACCOUNT_ID, "read account") == {"id": "a"}
    assert transport.methods() == ["GET", "GET"]
    assert api.sleeps == [7.0]
    assert api.summary() == {"requests": {"GET": 2}, "retries": 1, "retried": {"HTTP 429": 1}}
    assert len(messages) == 1
    assert "after HTTP 429 (attempt 1 of 5, waiting 7.0s)" in messages[0]


def test_retry_429_honours_retry_after_http_date(make_api, monkeypatch):
    monkeypatch.setattr(cloudflare_api, "time", SimpleNamespace(time=lambda: FIXED_NOW))
    date = email.utils.formatdate(FIXED_NOW + 30, usegmt=True)
    transport = Transport(failure(429, headers={"Retry-After": date}), ok())
    api = make_api(transport)
    api.request("GET", "zones", "list zones")
    assert api.sleeps == [30.0]


def test_retry_after_capped_at_sixty_seconds(make_api):
    transport = Transport(failure(429, headers={"Retry-After": "3600"}), ok())
    api = make_api(transport)
    api.request("GET", "zones", "list zones")
    assert api.sleeps == [60.0]


@pytest.mark.parametrize("retry_after", ["0", "Thu, 01 Jan 1970 00:00:00 GMT"])
def test_retry_after_zero_or_past_uses_backoff(make_api, monkeypatch, retry_after):
    monkeypatch.setattr(cloudflare_api.random, "uniform", lambda low, high: high)
    transport = Transport(failure(503, headers={"Retry-After": retry_after}), failure(503), ok())
    api = make_api(transport)
    api.request("GET", "zones", "list zones")
    assert api.sleeps == [0.5, 1.0]


def test_unparsable_retry_after_uses_backoff(make_api):
    transport = Transport(failure(429, headers={"Retry-After": "soon"}), ok())
    api = make_api(transport)
    api.request("GET", "zones", "list zones")
    assert len(api.sleeps) == 1


def test_backoff_grows_and_is_capped(monkeypatch):
    monkeypatch.setattr(cloudflare_api.random, "uniform", lambda low, high: high)
    assert [cloudflare_api._backoff(attempt) for attempt in range(8)] == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0]


@pytest.mark.parametrize("status", [500, 502, 503, 504, 520, 524])
def test_server_error_on_get_retried(make_api, status):
    transport = Transport(failure(status), ok({"id": "z"}))
    api = make_api(transport)
    assert api.result("GET", "zones/%s" % ZONE_ID, "read zone") == {"id": "z"}
    assert transport.methods() == ["GET", "GET"]
    assert api.summary()["retried"] == {"HTTP %d" % status: 1}


@pytest.mark.parametrize("error, reason", [
    (httpx.ConnectError("connection refused"), "connection error"),
    (httpx.ReadTimeout("read timed out"), "timeout"),
])
def test_network_error_on_get_retried(make_api, error, reason):
    transport = Transport(error, ok({"id": "z"}))
    api = make_api(transport)
    assert api.result("GET", "zones/%s" % ZONE_ID, "read zone") == {"id": "z"}
    assert len(transport.requests) == 2
    assert api.summary()["retried"] == {reason: 1}


@pytest.mark.parametrize("method", ["GET", "POST", "PUT", "DELETE"])
def test_conflict_409_never_retried(make_api, method):
    transport = Transport(failure(409, 1013, "Tunnel with name already exists"), ok())
    api = make_api(transport)
    with pytest.raises(CloudflareError) as error:
        api.request(method, "accounts/%s/cfd_tunnel" % ACCOUNT_ID, "create tunnel 'home'", body={"name": "home"})
    assert len(transport.requests) == 1
    assert api.sleeps == []
    assert error.value.status == 409
    assert error.value.has_code(1013)
    assert "A live tunnel with this name already exists" in str(error.value)


@pytest.mark.parametrize("status", [400, 401, 403, 404, 405, 422])
def test_client_error_not_retried(make_api, status):
    transport = Transport(failure(status, 1000 + status, "rejected"), ok())
    api = make_api(transport)
    with pytest.raises(CloudflareError) as error:
        api.request("GET", "zones", "list zones")
    assert len(transport.requests) == 1
    assert error.value.status == status
    assert api.summary()["retries"] == 0


@pytest.mark.parametrize(
    "response", [failure(502), failure(500), httpx.ConnectError("reset"), httpx.ReadTimeout("timed out")]
)
def test_create_without_retry_writes_sent_once(make_api, response):
    transport = Transport(response, ok({"id": "new"}))
    api = make_api(transport)
    with pytest.raises(CloudflareError):
        api.request("POST", "accounts/%s/cfd_tunnel" % ACCOUNT_ID, "create tunnel 'home'",
                    body={"name": "home"}, retry_writes=False)
    assert transport.methods() == ["POST"]
    assert api.sleeps == []


def test_create_without_retry_writes_resent_after_429(make_api):
    # 429 means the request was not processed, so sending it again cannot create a duplicate.
    transport = Transport(failure(429, headers={"Retry-After": "1"}), ok({"id": "new"}))
    api = make_api(transport)
    result = api.result("POST", "accounts/%s/cfd_tunnel" % ACCOUNT_ID, "create tunnel 'home'",
                        body={"name": "home"}, retry_writes=False)
    assert result == {"id": "new"}
    assert transport.methods() == ["POST", "POST"]


def test_update_retried_after_server_error(make_api):
    transport = Transport(failure(503), ok({"id": "r"}))
    api = make_api(transport)
    api.request("PUT", "zones/%s/dns_records/r" % ZONE_ID, "update record", body={"content": "x"})
    assert transport.methods() == ["PUT", "PUT"]
    assert json.loads(transport.requests[1].content) == {"content": "x"}


def test_retry_budget_exhausted_reports_retries(make_api):
    transport = Transport(failure(503, 10001, "Service unavailable"))
    api = make_api(transport, max_retries=2)
    with pytest.raises(CloudflareError) as error:
        api.request("GET", "zones", "list zones")
    assert len(transport.requests) == 3
    assert len(api.sleeps) == 2
    assert error.value.status == 503
    assert "Gave up after 2 retries" in str(error.value)
    assert api.summary() == {"requests": {"GET": 3}, "retries": 2, "retried": {"HTTP 503": 2}}


def test_network_budget_exhausted_names_base_url(make_api):
    transport = Transport(httpx.ConnectError("connection refused"))
    api = make_api(transport, max_retries=1)
    with pytest.raises(CloudflareError) as error:
        api.request("GET", "zones", "list zones")
    assert len(transport.requests) == 2
    message = str(error.value)
    assert message.startswith("Failed to list zones: APIConnectionError")
    assert "connection refused" in message
    assert "Check base_url (%s)" % BASE_URL in message


def test_zero_max_retries_sends_once(make_api):
    transport = Transport(failure(429, headers={"Retry-After": "1"}))
    api = make_api(transport, max_retries=0)
    with pytest.raises(CloudflareError) as error:
        api.request("GET", "zones", "list zones")
    assert len(transport.requests) == 1
    assert "Gave up" not in str(error.value)


def test_requests_counted_by_method(make_api):
    transport = Transport(ok())
    api = make_api(transport)
    api.request("GET", "zones", "a")
    api.request("POST", "zones", "b", body={})
    api.request("GET", "zones", "c")
    assert api.summary() == {"requests": {"GET": 2, "POST": 1}, "retries": 0, "retried": {}}


# Pagination


def page_of(count, start=0):
    return [{"id": "item-%d" % number, "name": "n%d" % number} for number in range(start, start + count)]


def test_pagination_stops_on_short_page(make_api):
    transport = Transport(ok(page_of(2)), ok(page_of(1, 2)), ok(page_of(2, 3)))
    api = make_api(transport)
    items = api.list_all("accounts/%s/cfd_tunnel" % ACCOUNT_ID, "list tunnels", {"name": "home"}, per_page=2)
    assert [item["id"] for item in items] == ["item-0", "item-1", "item-2"]
    assert [dict(request.url.params) for request in transport.requests] == [
        {"name": "home", "page": "1", "per_page": "2"},
        {"name": "home", "page": "2", "per_page": "2"},
    ]


def test_pagination_stops_at_total_pages(make_api):
    info = {"total_pages": 2}
    transport = Transport(ok(page_of(2), info), ok(page_of(2, 2), info), ok(page_of(2, 4), info))
    api = make_api(transport)
    assert len(api.list_all("zones", "list zones", per_page=2)) == 4
    assert len(transport.requests) == 2


def test_pagination_stops_at_total_count(make_api):
    info = {"total_count": 4}
    transport = Transport(ok(page_of(2), info), ok(page_of(2, 2), info), ok(page_of(2, 4), info))
    api = make_api(transport)
    assert len(api.list_all("zones", "list zones", per_page=2)) == 4
    assert len(transport.requests) == 2


def test_pagination_ignored_page_with_info_stops(make_api):
    # A server that ignores ``page`` but reports one page in result_info ends the loop.
    transport = Transport(ok(page_of(2), {"page": 1, "total_pages": 1, "total_count": 2}))
    api = make_api(transport)
    assert len(api.list_all("zones", "list zones", per_page=2)) == 2
    assert len(transport.requests) == 1


def test_pagination_ignored_page_without_info_ends(make_api):
    guard = 25

    def same_page(request):
        if len(transport.requests) > guard:
            return failure(400, 9999, "unit test guard: list_all kept paginating")
        return ok(page_of(2))

    transport = Transport(same_page)
    api = make_api(transport)
    api.list_all("zones", "list zones", per_page=2)
    assert len(transport.requests) <= 3


def test_pagination_keeps_none_params_out(make_api):
    transport = Transport(ok([]))
    api = make_api(transport)
    assert api.list_all("zones", "list zones", {"name": "example.com", "account.id": None}) == []
    assert dict(transport.requests[0].url.params) == {"name": "example.com", "page": "1", "per_page": "50"}


# Authentication and client options


def test_bearer_token_wins_over_environment_key(make_api, monkeypatch):
    monkeypatch.setenv("CLOUDFLARE_EMAIL", "someone@example.com")
    monkeypatch.setenv("CLOUDFLARE_API_KEY", "global-api-key-from-env")
    monkeypatch.setenv("CLOUDFLARE_API_USER_SERVICE_KEY", "service-key-from-env")
    transport = Transport(ok())
    api = make_api(transport)
    api.request("GET", "zones", "list zones")
    headers = transport.requests[0].headers
    assert headers["authorization"] == "Bearer %s" % TOKEN
    assert "x-auth-email" not in headers
    assert "x-auth-key" not in headers
    assert "x-auth-user-service-key" not in headers


def test_base_url_and_tls_options_used(make_api):
    transport = Transport(ok())
    api = make_api(transport, base_url=BASE_URL + "/", validate_certs=False, timeout=45.0)
    api.request("GET", "zones", "list zones")
    assert str(transport.requests[0].url) == BASE_URL + "/zones"
    assert api.http_options == {"verify": False}
    assert api._client.timeout.read == 45.0
    assert api._client.timeout.connect == 10.0


def test_missing_token_rejected():
    with pytest.raises(CloudflareError) as error:
        CloudflareAPI(None)
    assert "CLOUDFLARE_API_TOKEN" in str(error.value)
    assert "api_token" in str(error.value)


# Account and zone lookups


def test_account_by_id_sends_no_request(make_api):
    transport = Transport(ok())
    api = make_api(transport)
    assert api.account_id(ACCOUNT_ID) == ACCOUNT_ID
    assert transport.requests == []


def test_account_by_name_looked_up_once(make_api):
    transport = Transport(ok([{"id": ACCOUNT_ID, "name": "Homelab"}, {"id": "other", "name": "Homelab 2"}]))
    api = make_api(transport)
    assert api.account_id("Homelab") == ACCOUNT_ID
    assert api.account_id("Homelab") == ACCOUNT_ID
    assert len(transport.requests) == 1
    assert transport.requests[0].url.path.endswith("/accounts")
    assert transport.requests[0].url.params["name"] == "Homelab"


def test_account_not_found_message(make_api):
    api = make_api(Transport(ok([])))
    with pytest.raises(CloudflareError) as error:
        api.account_id("Missing")
    assert "Account 'Missing' was not found" in str(error.value)
    assert "32-character account id" in str(error.value)


def test_account_name_twice_rejected(make_api):
    api = make_api(Transport(ok([{"id": "a" * 32, "name": "Homelab"}, {"id": "b" * 32, "name": "Homelab"}])))
    with pytest.raises(CloudflareError) as error:
        api.account_id("Homelab")
    assert "More than one account is named 'Homelab'" in str(error.value)


def test_missing_account_rejected_without_request(make_api):
    transport = Transport(ok())
    api = make_api(transport)
    with pytest.raises(CloudflareError) as error:
        api.account_id("")
    assert "No Cloudflare account given" in str(error.value)
    assert transport.requests == []


def test_zone_by_name_filters_account_and_case(make_api):
    zones = [{"id": ZONE_ID, "name": "example.com", "plan": {"legacy_id": "free", "name": "Free Website"}}]
    transport = Transport(ok(zones))
    api = make_api(transport)
    assert api.zone("Example.COM.", ACCOUNT_ID) == {"id": ZONE_ID, "name": "example.com", "plan": "free"}
    assert api.zone("Example.COM.", ACCOUNT_ID)["id"] == ZONE_ID
    assert len(transport.requests) == 1
    params = dict(transport.requests[0].url.params)
    assert params["name"] == "example.com"
    assert params["account.id"] == ACCOUNT_ID


def test_zone_by_id_reads_zone(make_api):
    transport = Transport(ok({"id": ZONE_ID, "name": "example.com", "plan": {"name": "Pro Website"}}))
    api = make_api(transport)
    assert api.zone(ZONE_ID) == {"id": ZONE_ID, "name": "example.com", "plan": "Pro Website"}
    assert transport.requests[0].url.path.endswith("/zones/%s" % ZONE_ID)


def test_zone_id_not_found_message(make_api):
    api = make_api(Transport(failure(404, 1001, "Invalid zone identifier")))
    with pytest.raises(CloudflareError) as error:
        api.zone(ZONE_ID)
    assert "Zone id '%s' was not found" % ZONE_ID in str(error.value)


def test_zone_name_not_found_message(make_api):
    api = make_api(Transport(ok([{"id": ZONE_ID, "name": "example.com.au"}])))
    with pytest.raises(CloudflareError) as error:
        api.zone("example.com", ACCOUNT_ID)
    assert "Zone 'example.com' was not found in the account" in str(error.value)


def test_get_or_none_returns_none_on_404(make_api):
    api = make_api(Transport(failure(404, 1003, "Not found")))
    assert api.get_or_none("zones/%s" % ZONE_ID, "read zone") is None


def test_get_or_none_raises_other_errors(make_api):
    api = make_api(Transport(failure(403, 10000, "Authentication error")))
    with pytest.raises(CloudflareError) as error:
        api.get_or_none("zones/%s" % ZONE_ID, "read zone")
    assert error.value.status == 403


def test_is_cloudflare_id():
    assert is_cloudflare_id(ACCOUNT_ID)
    assert not is_cloudflare_id(ACCOUNT_ID.upper())
    assert not is_cloudflare_id("Homelab")
    assert not is_cloudflare_id(None)


# Error messages


def test_error_message_has_status_code_and_hint(make_api):
    api = make_api(Transport(failure(403, 10000, "Authentication error")))
    with pytest.raises(CloudflareError) as error:
        api.request("GET", "accounts/%s/cfd_tunnel" % ACCOUNT_ID, "look up tunnel 'home'")
    message = str(error.value)
    assert message.startswith("Failed to look up tunnel 'home': HTTP 403: Cloudflare error 10000: Authentication error")
    assert "Check that the API token is valid and carries the permission" in message
    assert error.value.errors == [{"code": 10000, "message": "Authentication error"}]


def test_error_message_lists_every_code():
    error = CloudflareError("first", action="create DNS record", status=400,
                            errors=[{"code": 81053, "message": "conflict"}, {"code": 9999, "message": "other"}])
    message = str(error)
    assert "Cloudflare error 81053: conflict; Cloudflare error 9999: other" in message
    assert "set overwrite to take it over" in message


def test_error_message_without_status():
    assert str(CloudflareError("Zone 'x' was not found.")) == "Zone 'x' was not found."


def test_error_message_hint_not_repeated():
    error = CloudflareError("x", status=403, errors=[{"code": 10000, "message": "a"}, {"code": 10000, "message": "b"}])
    assert str(error).count("Check that the API token is valid") == 1


# CloudflareModule


def run_in_module(capsys, args, action, api=None):
    """Build a CloudflareModule from ``args``, call ``action(module)`` and return the JSON it exits with.

    Returns None when ``action`` returns without exiting the module.
    """
    with patch_module_args(dict({"api_token": TOKEN}, **args)):
        module = CloudflareModule(argument_spec=dict(name=dict(type="str")), supports_check_mode=True)
        module._api = api
        try:
            action(module)
        except SystemExit:
            return json.loads(capsys.readouterr().out)
    return None


def test_require_no_log_fails_without_no_log(capsys):
    result = run_in_module(capsys, {}, lambda module: module.require_no_log("return_token=true"))
    assert result["failed"] is True
    assert "return_token=true returns a secret, so the task must set 'no_log: true'" in result["msg"]


def test_require_no_log_passes_with_no_log(capsys):
    result = run_in_module(capsys, {"_ansible_no_log": True}, lambda module: module.require_no_log("return_token=true"))
    assert result is None


def test_exit_with_adds_request_counts(capsys):
    api = FakeAPI()
    api.request("GET", "zones", "list zones")
    result = run_in_module(capsys, {}, lambda module: module.exit_with(changed=False), api=api)
    assert result["api_requests"] == {"GET": 1}
    assert result["api_retries"] == 0
    assert warning_texts(result) == []


def test_exit_with_warns_about_retries(capsys):
    api = FakeAPI()
    api.retries = 3
    api.retried = {"HTTP 429": 2, "timeout": 1}
    result = run_in_module(capsys, {}, lambda module: module.exit_with(changed=True), api=api)
    assert result["api_retries"] == 3
    assert warning_texts(result) == ["3 Cloudflare API request(s) were retried (HTTP 429: 2, timeout: 1)."]


def test_exit_with_before_any_request(capsys):
    result = run_in_module(capsys, {}, lambda module: module.exit_with(changed=False))
    assert result["api_requests"] == {}
    assert result["api_retries"] == 0


def test_fail_with_carries_status_and_errors(capsys):
    error = CloudflareError("denied", action="read zone", status=403, errors=[{"code": 10000, "message": "denied"}])
    result = run_in_module(capsys, {}, lambda module: module.fail_with(error), api=FakeAPI())
    assert result["failed"] is True
    assert result["status"] == 403
    assert result["errors"] == [{"code": 10000, "message": "denied"}]
    assert result["msg"].startswith("Failed to read zone: HTTP 403")


def test_module_without_token_fails_cleanly(capsys):
    result = run_in_module(capsys, {"api_token": None}, lambda module: module.api)
    assert result["failed"] is True
    assert "No Cloudflare API token given" in result["msg"]


def test_module_token_from_environment(monkeypatch, capsys):
    monkeypatch.setenv("CLOUDFLARE_API_TOKEN", "token-from-env")
    with patch_module_args({}):
        module = CloudflareModule(argument_spec={})
    assert module.params["api_token"] == "token-from-env"
    assert "token-from-env" in module.no_log_values
