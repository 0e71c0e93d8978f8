#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) homelab.edge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: ollama_model
short_description: Pull or delete a model on an Ollama server
version_added: 0.1.0
description:
  - Makes sure that a model is present on an Ollama server, or absent from it, through the
    server's REST API.
  - Presence is decided with C(POST /api/show). A missing model is pulled with a streamed
    C(POST /api/pull), and a present one is deleted with C(DELETE /api/delete).
  - Digest and size of the model come from C(GET /api/tags).
options:
  name:
    description:
      - Name of the model, as C(ollama pull) takes it, for example V(llama3.2) or
        V(qwen2.5:0.5b).
      - A name without a tag means the V(latest) tag, as in Ollama itself.
    type: str
    required: true
    aliases: [model]
  state:
    description:
      - V(present) pulls the model when the server does not have it.
      - V(absent) deletes the model when the server has it.
    type: str
    choices: [present, absent]
    default: present
  host:
    description:
      - Base URL of the Ollama server.
      - An Ollama bound to a loopback address rejects requests whose Host header is not a
        loopback name, so use the loopback address that Ollama listens on.
    type: str
    default: http://127.0.0.1:11434
  timeout:
    description:
      - Seconds to wait for the connection, for a response and for each progress line of a
        pull. It does not limit the total duration of a pull, which can take hours for a
        large model on a slow line.
    type: int
    default: 300
  validate_certs:
    description:
      - Whether to verify the TLS certificate when O(host) uses C(https).
    type: bool
    default: true
attributes:
  check_mode:
    description: In check mode the module predicts its result and sends no pull or delete request.
    support: full
    details:
      - Check mode asks the server whether the model is present and reports the change that a
        real run would make, without pulling or deleting.
  diff_mode:
    description: In diff mode the module returns the state of the model before and after the change.
    support: full
notes:
  - The module runs on the host that can reach O(host). For an Ollama bound to loopback that
    is the Ollama host itself, so do not delegate the task to the controller.
  - 'Ollama reports a failed pull as a final C({"error": ...}) line while the HTTP status is
    already 200. The module checks every line and fails on such a line.'
  - Pulling a model that is already present is skipped, so a present model is never updated.
    Delete it first to fetch a newer version under the same tag.
author:
  - homelab.edge contributors (@homelab-edge)
"""

EXAMPLES = r"""
- name: Make sure that llama3.2 is on the Ollama server
  homelab.edge.ollama_model:
    name: llama3.2

- name: Pull a large model, allowing 10 minutes between progress lines
  homelab.edge.ollama_model:
    name: llama3.1:70b
    timeout: 600

- name: Delete a model that is no longer used
  homelab.edge.ollama_model:
    name: mistral:7b
    state: absent

- name: Manage a model on an Ollama server that listens on another port
  homelab.edge.ollama_model:
    name: qwen2.5:0.5b
    host: http://127.0.0.1:11500
"""

RETURN = r"""
name:
  description: Name of the model, with the tag that Ollama adds when none is given.
  returned: always
  type: str
  sample: llama3.2:latest
digest:
  description:
    - Digest of the model as C(GET /api/tags) lists it.
    - In check mode, for a model that would be pulled, it is not known and is V(null).
  returned: when O(state=present)
  type: str
  sample: a80c4f17acd55265feec403c7aef86be0c25983ab279d83f3bcd3abbcb5b8b72
size:
  description:
    - Size of the model in bytes as C(GET /api/tags) lists it.
    - In check mode, for a model that would be pulled, it is not known and is V(null).
  returned: when O(state=present)
  type: int
  sample: 2019393189
