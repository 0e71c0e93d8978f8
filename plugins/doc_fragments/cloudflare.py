# -*- coding: utf-8 -*-
# Copyright (c) homelab.edge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):

    # Connection options shared by every Cloudflare module.
    DOCUMENTATION = r"""
options:
  api_token:
    description:
      - Cloudflare API token, sent as a bearer token.
      - If not set, the value of the E(CLOUDFLARE_API_TOKEN) environment variable is used.
      - The token is never logged or returned. Global API keys (E(CLOUDFLARE_API_KEY), E(CLOUDFLARE_EMAIL))
        are not used, even when they are set in the environment.
    type: str
  base_url:
    description:
      - Base URL of the Cloudflare v4 API.
      - If not set, the value of the E(CLOUDFLARE_BASE_URL) environment variable is used, and then
        V(https://api.cloudflare.com/client/v4).
      - Set it to reach the API through a proxy or a test emulator.
    type: str
  timeout:
    description:
      - Seconds to wait for each API response.
    type: float
    default: 30
  max_retries:
    description:
      - How many times a request answered with HTTP 429 or a 5xx status, or that failed on the network, is
        sent again. The wait between tries follows the C(Retry-After) header when Cloudflare sends one, and
        otherwise doubles from half a second up to 30 seconds.
      - Requests answered with HTTP 409 are never retried. A create whose outcome is unknown is not sent
        again; the module looks the object up instead, so retries never create duplicates.
    type: int
    default: 5
  validate_certs:
    description:
      - Whether to verify the TLS certificate of O(base_url).
    type: bool
    default: true
notes:
  - The modules run on the controller (or wherever they are delegated) and need the C(cloudflare) Python
    SDK 5.x there. They call the API through the SDK's request methods.
  - Every module returns C(api_requests), the number of API requests it sent by HTTP method, and
    C(api_retries), the number of retried requests, and warns when it had to retry.
requirements:
  - cloudflare >= 5.9, < 6
"""

    # Account selection, for modules whose objects live in an account.
    ACCOUNT = r"""
options:
  account:
    description:
      - The Cloudflare account, by name or by its 32-character id.
      - An id saves one API request.
    type: str
    required: true
"""

    # Zone selection, for modules whose objects live in a zone.
    ZONE = r"""
options:
  zone:
    description:
      - The zone, by domain name (for example V(example.com)) or by its 32-character id.
    type: str
    required: true
"""
