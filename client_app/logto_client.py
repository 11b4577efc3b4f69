"""The SDK's :class:`~logto.LogtoClient`, one per request, bound to that request's session.

:class:`SessionLogtoClient` keeps the SDK's flow (PKCE, state, token cache, refresh) and
changes only what ``logto-tokens.md`` §6 shows to be wrong:

1. its storage is required: the SDK's default is one in-memory store shared by every client
   (a mutable default argument), i.e. every user;
3. the OIDC core (discovery, keys) is the process-wide one of :class:`~client_app.oidc.
   LogtoProvider`, not rediscovered per client;
5. ``signIn`` and ``signOut`` clear *every* key of the session: the SDK's ``signIn`` forgets
   ``accessTokenMap``, so the next user of the browser would inherit the previous user's API
   tokens;
7. ``getOrganizationResourceToken``: an organization-level API token (refresh grant with
   ``resource`` *and* ``organization_id``), cached in the same token map;
9. ``getAccessTokenClaims`` accepts a token without ``scope`` (no permission on that API) and
   refuses the opaque default token with a clear message instead of ``jwt.DecodeError``;
10. ``isAuthenticated`` is true only while the stored ID token is unexpired;
    ``renewIdToken`` gets a fresh one with the refresh token;
12. (not in §6, found since) ``_handleTokenResponse`` stores a refresh answer's refresh and
    access tokens *before* its ID token is checked, and keeps them whatever the check says:
    the issuer has already rotated the refresh token, and presenting the used one again
    would revoke the whole grant (``logto-tokens.md`` §5). The SDK verifies first, so a JWKS
    answering no key, a JWKS timeout or clock skew beyond the leeway lost the rotated
    refresh token. An ID token that cannot be verified is not stored: the previous one (and
    its claims) stays, and the failure is logged (``id_token_unverified``, no token). At the
    sign-in callback there is no previous one: the ID token must verify before anything is
    stored, as in the SDK;
13. (found since) a refreshed ID token must name the user of the sign-in (OpenID Connect Core
    1.0 §12.2: same ``sub``); the SDK stores whatever verifies, so a refresh answering
    another user's ID token put that user in this browser's session. It raises
    :class:`IdTokenSubjectChanged` instead, and the gateway ends the session.

:func:`logto_config` builds the SDK's configuration: the secret is required (6) and known
scope names become the SDK's enum members (8).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any, Final

import jwt
from logto import (
    AccessTokenClaims,
    LogtoClient,
    LogtoConfig,
    LogtoException,
    TokenResponse,
    UserInfoScope,
)

from .issuer_http import MissingClientSecret
from .oidc import HttpxOidcCore, LogtoProvider
from .sessions import SessionData
from .settings import Settings

logger = logging.getLogger("client_app.logto_client")

API_SCOPES: Final = ("shopping:read", "shopping:write", "store:read", "store:write", "read:members")
"""The permissions this app's pages use; Logto grants each only if the user has it."""
SDK_DEFAULT_SCOPES: Final = frozenset({"openid", "profile", "offline_access"})


def sdk_scope(name: str) -> str | UserInfoScope:
    """``name`` as the SDK wants it (pitfall 8): the SDK recognises the organizations scope
    only as ``UserInfoScope.organizations``, so known scope names become enum members."""
    try:
        return UserInfoScope(name)
    except ValueError:
        return name


def logto_config(settings: Settings) -> LogtoConfig:
    """The SDK configuration: both API resources, the extra scopes and the API permissions."""
    names = [
        s for s in dict.fromkeys((*settings.scopes, *API_SCOPES)) if s not in SDK_DEFAULT_SCOPES
    ]
    secret = settings.app_secret.reveal()
    if not secret:  # pitfall 6: the SDK would send the string "None"
        raise MissingClientSecret("LOGTO_APP_SECRET is required")
    return LogtoConfig(
        endpoint=settings.logto_endpoint,
        appId=settings.app_id,
        appSecret=secret,
        resources=[settings.shopping_resource, settings.store_resource],
        scopes=[sdk_scope(name) for name in names],
    )


ORGANIZATION_KEY_SEPARATOR: Final = "#organization_id="
"""Cache key of an organization-level token: ``<resource>#organization_id=<id>``. A resource
indicator has no fragment (RFC 8707 §2), so no real resource can collide with it."""


def organization_resource_key(resource: str, organization_id: str) -> str:
    """Where an organization-level API token is cached in ``accessTokenMap``."""
    return f"{resource}{ORGANIZATION_KEY_SEPARATOR}{organization_id}"


def unverified_claims(token: str) -> dict[str, Any]:
    """The payload of a JWT this app received straight from the token endpoint (for display
    and expiry only: the API verifies the signature); raises ``jwt.DecodeError``."""
    claims: dict[str, Any] = jwt.decode(
        token, options={"verify_signature": False, "verify_aud": False, "verify_exp": False}
    )
    return claims


def _subject(id_token: str) -> object:
    """The ``sub`` of an ID token that verified (this one now, or the stored one at its
    time); ``None`` if it has none or cannot be read."""
    try:
        return unverified_claims(id_token).get("sub")
    except jwt.DecodeError:
        return None


class IdTokenSubjectChanged(LogtoException):  # type: ignore[misc]  # the SDK's, untyped
    """A refreshed ID token names another user (``sub``) than the session's ID token."""


