"""The app over HTTP (respx-served Logto and API): sessions, the guard, CSRF, sign-out, the
callback's failures and the API's answers, each ending on a page and never on a 500."""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlsplit

import httpx
import jwt
import pytest
import respx
from litestar import Litestar, get
from litestar.stores.memory import MemoryStore

from client_app.app import create_app
from client_app.display import format_time
from client_app.gateway import REACHABILITY_TTL_SECONDS
from client_app.security import csrf_token
from client_app.sessions import COOKIE_NAME, new_session_id
from client_app.settings import Settings
from client_app.sign_in_attempts import ATTEMPT_COOKIE_NAME
from tests.client_app.conftest import API_URL, BASE_URL, browser, browser_sign_in
from tests.client_app.fake_logto import CLIENT_ID, ISSUER, SHOPPING, FakeLogto

Client = httpx.AsyncClient


def session_of(client: Client) -> str:
    """The session id the browser holds."""
    return str(client.cookies[COOKIE_NAME])


def form_token(page: str) -> str:
    """The CSRF token of the first form of a page."""
    match = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert match is not None, "no CSRF token on the page"
    return match.group(1)


def text(page: str) -> str:
    """The visible text of a page, whitespace collapsed."""
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", page))


async def test_home_offers_sign_in_and_sign_up(client: Client) -> None:
    """Signed out: a sign-in button and a create-account button, no session created."""
    page = await client.get("/")
    assert page.status_code == 200
    assert 'href="/sign-in"' in page.text
    assert 'href="/sign-in?first_screen=register"' in page.text
    assert "set-cookie" not in page.headers


async def test_sign_in_redirects_to_logto_with_an_attempt_cookie(client: Client) -> None:
    """The sign-in URL carries the redirect URI, both resources, PKCE and state; the only
    cookie is the sealed attempt (no session yet: ``test_sign_in_attempts.py``)."""
    answer = await client.get("/sign-in", follow_redirects=False)

    assert answer.status_code == 303
    url = urlsplit(answer.headers["location"])
    params = parse_qs(url.query)
    assert f"{url.scheme}://{url.netloc}{url.path}" == f"{ISSUER}/auth"
    assert params["redirect_uri"] == [f"{BASE_URL}/callback"]
    assert params["client_id"] == [CLIENT_ID]
    assert params["code_challenge_method"] == ["S256"]
    assert "interaction_mode" not in params
    cookie = answer.headers["set-cookie"]
    assert re.match(rf"{ATTEMPT_COOKIE_NAME}=[A-Za-z0-9_-]+; HttpOnly;", cookie)
    assert "SameSite=lax" in cookie
    assert COOKIE_NAME not in client.cookies


@pytest.mark.parametrize(
    "query",
    ["first_screen=register", "interaction_mode=signUp"],
    ids=["first-screen", "interaction-mode"],
)
async def test_sign_up_opens_the_registration_form(client: Client, query: str) -> None:
    """Both spellings ask Logto for the registration screen, old and new parameter."""
    answer = await client.get(f"/sign-in?{query}", follow_redirects=False)
    params = parse_qs(urlsplit(answer.headers["location"]).query)
    assert params["interaction_mode"] == ["signUp"]
    assert params["first_screen"] == ["register"]


async def test_callback_signs_in_with_a_new_session_id(client: Client, logto: FakeLogto) -> None:
    """The callback rotates the session id (no fixation) and goes home."""
    started = await client.get("/sign-in", follow_redirects=False)
    assert COOKIE_NAME not in client.cookies
    done = await client.get(
        f"/callback?{logto.authorize(started.headers['location'])}", follow_redirects=False
    )

    assert done.status_code == 303
    assert done.headers["location"] == "/"
    assert re.fullmatch(r"[A-Za-z0-9_-]{43}", session_of(client))
    assert "Alice" in (await client.get("/")).text


