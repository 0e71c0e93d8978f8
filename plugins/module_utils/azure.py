# -*- coding: utf-8 -*-
# Copyright (c) homelab.edge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Azure access shared by the homelab.edge Azure modules.

It builds an azure-identity credential (an explicit service principal, or the
DefaultAzureCredential chain) and a ``WebSiteManagementClient`` pointed at the chosen cloud or
at an overridden endpoint. It turns the SDK's exceptions into one message that names the failed
operation, the resource, Azure's error code and what to do next.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import logging
import os
import traceback

from ansible.module_utils.basic import AnsibleModule, env_fallback, missing_required_lib

try:
    from azure.core.exceptions import ClientAuthenticationError, HttpResponseError, ServiceRequestError
    from azure.identity import ClientSecretCredential, DefaultAzureCredential
    from azure.mgmt.web import WebSiteManagementClient
except ImportError:
    HAS_AZURE = False
    AZURE_IMPORT_ERROR = traceback.format_exc()
else:
    HAS_AZURE = True
    AZURE_IMPORT_ERROR = None


# Resource Manager endpoint and Entra ID authority host of each cloud, from the published
# endpoints of Azure public, Azure operated by 21Vianet (China) and Azure Government.
CLOUD_ENDPOINTS = {
    "AzureCloud": {
        "resource_manager": "https://management.azure.com",
        "authority_host": "https://login.microsoftonline.com",
    },
    "AzureChinaCloud": {
        "resource_manager": "https://management.chinacloudapi.cn",
        "authority_host": "https://login.chinacloudapi.cn",
    },
    "AzureUSGovernment": {
        "resource_manager": "https://management.usgovcloudapi.net",
        "authority_host": "https://login.microsoftonline.us",
    },
}
KNOWN_AUTHORITY_HOSTS = frozenset(cloud["authority_host"] for cloud in CLOUD_ENDPOINTS.values())

AZURE_AUTH_ARGUMENT_SPEC = dict(
    subscription_id=dict(type="str", fallback=(env_fallback, ["AZURE_SUBSCRIPTION_ID"])),
    # No environment fallback here: AZURE_CLIENT_ID and AZURE_TENANT_ID also configure certificate,
    # workload identity and user-assigned managed identity logins, which DefaultAzureCredential reads.
    client_id=dict(type="str"),
    secret=dict(type="str", no_log=True),
    tenant=dict(type="str"),
    cloud_environment=dict(
        type="str",
        default="AzureCloud",
        choices=sorted(CLOUD_ENDPOINTS),
        fallback=(env_fallback, ["AZURE_CLOUD_ENVIRONMENT"]),
    ),
    base_url=dict(type="str", fallback=(env_fallback, ["AZURE_RESOURCE_MANAGER_ENDPOINT"])),
    authority_host=dict(type="str", fallback=(env_fallback, ["AZURE_AUTHORITY_HOST"])),
    max_retries=dict(type="int", default=4),
    timeout=dict(type="int", default=60),
)

# Fixes offered with Azure's error codes. The permission fix names the built-in role that has
# both Microsoft.Web/sites/config/list/action (read values) and .../config/write.
FIX_BY_CODE = {
    "ResourceNotFound": "check name, resource_group, slot and subscription_id",
    "ResourceGroupNotFound": "check resource_group and subscription_id",
    "SubscriptionNotFound": "check subscription_id and that the principal can see that subscription",
    "AuthorizationFailed": (
        "assign the principal a role with Microsoft.Web/sites/config/list/action and "
        "Microsoft.Web/sites/config/write on the web app or its resource group, for example "
        "'Website Contributor' (Reader cannot read or write app settings)"
    ),
    "InvalidAuthenticationToken": "check that tenant belongs to the cloud and subscription you target",
    "InvalidAuthenticationTokenTenant": "set tenant to the tenant that owns subscription_id",
}