"""

import json
import re
import socket

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.common.text.converters import to_text
from ansible.module_utils.six.moves.urllib.parse import urlparse
from ansible.module_utils.urls import fetch_url

# Ollama model names: [registry[:port]/][namespace/]model[:tag], made of letters, digits and ._-
MODEL_NAME_PATTERN = re.compile(
    r"^(?:[A-Za-z0-9][A-Za-z0-9._\-]*(?::[0-9]+)?/)?"
    r"(?:[A-Za-z0-9._\-]+/)*"
    r"[A-Za-z0-9][A-Za-z0-9._\-]*(?::[A-Za-z0-9._\-]+)?$"
)
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


def normalize_model_name(name):
    """Return the model name with the ``latest`` tag added when it has no tag."""
    if ":" in name.rsplit("/", 1)[-1]:
        return name
    return name + ":latest"


class OllamaError(Exception):
    """Failure of a request to Ollama, with a message that names the value and the fix."""


class OllamaClient:
    """Send requests to one Ollama server through Ansible's fetch_url."""

    def __init__(self, module, base_url, timeout):
        self.module = module
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        hostname = urlparse(self.base_url).hostname or ""
        # A proxy from the environment must not catch requests meant for a loopback server.
        self.use_proxy = hostname not in LOOPBACK_HOSTS

    def request(self, method, path, body=None):
        """Send a request and return ``(status, response, info)``.

        ``response`` is the open response for status 200 and None otherwise.
        """
        data = None if body is None else json.dumps(body)
        headers = {"Content-Type": "application/json"} if body is not None else {}
        response, info = fetch_url(
            self.module,
            self.base_url + path,
            data=data,
            headers=headers,
            method=method,
            timeout=self.timeout,
            use_proxy=self.use_proxy,
        )
        status = info.get("status", -1)
        if status == -1:
            raise OllamaError(
                "Failed to reach Ollama at %s (%s %s): %s. Check that Ollama is running and that"
                " host names the address it listens on." % (self.base_url, method, path, info.get("msg"))
            )
        if status == 403:
            raise OllamaError(
                "Ollama at %s rejected %s %s with 403. An Ollama bound to loopback accepts only a"
                " loopback Host header, so set host to the loopback address it listens on, for"
                " example http://127.0.0.1:11434." % (self.base_url, method, path)
            )
        return status, response, info

    def error_text(self, info):
        """Return Ollama's own error message from a failed response, or its HTTP message."""
        body = info.get("body") or b""
        try:
            return json.loads(to_text(body))["error"]
        except (ValueError, KeyError, TypeError):
            return to_text(body).strip() or info.get("msg", "")

    def read_json(self, response, what):
        try:
            return json.loads(to_text(response.read()))
        except socket.timeout:
            raise OllamaError("Timed out after %d s reading %s from Ollama at %s; raise timeout."
                              % (self.timeout, what, self.base_url))
        except ValueError as error:
            raise OllamaError("Invalid JSON in %s from Ollama at %s: %s" % (what, self.base_url, error))

    def show(self, name):
        """Return whether the server has the model."""
        status, response, info = self.request("POST", "/api/show", {"model": name})
        if status == 200:
            response.read()
            return True
        if status == 404:
            return False
        raise OllamaError("Failed to look up model %s on Ollama at %s: HTTP %s: %s"
                          % (name, self.base_url, status, self.error_text(info)))

    def find_in_tags(self, name):
        """Return the /api/tags entry of the model, or None when it is not listed."""
        status, response, info = self.request("GET", "/api/tags")
        if status != 200:
            raise OllamaError("Failed to list models on Ollama at %s: HTTP %s: %s"
                              % (self.base_url, status, self.error_text(info)))
        for entry in self.read_json(response, "the model list").get("models") or []:
            if normalize_model_name(entry.get("name", "")) == name:
                return entry
        return None

    def pull(self, name):
        """Pull the model, checking every progress line; return the last status."""
        status, response, info = self.request("POST", "/api/pull", {"model": name, "stream": True})
        if status != 200:
            raise OllamaError("Failed to pull model %s on Ollama at %s: HTTP %s: %s"
                              % (name, self.base_url, status, self.error_text(info)))

        last_status = None
        try:
            for raw_line in response:
                line = to_text(raw_line).strip()
                if not line:
                    continue
                try:
                    progress = json.loads(line)
                except ValueError:
                    raise OllamaError("Invalid JSON line while pulling model %s from Ollama at %s: %r"
                                      % (name, self.base_url, line[:200]))
                # Ollama sends a failure after progress as an error line under status 200.
                if progress.get("error"):
                    raise OllamaError("Failed to pull model %s on Ollama at %s: %s"
                                      % (name, self.base_url, progress["error"]))
                last_status = progress.get("status", last_status)
        except socket.timeout:
            raise OllamaError(
                "Timed out pulling model %s on Ollama at %s: no progress for %d s (last status: %s)."
                " Raise timeout for a slow download." % (name, self.base_url, self.timeout, last_status)
            )

        if last_status != "success":
            raise OllamaError(
                "Pull of model %s on Ollama at %s ended without a success status (last status: %s)."
                " Check the Ollama log for the cause." % (name, self.base_url, last_status)
            )
        return last_status

    def delete(self, name):
        """Delete the model; return False when the server no longer had it."""
        status, response, info = self.request("DELETE", "/api/delete", {"model": name})
        if status == 200:
            response.read()
            return True
        if status == 404:
            return False
        raise OllamaError("Failed to delete model %s on Ollama at %s: HTTP %s: %s"
                          % (name, self.base_url, status, self.error_text(info)))


def validate_params(module):
    name = module.params["name"].strip()
    if not MODEL_NAME_PATTERN.match(name):
        module.fail_json(
            msg="Invalid model name %r: use the form [namespace/]model[:tag] with letters, digits,"
                " '.', '_' and '-', for example llama3.2 or qwen2.5:0.5b." % module.params["name"]
        )

    parsed = urlparse(module.params["host"])
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        module.fail_json(
            msg="Invalid host %r: give the base URL of the Ollama server, for example"
                " http://127.0.0.1:11434." % module.params["host"]
        )

    if module.params["timeout"] <= 0:
        module.fail_json(msg="Invalid timeout %d: give a positive number of seconds." % module.params["timeout"])
    return normalize_model_name(name)


def run_module(module, name):
    client = OllamaClient(module, module.params["host"], module.params["timeout"])
    requested_state = module.params["state"]

    present = client.show(name)
    before = {"name": name, "state": "present" if present else "absent"}
    after = {"name": name, "state": requested_state}
    result = {"changed": present != (requested_state == "present"), "name": name}
    if module._diff:
        result["diff"] = {"before": before, "after": after}

    if requested_state == "absent":
        if present and not module.check_mode:
            result["changed"] = client.delete(name)
        return result

    if not present:
        if module.check_mode:
            # The digest and size of a model are known only after it was pulled.
            result.update(digest=None, size=None)
            return result
        client.pull(name)

    entry = client.find_in_tags(name)
    if entry is None:
        raise OllamaError("Model %s is missing from GET /api/tags on Ollama at %s although the"
                          " server reported it present. Check the Ollama log." % (name, client.base_url))
    result["digest"] = entry.get("digest")
    result["size"] = entry.get("size")
    return result


def main():
    module = AnsibleModule(
        argument_spec=dict(
            name=dict(type="str", required=True, aliases=["model"]),
            state=dict(type="str", choices=["present", "absent"], default="present"),
            host=dict(type="str", default="http://127.0.0.1:11434"),
            timeout=dict(type="int", default=300),
            validate_certs=dict(type="bool", default=True),
        ),
        supports_check_mode=True,
    )
    name = validate_params(module)
    try:
        result = run_module(module, name)
    except OllamaError as error:
        module.fail_json(msg=str(error), name=name)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
