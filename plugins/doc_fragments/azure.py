# -*- coding: utf-8 -*-
# Copyright (c) homelab.edge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):

    # Authentication and endpoint options shared by every Azure module. The option names are the
    # ones azure.azcollection uses, so inventories written for it can pass the same values.
    DOCUMENTATION = r"""
options:
  subscription_id:
    description:
      - ID of the subscription that contains the web app.
      - If not set, the value of the E(AZURE_SUBSCRIPTION_ID) environment variable is used.
    type: str
  client_id:
    description:
      - Application (client) ID of the service principal to authenticate as.
      - Set O(client_id), O(secret) and O(tenant) together, or none of them.
      - With none of them, the module uses azure.azcollection's environment variables E(AZURE_CLIENT_ID),
        E(AZURE_SECRET) and E(AZURE_TENANT) when all three are set. Otherwise it uses the C(DefaultAzureCredential)
        chain of azure-identity. That chain tries, in order, the environment (E(AZURE_CLIENT_ID),
        E(AZURE_CLIENT_SECRET) and E(AZURE_TENANT_ID), or a certificate), workload identity, managed identity
        (E(AZURE_CLIENT_ID) selects a user-assigned identity), and then developer logins such as the Azure CLI
        (C(az login)).
    type: str
  secret:
    description:
      - Client secret of the service principal.
      - The secret is never logged or returned.
    type: str
  tenant:
    description:
      - Directory (tenant) ID or domain of the service principal.
    type: str
  cloud_environment:
    description:
      - Azure cloud to use. It selects the default O(base_url), O(authority_host) and the token audience.
      - If not set, the value of the E(AZURE_CLOUD_ENVIRONMENT) environment variable is used.
    type: str
    default: AzureCloud
    choices: [AzureCloud, AzureChinaCloud, AzureUSGovernment]
  base_url:
    description:
      - Azure Resource Manager endpoint, for example V(https://management.azure.com).
      - If not set, the value of the E(AZURE_RESOURCE_MANAGER_ENDPOINT) environment variable is used, and
        then the endpoint of O(cloud_environment).
      - Must be an https URL, because the Azure SDK sends bearer tokens only over TLS. To trust a private
        CA (a proxy or a test emulator), set E(REQUESTS_CA_BUNDLE) to its PEM file.
    type: str
  authority_host:
    description:
      - Microsoft Entra ID authority host that issues tokens, for example V(https://login.microsoftonline.com).
      - If not set, the value of the E(AZURE_AUTHORITY_HOST) environment variable is used, and then the
        authority of O(cloud_environment).
      - For a host other than the three public cloud authorities, authority validation (instance
        discovery) is turned off, so the host must be one you trust.
    type: str
  max_retries:
    description:
      - How many times azure-core resends a request that failed on the network or was answered with
        HTTP 408, 429, 500, 502, 503 or 504. It waits longer after each try and honours C(Retry-After).
    type: int
    default: 4
  timeout:
    description:
      - Seconds to wait for a connection and for each response.
    type: int
    default: 60
notes:
  - The modules run on the controller (or wherever they are delegated) and need azure-identity and
    azure-mgmt-web there. They do not use the azure.azcollection Python requirements, which pin older SDKs.
requirements:
  - azure-identity >= 1.27
  - azure-mgmt-web >= 11.0
"""
