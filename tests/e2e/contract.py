"""The resource API's OpenAPI document as a contract: find the operation a recorded request
was for, check the request (and the API's real answer) against it, and build the error answers
it documents.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from jsonschema import Draft202012Validator

from tests.e2e.proxy import Exchange, Fault

METHODS = ("get", "put", "post", "delete", "patch", "head", "options")
_PARAMETER = re.compile(r"\{([^}/]+)\}")


@dataclass(frozen=True)
class Operation:
    """One operation of the document: method, path template and its description."""

    method: str
    template: str
    spec: Mapping[str, Any]

    @property
    def operation_id(self) -> str:
        return str(self.spec.get("operationId", f"{self.method} {self.template}"))

    def path_values(self, path: str) -> dict[str, str] | None:
        """The path parameters if ``path`` fits the template, else ``None``."""
        parts = _PARAMETER.split(self.template)  # literal, name, literal, name, ...
        pattern = "".join(
            f"(?P<{part}>[^/]+)" if index % 2 else re.escape(part)
            for index, part in enumerate(parts)
        )
        found = re.fullmatch(pattern, path)
        return found.groupdict() if found else None

    def error_statuses(self) -> list[int]:
        """The 4xx and 5xx statuses the operation documents."""
        return sorted(int(s) for s in self.spec.get("responses", {}) if int(s) >= 400)

    def scopes(self) -> list[str]:
        """The permissions its security requirement names."""
        return [
            scope
            for requirement in self.spec.get("security", [])
            for scopes in requirement.values()
            for scope in scopes
        ]


def operations(document: Mapping[str, Any]) -> list[Operation]:
    """Every operation of the document."""
    return [
        Operation(method.upper(), template, spec)
        for template, item in document["paths"].items()
        for method, spec in item.items()
        if method in METHODS
    ]


def operation_for(document: Mapping[str, Any], method: str, path: str) -> Operation | None:
    """The operation ``method path`` is a call of."""
    for operation in operations(document):
        if operation.method == method and operation.path_values(path) is not None:
            return operation
    return None


def schema_errors(
    document: Mapping[str, Any], schema: Mapping[str, Any], value: object
) -> list[str]:
    """Why ``value`` does not fit ``schema`` (whose ``$ref`` point into the document)."""
    validator = Draft202012Validator({**schema, "components": document.get("components", {})})
    return [
        f"{'/'.join(map(str, error.absolute_path)) or '(root)'}: {error.message}"
        for error in validator.iter_errors(value)
    ]


def request_problems(document: Mapping[str, Any], exchange: Exchange) -> list[str]:
    """Why a recorded request is not a call the document allows."""
    operation = operation_for(document, exchange.method, exchange.path)
    if operation is None:
        return [f"{exchange.method} {exchange.path} is no operation of the document"]
    problems = []
    parameters = operation.spec.get("parameters", [])
    path_values = operation.path_values(exchange.path) or {}
    for parameter in parameters:
        if parameter["in"] == "path":
            value = _typed(path_values.get(parameter["name"], ""), parameter.get("schema", {}))
            problems += schema_errors(document, parameter.get("schema", {}), value)
    for parameter in parameters:
        if parameter["in"] != "header":
            continue
        value = exchange.request_headers.get(parameter["name"].lower())
        if value is None:
            if parameter.get("required"):
                problems.append(f"header {parameter['name']} is missing")
            continue
        problems += [
            f"header {parameter['name']}: {problem}"
            for problem in schema_errors(document, parameter.get("schema", {}), value)
        ]
    query_names = {p["name"] for p in parameters if p["in"] == "query"}
    for name in re.findall(r"(?:^|&)([^=&]+)", exchange.query):
        if name not in query_names:
            problems.append(f"query parameter {name!r} is not documented")
    if operation.spec.get("security") and not exchange.request_headers.get(
        "authorization", ""
    ).startswith("Bearer "):
        problems.append("no Authorization: Bearer header")
    problems += _body_problems(document, operation, exchange)
    return [f"{operation.operation_id}: {problem}" for problem in problems]


def _body_problems(
    document: Mapping[str, Any], operation: Operation, exchange: Exchange
) -> list[str]:
    body = operation.spec.get("requestBody")
    if body is None:
        return ["a body was sent to an operation that takes none"] if exchange.request_body else []
    if not exchange.request_body:
        return ["the required body is missing"] if body.get("required") else []
    media_type = exchange.request_headers.get("content-type", "").split(";")[0].strip()
    content = body.get("content", {})
    if media_type not in content:
        return [f"body sent as {media_type!r}, documented: {sorted(content)}"]
    try:
        value = json.loads(exchange.request_body)
    except ValueError:
        return ["the body is not JSON"]
    return schema_errors(document, content[media_type].get("schema", {}), value)


def response_problems(document: Mapping[str, Any], exchange: Exchange) -> list[str]:
    """Why the API's real answer is not one the document describes."""
    operation = operation_for(document, exchange.method, exchange.path)
    if operation is None or exchange.status is None:
        return []
    response = operation.spec.get("responses", {}).get(str(exchange.status))
    if response is None:
        return [f"{operation.operation_id}: status {exchange.status} is not documented"]
    content = response.get("content", {})
    if not content:
        return []
    media_type = exchange.response_headers.get("content-type", "").split(";")[0].strip()
    if media_type not in content:
        return [f"{operation.operation_id}: answered {media_type!r}, documented {sorted(content)}"]
    value = json.loads(exchange.response_body)
    return [
        f"{operation.operation_id} {exchange.status}: {p}"
        for p in schema_errors(document, content[media_type].get("schema", {}), value)
    ]


def documented_error(
    document: Mapping[str, Any], operation: Operation, path: str, status: int
) -> Fault:
    """The error answer ``operation`` documents for ``status``, as the API would send it: its
    example body, and the RFC 6750 / RFC 9110 headers that go with the status."""
    content = operation.spec["responses"][str(status)]["content"]["application/json"]
    example = next(iter(content.get("examples", {}).values()))["value"]
    headers = {"content-type": "application/json"}
    if status == 401:
        headers["www-authenticate"] = (
            f'Bearer error="{example["error"]}", error_description="{example["error_description"]}"'
        )
    elif status == 403:
        headers["www-authenticate"] = (
            f'Bearer error="insufficient_scope", scope="{" ".join(operation.scopes())}"'
        )
    elif status == 503:
        headers["retry-after"] = "5"
    return Fault(operation.method, path, status, headers, json.dumps(example).encode())


def _typed(raw: str, schema: Mapping[str, Any]) -> object:
    """A path value as the JSON type its schema names (path values are text on the wire)."""
    if schema.get("type") in ("integer", "number", "boolean"):
        try:
            return json.loads(raw)
        except ValueError:
            return raw
    return raw
