"""Asking again for a missing permission, with the real programs: alice is refused an order,
an administrator gives her a role (the dev issuer's ``POST /dev/users/alice/roles``, as Logto's
Console would), "Check my permissions again" gets a new token with her refresh token, and the
order goes through, all in the same session: no new sign-in.

These tests change alice's roles and place her orders: they run on a stack of their own, so the
other scenarios still find the seeded alice with no order."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from client_app.sessions import COOKIE_NAME
from tests.e2e.browser import Browser
from tests.e2e.harness import Harness, claims_of, start_harness, until_stopped
from tests.e2e.pages import Page
from tests.e2e.proxy import Exchange

SHOPPING = "https://shopping.your-app.com/api"
ALICE_ROLES = ["shopping-reader"]
"""Her roles in the seed, given back after each test."""


@pytest.fixture(scope="module")
def harness(
    tmp_path_factory: pytest.TempPathFactory, exchanges: list[Exchange]
) -> Iterator[Harness]:
    """Issuer, API and client app for this module alone (its requests recorded for the
    contract tests like everyone's)."""
    yield from until_stopped(start_harness(tmp_path_factory.mktemp("e2e-step-up"), exchanges))


@pytest.fixture
def alice(harness: Harness) -> Iterator[Browser]:
    """Alice signed in on a fresh browser; her seeded roles are given back afterwards."""
    assert harness.set_roles("alice", roles=ALICE_ROLES) == ALICE_ROLES
    with harness.browser() as browser:
        home = browser.sign_in("alice", harness.password("alice"))
        assert home.title.startswith("Welcome, "), home.text
        try:
            yield browser
        finally:
            harness.set_roles("alice", roles=ALICE_ROLES)
    harness.assert_running()


def refused_order(browser: Browser, sku: str) -> Page:
    """Alice's order refused: the 403 page names shopping:write and offers the check."""
    refused = browser.submit(browser.get("/shopping"), "/shopping/orders", sku=sku, quantity="1")
    assert refused.status == 403
    assert refused.alerts("error") == [
        "Your access token lacks the permission shopping:write needed for this."
    ]
    check = refused.form("/permissions/check")
    assert check.method == "post"
    assert {key: check.fields[key] for key in ("resource", "scope", "return_to")} == {
        "resource": SHOPPING,
        "scope": "shopping:write",
        "return_to": "/shopping",
    }
    assert check.fields["csrf_token"]
    assert "Check my permissions again" in refused.text
    return refused


def test_a_role_granted_meanwhile_lets_alice_order_without_signing_in_again(
    harness: Harness, alice: Browser
) -> None:
    """Refused → role granted → "Check my permissions again" → granted → order placed; the
    session (its cookie) is the same throughout, and the new token came from a refresh."""
    session = alice.cookie(COOKIE_NAME)
    refused = refused_order(alice, "ALICE-STEP-UP")
    assert harness.set_roles("alice", add=["shopping-writer"]) == [
        "shopping-reader",
        "shopping-writer",
    ]
    refreshes = harness.refresh_stats()["succeeded"]

    checked = alice.submit(refused, "/permissions/check")

    assert checked.status == 200
    assert checked.url.startswith(f"{harness.client_url}/shopping?checked=shopping%3Awrite")
    assert checked.alerts("success") == [
        "Permission shopping:write is now granted. You can try again."
    ]
    token = checked.definitions(checked.section("Shopping API token"))
    assert token["Scopes (scope)"].split() == ["shopping:read", "shopping:write"]
    assert harness.refresh_stats()["succeeded"] == refreshes + 1

    placed = alice.submit(checked, "/shopping/orders", sku="ALICE-STEP-UP", quantity="1")

    assert placed.status == 200
    assert placed.url.startswith(f"{harness.client_url}/shopping?created="), placed.text
    order_id = placed.url.rsplit("=", 1)[1]
    assert placed.alerts("success") == [f"Order #{order_id} was placed."]
    assert alice.cookie(COOKIE_NAME) == session, "no new sign-in: the same session"
    sent = harness.tokens(subject=harness.user_id("alice"), audience=SHOPPING)[-1]
    assert claims_of(sent)["scope"].split() == ["shopping:read", "shopping:write"]


def test_without_a_role_change_the_check_names_the_missing_permission(
    harness: Harness, alice: Browser
) -> None:
    """Nobody granted anything: the new token still lacks shopping:write, and the page says
    so, naming it and who can grant it; the order is still refused."""
    refused = refused_order(alice, "ALICE-NO-ROLE")

    checked = alice.submit(refused, "/permissions/check")

    assert checked.status == 200
    (warning,) = checked.alerts("warning")
    assert warning.startswith(
        "Permission shopping:write is still missing from your new access token."
    )
    assert "assign a role that includes shopping:write" in warning
    again = alice.submit(checked, "/shopping/orders", sku="ALICE-NO-ROLE", quantity="1")
    assert again.status == 403
