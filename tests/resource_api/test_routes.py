"""Every route against the token it declares: allowed with the right one, challenged without
one, 401 for another audience, 403 naming the missing scope; then what each route does with
the caller's identity (own orders only, catalogs per organization, members seen)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import msgspec
import pytest
from litestar.testing import AsyncTestClient

from resource_api.app import create_app
from resource_api.settings import Settings
from resource_api.storage import SqliteStore
from tests.resource_api.conftest import Client
from tests.resource_api.helpers import (
    ACME,
    ACME_MEMBERS,
    ACME_STORE_READ,
    GLOBEX,
    METADATA,
    SHOPPING_READ,
    SHOPPING_WRITE,
    STORE_READ,
    STORE_WRITE,
    bearer,
    challenge,
)
from tests.support import SHOPPING, STORE, FakeClock, FakeIssuer

Auth = Callable[..., dict[str, str]]
ORDER = {"items": [{"sku": "tea", "quantity": 2}], "note": "by the door"}
PRODUCT = {"name": "Green tea", "price_cents": 450}


async def _call(
    client: Client, method: str, path: str, body: Any, headers: dict[str, str] | None = None
) -> httpx.Response:
    return await client.request(method, path, json=body, headers=headers)


@pytest.mark.parametrize(
    ("method", "path", "body", "claims", "status"),
    [
        pytest.param("GET", "/shopping/orders", None, SHOPPING_READ, 200, id="list-orders"),
        pytest.param("GET", "/shopping/orders/1", None, SHOPPING_READ, 200, id="get-order"),
        pytest.param("POST", "/shopping/orders", ORDER, SHOPPING_WRITE, 201, id="create-order"),
        pytest.param("GET", "/store/products", None, STORE_READ, 200, id="list-products"),
        pytest.param("POST", "/store/products", PRODUCT, STORE_WRITE, 201, id="create-product"),
        pytest.param(
            "GET", "/organizations/acme/members", None, ACME_MEMBERS, 200, id="org-members"
        ),
        pytest.param(
            "GET",
            "/organizations/acme/store/products",
            None,
            ACME_STORE_READ,
            200,
            id="org-products",
        ),
    ],
)
async def test_the_declared_token_is_allowed(
    client: Client,
    auth: Auth,
    *,
    method: str,
    path: str,
    body: Any,
    claims: dict[str, Any],
    status: int,
) -> None:
    """A token with the route's audience and scope reaches the handler."""
    response = await _call(client, method, path, body, auth(**claims))
    assert response.status_code == status, response.text


@pytest.mark.parametrize(
    ("method", "path", "body", "metadata"),
    [
        pytest.param("GET", "/shopping/orders", None, "shopping", id="list-orders"),
        pytest.param("GET", "/shopping/orders/1", None, "shopping", id="get-order"),
        pytest.param("POST", "/shopping/orders", ORDER, "shopping", id="create-order"),
        pytest.param("GET", "/store/products", None, "store", id="list-products"),
        pytest.param("POST", "/store/products", PRODUCT, "store", id="create-product"),
        pytest.param(
            "GET", "/organizations/acme/members", None, "organizations/acme", id="org-members"
        ),
        pytest.param("GET", "/organizations/acme/store/products", None, "store", id="org-products"),
    ],
)
async def test_no_token_gets_a_challenge_without_error_code(
    client: Client, method: str, path: str, body: Any, metadata: str
) -> None:
    """Without credentials: 401 and a bare Bearer challenge pointing to the RFC 9728 document."""
    response = await _call(client, method, path, body)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == (
        f'Bearer resource_metadata="{METADATA}/{metadata}"'
    )
    assert response.json()["error"] == "unauthorized"