class AzureOperationError(Exception):
    """A failed Azure call, with a message ready for ``fail_json``."""

    def __init__(self, message, code=None, status=None):
        super(AzureOperationError, self).__init__(message)
        self.message = message
        self.code = code
        self.status = status


def azure_argument_spec(**module_options):
    """Return the shared authentication options merged with a module's own options."""
    spec = dict((name, dict(option)) for name, option in AZURE_AUTH_ARGUMENT_SPEC.items())
    spec.update(module_options)
    return spec


def _normalize_url(url):
    return url.rstrip("/") if url else url


class AzureClientFactory(object):
    """Builds the credential and management client from a module's validated parameters."""

    def __init__(self, module):
        self.module = module
        params = module.params
        cloud = CLOUD_ENDPOINTS[params["cloud_environment"]]
        self.base_url = _normalize_url(params.get("base_url")) or cloud["resource_manager"]
        self.authority_host = _normalize_url(params.get("authority_host")) or cloud["authority_host"]
        # The token audience stays the cloud's ARM endpoint even when base_url is overridden, as
        # azure-mgmt-web does by default.
        self.credential_scope = cloud["resource_manager"] + "/.default"
        self.subscription_id = params.get("subscription_id")
        self.client_id, self.secret, self.tenant = self._explicit_principal(params)
        self.transport_options = dict(
            retry_total=params["max_retries"],
            connection_timeout=params["timeout"],
            read_timeout=params["timeout"],
        )

    @staticmethod
    def _explicit_principal(params):
        """Return (client_id, secret, tenant) from the options, else from azure.azcollection's variables.

        azure.azcollection reads AZURE_CLIENT_ID, AZURE_SECRET and AZURE_TENANT. When all three are set
        they select a service principal here too. Otherwise all three are None and the module uses
        DefaultAzureCredential, which reads AZURE_CLIENT_ID, AZURE_CLIENT_SECRET and AZURE_TENANT_ID.
        """
        given = (params.get("client_id"), params.get("secret"), params.get("tenant"))
        if any(given):
            return given
        from_environment = tuple(os.environ.get(name) for name in ("AZURE_CLIENT_ID", "AZURE_SECRET", "AZURE_TENANT"))
        if all(from_environment):
            return from_environment
        return None, None, None

    def check_parameters(self):
        """Fail the module early when the authentication options are incomplete."""
        if not HAS_AZURE:
            self.module.fail_json(
                msg=missing_required_lib("azure-identity and azure-mgmt-web"), exception=AZURE_IMPORT_ERROR
            )
        if not self.subscription_id:
            self.module.fail_json(
                msg="Missing subscription_id: set the subscription_id option or the AZURE_SUBSCRIPTION_ID "
                "environment variable to the subscription that contains the web app."
            )
        explicit = dict(client_id=self.client_id, secret=self.secret, tenant=self.tenant)
        given = sorted(name for name, value in explicit.items() if value)
        if given and len(given) < len(explicit):
            missing = sorted(set(explicit) - set(given))
            self.module.fail_json(
                msg="Incomplete service principal: %s given but %s missing. Set all of client_id, secret "
                "and tenant, or none of them to use the DefaultAzureCredential chain (AZURE_CLIENT_ID, "
                "AZURE_CLIENT_SECRET and AZURE_TENANT_ID, workload identity, managed identity, Azure CLI)."
                % (", ".join(given), ", ".join(missing))
            )
        if not self.base_url.startswith("https://") or not self.authority_host.startswith("https://"):
            self.module.fail_json(
                msg="Invalid endpoint: base_url (%s) and authority_host (%s) must be https URLs, because the "
                "Azure SDK sends bearer tokens only over TLS." % (self.base_url, self.authority_host)
            )

    def credential(self):
        """Return an explicit service principal credential, or the DefaultAzureCredential chain."""
        options = dict(authority=self.authority_host, retry_total=self.module.params["max_retries"])
        if self.authority_host not in KNOWN_AUTHORITY_HOSTS:
            # MSAL otherwise validates the authority against login.microsoftonline.com, which a
            # private or emulated authority host does not pass.
            options["disable_instance_discovery"] = True
        if self.client_id:
            return ClientSecretCredential(self.tenant, self.client_id, self.secret, **options)
        return DefaultAzureCredential(exclude_interactive_browser_credential=True, **options)

    def web_client(self):
        """Return a ``WebSiteManagementClient`` for the configured subscription and endpoint."""
        self.check_parameters()
        # azure-identity logs each failed attempt at WARNING on stderr. The module reports the
        # same failure in its result, so those lines would only be noise around the JSON output.
        logging.getLogger("azure").setLevel(logging.CRITICAL)
        return WebSiteManagementClient(
            self.credential(),
            self.subscription_id,
            base_url=self.base_url,
            credential_scopes=[self.credential_scope],
            **self.transport_options
        )

    def describe_principal(self):
        """Return a phrase naming the identity used, for error messages."""
        if self.client_id:
            return "service principal '%s' in tenant '%s'" % (self.client_id, self.tenant)
        client_id = os.environ.get("AZURE_CLIENT_ID")
        if client_id:
            return "the DefaultAzureCredential chain (AZURE_CLIENT_ID '%s' from the environment)" % client_id
        return "the DefaultAzureCredential chain (environment, workload identity, managed identity, Azure CLI)"


