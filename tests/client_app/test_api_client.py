"""The API client: typed results, one error per kind of answer, one refresh-and-retry on 401.

The resource API is served by respx (its real answers are exercised in
``test_with_dev_issuer.py``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import httpx
import pytest
import respx

from client_app.api_client import (
    ApiBadAnswer,
    ApiError,
    ApiForbidden,
    ApiFormReused,
    ApiRejected,
    ApiStillProcessing,
    ApiUnauthorized,
    ApiUnavailable,
    OrderItem,
    ResourceApiClient,
    call_with_token,
)
from client_app.gateway import LogtoGateway, TokenTarget
from tests.client_app.conftest import API_URL, sign_in
from tests.client_app.fake_logto import SHOPPING, FakeLogto

ORDER = {
    "id": 7,
    "items": [{"sku": "tea", "quantity": 2}],
    "note": None,
    "created_at": "2026-01-01T00:00:00Z",
}
PRODUCT = {
    "id": 1,
    "name": "Tea",
    "price_cents": 450,
    "organization_id": None,
    "created_at": "2026-01-01T00:00:00Z",
}
FORBIDDEN = httpx.Response(
    403,
    json={"error": "insufficient_scope", "error_description": "The token lacks a permission."},
    headers={
        "WWW-Authenticate": 'Bearer error="insufficient_scope", error_description="The token '
        'lacks a permission.", scope="shopping:write", resource_metadata="https://api.test/.w"'
    },
)


@pytest.fixture
def api(http_client: httpx.AsyncClient) -> ResourceApiClient:
    """The client, pointed at the respx-served API."""
    return ResourceApiClient(API_URL, http_client=http_client, timeout=1.0)


async def test_results_are_typed(respx_router: respx.MockRouter, api: ResourceApiClient) -> None:
    """Each route's wrapped list (or object) is decoded into its type."""
    respx_router.get(f"{API_URL}/shopping/orders").respond(200, json={"orders": [ORDER]})
    respx_router.post(f"{API_URL}/shopping/orders").respond(201, json=ORDER)
    respx_router.get(f"{API_URL}/store/products").respond(200, json={"products": [PRODUCT]})
    respx_router.post(f"{API_URL}/store/products").respond(201, json=PRODUCT)
    respx_router.get(f"{API_URL}/organizations/a%2Fb/members").respond(
        200,
        json={
            "organization_id": "a/b",
            "members": [{"user_id": "u", "first_seen": "2026-01-01T00:00:00Z"}],
        },
    )
    respx_router.get(f"{API_URL}/organizations/acme/store/products").respond(
        200, json={"products": [{**PRODUCT, "organization_id": "acme"}]}
    )

    assert (await api.list_orders("t"))[0].items == [OrderItem("tea", 2)]
    assert (await api.create_order("t", [OrderItem("tea", 2)], None)).id == 7
    assert (await api.list_products("t"))[0].price_cents == 450
    assert (await api.create_product("t", "Tea", 450)).name == "Tea"
    assert (await api.organization_members("t", "a/b"))[0].user_id == "u"
    assert (await api.organization_products("t", "acme"))[0].organization_id == "acme"


async def test_the_token_and_body_are_sent(
    respx_router: respx.MockRouter, api: ResourceApiClient
) -> None:
    """The bearer token goes in Authorization, the order as the documented JSON body."""
    route = respx_router.post(f"{API_URL}/shopping/orders").respond(201, json=ORDER)
    await api.create_order("the-token", [OrderItem("tea", 2)], "soon")
    request = route.calls.last.request
    assert request.headers["authorization"] == "Bearer the-token"
    assert request.content == b'{"items":[{"sku":"tea","quantity":2}],"note":"soon"}'


