"""Azure Resource Manager and Microsoft Entra token endpoint emulator for App Service settings.

It serves, over HTTPS on loopback, the parts of Azure that homelab.edge's Azure modules use:

* Entra ID: ``GET /{tenant}/v2.0/.well-known/openid-configuration`` and the client credentials
  grant at ``POST /{tenant}/oauth2/v2.0/token``. A wrong secret gets the AADSTS7000215 error body
  that Entra returns, an unknown client AADSTS700016 and an unknown tenant AADSTS90002.
* ARM, for web apps and their deployment slots (api-version is required, as in Azure):
  ``POST .../config/appsettings/list``, ``PUT .../config/appsettings`` (replaces the whole set),
  ``GET``/``PUT .../config/slotConfigNames`` (site only; PUT replaces all three name lists),
  ``GET .../config/configreferences/appsettings`` (Key Vault reference status).

Every app settings PUT increments the restart counter of that app or slot, because App Service
restarts the app on any app settings change. Missing subscriptions, resource groups, sites and
slots return 404 with ARM's error codes. A principal whose role assignments do not cover the
resource gets 403 AuthorizationFailed. As in Azure, the Reader role can read configuration but
cannot list or write app settings.

The HTTP plumbing, request log, fault injection and ``/__emulator__/`` admin routes come from
``httpserver.py``. Logged request bodies keep setting names but never values: every string under
``properties`` is replaced, and the token endpoint's form body is not logged. Tests read the log
with ``server.request_log.entries()`` and the state with ``server.app`` (see ``AzureApp``).

Seed (the ``azure`` section of the emulator seed file)::

    principals:
      - client_id: 11111111-...
        client_secret: s3cret
        tenant_id: 22222222-...
        role_assignments:            # optional; without it the principal may do everything
          - {scope: /subscriptions/SUB/resourceGroups/rg-shop, role: Contributor}   # or Reader
    subscriptions:
      SUB:
        resource_groups:
          rg-shop:
            sites:
              shop-web:
                app_settings: {WEBSITE_RUN_FROM_PACKAGE: "1"}
                slot_config_names: {app_setting_names: [], connection_string_names: []}
                identity: SystemAssigned    # or None: Key Vault references then fail with MSINotEnabled
                slots:
                  staging: {app_settings: {}}
    key_vaults:
      kv-shop: {secrets: [cf-access-secret]}
"""

from __future__ import annotations

import copy
import datetime
import json
import logging
import os
import pathlib
import re
import secrets
import ssl
import sys
import urllib.parse
import uuid
from typing import Any

try:
    from .httpserver import REDACTED, EmulatorApp, EmulatorServer, Request, Response, json_response
    from .tls_certs import ensure_server_certificate
except ImportError:  # loaded as a top-level module with tests/emulators on sys.path
    from httpserver import REDACTED, EmulatorApp, EmulatorServer, Request, Response, json_response  # type: ignore[no-redef]
    from tls_certs import ensure_server_certificate  # type: ignore[no-redef]

LOG = logging.getLogger(__name__)

API_VERSION_REQUIRED = "api-version"
TOKEN_LIFETIME_SECONDS = 3599

# Roles the emulator understands, with the actions each one allows. "list/action" is a
# separate permission in Azure, which is why Reader cannot read app setting values.
ROLE_ALLOWS_WRITE = {"owner": True, "contributor": True, "website contributor": True, "reader": False}

SITE_PATH = re.compile(
    r"^/subscriptions/(?P<sub>[^/]+)/resourcegroups/(?P<rg>[^/]+)/providers/microsoft\.web/sites/"
    r"(?P<site>[^/]+)(?:/slots/(?P<slot>[^/]+))?(?P<rest>/.*)?$",
    re.IGNORECASE,
)
KV_SECRET_URI = re.compile(
    r"^https://(?P<vault>[a-z0-9-]+)\.vault\.azure\.net/secrets/(?P<secret>[A-Za-z0-9-]+)(?:/(?P<version>[A-Za-z0-9]*))?/?$",
    re.IGNORECASE,
)


class ArmError(Exception):
    """An error response in ARM's ``{"error": {"code", "message"}}`` shape."""

    def __init__(self, status: int, code: str, message: str):
        super().__init__(message)
        self.status = status
        self.body = {"error": {"code": code, "message": message}}


