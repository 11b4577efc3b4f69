"""Public routes: /health reports whether keys are held; the RFC 9728 protected-resource
documents list the scopes the routes declare."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from litestar_logto import LogtoAuth

from tests.resource_api.conftest import Client
from tests.resource_api.helpers import SHOPPING_READ
from tests.support import ISSUER, SHOPPING, STORE, FakeIssuer

Auth = Callable[..., dict[str, str]]
ALGORITHMS = ["ES256", "ES384", "ES512", "RS256"]


async def test_health_reports_loaded_keys(client: Client, auth: Auth) -> None:
    """Once a token was verified the keys are held and /health says so, without a token."""
    await client.get("/shopping/orders", headers=auth(**SHOPPING_READ))
    response = await client.get("/health")
    assert (response.status_code, response.json()) == (200, {"status": "ok", "keys_loaded": True})


async def test_health_reports_missing_keys(app: Litestar, issuer: FakeIssuer) -> None:
    """With the issuer's JWKS failing the service is still up, and says keys are missing."""
    issuer.jwks_response = httpx.Response(500)
    async with AsyncTestClient(app) as client:
        response = await client.get("/health")
    assert (response.status_code, response.json()) == (200, {"status": "ok", "keys_loaded": False})


def test_the_auth_plugin_is_reachable_from_the_app(app: Litestar) -> None:
    """app.state.auth is the LogtoAuth instance installed as a plugin."""
    assert isinstance(app.state.auth, LogtoAuth)
    assert app.state.auth in app.plugins


@pytest.mark.parametrize(
    ("name", "resource", "scopes"),
    [
        pytest.param("shopping", SHOPPING, ["shopping:read", "shopping:write"], id="shopping"),
        pytest.param("store", STORE, ["store:read", "store:write"], id="store"),
        pytest.param(
            "organizations/acme", "urn:logto:organization:acme", ["read:members"], id="acme"
        ),
    ],
)
async def test_protected_resource_metadata_lists_the_declared_scopes(
    client: Client, name: str, resource: str, scopes: list[str]
) -> None:
    """Each RFC 9728 document names its resource, the issuer and the scopes routes declare."""
    response = await client.get(f"/.well-known/oauth-protected-resource/{name}")
    expected: dict[str, Any] = {
        "resource": resource,
        "authorization_servers": [ISSUER],
        "scopes_supported": scopes,
        "bearer_methods_supported": ["header"],
        "resource_signing_alg_values_supported": ALGORITHMS,
    }
    assert (response.status_code, response.json()) == (200, expected)


async def test_metadata_of_an_unknown_resource_is_not_found(client: Client) -> None:
    """A resource name that is not configured has no metadata document."""
    response = await client.get("/.well-known/oauth-protected-resource/billing")
    assert (response.status_code, response.json()["error"]) == (404, "not_found")


async def test_head_on_health_answers_as_get_without_the_body(client: Client) -> None:
    """Uptime checks probe with HEAD: 200 with GET's headers, no body (it was 405)."""
    got = await client.get("/health")
    head = await client.head("/health")
    assert (head.status_code, head.content) == (200, b"")
    assert head.headers["content-length"] == got.headers["content-length"] != "0"
    assert head.headers["content-type"] == got.headers["content-type"]


async def test_head_on_a_protected_route_is_authenticated_like_get(
    client: Client, auth: Auth
) -> None:
    """HEAD goes through the same token check and scopes as GET: 401 with the challenge
    without a token, 200 with GET's length with one; never a body."""
    refused = await client.head("/shopping/orders")
    assert (refused.status_code, refused.content) == (401, b"")
    assert refused.headers["www-authenticate"].startswith("Bearer")
    headers = auth(**SHOPPING_READ)
    got = await client.get("/shopping/orders", headers=headers)
    head = await client.head("/shopping/orders", headers=headers)
    assert (head.status_code, head.content) == (200, b"")
    assert head.headers["content-length"] == got.headers["content-length"]
