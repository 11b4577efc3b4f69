"""Fixtures of the adversarial auth tests: an issuer with every key type, a signature-check
counter, and a small Litestar app protected by ``LogtoAuth`` (the shared kit is in
``tests/conftest.py`` and ``tests/support.py``)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import respx
from litestar import Litestar, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath
from litestar.testing import AsyncTestClient
from litestar_logto import (
    AccessToken,
    LogtoAuth,
    LogtoAuthConfig,
    public,
    requires,
    requires_organization,
)
from litestar_logto.keys import VerificationKey

from tests.resource_api.auth.forge import ES256, ES384, RS256
from tests.support import ENDPOINT, SHOPPING, STORE, FakeClock, FakeIssuer


@pytest.fixture
def every_key_issuer(respx_router: respx.MockRouter) -> FakeIssuer:
    """An issuer publishing an ES384 (current), an RS256 (RSA 2048) and an ES256 key."""
    return FakeIssuer(respx_router, [ES384, RS256, ES256])


@dataclass
class SignatureChecks:
    """How many signatures the verifier actually checked."""

    calls: int = 0


@pytest.fixture
def signature_checks(monkeypatch: pytest.MonkeyPatch) -> SignatureChecks:
    """Count calls of ``VerificationKey.verify`` (the one place a signature is checked)."""
    counter = SignatureChecks()
    original = VerificationKey.verify

    def counting(
        self: VerificationKey, algorithm: str, signing_input: bytes, signature: bytes
    ) -> bool:
        counter.calls += 1
        return original(self, algorithm, signing_input, signature)

    monkeypatch.setattr(VerificationKey, "verify", counting)
    return counter


# -- a small protected Litestar app -------------------------------------------------------------


def _describe(token: AccessToken) -> dict[str, Any]:
    return {
        "sub": token.subject,
        "scopes": sorted(token.scopes),
        "organization_id": token.organization_id,
    }


@get("/shopping/orders", opt=requires("shopping", "shopping:read"), sync_to_thread=False)
def list_orders(access_token: NamedDependency[AccessToken]) -> dict[str, Any]:
    """A global API resource route (read)."""
    return _describe(access_token)


@post("/shopping/orders", opt=requires("shopping", "shopping:write"), sync_to_thread=False)
def create_order(access_token: NamedDependency[AccessToken]) -> dict[str, Any]:
    """A global API resource route (write)."""
    return _describe(access_token)


@get("/store/products", opt=requires("store", "store:read"), sync_to_thread=False)
def list_products(access_token: NamedDependency[AccessToken]) -> dict[str, Any]:
    """The other API resource."""
    return _describe(access_token)


@get(
    "/organizations/{org_id:str}/members",
    opt=requires_organization("read:members"),
    sync_to_thread=False,
)
def list_members(
    org_id: FromPath[str], access_token: NamedDependency[AccessToken]
) -> dict[str, Any]:
    """An organization-token route."""
    return {"org": org_id, **_describe(access_token)}


@get(
    "/organizations/{org_id:str}/store/products",
    opt=requires("store", "store:read", organization_param="org_id"),
    sync_to_thread=False,
)
def list_organization_products(
    org_id: FromPath[str], access_token: NamedDependency[AccessToken]
) -> dict[str, Any]:
    """An organization-level API resource route."""
    return {"org": org_id, **_describe(access_token)}


@get("/health", opt=public(), sync_to_thread=False)
def health() -> dict[str, str]:
    """A deliberately public route."""
    return {"status": "ok"}


ROUTES = [
    list_orders,
    create_order,
    list_products,
    list_members,
    list_organization_products,
    health,
]


def auth_config(**overrides: Any) -> LogtoAuthConfig:
    """The test app's configuration: both resources, no background refresh unless asked."""
    settings: dict[str, Any] = {
        "endpoint": ENDPOINT,
        "resources": {"shopping": SHOPPING, "store": STORE},
        "background_refresh": False,
    }
    settings.update(overrides)
    return LogtoAuthConfig(**settings)


@pytest.fixture
def logto_auth(http_client: httpx.AsyncClient, clock: FakeClock) -> LogtoAuth:
    """The plugin under test, on the respx-backed client and the fake clock."""
    return LogtoAuth(auth_config(), http_client=http_client, clock=clock)


@pytest.fixture
async def api(issuer: FakeIssuer, logto_auth: LogtoAuth) -> AsyncIterator[AsyncTestClient[Any]]:
    """The protected app, started (lifespan entered) against the respx issuer."""
    app = Litestar(route_handlers=ROUTES, plugins=[logto_auth])
    async with AsyncTestClient(app) as client:
        yield client
