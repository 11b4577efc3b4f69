"""The client app against the real dev issuer (subprocess) and the real resource API (uvicorn),
over loopback: the SDK's flow, our grants and the API's answers, as a browser sees them."""

from __future__ import annotations

import asyncio
import json
import re
import urllib.request
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import jwt
import msgspec
import pytest
from litestar import Litestar

from client_app.app import create_app
from client_app.sessions import COOKIE_NAME, SessionStore
from client_app.settings import Settings
from demo.launcher import ROTATE_KEYS_HEADERS
from tests.client_app.conftest import browser
from tests.client_app.live import (
    CLIENT_PORT,
    RequestLog,
    client_settings,
    serve_resource_api,
    sign_in,
    verified_claims,
)
from tests.dev_issuer.support import (
    CLIENT_ID,
    CLIENT_SECRET,
    SHOPPING,
    STORE,
    DevIssuer,
    parse_form,
    start_dev_issuer,
)

Client = httpx.AsyncClient


@pytest.fixture(scope="module")
def dev_issuer() -> Iterator[DevIssuer]:
    """One dev issuer for the module."""
    issuer = start_dev_issuer("--development", client_port=CLIENT_PORT)
    try:
        yield issuer
    finally:
        issuer.stop()


@pytest.fixture(scope="module")
def resource_api(dev_issuer: DevIssuer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The real resource API, verifying the dev issuer's tokens."""
    with serve_resource_api(dev_issuer, tmp_path_factory.mktemp("api") / "api.sqlite3") as url:
        yield url


@pytest.fixture
def settings(dev_issuer: DevIssuer, resource_api: str, tmp_path: Path) -> Settings:
    """The app's settings; sessions in a real FileStore under ``tmp_path``."""
    return client_settings(dev_issuer, resource_api, tmp_path / "sessions")


@pytest.fixture
def requests_sent() -> RequestLog:
    """Every request the app sends (observed, not mocked)."""
    return RequestLog()


@pytest.fixture
async def app(settings: Settings, requests_sent: RequestLog) -> AsyncIterator[Litestar]:
    """The app, its requests observed by an event hook on its own httpx client."""
    async with httpx.AsyncClient(event_hooks={"request": [requests_sent]}, timeout=10) as http:
        yield create_app(settings, http_client=http)


@pytest.fixture
async def client(app: Litestar, settings: Settings) -> AsyncIterator[Client]:
    """A browser on the app (its own cookie jar)."""
    async with browser(app, settings.base_url) as test_client:
        yield test_client


def text(page: str) -> str:
    """The visible text of a page, whitespace collapsed."""
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", page))


def csrf(page: str) -> str:
    """The CSRF token of a page's forms."""
    match = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert match is not None
    return match.group(1)


async def session_tokens(app: Litestar, client: Client) -> dict[str, str]:
    """The access tokens held in the browser's server-side session, by cache key."""
    sessions: SessionStore = app.state.context.gateway.sessions
    data = await sessions.load(str(client.cookies[COOKIE_NAME]))
    token_map = json.loads(data.get("accessTokenMap") or '{"x": {}}')["x"]
    return {key: entry["token"] for key, entry in token_map.items()}


async def test_alice_signs_in_and_sees_who_she_is(client: Client, dev_issuer: DevIssuer) -> None:
    """Sign-in through the issuer's form; home, ID-token claims and userinfo pages."""
    done = await sign_in(client, dev_issuer, "alice")
    assert done.status_code == 303

    home = text((await client.get("/")).text)
    assert "Welcome, Alice Example" in home
    claims = text((await client.get("/claims")).text)
    assert "User ID (sub) usralice0001" in claims
    assert "Organizations acme" in claims
    userinfo = text((await client.get("/protected/userinfo")).text)
    assert "Custom data plan free" in userinfo
    assert "Linked identities github" in userinfo
    me = (await client.get("/protected/me.json")).json()
    assert me["aud"] == CLIENT_ID
    assert me["organization_roles"] == ["acme:member"]


@pytest.mark.parametrize(
    ("username", "page", "resource", "scope"),
    [
        pytest.param("alice", "/shopping", SHOPPING, "shopping:read", id="alice-shopping"),
        pytest.param("alice", "/store", STORE, None, id="alice-store-none"),
        pytest.param("bob", "/shopping", SHOPPING, "shopping:read shopping:write", id="bob"),
        pytest.param("bob", "/store", STORE, "store:read store:write", id="bob-store"),
    ],
)
async def test_each_resource_gets_its_own_token(
    *,
    app: Litestar,
    client: Client,
    dev_issuer: DevIssuer,
    username: str,
    page: str,
    resource: str,
    scope: str | None,
) -> None:
    """The page's token is a signed JWT for that API with exactly the user's permissions."""
    await sign_in(client, dev_issuer, username)
    assert (await client.get(page)).status_code == 200

    claims = await verified_claims(
        dev_issuer, (await session_tokens(app, client))[resource], resource
    )
    assert claims["sub"] == dev_issuer.user_id(username)
    assert claims.get("scope") == scope


async def test_bob_places_an_order_through_the_real_api(
    client: Client, dev_issuer: DevIssuer
) -> None:
    """The form posts to the API with bob's token; the order is listed afterwards."""
    await sign_in(client, dev_issuer, "bob")
    token = csrf((await client.get("/shopping")).text)

    placed = await client.post(
        "/shopping/orders",
        data={"csrf_token": token, "sku": "green-tea", "quantity": "2", "note": "gift"},
        follow_redirects=False,
    )

    assert placed.status_code == 303
    assert placed.headers["location"].startswith("/shopping?created=")
    page = text((await client.get(placed.headers["location"])).text)
    assert "was placed" in page
    assert "2 \u00d7 green-tea gift" in page


async def test_the_api_403_names_the_missing_permission(
    client: Client, dev_issuer: DevIssuer
) -> None:
    """Alice reads orders but cannot place one, and cannot read the store: the pages say
    which permission the API's challenge named."""
    await sign_in(client, dev_issuer, "alice")
    token = csrf((await client.get("/shopping")).text)

    refused = await client.post(
        "/shopping/orders", data={"csrf_token": token, "sku": "tea", "quantity": "1"}
    )
    assert refused.status_code == 403
    assert "lacks the permission shopping:write" in refused.text
    store = await client.get("/store")
    assert store.status_code == 200
    assert "lacks the permission store:read" in store.text


async def test_organizations_page(
    app: Litestar, client: Client, dev_issuer: DevIssuer, requests_sent: RequestLog
) -> None:
    """Bob in acme: an organization token lists members; the organization-level store token,
    obtained with resource and organization_id together, reads acme's catalog."""
    await sign_in(client, dev_issuer, "bob")

    page = await client.get("/organizations")

    assert page.status_code == 200
    body = text(page.text)
    assert "acme Your roles: admin" in body
    assert "globex Your roles: member" in body
    assert "urn:logto:organization:acme" in body
    assert dev_issuer.user_id("bob") in body  # the members list
    assert "lacks the permission" not in body.split("globex")[0]
    grants = requests_sent.token_grants(resource=STORE, organization_id="acme")
    assert len(grants) == 1
    tokens = await session_tokens(app, client)
    org_level = await verified_claims(
        dev_issuer, tokens[f"{STORE}#organization_id=acme"], audience=STORE
    )
    assert org_level["organization_id"] == "acme"
    assert org_level["scope"] == "store:read store:write"
    organization = await verified_claims(
        dev_issuer,
        tokens["urn:logto:organization:acme"],
        audience="urn:logto:organization:acme",
    )
    assert organization["scope"] == "read:members"  # bob may do more; the app asks for this only


async def test_a_member_without_store_rights_is_told(client: Client, dev_issuer: DevIssuer) -> None:
    """Alice's acme token lists members; her organization-level store token has no
    permission and the API's refusal is shown in acme's card."""
    await sign_in(client, dev_issuer, "alice")
    body = text((await client.get("/organizations")).text)
    members = body.split("Members User ID First seen")[1].split("Organization-level")[0]
    assert dev_issuer.user_id("alice") in members
    assert "none: no permission on this API Organization (organization_id) acme" in body
    assert "lacks the permission store:read" in body


async def test_sign_out(
    app: Litestar, client: Client, dev_issuer: DevIssuer, settings: Settings
) -> None:
    """Sign-out empties the session, revokes the refresh token (the issuer refuses it
    afterwards), and Logto's end-session page brings the browser home."""
    await sign_in(client, dev_issuer, "alice")
    sessions: SessionStore = app.state.context.gateway.sessions
    refresh_token = (await sessions.load(str(client.cookies[COOKIE_NAME]))).get("refreshToken")
    assert refresh_token is not None

    answer = await client.post(
        "/sign-out", data={"csrf_token": csrf((await client.get("/")).text)}, follow_redirects=False
    )

    end_session = answer.headers["location"]
    assert end_session.startswith(f"{dev_issuer.issuer}/session/end?")
    assert parse_qs(urlsplit(end_session).query)["post_logout_redirect_uri"] == [
        settings.post_logout_redirect_uri
    ]
    async with httpx.AsyncClient() as browser:
        form = parse_form((await browser.get(end_session)).text, end_session)
        back = await browser.post(form.action, data=form.fields)
        assert back.headers["location"] == settings.post_logout_redirect_uri
        refused = await browser.post(
            f"{dev_issuer.issuer}/token",
            data={"grant_type": "refresh_token", "refresh_token": refresh_token},
            auth=(CLIENT_ID, CLIENT_SECRET),
        )
    assert refused.json()["error"] == "invalid_grant"
    assert (await client.get("/claims", follow_redirects=False)).status_code == 303


async def test_the_next_user_on_this_browser_gets_their_own_tokens(
    app: Litestar, client: Client, dev_issuer: DevIssuer
) -> None:
    """Bob signs in on the browser Alice used without signing out: nothing of Alice's
    (ID token, cached API tokens) is left in the session."""
    await sign_in(client, dev_issuer, "alice")
    await client.get("/shopping")
    await client.get("/organizations")

    await sign_in(client, dev_issuer, "bob")

    assert "Welcome, Bob Example" in text((await client.get("/")).text)
    await client.get("/shopping")
    tokens = await session_tokens(app, client)
    assert "urn:logto:organization:acme" not in tokens
    shopping = await verified_claims(dev_issuer, tokens[SHOPPING], SHOPPING)
    assert shopping["sub"] == dev_issuer.user_id("bob")


async def test_concurrent_requests_refresh_once(
    client: Client, dev_issuer: DevIssuer, requests_sent: RequestLog
) -> None:
    """Two pages needing the same new token at once: one refresh grant; the other request
    waits for it and uses the cached token; the session keeps working."""
    await sign_in(client, dev_issuer, "bob")

    pages = await asyncio.gather(client.get("/shopping"), client.get("/shopping"))

    assert [p.status_code for p in pages] == [200, 200]
    assert len(requests_sent.token_grants(grant_type="refresh_token", resource=SHOPPING)) == 1
    assert (await client.get("/store")).status_code == 200


async def test_sign_up_opens_the_registration_form(client: Client, dev_issuer: DevIssuer) -> None:
    """``/sign-in?first_screen=register``: the issuer shows registration; the new user is in."""
    done = await sign_in(
        client,
        dev_issuer,
        "newcomer",
        path="/sign-in?first_screen=register",
        form_values={"username": "newcomer", "password": "newcomer-password"},
    )
    assert done.status_code == 303
    me = (await client.get("/protected/me.json")).json()
    assert me["username"] == "newcomer"


async def test_sessions_survive_a_restart(
    client: Client, dev_issuer: DevIssuer, settings: Settings
) -> None:
    """A new app process on the same session directory still knows the browser's session."""
    await sign_in(client, dev_issuer, "alice")
    cookie = str(client.cookies[COOKIE_NAME])

    async with browser(create_app(settings), settings.base_url) as restarted:
        restarted.cookies.set(COOKIE_NAME, cookie)
        assert (await restarted.get("/protected/me.json")).json()["username"] == "alice"


async def test_id_token_keys_are_fetched_without_blocking_io(
    client: Client, dev_issuer: DevIssuer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Against the real issuer too, PyJWKClient's urllib is never used."""

    def blocking(*args: object, **kwargs: object) -> None:
        raise AssertionError("blocking network I/O on the event loop")

    monkeypatch.setattr(jwt.PyJWKClient, "fetch_data", blocking)
    monkeypatch.setattr(urllib.request, "urlopen", blocking)

    assert (await sign_in(client, dev_issuer, "bob")).status_code == 303
    assert (await client.get("/store")).status_code == 200


async def test_a_rotated_key_is_used_at_once(tmp_path: Path) -> None:
    """Right after Logto rotates its signing key, refreshed ID tokens (new kid) verify."""
    issuer = start_dev_issuer("--development", client_port=CLIENT_PORT)
    try:
        settings = client_settings(issuer, "http://127.0.0.1:9", tmp_path)
        async with browser(create_app(settings), settings.base_url) as client:
            await sign_in(client, issuer, "bob")
            async with httpx.AsyncClient() as http:
                rotated = await http.post(
                    f"{issuer.endpoint}/dev/rotate-keys", headers=ROTATE_KEYS_HEADERS
                )
                assert rotated.status_code == 200
            page = await client.get("/shopping")  # refresh: new ID token with the new key
            assert page.status_code == 200
            assert "cannot be reached" in page.text  # the API port is closed on purpose
            assert (await client.get("/protected/me.json")).status_code == 200
    finally:
        issuer.stop()


async def test_callback_errors_from_the_real_issuer(client: Client, dev_issuer: DevIssuer) -> None:
    """A denied sign-in and a forged state end on pages that offer to sign in again."""
    started = await client.get("/sign-in", follow_redirects=False)
    state = parse_qs(urlsplit(started.headers["location"]).query)["state"][0]
    denied = await client.get(f"/callback?error=access_denied&state={state}")
    assert denied.status_code == 400
    assert "cancelled" in denied.text
    forged = await client.get("/callback?code=abc&state=forged")
    assert forged.status_code == 400


async def test_an_unreachable_issuer_is_a_503_page(tmp_path: Path, dev_issuer: DevIssuer) -> None:
    """Logto's address answers nothing: sign-in shows a 503 page, home still works."""
    settings = msgspec.structs.replace(
        client_settings(dev_issuer, "http://127.0.0.1:9", tmp_path),
        logto_endpoint="http://127.0.0.1:9",
    )
    async with browser(create_app(settings), settings.base_url) as client:
        page = await client.get("/sign-in")
        assert page.status_code == 503
        assert "Logto cannot be reached" in page.text
        assert (await client.get("/")).status_code == 200
