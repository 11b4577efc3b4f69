"""A sign-in attempt costs the server no storage (issue 9, item 4): the attempt (state, PKCE
verifier, return path, start time) travels sealed in a short-lived cookie, the issuer's
reachability check is shared and cached for a few seconds, and a forged, foreign or altered
attempt cookie is no attempt at all."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Callable
from http.cookies import SimpleCookie
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from litestar import Litestar
from litestar.stores.memory import MemoryStore

from client_app.app import create_app
from client_app.settings import Settings, load_settings
from tests.client_app.conftest import BASE_URL, browser, environment, running
from tests.client_app.fake_logto import FakeLogto

SIGN_INS = 100
NOW = 1_800_000_000.0


def frozen_app(settings: Settings, http_client: httpx.AsyncClient) -> tuple[Litestar, list[float]]:
    """The app on the file store of ``settings``, its clock stopped until a test moves it."""
    now = [NOW]
    return create_app(settings, http_client=http_client, clock=lambda: now[0]), now


def attempt_cookie(answer: httpx.Response) -> tuple[str, str, dict[str, str]]:
    """The one cookie a sign-in sets: name, value and attributes (lower-case names)."""
    cookies = answer.headers.get_list("set-cookie")
    assert len(cookies) == 1, cookies
    parsed = SimpleCookie()
    parsed.load(cookies[0])
    (name, morsel), *_ = parsed.items()
    attributes = {k.lower(): str(v) for k, v in morsel.items() if v}
    attributes |= {flag.lower(): "true" for flag in ("HttpOnly",) if flag in cookies[0]}
    return name, morsel.value, attributes


async def cookie_less_sign_ins(app: Litestar, count: int) -> list[httpx.Response]:
    """``count`` browsers without cookies, each opening ``/sign-in`` at the same time."""
    transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]

    async def one() -> httpx.Response:
        async with httpx.AsyncClient(transport=transport, base_url=BASE_URL) as client:
            return await client.get("/sign-in")

    return await asyncio.gather(*(one() for _ in range(count)))


async def test_anonymous_sign_ins_store_nothing_and_share_the_issuer_check(
    settings: Settings, http_client: httpx.AsyncClient, logto: FakeLogto
) -> None:
    """A hundred cookie-less ``GET /sign-in``, at once and then one by one: every one is
    sent to Logto, the session directory stays empty and Logto is asked for its discovery
    document once (the check is shared while in flight and cached for a few seconds)."""
    app, _ = frozen_app(settings, http_client)
    async with running(app):
        answers = await cookie_less_sign_ins(app, SIGN_INS)
        for _ in range(SIGN_INS):
            answers += await cookie_less_sign_ins(app, 1)

    assert {answer.status_code for answer in answers} == {303}
    assert all(
        a.headers["location"].startswith(f"{logto.metadata()['issuer']}/auth?") for a in answers
    )
    assert sorted(settings.session_database.iterdir()) == []
    assert logto.discovery.call_count == 1


async def test_the_issuer_check_is_repeated_once_its_few_seconds_are_over(
    settings: Settings, http_client: httpx.AsyncClient, logto: FakeLogto
) -> None:
    """After the cache's few seconds a sign-in asks Logto again (an outage is noticed), and
    a failed check is not cached: the next sign-in tries again."""
    app, now = frozen_app(settings, http_client)
    async with browser(app) as client:
        assert (await client.get("/sign-in", follow_redirects=False)).status_code == 303
        now[0] += 60
        logto.discovery.mock(side_effect=httpx.ConnectError("refused"))
        assert (await client.get("/sign-in", follow_redirects=False)).status_code == 503
        logto.discovery.mock(
            side_effect=None, return_value=httpx.Response(200, json=logto.metadata())
        )
        assert (await client.get("/sign-in", follow_redirects=False)).status_code == 303
        assert (await client.get("/sign-in", follow_redirects=False)).status_code == 303
    assert logto.discovery.call_count == 3


async def test_the_attempt_travels_sealed_in_a_short_lived_cookie(
    client: httpx.AsyncClient, logto: FakeLogto
) -> None:
    """The cookie is HttpOnly, SameSite=Lax, for this site, lives at most Logto's interaction
    hour, and shows nothing of the attempt: not the state the URL carries, not the PKCE
    verifier, not the return path (it is encrypted, not merely signed)."""
    answer = await client.get("/sign-in?next=/shopping", follow_redirects=False)
    state = parse_qs(urlsplit(answer.headers["location"]).query)["state"][0]

    name, value, attributes = attempt_cookie(answer)

    assert "session" not in name
    assert attributes["httponly"] == "true"
    assert attributes["samesite"].lower() == "lax"
    assert attributes["path"] == "/"
    assert 0 < int(attributes["max-age"]) <= 3600
    raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
    for secret in (state, "codeVerifier", "/shopping", "redirectUri"):
        assert secret not in value
        assert secret.encode() not in raw
    done = await client.get(
        f"/callback?{logto.authorize(answer.headers['location'])}", follow_redirects=False
    )
    assert (done.status_code, done.headers["location"]) == (303, "/shopping")
    assert any(
        cookie.startswith(f"{name}=") and "Max-Age=0" in cookie
        for cookie in done.headers.get_list("set-cookie")
    )


def flip_last_character(value: str) -> str:
    """``value`` with its last base64 character changed."""
    return value[:-2] + ("A" if value[-2] != "A" else "B") + value[-1]


@pytest.mark.parametrize(
    "spoil",
    [
        pytest.param(flip_last_character, id="altered"),
        pytest.param(lambda value: value[: len(value) // 2], id="truncated"),
        pytest.param(lambda _: "not base64 !", id="garbage"),
        pytest.param(lambda _: "", id="empty"),
    ],
)
async def test_a_spoiled_attempt_cookie_is_no_attempt(
    client: httpx.AsyncClient, logto: FakeLogto, spoil: Callable[[str], str]
) -> None:
    """An attempt cookie that was altered, cut or made up is refused with the no-attempt
    page (400), never a 500."""
    answer = await client.get("/sign-in", follow_redirects=False)
    name, value, _ = attempt_cookie(answer)
    client.cookies.set(name, spoil(value))

    page = await client.get(f"/callback?{logto.authorize(answer.headers['location'])}")

    assert page.status_code == 400
    assert "No sign-in was started in this browser" in page.text


async def test_an_attempt_sealed_with_another_secret_is_no_attempt(
    settings: Settings, http_client: httpx.AsyncClient, logto: FakeLogto, tmp_path: Path
) -> None:
    """Another deployment's attempt cookie (another ``SESSION_SECRET``) does not open here."""
    other_settings = load_settings(
        environment(
            SESSION_SECRET="another-session-secret-of-32-characters-at-least",
            SESSION_DATABASE=str(tmp_path / "other"),
        )
    )
    other = create_app(other_settings, http_client=http_client, session_store=MemoryStore())
    async with browser(other) as elsewhere:
        answer = await elsewhere.get("/sign-in", follow_redirects=False)
    name, value, _ = attempt_cookie(answer)

    app = create_app(settings, http_client=http_client, session_store=MemoryStore())
    async with browser(app) as client:
        client.cookies.set(name, value)
        page = await client.get(f"/callback?{logto.authorize(answer.headers['location'])}")
    assert page.status_code == 400
    assert "No sign-in was started in this browser" in page.text
