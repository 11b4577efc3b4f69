"""Sessions shared by several replicas of the client app: Redis holds the documents and the
per-session locks (``SESSION_REDIS_URL``).

* :class:`RedisSessionStore` is Litestar's ``RedisStore`` whose failures (Redis down, or full:
  compose bounds its memory with ``noeviction``, so a full Redis refuses writes rather than
  evicting a session) become :class:`~client_app.errors.SessionsUnavailable` (a 503 page,
  never a traceback). Keys are
  ``client_app:sessions:<HMAC of the session id>``; Redis expires them itself, so there is no
  sweep.
* :class:`RedisLocks` is the distributed :class:`~client_app.sessions.LockProvider`: a script
  doing ``SET key token NX PX ttl`` to take the lock (and answering "taken" when the key already
  holds our token: redis-py re-sends a command whose reply was lost, and the re-sent ``SET``
  must not find our own lock "busy"), a compare-and-delete script to release it (a holder never
  deletes a lock that expired and was taken by someone else), a bounded wait with jittered
  exponential backoff that ends in :class:`SessionBusy`. The release runs to its end even when
  the request is cancelled meanwhile: a cut-off release would leave the lock for its whole
  TTL. The key is ``client_app:locks:<HMAC of the session id>``:
  :meth:`~client_app.sessions.SessionStore.open` hands the store key, never the id.
* :class:`RedisSessions` builds both from the settings, answers the health check and closes
  the connection pool.

Why a lock at all: a token refresh must see the refresh token the previous refresh stored; two
replicas refreshing one session at once present the same refresh token twice, and an issuer
that rotates refresh tokens revokes the whole grant (``logto-tokens.md`` §5).

The lock lives :func:`lock_ttl_seconds` (longer than the longest locked operation: each issuer
call is bounded by ``LOGTO_TIMEOUT_SECONDS``), so a crashed holder blocks its session for at most
that long; a waiter waits as long, so it never gives up on a live holder that is merely slow.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import secrets
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import ClassVar, Final

from litestar.stores.redis import RedisStore
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import RedisError

from .errors import ClientAppError, SessionsUnavailable
from .sessions import finish_despite_cancellation
from .settings import Settings

logger = logging.getLogger("client_app.sessions")

NAMESPACE: Final = "client_app"
SESSIONS_NAMESPACE: Final = f"{NAMESPACE}:sessions"
"""Litestar's ``RedisStore`` prefixes every key with ``<namespace>:``."""
LOCKS_PREFIX: Final = f"{NAMESPACE}:locks:"
REDIS_SOCKET_TIMEOUT_SECONDS: Final = 2.0
"""Bound on each Redis command (and on connecting): a hung Redis is an unavailable one."""
REDIS_RETRIES: Final = 1
"""A dropped connection is retried once (a Redis restart); a down Redis answers quickly."""
LOCKED_ISSUER_CALLS: Final = 4
"""Most issuer calls one locked operation makes: discovery, token, signing keys, userinfo."""
LOCK_TTL_MARGIN_SECONDS: Final = 10.0
"""Added to the issuer calls: the Redis reads and writes inside the lock, and scheduling."""
HEALTH_TIMEOUT_SECONDS: Final = 1.0
"""Bound on the whole health check (the ``PING`` and its retry): a hung Redis makes ``/health``
answer 503 within a second, not after two socket timeouts."""
CLIENT_NAME: Final = "client_app"
"""``CLIENT SETNAME``: an operator sees in ``CLIENT LIST`` which connections are the app's."""
FIRST_BACKOFF_SECONDS: Final = 0.005
MAX_BACKOFF_SECONDS: Final = 0.1

_ACQUIRE: Final = """
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
    return 1
end
if redis.call('GET', KEYS[1]) == ARGV[1] then
    redis.call('PEXPIRE', KEYS[1], ARGV[2])
    return 1
end
return 0
"""
"""Take the lock, or find it already ours: idempotent, so a retried call cannot lock us out."""
_RELEASE: Final = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
    return redis.call('DEL', KEYS[1])
end
return 0
"""
"""Delete the lock only if it still holds our token (it may have expired and been retaken)."""
_jitter: Final = random.Random()  # noqa: S311 - backoff jitter, not a secret


class SessionBusy(ClientAppError):
    """Another request of the same session held its lock for longer than we can wait."""

    status_code = 503
    title = "Still working on your last request"
    default_message = (
        "Another request from this browser is still being handled. Please try again in a moment."
    )
    action = "retry"
    retry_after_seconds: ClassVar[int] = 2


def lock_ttl_seconds(settings: Settings) -> float:
    """How long a session lock lives: longer than any locked operation can take."""
    return LOCKED_ISSUER_CALLS * settings.logto_timeout_seconds + LOCK_TTL_MARGIN_SECONDS


def redis_client(url: str) -> Redis:
    """A client with bounded commands and one quick retry (redis-py's default retries ten
    times with backoff: a down Redis would hold every page for seconds)."""
    return Redis.from_url(
        url,
        socket_timeout=REDIS_SOCKET_TIMEOUT_SECONDS,
        socket_connect_timeout=REDIS_SOCKET_TIMEOUT_SECONDS,
        retry=Retry(ExponentialBackoff(cap=0.2, base=0.05), REDIS_RETRIES),
        health_check_interval=30,
        client_name=CLIENT_NAME,
    )


class RedisSessionStore(RedisStore):
    """Litestar's ``RedisStore``; a Redis failure is :class:`SessionsUnavailable`."""

    async def get(self, key: str, renew_for: int | timedelta | None = None) -> bytes | None:
        """The value under ``key``, or ``None``."""
        try:
            return await super().get(key, renew_for)
        except RedisError as exc:
            raise SessionsUnavailable.logged(exc, "get") from exc

    async def set(
        self, key: str, value: str | bytes, expires_in: int | timedelta | None = None
    ) -> None:
        """Store ``value`` under ``key``, expiring after ``expires_in`` seconds."""
        try:
            await super().set(key, value, expires_in)
        except RedisError as exc:
            raise SessionsUnavailable.logged(exc, "set") from exc

    async def delete(self, key: str) -> None:
        """Forget ``key``."""
        try:
            await super().delete(key)
        except RedisError as exc:
            raise SessionsUnavailable.logged(exc, "delete") from exc