@pytest.mark.parametrize(
    ("next_path", "landing"),
    [
        pytest.param("/shopping?created=1", "/shopping?created=1", id="relative"),
        pytest.param("//evil.test/", "/", id="scheme-relative"),
        pytest.param("https://evil.test/", "/", id="absolute"),
        pytest.param("/\\evil.test", "/", id="backslash"),
    ],
)
async def test_after_sign_in_the_user_returns_to_a_safe_path(
    client: Client, logto: FakeLogto, next_path: str, landing: str
) -> None:
    """``next`` is honoured only when it is a path on this site."""
    done = await browser_sign_in(
        client, logto, path=f"/sign-in?{httpx.QueryParams({'next': next_path})}"
    )
    assert done.headers["location"] == landing


async def test_pages_send_anonymous_users_to_sign_in_and_back(
    client: Client, logto: FakeLogto
) -> None:
    """The guard with shouldRedirect: to sign-in, then back to the page asked for."""
    answer = await client.get("/organizations?x=1", follow_redirects=False)
    assert answer.status_code == 303
    assert answer.headers["location"] == "/sign-in?next=%2Forganizations%3Fx%3D1"

    started = await client.get(answer.headers["location"], follow_redirects=False)
    query = logto.authorize(started.headers["location"])
    done = await client.get(f"/callback?{query}", follow_redirects=False)
    assert done.headers["location"] == "/organizations?x=1"


async def test_the_json_route_answers_401(client: Client, logto: FakeLogto) -> None:
    """The guard without shouldRedirect: a JSON 401, then the claims once signed in."""
    answer = await client.get("/protected/me.json")
    assert answer.status_code == 401
    assert answer.json() == {
        "error": "not_authenticated",
        "error_description": "You need to sign in to see this page.",
    }
    await browser_sign_in(client, logto)
    assert (await client.get("/protected/me.json")).json()["sub"] == "user-alice"


async def test_userinfo_page_lists_requested_fields(client: Client, logto: FakeLogto) -> None:
    """fetchUserInfo: fields set to null are shown as requested without a value."""
    await browser_sign_in(client, logto)
    page = await client.get("/protected/userinfo")
    assert page.status_code == 200
    assert "Email (requested, no value)" in text(page.text)
    assert "&#34;email&#34;: null" in page.text


CALLBACK_FAILURES = [
    pytest.param("error=access_denied&state={state}", 400, "cancelled", id="cancelled"),
    pytest.param("error=server_error&state={state}", 400, "did not complete", id="denied"),
    pytest.param("code=abc&state=forged", 400, "does not belong", id="state-mismatch"),
    pytest.param("state={state}", 400, "no authorization code", id="no-code"),
    pytest.param("code=unknown&state={state}", 400, "expired or was already used", id="bad-code"),
]


@pytest.mark.parametrize(("query", "status", "message"), CALLBACK_FAILURES)
async def test_callback_failures_end_on_a_friendly_page(
    client: Client, query: str, status: int, message: str
) -> None:
    """Each failure has its page, its status and a way to sign in again."""
    started = await client.get("/sign-in", follow_redirects=False)
    state = parse_qs(urlsplit(started.headers["location"]).query)["state"][0]

    page = await client.get(f"/callback?{query.format(state=state)}")

    assert page.status_code == status
    assert message in page.text
    assert 'href="/sign-in">Sign in again' in page.text


async def test_a_forged_error_answer_does_not_cancel_the_attempt(
    client: Client, logto: FakeLogto
) -> None:
    """Another site sending the browser to ``/callback?error=access_denied`` (no state) does
    not end the sign-in in progress: its real answer still completes it."""
    started = await client.get("/sign-in", follow_redirects=False)
    forged = await client.get("/callback?error=access_denied")
    assert forged.status_code == 400
    assert "does not belong" in forged.text

    done = await client.get(
        f"/callback?{logto.authorize(started.headers['location'])}", follow_redirects=False
    )
    assert done.status_code == 303


