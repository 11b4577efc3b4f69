"""The issuer's signing keys for ID-token verification, fetched without blocking the loop.

The SDK verifies ID tokens with PyJWT's ``PyJWKClient``, which fetches the JWKS with blocking
``urllib`` on the event loop and refetches an unknown key id only after a 30 s cooldown
(``logto-tokens.md`` §6.4). Here the key is fetched with httpx before an ID token is checked
(:meth:`IdTokenKeys.prepare`), and the check itself (:meth:`IdTokenKeys.verify`) does no I/O.

One fetch at a time, shared: callers that need the keys while a fetch is in flight wait for
that fetch instead of queueing to start their own (behind a lock, each waiter would retry a
failed fetch in turn, the k-th waiting k timeouts). And one deadline per caller:
:meth:`~IdTokenKeys.prepare` gives up after ``LOGTO_TIMEOUT_SECONDS`` in all, however many
fetches it waits for, so a locked session operation spends at most one timeout on keys
(``client_app.redis_sessions.lock_ttl_seconds`` counts on it).
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

from .issuer_http import InvalidIdToken, IssuerHttp, IssuerUnreachable, UnexpectedAnswer

logger = logging.getLogger("client_app.id_token_keys")

ID_TOKEN_ALGORITHMS: Final = frozenset({"RS256", "PS256", "ES256", "ES384", "ES512"})
"""What Logto signs ID tokens with; ``none`` and HMAC are never accepted."""
ID_TOKEN_LEEWAY_SECONDS: Final = 30
KEYS_MAX_AGE_SECONDS: Final = 600.0
"""Cached keys older than this are refetched before use (a withdrawn key stops verifying)."""


class IdTokenKeys:
    """The issuer's signing keys, fetched asynchronously, for ID-token verification.

    ``prepare`` (async) makes sure the key a token names is held: a key id not seen yet (the
    issuer rotated its keys) or keys older than ``max_age`` trigger a fetch, shared by
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
        """When the fetch whose answer is held *started* (an answer is as old as its request)."""
        self._fetch: asyncio.Task[float] | None = None
        self._fetch_started_at = -math.inf

    async def prepare(self, token: str) -> None:
        """Hold the key ``token`` is signed with, fetching the key set if needed.

        Joins the fetch in flight, if any; if that fetch was asked for before this call and
        its answer lacks the key, fetches once more. All of it within one timeout
        (:class:`IssuerUnreachable` after that); a failed refetch of keys that still hold the
        key is only logged."""
        kid = _key_id(token)
        if kid in self._keys and self._clock() - self._fetched_at < self._max_age:
            return
        asked_at = self._clock()
        try:
            try:
                async with asyncio.timeout(self._http.timeout):  # one deadline per caller
                    started_at = await self._shared_fetch(not_before=-math.inf)
                    if kid not in self._keys and started_at < asked_at:
                        await self._shared_fetch(not_before=asked_at)
            except TimeoutError as exc:
                raise IssuerUnreachable("timeout") from exc
        except LogtoException as exc:
            if kid not in self._keys:
                raise
            logger.warning(
                "jwks refetch failed; using the cached key",
                extra={"event": "jwks", "error_type": type(exc).__name__},
            )

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

    def _shared_fetch(self, *, not_before: float) -> asyncio.Future[float]:
        """The fetch in flight if it started at ``not_before`` or later, else a new one; its
        start time. Shielded: a caller giving up (its deadline, its client gone) leaves the
        fetch to the others, and the fetch is bounded by the timeout itself."""
        task = self._fetch
        if task is None or task.done() or self._fetch_started_at < not_before:
            self._fetch_started_at = self._clock()
            task = asyncio.create_task(self._fetch_keys(self._fetch_started_at))
            task.add_done_callback(_retrieve_failure)
            self._fetch = task
        return asyncio.shield(task)

    async def _fetch_keys(self, started_at: float) -> float:
        self.fetches += 1
        body = await self._http.json("GET", self.jwks_uri)
        try:
            key_set = jwt.PyJWKSet.from_dict(body)
        except jwt.PyJWTError as exc:
            raise UnexpectedAnswer("the JWKS holds no usable key") from exc
        if started_at >= self._fetched_at:  # never replaced by an answer asked for earlier
            self._keys = {
                key.key_id: key
                for key in key_set.keys
                if key.key_id and key.public_key_use in (None, "sig")
            }
            self._fetched_at = started_at
        return started_at


def _retrieve_failure(task: asyncio.Task[float]) -> None:
    """Mark a failed fetch's error as seen: every waiter may have given up meanwhile, and
    asyncio would then log it as never retrieved."""
    if not task.cancelled():
        task.exception()


def _key_id(token: str) -> str:
    try:
        kid = jwt.get_unverified_header(token).get("kid")
    except jwt.DecodeError as exc:
        raise InvalidIdToken("the ID token is malformed") from exc
    if not isinstance(kid, str) or not kid:
        raise InvalidIdToken("the ID token names no key")
    return kid
