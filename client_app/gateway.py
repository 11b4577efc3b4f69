"""The one door to Logto: every operation the routes need, each on the current session.

Each operation opens the session (its lock held, its current document loaded), builds the
SDK client around it (:class:`~client_app.logto_client.SessionLogtoClient`), does its work and
lets the store write the document back. Holding the lock across the network call is the
point: one refresh at a time per session (``logto-tokens.md`` §5). Failures are translated
here, once (:func:`client_app.translation.translate`), into :mod:`client_app.errors`; a refused
refresh token (``invalid_grant``) also empties the session, whose grant is gone.

A sign-in touches no session until it succeeds: :meth:`LogtoGateway.start_sign_in` builds the
attempt in memory and seals it for the browser's cookie (:mod:`client_app.sign_in_attempts`);
:meth:`LogtoGateway.finish_sign_in` exchanges the code, stores the tokens under a fresh
session id and only then empties the browser's previous session and revokes its refresh
token. A cross-site ``GET /sign-in`` therefore signs nobody out, and no session id the
browser presents is ever adopted.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Final
from urllib.parse import parse_qs, urlencode

import jwt
import pydantic
from logto import IdTokenClaims, LogtoException, UserInfoResponse

from .errors import (
    ClientAppError,
    IssuerProblem,
    NotSignedIn,
    SessionEnded,
    SignInFailed,
)
from .issuer_http import OAuthError
from .logto_client import (
    IdTokenSubjectChanged,
    SessionLogtoClient,
    logto_config,
    organization_resource_key,
)
from .metrics import ClientMetrics
from .oidc import ORGANIZATION_URN_PREFIX, LogtoProvider
from .sessions import SessionData, SessionStore, new_session_id
from .settings import Settings
from .shared_check import SharedCheck
from .sign_in_attempts import ATTEMPT_MAX_AGE_SECONDS, AttemptSealer, SignInAttempt
from .step_up import claim_check
from .translation import translate

logger = logging.getLogger("client_app.gateway")

SDK_SIGN_IN_SESSION: Final = "signInSession"
"""Where the SDK keeps its attempt (state, PKCE verifier) in a session's storage."""
SIGN_IN_TTL_SECONDS: Final = ATTEMPT_MAX_AGE_SECONDS
REACHABILITY_TTL_SECONDS: Final = 5.0
"""How long a successful "is Logto there?" check before a sign-in is trusted."""


@dataclass(frozen=True, slots=True)
class TokenTarget:
    """What an access token is for: an API, an organization, or an API in an organization."""

    resource: str | None = None
    organization_id: str | None = None

    def __post_init__(self) -> None:
        if self.resource is None and self.organization_id is None:
            raise ValueError("a token target names a resource, an organization or both")

    @property
    def cache_key(self) -> str:
        """The token's key in the SDK's ``accessTokenMap``."""
        if self.resource is None:
            return f"{ORGANIZATION_URN_PREFIX}{self.organization_id}"
        if self.organization_id is None:
            return self.resource
        return organization_resource_key(self.resource, self.organization_id)


@dataclass(frozen=True, slots=True)
class SignInStart:
    """Where to send the browser, and the attempt sealed for its cookie."""

    url: str
    sealed_attempt: str


@dataclass(frozen=True, slots=True)
class SignInDone:
    """The signed-in session (a new id: RFC 6749 §10.12 fixation defence) and where to go."""

    session_id: str
    return_to: str