async def test_a_callback_without_a_sign_in_attempt(client: Client, logto: FakeLogto) -> None:
    """No cookie, or a replayed callback after the attempt finished: a page, not a 500."""
    page = await client.get("/callback?code=x&state=y")
    assert page.status_code == 400
    assert "No sign-in was started in this browser" in page.text

    started = await client.get("/sign-in", follow_redirects=False)
    query = logto.authorize(started.headers["location"])
    await client.get(f"/callback?{query}", follow_redirects=False)
    replay = await client.get(f"/callback?{query}", follow_redirects=False)
    assert replay.status_code == 303  # signed in already: just go home
    assert replay.headers["location"] == "/"


async def test_an_old_sign_in_attempt_has_expired(
    settings: Settings, http_client: httpx.AsyncClient, logto: FakeLogto
) -> None:
    """An attempt older than Logto's interaction lifetime is refused with its own message."""
    now = [1_800_000_000.0]
    app = create_app(
        settings, http_client=http_client, session_store=MemoryStore(), clock=lambda: now[0]
    )
    async with browser(app) as client:
        started = await client.get("/sign-in", follow_redirects=False)
        now[0] += 3601
        page = await client.get(f"/callback?{logto.authorize(started.headers['location'])}")
    assert page.status_code == 400
    assert "too old" in page.text


async def test_logto_down_at_the_callback(client: Client, logto: FakeLogto) -> None:
    """The code exchange cannot reach Logto: 503 with a way to try again."""
    started = await client.get("/sign-in", follow_redirects=False)
    logto.token.mock(side_effect=httpx.ConnectError("refused"))
    page = await client.get(f"/callback?{logto.authorize(started.headers['location'])}")
    assert page.status_code == 503
    assert "Logto cannot be reached" in page.text
    assert '<a class="button" href="/sign-in">Try again</a>' in page.text  # not the callback
    # when trying again can help: the issuer's reachability is not asked again sooner
    assert page.headers["retry-after"] == str(int(REACHABILITY_TTL_SECONDS))


async def test_logto_down_at_sign_in_and_home(client: Client, logto: FakeLogto) -> None:
    """Discovery fails: sign-in shows a 503 page, home still renders."""
    logto.discovery.mock(side_effect=httpx.ConnectError("refused"))
    page = await client.get("/sign-in")
    assert page.status_code == 503
    assert "<h1>Sign-in is temporarily unavailable</h1>" in page.text
    assert '<a class="button" href="/sign-in">Try again</a>' in page.text
    assert page.headers["retry-after"] == str(int(REACHABILITY_TTL_SECONDS))
    assert (await client.get("/")).status_code == 200


async def test_logto_down_after_discovery_sign_in_is_a_503_page(
    settings: Settings, http_client: httpx.AsyncClient, logto: FakeLogto
) -> None:
    """Discovery is cached, then Logto goes down: once the last check's few seconds are over,
    a new sign-in is told so (503, a retry of the sign-in) instead of being redirected to an
    issuer that refuses connections."""
    now = [1_800_000_000.0]
    app = create_app(
        settings, http_client=http_client, session_store=MemoryStore(), clock=lambda: now[0]
    )
    async with browser(app) as client:
        assert (await client.get("/sign-in", follow_redirects=False)).status_code == 303
        logto.discovery.mock(side_effect=httpx.ConnectError("refused"))
        now[0] += REACHABILITY_TTL_SECONDS
        page = await client.get("/sign-in", follow_redirects=False)
        assert page.status_code == 503
        assert "<h1>Sign-in is temporarily unavailable</h1>" in page.text
        assert '<a class="button" href="/sign-in">Try again</a>' in page.text
        logto.discovery.mock(
            side_effect=None, return_value=httpx.Response(200, json=logto.metadata())
        )
        assert (await client.get("/sign-in", follow_redirects=False)).status_code == 303