async def test_the_form_key_is_sent_as_an_idempotency_key(
    respx_router: respx.MockRouter, api: ResourceApiClient
) -> None:
    """A form's key goes out as the draft's quoted Idempotency-Key on both creating POSTs;
    without one, no header."""
    orders = respx_router.post(f"{API_URL}/shopping/orders").respond(201, json=ORDER)
    products = respx_router.post(f"{API_URL}/store/products").respond(201, json=PRODUCT)
    await api.create_order("t", [OrderItem("tea", 2)], None, idempotency_key="k" * 43)
    await api.create_product("t", "Tea", 450, idempotency_key="p" * 43)
    await api.create_order("t", [OrderItem("tea", 2)], None)
    first, unkeyed = (call.request for call in orders.calls)
    assert first.headers["idempotency-key"] == f'"{"k" * 43}"'
    assert products.calls.last.request.headers["idempotency-key"] == f'"{"p" * 43}"'
    assert "idempotency-key" not in unkeyed.headers


@pytest.mark.parametrize(
    ("status", "error", "expected", "message"),
    [
        pytest.param(
            409, "idempotency_key_in_use", ApiStillProcessing, "still being processed", id="409"
        ),
        pytest.param(422, "idempotency_key_reused", ApiFormReused, "already submitted", id="422"),
        pytest.param(409, "conflict", ApiRejected, "the API's own words", id="other-409"),
    ],
)
async def test_form_key_refusals_are_said_in_the_apps_words(
    respx_router: respx.MockRouter,
    api: ResourceApiClient,
    *,
    status: int,
    error: str,
    expected: type[ApiError],
    message: str,
) -> None:
    """409/422 about the Idempotency-Key become sentences about the form; another 409 keeps
    the API's description."""
    respx_router.post(f"{API_URL}/shopping/orders").respond(
        status, json={"error": error, "error_description": "In the API's own words."}
    )
    with pytest.raises(ApiRejected) as caught:
        await api.create_order("t", [OrderItem("tea", 1)], None, idempotency_key="k" * 43)
    assert type(caught.value) is expected
    assert message in caught.value.message


@pytest.mark.parametrize(
    ("answer", "expected", "message"),
    [
        pytest.param(FORBIDDEN, ApiForbidden, "lacks the permission shopping:write", id="403"),
        pytest.param(
            httpx.Response(403, json={"error": "insufficient_scope"}),
            ApiForbidden,
            "does not grant",
            id="403-without-challenge",
        ),
        pytest.param(httpx.Response(401, json={}), ApiUnauthorized, "sign in", id="401"),
        pytest.param(httpx.Response(503), ApiUnavailable, "temporarily", id="503"),
        pytest.param(
            httpx.Response(400, json={"error": "invalid_body", "error_description": "Bad sku."}),
            ApiRejected,
            "Bad sku",
            id="400",
        ),
        pytest.param(httpx.Response(404, text="nope"), ApiRejected, "404", id="404-text"),
        pytest.param(httpx.Response(413), ApiRejected, "413", id="413"),
        pytest.param(httpx.Response(500, text="trace"), ApiBadAnswer, "unexpectedly", id="500"),
        pytest.param(httpx.Response(302), ApiBadAnswer, "unexpectedly", id="redirect"),
        pytest.param(httpx.Response(200, text="<html>"), ApiBadAnswer, "unexpectedly", id="html"),
        pytest.param(
            httpx.Response(200, json={"orders": [{"id": "x"}]}),
            ApiBadAnswer,
            "unexpectedly",
            id="wrong-shape",
        ),
        pytest.param(httpx.ConnectError("refused"), ApiUnavailable, "reached", id="down"),
        pytest.param(httpx.ReadTimeout("slow"), ApiUnavailable, "in time", id="timeout"),
    ],
)
async def test_every_answer_becomes_a_typed_error(
    respx_router: respx.MockRouter,
    api: ResourceApiClient,
    answer: httpx.Response | Exception,
    expected: type[ApiError],
    message: str,
) -> None:
    """Statuses, bodies and transport failures each map to one error with our words."""
    respx_router.get(f"{API_URL}/shopping/orders").mock(side_effect=[answer])
    with pytest.raises(expected, match=message):
        await api.list_orders("t")


async def test_missing_scopes_are_kept(
    respx_router: respx.MockRouter, api: ResourceApiClient
) -> None:
    """The 403's missing scopes are available to the page."""
    respx_router.post(f"{API_URL}/shopping/orders").mock(return_value=FORBIDDEN)
    with pytest.raises(ApiForbidden) as caught:
        await api.create_order("t", [OrderItem("tea", 1)], None)
    assert caught.value.missing_scopes == ("shopping:write",)


