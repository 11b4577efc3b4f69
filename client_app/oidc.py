"""The issuer as this process knows it: discovered once, reached through one httpx client.

:class:`LogtoProvider` fetches Logto's discovery document once per process and builds one
:class:`HttpxOidcCore`, which every per-request SDK client shares (``logto-tokens.md`` §6.3:
otherwise each request re-fetches discovery and the JWKS). The core is the SDK's
:class:`~logto.OidcCore` with its transport replaced:

* every call goes through the injected :class:`httpx.AsyncClient`, bounded by a timeout as a
  whole (§6.11), authenticating the client with ``client_secret_basic`` (RFC 6749 §2.3.1; the
  SDK posts ``client_secret`` in the body and, without a secret, the literal ``None``: §6.6);
* the refresh grant takes Logto's ``organization_id`` *together with* ``resource``
  (organization-level API tokens, which the SDK cannot ask for: §6.7);
* ID-token verification does no I/O on the event loop (§6.4): the key an ID token names is
  fetched asynchronously (:class:`IdTokenKeys`) as soon as the token response arrives, so the
  SDK's synchronous ``verifyIdToken`` only checks the signature and claims. ``PyJWKClient``
  (blocking ``urllib``) is never asked for a key;
* RFC 7009 revocation, which the SDK lacks (sign-out does not revoke refresh tokens: §5).

Failures are raised as :class:`~logto.LogtoException` subclasses carrying what happened
(:class:`OAuthError` with the RFC 6749 code, :class:`IssuerUnreachable`, ...); the gateway
turns them into what the user reads.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import math
import time
from collections.abc import Callable, Mapping
from typing import Any, Final
from urllib.parse import quote_plus

import httpx
import jwt
import pydantic
from logto import LogtoException, OidcProviderMetadata, TokenResponse, UserInfoResponse
from logto.OidcCore import OidcCore

logger = logging.getLogger("client_app.oidc")

ORGANIZATION_URN_PREFIX: Final = "urn:logto:organization:"
ID_TOKEN_ALGORITHMS: Final = frozenset({"RS256", "PS256", "ES256", "ES384", "ES512"})
"""What Logto signs ID tokens with; ``none`` and HMAC are never accepted."""
ID_TOKEN_LEEWAY_SECONDS: Final = 30
KEYS_MAX_AGE_SECONDS: Final = 600.0
"""Cached keys older than this are refetched before use (a withdrawn key stops verifying)."""
_JSON = {"Accept": "application/json"}


class IssuerUnreachable(LogtoException):  # type: ignore[misc]  # the SDK ships no type information
    """The issuer could not be reached or did not answer in time."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(f"the issuer could not be reached ({reason})")


class OAuthError(LogtoException):  # type: ignore[misc]
    """The issuer answered an OAuth error (RFC 6749 §5.2): status, code and description."""

    def __init__(self, status: int, error: str, description: str) -> None:
        self.status = status
        self.error = error
        self.description = description
        super().__init__(f"{error}: {description}" if description else error)


class UnexpectedAnswer(LogtoException):  # type: ignore[misc]
    """The issuer answered something that is not the document the protocol defines."""

    def __init__(self, what: str) -> None:
        self.what = what
        super().__init__(f"unexpected answer from the issuer: {what}")


class InvalidIdToken(LogtoException):  # type: ignore[misc]
    """An ID token failed verification (signature, issuer, audience or lifetime)."""


class MissingClientSecret(LogtoException):  # type: ignore[misc]
    """No client secret: a traditional web app must authenticate at the token endpoint."""


def basic_authorization(client_id: str, client_secret: str | None) -> str:
    """``Authorization: Basic`` for RFC 6749 §2.3.1: both parts form-urlencoded first."""
    if not client_secret:
        raise MissingClientSecret("the client secret is required")
    credentials = f"{quote_plus(client_id)}:{quote_plus(client_secret)}"
    return "Basic " + base64.b64encode(credentials.encode()).decode("ascii")