async def test_a_cross_site_sign_in_leaves_the_signed_in_user_alone(
    client: Client, logto: FakeLogto, respx_router: respx.MockRouter
) -> None:
    """Issue 9, item 5: another site sending bob's browser to ``/sign-in`` (a GET, no CSRF
    token) neither empties his session nor revokes his refresh token: he stays signed in."""
    await browser_sign_in(client, logto, "bob")
    session = session_of(client)

    answer = await client.get(
        "/sign-in?next=/shopping",
        headers={"Sec-Fetch-Site": "cross-site"},
        follow_redirects=False,
    )

    assert answer.status_code == 303
    assert session_of(client) == session
    me = await client.get("/protected/me.json")
    assert (me.status_code, me.json()["sub"]) == (200, "user-bob")
    assert logto.revoked_tokens == []
    api = respx_router.get(f"{API_URL}/shopping/orders").respond(200, json={"orders": []})
    assert (await client.get("/shopping")).status_code == 200  # his refresh token still works
    assert api.called


async def test_the_previous_session_ends_only_when_the_next_sign_in_completes(
    client: Client, logto: FakeLogto
) -> None:
    """Alice signing in on bob's browser: bob's session is emptied and his refresh token
    revoked once her callback succeeds, not when her sign-in starts."""
    await browser_sign_in(client, logto, "bob")
    bob_session = session_of(client)
    started = await client.get("/sign-in", follow_redirects=False)
    assert logto.revoked_tokens == []

    query = logto.authorize(started.headers["location"], "alice")
    done = await client.get(f"/callback?{query}", follow_redirects=False)

    assert done.status_code == 303
    assert session_of(client) != bob_session
    assert (await client.get("/protected/me.json")).json()["sub"] == "user-alice"
    assert len(logto.revoked_tokens) == 1
    client.cookies.set(COOKIE_NAME, bob_session, domain="127.0.0.1")
    assert (await client.get("/protected/me.json")).status_code == 401


async def test_a_session_id_the_server_never_issued_is_not_adopted(
    settings: Settings, http_client: httpx.AsyncClient, logto: FakeLogto
) -> None:
    """A well-formed id planted in the browser stores nothing at sign-in, and the sign-in
    ends in an id of the server's own making."""
    store = MemoryStore()
    app = create_app(settings, http_client=http_client, session_store=store)
    forged = new_session_id()
    storage_key = app.state.context.gateway.sessions.storage_key(forged)
    async with browser(app) as client:
        client.cookies.set(COOKIE_NAME, forged, domain="127.0.0.1")
        started = await client.get("/sign-in", follow_redirects=False)
        assert started.status_code == 303
        assert not await store.exists(storage_key)
        query = logto.authorize(started.headers["location"])
        done = await client.get(f"/callback?{query}", follow_redirects=False)
        assert done.status_code == 303
        assert session_of(client) != forged
    assert not await store.exists(storage_key)


@pytest.mark.parametrize(
    ("action", "fields", "form_page"),
    [
        pytest.param("/shopping/orders", {"sku": "tea", "quantity": "1"}, "/shopping", id="order"),
        pytest.param("/store/products", {"name": "Tea", "price": "1"}, "/store", id="product"),
    ],
)
async def test_a_failed_form_is_retried_from_its_page(
    client: Client, logto: FakeLogto, action: str, fields: dict[str, str], form_page: str
) -> None:
    """A form post that fails on Logto's side offers "Try again" on the form's page, not a GET
    of the form's action (which only accepts POST)."""
    await browser_sign_in(client, logto)
    token = form_token((await client.get("/")).text)
    logto.token.mock(side_effect=httpx.ConnectError("refused"))
    page = await client.post(action, data={"csrf_token": token, **fields})
    assert page.status_code == 503
    assert f'<a class="button" href="{form_page}">Try again</a>' in page.text


UNSAFE_FORMS = [
    pytest.param("/sign-out", {}, id="sign-out"),
    pytest.param("/shopping/orders", {"sku": "tea", "quantity": "1"}, id="order"),
    pytest.param("/store/products", {"name": "Tea", "price": "1"}, id="product"),
]


