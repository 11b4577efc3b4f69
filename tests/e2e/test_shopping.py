"""Shopping and store through the client app, as alice, bob and carol see them, checked against
what the resource API holds; and sign-up mode."""

from __future__ import annotations

import uuid

import pytest

from tests.e2e.browser import Browser
from tests.e2e.harness import Harness
from tests.e2e.pages import Page

SHOPPING = "https://shopping.your-app.com/api"
STORE = "https://store.your-app.com/api"


def sign_in(browser: Browser, harness: Harness, username: str) -> Page:
    """Sign ``username`` in and check the greeting."""
    home = browser.sign_in(username, harness.password(username))
    assert home.title.startswith("Welcome, "), home.text
    return home


def test_alice_lists_her_orders_but_may_not_place_one(harness: Harness, browser: Browser) -> None:
    """shopping:read lists orders; the 403 on placing one names the missing shopping:write."""
    sign_in(browser, harness, "alice")
    shopping = browser.get("/shopping")
    assert shopping.status == 200
    assert shopping.alerts("error") == []
    assert "No orders yet." in shopping.section("Your orders").text()
    token = shopping.definitions(shopping.section("Shopping API token"))
    assert token["Audience (aud)"] == SHOPPING
    assert token["Scopes (scope)"] == "shopping:read"
    assert "Your token does not grant shopping:write" in shopping.text

    refused = browser.submit(shopping, "/shopping/orders", sku="ALICE-1", quantity="2")

    assert refused.status == 403
    assert refused.alerts("error") == [
        "Your access token lacks the permission shopping:write needed for this."
    ]
    assert refused.form("/shopping/orders").fields["sku"] == "ALICE-1"  # her input is kept
    alice_token = harness.tokens(subject=harness.user_id("alice"), audience=SHOPPING)[-1]
    assert harness.api("GET", "/shopping/orders", alice_token).json() == {"orders": []}


def test_bob_places_an_order_and_sees_it_listed(harness: Harness, browser: Browser) -> None:
    """shopping:write places the order; the page and the API both list it."""
    sku = f"BOB-{uuid.uuid4().hex[:8]}"
    sign_in(browser, harness, "bob")

    placed = browser.submit(
        browser.get("/shopping"), "/shopping/orders", sku=sku, quantity="3", note="gift wrap"
    )

    assert placed.status == 200
    assert placed.url.startswith(f"{harness.client_url}/shopping?created=")
    order_id = int(placed.url.rsplit("=", 1)[1])
    assert placed.alerts("success") == [f"Order #{order_id} was placed."]
    rows = placed.table_rows(placed.section("Your orders"))
    assert [str(order_id), f"3 \N{MULTIPLICATION SIGN} {sku}", "gift wrap"] in [
        row[:3] for row in rows
    ]
    bob_token = harness.tokens(subject=harness.user_id("bob"), audience=SHOPPING)[-1]
    order = harness.api("GET", f"/shopping/orders/{order_id}", bob_token).json()
    assert order["items"] == [{"sku": sku, "quantity": 3}]
    assert order["note"] == "gift wrap"


def test_bob_adds_a_product_to_the_store(harness: Harness, browser: Browser) -> None:
    """store:write adds a product; the catalog on the page and in the API shows it."""
    name = f"Lamp {uuid.uuid4().hex[:8]}"
    sign_in(browser, harness, "bob")
    store = browser.get("/store")
    assert store.alerts("error") == []
    scopes = store.definitions(store.section("Store API token"))["Scopes (scope)"]
    assert scopes.split() == ["store:read", "store:write"]

    added = browser.submit(store, "/store/products", name=name, price="12.50")

    product_id = int(added.url.rsplit("=", 1)[1])
    assert added.alerts("success") == [f"Product #{product_id} was added."]
    assert [str(product_id), name, "12.50"] in [row[:3] for row in added.table_rows()]
    bob_token = harness.tokens(subject=harness.user_id("bob"), audience=STORE)[-1]
    products = harness.api("GET", "/store/products", bob_token).json()["products"]
    assert {"id": product_id, "name": name, "price_cents": 1250} in [
        {key: product[key] for key in ("id", "name", "price_cents")} for product in products
    ]


def test_carol_is_refused_everywhere_with_a_clear_message(
    harness: Harness, browser: Browser
) -> None:
    """No role, no organization: every page says what is missing, none fails."""
    sign_in(browser, harness, "carol")

    shopping = browser.get("/shopping")
    assert shopping.status == 200
    orders = shopping.section("Your orders").text()
    assert "Your access token lacks the permission shopping:read needed for this." in orders
    assert shopping.form("/permissions/check").fields["scope"] == "shopping:read"
    token = shopping.definitions(shopping.section("Shopping API token"))
    assert token["Scopes (scope)"] == "none: no permission on this API"
    order = browser.submit(shopping, "/shopping/orders", sku="CAROL-1", quantity="1")
    assert order.status == 403
    assert "Your access token lacks the permission shopping:write needed for this." in (
        order.alerts("error")
    )
    store = browser.get("/store")
    catalog = store.section("Catalog").text()
    assert "Your access token lacks the permission store:read needed for this." in catalog
    assert store.form("/permissions/check").fields["scope"] == "store:read"
    product = browser.submit(store, "/store/products", name="Nope", price="1")
    assert product.status == 403
    assert "Your access token lacks the permission store:write needed for this." in (
        product.alerts("error")
    )
    organizations = browser.get("/organizations")
    assert "You are not a member of any organization." in organizations.text

    carol_token = harness.tokens(subject=harness.user_id("carol"), audience=SHOPPING)[-1]
    refused = harness.api("GET", "/shopping/orders", carol_token)
    assert refused.status_code == 403
    assert refused.json()["error"] == "insufficient_scope"


@pytest.mark.parametrize(
    "query", ["first_screen=register", "interaction_mode=signUp"], ids=["first-screen", "legacy"]
)
def test_sign_up_mode_lands_on_the_registration_page(
    harness: Harness, browser: Browser, query: str
) -> None:
    """ "Create an account" opens the issuer's registration form; the new user lands signed in,
    with no permission yet."""
    registration = browser.get(f"/sign-in?{query}")
    assert registration.url.startswith(harness.issuer_url)
    assert registration.title == "Create your account"
    assert set(registration.form().fields) == {"username", "password", "email", "name"}
    username = f"new_{uuid.uuid4().hex[:8]}"

    home = browser.submit(
        registration, username=username, password="long-enough-password", name="New Person"
    )

    assert home.url == f"{harness.client_url}/", home.text
    assert home.title == "Welcome, New Person"
    assert "lacks the permission shopping:read" in browser.get("/shopping").text
