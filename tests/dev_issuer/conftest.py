"""Fixtures: one dev issuer subprocess for the module, clients of the real logto SDK."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import httpx
import pytest
from logto import LogtoClient, LogtoConfig, UserInfoScope

from tests.dev_issuer.support import (
    CLIENT_ID,
    CLIENT_SECRET,
    SHOPPING,
    STORE,
    DevIssuer,
    DictStorage,
    submit_sign_in,
)

ORGANIZATION_SCOPES = ["read:members", "invite:member", "remove:member"]
API_SCOPES = ["shopping:read", "shopping:write", "store:read", "store:write"]


def sdk_config(issuer: DevIssuer, *, scopes: list[object] | None = None) -> LogtoConfig:
    """The SDK configuration a client app would use against the dev issuer."""
    default_scopes: list[object] = [
        UserInfoScope.email,
        "roles",  # the SDK has no UserInfoScope member for it
        UserInfoScope.organizations,
        UserInfoScope.organization_roles,
        UserInfoScope.custom_data,
        *ORGANIZATION_SCOPES,
        *API_SCOPES,
    ]
    return LogtoConfig(
        endpoint=issuer.endpoint,
        appId=CLIENT_ID,
        appSecret=CLIENT_SECRET,
        resources=[SHOPPING, STORE],
        scopes=default_scopes if scopes is None else scopes,
    )


@pytest.fixture
def make_client(dev_issuer: DevIssuer) -> Callable[..., LogtoClient]:
    """Build an SDK client with its own storage (never the SDK's shared default)."""

    def make(*, scopes: list[object] | None = None) -> LogtoClient:
        return LogtoClient(sdk_config(dev_issuer, scopes=scopes), storage=DictStorage())

    return make


@pytest.fixture
async def browser() -> AsyncIterator[httpx.AsyncClient]:
    """The user's browser: keeps cookies, follows no redirect by itself."""
    async with httpx.AsyncClient(follow_redirects=False, timeout=10) as client:
        yield client


async def sign_in(
    client: LogtoClient, browser: httpx.AsyncClient, issuer: DevIssuer, username: str
) -> None:
    """signIn -> the issuer's sign-in form, submitted with httpx -> handleSignInCallback."""
    url = await client.signIn(issuer.redirect_uri)
    callback = await submit_sign_in(
        browser,
        url,
        stop_at=issuer.redirect_uri,
        form_values={"identifier": username, "password": issuer.password(username)},
    )
    await client.handleSignInCallback(callback)


SignedIn = Callable[..., Awaitable[LogtoClient]]


@pytest.fixture
def signed_in(
    dev_issuer: DevIssuer, make_client: Callable[..., LogtoClient], browser: httpx.AsyncClient
) -> SignedIn:
    """An SDK client (own storage) whose user has signed in through the HTML form."""

    async def make(username: str, *, scopes: list[object] | None = None) -> LogtoClient:
        client = make_client(scopes=scopes)
        await sign_in(client, browser, dev_issuer, username)
        return client

    return make
