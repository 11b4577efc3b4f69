"""Logto's organization patterns through the client app (logto-tokens.md §3): organization
tokens for members, organization-level API tokens bound to one organization, and the refusals
around them, on the page and at the resource API."""

from __future__ import annotations

from tests.e2e.browser import Browser
from tests.e2e.harness import Harness, claims_of
from tests.e2e.pages import Element, Page

STORE = "https://store.your-app.com/api"


def organizations_of(browser: Browser, harness: Harness, username: str) -> Page:
    """Sign ``username`` in and open the organizations page."""
    browser.sign_in(username, harness.password(username))
    page = browser.get("/organizations")
    assert page.status == 200, page.text
    return page


def card(page: Page, organization: str) -> Element:
    """The card of one organization."""
    return page.section(organization)


def test_a_member_gets_an_organization_token_and_lists_the_members(
    harness: Harness, browser: Browser
) -> None:
    """alice (member of acme): organization token with read:members; she is listed."""
    page = organizations_of(browser, harness, "alice")

    acme = card(page, "acme")
    assert "Your roles: member" in acme.text()
    members_column = acme.section("Organization token")
    members_token = page.definitions(members_column)
    assert members_token["Audience (aud)"] == "urn:logto:organization:acme"
    assert members_token["Scopes (scope)"] == "read:members"
    alice = harness.user_id("alice")
    assert alice in [row[0] for row in page.table_rows(members_column)]
    token = harness.tokens(subject=alice, audience="urn:logto:organization:acme")[-1]
    members = harness.api("GET", "/organizations/acme/members", token).json()["members"]
    assert alice in [member["user_id"] for member in members]


def test_a_non_member_gets_no_organization_token(harness: Harness, browser: Browser) -> None:
    """dave is not in acme: no acme card, and his globex token is refused on acme's route."""
    page = organizations_of(browser, harness, "dave")

    assert [h.text() for h in page.root.find_all("h2")] == ["globex"]
    dave = harness.user_id("dave")
    globex_token = harness.tokens(subject=dave, audience="urn:logto:organization:globex")[-1]
    assert harness.api("GET", "/organizations/globex/members", globex_token).status_code == 200
    refused = harness.api("GET", "/organizations/acme/members", globex_token)
    assert refused.status_code == 401
    assert refused.json()["error"] == "invalid_token"


def test_organization_level_token_is_accepted_for_its_organization_only(
    harness: Harness, browser: Browser
) -> None:
    """dave (admin of globex) reads globex's catalog with an organization-level store token,
    which the API refuses (403) on acme's catalog."""
    page = organizations_of(browser, harness, "dave")

    globex = card(page, "globex")
    token_rows = page.definitions(globex.section("Organization-level store token"))
    assert token_rows["Audience (aud)"] == STORE
    assert token_rows["Organization (organization_id)"] == "globex"
    assert token_rows["Scopes (scope)"].split() == ["store:read", "store:write"]
    assert page.alerts("error") == []
    assert "The organization's catalog is empty." in globex.text()
    dave = harness.user_id("dave")
    token = next(
        t
        for t in reversed(harness.tokens(subject=dave, audience=STORE))
        if claims_of(t).get("organization_id") == "globex"
    )
    assert harness.api("GET", "/organizations/globex/store/products", token).status_code == 200
    refused = harness.api("GET", "/organizations/acme/store/products", token)
    assert refused.status_code == 403
    assert refused.json()["error"] == "insufficient_scope"
    assert 'error="insufficient_scope"' in refused.headers["www-authenticate"]
    # Issue 9 #8: the globex-level token is for globex's resources, not the global catalog.
    product = {"name": "Through a globex-level token", "price_cents": 3}
    global_route = harness.api("POST", "/store/products", token, json=product)
    assert (global_route.status_code, global_route.json()) == (
        403,
        {
            "error": "insufficient_scope",
            "error_description": "This route takes a global token of this API; the access "
            "token is bound to an organization.",
        },
    )


def test_a_global_token_carries_organization_rights_but_not_onto_organization_routes(
    harness: Harness, browser: Browser
) -> None:
    """dave has no global role, yet his global store token carries globex's store rights
    (Logto's union of organization roles, logto-tokens.md §3): the global catalog takes his
    product; globex's catalog refuses that token and needs an organization-level one."""
    organizations_of(browser, harness, "dave")
    store = browser.get("/store")
    scopes = store.definitions(store.section("Store API token"))["Scopes (scope)"]
    assert scopes.split() == ["store:read", "store:write"]

    added = browser.submit(store, "/store/products", name="Through globex", price="3")

    assert added.alerts("success") != [], added.text
    dave = harness.user_id("dave")
    global_token = next(
        t
        for t in reversed(harness.tokens(subject=dave, audience=STORE))
        if "organization_id" not in claims_of(t)
    )
    refused = harness.api("GET", "/organizations/globex/store/products", global_token)
    assert refused.status_code == 403
    assert refused.json() == {
        "error": "insufficient_scope",
        "error_description": "This route needs an organization-level token for this organization.",
    }


def test_a_member_without_the_permission_is_refused_the_organization_catalog(
    harness: Harness, browser: Browser
) -> None:
    """alice is a member of acme without store rights: the catalog panel names what is
    missing, the members panel still works."""
    page = organizations_of(browser, harness, "alice")

    catalog = card(page, "acme").section("Organization-level store token")

    assert "Your access token lacks the permission store:read needed for this." in catalog.text()
    assert "Check my permissions again" in catalog.text()
    check = page.form("/permissions/check").fields
    assert (check["organization_id"], check["scope"]) == ("acme", "store:read")
    rows = page.definitions(catalog)
    assert rows["Scopes (scope)"] == "none: no permission on this API"
    assert rows["Organization (organization_id)"] == "acme"
