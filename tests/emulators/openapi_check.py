"""Validation of Cloudflare API requests and responses against Cloudflare's OpenAPI schema.

The schema is the subset of Cloudflare's published OpenAPI 3.0.3 document
(github.com/cloudflare/api-schemas, commit cca3064f of 2024-08-06, BSD-3-Clause) that covers
the operations this collection calls. That document is older than the API that the
`cloudflare` SDK 5.9 speaks, so a few checks fail on traffic that the current API and SDK
produce. Each such case is listed once, with its reason, in DEVIATIONS below; nothing else
is exempted.

Request bodies are checked with the OpenAPI "write" rules (read-only properties may be
absent) and response bodies with the "read" rules. Query and path parameters are converted
from strings to the declared type before they are checked. Query parameters that the schema
does not declare are not reported, because OpenAPI does not forbid them.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import pathlib
import re
from typing import Any

from jsonschema.exceptions import ValidationError
from openapi_schema_validator import OAS30ReadValidator, OAS30Validator, OAS30WriteValidator, oas30_format_checker
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT4

SCHEMA_ENV = "CLOUDFLARE_OPENAPI_SCHEMA"
DEFAULT_SCHEMA_PATH = pathlib.Path(__file__).parent / "schemas" / "cloudflare-openapi-subset.json"
BASE_URI = "urn:cloudflare-openapi-subset"


@dataclasses.dataclass(frozen=True)
class Deviation:
    """A known mismatch between the 2024 schema and the current API, exempted from reports.

    A violation is exempted when `operation` (a regular expression, or ``*`` for any),
    `location` (for example ``body/result/config_src`` or ``query/page``), `message` and
    `status` (the response status; empty for requests) and `direction` (``request`` or
    ``response``), all regular expressions, fully match the violation's fields.
    """

    operation: str
    direction: str
    location: str
    message: str
    reason: str
    status: str = r".*"

    def matches(self, violation: Violation) -> bool:
        return (
            re.fullmatch(".*" if self.operation == "*" else self.operation, violation.operation) is not None
            and re.fullmatch(self.direction, violation.direction) is not None
            and re.fullmatch(self.location, violation.location) is not None
            and re.fullmatch(self.message, violation.message) is not None
            and re.fullmatch(self.status, violation.status) is not None
        )


# Every exemption from the schema check, in one place. Keep the list short: a new entry
# needs a source for the newer behaviour (SDK 5.9 types, Cloudflare's own clients, or a
# live response), and an entry whose reason no longer applies should be removed.
DEVIATIONS: tuple[Deviation, ...] = (
    Deviation(
        "*",
        "request",
        r"body",
        r"missing required JSON body",
        "The 2024 schema declares an empty JSON body on these DELETE operations, but the "
        "SDK 5.9 sends DELETE without a body, and Cloudflare accepts both.",
    ),
    Deviation(
        "cloudflare-tunnel-configuration-put-configuration",
        "request",
        r"body/config/ingress/\d+",
        r"'hostname' is a required property",
        "The schema marks hostname as required on every ingress rule, but cloudflared requires "
        "the last rule to be a catch-all without hostname or path.",
    ),
    Deviation(
        "cloudflare-tunnel-.*",
        "response",
        r"body/result(/\d+)?/(deleted_at|conns_active_at|conns_inactive_at)",
        r"None (for not nullable|is not of type 'string')",
        "These times are null until the event happens (a tunnel that was never deleted or "
        "connected); the 2024 schema omits nullable, the SDK 5.9 CloudflareTunnel types them "
        "Optional.",
    ),
    Deviation(
        "dns-records-for-a-zone-(create-dns-record|update-dns-record|patch-dns-record)",
        "request",
        r"body",
        r"'(id|proxiable|created_on|modified_on)' is a required property",
        "The 2024 schema reuses the record response model as the request body, so the "
        "server-assigned fields appear as required; the SDK 5.9 never sends them.",
    ),
    Deviation(
        "dns-records-for-a-zone-patch-dns-record",
        "request",
        r"body",
        r"'content' is a required property",
        "PATCH is a partial update: the SDK 5.9 records.edit() sends name, ttl and type but "
        "content only when given, while the 2024 schema requires content.",
    ),
    Deviation(
        "updateZoneEntrypointRuleset",
        "request",
        r"body",
        r"'(id|version|last_updated)' is a required property",
        "The schema lists the server-assigned id, version and last_updated as required in the "
        "PUT body; the SDK 5.9 rulesets.phases.update() sends only name, description and rules.",
    ),
    Deviation(
        "*",
        "response",
        r"body/(success|result)",
        r"False is not one of \[True\]|None (for not nullable|is not of type '(array|object)'|is valid under each of .*)",
        "For several operations the 2024 schema builds the 4XX response as allOf(success "
        "envelope, failure envelope), which no body satisfies. Failure bodies still have to "
        "match the failure envelope (success false, errors with code and message).",
        status=r"4\d\d",
    ),
    Deviation(
        "(getZoneEntrypointRuleset|updateZoneEntrypointRuleset)",
        "(request|response)",
        r"body(/result)?/rules/\d+/action",
        r"'(managed_challenge|js_challenge)' does not match '\^\[a-z\]\+\$'",
        "The schema's generic rule action pattern ^[a-z]+$ rejects managed_challenge and "
        "js_challenge, although the same schema defines rule variants with exactly these actions.",
    ),
    Deviation(
        "updateZoneEntrypointRuleset",
        "response",
        r"body/result",
        r"None (for not nullable|is not of type 'object')",
        "With ?dry_run=true (newer than the 2024 schema) the API validates without saving and "
        "returns result null, as the SDK 5.9 phases.update() documents.",
    ),
)


@dataclasses.dataclass(frozen=True)
class Violation:
    """One schema check failure: where it happened and the validator's message."""

    operation: str
    direction: str
    location: str
    message: str
    status: str = ""

    def __str__(self) -> str:
        status = f" {self.status}" if self.status else ""
        return f"{self.operation} {self.direction}{status} {self.location}: {self.message}"


