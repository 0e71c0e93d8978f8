# -*- coding: utf-8 -*-
# Copyright (c) homelab.edge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Cloudflare API access shared by every Cloudflare module of homelab.edge.

The official ``cloudflare`` SDK sends the requests, through its raw request methods
(``client.get(path, cast_to=object)`` and friends). Its resource namespaces are not used:
touching ``client.zero_trust`` alone imports about a thousand modules, which costs about a
second in every module invocation. Retries are done here rather than by the SDK, because
the SDK also retries 409 (Cloudflare's status for a duplicate name) and does not report
how many retries it made.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import email.utils
import random
import re
import time
import traceback

from ansible.module_utils.basic import AnsibleModule, env_fallback, missing_required_lib

try:
    import cloudflare
except ImportError:
    HAS_CLOUDFLARE = False
    CLOUDFLARE_IMPORT_ERROR = traceback.format_exc()
else:
    HAS_CLOUDFLARE = True
    CLOUDFLARE_IMPORT_ERROR = None


DEFAULT_BASE_URL = "https://api.cloudflare.com/client/v4"
RETRY_STATUSES = frozenset([429, 500, 502, 503, 504, 520, 521, 522, 523, 524])
MAX_RETRY_AFTER = 60.0
MAX_BACKOFF = 30.0
ID_PATTERN = re.compile(r"^[0-9a-f]{32}$")

CLOUDFLARE_ARGUMENT_SPEC = dict(
    api_token=dict(type="str", no_log=True, fallback=(env_fallback, ["CLOUDFLARE_API_TOKEN"])),
    base_url=dict(type="str", fallback=(env_fallback, ["CLOUDFLARE_BASE_URL"])),
    timeout=dict(type="float", default=30.0),
    max_retries=dict(type="int", default=5),
    validate_certs=dict(type="bool", default=True),
)

# Hints appended to an error message, keyed by Cloudflare error code.
ERROR_HINTS = {
    10000: "Check that the API token is valid and carries the permission this operation needs "
           "(the README lists the permissions per module).",
    1013: "A live tunnel with this name already exists; give another name or adopt the existing tunnel.",
    1022: "The tunnel still has active connections; stop its connectors or clean up its connections first.",
    81053: "Another A, AAAA or CNAME record has this name; remove it or set overwrite to take it over.",
    81054: "A CNAME record with this name already exists; set overwrite to take it over.",
    81057: "The record already exists.",
    81058: "An identical record already exists.",
}


class CloudflareError(Exception):
    """A failed Cloudflare API call, or input that cannot be sent to the API.

    ``str()`` gives one message with what was being done, the HTTP status, and
    Cloudflare's own error codes and messages.
    """

    def __init__(self, message, action=None, status=None, errors=None, hint=None):
        super(CloudflareError, self).__init__(message)
        self.message = message
        self.action = action
        self.status = status
        self.errors = errors or []
        self.hint = hint

    def __str__(self):
        parts = []
        if self.action:
            parts.append("Failed to %s" % self.action)
        if self.status is not None:
            parts.append("HTTP %s" % self.status)
        details = "; ".join(
            "Cloudflare error %s: %s" % (error.get("code"), error.get("message")) for error in self.errors
        )
        if details:
            parts.append(details)
        elif self.message:
            parts.append(self.message)
        text = ": ".join(parts) if parts else self.message
        hints = [self.hint] if self.hint else []
        for error in self.errors:
            hint = ERROR_HINTS.get(error.get("code"))
            if hint and hint not in hints:
                hints.append(hint)
        if hints:
            text += ". " + " ".join(hints)
        return text

    def has_code(self, code):
        return any(error.get("code") == code for error in self.errors)


def is_cloudflare_id(value):
    """Tell whether ``value`` looks like a 32-hex Cloudflare account or zone id."""
    return bool(value) and bool(ID_PATTERN.match(str(value)))


class CloudflareAPI:
    """Cloudflare v4 API client with retries, pagination and account/zone lookups.

    ``on_retry`` is called with a short description each time a request is retried.
    ``requests`` counts the requests sent, by HTTP method.
    """

    def __init__(self, api_token, base_url=None, timeout=30.0, max_retries=5, validate_certs=True,
                 on_retry=None, sleep=time.sleep):
        if not HAS_CLOUDFLARE:
            raise CloudflareError(missing_required_lib("cloudflare"))
        if not api_token:
            raise CloudflareError(
                "No Cloudflare API token given: set the api_token option or the CLOUDFLARE_API_TOKEN "
                "environment variable."
            )
        self.base_url = (base_url or DEFAULT_BASE_URL).rstrip("/")
        self.max_retries = max(0, int(max_retries))
        self.retries = 0
        self.retried = {}
        self.requests = {}
        self._on_retry = on_retry
        self._sleep = sleep
        self._account_cache = {}
        self._zone_cache = {}
        # The SDK prefers CLOUDFLARE_EMAIL and CLOUDFLARE_API_KEY from the environment over an
        # explicit api_token, so those headers are omitted and the bearer header is set here.
        headers = {
            "X-Auth-Email": cloudflare.Omit(),
            "X-Auth-Key": cloudflare.Omit(),
            "X-Auth-User-Service-Key": cloudflare.Omit(),
            "Authorization": "Bearer %s" % api_token,
        }
        self._client = cloudflare.Cloudflare(
            api_token=api_token,
            base_url=self.base_url,
            timeout=cloudflare.Timeout(timeout, connect=min(timeout, 10.0)),
            max_retries=0,
            default_headers=headers,
            http_client=cloudflare.DefaultHttpxClient(verify=validate_certs),
        )

    # -- transport ---------------------------------------------------------------------------

    def request(self, method, path, action, params=None, body=None, retry_writes=True):
        """Send one request and return the decoded response envelope.

        Requests that get a 429 or 5xx response, and requests that failed on the network, are
        retried up to ``max_retries`` times with backoff that honours Retry-After. A write whose
        outcome is unknown (network error or 5xx) is retried only when ``retry_writes`` is true;
        creates pass false and look the object up again instead. 409 is never retried.
        """
        options = {}
        if params:
            options["params"] = dict((key, value) for key, value in params.items() if value is not None)
        attempt = 0
        while True:
            self.requests[method] = self.requests.get(method, 0) + 1
            try:
                return self._send(method, path, body, options)
            except cloudflare.APIStatusError as exc:
                status = exc.status_code
                errors = _error_list(exc.body)
                retryable = status in RETRY_STATUSES and (status == 429 or method == "GET" or retry_writes)
                if not retryable or attempt >= self.max_retries:
                    raise CloudflareError(
                        _first_message(errors) or str(exc), action=action, status=status, errors=errors,
                        hint=_retry_hint(attempt, status),
                    )
                delay = _retry_after(exc.response.headers) or _backoff(attempt)
                reason = "HTTP %s" % status
            except (cloudflare.APITimeoutError, cloudflare.APIConnectionError) as exc:
                if attempt >= self.max_retries or (method != "GET" and not retry_writes):
                    raise CloudflareError(
                        "%s (%s)" % (type(exc).__name__, exc.__cause__ or exc), action=action,
                        hint="Check base_url (%s) and the network path to it." % self.base_url,
                    )
                delay = _backoff(attempt)
                reason = "timeout" if isinstance(exc, cloudflare.APITimeoutError) else "connection error"
            attempt += 1
            self.retries += 1
            self.retried[reason] = self.retried.get(reason, 0) + 1
            if self._on_retry:
                self._on_retry("Retrying %s %s after %s (attempt %d of %d, waiting %.1fs)"
                               % (method, path, reason, attempt, self.max_retries, delay))
            self._sleep(delay)

    def _send(self, method, path, body, options):
        client = self._client
        if method == "GET":
            return client.get(path, cast_to=object, options=options)
        if method == "POST":
            return client.post(path, cast_to=object, body=body, options=options)
        if method == "PUT":
            return client.put(path, cast_to=object, body=body, options=options)
        if method == "PATCH":
            return client.patch(path, cast_to=object, body=body, options=options)
        if method == "DELETE":
            return client.delete(path, cast_to=object, body=body, options=options)
        raise ValueError("unsupported HTTP method %s" % method)

    def result(self, method, path, action, params=None, body=None, retry_writes=True):
        """Send a request and return the ``result`` member of its envelope."""
        envelope = self.request(method, path, action, params=params, body=body, retry_writes=retry_writes)
        if isinstance(envelope, dict):
            return envelope.get("result")
        return envelope

    def get_or_none(self, path, action, params=None):
        """Send a GET to ``path`` and return its result, or None when the response is 404."""
        try:
            return self.result("GET", path, action, params=params)
        except CloudflareError as exc:
            if exc.status == 404:
                return None
            raise

    def list_all(self, path, action, params=None, per_page=50):
        """Return every item of a page-paginated list.

        Stops on a short page or once ``result_info`` shows that the last page was read, which saves the
        extra empty-page request the SDK's own iterator sends.
        """
        items = []
        page = 1
        previous = None
        query = dict(params or {})
        while True:
            query.update(page=page, per_page=per_page)
            envelope = self.request("GET", path, action, params=query)
            batch = envelope.get("result") or []
            if batch and batch == previous:
                # A server that ignores ``page`` repeats the first page; stop instead of looping.
                break
            previous = batch
            items.extend(batch)
            info = envelope.get("result_info") or {}
            total_pages = info.get("total_pages")
            total_count = info.get("total_count")
            if len(batch) < per_page:
                break
            if total_pages is not None and page >= total_pages:
                break
            if total_count is not None and len(items) >= total_count:
                break
            page += 1
        return items

    # -- account and zone lookups ----------------------------------------------------------------

    def account_id(self, account):
        """Return the id of an account given by id or by name."""
        if not account:
            raise CloudflareError("No Cloudflare account given: set the account option to its name or id.")
        if is_cloudflare_id(account):
            return account
        if account not in self._account_cache:
            found = [item for item in self.list_all("accounts", "look up account '%s'" % account, {"name": account})
                     if item.get("name") == account]
            if not found:
                raise CloudflareError(
                    "Account '%s' was not found. Check the name, or give the 32-character account id; the "
                    "API token must also be allowed to read the account." % account)
            if len(found) > 1:
                raise CloudflareError(
                    "More than one account is named '%s'; give the account id instead." % account)
            self._account_cache[account] = found[0]["id"]
        return self._account_cache[account]

    def zone(self, zone, account_id=None):
        """Return ``{id, name, plan}`` of a zone given by id or by domain name."""
        if not zone:
            raise CloudflareError("No Cloudflare zone given: set the zone option to its domain name or id.")
        key = (zone, account_id)
        if key in self._zone_cache:
            return self._zone_cache[key]
        if is_cloudflare_id(zone):
            item = self.get_or_none("zones/%s" % zone, "read zone %s" % zone)
            if item is None:
                raise CloudflareError("Zone id '%s' was not found; check the id." % zone)
        else:
            name = zone.rstrip(".").lower()
            params = {"name": name}
            if account_id:
                params["account.id"] = account_id
            found = [item for item in self.list_all("zones", "look up zone '%s'" % name, params)
                     if item.get("name", "").lower() == name]
            if not found:
                raise CloudflareError(
                    "Zone '%s' was not found%s. Check the domain name, or that the API token may read "
                    "the zone (permission Zone Read)." % (name, " in the account" if account_id else ""))
            item = found[0]
        plan = item.get("plan") or {}
        self._zone_cache[key] = {
            "id": item["id"],
            "name": item["name"],
            "plan": plan.get("legacy_id") or plan.get("name") or "unknown",
        }
        return self._zone_cache[key]

    def summary(self):
        """Return request and retry counts for a module result."""
        return {"requests": dict(self.requests), "retries": self.retries, "retried": dict(self.retried)}


def _error_list(body):
    if isinstance(body, dict):
        errors = body.get("errors")
        if isinstance(errors, list):
            return [dict(code=item.get("code"), message=item.get("message"))
                    for item in errors if isinstance(item, dict)]
    return []


def _first_message(errors):
    for error in errors:
        if error.get("message"):
            return error["message"]
    return None


def _retry_hint(attempt, status):
    if attempt and status in RETRY_STATUSES:
        return "Gave up after %d retries; raise max_retries or try again later." % attempt
    return None


def _retry_after(headers):
    value = headers.get("retry-after") if headers is not None else None
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            parsed = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            # Neither seconds nor an HTTP date: fall back to the normal backoff.
            return None
        if parsed is None:
            return None
        seconds = parsed.timestamp() - time.time()
    if seconds <= 0:
        return None
    return min(seconds, MAX_RETRY_AFTER)


def _backoff(attempt):
    return min(0.5 * (2 ** attempt), MAX_BACKOFF) * random.uniform(0.75, 1.0)


class CloudflareModule(AnsibleModule):
    """AnsibleModule with the shared Cloudflare connection options and error reporting."""

    def __init__(self, argument_spec, **kwargs):
        spec = dict(CLOUDFLARE_ARGUMENT_SPEC)
        spec.update(argument_spec)
        super(CloudflareModule, self).__init__(argument_spec=spec, **kwargs)
        self._api = None

    @property
    def api(self):
        if self._api is None:
            if not HAS_CLOUDFLARE:
                self.fail_json(msg=missing_required_lib("cloudflare"), exception=CLOUDFLARE_IMPORT_ERROR)
            try:
                self._api = CloudflareAPI(
                    api_token=self.params["api_token"],
                    base_url=self.params["base_url"],
                    timeout=self.params["timeout"],
                    max_retries=self.params["max_retries"],
                    validate_certs=self.params["validate_certs"],
                )
            except CloudflareError as exc:
                self.fail_json(msg=str(exc))
        return self._api

    def require_no_log(self, reason):
        """Fail before any API call unless the task runs with ``no_log: true``.

        Used when the result will carry a secret, so that the secret cannot reach the output.
        """
        if not self.no_log:
            self.fail_json(msg="%s returns a secret, so the task must set 'no_log: true'. Add it to the task "
                               "and register the result." % reason)

    def api_summary(self):
        if self._api is None:
            return {"requests": {}, "retries": 0, "retried": {}}
        return self._api.summary()

    def exit_with(self, **result):
        summary = self.api_summary()
        result["api_requests"] = summary["requests"]
        result["api_retries"] = summary["retries"]
        if summary["retries"]:
            self.warn("%d Cloudflare API request(s) were retried (%s)." % (
                summary["retries"], ", ".join("%s: %d" % item for item in sorted(summary["retried"].items()))))
        self.exit_json(**result)

    def fail_with(self, error, **result):
        summary = self.api_summary()
        result["api_requests"] = summary["requests"]
        result["api_retries"] = summary["retries"]
        if isinstance(error, CloudflareError):
            result["status"] = error.status
            result["errors"] = error.errors
        self.fail_json(msg=str(error), **result)