async def test_a_slow_api_is_cut_off(
    respx_router: respx.MockRouter, http_client: httpx.AsyncClient
) -> None:
    """The timeout bounds the whole call."""

    async def hang(_: httpx.Request) -> httpx.Response:
        await asyncio.sleep(5)
        return httpx.Response(200)

    respx_router.get(f"{API_URL}/store/products").mock(side_effect=hang)
    api = ResourceApiClient(API_URL, http_client=http_client, timeout=0.05)
    with pytest.raises(ApiUnavailable, match="in time"):
        await api.list_products("t")


Call = Callable[[str], Awaitable[list[object]]]


async def test_a_refused_token_is_refreshed_and_the_call_retried_once(
    respx_router: respx.MockRouter,
    api: ResourceApiClient,
    gateway: LogtoGateway,
    logto: FakeLogto,
) -> None:
    """A 401 drops the cached token, a refresh gets a new one, the call succeeds."""
    session_id = await sign_in(gateway, logto, "alice")
    route = respx_router.get(f"{API_URL}/shopping/orders").mock(
        side_effect=[httpx.Response(401), httpx.Response(200, json={"orders": []})]
    )
    target = TokenTarget(SHOPPING)

    assert await call_with_token(gateway, session_id, target, api.list_orders) == []

    first, second = (call.request.headers["authorization"] for call in route.calls)
    assert first != second
    assert len(logto.refresh_grants(resource=SHOPPING)) == 2


async def test_a_second_refusal_is_reported(
    respx_router: respx.MockRouter,
    api: ResourceApiClient,
    gateway: LogtoGateway,
    logto: FakeLogto,
) -> None:
    """Two 401s in a row: no third attempt, the user is told."""
    session_id = await sign_in(gateway, logto, "alice")
    route = respx_router.get(f"{API_URL}/shopping/orders").respond(401)
    with pytest.raises(ApiUnauthorized):
        await call_with_token(gateway, session_id, TokenTarget(SHOPPING), api.list_orders)
    assert route.call_count == 2


async def test_only_the_refused_token_is_discarded(gateway: LogtoGateway, logto: FakeLogto) -> None:
    """A token refused by one request is not dropped if another request already replaced it."""
    session_id = await sign_in(gateway, logto, "alice")
    target = TokenTarget(SHOPPING)
    current = await gateway.token(session_id, target)

    await gateway.discard_token(session_id, target, "an-older-token")
    assert await gateway.token(session_id, target) == current
    await gateway.discard_token(session_id, target, current)
    assert await gateway.token(session_id, target) != current


async def test_the_apis_unknown_kid_503_means_try_again_not_sign_in_again(
    respx_router: respx.MockRouter,
    api: ResourceApiClient,
    gateway: LogtoGateway,
    logto: FakeLogto,
) -> None:
    """Issue 9 #7: the API answers a token whose new kid it cannot look up yet (unknown-kid
    cooldown) with 503 + Retry-After. The page says "try again" (not "sign in again"), the
    token is kept (no refresh, no retry with another token)."""
    session_id = await sign_in(gateway, logto, "alice")
    target = TokenTarget(SHOPPING)
    token = await gateway.token(session_id, target)
    refreshes = len(logto.refresh_grants(resource=SHOPPING))
    route = respx_router.get(f"{API_URL}/shopping/orders").respond(
        503,
        json={
            "error": "temporarily_unavailable",
            "error_description": "The access token is signed with a key the API cannot look "
            "up yet; try again shortly.",
        },
        headers={"Retry-After": "28"},
    )
    with pytest.raises(ApiUnavailable) as caught:
        await call_with_token(gateway, session_id, target, api.list_orders)
    assert (caught.value.action, caught.value.status_code, route.call_count) == ("retry", 503, 1)
    assert "try again" in caught.value.message
    assert await gateway.token(session_id, target) == token
    assert len(logto.refresh_grants(resource=SHOPPING)) == refreshes