class IssuerHttp:
    """JSON over the injected client, each call bounded by ``timeout`` seconds in total."""

    def __init__(self, http_client: httpx.AsyncClient, timeout: float) -> None:
        self.http = http_client
        self.timeout = timeout

    async def request(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        form: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        """Send one request; transport failures and timeouts become :class:`IssuerUnreachable`."""
        try:
            async with asyncio.timeout(self.timeout):
                return await self.http.request(
                    method, url, headers={**_JSON, **(headers or {})}, data=form,
                    timeout=self.timeout,
                )  # fmt: skip
        except (TimeoutError, httpx.TimeoutException) as exc:
            raise IssuerUnreachable("timeout") from exc
        except httpx.HTTPError as exc:
            raise IssuerUnreachable(type(exc).__name__) from exc

    async def json(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        form: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        """The JSON object of a 200 answer; an error answer raises :class:`OAuthError`."""
        response = await self.request(method, url, headers=headers, form=form)
        if response.status_code != httpx.codes.OK:
            raise _oauth_error(response)
        return _json_object(response, url)


def _json_object(response: httpx.Response, what: str) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError as exc:
        raise UnexpectedAnswer(f"{what} is not JSON") from exc
    if not isinstance(body, dict):
        raise UnexpectedAnswer(f"{what} is not a JSON object")
    return body


def _oauth_error(response: httpx.Response) -> OAuthError:
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("error"), str):
        description = body.get("error_description")
        return OAuthError(
            response.status_code, body["error"], description if isinstance(description, str) else ""
        )
    return OAuthError(response.status_code, f"http_{response.status_code}", "")


class IdTokenKeys:
    """The issuer's signing keys, fetched asynchronously, for ID-token verification.

    ``prepare`` (async) makes sure the key a token names is held: a key id not seen yet (the
    issuer rotated its keys) or keys older than ``max_age`` trigger one fetch, shared by
    concurrent callers. No cooldown is needed against made-up key ids: ID tokens reach this
    app only in token-endpoint answers, straight from the issuer (OpenID Connect Core
    §3.1.3.7). ``verify`` (sync) then does no I/O.
    """

    def __init__(
        self,
        jwks_uri: str,
        *,
        http: IssuerHttp,
        max_age: float = KEYS_MAX_AGE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.jwks_uri = jwks_uri
        self.fetches = 0
        self._http = http
        self._max_age = max_age
        self._clock = clock
        self._keys: dict[str, jwt.PyJWK] = {}
        self._fetched_at = -math.inf
        self._lock = asyncio.Lock()

    async def prepare(self, token: str) -> None:
        """Hold the key ``token`` is signed with, fetching the key set if needed."""
        kid = _key_id(token)
        fresh = self._clock() - self._fetched_at < self._max_age
        if kid in self._keys and fresh:
            return
        try:
            await self._refresh(requested_at=self._clock())
        except LogtoException:
            if kid not in self._keys:
                raise
            logger.warning("jwks refetch failed; using the cached key", extra={"event": "jwks"})

    def verify(self, token: str, *, audience: str, issuer: str) -> dict[str, Any]:
        """The claims of a valid ID token; raises :class:`InvalidIdToken`. No I/O."""
        key = self._keys.get(_key_id(token))
        if key is None:
            raise InvalidIdToken("the ID token is signed with an unknown key")
        algorithm = key.algorithm_name
        if algorithm not in ID_TOKEN_ALGORITHMS:
            raise InvalidIdToken("the ID token's key has an unsupported algorithm")
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key.key,
                algorithms=[algorithm],
                audience=audience,
                issuer=issuer,
                leeway=ID_TOKEN_LEEWAY_SECONDS,
                options={"require": ["exp", "iat", "iss", "aud", "sub"]},
            )
        except jwt.InvalidTokenError as exc:
            raise InvalidIdToken(f"the ID token is invalid ({type(exc).__name__})") from exc
        return claims

    async def _refresh(self, *, requested_at: float) -> None:
        async with self._lock:
            if self._fetched_at >= requested_at:
                return  # fetched by another caller while this one waited
            body = await self._http.json("GET", self.jwks_uri)
            self.fetches += 1
            try:
                key_set = jwt.PyJWKSet.from_dict(body)
            except jwt.PyJWTError as exc:
                raise UnexpectedAnswer("the JWKS holds no usable key") from exc
            self._keys = {
                key.key_id: key
                for key in key_set.keys
                if key.key_id and key.public_key_use in (None, "sig")
            }
            self._fetched_at = self._clock()


def _key_id(token: str) -> str:
    try:
        kid = jwt.get_unverified_header(token).get("kid")
    except jwt.DecodeError as exc:
        raise InvalidIdToken("the ID token is malformed") from exc
    if not isinstance(kid, str) or not kid:
        raise InvalidIdToken("the ID token names no key")
    return kid


class HttpxOidcCore(OidcCore):  # type: ignore[misc]  # the SDK ships no type information
    """The SDK's OIDC core with an httpx transport, async key fetching and two extras."""

    def __init__(
        self,
        metadata: OidcProviderMetadata,
        *,
        http: IssuerHttp,
        revocation_endpoint: str | None,
        keys: IdTokenKeys,
    ) -> None:
        super().__init__(metadata)  # also builds a PyJWKClient, which nothing here calls
        self.http = http
        self.revocation_endpoint = revocation_endpoint
        self.keys = keys

    async def fetchTokenByCode(  # noqa: N802 - the SDK's method name
        self,
        clientId: str,  # noqa: N803 - the SDK's parameter names (it calls them by keyword)
        clientSecret: str | None,  # noqa: N803
        redirectUri: str,  # noqa: N803
        code: str,
        codeVerifier: str,  # noqa: N803
    ) -> TokenResponse:
        """Exchange the authorization code (RFC 6749 §4.1.3, PKCE RFC 7636 §4.5)."""
        return await self._token_request(
            clientId,
            clientSecret,
            {
                "grant_type": "authorization_code",
                "redirect_uri": redirectUri,
                "code": code,
                "code_verifier": codeVerifier,
            },
        )

    async def fetchTokenByRefreshToken(  # noqa: N802
        self,
        clientId: str,  # noqa: N803
        clientSecret: str | None,  # noqa: N803
        refreshToken: str,  # noqa: N803
        resource: str = "",
        *,
        organization_id: str | None = None,
    ) -> TokenResponse:
        """Refresh grant (RFC 6749 §6) for one resource, an organization token
        (``resource`` = ``urn:logto:organization:<id>``, as the SDK asks) or, with
        ``organization_id``, an organization-level API token (both parameters)."""
        form = {"grant_type": "refresh_token", "refresh_token": refreshToken}
        if resource.startswith(ORGANIZATION_URN_PREFIX):
            form["organization_id"] = resource.removeprefix(ORGANIZATION_URN_PREFIX)
        elif resource:
            form["resource"] = resource  # RFC 8707 §2.2
        if organization_id is not None:
            form["organization_id"] = organization_id
        return await self._token_request(clientId, clientSecret, form)

    def verifyIdToken(self, idToken: str, clientId: str) -> None:  # noqa: N802, N803
        """Verify an ID token with the key fetched when it arrived: no I/O here."""
        self.keys.verify(idToken, audience=clientId, issuer=self.metadata.issuer)

    async def fetchUserInfo(self, accessToken: str) -> UserInfoResponse:  # noqa: N802, N803
        """The userinfo endpoint (OpenID Connect Core §5.3) with the opaque access token."""
        body = await self.http.json(
            "GET",
            self.metadata.userinfo_endpoint,
            headers={"Authorization": f"Bearer {accessToken}"},
        )
        try:
            return UserInfoResponse(**body)
        except pydantic.ValidationError as exc:
            raise UnexpectedAnswer("the userinfo answer does not fit its model") from exc

    async def revoke(
        self, client_id: str, client_secret: str | None, token: str, hint: str
    ) -> bool:
        """Revoke ``token`` (RFC 7009 §2.1); False when the issuer has no revocation endpoint."""
        if self.revocation_endpoint is None:
            return False
        response = await self.http.request(
            "POST",
            self.revocation_endpoint,
            headers={"Authorization": basic_authorization(client_id, client_secret)},
            form={"token": token, "token_type_hint": hint},
        )
        if response.status_code != httpx.codes.OK:  # RFC 7009 §2.2: 200 even for unknown tokens
            raise _oauth_error(response)
        return True

    async def _token_request(
        self, client_id: str, client_secret: str | None, form: dict[str, str]
    ) -> TokenResponse:
        body = await self.http.json(
            "POST",
            self.metadata.token_endpoint,
            headers={"Authorization": basic_authorization(client_id, client_secret)},
            form=form,
        )
        try:
            tokens = TokenResponse(**body)
        except pydantic.ValidationError as exc:
            raise UnexpectedAnswer("the token answer does not fit its model") from exc
        if tokens.id_token is not None:
            await self.keys.prepare(tokens.id_token)
        return tokens


class LogtoProvider:
    """Discovery, fetched once per process and shared by every request's SDK client."""

    def __init__(
        self,
        endpoint: str,
        *,
        http_client: httpx.AsyncClient,
        timeout: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.issuer = f"{endpoint.rstrip('/')}/oidc"
        self.discovery_url = f"{self.issuer}/.well-known/openid-configuration"
        self.discovery_fetches = 0
        self._http = IssuerHttp(http_client, timeout)
        self._clock = clock
        self._core: HttpxOidcCore | None = None
        self._lock = asyncio.Lock()

    async def core(self) -> HttpxOidcCore:
        """The shared core; the first caller fetches discovery, concurrent callers wait for
        it, and a failed fetch is retried by the next caller."""
        if self._core is None:
            async with self._lock:
                if self._core is None:
                    self._core = await self._discover()
        return self._core

    async def _discover(self) -> HttpxOidcCore:
        self.discovery_fetches += 1
        document = await self._http.json("GET", self.discovery_url)
        # OpenID Connect Discovery §4.3: the issuer must be exactly the one configured.
        if document.get("issuer") != self.issuer:
            raise UnexpectedAnswer("the discovery document names another issuer")
        try:
            metadata = OidcProviderMetadata(**document)
        except pydantic.ValidationError as exc:
            raise UnexpectedAnswer("the discovery document lacks required fields") from exc
        revocation = document.get("revocation_endpoint")
        return HttpxOidcCore(
            metadata,
            http=self._http,
            revocation_endpoint=revocation if isinstance(revocation, str) else None,
            keys=IdTokenKeys(metadata.jwks_uri, http=self._http, clock=self._clock),
        )