class EntraError(Exception):
    """An error response in the OAuth 2.0 shape Microsoft Entra ID uses."""

    def __init__(self, status: int, error: str, aadsts: int, description: str):
        super().__init__(description)
        now = datetime.datetime.now(datetime.timezone.utc)
        trace_id = str(uuid.uuid4())
        correlation_id = str(uuid.uuid4())
        timestamp = now.strftime("%Y-%m-%d %H:%M:%SZ")
        self.status = status
        self.body = {
            "error": error,
            "error_description": (
                f"AADSTS{aadsts}: {description} Trace ID: {trace_id} "
                f"Correlation ID: {correlation_id} Timestamp: {timestamp}"
            ),
            "error_codes": [aadsts],
            "timestamp": timestamp,
            "trace_id": trace_id,
            "correlation_id": correlation_id,
            "error_uri": f"https://login.microsoftonline.com/error?code={aadsts}",
        }


class AppSettingsHolder:
    """App settings and restart counter of one site or slot."""

    def __init__(self, name: str, seed: dict[str, Any]):
        self.name = name
        self.app_settings: dict[str, str] = {str(k): str(v) for k, v in (seed.get("app_settings") or {}).items()}
        self.restart_count = int(seed.get("restart_count") or 0)

    def to_seed(self) -> dict[str, Any]:
        return {"app_settings": dict(self.app_settings), "restart_count": self.restart_count}


class Site(AppSettingsHolder):
    """A web app: its own settings, the slot-sticky names, its identity and its slots."""

    def __init__(self, name: str, seed: dict[str, Any]):
        super().__init__(name, seed)
        names = seed.get("slot_config_names") or {}
        self.slot_config_names = {
            "appSettingNames": list(names.get("app_setting_names") or []),
            "connectionStringNames": list(names.get("connection_string_names") or []),
            "azureStorageConfigNames": list(names.get("azure_storage_config_names") or []),
        }
        self.identity = seed.get("identity", "SystemAssigned")
        self.slots = {
            slot_name.lower(): AppSettingsHolder(slot_name, slot_seed or {})
            for slot_name, slot_seed in (seed.get("slots") or {}).items()
        }

    def to_seed(self) -> dict[str, Any]:
        seed = super().to_seed()
        seed["slot_config_names"] = {
            "app_setting_names": list(self.slot_config_names["appSettingNames"]),
            "connection_string_names": list(self.slot_config_names["connectionStringNames"]),
            "azure_storage_config_names": list(self.slot_config_names["azureStorageConfigNames"]),
        }
        seed["identity"] = self.identity
        seed["slots"] = {slot.name: slot.to_seed() for slot in self.slots.values()}
        return seed


def _resource_id(sub: str, rg: str, site: str, slot: str | None) -> str:
    base = f"/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.Web/sites/{site}"
    return f"{base}/slots/{slot}" if slot else base


def _parse_key_vault_reference(value: str) -> dict[str, str | None] | None:
    """Split ``@Microsoft.KeyVault(...)`` into vault, secret and version; None if not a reference."""
    if not value.startswith("@Microsoft.KeyVault(") or not value.endswith(")"):
        return None
    inner = value[len("@Microsoft.KeyVault(") : -1]
    fields = dict(part.split("=", 1) for part in inner.split(";") if "=" in part)
    if "SecretUri" in fields:
        match = KV_SECRET_URI.match(fields["SecretUri"])
        if not match:
            return {"vault": None, "secret": None, "version": None}
        return {"vault": match["vault"], "secret": match["secret"], "version": match["version"] or None}
    return {
        "vault": fields.get("VaultName"),
        "secret": fields.get("SecretName"),
        "version": fields.get("SecretVersion"),
    }


def _arm_error(error: ArmError | EntraError) -> Response:
    return json_response(error.status, error.body)