class SessionLogtoClient(LogtoClient):  # type: ignore[misc]  # the SDK ships no type information
    """A ``LogtoClient`` over one session's storage and the process-wide OIDC core."""

    def __init__(
        self,
        config: LogtoConfig,
        *,
        storage: SessionData,
        provider: LogtoProvider,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(config, storage)
        self.storage = storage
        self.id_token_failure: LogtoException | None = None
        """Why the last refresh answer's ID token was not stored (``None``: it was, or none)."""
        self._provider = provider
        self._clock = clock
        self._signing_in = False

    async def getOidcCore(self) -> HttpxOidcCore:  # noqa: N802 - the SDK's method name
        """The shared core (pitfall 3): discovery happens once per process."""
        return await self._provider.core()

    async def signIn(  # noqa: N802
        self,
        redirectUri: str,  # noqa: N803 - the SDK's parameter names
        interactionMode: str | None = None,  # noqa: N803
    ) -> str:
        """The SDK's sign-in URL; the session keeps nothing but the new sign-in attempt."""
        url: str = await super().signIn(redirectUri, interactionMode)
        attempt = self.storage.get("signInSession")
        self.storage.clear()  # pitfall 5: accessTokenMap and every other key
        self.storage.set("signInSession", attempt)
        return url

    async def handleSignInCallback(self, callbackUri: str) -> None:  # noqa: N802, N803
        """The SDK's callback handling; its ID token must verify before anything is stored."""
        self._signing_in = True
        try:
            await super().handleSignInCallback(callbackUri)
        finally:
            self._signing_in = False

    async def _handleTokenResponse(  # noqa: N802
        self,
        resource: str,
        tokenResponse: TokenResponse,  # noqa: N803
    ) -> None:
        """Store a token answer (pitfall 12): at sign-in only once its ID token verifies; a
        refresh answer's refresh and access tokens at once, its ID token only if it verifies
        (else the previous one stays, and :attr:`id_token_failure` says why)."""
        id_token = tokenResponse.id_token
        if self._signing_in and id_token is not None:
            await self._verify_id_token(id_token)  # no previous sign-in to fall back on
        if tokenResponse.refresh_token is not None:
            self.storage.set("refreshToken", tokenResponse.refresh_token)
        self._setAccessToken(resource, tokenResponse.access_token, tokenResponse.expires_in)
        if id_token is None:
            return
        if not self._signing_in:
            try:
                await self._verify_id_token(id_token)
            except LogtoException as exc:
                self.id_token_failure = exc
                logger.warning(
                    "the refreshed ID token could not be verified; the previous one is kept",
                    extra={"event": "id_token_unverified", "error_type": type(exc).__name__},
                )
                return
            previous = self.storage.get("idToken")
            if previous is not None and _subject(previous) != _subject(id_token):
                raise IdTokenSubjectChanged("the refreshed ID token names another user")
        self.storage.set("idToken", id_token)

    async def _verify_id_token(self, id_token: str) -> None:
        core = await self.getOidcCore()
        await core.verify_id_token(id_token, self.config.appId)

    async def signOut(self, postLogoutRedirectUri: str | None = None) -> str:  # noqa: N802, N803
        """The SDK's end-session URL; the session is emptied even if building it fails."""
        try:
            url: str = await super().signOut(postLogoutRedirectUri)
        finally:
            self.storage.clear()
        return url

    def isAuthenticated(self) -> bool:  # noqa: N802
        """Signed in while the stored ID token has not expired (pitfall 10)."""
        id_token = self.storage.get("idToken")
        if id_token is None:
            return False
        try:
            expires_at = unverified_claims(id_token).get("exp")
        except jwt.DecodeError:
            return False
        return isinstance(expires_at, int) and expires_at > self._clock()

    async def renewIdToken(self) -> bool:  # noqa: N802
        """Refresh without a resource to get a new ID token; False without a refresh token.
        A new ID token that cannot be verified raises its failure, the rotated refresh token
        stored (the next attempt presents it)."""
        refresh_token = self.storage.get("refreshToken")
        if refresh_token is None:
            return False
        core = await self.getOidcCore()
        response = await core.fetchTokenByRefreshToken(
            clientId=self.config.appId,
            clientSecret=self.config.appSecret,
            refreshToken=refresh_token,
        )
        await self._handleTokenResponse("", response)
        if self.id_token_failure is not None:
            raise self.id_token_failure
        return response.id_token is not None

    async def getAccessTokenClaims(self, resource: str = "") -> AccessTokenClaims:  # noqa: N802
        """Claims of the API token for ``resource``; a token without ``scope`` has no
        permission on that API and decodes with ``scope == ""`` (pitfall 9)."""
        if not resource:
            raise LogtoException("the default access token is opaque: name an API resource")
        token = await self.getAccessToken(resource)
        if token is None:
            raise LogtoException("not signed in")
        claims = unverified_claims(token)
        return AccessTokenClaims(**{**claims, "scope": claims.get("scope") or ""})

    async def getOrganizationResourceToken(  # noqa: N802
        self,
        organizationId: str,  # noqa: N803
        resource: str,
    ) -> str | None:
        """An organization-level API token (pitfall 7): ``aud`` = ``resource`` and
        ``organization_id`` = ``organizationId``, cached and refreshed like the SDK's."""
        key = organization_resource_key(resource, organizationId)
        cached: str | None = self._getAccessToken(key)
        if cached is not None:
            return cached
        if UserInfoScope.organizations not in self.config.scopes:
            raise LogtoException("the organizations scope is required for organization tokens")
        refresh_token = self.storage.get("refreshToken")
        if refresh_token is None:
            return None
        core = await self.getOidcCore()
        response = await core.fetchTokenByRefreshToken(
            clientId=self.config.appId,
            clientSecret=self.config.appSecret,
            refreshToken=refresh_token,
            resource=resource,
            organization_id=organizationId,
        )
        await self._handleTokenResponse(key, response)  # stores a rotated refresh token too
        token: str = response.access_token
        return token
