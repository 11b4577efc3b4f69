"""The ID token of a refresh answer and the keys that verify it (issue 9, items 1 and 2).

The issuer is served by respx (``fake_logto``, mocked at the network edge), rotating refresh
tokens with reuse detection: presenting a used refresh token revokes the whole grant, so a
rotated refresh token that is not stored ends the session at the next refresh.

1. A refresh has rotated the refresh token at the issuer before its ID token is checked: the
   new refresh and access tokens are kept whatever the check says; an ID token that cannot be
   verified (keys unavailable, clock skew beyond the leeway) leaves the previous one in place.
2. Concurrent operations needing the issuer's keys while its JWKS hangs share one fetch and
   each gives up after one timeout, not one after the other.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, cast

import httpx
import pytest
from litestar.stores.memory import MemoryStore

from client_app.errors import IssuerProblem, IssuerUnavailable, SessionEnded
from client_app.gateway import LogtoGateway, TokenTarget
from client_app.id_token_keys import ID_TOKEN_LEEWAY_SECONDS, IdTokenKeys
from client_app.issuer_http import IssuerHttp, IssuerUnreachable
from client_app.oidc import LogtoProvider
from client_app.sessions import SessionStore
from client_app.settings import Settings
from tests.client_app.conftest import sign_in
from tests.client_app.fake_logto import (
    CLIENT_ID,
    ISSUER,
    SHOPPING,
    STORE,
    USERS,
    FakeLogto,
    FakeUser,
)
from tests.support import SigningKey, jwks, make_token

TIMEOUT = 0.3
"""``LOGTO_TIMEOUT_SECONDS`` of these tests: small, so that a hanging JWKS is cut off soon."""
CONCURRENT = 6
SKEW_SECONDS = ID_TOKEN_LEEWAY_SECONDS + 90
ROTATED_KEY = SigningKey.es384("rotated", index=3)
LOGGERS = ("client_app.logto_client", "client_app.id_token_keys", "client_app.gateway")

Fault = Callable[[FakeLogto], None]


HUNG: list[httpx.Request] = []
"""JWKS requests that hung (respx counts a call only once it is answered)."""


async def hang(request: httpx.Request) -> httpx.Response:
    HUNG.append(request)
    await asyncio.sleep(30)
    raise AssertionError("the JWKS fetch should have been cut off")


@pytest.fixture(autouse=True)
def _no_hung_requests_yet() -> None:
    HUNG.clear()


def empty_key_set_once(logto: FakeLogto) -> None:
    """The issuer rotated its key and its JWKS answers ``{"keys": []}`` once."""
    logto.key = ROTATED_KEY
    answers = iter([httpx.Response(200, json={"keys": []})])
    logto.jwks.side_effect = lambda request: next(answers, None) or logto._jwks(request)


def hanging_key_set(logto: FakeLogto) -> None:
    """The issuer rotated its key and its JWKS does not answer."""
    logto.key = ROTATED_KEY
    logto.jwks.side_effect = hang


def failing_key_set(logto: FakeLogto) -> None:
    """The issuer rotated its key (RS256 now) and its JWKS answers 503."""
    logto.key = SigningKey.rs256("rotated-rsa", index=5)
    logto.jwks.side_effect = [httpx.Response(503)]


def clock_ahead(logto: FakeLogto) -> None:
    """The issuer's clock runs ahead by more than the leeway: ``iat`` is in the future."""
    logto.clock = lambda: time.time() + SKEW_SECONDS


def heal(logto: FakeLogto) -> None:
    """The issuer's keys and clock are right again (a rotated key stays rotated)."""
    logto.jwks.side_effect = logto._jwks
    logto.clock = time.time


FAULTS = [
    pytest.param(empty_key_set_once, id="empty-jwks-after-key-rotation"),
    pytest.param(hanging_key_set, id="jwks-timeout-after-key-rotation"),
    pytest.param(failing_key_set, id="jwks-503-after-rs256-rotation"),
    pytest.param(clock_ahead, id="clock-skew-beyond-leeway"),
]


@pytest.fixture
def rotating(logto: FakeLogto) -> FakeLogto:
    """The issuer rotating refresh tokens on every use (reuse revokes the grant)."""
    logto.rotate_refresh_tokens = True
    return logto


@pytest.fixture
def gateway(
    settings: Settings, http_client: httpx.AsyncClient, sessions: SessionStore
) -> LogtoGateway:
    """The gateway with a small issuer timeout."""
    provider = LogtoProvider(settings.logto_endpoint, http_client=http_client, timeout=TIMEOUT)
    return LogtoGateway(settings, provider=provider, sessions=sessions)


