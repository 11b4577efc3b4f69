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
* ID-token verification does no blocking I/O on the event loop (§6.4):
  :meth:`HttpxOidcCore.verify_id_token` fetches the key an ID token names asynchronously
  (:class:`IdTokenKeys`), then checks the signature and claims. It is a step of its own, after
  the token request: a refresh answer's tokens are the caller's to keep even when its ID token
  cannot be verified (``client_app.logto_client``). ``PyJWKClient`` (blocking ``urllib``) is
  never asked for a key;
* RFC 7009 revocation, which the SDK lacks (sign-out does not revoke refresh tokens: §5).

Transport and errors: ``client_app.issuer_http``; the keys: ``client_app.id_token_keys``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any, Final

import httpx
import pydantic
from logto import OidcProviderMetadata, TokenResponse, UserInfoResponse
from logto.OidcCore import OidcCore

from .id_token_keys import IdTokenKeys
from .issuer_http import IssuerHttp, UnexpectedAnswer, basic_authorization, oauth_error

ORGANIZATION_URN_PREFIX: Final = "urn:logto:organization:"


def _ignore(_: Exception | None) -> None:
    """The default ``on_refresh``: nobody is told."""


class HttpxOidcCore(OidcCore):  # type: ignore[misc]  # the SDK ships no type information
    """The SDK's OIDC core with an httpx transport, async key fetching and two extras."""

    def __init__(
        self,
        metadata: OidcProviderMetadata,
        *,
        http: IssuerHttp,
        revocation_endpoint: str | None,
        keys: IdTokenKeys,
        on_refresh: Callable[[Exception | None], None] = _ignore,
    ) -> None:
        super().__init__(metadata)  # also builds a PyJWKClient, which nothing here calls
        self.http = http
        self.revocation_endpoint = revocation_endpoint
        self.keys = keys
        self.on_refresh = on_refresh
        """Told how each refresh grant ended: ``None`` (tokens received) or its error."""

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
        try:
            response = await self._token_request(clientId, clientSecret, form)
        except Exception as exc:
            self.on_refresh(exc)
            raise
        self.on_refresh(None)
        return response

    async def verify_id_token(self, id_token: str, client_id: str) -> dict[str, Any]:
        """The claims of a valid ID token, its key fetched first if needed (within one
        timeout); raises :class:`~client_app.issuer_http.InvalidIdToken`, or the key fetch's
        failure."""
        await self.keys.prepare(id_token)
        return self.keys.verify(id_token, audience=client_id, issuer=self.metadata.issuer)

    def verifyIdToken(self, idToken: str, clientId: str) -> None:  # noqa: N802, N803
        """The SDK's synchronous check, with keys already held (:meth:`verify_id_token`
        fetches them): no I/O here."""
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
            raise oauth_error(response)
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
            return TokenResponse(**body)
        except pydantic.ValidationError as exc:
            raise UnexpectedAnswer("the token answer does not fit its model") from exc


class LogtoProvider:
    """Discovery, fetched once per process and shared by every request's SDK client."""

    def __init__(
        self,
        endpoint: str,
        *,
        http_client: httpx.AsyncClient,
        timeout: float,
        clock: Callable[[], float] = time.monotonic,
        on_refresh: Callable[[Exception | None], None] = _ignore,
    ) -> None:
        self.issuer = f"{endpoint.rstrip('/')}/oidc"
        self._on_refresh = on_refresh
        self.discovery_url = f"{self.issuer}/.well-known/openid-configuration"
        self.discovery_fetches = 0
        self._http = IssuerHttp(http_client, timeout)
        self._clock = clock
        self._core: HttpxOidcCore | None = None
        self._discovery: asyncio.Task[HttpxOidcCore] | None = None

    async def core(self) -> HttpxOidcCore:
        """The shared core. The first caller starts discovery; callers arriving while it is
        in flight share it, so they all wait at most one timeout and all get its failure; the
        next caller after a failure starts a new one.

        (Not a lock around the fetch: each waiter would retry a failed discovery in turn, the
        k-th waiting k timeouts while holding its session lock, beyond the lock's lifetime.)"""
        if self._core is not None:
            return self._core
        task = self._discovery
        if task is None or task.done():
            task = asyncio.create_task(self._discover_shared())
            task.add_done_callback(_retrieve_failure)
            self._discovery = task
        # A caller cancelled (its client gone) leaves the discovery to the others.
        return await asyncio.shield(task)

    async def check_reachable(self) -> None:
        """Ask Logto for its discovery document now; raise :class:`IssuerUnreachable` (or the
        error it answered) if it cannot give it. A sign-in calls this before sending the
        browser to Logto: with discovery cached, nothing else would notice an outage, and the
        user would get the browser's own "cannot connect" page instead of ours."""
        if self._core is None:
            await self.core()  # the first discovery is the check
        else:
            await self._http.json("GET", self.discovery_url)

    async def _discover_shared(self) -> HttpxOidcCore:
        core = await self._discover()
        self._core = core
        return core

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
            on_refresh=self._on_refresh,
        )


def _retrieve_failure(task: asyncio.Task[HttpxOidcCore]) -> None:
    """Mark a failed discovery's error as seen: every waiter may have gone (cancelled), and
    asyncio would then log it as never retrieved."""
    if not task.cancelled():
        task.exception()