def error_code(error):
    """Return Azure's error code from an ``HttpResponseError``, or None."""
    odata = getattr(error, "error", None)
    code = getattr(odata, "code", None)
    if code:
        return code
    return getattr(error, "reason", None)


def error_message(error):
    odata = getattr(error, "error", None)
    message = getattr(odata, "message", None)
    if message:
        return message
    return str(error).splitlines()[0]


def translate_error(error, operation, resource, factory):
    """Turn an SDK exception into an ``AzureOperationError`` naming the operation and the fix.

    ``operation`` is a phrase such as "read the app settings", ``resource`` names the web app or
    slot. Exceptions that are not Azure SDK errors are returned unchanged for the caller to raise.
    """
    # azure-identity raises ClientAuthenticationError without an HTTP response; ARM's own 401
    # responses use the same class but carry a status code.
    if isinstance(error, ClientAuthenticationError) and getattr(error, "status_code", None) is None:
        details = " ".join(line.strip() for line in str(error).splitlines() if line.strip()).rstrip(".")
        return AzureOperationError(
            "Failed to %s of %s: authentication with %s failed: %s. Check client_id, secret and tenant "
            "(or AZURE_CLIENT_ID, AZURE_CLIENT_SECRET and AZURE_TENANT_ID). If the secret expired, "
            "create a new client secret for the app registration."
            % (operation, resource, factory.describe_principal(), details),
            code="ClientAuthenticationError",
        )
    if isinstance(error, HttpResponseError):
        code = error_code(error)
        status = error.status_code
        fix = FIX_BY_CODE.get(code)
        if fix is None and status == 404:
            fix = FIX_BY_CODE["ResourceNotFound"]
        if fix is None and status in (401, 403):
            fix = FIX_BY_CODE["AuthorizationFailed"]
        message = "Failed to %s of %s: HTTP %s %s: %s" % (operation, resource, status, code, error_message(error))
        if fix:
            message += " To fix it, %s." % fix
        return AzureOperationError(message, code=code, status=status)
    if isinstance(error, ServiceRequestError):
        return AzureOperationError(
            "Failed to %s of %s: could not reach %s: %s. Check base_url, authority_host, the network and, "
            "for a private CA, REQUESTS_CA_BUNDLE." % (operation, resource, factory.base_url, error),
            code="ServiceRequestError",
        )
    if isinstance(error, ValueError) and "authority" in str(error).lower():
        # MSAL raises ValueError when the tenant's OpenID configuration cannot be read, which is
        # what an unknown tenant or a wrong authority host produces.
        return AzureOperationError(
            "Failed to %s of %s: the authority %s rejected tenant '%s': %s. Check tenant and authority_host."
            % (operation, resource, factory.authority_host, factory.tenant, error),
            code="InvalidAuthority",
        )
    return error


