"""Each SDK pitfall of logto-tokens.md §6, pinned by a test that fails without its fix.

The issuer is served by respx (``fake_logto``); the real SDK code runs on top of it.
"""

from __future__ import annotations

import asyncio
import inspect
import time
import urllib.request
from typing import Any

import httpx
import jwt
import msgspec
import pytest
from logto import LogtoClient, LogtoException, UserInfoScope

from client_app.display import TokenSummary
from client_app.errors import (
    AccessDenied,
    IssuerProblem,
    IssuerUnavailable,
    NotSignedIn,
    SessionEnded,
)
from client_app.gateway import LogtoGateway, TokenTarget
from client_app.issuer_http import IssuerUnreachable, MissingClientSecret, basic_authorization
from client_app.logto_client import SessionLogtoClient, logto_config, sdk_scope
from client_app.oidc import LogtoProvider
from client_app.sessions import SessionStore, new_session_id
from client_app.settings import Secret, Settings, SettingsError, load_settings
from tests.client_app.conftest import environment, sign_in
from tests.client_app.fake_logto import (
    CLIENT_ID,
    CLIENT_SECRET,
    ISSUER,
    SHOPPING,
    STORE,
    USERS,
    FakeLogto,
    oauth_error,
)
from tests.support import SigningKey

SHOPPING_TOKEN = TokenTarget(SHOPPING)
STORE_TOKEN = TokenTarget(STORE)


def claims_of(token: str) -> dict[str, Any]:
    """Unverified claims (the tests check what the fake issuer put in)."""
    decoded: dict[str, Any] = jwt.decode(token, options={"verify_signature": False})
    return decoded


# -- 1. no shared default storage ------------------------------------------------------------------


def test_storage_is_required() -> None:
    """SessionLogtoClient has no default storage to share (the SDK's is a mutable default)."""
    parameter = inspect.signature(SessionLogtoClient.__init__).parameters["storage"]
    assert parameter.default is inspect.Parameter.empty
    assert parameter.kind is inspect.Parameter.KEYWORD_ONLY


async def test_sessions_do_not_share_tokens(gateway: LogtoGateway, logto: FakeLogto) -> None:
    """Alice signed in on one session leaves another session signed out."""
    alice = await sign_in(gateway, logto, "alice")
    await gateway.start_sign_in()
    other = new_session_id()

    assert (await gateway.current_user(alice)) is not None
    assert (await gateway.current_user(other)) is None
    with pytest.raises(NotSignedIn):
        await gateway.token(other, SHOPPING_TOKEN)


# -- 3. one discovery per process ------------------------------------------------------------------


async def test_discovery_and_keys_are_fetched_once(gateway: LogtoGateway, logto: FakeLogto) -> None:
    """Three users, several refreshes: one discovery and one JWKS fetch in all (a later
    sign-in checks that Logto answers, but a check that passed is trusted for a few
    seconds: issue 9, item 4)."""
    sessions = [await sign_in(gateway, logto, name) for name in ("alice", "bob", "alice")]
    for session_id in sessions:
        await gateway.token(session_id, SHOPPING_TOKEN)
        await gateway.token(session_id, STORE_TOKEN)

    assert gateway.provider.discovery_fetches == 1
    assert logto.discovery.call_count == 1  # the first discovery was the sign-in check
    assert logto.jwks.call_count == 1


async def test_concurrent_first_requests_share_one_discovery(
    gateway: LogtoGateway, logto: FakeLogto
) -> None:
    """Ten sign-ins starting at once before discovery: one fetch (single flight)."""
    await asyncio.gather(*(gateway.start_sign_in() for _ in range(10)))
    assert gateway.provider.discovery_fetches == 1


