"""Keys and tokens over time on a stack of its own: 3-second access tokens, an API that
tolerates no clock skew (an expired token is refused, so the client app must refresh it) and
keeps its default 30-second JWKS cooldown."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import jwt
import pytest

from tests.e2e.browser import Browser
from tests.e2e.harness import Harness, claims_of, start_harness
from tests.e2e.proxy import Exchange

TTL_SECONDS = 3
SHOPPING = "https://shopping.your-app.com/api"


@pytest.fixture(scope="module")
def short_lived(
    tmp_path_factory: pytest.TempPathFactory, exchanges: list[Exchange]
) -> Iterator[Harness]:
    """Issuer, API and client app with 3-second access tokens, no leeway and the default
    cooldown at the API."""
    running = start_harness(
        tmp_path_factory.mktemp("e2e-short-tokens"),
        exchanges,
        access_token_ttl=TTL_SECONDS,
        api_environ={"LOGTO_LEEWAY_SECONDS": "0", "LOGTO_JWKS_COOLDOWN_SECONDS": "30"},
    )
    try:
        yield running
    finally:
        running.stop()


def test_an_expired_access_token_is_refreshed(short_lived: Harness) -> None:
    """Once bob's token has expired (the API refuses it), the next page gets a new one by
    itself and bob sees his orders and can place another."""
    harness, bob = short_lived, short_lived.user_id("bob")
    sku = f"REFRESH-{uuid.uuid4().hex[:8]}"
    with Browser(harness.client_url) as browser:
        browser.sign_in("bob", harness.password("bob"))
        browser.submit(browser.get("/shopping"), "/shopping/orders", sku=sku, quantity="1")
        expired = harness.tokens(subject=bob, audience=SHOPPING)[-1]
        expires_at = claims_of(expired)["exp"]
        time.sleep(max(0.0, expires_at - time.time()) + 1.1)
        refused = harness.api("GET", "/shopping/orders", expired)
        assert refused.status_code == 401
        assert 'error="invalid_token"' in refused.headers["www-authenticate"]

        shopping = browser.get("/shopping")

        assert shopping.status == 200
        assert shopping.alerts("error") == []
        assert [row[1] for row in shopping.table_rows()] == [f"1 \N{MULTIPLICATION SIGN} {sku}"]
        assert claims_of(harness.tokens(subject=bob, audience=SHOPPING)[-1])["exp"] > expires_at
        shown = shopping.definitions(shopping.section("Shopping API token"))["Expires (exp)"]
        shown_at = datetime.strptime(shown[:23], "%Y-%m-%d %H:%M:%S UTC").replace(tzinfo=UTC)
        assert shown_at.timestamp() > expires_at  # the page describes the new token
        again = browser.submit(shopping, "/shopping/orders", sku=sku, quantity="2")
        assert again.alerts("success") != []
    harness.assert_running()


def test_a_rotation_right_after_the_api_fetched_its_keys_is_no_outage(
    short_lived: Harness,
) -> None:
    """The API fetched the keys at start-up seconds ago; the issuer rotates (immediately, as
    self-hosted Logto does): the first token signed with the new key is accepted at once."""
    harness = short_lived
    new_kid = harness.rotate_keys()["current"]["kid"]
    with Browser(harness.client_url) as browser:
        browser.sign_in("alice", harness.password("alice"))

        shopping = browser.get("/shopping")

        assert shopping.alerts("error") == []
        assert "No orders yet." in shopping.section("Your orders").text()
    token = harness.tokens(subject=harness.user_id("alice"), audience=SHOPPING)[-1]
    assert jwt.get_unverified_header(token)["kid"] == new_kid
    harness.assert_running()