@pytest.mark.parametrize(
    ("method", "path", "body", "claims"),
    [
        pytest.param(
            "GET", "/shopping/orders", None, {"aud": STORE, "scope": "shopping:read"},
            id="list-orders-with-store-token",
        ),
        pytest.param(
            "GET", "/shopping/orders/1", None, {"aud": STORE, "scope": "shopping:read"},
            id="get-order-with-store-token",
        ),
        pytest.param(
            "POST", "/shopping/orders", ORDER, {"aud": STORE, "scope": "shopping:write"},
            id="create-order-with-store-token",
        ),
        pytest.param(
            "GET", "/store/products", None, {"aud": SHOPPING, "scope": "store:read"},
            id="list-products-with-shopping-token",
        ),
        pytest.param(
            "POST", "/store/products", PRODUCT, {"aud": SHOPPING, "scope": "store:write"},
            id="create-product-with-shopping-token",
        ),
        pytest.param(
            "GET", "/organizations/acme/members", None, {"aud": GLOBEX, "scope": "read:members"},
            id="org-members-with-other-org-token",
        ),
        pytest.param(
            "GET", "/organizations/acme/store/products", None,
            {"aud": ACME, "scope": "store:read", "organization_id": "acme"},
            id="org-products-with-organization-token",
        ),
    ],
)  # fmt: skip
async def test_a_token_for_another_audience_is_invalid(
    client: Client, auth: Auth, *, method: str, path: str, body: Any, claims: dict[str, Any]
) -> None:
    """A valid token with the right scopes but another audience is 401 invalid_token."""
    response = await _call(client, method, path, body, auth(**claims))
    assert response.status_code == 401
    params = challenge(response.headers["WWW-Authenticate"])
    assert (params["error"], params["error_description"]) == (
        "invalid_token",
        "The access token is not meant for this API.",
    )
    assert response.json() == {
        "error": "invalid_token",
        "error_description": "The access token is not meant for this API.",
    }


@pytest.mark.parametrize(
    ("method", "path", "body", "claims", "missing"),
    [
        pytest.param(
            "GET", "/shopping/orders", None, {"aud": SHOPPING, "scope": "shopping:write"},
            "shopping:read", id="list-orders-with-write-only",
        ),
        pytest.param(
            "GET", "/shopping/orders/1", None, {"aud": SHOPPING, "scope": None},
            "shopping:read", id="get-order-without-scope-claim",
        ),
        pytest.param(
            "POST", "/shopping/orders", ORDER, SHOPPING_READ,
            "shopping:write", id="create-order-with-read-only",
        ),
        pytest.param(
            "GET", "/store/products", None, STORE_WRITE,
            "store:read", id="list-products-with-write-only",
        ),
        pytest.param(
            "POST", "/store/products", PRODUCT, STORE_READ,
            "store:write", id="create-product-with-read-only",
        ),
        pytest.param(
            "GET", "/organizations/acme/members", None, {"aud": ACME, "scope": "read:roles"},
            "read:members", id="org-members-with-other-permission",
        ),
        pytest.param(
            "GET", "/organizations/acme/store/products", None,
            {"aud": STORE, "scope": "store:write", "organization_id": "acme"},
            "store:read", id="org-products-with-write-only",
        ),
    ],
)  # fmt: skip
async def test_a_missing_scope_is_named_in_the_challenge(
    client: Client,
    auth: Auth,
    *,
    method: str,
    path: str,
    body: Any,
    claims: dict[str, Any],
    missing: str,
) -> None:
    """A token of the right audience without the permission is 403 insufficient_scope."""
    response = await _call(client, method, path, body, auth(**claims))
    assert response.status_code == 403
    params = challenge(response.headers["WWW-Authenticate"])
    assert (params["error"], params["scope"]) == ("insufficient_scope", missing)
    assert response.json()["error"] == "insufficient_scope"


@pytest.mark.parametrize(
    ("path", "claims", "status", "error", "scope"),
    [
        pytest.param(
            "/organizations/acme/members", ACME_MEMBERS, 200, None, None,
            id="org-token-on-its-org",
        ),
        pytest.param(
            "/organizations/globex/members", ACME_MEMBERS, 401, "invalid_token", None,
            id="org-token-on-another-org",
        ),
        pytest.param(
            "/organizations/acme/store/products", ACME_STORE_READ, 200, None, None,
            id="org-level-api-token-on-its-org",
        ),
        pytest.param(
            "/organizations/globex/store/products", ACME_STORE_READ, 403, "insufficient_scope",
            "store:read", id="org-level-api-token-on-another-org",
        ),
        pytest.param(
            "/organizations/acme/store/products", STORE_READ, 403, "insufficient_scope",
            "store:read", id="global-store-token-on-org-route",
        ),
        pytest.param(
            "/store/products", ACME_STORE_READ, 403, "insufficient_scope", "store:read",
            id="org-level-api-token-on-global-route",
        ),
    ],
)  # fmt: skip
async def test_organization_context_is_enforced(
    client: Client,
    auth: Auth,
    *,
    path: str,
    claims: dict[str, Any],
    status: int,
    error: str | None,
    scope: str | None,
) -> None:
    """Organization routes take only tokens bound to the organization in the path."""
    response = await client.get(path, headers=auth(**claims))
    assert response.status_code == status
    params = challenge(response.headers.get("WWW-Authenticate", "Bearer"))
    assert (params.get("error"), params.get("scope")) == (error, scope)


