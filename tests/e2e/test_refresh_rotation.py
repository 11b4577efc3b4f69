"""Refresh-token rotation against a real issuer: the dev issuer started with
``--rotate-refresh-tokens`` hands out a new refresh token on every refresh and revokes the whole
grant when a used one is presented again (``logto-tokens.md`` §5), and access tokens live 3
seconds, so every page after a short wait needs a refresh.

The client app must store each rotated refresh token (else its next refresh presents a used
one) and serialize the refreshes of one session (else concurrent requests present the same one
twice). Either mistake revokes the grant and ends the session, which the pages show, and the
issuer counts it at ``GET /dev/refresh-stats`` (``reuseDetected``): the issuer serves the
requests presenting one refresh token one at a time, so even a concurrent double use counts.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tests.e2e.browser import Browser
from tests.e2e.harness import Harness, claims_of, start_harness
from tests.e2e.pages import Page
from tests.e2e.proxy import Exchange

TTL_SECONDS = 3
SHOPPING = "https://shopping.your-app.com/api"
STORE = "https://store.your-app.com/api"
CONCURRENT_REQUESTS = 8
COUNTERS = ("requests", "succeeded", "rotated", "reuseDetected", "failed")


@pytest.fixture(scope="module")
def rotating(
    tmp_path_factory: pytest.TempPathFactory, exchanges: list[Exchange]
) -> Iterator[Harness]:
    """Issuer rotating refresh tokens on every use, 3-second access tokens, an API with no
    leeway (an expired token is refused)."""
    running = start_harness(
        tmp_path_factory.mktemp("e2e-refresh-rotation"),
        exchanges,
        access_token_ttl=TTL_SECONDS,
        api_environ={"LOGTO_LEEWAY_SECONDS": "0"},
        issuer_args=("--rotate-refresh-tokens",),
    )
    try:
        yield running
    finally:
        running.stop()


def refresh_stats(harness: Harness) -> dict[str, int]:
    """The issuer's refresh-grant counters since it started (no token values)."""
    response = httpx.get(f"{harness.issuer_url}/dev/refresh-stats", timeout=10)
    response.raise_for_status()
    body = response.json()
    assert body["rotateRefreshTokens"] is True
    return {name: int(body[name]) for name in COUNTERS}


def since(before: dict[str, int], harness: Harness) -> dict[str, int]:
    """How much each counter grew since ``before``."""
    now = refresh_stats(harness)
    return {name: now[name] - before[name] for name in COUNTERS}


def wait_until_expired(harness: Harness, subject: str, audience: str) -> int:
    """Sleep until the newest ``audience`` token the client app sent for ``subject`` has
    expired (the API refuses it); its ``exp``."""
    expires_at = int(claims_of(harness.tokens(subject=subject, audience=audience)[-1])["exp"])
    time.sleep(max(0.0, expires_at - time.time()) + 1.1)
    return expires_at


def assert_shopping_page(harness: Harness, page: Page) -> None:
    """The signed-in shopping page, not a sign-in or an error."""
    assert page.status == 200, page.text
    assert page.url == f"{harness.client_url}/shopping", page.text
    assert page.alerts("error") == []
    assert page.section("Your orders")  # only a signed-in user's page has it


def test_each_refresh_stores_the_rotated_refresh_token(rotating: Harness) -> None:
    """bob's shopping token expires again and again; every page refreshes it with the refresh
    token the previous refresh returned: no reuse, the grant survives, the pages keep working,
    the organizations page (organization tokens, refresh with ``organization_id``) too."""
    harness, bob = rotating, rotating.user_id("bob")
    with Browser(harness.client_url) as browser:
        browser.sign_in("bob", harness.password("bob"))
        assert_shopping_page(harness, browser.get("/shopping"))
        before = refresh_stats(harness)

        for _ in range(3):
            expired_at = wait_until_expired(harness, bob, SHOPPING)
            round_before = refresh_stats(harness)

            assert_shopping_page(harness, browser.get("/shopping"))

            grew = since(round_before, harness)
            assert grew["succeeded"] >= 1, grew
            assert grew == {**grew, "rotated": grew["succeeded"], "reuseDetected": 0, "failed": 0}
            newest = harness.tokens(subject=bob, audience=SHOPPING)[-1]
            assert claims_of(newest)["exp"] > expired_at

        organizations = browser.get("/organizations")
        assert organizations.status == 200, organizations.text
        assert organizations.alerts("error") == []
        assert [h.text() for h in organizations.root.find_all("h2")] == ["acme", "globex"]
        acme = organizations.definitions(
            organizations.section("acme").section("Organization token")
        )
        assert acme["Audience (aud)"] == "urn:logto:organization:acme"
        wait_until_expired(harness, bob, SHOPPING)
        assert_shopping_page(harness, browser.get("/shopping"))

    total = since(before, harness)
    # 3 shopping refreshes, 2 organization tokens and 2 organization-level store tokens, 1 more.
    assert total["succeeded"] >= 8, total
    assert total == {**total, "rotated": total["succeeded"], "reuseDetected": 0, "failed": 0}
    harness.assert_running()


def test_concurrent_requests_of_one_session_present_each_refresh_token_once(
    rotating: Harness,
) -> None:
    """Eight pages of alice's session at once, all after her token expired: the client app
    refreshes one at a time, each refresh with the refresh token the one before returned, so
    the issuer never sees a refresh token twice; every page works, and so do later ones (the
    grant was not revoked).

    The SDK caches a token until 60 s before it expires, so with 3-second tokens the waiting
    requests refresh too instead of using the token the first one got: up to eight refreshes,
    in a chain."""
    harness, alice = rotating, rotating.user_id("alice")
    with Browser(harness.client_url) as browser:
        browser.sign_in("alice", harness.password("alice"))
        assert_shopping_page(harness, browser.get("/shopping"))
        expired_at = wait_until_expired(harness, alice, SHOPPING)
        before = refresh_stats(harness)
        start = threading.Barrier(CONCURRENT_REQUESTS)

        def open_shopping(_: int) -> Page:
            with httpx.Client(cookies=browser.http.cookies, timeout=30.0) as http:
                start.wait(timeout=30)
                return Page.of(http.get(f"{harness.client_url}/shopping"))

        with ThreadPoolExecutor(CONCURRENT_REQUESTS) as pool:
            pages = list(pool.map(open_shopping, range(CONCURRENT_REQUESTS)))

        for page in pages:
            assert_shopping_page(harness, page)
        grew = since(before, harness)
        assert 1 <= grew["requests"] <= CONCURRENT_REQUESTS, grew
        # Every refresh presented a refresh token nobody had presented before.
        assert grew == {
            **grew,
            "succeeded": grew["requests"],
            "rotated": grew["requests"],
            "reuseDetected": 0,
            "failed": 0,
        }
        assert claims_of(harness.tokens(subject=alice, audience=SHOPPING)[-1])["exp"] > expired_at

        wait_until_expired(harness, alice, SHOPPING)
        later = refresh_stats(harness)
        assert_shopping_page(harness, browser.get("/shopping"))
        assert since(later, harness) == {
            "requests": 1,
            "succeeded": 1,
            "rotated": 1,
            "reuseDetected": 0,
            "failed": 0,
        }
    harness.assert_running()
