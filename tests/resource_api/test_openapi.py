"""The OpenAPI document is the contract clients test against: every route, its Bearer security
requirement with the scopes the guard enforces, its error responses with the error schema,
and request bodies as strict as the API is."""

from __future__ import annotations

import re
from typing import Any

import httpx
import msgspec
import pytest
from litestar import Litestar
from litestar.routes import HTTPRoute
from litestar_logto import Requirement
from litestar_logto.requirements import OPT_KEY

from resource_api.app import create_app
from resource_api.settings import Settings
from tests.resource_api.conftest import Client
from tests.support import FakeClock

ERROR_REF = {"$ref": "#/components/schemas/ErrorBody"}
PROTECTED_ERRORS = {"400", "401", "403", "503"}
IDEMPOTENT_ERRORS = {"409", "422"}

OPERATIONS = [
    pytest.param(
        "/shopping/orders", "get", "listOrders", ["shopping:read"], PROTECTED_ERRORS,
        id="list-orders",
    ),
    pytest.param(
        "/shopping/orders/{order_id}", "get", "getOrder", ["shopping:read"],
        PROTECTED_ERRORS | {"404"}, id="get-order",
    ),
    pytest.param(
        "/shopping/orders", "post", "createOrder", ["shopping:write"],
        PROTECTED_ERRORS | {"413"} | IDEMPOTENT_ERRORS, id="create-order",
    ),
    pytest.param(
        "/store/products", "get", "listProducts", ["store:read"], PROTECTED_ERRORS,
        id="list-products",
    ),
    pytest.param(
        "/store/products", "post", "createProduct", ["store:write"],
        PROTECTED_ERRORS | {"413"} | IDEMPOTENT_ERRORS, id="create-product",
    ),
    pytest.param(
        "/organizations/{org_id}/members", "get", "listOrganizationMembers", ["read:members"],
        PROTECTED_ERRORS, id="org-members",
    ),
    pytest.param(
        "/organizations/{org_id}/store/products", "get", "listOrganizationProducts",
        ["store:read"], PROTECTED_ERRORS, id="org-products",
    ),
]  # fmt: skip


@pytest.fixture
async def document(client: Client) -> dict[str, Any]:
    """The document as a client fetches it: GET /schema/openapi.json without a token."""
    response = await client.get("/schema/openapi.json")
    assert response.status_code == 200
    document: dict[str, Any] = response.json()
    return document


def test_the_document_describes_the_api(document: dict[str, Any]) -> None:
    """Title, version and OpenAPI 3.1 are set."""
    assert (document["openapi"], document["info"]["title"], document["info"]["version"]) == (
        "3.1.0",
        "Logto-protected resource API",
        "0.1.0",
    )


def test_a_bearer_jwt_security_scheme_is_declared(document: dict[str, Any]) -> None:
    """components.securitySchemes holds the HTTP Bearer (JWT) scheme the operations use."""
    scheme = document["components"]["securitySchemes"]["BearerAuth"]
    assert (scheme["type"], scheme["scheme"], scheme["bearerFormat"]) == ("http", "bearer", "JWT")


def test_every_route_is_documented_once(document: dict[str, Any]) -> None:
    """The document lists exactly the API's operations (not the RFC 9728 or schema routes)."""
    documented = {(path, method) for path, item in document["paths"].items() for method in item}
    assert documented == {("/health", "get")} | {
        (param.values[0], param.values[1]) for param in OPERATIONS
    }


@pytest.mark.parametrize(("path", "method", "operation_id", "scopes", "errors"), OPERATIONS)
def test_a_protected_operation_documents_its_security_and_errors(
    document: dict[str, Any],
    *,
    path: str,
    method: str,
    operation_id: str,
    scopes: list[str],
    errors: set[str],
) -> None:
    """Each protected operation states its scopes, its success status, and every error status
    with ErrorBody."""
    operation = document["paths"][path][method]
    schemas = {
        status: response["content"]["application/json"]["schema"]
        for status, response in operation["responses"].items()
    }
    success = {"post": "201"}.get(method, "200")
    error_schemas = {status: schema for status, schema in schemas.items() if status != success}
    assert operation["operationId"] == operation_id
    assert success in schemas
    assert operation["security"] == [{"BearerAuth": scopes}]
    assert error_schemas == dict.fromkeys(errors, ERROR_REF)