class LogtoGateway:
    """Sign-in, sign-out, the user and every token, on one session at a time."""

    def __init__(
        self,
        settings: Settings,
        *,
        provider: LogtoProvider,
        sessions: SessionStore,
        clock: Callable[[], float] = time.time,
        metrics: ClientMetrics | None = None,
    ) -> None:
        self.settings = settings
        self.metrics = metrics or ClientMetrics()
        self.provider = provider
        self.sessions = sessions
        self.config = logto_config(settings)
        self.attempts = AttemptSealer(settings.session_secret)
        self._clock = clock
        self._issuer_reachable = SharedCheck(
            provider.check_reachable, ttl_seconds=REACHABILITY_TTL_SECONDS, clock=clock
        )

    def client(self, data: SessionData) -> SessionLogtoClient:
        """An SDK client bound to ``data`` (one session's document)."""
        return SessionLogtoClient(
            self.config, storage=data, provider=self.provider, clock=self._clock
        )

    @contextlib.asynccontextmanager
    async def _session(self, session_id: str) -> AsyncIterator[SessionLogtoClient]:
        abandoned: str | None = None  # a refresh token to revoke once the session is saved
        try:
            async with self.sessions.open(session_id) as data, _translated():
                try:
                    yield self.client(data)
                except OAuthError as exc:
                    if exc.error == "invalid_grant":
                        data.clear()  # the grant is gone: nothing in this session works
                        logger.info("session ended by the issuer", extra={"event": "grant_refused"})
                    raise
                except IdTokenSubjectChanged:
                    # Not this session's user any more: keep nothing, and end the grant too.
                    abandoned = data.get("refreshToken")
                    data.clear()
                    logger.warning(
                        "a refreshed ID token named another user; session ended",
                        extra={"event": "id_token_subject_changed"},
                    )
                    raise
        finally:
            # After the session's lock is released (as sign_out does): the issuer's answer
            # may take its whole timeout.
            if abandoned is not None:
                await self._revoke_quietly(abandoned)

    # -- sign-in and sign-out ---------------------------------------------------------------

    async def start_sign_in(self, *, sign_up: bool = False, return_to: str = "/") -> SignInStart:
        """The Logto sign-in URL (``interaction_mode=signUp`` and ``first_screen=register``
        for a sign-up) and the sealed attempt for the browser's cookie. No session is read or
        written: the browser's current session (if any) is left alone until the callback."""
        try:
            start = await self._start_sign_in(sign_up=sign_up, return_to=return_to)
        except ClientAppError as exc:
            self.metrics.sign_in_failed(exc)
            raise
        self.metrics.sign_in_started()
        return start

    async def _start_sign_in(self, *, sign_up: bool, return_to: str) -> SignInStart:
        async with _translated():
            await self._issuer_reachable()  # never send the browser to a dead issuer
            data = SessionData()
            url = await self.client(data).signIn(
                self.settings.redirect_uri, "signUp" if sign_up else None
            )
        sdk_session = data.get(SDK_SIGN_IN_SESSION)
        if sdk_session is None:  # the SDK always stores it; never seal an empty attempt
            raise IssuerProblem("The sign-in library could not start the sign-in.")
        attempt = SignInAttempt(sdk_session, return_to, int(self._clock()))
        if sign_up:  # Logto's successor of interaction_mode (logto-tokens.md §5)
            url = f"{url}&{urlencode({'first_screen': 'register'})}"
        return SignInStart(url, self.attempts.seal(attempt))

    async def finish_sign_in(
        self, session_id: str | None, sealed_attempt: str | None, query: str
    ) -> SignInDone:
        """Handle the callback's query for the attempt the browser sealed. On success the
        tokens go into a new session (a new id), and only then is the browser's previous
        session (another user's, maybe) emptied and its refresh token revoked."""
        attempt = self.attempts.open(sealed_attempt)
        if attempt is None and session_id is not None and await self._signed_in(session_id):
            return SignInDone(session_id, "/")  # a replayed callback of a signed-in user
        try:
            done = await self._finish_sign_in(session_id, attempt, query)
        except ClientAppError as exc:
            self.metrics.sign_in_failed(exc)
            raise
        self.metrics.sign_in_completed()
        return done

    async def _finish_sign_in(
        self, session_id: str | None, attempt: SignInAttempt | None, query: str
    ) -> SignInDone:
        if attempt is None:
            raise SignInFailed("no_attempt")
        params = parse_qs(query, keep_blank_values=True)
        self._check_attempt(attempt, params)
        data = SessionData({SDK_SIGN_IN_SESSION: attempt.sdk_session})
        try:
            async with _translated():
                await self.client(data).handleSignInCallback(
                    f"{self.settings.redirect_uri}?{query}"
                )
        except SessionEnded as exc:  # invalid_grant on the code: expired or already used
            raise SignInFailed("code_rejected") from exc
        data.delete(SDK_SIGN_IN_SESSION)
        new_id = new_session_id()
        try:
            await self.sessions.save(new_id, data)
        except ClientAppError:
            # Not stored, so not signed in: give the grant back rather than leave it live.
            if (refresh_token := data.get("refreshToken")) is not None:
                await self._revoke_quietly(refresh_token)
            raise
        if session_id is not None:
            await self._end_previous_session(session_id)
        logger.info("signed in", extra={"event": "signed_in"})
        return SignInDone(new_id, attempt.return_to)

    def _check_attempt(self, attempt: SignInAttempt, params: dict[str, list[str]]) -> None:
        """Precise reasons for what the SDK would refuse with one generic exception."""
        if self._clock() - attempt.started_at > SIGN_IN_TTL_SECONDS:
            raise SignInFailed("expired_attempt")
        # State first (RFC 6749 §10.12): an answer that is not for this attempt, error or not,
        # must not end it; the attempt stays for its real answer.
        if params.get("state", [""])[0] != _attempt_state(attempt.sdk_session):
            raise SignInFailed("state_mismatch")
        if "error" in params:  # RFC 6749 §4.1.2.1
            raise SignInFailed("cancelled" if params["error"][0] == "access_denied" else "denied")
        if not params.get("code", [""])[0]:
            raise SignInFailed("no_code")

    async def _signed_in(self, session_id: str) -> bool:
        """Whether ``session_id`` holds an unexpired ID token (read only, no refresh)."""
        return bool(self.client(await self.sessions.load(session_id)).isAuthenticated())

    async def _end_previous_session(self, session_id: str) -> None:
        """Empty the session the browser held before this sign-in and revoke its refresh
        token. The new session is stored already: a failure here is logged, not shown."""
        try:
            async with self.sessions.open(session_id) as data:
                refresh_token = data.get("refreshToken")
                data.clear()
        except ClientAppError as exc:
            logger.warning(
                "previous session not ended",
                extra={"event": "previous_session_kept", "error_type": type(exc).__name__},
            )
            return
        if refresh_token is not None:
            await self._revoke_quietly(refresh_token)

    async def sign_out(self, session_id: str | None) -> str:
        """Empty the session, revoke its refresh token (RFC 7009: ending Logto's session
        does not) and return Logto's end-session URL, or home when there is nothing to end
        or Logto cannot be reached."""
        home = self.settings.post_logout_redirect_uri
        if session_id is None:
            return home
        async with self.sessions.open(session_id) as data:
            refresh_token = data.get("refreshToken")
            signed_in = data.get("idToken") is not None
            try:
                url: str = await self.client(data).signOut(home) if signed_in else home
            except LogtoException as exc:
                logger.warning(
                    "end-session URL unavailable; signed out locally",
                    extra={"event": "sign_out_local", "error_type": type(exc).__name__},
                )
                url = home
            data.clear()
        if refresh_token is not None:
            await self._revoke_quietly(refresh_token)
        logger.info("signed out", extra={"event": "signed_out", "through_logto": url != home})
        return url

    async def _revoke_quietly(self, refresh_token: str) -> bool:
        try:
            core = await self.provider.core()
            return await core.revoke(
                self.config.appId, self.config.appSecret, refresh_token, "refresh_token"
            )
        except LogtoException as exc:
            logger.warning(
                "refresh token not revoked",
                extra={"event": "revocation_failed", "error_type": type(exc).__name__},
            )
            return False

    # -- the user ---------------------------------------------------------------------------

    async def current_user(self, session_id: str | None) -> IdTokenClaims | None:
        """The signed-in user's ID-token claims, renewing an expired ID token with the refresh
        token; ``None`` when nobody is signed in (or the session just ended)."""
        if session_id is None:
            return None
        try:
            async with self._session(session_id) as client:
                if client.storage.get("idToken") is None:
                    return None
                if not client.isAuthenticated() and not await self._renew(client):
                    client.storage.clear()
                    return None
                claims: IdTokenClaims = client.getIdTokenClaims()
                return claims
        except SessionEnded:
            return None

    @staticmethod
    async def _renew(client: SessionLogtoClient) -> bool:
        """Pitfall 10: an expired ID token is not a signed-in user until renewed."""
        return bool(await client.renewIdToken()) and bool(client.isAuthenticated())

    async def user_info(self, session_id: str) -> UserInfoResponse:
        """The userinfo endpoint's answer (with the claims the ID token does not carry)."""
        async with self._session(session_id) as client:
            if client.storage.get("refreshToken") is None and not client.isAuthenticated():
                raise NotSignedIn
            info: UserInfoResponse = await client.fetchUserInfo()
            return info

    # -- tokens -----------------------------------------------------------------------------

    async def token(self, session_id: str, target: TokenTarget) -> str:
        """A valid access token for ``target``: cached, or refreshed under the session lock."""
        async with self._session(session_id) as client:
            token = await _token_for(client, target)
        if token is None:
            raise NotSignedIn
        return str(token)

    async def recheck_token(self, session_id: str, target: TokenTarget) -> str:
        """A new access token for ``target`` whatever is cached ("Check my permissions
        again", :mod:`client_app.step_up`): the cached one is dropped and the refresh token
        presented, so the scopes are the user's roles now. At most one check per session and
        target every ``CHECK_INTERVAL_SECONDS`` (else :class:`CheckTooSoon`), counted before
        the issuer is asked, so a failing issuer is not hammered either."""
        async with self._session(session_id) as client:
            if client.storage.get("refreshToken") is None:
                raise NotSignedIn
            claim_check(client.storage, target.cache_key, self._clock())
            token_map = client._getAccessTokenMap()
            if token_map.x.pop(target.cache_key, None) is not None:
                client.storage.set("accessTokenMap", token_map.model_dump_json())
            token = await _token_for(client, target)
        if token is None:
            raise NotSignedIn
        logger.info("permissions checked again", extra={"event": "permissions_rechecked"})
        return str(token)

    async def discard_token(self, session_id: str, target: TokenTarget, token: str) -> None:
        """Drop ``token`` from the cache if it is still the cached one (the API refused it)."""
        async with self.sessions.open(session_id) as data:
            client = self.client(data)
            token_map = client._getAccessTokenMap()
            cached = token_map.x.get(target.cache_key)
            if cached is not None and cached.token == token:
                del token_map.x[target.cache_key]
                data.set("accessTokenMap", token_map.model_dump_json())


async def _token_for(client: SessionLogtoClient, target: TokenTarget) -> str | None:
    """The SDK's token for ``target``: cached, or fetched with the refresh token."""
    token: str | None
    if target.resource is None:
        token = await client.getOrganizationToken(target.organization_id)
    elif target.organization_id is None:
        token = await client.getAccessToken(target.resource)
    else:
        token = await client.getOrganizationResourceToken(target.organization_id, target.resource)
    return token


@contextlib.asynccontextmanager
async def _translated() -> AsyncIterator[None]:
    """SDK, transport and token failures of the block as :mod:`client_app.errors`."""
    try:
        yield
    except (LogtoException, jwt.PyJWTError, pydantic.ValidationError) as exc:
        raise translate(exc) from exc


def _attempt_state(attempt: str) -> str | None:
    """The ``state`` of the SDK's stored sign-in attempt (``None`` if unreadable)."""
    try:
        state = json.loads(attempt).get("state")
    except (ValueError, AttributeError):
        return None
    return state if isinstance(state, str) and state else None
