"""A Logto issuer served by respx, for unit tests of the gateway (mocked at the network edge).

It speaks what the gateway sends through httpx: discovery, JWKS, the token endpoint
(authorization code, refresh with ``resource`` and/or ``organization_id``), userinfo and
revocation. It behaves like oidc-provider where the tests need it to: client_secret_basic is
required, codes are single use, and with ``rotate_refresh_tokens`` a refresh token presented
twice revokes the whole grant (``logto-tokens.md`` §5). Tokens are signed with a real ES384 key.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, parse_qsl, quote_plus, urlsplit

import httpx
import respx

from tests.support import SigningKey, jwks, make_token

ENDPOINT = "https://tenant.logto.test"
ISSUER = f"{ENDPOINT}/oidc"
CLIENT_ID = "client-app"
CLIENT_SECRET = "client-secret:with%odd chars"
SHOPPING = "https://shopping.your-app.com/api"
STORE = "https://store.your-app.com/api"
ORGANIZATIONS_RESOURCE = "urn:logto:resource:organizations"


@dataclass
class FakeUser:
    """A user and what Logto would grant them."""

    sub: str
    name: str
    scopes: dict[str, str] = field(default_factory=dict)
    """API resource -> granted scope string (absent: no permission, no ``scope`` claim)."""
    organizations: dict[str, str] = field(default_factory=dict)
    """Organization id -> its organization-token scope string."""


USERS = {
    "alice": FakeUser("user-alice", "Alice", {SHOPPING: "shopping:read"}, {"acme": "read:members"}),
    "bob": FakeUser(
        "user-bob",
        "Bob",
        {SHOPPING: "shopping:read shopping:write", STORE: "store:read store:write"},
        {"acme": "read:members invite:member remove:member"},
    ),
}


@dataclass
class Grant:
    """One sign-in's grant: its user and whether it was revoked."""

    user: FakeUser
    scopes: set[str]
    revoked: bool = False


def oauth_error(status: int, error: str, description: str = "") -> httpx.Response:
    """An oidc-provider-style error answer."""
    return httpx.Response(status, json={"error": error, "error_description": description})


