"""The issuer's signing keys for ID-token verification, fetched without blocking the loop.

The SDK verifies ID tokens with PyJWT's ``PyJWKClient``, which fetches the JWKS with blocking
``urllib`` on the event loop and refetches an unknown key id only after a 30 s cooldown
(``logto-tokens.md`` §6.4). Here the key is fetched with httpx when the token response arrives
(:meth:`IdTokenKeys.prepare`), and the SDK's synchronous ``verifyIdToken`` only checks
signature and claims (:meth:`IdTokenKeys.verify`).
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable
from typing import Any, Final

import jwt
from logto import LogtoException

from .issuer_http import InvalidIdToken, IssuerHttp, UnexpectedAnswer

logger = logging.getLogger("client_app.id_token_keys")

ID_TOKEN_ALGORITHMS: Final = frozenset({"RS256", "PS256", "ES256", "ES384", "ES512"})
"""What Logto signs ID tokens with; ``none`` and HMAC are never accepted."""
ID_TOKEN_LEEWAY_SECONDS: Final = 30
KEYS_MAX_AGE_SECONDS: Final = 600.0
"""Cached keys older than this are refetched before use (a withdrawn key stops verifying)."""


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