@dataclasses.dataclass
class Operation:
    """One operation of the schema, with its path template compiled to a regular expression."""

    operation_id: str
    method: str
    template: str
    pattern: re.Pattern[str]
    pointer: str
    parameters: list[dict[str, Any]]
    definition: dict[str, Any]


def _escape_pointer(token: str) -> str:
    return token.replace("~", "~0").replace("/", "~1")


class OpenAPIChecker:
    """Checks requests and responses (paths relative to ``/client/v4``) against the schema."""

    def __init__(self, spec: dict[str, Any]) -> None:
        self.spec = spec
        resource = Resource(contents=spec, specification=DRAFT4)
        self.registry = Registry().with_resource(BASE_URI, resource)
        self._inlined: dict[str, Any] = {}
        self.operations = self._compile_operations()

    def _compile_operations(self) -> list[Operation]:
        operations = []
        for template, item in self.spec["paths"].items():
            shared_parameters = item.get("parameters", [])
            regex = "^" + re.sub(r"\\\{([^}]+)\\\}", r"(?P<\1>[^/]+)", re.escape(template)) + "$"
            for method, definition in item.items():
                if method == "parameters":
                    continue
                pointer = f"/paths/{_escape_pointer(template)}/{method}"
                parameters = [self._resolve(p) for p in shared_parameters + definition.get("parameters", [])]
                operations.append(
                    Operation(
                        operation_id=definition.get("operationId", f"{method.upper()} {template}"),
                        method=method.upper(),
                        template=template,
                        pattern=re.compile(regex),
                        pointer=pointer,
                        parameters=parameters,
                        definition=definition,
                    )
                )
        return operations

    def _resolve(self, node: Any) -> Any:
        """Follow `$ref`s of a non-schema object (parameter, requestBody, response)."""
        while isinstance(node, dict) and "$ref" in node:
            target: Any = self.spec
            for token in node["$ref"].lstrip("#/").split("/"):
                target = target[token.replace("~1", "/").replace("~0", "~")]
            node = target
        return node

    def find_operation(self, method: str, path: str) -> tuple[Operation, dict[str, str]] | None:
        for operation in self.operations:
            if operation.method != method:
                continue
            match = operation.pattern.match(path)
            if match:
                return operation, match.groupdict()
        return None

    @functools.lru_cache(maxsize=512)  # noqa: B019 (one checker lives for the whole process)
    def _validator(self, pointer: str, direction: str) -> Any:
        node: Any = self.spec
        for token in pointer.lstrip("/").split("/"):
            key = token.replace("~1", "/").replace("~0", "~")
            node = node[int(key)] if isinstance(node, list) else node[key]
        schema = self._inline_refs(node, ())
        # Parameters get the plain validator: their schemas are often the read-only id of
        # the resource, which the write rules would reject.
        cls = {"request": OAS30WriteValidator, "response": OAS30ReadValidator}.get(direction, OAS30Validator)
        return cls(schema, registry=self.registry, format_checker=oas30_format_checker)

    def _inline_refs(self, node: Any, active: tuple[str, ...]) -> Any:
        """Return `node` with local $refs replaced by their targets, once per process.

        Inlining avoids a registry lookup per $ref on every validation, which made the check
        several times slower. A $ref that would recurse into itself stays a reference,
        rewritten to the absolute URI of the schema document.
        """
        if isinstance(node, list):
            return [self._inline_refs(item, active) for item in node]
        if not isinstance(node, dict):
            return node
        reference = node.get("$ref")
        if isinstance(reference, str) and reference.startswith("#/"):
            if reference in active:
                return {"$ref": BASE_URI + reference}
            cached = self._inlined.get(reference)
            if cached is None:
                cached = self._inline_refs(self._resolve({"$ref": reference}), (*active, reference))
                self._inlined[reference] = cached
            return cached
        inlined = {key: self._inline_refs(value, active) if key != "example" else value for key, value in node.items()}
        discriminator = node.get("discriminator")
        if isinstance(discriminator, dict) and isinstance(discriminator.get("mapping"), dict):
            # Mapping targets are resolved by the validator, against the document's URI.
            mapping = {name: BASE_URI + target if target.startswith("#/") else target for name, target in discriminator["mapping"].items()}
            inlined["discriminator"] = {**discriminator, "mapping": mapping}
        return inlined

    def _validate(
        self, operation: Operation, direction: str, prefix: str, pointer: str, instance: Any, rules: str | None = None
    ) -> list[Violation]:
        validator = self._validator(pointer, rules or direction)
        violations = []
        for error in validator.iter_errors(instance):
            violations.extend(self._flatten(operation, direction, prefix, error))
        return violations

    def _flatten(self, operation: Operation, direction: str, prefix: str, error: ValidationError) -> list[Violation]:
        if not error.context:
            location = "/".join([prefix, *(str(part) for part in error.absolute_path)])
            return [Violation(operation.operation_id, direction, location, describe(error))]
        # A oneOf/anyOf failed: report the errors of the branch that came closest (fewest
        # errors), because that is the variant the instance was meant to be.
        branches: dict[Any, list[ValidationError]] = {}
        for sub_error in error.context:
            branches.setdefault(sub_error.relative_schema_path[0], []).append(sub_error)
        closest = min(branches.values(), key=len)
        violations = []
        for sub_error in closest:
            violations.extend(self._flatten(operation, direction, prefix, sub_error))
        return violations

    def check_request(
        self, method: str, path: str, query: dict[str, list[str]], body: Any, has_body: bool
    ) -> list[Violation]:
        """Return the violations of one request, or an empty list for paths outside the schema."""
        found = self.find_operation(method, path)
        if found is None:
            return []
        operation, path_values = found
        violations: list[Violation] = []

        for parameter in operation.parameters:
            location, name = parameter["in"], parameter["name"]
            if location == "path":
                raw = path_values.get(name)
            elif location == "query":
                values = query.get(name)
                raw = values[-1] if values else None
            else:
                continue
            if raw is None:
                if parameter.get("required"):
                    violations.append(Violation(operation.operation_id, "request", f"{location}/{name}", "missing required parameter"))
                continue
            index = operation.parameters.index(parameter)
            pointer = self._parameter_pointer(operation, parameter, index)
            value = self._coerce(raw, parameter.get("schema", {}))
            violations.extend(self._validate(operation, "request", f"{location}/{name}", pointer, value, rules="parameter"))

        request_body = self._resolve(operation.definition.get("requestBody"))
        if request_body:
            content = request_body.get("content", {}).get("application/json")
            if not has_body:
                if request_body.get("required"):
                    violations.append(Violation(operation.operation_id, "request", "body", "missing required JSON body"))
            elif content is not None:
                pointer = self._body_pointer(operation)
                violations.extend(self._validate(operation, "request", "body", pointer, body))
        return self._without_deviations(violations)

    def check_response(self, method: str, path: str, status: int, body: Any) -> list[Violation]:
        """Return the violations of one response, or an empty list for paths outside the schema."""
        found = self.find_operation(method, path)
        if found is None:
            return []
        operation, path_parameters = found
        responses = operation.definition.get("responses", {})
        key = None
        for candidate in (str(status), f"{str(status)[0]}XX", f"{str(status)[0]}xx", "default"):
            if candidate in responses:
                key = candidate
                break
        if key is None:
            violation = Violation(operation.operation_id, "response", "status", f"status {status} is not declared", str(status))
            return self._without_deviations([violation])
        response = responses[key]
        pointer = f"{operation.pointer}/responses/{key}"
        while "$ref" in response:
            pointer = response["$ref"].lstrip("#")
            response = self._resolve({"$ref": response["$ref"]})
        if "application/json" not in response.get("content", {}):
            return []
        pointer += "/content/application~1json/schema"
        violations = [
            dataclasses.replace(violation, status=str(status))
            for violation in self._validate(operation, "response", "body", pointer, body)
        ]
        return self._without_deviations(violations)

    def _parameter_pointer(self, operation: Operation, parameter: dict[str, Any], index: int) -> str:
        # Parameters are inline in the subset, so the position in the merged list maps back
        # to either the path item's list or the operation's list.
        shared = self.spec["paths"][operation.template].get("parameters", [])
        if index < len(shared):
            base = f"/paths/{_escape_pointer(operation.template)}/parameters/{index}"
        else:
            base = f"{operation.pointer}/parameters/{index - len(shared)}"
        return base + "/schema"

    def _body_pointer(self, operation: Operation) -> str:
        request_body = operation.definition["requestBody"]
        if "$ref" in request_body:
            return request_body["$ref"].lstrip("#") + "/content/application~1json/schema"
        return f"{operation.pointer}/requestBody/content/application~1json/schema"

    def _coerce(self, raw: str, schema: dict[str, Any]) -> Any:
        schema = self._resolve_schema_type(schema)
        kind = schema.get("type")
        try:
            if kind == "integer":
                return int(raw)
            if kind == "number":
                return float(raw)
        except ValueError:
            return raw
        if kind == "boolean":
            return {"true": True, "false": False}.get(raw, raw)
        return raw

    def _resolve_schema_type(self, schema: dict[str, Any]) -> dict[str, Any]:
        seen = 0
        while seen < 10:
            seen += 1
            if "$ref" in schema:
                schema = self._resolve(schema)
            elif "allOf" in schema and "type" not in schema:
                schema = schema["allOf"][0]
            else:
                break
        return schema

    @staticmethod
    def _without_deviations(violations: list[Violation]) -> list[Violation]:
        return [v for v in violations if not any(d.matches(v) for d in DEVIATIONS)]


def describe(error: ValidationError) -> str:
    """Return the validator message without quoting whole objects, which may hold secrets."""
    message = error.message
    if isinstance(error.instance, (dict, list)):
        message = message.replace(repr(error.instance), "<object>" if isinstance(error.instance, dict) else "<array>")
    if len(message) > 300:
        message = message[:300] + "..."
    return message


def schema_path() -> pathlib.Path:
    """Return the schema file: $CLOUDFLARE_OPENAPI_SCHEMA if set, else the copy next to this module."""
    return pathlib.Path(os.environ.get(SCHEMA_ENV) or DEFAULT_SCHEMA_PATH)


@functools.lru_cache(maxsize=1)
def load_checker() -> OpenAPIChecker:
    """Load the schema once per process and return a checker for it."""
    path = schema_path()
    try:
        spec = json.loads(path.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(
            f"Cloudflare OpenAPI schema not found at {path}: set {SCHEMA_ENV} to the subset file"
        ) from None
    return OpenAPIChecker(spec)