ORGANIZATION_BOUND = (
    "This route takes a global token of this API; the access token is bound to an organization."
)


@pytest.mark.parametrize(
    ("method", "path", "body", "claims"),
    [
        pytest.param(
            "POST", "/store/products", PRODUCT,
            {"aud": STORE, "scope": "store:read store:write", "organization_id": "globex"},
            id="create-product-with-globex-level-token",
        ),
        pytest.param(
            "GET", "/store/products", None, ACME_STORE_READ,
            id="list-products-with-acme-level-token",
        ),
        pytest.param(
            "GET", "/shopping/orders", None,
            {"aud": SHOPPING, "scope": "shopping:read", "organization_id": "acme"},
            id="list-orders-with-organization-bound-token",
        ),
        pytest.param(
            "POST", "/shopping/orders", ORDER,
            {"aud": SHOPPING, "scope": "shopping:write", "organization_id": "acme"},
            id="create-order-with-organization-bound-token",
        ),
    ],
)  # fmt: skip
async def test_an_organization_bound_token_is_refused_on_a_global_route(
    client: Client,
    auth: Auth,
    store: SqliteStore,
    *,
    method: str,
    path: str,
    body: Any,
    claims: dict[str, Any],
) -> None:
    """Issue 9 #8: a token carrying ``organization_id`` is for that organization's resources
    (Logto's organization-level API token), not for a route that declares no organization:
    403 insufficient_scope naming what a global token needs, and nothing is created."""
    products_before = await store.list_products(None)
    response = await _call(client, method, path, body, auth(**claims))
    assert response.status_code == 403, response.text
    params = challenge(response.headers["WWW-Authenticate"])
    assert (params["error"], params["error_description"], params["scope"]) == (
        "insufficient_scope",
        ORGANIZATION_BOUND,
        claims["scope"].split()[-1],
    )
    assert response.json() == {
        "error": "insufficient_scope",
        "error_description": ORGANIZATION_BOUND,
    }
    assert await store.list_products(None) == products_before


async def test_a_configured_public_url_is_used_in_challenges(
    settings: Settings, http_client: httpx.AsyncClient, clock: FakeClock, issuer: FakeIssuer
) -> None:
    """With RESOURCE_API_URL set, resource_metadata points there rather than to the Host."""
    configured = msgspec.structs.replace(settings, resource_api_url="https://api.example/v1")
    app = create_app(configured, http_client=http_client, clock=clock)
    async with AsyncTestClient(app) as client:
        response = await client.get("/store/products")
    assert challenge(response.headers["WWW-Authenticate"]) == {
        "resource_metadata": "https://api.example/v1/.well-known/oauth-protected-resource/store"
    }


# -- what the routes do with the caller's identity --------------------------------------------


async def test_a_caller_lists_only_its_own_orders(client: Client, auth: Auth) -> None:
    """Alice sees her seeded order; Bob, with the same permission, sees none."""
    alice = await client.get("/shopping/orders", headers=auth(**SHOPPING_READ))
    bob = await client.get("/shopping/orders", headers=auth(sub="user-bob", **SHOPPING_READ))
    assert [order["id"] for order in alice.json()["orders"]] == [1]
    assert bob.json() == {"orders": []}


@pytest.mark.parametrize(
    ("subject", "order_id"),
    [
        pytest.param("user-bob", 1, id="someone-elses-order"),
        pytest.param("user-alice", 999, id="missing-order"),
        pytest.param("user-alice", 2**70, id="id-beyond-sqlite"),
    ],
)
async def test_an_order_the_caller_does_not_own_is_not_found(
    client: Client, auth: Auth, subject: str, order_id: int
) -> None:
    """Another subject's order answers exactly like a missing one: 404 not_found."""
    response = await client.get(
        f"/shopping/orders/{order_id}", headers=auth(sub=subject, **SHOPPING_READ)
    )
    assert (response.status_code, response.json()) == (
        404,
        {"error": "not_found", "error_description": "No order with this id."},
    )