def newest_refresh_token(logto: FakeLogto) -> str:
    """The refresh token the issuer handed out last."""
    return list(logto.refresh_tokens)[-1]


def assert_grants_alive(logto: FakeLogto) -> None:
    assert not any(grant.revoked for grant in logto.refresh_tokens.values())


def assert_logged_without_secrets(
    caplog: pytest.LogCaptureFixture, logto: FakeLogto, event: str
) -> None:
    """``event`` was logged, and no record carries a token or the ID token's claims."""
    records = [r for r in caplog.records if r.name in LOGGERS]
    assert event in [getattr(r, "event", None) for r in records]
    secrets = [*logto.refresh_tokens, *logto.opaque]
    for record in records:
        rendered = f"{record.getMessage()} {record.__dict__}"
        assert not any(secret in rendered for secret in secrets), record
        assert "eyJ" not in rendered, record  # no JWT (ID or access token)


# -- item 1: the refresh answer's tokens are kept whatever the ID-token check says ---------------


@pytest.mark.parametrize("fault", FAULTS)
async def test_a_refresh_whose_id_token_cannot_be_verified_keeps_the_rotated_refresh_token(
    gateway: LogtoGateway,
    rotating: FakeLogto,
    sessions: SessionStore,
    caplog: pytest.LogCaptureFixture,
    fault: Fault,
) -> None:
    """The refresh for the shopping token rotated the refresh token at the issuer; its ID
    token cannot be verified. The page still gets its access token, the session holds the
    rotated refresh token and the previous ID token, and the next refresh (the issuer healed)
    presents the rotated one: no reuse, the grant lives, bob is still signed in."""
    caplog.set_level(logging.INFO)
    session_id = await sign_in(gateway, rotating, "bob")
    signed_in = await sessions.load(session_id)
    fault(rotating)

    token = await gateway.token(session_id, TokenTarget(SHOPPING))

    after = await sessions.load(session_id)
    assert after.get("refreshToken") == newest_refresh_token(rotating)
    assert after.get("refreshToken") != signed_in.get("refreshToken")
    assert after.get("idToken") == signed_in.get("idToken")  # the previous claims stay
    assert token == await gateway.token(session_id, TokenTarget(SHOPPING))  # cached
    assert_logged_without_secrets(caplog, rotating, "id_token_unverified")

    heal(rotating)
    assert await gateway.token(session_id, TokenTarget(STORE))
    presented = [form["refresh_token"] for form in rotating.refresh_grants()]
    assert presented == [signed_in.get("refreshToken"), after.get("refreshToken")]
    assert_grants_alive(rotating)
    user = await gateway.current_user(session_id)
    assert user is not None
    assert user.sub == USERS["bob"].sub
    assert (await sessions.load(session_id)).get("idToken") != signed_in.get("idToken")


@pytest.mark.parametrize("fault", FAULTS)
async def test_a_failed_renewal_of_an_expired_id_token_keeps_the_session(
    gateway: LogtoGateway,
    rotating: FakeLogto,
    sessions: SessionStore,
    fault: Fault,
) -> None:
    """bob's ID token has expired, and the renewal's new one cannot be verified: this page
    says the sign-in service has a problem (no previous claims are valid to show), but the
    rotated refresh token is stored, so the next page renews with it and bob is signed in."""
    session_id = await sign_in(gateway, rotating, "bob")
    async with sessions.open(session_id) as data:
        data.set("idToken", rotating.id_token(USERS["bob"], exp=int(time.time()) - 3600))
    fault(rotating)

    with pytest.raises((IssuerProblem, IssuerUnavailable)):
        await gateway.current_user(session_id)

    assert (await sessions.load(session_id)).get("refreshToken") == newest_refresh_token(rotating)
    heal(rotating)
    user = await gateway.current_user(session_id)
    assert user is not None
    assert user.sub == USERS["bob"].sub
    assert_grants_alive(rotating)


@pytest.mark.parametrize("fault", FAULTS)
async def test_a_sign_in_whose_id_token_cannot_be_verified_stores_nothing(
    gateway: LogtoGateway, rotating: FakeLogto, fault: Fault
) -> None:
    """At the callback there is no previous ID token to keep: the sign-in fails, as before,
    and no session document is stored (the attempt may be tried again)."""
    fault(rotating)
    start = await gateway.start_sign_in()

    with pytest.raises((IssuerProblem, IssuerUnavailable)):
        await gateway.finish_sign_in(
            None, start.sealed_attempt, rotating.authorize(start.url, "bob")
        )

    store = gateway.sessions.store
    assert isinstance(store, MemoryStore)
    assert store._store == {}