@pytest.mark.parametrize("path", ["/shopping/orders", "/store/products"])
def test_creating_operations_document_the_idempotency_key(
    document: dict[str, Any], path: str
) -> None:
    """The optional Idempotency-Key header, with its grammar and length, the replay marker on
    the 201, and the 409/422 it can cause; no other operation takes the header."""
    operation = document["paths"][path]["post"]
    [parameter] = operation["parameters"]
    assert (parameter["name"], parameter["in"], parameter["required"]) == (
        "Idempotency-Key",
        "header",
        False,
    )
    schema = parameter["schema"]
    assert (schema["minLength"], schema["maxLength"]) == (1, 257)
    assert re.fullmatch(schema["pattern"].strip("^$"), '"8e03978e-40d5-43e8-bc93-6894a57f9324"')
    assert re.fullmatch(schema["pattern"].strip("^$"), "bare-key")
    assert not re.fullmatch(schema["pattern"].strip("^$"), "two, keys")
    assert not re.fullmatch(schema["pattern"].strip("^$"), f'"{"k" * 256}"')
    assert "24 hours" in parameter["description"]
    assert "Idempotent-Replayed" in operation["responses"]["201"]["headers"]
    assert "idempotency_key_in_use" in operation["responses"]["409"]["description"]
    assert "idempotency_key_reused" in operation["responses"]["422"]["description"]
    others = [
        (other_path, method)
        for other_path, item in document["paths"].items()
        for method, other in item.items()
        if any(p["name"] == "Idempotency-Key" for p in other.get("parameters", []))
    ]
    assert sorted(others) == [("/shopping/orders", "post"), ("/store/products", "post")]


def test_the_documented_scopes_are_the_enforced_ones(
    app: Litestar, document: dict[str, Any]
) -> None:
    """For every route the guard protects, the document's scopes equal the declaration's."""
    enforced = {
        (route.path_format, method.lower()): list(handler.opt[OPT_KEY].scopes)
        for route in app.routes
        if isinstance(route, HTTPRoute)
        for handler in route.route_handlers
        if isinstance(handler.opt.get(OPT_KEY), Requirement)
        for method in handler.http_methods
    }
    documented = {
        (path, method): operation["security"][0]["BearerAuth"]
        for path, item in document["paths"].items()
        for method, operation in item.items()
        if "security" in operation
    }
    assert documented == enforced


def test_health_is_public_and_documented(document: dict[str, Any]) -> None:
    """/health carries no security requirement and answers the Health schema."""
    operation = document["paths"]["/health"]["get"]
    assert "security" not in operation
    assert set(operation["responses"]) == {"200"}
    assert document["components"]["schemas"]["Health"]["required"] == ["keys_loaded", "status"]


def test_the_error_body_schema_matches_the_errors(document: dict[str, Any]) -> None:
    """ErrorBody is {error, error_description}, both required strings."""
    schema = document["components"]["schemas"]["ErrorBody"]
    assert schema["required"] == ["error", "error_description"]
    assert schema["properties"] == {
        "error": {"type": "string"},
        "error_description": {"type": "string"},
    }


@pytest.mark.parametrize(
    ("name", "properties"),
    [
        pytest.param(
            "NewOrder",
            {
                "items": {
                    "items": {"$ref": "#/components/schemas/OrderItem"},
                    "type": "array",
                    "maxItems": 50,
                    "minItems": 1,
                },
                "note": {"oneOf": [{"type": "string"}, {"type": "null"}], "maxLength": 500},
            },
            id="new-order",
        ),
        pytest.param(
            "OrderItem",
            {
                "sku": {
                    "type": "string",
                    "maxLength": 64,
                    "minLength": 1,
                    "description": "Stock keeping unit.",
                },
                "quantity": {"type": "integer", "maximum": 1000, "minimum": 1},
            },
            id="order-item",
        ),
        pytest.param(
            "NewProduct",
            {
                "name": {"type": "string", "maxLength": 100, "minLength": 1},
                "price_cents": {"type": "integer", "maximum": 1_000_000_000, "minimum": 0},
            },
            id="new-product",
        ),
    ],
)
def test_request_bodies_are_closed_and_constrained(
    document: dict[str, Any], name: str, properties: dict[str, Any]
) -> None:
    """Body schemas carry the length and range limits and refuse unknown properties."""
    schema = document["components"]["schemas"][name]
    assert schema["properties"] == properties
    assert schema["additionalProperties"] is False


@pytest.mark.parametrize(
    ("path", "method", "schema"),
    [
        pytest.param("/shopping/orders", "post", "NewOrder", id="create-order"),
        pytest.param("/store/products", "post", "NewProduct", id="create-product"),
    ],
)
def test_write_operations_require_a_json_body(
    document: dict[str, Any], path: str, method: str, schema: str
) -> None:
    """POST operations take a required application/json body of their schema."""
    body = document["paths"][path][method]["requestBody"]
    assert body == {
        "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema}"}}},
        "required": True,
    }


@pytest.mark.parametrize(
    ("public_url", "server"),
    [
        pytest.param(None, "/", id="relative-by-default"),
        pytest.param("https://api.example/v1", "https://api.example/v1", id="configured"),
    ],
)
def test_the_server_is_the_configured_public_url(
    settings: Settings,
    http_client: httpx.AsyncClient,
    clock: FakeClock,
    public_url: str | None,
    server: str,
) -> None:
    """servers[0].url is RESOURCE_API_URL when set, so generated clients call the right base."""
    configured = msgspec.structs.replace(settings, resource_api_url=public_url)
    app = create_app(configured, http_client=http_client, clock=clock)
    assert app.openapi_schema.to_schema()["servers"] == [{"url": server}]