async def test_callers_waiting_on_a_hung_discovery_wait_one_timeout_together(
    settings: Settings, http_client: httpx.AsyncClient, logto: FakeLogto
) -> None:
    """Five requests need discovery while the issuer hangs: they share the one fetch in
    flight and all fail after one timeout, not one after the other (the fifth would wait five
    timeouts, holding its session lock past its lifetime). The next request tries again."""
    timeout, callers = 0.3, 5
    provider = LogtoProvider(settings.logto_endpoint, http_client=http_client, timeout=timeout)

    async def hang(_: httpx.Request) -> httpx.Response:
        await asyncio.sleep(30)
        raise AssertionError("the discovery should have been cut off")

    answer = logto.discovery.side_effect, logto.discovery.return_value
    logto.discovery.side_effect = hang
    started = time.monotonic()
    results = await asyncio.gather(
        *(provider.core() for _ in range(callers)), return_exceptions=True
    )
    took = time.monotonic() - started

    assert all(isinstance(result, IssuerUnreachable) for result in results), results
    assert timeout <= took < 2.5 * timeout
    assert provider.discovery_fetches == 1

    logto.discovery.side_effect, logto.discovery.return_value = answer
    core = await provider.core()
    assert core is await provider.core()
    assert provider.discovery_fetches == 2


# -- 4. no blocking I/O on the event loop ----------------------------------------------------------