class AzureApp(EmulatorApp):
    """Entra ID token endpoint plus the App Service configuration endpoints of ARM.

    Besides the HTTP API, tests read state directly: ``app_settings()``, ``restart_count()`` and
    ``slot_config_names()`` take names the way Azure does (case-insensitive).
    """

    name = "azure"

    def __init__(self, seed: dict[str, Any], state_path: pathlib.Path | None = None):
        super().__init__()
        self._seed = copy.deepcopy(seed or {})
        # With a state path, the state survives a restart, as the Cloudflare emulator's does, so that
        # `make demo` run twice shows a second run that changes nothing. The file holds setting values
        # and test credentials; it is written with mode 0600.
        self.state_path = state_path
        if state_path is not None and state_path.exists():
            self.set_state(json.loads(state_path.read_text()))
        else:
            self.set_state(self._seed)

    def _persist(self) -> None:
        if self.state_path is None:
            return
        temporary = self.state_path.with_suffix(".tmp")
        temporary.write_text(json.dumps(self.get_state(), indent=1))
        os.chmod(temporary, 0o600)
        os.replace(temporary, self.state_path)

    # State

    def set_state(self, state: dict[str, Any]) -> None:
        with self.lock:
            self.tokens: dict[str, dict[str, Any]] = {}
            self.principals = {str(p["client_id"]).lower(): dict(p) for p in state.get("principals") or []}
            self.tenants = {str(t).lower() for t in state.get("tenants") or []}
            self.tenants.update(str(p["tenant_id"]).lower() for p in self.principals.values())
            self.key_vaults = {
                name.lower(): {str(s).lower() for s in (vault or {}).get("secrets") or []}
                for name, vault in (state.get("key_vaults") or {}).items()
            }
            self._key_vault_seed = copy.deepcopy(state.get("key_vaults") or {})
            self.subscriptions: dict[str, tuple[str, dict[str, tuple[str, dict[str, Site]]]]] = {}
            for sub_id, sub_seed in (state.get("subscriptions") or {}).items():
                groups = {}
                for rg_name, rg_seed in ((sub_seed or {}).get("resource_groups") or {}).items():
                    sites = (rg_seed or {}).get("sites") or {}
                    groups[rg_name.lower()] = (rg_name, {name.lower(): Site(name, s or {}) for name, s in sites.items()})
                self.subscriptions[str(sub_id).lower()] = (str(sub_id), groups)

    def get_state(self) -> dict[str, Any]:
        with self.lock:
            return {
                "principals": [dict(p) for p in self.principals.values()],
                "tenants": sorted(self.tenants),
                "key_vaults": copy.deepcopy(self._key_vault_seed),
                "subscriptions": {
                    sub_name: {
                        "resource_groups": {
                            rg_name: {"sites": {site.name: site.to_seed() for site in sites.values()}}
                            for rg_name, sites in groups.values()
                        }
                    }
                    for sub_name, groups in self.subscriptions.values()
                },
            }

    def reset(self) -> None:
        self.set_state(self._seed)

    def site(self, subscription_id: str, resource_group: str, name: str) -> Site:
        groups = self.subscriptions[subscription_id.lower()][1]
        return groups[resource_group.lower()][1][name.lower()]

    def holder(self, subscription_id: str, resource_group: str, name: str, slot: str | None = None) -> AppSettingsHolder:
        site = self.site(subscription_id, resource_group, name)
        return site.slots[slot.lower()] if slot else site

    def app_settings(self, subscription_id: str, resource_group: str, name: str, slot: str | None = None) -> dict[str, str]:
        with self.lock:
            return dict(self.holder(subscription_id, resource_group, name, slot).app_settings)

    def restart_count(self, subscription_id: str, resource_group: str, name: str, slot: str | None = None) -> int:
        with self.lock:
            return self.holder(subscription_id, resource_group, name, slot).restart_count

    def slot_config_names(self, subscription_id: str, resource_group: str, name: str) -> dict[str, list[str]]:
        with self.lock:
            return copy.deepcopy(self.site(subscription_id, resource_group, name).slot_config_names)

    # Logging and errors

    def redact_body(self, body: Any) -> Any:
        """Keep setting names but replace every string value under ``properties``."""
        redacted = super().redact_body(body)
        if isinstance(redacted, dict) and isinstance(redacted.get("properties"), dict):
            redacted["properties"] = {
                key: REDACTED if isinstance(value, str) else value for key, value in redacted["properties"].items()
            }
        return redacted

    def is_write(self, request: Request) -> bool:
        """Count PUT, PATCH, DELETE and state-changing POSTs; listing settings and tokens are reads."""
        if request.method in ("PUT", "PATCH", "DELETE"):
            return True
        path = request.path.lower()
        return request.method == "POST" and not (path.endswith("/list") or path.endswith("/oauth2/v2.0/token"))

    def error_body(self, status: int, message: str) -> Any:
        return {"error": {"code": "InjectedFault", "message": f"{message} (HTTP {status})"}}

    # Dispatch

    def handle(self, request: Request) -> Response:
        try:
            if request.path.lower().startswith("/subscriptions/"):
                response = self._handle_arm(request)
                if request.method == "PUT" and response.status < 300:
                    with self.lock:
                        self._persist()
                return response
            return self._handle_entra(request)
        except (ArmError, EntraError) as error:
            return _arm_error(error)

    # Microsoft Entra ID

    def _handle_entra(self, request: Request) -> Response:
        parts = request.path.strip("/").split("/")
        if len(parts) == 4 and parts[1:] == ["v2.0", ".well-known", "openid-configuration"] and request.method == "GET":
            return self._openid_configuration(request, parts[0])
        if len(parts) == 4 and parts[1:] == ["oauth2", "v2.0", "token"] and request.method == "POST":
            return self._token(request, parts[0])
        raise ArmError(404, "NotFound", f"The emulator has no handler for {request.method} {request.path}.")

    def _check_tenant(self, tenant: str) -> None:
        if tenant.lower() not in self.tenants:
            raise EntraError(
                400,
                "invalid_request",
                90002,
                f"Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and "
                "are signing into the correct cloud.",
            )

    def _openid_configuration(self, request: Request, tenant: str) -> Response:
        self._check_tenant(tenant)
        base = f"https://{request.header('host')}/{tenant}"
        return json_response(
            200,
            {
                "token_endpoint": f"{base}/oauth2/v2.0/token",
                "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
                "device_authorization_endpoint": f"{base}/oauth2/v2.0/devicecode",
                "issuer": f"{base}/v2.0",
                "jwks_uri": f"{base}/discovery/v2.0/keys",
                "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt", "client_secret_basic"],
                "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
            },
        )

    def _token(self, request: Request, tenant: str) -> Response:
        self._check_tenant(tenant)
        form = {key: values[-1] for key, values in urllib.parse.parse_qs(request.body.decode()).items()}
        client_id = form.get("client_id", "")
        if form.get("grant_type") != "client_credentials":
            raise EntraError(400, "unsupported_grant_type", 70003, "The app requested an unsupported grant type.")
        with self.lock:
            principal = self.principals.get(client_id.lower())
        if principal is None or str(principal["tenant_id"]).lower() != tenant.lower():
            raise EntraError(
                400,
                "unauthorized_client",
                700016,
                f"Application with identifier '{client_id}' was not found in the directory '{tenant}'. "
                "This can happen if the application has not been installed by the administrator of the "
                "tenant or consented to by any user in the tenant.",
            )
        if "client_secret" not in form:
            raise EntraError(
                401, "invalid_client", 7000216, "'client_assertion', 'client_secret' or 'request' is required."
            )
        if not secrets.compare_digest(form["client_secret"].encode(), str(principal["client_secret"]).encode()):
            raise EntraError(
                401,
                "invalid_client",
                7000215,
                "Invalid client secret provided. Ensure the secret being sent in the request is the client "
                f"secret value, not the client secret ID, for a secret added to app '{client_id}'.",
            )
        token = "emu." + secrets.token_urlsafe(24)
        with self.lock:
            self.tokens[token] = principal
        return json_response(
            200,
            {
                "token_type": "Bearer",
                "expires_in": TOKEN_LIFETIME_SECONDS,
                "ext_expires_in": TOKEN_LIFETIME_SECONDS,
                "access_token": token,
            },
        )

    # Azure Resource Manager

    def _authenticate(self, request: Request) -> dict[str, Any]:
        header = request.header("authorization") or ""
        if not header:
            raise ArmError(401, "AuthenticationFailed", "Authentication failed. The 'Authorization' header is missing.")
        scheme, separator, token = header.partition(" ")
        with self.lock:
            principal = self.tokens.get(token) if scheme.lower() == "bearer" else None
        if principal is None:
            raise ArmError(401, "InvalidAuthenticationToken", "The access token is invalid.")
        return principal

    @staticmethod
    def _authorize(principal: dict, resource_id: str, action: str) -> None:
        assignments = principal.get("role_assignments")
        if assignments is None:
            return
        target = resource_id.lower().rstrip("/") + "/"
        for assignment in assignments:
            scope = str(assignment["scope"]).lower().rstrip("/") + "/"
            if not target.startswith(scope):
                continue
            role = str(assignment.get("role", "Contributor")).lower()
            if ROLE_ALLOWS_WRITE.get(role, False) or action.endswith("/read"):
                return
        raise ArmError(
            403,
            "AuthorizationFailed",
            f"The client '{principal['client_id']}' with object id '{principal['client_id']}' does not have "
            f"authorization to perform action '{action}' over scope '{resource_id}' or the scope is invalid. "
            "If access was recently granted, please refresh your credentials.",
        )

    def _lookup(self, sub: str, rg: str, site_name: str, slot: str | None) -> tuple[Site, AppSettingsHolder]:
        subscription = self.subscriptions.get(sub.lower())
        if subscription is None:
            raise ArmError(404, "SubscriptionNotFound", f"The subscription '{sub}' could not be found.")
        group = subscription[1].get(rg.lower())
        if group is None:
            raise ArmError(404, "ResourceGroupNotFound", f"Resource group '{rg}' could not be found.")
        site = group[1].get(site_name.lower())
        if site is None:
            raise ArmError(
                404,
                "ResourceNotFound",
                f"The Resource 'Microsoft.Web/sites/{site_name}' under resource group '{rg}' was not found. "
                "For more details please go to https://aka.ms/ARMResourceNotFoundFix",
            )
        if slot is None:
            return site, site
        holder = site.slots.get(slot.lower())
        if holder is None:
            raise ArmError(
                404,
                "ResourceNotFound",
                f"The Resource 'Microsoft.Web/sites/{site_name}/slots/{slot}' under resource group '{rg}' was "
                "not found. For more details please go to https://aka.ms/ARMResourceNotFoundFix",
            )
        return site, holder

    def _handle_arm(self, request: Request) -> Response:
        principal = self._authenticate(request)
        if request.query_value(API_VERSION_REQUIRED) is None:
            raise ArmError(
                400,
                "MissingApiVersionParameter",
                "The api-version query parameter (?api-version=) is required for all requests.",
            )
        match = SITE_PATH.match(request.path)
        if not match:
            raise ArmError(404, "NotFound", f"The emulator does not implement {request.method} {request.path}.")
        sub, rg, site_name, slot = match["sub"], match["rg"], match["site"], match["slot"]
        rest = (match["rest"] or "").lower()
        resource_id = _resource_id(sub, rg, site_name, slot)
        kind = "sites/slots" if slot else "sites"
        operations = {
            ("POST", "/config/appsettings/list"): ("list_app_settings", f"Microsoft.Web/{kind}/config/list/action"),
            ("PUT", "/config/appsettings"): ("update_app_settings", f"Microsoft.Web/{kind}/config/write"),
            ("GET", "/config/slotconfignames"): ("get_slot_config_names", "Microsoft.Web/sites/config/read"),
            ("PUT", "/config/slotconfignames"): ("update_slot_config_names", "Microsoft.Web/sites/config/write"),
            ("GET", "/config/configreferences/appsettings"): (
                "list_key_vault_references",
                f"Microsoft.Web/{kind}/config/read",
            ),
        }
        operation = operations.get((request.method, rest))
        # slotConfigNames exists on the site only; it applies to every slot.
        if operation is None or (slot and "slotconfignames" in rest):
            raise ArmError(404, "NotFound", f"The emulator does not implement {request.method} {request.path}.")
        name, action = operation
        self._authorize(principal, resource_id + rest, action)

        with self.lock:
            site, holder = self._lookup(sub, rg, site_name, slot)
            if name == "list_app_settings":
                return json_response(200, self._app_settings_body(resource_id, holder))
            if name == "update_app_settings":
                return json_response(200, self._replace_app_settings(resource_id, holder, request))
            if name == "get_slot_config_names":
                return json_response(200, self._slot_config_names_body(resource_id, site))
            if name == "update_slot_config_names":
                return json_response(200, self._replace_slot_config_names(resource_id, site, request))
            return json_response(200, self._key_vault_references_body(resource_id, site, holder))

    @staticmethod
    def _properties_of(request: Request) -> dict[str, Any]:
        if request.json_error:
            raise ArmError(400, "InvalidRequestContent", f"The request content was invalid JSON: {request.json_error}.")
        document = request.json
        if not isinstance(document, dict) or not isinstance(document.get("properties"), dict):
            raise ArmError(400, "BadRequest", "The request body must be an object with a 'properties' object.")
        return document["properties"]

    @staticmethod
    def _app_settings_body(resource_id: str, holder: AppSettingsHolder) -> dict[str, Any]:
        return {
            "id": f"{resource_id}/config/appsettings",
            "name": "appsettings",
            "type": "Microsoft.Web/sites/config",
            "properties": dict(holder.app_settings),
        }

    def _replace_app_settings(self, resource_id: str, holder: AppSettingsHolder, request: Request) -> dict:
        properties = self._properties_of(request)
        for key, value in properties.items():
            if not key or not isinstance(value, str):
                raise ArmError(400, "BadRequest", f"App setting '{key}' must have a non-empty name and a string value.")
        # Azure replaces the whole set: every name missing from the body is deleted.
        holder.app_settings = dict(properties)
        holder.restart_count += 1
        return self._app_settings_body(resource_id, holder)

    @staticmethod
    def _slot_config_names_body(resource_id: str, site: Site) -> dict[str, Any]:
        return {
            "id": f"{resource_id}/config/slotConfigNames",
            "name": "slotConfigNames",
            "type": "Microsoft.Web/sites/config",
            "properties": copy.deepcopy(site.slot_config_names),
        }

    def _replace_slot_config_names(self, resource_id: str, site: Site, request: Request) -> dict:
        properties = self._properties_of(request)
        # PUT replaces all three lists; a list left out of the body becomes empty.
        site.slot_config_names = {
            field: list(properties.get(field) or [])
            for field in ("appSettingNames", "connectionStringNames", "azureStorageConfigNames")
        }
        return self._slot_config_names_body(resource_id, site)

    def _key_vault_status(self, site: Site, reference: dict[str, str | None]) -> tuple[str, str]:
        if not reference["vault"] or not reference["secret"]:
            return "InvalidSyntax", "The Key Vault reference is not valid."
        if site.identity in (None, "None"):
            return "MSINotEnabled", "The app has no managed identity, so it cannot read Key Vault."
        vault = self.key_vaults.get(reference["vault"].lower())
        if vault is None:
            return "VaultNotFound", f"Key Vault '{reference['vault']}' was not found."
        if reference["secret"].lower() not in vault:
            return "SecretNotFound", f"Secret '{reference['secret']}' was not found in Key Vault '{reference['vault']}'."
        return "Resolved", "Reference was successfully resolved."

    def _key_vault_references_body(self, resource_id: str, site: Site, holder: AppSettingsHolder) -> dict:
        items = []
        for key, value in sorted(holder.app_settings.items()):
            reference = _parse_key_vault_reference(value)
            if reference is None:
                continue
            status, details = self._key_vault_status(site, reference)
            items.append(
                {
                    "id": f"{resource_id}/config/configreferences/appsettings/{key}",
                    "name": key,
                    "type": "Microsoft.Web/sites/config/configreferences",
                    "properties": {
                        "reference": value,
                        "status": status,
                        "vaultName": reference["vault"],
                        "secretName": reference["secret"],
                        "secretVersion": reference["version"],
                        "details": details,
                        "source": "KeyVault",
                    },
                }
            )
        return {"value": items, "nextLink": None}