async def test_a_placed_order_belongs_to_the_caller(client: Client, auth: Auth) -> None:
    """Bob's new order comes back 201, is listed and fetched for Bob, and is hidden from Alice."""
    bob_write = auth(sub="user-bob", aud=SHOPPING, scope="shopping:write")
    bob_read = auth(sub="user-bob", **SHOPPING_READ)
    created = await client.post("/shopping/orders", json=ORDER, headers=bob_write)
    assert (created.status_code, created.json()) == (
        201,
        {
            "id": 2,
            "items": [{"sku": "tea", "quantity": 2}],
            "note": "by the door",
            "created_at": "2027-01-15T08:00:00Z",
        },
    )
    fetched = await client.get("/shopping/orders/2", headers=bob_read)
    listed = await client.get("/shopping/orders", headers=bob_read)
    alice = await client.get("/shopping/orders/2", headers=auth(**SHOPPING_READ))
    assert fetched.json() == created.json()
    assert listed.json() == {"orders": [created.json()]}
    assert alice.status_code == 404


async def test_a_new_product_joins_the_global_catalog_only(client: Client, auth: Auth) -> None:
    """A product added through /store/products is listed there and not in acme's catalog."""
    created = await client.post("/store/products", json=PRODUCT, headers=auth(**STORE_WRITE))
    catalog = await client.get("/store/products", headers=auth(**STORE_READ))
    acme = await client.get("/organizations/acme/store/products", headers=auth(**ACME_STORE_READ))
    assert created.json() == {
        "id": 3,
        "name": "Green tea",
        "price_cents": 450,
        "organization_id": None,
        "created_at": "2027-01-15T08:00:00Z",
    }
    assert [product["name"] for product in catalog.json()["products"]] == [
        "Global tea",
        "Green tea",
    ]
    assert [product["name"] for product in acme.json()["products"]] == ["Acme coffee"]


async def test_listing_members_records_the_caller(
    client: Client, auth: Auth, clock: FakeClock
) -> None:
    """Each caller with an acme organization token is remembered once, first sighting first."""
    await client.get("/organizations/acme/members", headers=auth(**ACME_MEMBERS))
    clock.advance(60)
    bob = auth(sub="user-bob", **ACME_MEMBERS)
    await client.get("/organizations/acme/members", headers=bob)
    again = await client.get("/organizations/acme/members", headers=auth(**ACME_MEMBERS))
    globex = await client.get(
        "/organizations/globex/members",
        headers=auth(sub="user-carol", aud=GLOBEX, scope="read:members"),
    )
    assert again.json() == {
        "organization_id": "acme",
        "members": [
            {"user_id": "user-alice", "first_seen": "2027-01-15T08:00:00Z"},
            {"user_id": "user-bob", "first_seen": "2027-01-15T08:01:00Z"},
        ],
    }
    assert [member["user_id"] for member in globex.json()["members"]] == ["user-carol"]


async def test_a_refused_caller_is_not_recorded_as_a_member(client: Client, auth: Auth) -> None:
    """A token without read:members records nothing: the guard stops it before the handler."""
    await client.get(
        "/organizations/acme/members", headers=auth(sub="user-mallory", aud=ACME, scope="")
    )
    listed = await client.get("/organizations/acme/members", headers=auth(**ACME_MEMBERS))
    assert [member["user_id"] for member in listed.json()["members"]] == ["user-alice"]


async def test_data_survives_a_restart(
    settings: Settings, http_client: httpx.AsyncClient, clock: FakeClock, issuer: FakeIssuer
) -> None:
    """An order placed through one app instance is served by the next one on the same file."""
    write = bearer(issuer.sign(sub="user-dana", aud=SHOPPING, scope="shopping:write"))
    read = bearer(issuer.sign(sub="user-dana", aud=SHOPPING, scope="shopping:read"))
    async with AsyncTestClient(create_app(settings, http_client=http_client, clock=clock)) as first:
        created = await first.post("/shopping/orders", json=ORDER, headers=write)
    async with AsyncTestClient(
        create_app(settings, http_client=http_client, clock=clock)
    ) as second:
        fetched = await second.get(f"/shopping/orders/{created.json()['id']}", headers=read)
    assert (created.status_code, fetched.status_code) == (201, 200)
    assert fetched.json() == created.json()
    assert settings.database.exists()
