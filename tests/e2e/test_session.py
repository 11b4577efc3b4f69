"""A session over time: the issuer rotating its keys, signing out, and two people taking turns
on one browser."""

from __future__ import annotations

import uuid

import jwt

from tests.e2e.browser import Browser
from tests.e2e.harness import Harness, claims_of
from tests.e2e.pages import Page

SHOPPING = "https://shopping.your-app.com/api"
STORE = "https://store.your-app.com/api"
COOKIE = "client_app_session"


def kid(token: str) -> str:
    """The key id a token names."""
    return str(jwt.get_unverified_header(token)["kid"])


def orders_on(page: Page) -> list[str]:
    """The item cells of the orders table."""
    assert page.alerts("error") == [], page.text
    return [row[1] for row in page.table_rows(page.section("Your orders"))]


def test_key_rotation_in_the_middle_of_a_session_keeps_everything_working(
    harness: Harness, browser: Browser
) -> None:
    """Two rotations while bob stays signed in: his cached token (first key) keeps working
    until its key leaves the JWKS; then the API's 401 makes the client app fetch a new one,
    and bob never sees an error."""
    bob = harness.user_id("bob")
    sku = f"ROTATE-{uuid.uuid4().hex[:8]}"
    browser.sign_in("bob", harness.password("bob"))
    browser.submit(browser.get("/shopping"), "/shopping/orders", sku=sku, quantity="1")
    first = harness.tokens(subject=bob, audience=SHOPPING)[-1]

    second_kid = harness.rotate_keys()["current"]["kid"]
    assert f"1 \N{MULTIPLICATION SIGN} {sku}" in orders_on(browser.get("/shopping"))
    assert browser.get("/store").alerts("error") == []  # a new token, signed with the new key
    assert kid(harness.tokens(subject=bob, audience=STORE)[-1]) == second_kid

    third_kid = harness.rotate_keys()["current"]["kid"]  # the first key leaves the JWKS
    with harness.browser() as other:  # alice's new token makes the API refetch the keys
        other.sign_in("alice", harness.password("alice"))
        assert other.get("/shopping").alerts("error") == []
    assert kid(harness.tokens(subject=harness.user_id("alice"), audience=SHOPPING)[-1]) == (
        third_kid
    )
    shopping = browser.get("/shopping")

    assert shopping.status == 200
    assert f"1 \N{MULTIPLICATION SIGN} {sku}" in orders_on(shopping)
    answers = [
        (kid(token), exchange.status)
        for exchange in harness.exchanges
        if exchange.path == "/shopping/orders"
        and (token := exchange.request_headers["authorization"].split()[1])
        in harness.tokens(subject=bob, audience=SHOPPING)
    ]
    assert answers[-2:] == [(kid(first), 401), (third_kid, 200)]


def test_sign_out_clears_the_session(harness: Harness, browser: Browser) -> None:
    """After sign-out the browser has no session cookie, the pages ask for a sign-in, the old
    cookie opens nothing, and the issuer asks for the password again."""
    home = browser.sign_in("bob", harness.password("bob"))
    old_cookie = browser.cookie(COOKIE)
    assert old_cookie is not None

    signed_out = browser.sign_out(home)

    assert signed_out.url == f"{harness.client_url}/"
    assert signed_out.title == "You are not signed in"
    assert browser.cookie(COOKIE) is None
    assert browser.get("/shopping").url.startswith(harness.issuer_url)  # the sign-in form
    with harness.browser() as replay:
        replay.http.cookies.set(COOKIE, old_cookie)
        me = replay.http.get(f"{harness.client_url}/protected/me.json")
        assert me.status_code == 401
        assert me.json()["error"] == "not_authenticated"
    assert browser.sign_in("bob", harness.password("bob")).title == "Welcome, Bob Example"


def test_two_people_taking_turns_on_one_browser_never_see_each_other(
    harness: Harness, browser: Browser
) -> None:
    """bob, then alice, then bob again in one cookie jar: each page and each API call is the
    signed-in person's own."""
    bob, alice = harness.user_id("bob"), harness.user_id("alice")
    sku = f"TURNS-{uuid.uuid4().hex[:8]}"
    home = browser.sign_in("bob", harness.password("bob"))
    placed = browser.submit(browser.get("/shopping"), "/shopping/orders", sku=sku, quantity="2")
    assert f"2 \N{MULTIPLICATION SIGN} {sku}" in orders_on(placed)
    browser.sign_out(home)
    since = len(harness.exchanges)

    home = browser.sign_in("alice", harness.password("alice"))

    assert home.title == "Welcome, Alice Example"
    shopping = browser.get("/shopping")
    assert orders_on(shopping) == []
    assert sku not in shopping.text
    claims = browser.get("/claims")
    assert claims.definitions()["User ID (sub)"] == alice
    assert [h.text() for h in browser.get("/organizations").root.find_all("h2")] == ["acme"]
    subjects = {
        claims_of(exchange.request_headers["authorization"].split()[1]).get("sub")
        for exchange in harness.exchanges[since:]
    }
    assert subjects == {alice}
    browser.sign_out(home)
    browser.sign_in("bob", harness.password("bob"))
    assert f"2 \N{MULTIPLICATION SIGN} {sku}" in orders_on(browser.get("/shopping"))
    assert bob in {
        claims_of(exchange.request_headers["authorization"].split()[1]).get("sub")
        for exchange in harness.exchanges[-1:]
    }