class TlsEmulatorServer(EmulatorServer):
    """``EmulatorServer`` whose socket start() wraps in TLS, so its URL is https."""

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"https://{host}:{self.port}"

    def handle_error(self, request, client_address) -> None:
        """Log a failed TLS handshake in one line; other errors keep the standard traceback."""
        error = sys.exc_info()[1]
        if isinstance(error, ssl.SSLError):
            LOG.info("%s emulator: TLS handshake with %s failed: %s", self.app.name, client_address, error)
            return
        super().handle_error(request, client_address)


def start(seed_section: dict, state_dir: pathlib.Path, host: str = "127.0.0.1") -> tuple[TlsEmulatorServer, dict]:
    """Start the emulator on an ephemeral HTTPS port of ``host`` and serve it from a daemon thread.

    The returned info dict contains ``base_url`` (ARM endpoint), ``authority_host`` (the Entra
    endpoint, served by the same listener) and ``ca_path`` (the CA file clients must trust, for
    example through ``REQUESTS_CA_BUNDLE``). The TLS files live in ``state_dir/azure_tls``.
    Stop the server with ``server.shutdown()``.
    """
    state_dir = pathlib.Path(state_dir)
    certificate = ensure_server_certificate(state_dir / "azure_tls")
    state_path = state_dir / "azure.json" if (seed_section or {}).get("persist") else None
    server = TlsEmulatorServer((host, 0), AzureApp(seed_section or {}, state_path=state_path))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(certificate.cert_path, certificate.key_path)
    # The handshake runs in the request thread, so one stalled client cannot block accept().
    server.socket = context.wrap_socket(server.socket, server_side=True, do_handshake_on_connect=False)
    server.start_in_thread()

    info = {"base_url": server.url, "authority_host": server.url, "ca_path": str(certificate.ca_path)}
    return server, info