# -- a refreshed ID token naming another user ends the session --------------------------------


def refreshes_name_alice(logto: FakeLogto) -> None:
    """From now on the issuer's refresh answers carry alice's ID token, validly signed, for
    whoever's grant is refreshed (an issuer bug, or a grant that is not this user's)."""
    original = logto.id_token

    def alices(_user: FakeUser, **overrides: Any) -> str:
        return original(USERS["alice"], **overrides)

    logto.id_token = alices  # type: ignore[method-assign,assignment]


def assert_session_ended(
    rotating: FakeLogto, session: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    """The session holds nothing, the grant it held is revoked at the issuer, the event is
    logged without a token or a claim."""
    assert session == {}
    assert rotating.revoked_tokens == [newest_refresh_token(rotating)]
    assert all(grant.revoked for grant in rotating.refresh_tokens.values())
    assert_logged_without_secrets(caplog, rotating, "id_token_subject_changed")
    rendered = " ".join(f"{r.getMessage()} {r.__dict__}" for r in caplog.records)
    assert USERS["alice"].sub not in rendered
    assert USERS["bob"].sub not in rendered


async def test_a_refresh_whose_id_token_names_another_user_ends_the_session(
    gateway: LogtoGateway,
    rotating: FakeLogto,
    sessions: SessionStore,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """OpenID Connect Core 1.0 §12.2: a refreshed ID token's ``sub`` must be the one of the
    sign-in's. bob's session refreshes for the shopping token and gets alice's ID token: the
    page says the session ended (not alice's name, not bob's token), and nothing of the grant
    survives, in the session or at the issuer."""
    caplog.set_level(logging.INFO)
    session_id = await sign_in(gateway, rotating, "bob")
    refreshes_name_alice(rotating)
    stored_at_revocation: list[dict[str, str]] = []
    revoke = cast(Callable[[httpx.Request], httpx.Response], rotating.revocation.side_effect)

    async def revoke_once_saved(request: httpx.Request) -> httpx.Response:
        # The revocation may take the issuer's whole timeout: the emptied session is saved,
        # and its lock released, before it starts (as at sign-out).
        stored_at_revocation.append((await sessions.load(session_id)).snapshot())
        return revoke(request)

    rotating.revocation.side_effect = revoke_once_saved

    with pytest.raises(SessionEnded):
        await gateway.token(session_id, TokenTarget(SHOPPING))

    assert stored_at_revocation == [{}]
    assert_session_ended(rotating, (await sessions.load(session_id)).snapshot(), caplog)
    assert await gateway.current_user(session_id) is None


async def test_a_renewed_id_token_naming_another_user_signs_the_session_out(
    gateway: LogtoGateway,
    rotating: FakeLogto,
    sessions: SessionStore,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """bob's ID token has expired; its renewal answers alice's: nobody is signed in, rather
    than alice in bob's browser."""
    caplog.set_level(logging.INFO)
    session_id = await sign_in(gateway, rotating, "bob")
    async with sessions.open(session_id) as data:
        data.set("idToken", rotating.id_token(USERS["bob"], exp=int(time.time()) - 3600))
    refreshes_name_alice(rotating)

    assert await gateway.current_user(session_id) is None

    assert_session_ended(rotating, (await sessions.load(session_id)).snapshot(), caplog)


# -- item 2: one shared key fetch, one deadline per operation -----------------------------------


def id_token_with(key: SigningKey) -> str:
    now = int(time.time())
    return make_token(
        key, iss=ISSUER, aud=CLIENT_ID, sub="user-bob", iat=now, exp=now + 600, scope=None
    )


async def timed(work: Awaitable[Any]) -> tuple[Any, float]:
    """What ``work`` returned or raised, and how long it took."""
    started = time.monotonic()
    try:
        result = await work
    except Exception as exc:  # noqa: BLE001 - the result under test
        result = exc
    return result, time.monotonic() - started


async def test_concurrent_key_fetches_share_one_fetch_and_one_timeout(
    http_client: httpx.AsyncClient, logto: FakeLogto
) -> None:
    """Six ID tokens with a key id not held yet, their keys needed at once, while the JWKS
    hangs: one fetch, and every caller gives up when it is cut off (one timeout), not the
    k-th after k timeouts. (Twice the timeout is a bound on serialisation, not on speed.) The next
    caller starts a new fetch."""
    keys = IdTokenKeys(logto.metadata()["jwks_uri"], http=IssuerHttp(http_client, TIMEOUT))
    logto.jwks.side_effect = hang
    token = id_token_with(ROTATED_KEY)

    outcomes = await asyncio.gather(*(timed(keys.prepare(token)) for _ in range(CONCURRENT)))

    assert all(isinstance(result, IssuerUnreachable) for result, _ in outcomes), outcomes
    assert max(took for _, took in outcomes) < 2 * TIMEOUT, outcomes
    assert len(HUNG) == 1

    logto.key = ROTATED_KEY
    logto.jwks.side_effect = logto._jwks
    await keys.prepare(token)
    assert keys.verify(token, audience=CLIENT_ID, issuer=ISSUER)["sub"] == "user-bob"
    assert (len(HUNG), logto.jwks.call_count) == (1, 1)


async def test_concurrent_refreshes_with_a_hanging_jwks_end_within_one_timeout(
    gateway: LogtoGateway, rotating: FakeLogto, sessions: SessionStore
) -> None:
    """Six signed-in sessions refresh at once right after a key rotation while the JWKS
    hangs: one key fetch, each operation over after about one timeout with its access token
    and its rotated refresh token stored, so no session lock is held much longer than that."""
    session_ids = [await sign_in(gateway, rotating, "bob") for _ in range(CONCURRENT)]
    hanging_key_set(rotating)

    outcomes = await asyncio.gather(
        *(timed(gateway.token(s, TokenTarget(SHOPPING))) for s in session_ids)
    )

    assert all(isinstance(result, str) for result, _ in outcomes), [
        (type(result).__name__, took) for result, took in outcomes
    ]
    assert max(took for _, took in outcomes) < 2 * TIMEOUT, outcomes
    assert len(HUNG) == 1
    stored = [(await sessions.load(s)).get("refreshToken") for s in session_ids]
    assert set(stored) <= set(rotating.refresh_tokens) - rotating.consumed
    assert len(set(stored)) == CONCURRENT


async def test_a_key_missing_from_a_fetch_that_started_earlier_is_fetched_again(
    http_client: httpx.AsyncClient, logto: FakeLogto
) -> None:
    """A caller whose key id arrives while a fetch is in flight joins it; if that fetch's
    answer (asked for before the rotation) lacks the key, the caller fetches once more."""
    old, new = SigningKey.es384("old", index=8), SigningKey.es384("new", index=9)
    gate = asyncio.Event()
    answers = [jwks(old), jwks(old, new)]

    async def slow_then_rotated(_: httpx.Request) -> httpx.Response:
        body = answers.pop(0)
        await gate.wait()
        return httpx.Response(200, json=body)

    logto.jwks.side_effect = slow_then_rotated
    keys = IdTokenKeys(logto.metadata()["jwks_uri"], http=IssuerHttp(http_client, 5.0))
    first = asyncio.ensure_future(keys.prepare(id_token_with(old)))
    await asyncio.sleep(0.05)  # the first fetch is in flight
    second = asyncio.ensure_future(keys.prepare(id_token_with(new)))
    await asyncio.sleep(0.05)
    gate.set()

    await asyncio.gather(first, second)
    assert logto.jwks.call_count == 2
    assert keys.verify(id_token_with(new), audience=CLIENT_ID, issuer=ISSUER)["sub"] == "user-bob"


async def test_one_deadline_covers_every_fetch_a_caller_waits_for(
    http_client: httpx.AsyncClient, logto: FakeLogto
) -> None:
    """The worst case of the refetch above: the joined fetch answers late (0.9 timeout)
    without the key and the second fetch hangs. The caller gives up one timeout after it
    asked, not after 0.9 + 1 timeouts (its session lock is sized for one timeout of keys;
    1.5 timeouts is a bound on stacking deadlines, not on speed)."""
    timeout = 0.5
    old, new = SigningKey.es384("old", index=8), SigningKey.es384("new", index=9)

    async def late_then_hung(request: httpx.Request) -> httpx.Response:
        if HUNG:
            return await hang(request)
        HUNG.append(request)
        await asyncio.sleep(0.9 * timeout)
        return httpx.Response(200, json=jwks(old))

    logto.jwks.side_effect = late_then_hung
    keys = IdTokenKeys(logto.metadata()["jwks_uri"], http=IssuerHttp(http_client, timeout))
    first = asyncio.ensure_future(keys.prepare(id_token_with(old)))
    await asyncio.sleep(0)  # the first fetch is in flight
    result, took = await timed(keys.prepare(id_token_with(new)))

    await first
    assert isinstance(result, IssuerUnreachable), result
    assert len(HUNG) == 2  # it did fetch again
    assert took < 1.5 * timeout, took