@pytest.mark.parametrize(("path", "fields"), UNSAFE_FORMS)
@pytest.mark.parametrize(
    ("token", "headers"),
    [
        pytest.param(None, {}, id="no-token"),
        pytest.param("forged", {}, id="forged-token"),
        pytest.param("other-session", {}, id="other-session-token"),
        pytest.param("valid", {"Origin": "https://evil.test"}, id="foreign-origin"),
        pytest.param("valid", {"Origin": "null"}, id="null-origin"),
    ],
)
async def test_unsafe_requests_need_this_sessions_token(
    *,
    client: Client,
    logto: FakeLogto,
    settings: Settings,
    path: str,
    fields: dict[str, str],
    token: str | None,
    headers: dict[str, str],
) -> None:
    """Every state-changing form is refused without the session's token or from elsewhere."""
    await browser_sign_in(client, logto)
    values = {
        "valid": csrf_token(settings.session_secret, session_of(client)),
        "other-session": csrf_token(settings.session_secret, "x" * 43),
    }
    data = {**fields, **({"csrf_token": values.get(token, token)} if token else {})}

    page = await client.post(path, data=data, headers=headers, follow_redirects=False)

    assert page.status_code == 403
    assert "This form" in page.text
    assert (await client.get("/protected/me.json")).status_code == 200  # still signed in


async def test_the_token_may_come_in_a_header(client: Client, logto: FakeLogto) -> None:
    """Scripts may send the token in X-CSRF-Token instead of the form."""
    await browser_sign_in(client, logto)
    token = form_token((await client.get("/")).text)
    answer = await client.post(
        "/sign-out", headers={"X-CSRF-Token": token, "Origin": BASE_URL}, follow_redirects=False
    )
    assert answer.status_code == 303


async def test_sign_out(client: Client, logto: FakeLogto) -> None:
    """The confirmation page's form signs out: local session gone, refresh token revoked,
    then Logto's end-session URL that comes back home."""
    await browser_sign_in(client, logto)
    confirm = await client.get("/sign-out")
    assert confirm.status_code == 200

    answer = await client.post(
        "/sign-out", data={"csrf_token": form_token(confirm.text)}, follow_redirects=False
    )

    assert answer.status_code == 303
    url = urlsplit(answer.headers["location"])
    assert f"{url.scheme}://{url.netloc}{url.path}" == f"{ISSUER}/session/end"
    assert parse_qs(url.query) == {
        "client_id": [CLIENT_ID],
        "post_logout_redirect_uri": [f"{BASE_URL}/"],
    }
    assert "Max-Age=0" in answer.headers["set-cookie"]
    assert len(logto.revoked_tokens) == 1
    assert (await client.get("/claims", follow_redirects=False)).status_code == 303


async def test_sign_out_works_while_logto_is_down(
    app: Litestar, client: Client, logto: FakeLogto
) -> None:
    """Revocation and the end-session URL fail: the local session still ends, home we go."""
    await browser_sign_in(client, logto)
    token = form_token((await client.get("/")).text)
    logto.revocation.mock(side_effect=httpx.ConnectError("refused"))
    app.state.context.gateway.provider._core = None
    logto.discovery.mock(side_effect=httpx.ConnectError("refused"))

    answer = await client.post("/sign-out", data={"csrf_token": token}, follow_redirects=False)

    assert answer.headers["location"] == f"{BASE_URL}/"
    assert (await client.get("/protected/me.json")).status_code == 401


API_ANSWERS = [
    pytest.param(
        httpx.Response(
            403,
            headers={
                "WWW-Authenticate": 'Bearer error="insufficient_scope", scope="shopping:read"'
            },
        ),
        "lacks the permission shopping:read",
        id="403",
    ),
    pytest.param(httpx.Response(503), "temporarily unavailable", id="503"),
    pytest.param(httpx.Response(500, text="trace"), "answered unexpectedly", id="500"),
    pytest.param(httpx.Response(200, text="not json"), "answered unexpectedly", id="garbage"),
    pytest.param(httpx.Response(404, json={"error": "not_found"}), "refused the request", id="404"),
    pytest.param(httpx.ConnectError("refused"), "cannot be reached", id="down"),
]