class AzureModule(AnsibleModule):
    """``AnsibleModule`` with the shared Azure options and an ``azure_call`` error wrapper."""

    def __init__(self, argument_spec, **kwargs):
        super(AzureModule, self).__init__(argument_spec=azure_argument_spec(**argument_spec), **kwargs)
        self.azure = AzureClientFactory(self)
        self._web_client = None

    @property
    def web_client(self):
        if self._web_client is None:
            self._web_client = self.azure.web_client()
        return self._web_client

    def azure_call(self, operation, resource, function, *args, **kwargs):
        """Call ``function`` and raise ``AzureOperationError`` with a clear message on SDK errors."""
        try:
            return function(*args, **kwargs)
        except (HttpResponseError, ServiceRequestError, ValueError) as error:
            translated = translate_error(error, operation, resource, self.azure)
            if translated is error:
                raise
            raise translated


def describe_resource(params):
    """Return a phrase naming the web app or slot, its resource group and subscription, for messages."""
    where = "in resource group '%s' of subscription '%s'" % (params["resource_group"], params["subscription_id"])
    if params["slot"]:
        return "slot '%s' of web app '%s' %s" % (params["slot"], params["name"], where)
    return "web app '%s' %s" % (params["name"], where)


def reference_summary(reference):
    return dict(
        name=reference.name,
        status=reference.status,
        vault_name=reference.vault_name,
        secret_name=reference.secret_name,
        details=reference.details,
    )


class WebAppSettings(object):
    """Reads and writes the app settings of one web app or slot through an ``AzureModule``'s client."""

    def __init__(self, module):
        self.module = module
        self.params = module.params
        self.resource = describe_resource(module.params)
        self.operations = module.web_client.web_apps

    def _call(self, action, function, *args, **kwargs):
        return self.module.azure_call(action, self.resource, function, *args, **kwargs)

    def read_settings(self):
        group, name, slot = self.params["resource_group"], self.params["name"], self.params["slot"]
        if slot:
            result = self._call("read the app settings", self.operations.list_application_settings_slot, group, name, slot)
        else:
            result = self._call("read the app settings", self.operations.list_application_settings, group, name)
        return dict(result.properties or {})

    def write_settings(self, settings):
        group, name, slot = self.params["resource_group"], self.params["name"], self.params["slot"]
        body = {"properties": settings}
        if slot:
            self._call("write the app settings", self.operations.update_application_settings_slot, group, name, slot, body)
        else:
            self._call("write the app settings", self.operations.update_application_settings, group, name, body)

    def read_slot_config_names(self):
        result = self._call(
            "read the slot setting names",
            self.operations.list_slot_configuration_names,
            self.params["resource_group"],
            self.params["name"],
        )
        # The whole object is kept because the update call replaces all three lists.
        return dict(
            appSettingNames=list(result.app_setting_names or []),
            connectionStringNames=list(result.connection_string_names or []),
            azureStorageConfigNames=list(result.azure_storage_config_names or []),
        )

    def write_slot_config_names(self, names):
        self._call(
            "write the slot setting names",
            self.operations.update_slot_configuration_names,
            self.params["resource_group"],
            self.params["name"],
            {"properties": names},
        )

    def read_key_vault_references(self):
        group, name, slot = self.params["resource_group"], self.params["name"], self.params["slot"]
        if slot:
            pages = self._call(
                "read the Key Vault reference status",
                self.operations.get_app_settings_key_vault_references_slot,
                group,
                name,
                slot,
            )
        else:
            pages = self._call(
                "read the Key Vault reference status", self.operations.get_app_settings_key_vault_references, group, name
            )
        # Paging sends the request lazily, so the iteration must run inside the error wrapper too.
        references = self._call("read the Key Vault reference status", list, pages)
        return [reference_summary(reference) for reference in references]