class RedisLocks:
    """Per-session mutual exclusion across processes, in Redis.

    ``ttl_seconds`` bounds how long a lock lives (a crashed holder's lock expires then);
    ``wait_seconds`` bounds how long :meth:`lock` waits before :class:`SessionBusy`.
    """

    def __init__(
        self,
        redis: Redis,
        *,
        ttl_seconds: float,
        wait_seconds: float,
        prefix: str = LOCKS_PREFIX,
    ) -> None:
        if ttl_seconds <= 0 or wait_seconds < 0:
            raise ValueError("a lock needs a positive lifetime and a non-negative wait")
        self._redis = redis
        self.ttl_ms = max(1, round(ttl_seconds * 1000))
        self.wait_seconds = wait_seconds
        self.prefix = prefix
        self._acquire = redis.register_script(_ACQUIRE)
        self._release = redis.register_script(_RELEASE)

    def key(self, key: str) -> str:
        """The Redis key of the lock of ``key`` (a session's store key)."""
        return f"{self.prefix}{key}"

    @contextlib.asynccontextmanager
    async def lock(self, key: str) -> AsyncIterator[None]:
        """Hold the lock of ``key`` for the ``async with`` block."""
        token = await self.acquire(key)
        try:
            yield
        finally:
            await finish_despite_cancellation(self._release_quietly(key, token))

    async def acquire(self, key: str, token: str | None = None) -> str:
        """Take the lock of ``key``, waiting at most ``wait_seconds``; return the holder's
        token (for :meth:`release`): ``token``, or a new random one. A lock that already holds
        ``token`` is ours: it is taken at once, its lifetime renewed. :class:`SessionBusy` if
        the wait ran out, :class:`SessionsUnavailable` if Redis cannot be reached."""
        token = token or secrets.token_urlsafe(18)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.wait_seconds
        backoff = FIRST_BACKOFF_SECONDS
        while True:
            try:
                taken = await self._acquire(keys=[self.key(key)], args=[token, self.ttl_ms])
            except RedisError as exc:
                raise SessionsUnavailable.logged(exc, "lock") from exc
            except asyncio.CancelledError:
                # The SET may have reached Redis: give back what may be ours, then stop.
                await finish_despite_cancellation(self._release_quietly(key, token, held=False))
                raise
            if taken:
                return token
            remaining = deadline - loop.time()
            if remaining <= 0:
                logger.warning("session lock wait ran out", extra={"event": "session_busy"})
                raise SessionBusy
            await asyncio.sleep(min(remaining, backoff * _jitter.uniform(0.5, 1.0)))
            backoff = min(backoff * 2, MAX_BACKOFF_SECONDS)

    async def release(self, key: str, token: str) -> bool:
        """Release the lock of ``key`` if ``token`` still holds it; whether it did."""
        released = await self._release(keys=[self.key(key)], args=[token])
        return bool(released)

    async def _release_quietly(self, key: str, token: str, *, held: bool = True) -> None:
        """Release, logging what went wrong; ``held=False`` when we may never have had the
        lock (a cancelled acquire): finding it not ours is then no news."""
        try:
            released = await self.release(key, token)
        except RedisError as exc:
            # It expires by itself; the work it guarded is done (or failed on its own).
            logger.warning(
                "session lock not released",
                extra={"event": "session_lock_release_failed", "error_type": type(exc).__name__},
            )
            return
        if held and not released:
            logger.warning(
                "session lock had expired before its release",
                extra={"event": "session_lock_expired"},
            )


class RedisSessions:
    """The shared session store and locks of ``SESSION_REDIS_URL``, on one connection pool."""

    def __init__(self, settings: Settings) -> None:
        if settings.session_redis_url is None:
            raise ValueError("SESSION_REDIS_URL is not set")
        self.redis = redis_client(settings.session_redis_url.reveal())
        self.store = RedisSessionStore(self.redis, namespace=SESSIONS_NAMESPACE)
        ttl = lock_ttl_seconds(settings)
        self.locks = RedisLocks(self.redis, ttl_seconds=ttl, wait_seconds=ttl)

    async def healthy(self) -> bool:
        """Whether Redis answers a ``PING`` within :data:`HEALTH_TIMEOUT_SECONDS`."""
        try:
            async with asyncio.timeout(HEALTH_TIMEOUT_SECONDS):
                return bool(await self.redis.ping())
        except (RedisError, TimeoutError) as exc:
            SessionsUnavailable.logged(exc, "ping")
            return False

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self.redis.aclose(close_connection_pool=True)