class FakeLogto:
    """The issuer; ``requests`` records every form the token endpoint received."""

    def __init__(
        self,
        router: respx.MockRouter,
        *,
        key: SigningKey | None = None,
        rotate_refresh_tokens: bool = False,
        token_delay: float = 0.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.key = key or SigningKey.es384()
        self.rotate_refresh_tokens = rotate_refresh_tokens
        self.token_delay = token_delay
        self.clock = clock
        self.id_token_ttl = 3600
        self.access_token_ttl = 3600
        self.codes: dict[str, tuple[FakeUser, str, str, set[str]]] = {}
        self.refresh_tokens: dict[str, Grant] = {}
        self.consumed: set[str] = set()
        self.opaque: dict[str, FakeUser] = {}
        self.token_forms: list[dict[str, str]] = []
        self.token_headers: list[httpx.Headers] = []
        self.revoked_tokens: list[str] = []
        self.discovery = router.get(f"{ISSUER}/.well-known/openid-configuration").mock(
            return_value=httpx.Response(200, json=self.metadata())
        )
        self.jwks = router.get(f"{ISSUER}/jwks").mock(side_effect=self._jwks)
        self.token = router.post(f"{ISSUER}/token").mock(side_effect=self._token)
        self.userinfo = router.get(f"{ISSUER}/me").mock(side_effect=self._userinfo)
        self.revocation = router.post(f"{ISSUER}/token/revocation").mock(side_effect=self._revoke)

    @staticmethod
    def metadata() -> dict[str, Any]:
        """Logto's discovery document (the fields the SDK's model requires and a few more)."""
        return {
            "issuer": ISSUER,
            "authorization_endpoint": f"{ISSUER}/auth",
            "token_endpoint": f"{ISSUER}/token",
            "userinfo_endpoint": f"{ISSUER}/me",
            "jwks_uri": f"{ISSUER}/jwks",
            "end_session_endpoint": f"{ISSUER}/session/end",
            "revocation_endpoint": f"{ISSUER}/token/revocation",
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["ES384"],
        }

    # -- the browser side -------------------------------------------------------------------

    def authorize(self, sign_in_url: str, username: str = "alice") -> str:
        """What Logto's sign-in page would redirect to: the callback's query string."""
        params = dict(parse_qsl(urlsplit(sign_in_url).query))
        code = secrets.token_urlsafe(16)
        self.codes[code] = (
            USERS[username],
            params["code_challenge"],
            params["redirect_uri"],
            set(params["scope"].split()),
        )
        return f"code={code}&state={params['state']}"

    # -- tokens -----------------------------------------------------------------------------

    def id_token(self, user: FakeUser, **overrides: Any) -> str:
        """An ID token for ``user`` (``exp`` etc. overridable)."""
        now = int(self.clock())
        claims: dict[str, Any] = {
            "iss": ISSUER,
            "sub": user.sub,
            "aud": CLIENT_ID,
            "iat": now,
            "exp": now + self.id_token_ttl,
            "name": user.name,
            "organizations": sorted(user.organizations),
            "scope": None,
            "client_id": None,
            "jti": None,
            **overrides,
        }
        return make_token(self.key, header_overrides={"typ": "JWT"}, **claims)

    def _access_token(self, user: FakeUser, form: dict[str, str]) -> str:
        resource = form.get("resource")
        organization_id = form.get("organization_id")
        now = int(self.clock())
        claims: dict[str, Any] = {
            "iss": ISSUER,
            "sub": user.sub,
            "client_id": CLIENT_ID,
            "iat": now,
            "exp": now + self.access_token_ttl,
        }
        if resource is None and organization_id is None:
            token = secrets.token_urlsafe(24)  # opaque: only userinfo accepts it
            self.opaque[token] = user
            return token
        if resource is None:
            claims["aud"] = f"urn:logto:organization:{organization_id}"
            claims["scope"] = user.organizations.get(str(organization_id))
        else:
            claims["aud"] = resource
            claims["scope"] = user.scopes.get(resource)
            claims["organization_id"] = organization_id
        return make_token(self.key, **claims)

    async def _token(self, request: httpx.Request) -> httpx.Response:
        form = dict(parse_qsl(request.content.decode()))
        self.token_forms.append(form)
        self.token_headers.append(request.headers)
        if self.token_delay:
            await asyncio.sleep(self.token_delay)
        if request.headers.get("authorization") != _basic(CLIENT_ID, CLIENT_SECRET):
            return oauth_error(401, "invalid_client", "client authentication failed")
        if form.get("grant_type") == "authorization_code":
            return self._code_grant(form)
        if form.get("grant_type") == "refresh_token":
            return self._refresh_grant(form)
        return oauth_error(400, "unsupported_grant_type")

    def _code_grant(self, form: dict[str, str]) -> httpx.Response:
        entry = self.codes.pop(form.get("code", ""), None)
        if entry is None:
            return oauth_error(400, "invalid_grant", "grant request is invalid")
        user, challenge, redirect_uri, scopes = entry
        verifier = form.get("code_verifier", "")
        digest = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
        if digest.rstrip(b"=").decode() != challenge or form.get("redirect_uri") != redirect_uri:
            return oauth_error(400, "invalid_grant", "PKCE or redirect_uri mismatch")
        refresh_token = secrets.token_urlsafe(24)
        self.refresh_tokens[refresh_token] = Grant(user, scopes)
        return self._answer(user, form, refresh_token)

    def _refresh_grant(self, form: dict[str, str]) -> httpx.Response:
        presented = form.get("refresh_token", "")
        grant = self.refresh_tokens.get(presented)
        if grant is None or grant.revoked:
            return oauth_error(400, "invalid_grant", "grant request is invalid")
        if presented in self.consumed:  # reuse detection: the whole grant is revoked
            grant.revoked = True
            return oauth_error(400, "invalid_grant", "grant request is invalid")
        organization_id = form.get("organization_id")
        if organization_id is not None and organization_id not in grant.user.organizations:
            return oauth_error(403, "access_denied", "user is not a member of the organization")
        refresh_token = None
        if self.rotate_refresh_tokens:
            self.consumed.add(presented)
            refresh_token = secrets.token_urlsafe(24)
            self.refresh_tokens[refresh_token] = grant
        return self._answer(grant.user, form, refresh_token)

    def _answer(
        self, user: FakeUser, form: dict[str, str], refresh_token: str | None
    ) -> httpx.Response:
        body: dict[str, Any] = {
            "access_token": self._access_token(user, form),
            "token_type": "Bearer",
            "expires_in": self.access_token_ttl,
            "id_token": self.id_token(user),
            "scope": "openid offline_access profile",
        }
        if refresh_token is not None:
            body["refresh_token"] = refresh_token
        return httpx.Response(200, json=body)

    def _userinfo(self, request: httpx.Request) -> httpx.Response:
        token = request.headers.get("authorization", "").removeprefix("Bearer ")
        user = self.opaque.get(token)
        if user is None:
            return oauth_error(401, "invalid_token", "invalid token provided")
        return httpx.Response(200, json={"sub": user.sub, "name": user.name, "email": None})

    def _revoke(self, request: httpx.Request) -> httpx.Response:
        if request.headers.get("authorization") != _basic(CLIENT_ID, CLIENT_SECRET):
            return oauth_error(401, "invalid_client")
        token = parse_qs(request.content.decode())["token"][0]
        self.revoked_tokens.append(token)
        grant = self.refresh_tokens.get(token)
        if grant is not None:
            grant.revoked = True
        return httpx.Response(200)

    def _jwks(self, _: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=jwks(self.key))

    def refresh_grants(self, **match: str) -> list[dict[str, str]]:
        """The refresh-grant forms received whose fields equal ``match``."""
        return [
            form
            for form in self.token_forms
            if form.get("grant_type") == "refresh_token"
            and all(form.get(k) == v for k, v in match.items())
        ]


def _basic(client_id: str, secret: str) -> str:
    raw = f"{quote_plus(client_id)}:{quote_plus(secret)}"
    return "Basic " + base64.b64encode(raw.encode()).decode()