@pytest.mark.parametrize(("answer", "message"), API_ANSWERS)
async def test_no_api_answer_breaks_a_page(
    client: Client,
    logto: FakeLogto,
    respx_router: respx.MockRouter,
    answer: httpx.Response | Exception,
    message: str,
) -> None:
    """Whatever the API answers, the page renders and says what happened."""
    respx_router.get(f"{API_URL}/shopping/orders").mock(side_effect=[answer])
    await browser_sign_in(client, logto)

    page = await client.get("/shopping")

    assert page.status_code == 200
    assert message in page.text


async def test_a_page_describes_the_token_it_used(
    client: Client, logto: FakeLogto, respx_router: respx.MockRouter
) -> None:
    """One token per page view, shown and used: even with tokens shorter-lived than the SDK's
    60-second safety margin (every lookup refreshes), the page refreshes once."""
    logto.access_token_ttl = 30
    api = respx_router.get(f"{API_URL}/shopping/orders").respond(200, json={"orders": []})
    await browser_sign_in(client, logto)

    page = await client.get("/shopping")

    assert page.status_code == 200
    assert len(logto.refresh_grants(resource=SHOPPING)) == 1
    used = api.calls.last.request.headers["authorization"].removeprefix("Bearer ")
    assert format_time(jwt.decode(used, options={"verify_signature": False})["exp"]) in page.text


async def test_a_refused_order_names_the_missing_permission(
    client: Client, logto: FakeLogto, respx_router: respx.MockRouter
) -> None:
    """The API's 403 for ``shopping:write`` is shown on the page, the form kept."""
    respx_router.get(f"{API_URL}/shopping/orders").respond(200, json={"orders": []})
    respx_router.post(f"{API_URL}/shopping/orders").respond(
        403,
        json={"error": "insufficient_scope", "error_description": "x"},
        headers={"WWW-Authenticate": 'Bearer error="insufficient_scope", scope="shopping:write"'},
    )
    await browser_sign_in(client, logto)
    token = form_token((await client.get("/shopping")).text)

    page = await client.post(
        "/shopping/orders", data={"csrf_token": token, "sku": "green-tea", "quantity": "3"}
    )

    assert page.status_code == 403
    assert "lacks the permission shopping:write" in page.text
    assert 'value="green-tea"' in page.text


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        pytest.param({"sku": "", "quantity": "1"}, "product code", id="no-sku"),
        pytest.param({"sku": "tea", "quantity": "0"}, "quantity between", id="zero"),
        pytest.param({"sku": "tea", "quantity": "1_000"}, "quantity between", id="underscore"),
        pytest.param({"sku": "tea", "quantity": "1", "note": "n" * 501}, "note", id="long-note"),
    ],
)
async def test_invalid_orders_are_explained(
    client: Client,
    logto: FakeLogto,
    respx_router: respx.MockRouter,
    fields: dict[str, str],
    message: str,
) -> None:
    """A bad field is named on the page; nothing is sent to the API."""
    respx_router.get(f"{API_URL}/shopping/orders").respond(200, json={"orders": []})
    created = respx_router.post(f"{API_URL}/shopping/orders")
    await browser_sign_in(client, logto)
    token = form_token((await client.get("/shopping")).text)

    page = await client.post("/shopping/orders", data={"csrf_token": token, **fields})

    assert page.status_code == 400
    assert message in page.text
    assert not created.called


async def test_pages_carry_security_headers(client: Client) -> None:
    """CSP, no framing, no sniffing, no referrer, no caching of personal pages."""
    page = await client.get("/")
    assert "default-src 'none'" in page.headers["content-security-policy"]
    assert page.headers["x-frame-options"] == "DENY"
    assert page.headers["x-content-type-options"] == "nosniff"
    assert page.headers["referrer-policy"] == "same-origin"
    assert page.headers["cache-control"] == "no-store"
    style = await client.get("/static/style.css")
    assert style.status_code == 200
    assert style.headers.get("cache-control") != "no-store"


