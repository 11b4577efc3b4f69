"""Asking again for a missing permission (``client_app.step_up``, ``POST /permissions/check``)
over HTTP, with a respx-served Logto and API: the offer on a 403 ``insufficient_scope``, a new
token from the refresh token, the page's verdict, the rate limit, CSRF, bad forms and a failing
issuer."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
import respx
from litestar import Litestar
from litestar.stores.memory import MemoryStore

from client_app.app import create_app
from client_app.settings import Settings
from client_app.step_up import CHECK_INTERVAL_SECONDS
from tests.client_app.conftest import API_URL, browser, browser_sign_in
from tests.client_app.fake_logto import SHOPPING, STORE, USERS, FakeLogto
from tests.client_app.test_app import form_token, text

Client = httpx.AsyncClient
FORBIDDEN_WRITE = httpx.Response(
    403,
    json={"error": "insufficient_scope", "error_description": "x"},
    headers={"WWW-Authenticate": 'Bearer error="insufficient_scope", scope="shopping:write"'},
)


class Clock:
    """A clock the test moves forward."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def app(
    settings: Settings, http_client: httpx.AsyncClient, logto: FakeLogto, clock: Clock
) -> Litestar:
    """The app over the fake issuer, on the test's clock."""
    return create_app(settings, http_client=http_client, session_store=MemoryStore(), clock=clock)


@pytest.fixture
async def client(app: Litestar) -> AsyncIterator[Client]:
    async with browser(app) as test_client:
        yield test_client


@pytest.fixture
def api(respx_router: respx.MockRouter) -> respx.MockRouter:
    """The API: alice's orders list, placing one needs shopping:write (read from the token)."""
    respx_router.get(f"{API_URL}/shopping/orders").respond(200, json={"orders": []})
    respx_router.post(f"{API_URL}/shopping/orders").mock(side_effect=[FORBIDDEN_WRITE])
    return respx_router


def check_form(page: str) -> dict[str, str]:
    """The fields of the page's "Check my permissions again" form."""
    start = page.index('action="/permissions/check"')
    form = page[start : page.index("</form>", start)]
    fields = {
        part.split('name="')[1].split('"')[0]: part.split('value="')[1].split('"')[0]
        for part in form.split("<input")[1:]
    }
    assert "Check my permissions again" in form
    return fields


async def refused_order(client: Client, logto: FakeLogto) -> httpx.Response:
    """Alice signs in and is refused an order (403, shopping:write named)."""
    await browser_sign_in(client, logto)
    token = form_token((await client.get("/shopping")).text)
    page = await client.post(
        "/shopping/orders", data={"csrf_token": token, "sku": "tea", "quantity": "1"}
    )
    assert page.status_code == 403
    return page


async def test_a_refused_order_offers_to_check_permissions_again(
    client: Client, logto: FakeLogto, api: respx.MockRouter
) -> None:
    """The 403 page carries a POST form naming the token's API and the missing permission."""
    page = await refused_order(client, logto)

    assert check_form(page.text) == {
        "csrf_token": form_token(page.text),
        "resource": SHOPPING,
        "organization_id": "",
        "scope": "shopping:write",
        "return_to": "/shopping",
    }