async def test_id_tokens_are_verified_without_blocking_io(
    gateway: LogtoGateway, logto: FakeLogto, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Sign-in and refreshes verify ID tokens with keys fetched through httpx, never through
    PyJWKClient's blocking urllib (which would raise here)."""

    def blocking(*args: object, **kwargs: object) -> None:
        raise AssertionError("blocking network I/O on the event loop")

    monkeypatch.setattr(jwt.PyJWKClient, "fetch_data", blocking)
    monkeypatch.setattr(urllib.request, "urlopen", blocking)

    session_id = await sign_in(gateway, logto, "alice")
    await gateway.token(session_id, SHOPPING_TOKEN)  # a refresh that returns an ID token

    assert logto.jwks.call_count == 1


@pytest.mark.parametrize(
    ("overrides", "signing_key"),
    [
        pytest.param({"aud": "another-client"}, None, id="wrong-audience"),
        pytest.param({"iss": "https://evil.test/oidc"}, None, id="wrong-issuer"),
        pytest.param({"exp": 1}, None, id="expired"),
        pytest.param({}, SigningKey.es384("forged", index=7), id="unknown-key"),
    ],
)
async def test_a_bad_id_token_is_refused(
    gateway: LogtoGateway,
    logto: FakeLogto,
    overrides: dict[str, Any],
    signing_key: SigningKey | None,
) -> None:
    """The asynchronous verification still checks signature, issuer, audience and expiry."""
    original = logto.id_token

    def bad_id_token(user: Any, **extra: Any) -> str:
        if signing_key is not None:
            logto.key, real = signing_key, logto.key
            try:
                return original(user, **extra)
            finally:
                logto.key = real
        return original(user, **{**extra, **overrides})

    logto.id_token = bad_id_token  # type: ignore[method-assign]
    start = await gateway.start_sign_in()
    with pytest.raises(IssuerProblem, match="ID token"):
        await gateway.finish_sign_in(None, start.sealed_attempt, logto.authorize(start.url))


async def test_a_rotated_signing_key_is_fetched_at_once(
    gateway: LogtoGateway, logto: FakeLogto
) -> None:
    """An ID token signed with a key never seen refetches the JWKS (no 30 s cooldown as in
    PyJWKClient, which refuses such a token right after a rotation)."""
    session_id = await sign_in(gateway, logto, "alice")
    logto.key = SigningKey.es384("rotated", index=3)

    await gateway.token(session_id, SHOPPING_TOKEN)

    assert logto.jwks.call_count == 2
    assert (await gateway.current_user(session_id)) is not None


# -- 5. nothing inherited by the next user; one refresh at a time ----------------------------------


async def test_sign_in_clears_every_key_of_the_previous_user(
    gateway: LogtoGateway, logto: FakeLogto, sessions: SessionStore
) -> None:
    """Starting a sign-in changes nothing; once it completes, the previous user's session is
    empty (the SDK would keep ``accessTokenMap``), their refresh token revoked, and the new
    session holds only the new user's sign-in."""
    session_id = await sign_in(gateway, logto, "alice")
    await gateway.token(session_id, SHOPPING_TOKEN)
    await gateway.token(session_id, TokenTarget(STORE, "acme"))
    alice = await sessions.load(session_id)

    start = await gateway.start_sign_in()
    assert (await sessions.load(session_id)).snapshot() == alice.snapshot()
    assert logto.revoked_tokens == []

    query = logto.authorize(start.url, "bob")
    done = await gateway.finish_sign_in(session_id, start.sealed_attempt, query)

    assert (await sessions.load(session_id)).keys() == frozenset()
    assert logto.revoked_tokens == [alice.get("refreshToken")]
    bob = await sessions.load(done.session_id)
    assert bob.get("signInSession") is None
    assert bob.get("refreshToken") not in (None, alice.get("refreshToken"))
    assert "acme" not in (bob.get("accessTokenMap") or "")


async def test_the_next_user_of_a_session_gets_their_own_tokens(
    gateway: LogtoGateway, logto: FakeLogto
) -> None:
    """Bob signing in on Alice's session gets Bob's shopping token, not Alice's cached one."""
    session_id = await sign_in(gateway, logto, "alice")
    assert claims_of(await gateway.token(session_id, SHOPPING_TOKEN))["sub"] == "user-alice"

    start = await gateway.start_sign_in()
    query = logto.authorize(start.url, "bob")
    done = await gateway.finish_sign_in(session_id, start.sealed_attempt, query)

    token = await gateway.token(done.session_id, SHOPPING_TOKEN)
    assert claims_of(token)["sub"] == "user-bob"
    assert claims_of(token)["scope"] == "shopping:read shopping:write"


@pytest.fixture
def rotating_logto(logto: FakeLogto) -> FakeLogto:
    """The issuer rotating refresh tokens on every use, slowly enough for requests to overlap."""
    logto.rotate_refresh_tokens = True
    logto.token_delay = 0.05
    return logto


@pytest.mark.parametrize(
    "targets",
    [
        pytest.param((SHOPPING_TOKEN, SHOPPING_TOKEN), id="same-resource"),
        pytest.param((SHOPPING_TOKEN, STORE_TOKEN), id="two-resources"),
        pytest.param((SHOPPING_TOKEN, TokenTarget(STORE, "acme")), id="with-organization-level"),
        pytest.param((TokenTarget(organization_id="acme"), STORE_TOKEN), id="with-organization"),
    ],
)
async def test_concurrent_refreshes_do_not_revoke_the_grant(
    gateway: LogtoGateway, rotating_logto: FakeLogto, targets: tuple[TokenTarget, ...]
) -> None:
    """Two refreshes at once in one session take turns: the second presents the rotated
    refresh token (or finds the token cached), so the issuer never sees a reused one."""
    session_id = await sign_in(gateway, rotating_logto, "bob")

    tokens = await asyncio.gather(*(gateway.token(session_id, t) for t in targets))

    assert all(tokens)
    presented = [form["refresh_token"] for form in rotating_logto.refresh_grants()]
    assert len(presented) == len(set(presented)) == len(set(targets))
    assert (await gateway.token(session_id, TokenTarget(organization_id="acme"))) is not None


# -- 6. the client secret --------------------------------------------------------------------------


async def test_the_client_authenticates_with_basic_and_never_posts_a_secret(
    gateway: LogtoGateway, logto: FakeLogto
) -> None:
    """Every token request carries client_secret_basic and no ``client_secret`` field."""
    session_id = await sign_in(gateway, logto, "alice")
    await gateway.token(session_id, SHOPPING_TOKEN)

    assert len(logto.token_forms) == 2
    assert all("client_secret" not in form for form in logto.token_forms)
    assert all(h["authorization"].startswith("Basic ") for h in logto.token_headers)


def test_basic_credentials_are_form_encoded_first() -> None:
    """RFC 6749 §2.3.1: id and secret are form-urlencoded before base64."""
    assert basic_authorization("app id", "p:w%d") == "Basic YXBwK2lkOnAlM0F3JTI1ZA=="


@pytest.mark.parametrize("secret", [None, ""], ids=["none", "empty"])
def test_no_secret_is_refused_before_any_request(secret: str | None) -> None:
    """Without a secret nothing is sent (the SDK would post the string ``None``)."""
    with pytest.raises(MissingClientSecret):
        basic_authorization(CLIENT_ID, secret)


def test_the_sdk_config_carries_the_secret(settings: Settings) -> None:
    """The SDK configuration gets the configured secret, never ``None``."""
    assert logto_config(settings).appSecret == CLIENT_SECRET


# -- 7. organization-level API tokens --------------------------------------------------------------


async def test_organization_level_token_uses_resource_and_organization_id(
    gateway: LogtoGateway, logto: FakeLogto
) -> None:
    """One refresh grant with both parameters; the token is then served from the cache."""
    session_id = await sign_in(gateway, logto, "bob")
    target = TokenTarget(STORE, "acme")

    first = await gateway.token(session_id, target)
    second = await gateway.token(session_id, target)

    assert first == second
    assert logto.refresh_grants(resource=STORE, organization_id="acme") == [
        logto.refresh_grants()[0]
    ]
    assert claims_of(first)["aud"] == STORE
    assert claims_of(first)["organization_id"] == "acme"


async def test_organization_level_grant_keeps_the_rotated_refresh_token(
    gateway: LogtoGateway, logto: FakeLogto
) -> None:
    """A refresh token rotated by the organization-level grant is the one used next."""
    logto.rotate_refresh_tokens = True
    session_id = await sign_in(gateway, logto, "bob")

    await gateway.token(session_id, TokenTarget(STORE, "acme"))
    await gateway.token(session_id, SHOPPING_TOKEN)

    first, second = (form["refresh_token"] for form in logto.refresh_grants())
    assert first != second
    assert second in logto.refresh_tokens


# -- 8. the organizations scope as a plain string --------------------------------------------------


def test_known_scope_names_become_sdk_enum_members() -> None:
    """``urn:logto:scope:organizations`` is what the SDK checks for, as its enum member."""
    assert sdk_scope("urn:logto:scope:organizations") is UserInfoScope.organizations
    assert sdk_scope("roles") == "roles"


async def test_organization_tokens_work_with_the_plain_string_scope(
    gateway: LogtoGateway, logto: FakeLogto
) -> None:
    """Configured as text, the organizations scope still asks for the organizations resource
    at sign-in and enables organization tokens."""
    assert "urn:logto:scope:organizations" in gateway.settings.scopes
    start = await gateway.start_sign_in()
    assert "resource=urn%3Alogto%3Aresource%3Aorganizations" in start.url
    done = await gateway.finish_sign_in(None, start.sealed_attempt, logto.authorize(start.url))

    token = await gateway.token(done.session_id, TokenTarget(organization_id="acme"))
    assert claims_of(token)["aud"] == "urn:logto:organization:acme"


# -- 9. claims of a token without scope, and of the opaque token -----------------------------------


async def test_claims_of_a_token_without_scope(
    gateway: LogtoGateway, logto: FakeLogto, sessions: SessionStore
) -> None:
    """Alice has no permission on the store API: her token has no ``scope`` claim, which the
    SDK's model refuses; here it decodes with no scopes."""
    session_id = await sign_in(gateway, logto, "alice")
    token = await gateway.token(session_id, STORE_TOKEN)
    assert "scope" not in claims_of(token)

    async with sessions.open(session_id) as data:
        claims = await gateway.client(data).getAccessTokenClaims(STORE)
    assert claims.scope == ""
    summary = TokenSummary.of(token)
    assert summary is not None
    assert summary.scopes == ()


async def test_claims_of_the_opaque_default_token_are_refused_clearly(
    gateway: LogtoGateway, logto: FakeLogto, sessions: SessionStore
) -> None:
    """``getAccessTokenClaims()`` without a resource says the token is opaque (the SDK
    raises ``jwt.DecodeError``)."""
    session_id = await sign_in(gateway, logto, "alice")
    async with sessions.open(session_id) as data:
        with pytest.raises(LogtoException, match="opaque"):
            await gateway.client(data).getAccessTokenClaims()


# -- 10. an expired ID token is not a signed-in user -----------------------------------------------


async def age_id_token(sessions: SessionStore, logto: FakeLogto, session_id: str) -> None:
    """Replace the session's ID token with the same user's, expired an hour ago."""
    async with sessions.open(session_id) as data:
        data.set("idToken", logto.id_token(USERS["alice"], exp=int(logto.clock()) - 3600))


async def test_an_expired_id_token_is_renewed_with_the_refresh_token(
    gateway: LogtoGateway, logto: FakeLogto, sessions: SessionStore
) -> None:
    """The SDK's isAuthenticated says yes to an expired ID token; the gateway renews it."""
    session_id = await sign_in(gateway, logto, "alice")
    await age_id_token(sessions, logto, session_id)
    async with sessions.open(session_id) as data:
        assert LogtoClient.isAuthenticated(gateway.client(data))  # the SDK's own answer
        assert not gateway.client(data).isAuthenticated()

    user = await gateway.current_user(session_id)

    assert user is not None
    assert user.exp > logto.clock()
    assert len(logto.refresh_grants()) == 1


async def test_an_expired_id_token_without_refresh_token_signs_out(
    gateway: LogtoGateway, logto: FakeLogto, sessions: SessionStore
) -> None:
    """No refresh token to renew with: nobody is signed in, and the session is emptied."""
    session_id = await sign_in(gateway, logto, "alice")
    await age_id_token(sessions, logto, session_id)
    async with sessions.open(session_id) as data:
        data.delete("refreshToken")

    assert (await gateway.current_user(session_id)) is None
    assert (await sessions.load(session_id)).keys() == frozenset()


async def test_a_revoked_grant_signs_out(
    gateway: LogtoGateway, logto: FakeLogto, sessions: SessionStore
) -> None:
    """Renewal refused (``invalid_grant``): nobody is signed in and the session is emptied."""
    session_id = await sign_in(gateway, logto, "alice")
    await age_id_token(sessions, logto, session_id)
    for grant in logto.refresh_tokens.values():
        grant.revoked = True

    assert (await gateway.current_user(session_id)) is None
    assert (await sessions.load(session_id)).keys() == frozenset()


# -- 11. timeouts and the issuer's error answers ---------------------------------------------------


def test_settings_require_the_app_secret() -> None:
    """A traditional web app always has a secret: its absence is a configuration error."""
    env = environment()
    del env["LOGTO_APP_SECRET"]
    with pytest.raises(SettingsError, match="LOGTO_APP_SECRET is required"):
        load_settings(env)


def test_the_sdk_config_refuses_an_empty_secret(settings: Settings) -> None:
    """Even settings built by hand cannot carry an empty secret into the SDK (pitfall 6)."""
    with pytest.raises(MissingClientSecret):
        logto_config(msgspec.structs.replace(settings, app_secret=Secret("")))


async def test_timeouts_bound_every_issuer_call(
    settings: Settings, http_client: httpx.AsyncClient, logto: FakeLogto, sessions: SessionStore
) -> None:
    """A token endpoint that hangs is cut off after the configured timeout."""
    provider = LogtoProvider(settings.logto_endpoint, http_client=http_client, timeout=0.1)
    gateway = LogtoGateway(settings, provider=provider, sessions=sessions)
    session_id = await sign_in(gateway, logto, "alice")
    logto.token_delay = 5.0

    with pytest.raises(IssuerUnavailable, match="in time"):
        await asyncio.wait_for(gateway.token(session_id, SHOPPING_TOKEN), timeout=2.0)


RAW_BODY = "<html>stack trace with secrets</html>"


@pytest.mark.parametrize(
    ("answer", "expected", "message"),
    [
        pytest.param(
            httpx.ConnectError("refused"), IssuerUnavailable, "cannot be reached", id="down"
        ),
        pytest.param(httpx.ReadTimeout("slow"), IssuerUnavailable, "in time", id="read-timeout"),
        pytest.param(
            httpx.Response(500, text=RAW_BODY), IssuerUnavailable, "cannot be reached", id="500"
        ),
        pytest.param(
            httpx.Response(502, text=RAW_BODY), IssuerUnavailable, "cannot be reached", id="502"
        ),
        pytest.param(
            oauth_error(400, "invalid_grant", RAW_BODY),
            SessionEnded,
            "sign in again",
            id="invalid-grant",
        ),
        pytest.param(
            oauth_error(403, "access_denied", RAW_BODY),
            AccessDenied,
            "not a member",
            id="access-denied",
        ),
        pytest.param(
            oauth_error(401, "invalid_client", RAW_BODY),
            IssuerProblem,
            "credentials",
            id="invalid-client",
        ),
        pytest.param(
            oauth_error(400, "invalid_target", RAW_BODY),
            IssuerProblem,
            "API resource",
            id="invalid-target",
        ),
        pytest.param(
            oauth_error(400, "weird_<code>", RAW_BODY),
            IssuerProblem,
            r"\(weird_code\)",
            id="unknown-code",
        ),
        pytest.param(
            httpx.Response(400, text=RAW_BODY), IssuerProblem, r"\(http_400\)", id="400-html"
        ),
        pytest.param(
            httpx.Response(200, text=RAW_BODY), IssuerProblem, "unexpectedly", id="200-html"
        ),
        pytest.param(httpx.Response(200, json=[1]), IssuerProblem, "unexpectedly", id="200-list"),
        pytest.param(
            httpx.Response(200, json={"access_token": "x"}),
            IssuerProblem,
            "unexpectedly",
            id="200-partial",
        ),
    ],
)
async def test_token_endpoint_failures_become_friendly_errors(
    gateway: LogtoGateway,
    logto: FakeLogto,
    answer: httpx.Response | Exception,
    expected: type[Exception],
    message: str,
) -> None:
    """Timeouts, transport errors and every kind of error body end as one of our errors
    with our own words; the raw body never reaches the user."""
    session_id = await sign_in(gateway, logto, "alice")
    logto.token.mock(side_effect=[answer])

    with pytest.raises(expected, match=message) as caught:
        await gateway.token(session_id, SHOPPING_TOKEN)
    assert "secrets" not in str(caught.value)


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        pytest.param(httpx.ConnectError("refused"), IssuerUnavailable, id="down"),
        pytest.param(httpx.Response(503), IssuerUnavailable, id="503"),
        pytest.param(httpx.Response(200, text="<html>"), IssuerProblem, id="not-json"),
        pytest.param(
            httpx.Response(200, json={**FakeLogto.metadata(), "issuer": "https://evil.test/oidc"}),
            IssuerProblem,
            id="another-issuer",
        ),
        pytest.param(
            httpx.Response(200, json={"issuer": ISSUER}), IssuerProblem, id="missing-endpoints"
        ),
    ],
)
async def test_discovery_failures_are_friendly_and_retried(
    gateway: LogtoGateway,
    logto: FakeLogto,
    answer: httpx.Response | Exception,
    expected: type[Exception],
) -> None:
    """A failed discovery is reported, not cached: the next request discovers again."""
    logto.discovery.mock(side_effect=[answer, httpx.Response(200, json=FakeLogto.metadata())])

    with pytest.raises(expected):
        await gateway.start_sign_in()
    start = await gateway.start_sign_in()

    assert start.url.startswith(f"{ISSUER}/auth?")
    assert logto.discovery.call_count == 2
