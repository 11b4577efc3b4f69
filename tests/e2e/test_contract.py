"""The resource API's OpenAPI document is the contract between the client app and the API.

* Every request the client app made during the end-to-end run (this module runs last; see
  conftest.py) is an operation of the document, with a body and headers valid against its
  schema (every creating POST carries the form's Idempotency-Key), and every real answer of
  the API is one the document describes.
* Every error the document lists for the operations the client app uses is handled: the proxy
  answers it in the API's place, and the page says something useful, never a 500.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pytest

from tests.e2e.browser import Browser
from tests.e2e.contract import (
    documented_error,
    operation_for,
    operations,
    request_problems,
    response_problems,
)
from tests.e2e.harness import Harness
from tests.e2e.pages import Element, Page
from tests.e2e.proxy import Exchange, Fault

SIGN_IN_AGAIN = "The API did not accept your access token. Please sign in again."
UNAVAILABLE = "The API is temporarily unavailable. Please try again in a moment."
UNEXPECTED = "The API answered unexpectedly."
UNREACHABLE = "The API cannot be reached right now."
STILL_PROCESSING = "This form is still being processed."
FORM_REUSED = "This form was already submitted with other values."


@dataclass(frozen=True)
class Trigger:
    """How a person makes the client app call an operation, and where the page answers."""

    path: str
    """The API path the client app calls (bob's organization is acme)."""
    act: Callable[[Browser], Page]
    where: Callable[[Page], Element]
    """The part of the page that reports on this call."""


def _order(browser: Browser) -> Page:
    return browser.submit(browser.get("/shopping"), "/shopping/orders", sku="C-1", quantity="1")


def _product(browser: Browser) -> Page:
    return browser.submit(browser.get("/store"), "/store/products", name="Contract", price="1")


CLIENT_OPERATIONS = {
    "listOrders": Trigger(
        "/shopping/orders", lambda b: b.get("/shopping"), lambda p: p.section("Your orders")
    ),
    "createOrder": Trigger("/shopping/orders", _order, lambda p: p.root),
    "listProducts": Trigger(
        "/store/products", lambda b: b.get("/store"), lambda p: p.section("Catalog")
    ),
    "createProduct": Trigger("/store/products", _product, lambda p: p.root),
    "listOrganizationMembers": Trigger(
        "/organizations/acme/members",
        lambda b: b.get("/organizations"),
        lambda p: p.section("acme").section("Organization token"),
    ),
    "listOrganizationProducts": Trigger(
        "/organizations/acme/store/products",
        lambda b: b.get("/organizations"),
        lambda p: p.section("acme").section("Organization-level store token"),
    ),
}
"""Every operation the client app uses, and the page that uses it."""

DOCUMENTED_ERRORS = [
    (operation_id, status)
    for operation_id in CLIENT_OPERATIONS
    for status in (
        (400, 401, 403, 409, 413, 422, 503)
        if operation_id.startswith("create")
        else (400, 401, 403, 503)
    )
]
"""Each (operation, status) the document lists; ``test_the_table_is_the_document`` keeps
this table equal to the document."""


def expected_message(status: int, scopes: list[str]) -> str:
    """What the page must say for each documented error (400/413: the API's description;
    409/422: the form's Idempotency-Key, in the app's words)."""
    return {
        400: "A short explanation.",
        401: SIGN_IN_AGAIN,
        403: f"Your access token lacks the permission {' '.join(scopes)} needed for this.",
        409: STILL_PROCESSING,
        413: "A short explanation.",
        422: FORM_REUSED,
        503: UNAVAILABLE,
    }[status]


def assert_friendly(page: Page, where: Element, message: str) -> None:
    """A page of the app (layout, the user still signed in) with ``message``, not a crash."""
    assert page.status != 500, page.text
    assert "Traceback" not in page.text
    assert "Bob Example" in page.text  # the layout, and bob is still signed in
    assert message in where.text(), where.text()


def test_the_table_is_the_document(harness: Harness) -> None:
    """DOCUMENTED_ERRORS lists exactly the error statuses of the operations the client uses."""
    by_id = {operation.operation_id: operation for operation in operations(harness.openapi)}
    documented = {
        (operation_id, status)
        for operation_id in CLIENT_OPERATIONS
        for status in by_id[operation_id].error_statuses()
    }
    assert set(DOCUMENTED_ERRORS) == documented
    for operation_id, trigger in CLIENT_OPERATIONS.items():
        method = by_id[operation_id].method
        assert operation_for(harness.openapi, method, trigger.path) == by_id[operation_id]


@pytest.mark.usefixtures("proxy_faults")
@pytest.mark.parametrize(
    ("operation_id", "status"), DOCUMENTED_ERRORS, ids=[f"{o}-{s}" for o, s in DOCUMENTED_ERRORS]
)
def test_every_documented_error_is_shown_as_a_friendly_page(
    harness: Harness, bob: Browser, operation_id: str, status: int
) -> None:
    """The API answers the documented error (twice for 401: the client app retries once with a
    new token); the page explains it and bob stays signed in."""
    operation = next(o for o in operations(harness.openapi) if o.operation_id == operation_id)
    trigger = CLIENT_OPERATIONS[operation_id]
    fault = documented_error(harness.openapi, operation, trigger.path, status)
    fault.times = 2 if status == 401 else 1
    harness.proxy.inject(fault)

    page = trigger.act(bob)

    assert harness.proxy.clear_faults() == []  # the page did make the call
    assert_friendly(page, trigger.where(page), expected_message(status, operation.scopes()))


@pytest.mark.usefixtures("proxy_faults")
@pytest.mark.parametrize(
    ("operation_id", "fault", "message"),
    [
        pytest.param(
            "listOrders",
            Fault("GET", "/shopping/orders", 500, {"content-type": "text/plain"}, b"boom"),
            UNEXPECTED,
            id="500-text",
        ),
        pytest.param(
            "listProducts",
            Fault("GET", "/store/products", 200, {"content-type": "text/html"}, b"<html>"),
            UNEXPECTED,
            id="200-not-json",
        ),
        pytest.param(
            "createOrder",
            Fault("POST", "/shopping/orders", 201, {"content-type": "application/json"}, b"{}"),
            UNEXPECTED,
            id="201-wrong-shape",
        ),
        pytest.param(
            "listOrganizationMembers",
            Fault("GET", "/organizations/acme/members", None),
            UNREACHABLE,
            id="connection-dropped",
        ),
    ],
)
def test_undocumented_answers_are_shown_as_a_friendly_page(
    harness: Harness, bob: Browser, operation_id: str, fault: Fault, message: str
) -> None:
    """Answers outside the contract (server error, wrong body, no answer) end on a page that
    says the API misbehaved."""
    trigger = CLIENT_OPERATIONS[operation_id]
    harness.proxy.inject(fault)

    page = trigger.act(bob)

    assert harness.proxy.clear_faults() == []
    assert_friendly(page, trigger.where(page), message)


def test_one_refused_token_is_replaced_without_the_user_noticing(
    harness: Harness, bob: Browser
) -> None:
    """A single 401 (the token was revoked, or the API's clock is ahead): the client app gets a
    new token and calls again; the page shows the orders."""
    operation = next(o for o in operations(harness.openapi) if o.operation_id == "listOrders")
    harness.proxy.inject(documented_error(harness.openapi, operation, "/shopping/orders", 401))
    since = len(harness.exchanges)

    page = bob.get("/shopping")

    assert page.alerts("error") == []
    calls = [e for e in harness.exchanges[since:] if e.path == "/shopping/orders"]
    assert [call.status for call in calls] == [401, 200]
    tokens = [call.request_headers["authorization"] for call in calls]
    assert tokens[0] != tokens[1]


def test_every_request_of_the_client_app_is_in_the_contract(
    harness: Harness, bob: Browser, exchanges: list[Exchange]
) -> None:
    """Every recorded request (all scenarios of the run, and a tour of every page here) is an
    operation of the document with a valid body; every real answer is documented."""
    for act in {trigger.act for trigger in CLIENT_OPERATIONS.values()}:
        assert act(bob).alerts("error") == []

    used = [operation_for(harness.openapi, e.method, e.path) for e in exchanges]
    problems = [problem for e in exchanges for problem in request_problems(harness.openapi, e)]
    problems += [
        problem
        for e in exchanges
        if not e.injected
        for problem in response_problems(harness.openapi, e)
    ]

    assert problems == []
    assert {operation.operation_id for operation in used if operation} == set(CLIENT_OPERATIONS)
    creations = [e for e in exchanges if e.method == "POST"]
    assert creations
    assert all("idempotency-key" in e.request_headers for e in creations)


def _call(method: str, target: str, body: bytes = b"", **headers: str) -> Exchange:
    path, _, query = target.partition("?")
    return Exchange(
        method=method,
        path=path,
        query=query,
        request_headers={
            "authorization": "Bearer x",
            "content-type": "application/json",
            **headers,
        },
        request_body=body,
        status=None,
        response_headers={},
        response_body=b"",
        injected=True,
    )


@pytest.mark.parametrize(
    ("exchange", "problem"),
    [
        pytest.param(_call("DELETE", "/shopping/orders"), "no operation", id="method"),
        pytest.param(_call("GET", "/shopping/carts"), "no operation", id="path"),
        pytest.param(_call("GET", "/shopping/orders/abc"), "not of type 'integer'", id="int-param"),
        pytest.param(
            _call("GET", "/shopping/orders?page=2"), "'page' is not documented", id="query"
        ),
        pytest.param(
            _call("GET", "/store/products", authorization=""), "no Authorization", id="no-token"
        ),
        pytest.param(
            _call("POST", "/shopping/orders", b'{"items": [{"sku": "a", "quantity": 0}]}'),
            "items/0/quantity",
            id="quantity-0",
        ),
        pytest.param(
            _call("POST", "/store/products", b'{"name": "a", "price_cents": 1, "x": 1}'),
            "Additional properties",
            id="unknown-field",
        ),
        pytest.param(_call("POST", "/store/products"), "required body", id="no-body"),
        pytest.param(
            _call(
                "POST",
                "/shopping/orders",
                b'{"items": [{"sku": "a", "quantity": 1}]}',
                **{"idempotency-key": f'"{"k" * 256}"'},
            ),
            "header Idempotency-Key",
            id="idempotency-key-too-long",
        ),
        pytest.param(
            _call(
                "POST",
                "/store/products",
                b'{"name": "a", "price_cents": 1}',
                **{"idempotency-key": "one, two"},
            ),
            "does not match",
            id="idempotency-key-twice",
        ),
        pytest.param(
            _call("POST", "/store/products", b"name=a", **{"content-type": "text/plain"}),
            "body sent as 'text/plain'",
            id="media-type",
        ),
    ],
)
def test_the_checker_refuses_what_the_document_forbids(
    harness: Harness, exchange: Exchange, problem: str
) -> None:
    """The request check is not vacuous: each breach of the document is reported."""
    assert problem in " ".join(request_problems(harness.openapi, exchange))


def test_the_client_app_logged_no_server_error(harness: Harness) -> None:
    """Over the whole run, nothing reached the client app's 500 handler."""
    log = harness.stack.client.log_path.read_text(encoding="utf-8")
    assert '"server_error"' not in log
    assert "Traceback" not in log