SECURITY_HEADERS = {
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",
}


@get("/test-only/boom", name="test_only_boom")
async def boom() -> None:
    """A handler that fails unexpectedly (registered by the test that needs a 500)."""
    raise RuntimeError("boom")


@pytest.mark.parametrize(
    ("method", "path", "status", "cached"),
    [
        pytest.param("GET", "/nope", 404, False, id="router-404"),
        pytest.param("PUT", "/", 405, False, id="router-405"),
        pytest.param("DELETE", "/shopping", 405, False, id="router-405-form-page"),
        pytest.param("GET", "/test-only/boom", 500, False, id="500"),
        pytest.param("GET", "/shopping?created=abc", 303, False, id="redirect"),
        pytest.param("GET", "/sign-in", 303, False, id="sign-in-redirect"),
        pytest.param("HEAD", "/", 200, False, id="head"),
        pytest.param("HEAD", "/shopping/orders", 405, False, id="head-405"),
        pytest.param("GET", "/health", 200, False, id="json"),
        pytest.param("GET", "/static/style.css", 200, True, id="static"),
        pytest.param("GET", "/static/nope.css", 404, False, id="static-404"),
    ],
)
async def test_every_response_carries_the_security_headers(
    app: Litestar, client: Client, *, method: str, path: str, status: int, cached: bool
) -> None:
    """Router-level 404 and 405, the 500 page, redirects and static files all carry the CSP,
    no framing, no sniffing and (except the stylesheet) no caching: issue 9, item 6."""
    app.register(boom)
    answer = await client.request(method, path, follow_redirects=False)
    assert answer.status_code == status
    assert "default-src 'none'" in answer.headers.get("content-security-policy", "")
    for name, value in SECURITY_HEADERS.items():
        assert answer.headers.get(name) == value, name
    assert (answer.headers.get("cache-control") != "no-store") is cached


@pytest.mark.parametrize("path", ["/", "/health", "/static/style.css"])
async def test_head_answers_what_get_answers_without_the_body(client: Client, path: str) -> None:
    """Uptime checks and link checkers probe with HEAD: every page answers it as GET would
    (status, headers, Content-Length), without the body; it was 405 (service_kit.head)."""
    got = await client.get(path, follow_redirects=False)
    head = await client.head(path, follow_redirects=False)
    assert (head.status_code, head.content) == (got.status_code, b"")
    assert got.content
    ignored = {"date", "set-cookie"}  # a fresh CSRF/session cookie each time
    assert {k: v for k, v in head.headers.items() if k not in ignored} == {
        k: v for k, v in got.headers.items() if k not in ignored
    }


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        pytest.param("GET", "/nowhere", 404, id="404"),
        pytest.param("DELETE", "/shopping", 405, id="405"),
        pytest.param("GET", "/shopping?created=abc", 400, id="bad-query"),
    ],
)
async def test_http_errors_have_pages(
    client: Client, logto: FakeLogto, method: str, path: str, status: int
) -> None:
    """Unknown pages, wrong methods and malformed parameters end on a page with a way home."""
    await browser_sign_in(client, logto)
    token = form_token((await client.get("/")).text)
    page = await client.request(method, path, headers={"X-CSRF-Token": token})
    assert page.status_code == status
    assert 'href="/">Back to home' in page.text


async def test_only_https_pictures_are_shown(client: Client, logto: FakeLogto) -> None:
    """A profile picture URL that is not https never reaches an ``<img>``."""
    original = logto.id_token
    logto.id_token = lambda user, **extra: original(  # type: ignore[method-assign]
        user, picture="javascript:alert(1)", **extra
    )
    await browser_sign_in(client, logto)
    page = await client.get("/")
    assert "javascript:" not in page.text
    assert 'class="avatar large initials"' in page.text
