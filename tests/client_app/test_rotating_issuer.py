"""The client app against the real dev issuer rotating refresh tokens, behind the fault proxy.

The dev issuer runs with ``--rotate-refresh-tokens`` (a used refresh token presented again
revokes the whole grant, counted at ``GET /dev/refresh-stats``) and ``--base-url`` of the fault
proxy of ``tests/faults`` (``IssuerProxy``), so the app's discovery, token and JWKS requests
and the test browser's sign-in pages all go through it over loopback. The app runs in the
test's event loop; the resource API's port is closed on purpose (the pages say so; the token
refreshes they need happen first).

Issue 9, item 1: right after the issuer rotates its signing key, the refresh a page needs
returns an ID token signed with the new key; the JWKS answers ``{"keys": []}`` (or hangs) just
then. The refresh has rotated the refresh token at the issuer, so the app must keep it: the page
works, and the next page's refresh presents the new refresh token, not the used one.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest
from litestar import Litestar

from client_app.app import create_app
from client_app.sessions import COOKIE_NAME, SessionStore
from client_app.settings import Settings
from demo.launcher import ROTATE_KEYS_HEADERS
from tests.client_app.conftest import browser
from tests.client_app.live import CLIENT_PORT, client_settings, sign_in
from tests.dev_issuer.support import DevIssuer, start_dev_issuer
from tests.faults.issuer_proxy import JWKS_PATH, Fault, Hang, IssuerProxy, Replace

CLOSED_API = "http://127.0.0.1:9"
TIMEOUT_SECONDS = 1.0
COUNTERS = ("requests", "succeeded", "rotated", "reuseDetected", "failed")


@dataclass
class ProxiedIssuer:
    """The rotating dev issuer and the proxy that is its public address."""

    issuer: DevIssuer
    proxy: IssuerProxy

    @property
    def direct(self) -> str:
        """The issuer's own socket, around the proxy (control, not traffic)."""
        return f"http://127.0.0.1:{self.proxy.upstream_port}"

    def rotate_keys(self) -> str:
        """``POST /dev/rotate-keys``; the new signing key's kid."""
        response = httpx.post(
            f"{self.direct}/dev/rotate-keys", headers=ROTATE_KEYS_HEADERS, timeout=10
        )
        response.raise_for_status()
        return str(response.json()["current"]["kid"])

    def refresh_stats(self) -> dict[str, int]:
        """The issuer's refresh-grant counters (no token values)."""
        response = httpx.get(f"{self.direct}/dev/refresh-stats", timeout=10)
        response.raise_for_status()
        body: dict[str, Any] = response.json()
        assert body["rotateRefreshTokens"] is True
        return {name: int(body[name]) for name in COUNTERS}


@pytest.fixture(scope="module")
def proxied() -> Iterator[ProxiedIssuer]:
    """The proxy listens first (its URL is the issuer's ``--base-url``); it forwards to the
    issuer's port once the issuer has said which one it got."""
    proxy = IssuerProxy(upstream_port=0).start()
    try:
        issuer = start_dev_issuer(
            "--development",
            "--rotate-refresh-tokens",
            "--base-url",
            proxy.url,
            client_port=CLIENT_PORT,
        )
        try:
            proxy.upstream_port = int(issuer.ready["port"])
            assert issuer.issuer == f"{proxy.url}/oidc"
            yield ProxiedIssuer(issuer, proxy)
        finally:
            issuer.stop()
    finally:
        proxy.stop()


@pytest.fixture
def settings(proxied: ProxiedIssuer, tmp_path: Path) -> Settings:
    """The app's settings: Logto at the proxy, a 1 s issuer timeout, no API."""
    return msgspec.structs.replace(
        client_settings(proxied.issuer, CLOSED_API, tmp_path / "sessions"),
        logto_timeout_seconds=TIMEOUT_SECONDS,
    )


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[Litestar]:
    async with httpx.AsyncClient(timeout=10) as http:
        yield create_app(settings, http_client=http)


async def stored_refresh_token(app: Litestar, client: httpx.AsyncClient) -> str | None:
    sessions: SessionStore = app.state.context.gateway.sessions
    return (await sessions.load(str(client.cookies[COOKIE_NAME]))).get("refreshToken")


def assert_signed_in_page(page: httpx.Response, path: str) -> None:
    """``path`` rendered for a signed-in user: not an error page, not a sign-in."""
    assert (page.status_code, page.url.path) == (200, path), page.text
    for problem in ("Sign-in service problem", "Your session has ended", "did not answer"):
        assert problem not in page.text


@pytest.mark.parametrize(
    "fault",
    [
        pytest.param(Replace(b'{"keys": []}', "empty-keys"), id="empty-jwks"),
        pytest.param(Hang(), id="jwks-timeout"),
    ],
)
async def test_a_refresh_whose_id_token_cannot_be_verified_keeps_the_session(
    proxied: ProxiedIssuer, app: Litestar, settings: Settings, fault: Fault
) -> None:
    """bob signs in; the issuer rotates its signing key; /store needs a refresh while the
    JWKS answers no key (or hangs past the timeout): the page works and the session holds the
    rotated refresh token. Then /shopping (another refresh, JWKS healthy) and me.json work,
    and the issuer saw no refresh token twice."""
    proxy = proxied.proxy
    async with browser(app, settings.base_url) as client:
        assert (await sign_in(client, proxied.issuer, "bob")).status_code == 303
        signed_in = await stored_refresh_token(app, client)
        proxied.rotate_keys()
        before = proxied.refresh_stats()
        logged = len(proxy.log)

        proxy.set_fault(fault, [JWKS_PATH])
        store = await client.get("/store")
        proxy.reset()
        rotated = await stored_refresh_token(app, client)
        shopping = await client.get("/shopping")
        me = await client.get("/protected/me.json")

    faulted = [s for s in proxy.log[logged:] if s.path == JWKS_PATH and s.fault != "pass"]
    assert faulted, "the app did not fetch the JWKS while it was broken"
    assert_signed_in_page(store, "/store")
    assert rotated not in (None, signed_in)
    assert_signed_in_page(shopping, "/shopping")
    assert me.status_code == 200, me.text
    assert me.json()["sub"] == proxied.issuer.user_id("bob")
    grew = {k: v - before[k] for k, v in proxied.refresh_stats().items()}
    assert grew == {"requests": 2, "succeeded": 2, "rotated": 2, "reuseDetected": 0, "failed": 0}
