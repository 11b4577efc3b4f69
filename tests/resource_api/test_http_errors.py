"""Errors that are not about tokens share the auth errors' JSON shape; an unexpected failure is
logged without credentials and answered with a generic 500."""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable

import httpx
import pytest
from litestar import Litestar, get
from litestar.exceptions import HTTPException, ValidationException
from litestar.testing import AsyncTestClient

from resource_api.app import create_app
from resource_api.http_errors import EXCEPTION_HANDLERS, safe_text
from resource_api.settings import Settings
from resource_api.storage import Order, SqliteStore
from service_kit.json_logging import JsonFormatter
from tests.resource_api.conftest import Client
from tests.resource_api.helpers import bearer
from tests.support import FakeClock, FakeIssuer

Auth = Callable[..., dict[str, str]]


@pytest.mark.parametrize(
    ("method", "path", "status", "body"),
    [
        pytest.param(
            "GET", "/nowhere", 404,
            {"error": "not_found", "error_description": "No such resource."},
            id="unknown-path",
        ),
        pytest.param(
            "GET", "/shopping/orders/abc", 404,
            {"error": "not_found", "error_description": "No such resource."},
            id="non-integer-order-id",
        ),
        pytest.param(
            "DELETE", "/shopping/orders", 405,
            {
                "error": "method_not_allowed",
                "error_description": "This method is not allowed on this resource.",
            },
            id="delete-orders",
        ),
        pytest.param(
            "PUT", "/store/products", 405,
            {
                "error": "method_not_allowed",
                "error_description": "This method is not allowed on this resource.",
            },
            id="put-products",
        ),
    ],
)  # fmt: skip
async def test_routing_errors_have_the_error_shape(
    client: Client, method: str, path: str, status: int, body: dict[str, str]
) -> None:
    """Unknown paths and methods answer {"error", "error_description"} like auth errors."""
    response = await client.request(method, path)
    assert (response.status_code, response.json()) == (status, body)


async def test_method_not_allowed_lists_the_allowed_methods(client: Client) -> None:
    """A 405 keeps the Allow header."""
    response = await client.delete("/shopping/orders")
    assert set(response.headers["Allow"].replace(" ", "").split(",")) == {"GET", "POST", "OPTIONS"}


class BrokenStore(SqliteStore):
    """An in-memory store whose order listing fails the way a broken disk would."""

    async def list_orders(self, owner: str) -> list[Order]:
        """Fail."""
        del owner
        raise sqlite3.OperationalError("disk I/O error")


async def test_an_unexpected_error_is_a_logged_generic_500(
    settings: Settings,
    http_client: httpx.AsyncClient,
    clock: FakeClock,
    issuer: FakeIssuer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A failing store gives 500 server_error; the log names method, path and exception but
    holds neither the token nor the query string."""
    token = issuer.sign(scope="shopping:read")
    store = BrokenStore(":memory:", clock=clock)
    app = create_app(settings, http_client=http_client, clock=clock, store=store)
    with caplog.at_level(logging.ERROR, logger="resource_api.errors"):
        async with AsyncTestClient(app) as client:
            response = await client.get(
                "/shopping/orders?trace=query-secret", headers=bearer(token)
            )
    assert (response.status_code, response.json()) == (
        500,
        {"error": "server_error", "error_description": "An unexpected error occurred."},
    )
    await store.close()
    [record] = [r for r in caplog.records if getattr(r, "event", None) == "server_error"]
    logged = JsonFormatter().format(record)
    assert (record.method, record.path, record.error_type) == (  # type: ignore[attr-defined]
        "GET",
        "/shopping/orders",
        "OperationalError",
    )
    assert "disk I/O error" in logged
    assert token not in logged
    assert token.split(".")[1] not in logged
    assert "query-secret" not in logged


@pytest.mark.parametrize(
    ("exception", "status", "body"),
    [
        pytest.param(
            ValidationException(extra=[{"message": "Expected `int`", "key": "x"}]), 400,
            {
                "error": "invalid_body",
                "error_description": "The request is invalid: Expected `int` at `x`.",
            },
            id="litestar-validation",
        ),
        pytest.param(
            ValidationException(), 400,
            {"error": "invalid_body", "error_description": "The request is invalid."},
            id="litestar-validation-without-detail",
        ),
        pytest.param(
            HTTPException(status_code=400, detail="raw <library> text"), 400,
            {"error": "invalid_request", "error_description": "The request is malformed."},
            id="other-400-detail-not-echoed",
        ),
        pytest.param(
            HTTPException(status_code=429, detail="slow down, user 42"), 429,
            {"error": "too_many_requests", "error_description": "Too Many Requests."},
            id="other-client-status",
        ),
        pytest.param(
            HTTPException(status_code=500, detail="pool exhausted"), 500,
            {"error": "server_error", "error_description": "An unexpected error occurred."},
            id="server-error-detail-not-echoed",
        ),
        pytest.param(
            HTTPException(status_code=503, detail="pool exhausted"), 503,
            {
                "error": "temporarily_unavailable",
                "error_description": "The service is temporarily unavailable; try again shortly.",
            },
            id="service-unavailable",
        ),
        pytest.param(
            RuntimeError("secret internals"), 500,
            {"error": "server_error", "error_description": "An unexpected error occurred."},
            id="any-other-exception",
        ),
    ],
)  # fmt: skip
async def test_exceptions_are_rendered_safely(
    exception: Exception, status: int, body: dict[str, str]
) -> None:
    """Litestar's exceptions get a stable code and our sentence, never their detail."""

    @get("/boom", sync_to_thread=False)
    def boom() -> None:
        raise exception

    app = Litestar([boom], exception_handlers=EXCEPTION_HANDLERS, logging_config=None)
    async with AsyncTestClient(app) as client:
        response = await client.get("/boom")
    assert (response.status_code, response.json()) == (status, body)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("plain", "plain", id="unchanged"),
        pytest.param("tab\there\nnewline", "tab?here?newline", id="control-characters"),
        pytest.param("caf\u00e9", "caf?", id="non-ascii"),
        pytest.param("x" * 201, "x" * 197 + "...", id="truncated"),
        pytest.param("x" * 200, "x" * 200, id="at-the-limit"),
    ],
)
def test_descriptions_are_printable_ascii_and_bounded(text: str, expected: str) -> None:
    """Descriptions are reduced to printable ASCII and 200 characters."""
    assert safe_text(text) == expected