async def test_a_role_given_since_sign_in_is_found_without_signing_in_again(
    client: Client, logto: FakeLogto, api: respx.MockRouter, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The check drops the cached shopping token and refreshes: the new token grants
    shopping:write, the page says so and the order goes through. No new sign-in."""
    page = await refused_order(client, logto)
    monkeypatch.setitem(USERS["alice"].scopes, SHOPPING, "shopping:read shopping:write")
    refreshes = len(logto.refresh_grants(resource=SHOPPING))
    codes = len(logto.codes)

    checked = await client.post(
        "/permissions/check", data=check_form(page.text), follow_redirects=False
    )

    assert checked.status_code == 303
    location = urlsplit(checked.headers["location"])
    assert location.path == "/shopping"
    assert parse_qs(location.query) == {"checked": ["shopping:write"], "target": [SHOPPING]}
    assert len(logto.refresh_grants(resource=SHOPPING)) == refreshes + 1
    assert logto.refresh_grants(resource=STORE) == []  # only that API's token was dropped
    shopping = await client.get(checked.headers["location"])
    assert "Permission shopping:write is now granted. You can try again." in text(shopping.text)
    assert "Check my permissions again" not in shopping.text
    order = {"id": 7, "items": [{"sku": "tea", "quantity": 1}], "note": None}
    api.post(f"{API_URL}/shopping/orders").mock(
        side_effect=[httpx.Response(201, json={**order, "created_at": "2026-01-01T00:00:00Z"})]
    )
    placed = await client.post(
        "/shopping/orders",
        data={"csrf_token": form_token(shopping.text), "sku": "tea", "quantity": "1"},
    )
    assert placed.url.path == "/shopping"
    assert "Order #7 was placed." in placed.text
    assert len(logto.codes) == codes  # no new authorization request


async def test_a_permission_still_missing_is_named_with_who_can_grant_it(
    client: Client, logto: FakeLogto, api: respx.MockRouter
) -> None:
    """No role change: the new token still lacks shopping:write, and the page says which
    permission and that an administrator grants it with a role in Logto's Console."""
    page = await refused_order(client, logto)

    shopping = await client.post("/permissions/check", data=check_form(page.text))

    assert shopping.status_code == 200
    body = text(shopping.text)
    assert "Permission shopping:write is still missing from your new access token." in body
    assert "User management → your user → Roles, assign a role that includes shopping:write" in (
        body
    )


async def test_checks_are_rate_limited_per_session_and_token(
    client: Client, logto: FakeLogto, api: respx.MockRouter, clock: Clock
) -> None:
    """A second check of the same token within the interval is a 429 that asks nobody; another
    token may be checked; after the interval the same one again."""
    page = await refused_order(client, logto)
    fields = check_form(page.text)
    assert (await client.post("/permissions/check", data=fields)).status_code == 200
    refreshes = len(logto.token_forms)

    clock.now += CHECK_INTERVAL_SECONDS - 1
    again = await client.post("/permissions/check", data=fields, follow_redirects=False)

    assert again.status_code == 429
    assert again.headers["retry-after"] == "1"
    assert "checked a moment ago" in again.text
    assert len(logto.token_forms) == refreshes  # the issuer was not asked
    store = {**fields, "resource": STORE, "scope": "store:write", "return_to": "/store"}
    assert (
        await client.post("/permissions/check", data=store, follow_redirects=False)
    ).status_code == 303
    clock.now += 1
    later = await client.post("/permissions/check", data=fields, follow_redirects=False)
    assert later.status_code == 303


@pytest.mark.parametrize(
    "change",
    [
        pytest.param({"csrf_token": ""}, id="no-token"),
        pytest.param({"csrf_token": "forged"}, id="forged-token"),
        pytest.param({"Origin": "https://evil.test"}, id="foreign-origin"),
    ],
)
async def test_a_check_needs_this_sessions_csrf_token(
    client: Client, logto: FakeLogto, api: respx.MockRouter, change: dict[str, str]
) -> None:
    """Like every form that changes something: refused, and the issuer is not asked."""
    page = await refused_order(client, logto)
    fields = check_form(page.text)
    headers = {"Origin": change.pop("Origin")} if "Origin" in change else {}
    refreshes = len(logto.token_forms)

    answer = await client.post(
        "/permissions/check", data={**fields, **change}, headers=headers, follow_redirects=False
    )

    assert answer.status_code == 403
    assert "This form" in answer.text
    assert len(logto.token_forms) == refreshes


async def test_a_get_changes_nothing(client: Client, logto: FakeLogto) -> None:
    """No link can start a check."""
    await browser_sign_in(client, logto)
    refreshes = len(logto.token_forms)
    answer = await client.get(f"/permissions/check?resource={SHOPPING}&scope=shopping:write")
    assert answer.status_code == 405
    assert len(logto.token_forms) == refreshes


@pytest.mark.parametrize(
    ("change", "message"),
    [
        pytest.param({"resource": "https://evil.test/api"}, "not one this app calls", id="api"),
        pytest.param({"resource": ""}, "Name the API", id="no-target"),
        pytest.param({"organization_id": "globex"}, "not a member", id="organization"),
        pytest.param({"scope": ""}, "Name the permissions", id="no-scope"),
        pytest.param({"scope": "admin:everything"}, "Name the permissions", id="unknown-scope"),
        pytest.param({"scope": "shopping:write <b>"}, "Name the permissions", id="markup"),
    ],
)
async def test_a_bad_check_form_is_a_400_that_asks_nobody(
    client: Client,
    logto: FakeLogto,
    api: respx.MockRouter,
    change: dict[str, str],
    message: str,
) -> None:
    """Only this app's APIs, the user's organizations and this app's permissions."""
    page = await refused_order(client, logto)
    refreshes = len(logto.token_forms)

    answer = await client.post("/permissions/check", data={**check_form(page.text), **change})

    assert answer.status_code == 400
    assert message in answer.text
    assert "<b>" not in answer.text
    assert len(logto.token_forms) == refreshes


async def test_a_foreign_return_path_goes_home(
    client: Client, logto: FakeLogto, api: respx.MockRouter
) -> None:
    page = await refused_order(client, logto)
    fields = {**check_form(page.text), "return_to": "//evil.test/x"}
    answer = await client.post("/permissions/check", data=fields, follow_redirects=False)
    assert answer.headers["location"].startswith("/?checked=")


async def test_a_revoked_grant_ends_the_session_on_a_page(
    client: Client, logto: FakeLogto, api: respx.MockRouter
) -> None:
    """The refresh token refused (revoked meanwhile): "your session has ended", not a 500."""
    page = await refused_order(client, logto)
    for grant in logto.refresh_tokens.values():
        grant.revoked = True

    answer = await client.post("/permissions/check", data=check_form(page.text))

    assert answer.status_code == 401
    assert "Your session has ended" in answer.text
    assert (await client.get("/protected/me.json")).status_code == 401


async def test_an_issuer_that_is_down_is_a_503_page_and_still_counts(
    client: Client, logto: FakeLogto, api: respx.MockRouter
) -> None:
    """Logto unreachable: the 503 page; the check still counts, so retrying at once is a 429
    (a failing issuer is not hammered either)."""
    page = await refused_order(client, logto)
    fields = check_form(page.text)
    logto.token.mock(side_effect=httpx.ConnectError("refused"))

    answer = await client.post("/permissions/check", data=fields)

    assert answer.status_code == 503
    assert "temporarily unavailable" in answer.text
    assert (await client.post("/permissions/check", data=fields)).status_code == 429


async def test_an_organization_refusal_offers_a_check_for_that_organization(
    client: Client, logto: FakeLogto, respx_router: respx.MockRouter
) -> None:
    """The organization-level store token of acme lacks store:read: acme's card offers the
    check for (store, acme), and coming back the card says what the new token grants."""
    respx_router.get(f"{API_URL}/organizations/acme/members").respond(
        200, json={"organization_id": "acme", "members": []}
    )
    respx_router.get(f"{API_URL}/organizations/acme/store/products").respond(
        403,
        json={"error": "insufficient_scope"},
        headers={"WWW-Authenticate": 'Bearer error="insufficient_scope", scope="store:read"'},
    )
    await browser_sign_in(client, logto)
    page = await client.get("/organizations")
    fields = check_form(page.text)
    assert (fields["resource"], fields["organization_id"], fields["scope"]) == (
        STORE,
        "acme",
        "store:read",
    )

    back = await client.post("/permissions/check", data=fields)

    assert back.url.path == "/organizations"
    assert parse_qs(back.url.query.decode())["target"] == [f"{STORE}#organization_id=acme"]
    body = text(back.text)
    assert "Permission store:read is still missing from your new access token." in body
    assert "An administrator of organization acme can grant it" in body
