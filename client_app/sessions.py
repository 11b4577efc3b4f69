"""Server-side sessions: an opaque id in an HttpOnly cookie, everything else on the server.

The browser holds only a random session id (256 bits). The session's data (the SDK's ID,
refresh and access tokens) is a small JSON document in a Litestar
:class:`~litestar.stores.base.Store`: files by default
(:class:`~client_app.file_sessions.SessionFileStore`, survives a restart), Redis
(``SESSION_REDIS_URL``, :mod:`client_app.redis_sessions`) once several replicas must share
sessions. A session document exists only once a sign-in has completed: the attempt before it
travels in its own sealed cookie (:mod:`client_app.sign_in_attempts`), so an anonymous visitor
costs the store nothing.

* A store that cannot read or write raises :class:`~client_app.errors.SessionsUnavailable` (a
  503 page); a stored document that is not a JSON object of strings is no session, and removed.

* The store key is ``HMAC(SESSION_SECRET, session id)``: whoever reads the store (files on disk,
  a Redis dump) learns no cookie value that would let them take over a session.
* Every change goes through :meth:`SessionStore.open`: it takes the session's lock, reads the
  *current* document, hands it to the caller and writes it back if it changed. Two requests of
  one session therefore never work on stale copies, and token refreshes are serialized (a
  refresh token presented twice can revoke the whole grant, ``logto-tokens.md`` §5). The lock
  is in-process (:class:`SessionLocks`) with the file store; replicas sharing Redis use its
  distributed lock of the same shape (:class:`LockProvider`,
  :class:`client_app.redis_sessions.RedisLocks`).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import logging
import re
import secrets
from collections.abc import AsyncIterator, Awaitable
from contextlib import AbstractAsyncContextManager
from typing import Final, Protocol, TypeVar

import msgspec
from litestar.datastructures import Cookie
from litestar.stores.base import Store
from logto import Storage

from .settings import Secret, Settings

logger = logging.getLogger("client_app.sessions")

COOKIE_NAME: Final = "client_app_session"
SECURE_COOKIE_NAME: Final = f"__Host-{COOKIE_NAME}"
"""``__Host-`` (RFC 6265bis §4.1.3.2): only settable over https, by this host, for path ``/``,
so a sibling subdomain cannot plant a session cookie (session fixation)."""
_SESSION_ID: Final = re.compile(r"[A-Za-z0-9_-]{43}")  # secrets.token_urlsafe(32)
SIGNED_IN_KEYS: Final = frozenset({"idToken", "refreshToken"})
"""A document holding one of these is a signed-in session and lives ``max_age_seconds``."""
PENDING_MAX_AGE_SECONDS: Final = 3600
"""Any other document lives an hour. (Sign-in attempts are no longer stored at all; this
bounds whatever else might be, defensively.)"""

_T = TypeVar("_T")


async def finish_despite_cancellation(work: Awaitable[_T]) -> _T:
    """Await ``work`` to its end even if the caller is cancelled meanwhile (once or more),
    then re-raise the cancellation.

    For the short, bounded writes that must not be cut off halfway: saving a rotated refresh
    token, releasing a lock. A cancelled redis-py command drops its connection, and the command
    with it; a bare ``asyncio.shield`` keeps the write going but returns at the first
    cancellation, leaving it running unobserved (its failure never retrieved, the caller's
    next step racing it). The work runs in its own task, awaited to its end here.
    """
    task = asyncio.ensure_future(work)
    cancelled: asyncio.CancelledError | None = None
    while not task.done():
        try:
            await asyncio.wait((task,))  # unlike ``await task``, never cancels the task
        except asyncio.CancelledError as exc:
            cancelled = exc
    if cancelled is not None:
        if not task.cancelled() and (error := task.exception()) is not None:
            logger.warning(
                "a write failed after its request was cancelled",
                extra={"event": "write_failed_after_cancel", "error_type": type(error).__name__},
            )
        raise cancelled
    return task.result()


def new_session_id() -> str:
    """A fresh, unguessable session id."""
    return secrets.token_urlsafe(32)


def is_session_id(value: str | None) -> bool:
    """Whether ``value`` has the shape of an id this app hands out."""
    return value is not None and _SESSION_ID.fullmatch(value) is not None


class SessionData(Storage):  # type: ignore[misc]  # the SDK ships no type information
    """One session's document, and the SDK's :class:`~logto.Storage` over it.

    Values are strings, as the SDK stores them. ``changed`` tells the store to write it back.
    """

    def __init__(self, values: dict[str, str] | None = None) -> None:
        self._values = dict(values or {})
        self.changed = False

    def get(self, key: str) -> str | None:
        """The value under ``key``, or ``None``."""
        return self._values.get(key)

    def set(self, key: str, value: str | None) -> None:
        """Store ``value`` under ``key`` (``None`` deletes it)."""
        if value is None:
            self.delete(key)
        elif self._values.get(key) != value:
            self._values[key] = value
            self.changed = True

    def delete(self, key: str) -> None:
        """Remove ``key`` if present."""
        if self._values.pop(key, None) is not None:
            self.changed = True

    def clear(self) -> None:
        """Remove every key: the SDK's and this app's."""
        if self._values:
            self._values.clear()
            self.changed = True

    def keys(self) -> frozenset[str]:
        """The keys present (tests and diagnostics; never the values)."""
        return frozenset(self._values)

    def snapshot(self) -> dict[str, str]:
        """A copy of the document."""
        return dict(self._values)


class LockProvider(Protocol):
    """Mutual exclusion per session id."""

    def lock(self, key: str) -> AbstractAsyncContextManager[None]:
        """Hold the lock of ``key`` for the duration of the ``async with`` block."""
        ...


class SessionLocks:
    """One :class:`asyncio.Lock` per session, dropped when nobody holds or waits for it."""

    def __init__(self) -> None:
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}

    @contextlib.asynccontextmanager
    async def lock(self, key: str) -> AsyncIterator[None]:
        """Hold the lock of ``key``."""
        lock, users = self._locks.get(key, (asyncio.Lock(), 0))
        self._locks[key] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[key]
            if users == 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, users - 1)

    def __len__(self) -> int:
        return len(self._locks)


class SessionStore:
    """Session documents in a Litestar store, keyed by an HMAC of the session id."""

    def __init__(
        self,
        store: Store,
        *,
        secret: Secret,
        max_age_seconds: int,
        locks: LockProvider | None = None,
        pending_max_age_seconds: int = PENDING_MAX_AGE_SECONDS,
    ) -> None:
        self.store = store
        self.max_age_seconds = max_age_seconds
        self.pending_max_age_seconds = min(pending_max_age_seconds, max_age_seconds)
        self._key_secret = hmac.digest(
            secret.reveal().encode(), b"client_app session store", "sha256"
        )
        self._locks: LockProvider = locks or SessionLocks()

    def storage_key(self, session_id: str) -> str:
        """The store key of a session (never the session id itself)."""
        return hmac.new(self._key_secret, session_id.encode(), hashlib.sha256).hexdigest()

    @contextlib.asynccontextmanager
    async def open(self, session_id: str) -> AsyncIterator[SessionData]:
        """Lock the session, load its current document, yield it, save it if it changed.

        The document is saved even when the block raises, so that what the SDK stored before
        the failure (a rotated refresh token above all) is not lost; a cancellation (a client
        gone, a timeout) during the save waits for it to finish: a rotated refresh token lost
        halfway would make the next refresh present the old one, and the issuer revoke the
        grant.
        """
        async with self._locks.lock(self.storage_key(session_id)):
            data = await self.load(session_id)
            try:
                yield data
            finally:
                if data.changed:
                    await finish_despite_cancellation(self.save(session_id, data))

    async def load(self, session_id: str) -> SessionData:
        """The session's document as stored now: empty if unknown or expired, and empty if
        unreadable (not a JSON object of strings), which is then removed from the store.
        A store that cannot be read raises :class:`~client_app.errors.SessionsUnavailable`."""
        key = self.storage_key(session_id)
        raw = await self.store.get(key)
        if raw is None:
            return SessionData()
        try:
            return SessionData(msgspec.json.decode(raw, type=dict[str, str]))
        except (msgspec.DecodeError, UnicodeDecodeError):
            logger.warning("unreadable session document removed", extra={"event": "bad_session"})
            await self.store.delete(key)
            return SessionData()

    async def save(self, session_id: str, data: SessionData) -> None:
        """Write the document (an empty one is deleted)."""
        snapshot = data.snapshot()
        if not snapshot:
            await self.delete(session_id)
            return
        signed_in = not snapshot.keys().isdisjoint(SIGNED_IN_KEYS)
        expires_in = self.max_age_seconds if signed_in else self.pending_max_age_seconds
        encoded = msgspec.json.encode(snapshot)
        await self.store.set(self.storage_key(session_id), encoded, expires_in=expires_in)
        data.changed = False

    async def delete(self, session_id: str) -> None:
        """Forget the session."""
        await self.store.delete(self.storage_key(session_id))


def cookie_name(settings: Settings) -> str:
    """The session cookie's name: ``__Host-`` prefixed when served over https."""
    return SECURE_COOKIE_NAME if settings.secure_cookies else COOKIE_NAME


def browser_cookie(settings: Settings, key: str, value: str, max_age: int) -> Cookie:
    """A cookie of this app: HttpOnly, SameSite=Lax, path ``/``, Secure over https; an empty
    ``value`` with ``max_age`` 0 makes the browser drop it."""
    return Cookie(
        key=key,
        value=value,
        max_age=max_age,
        expires=0 if max_age == 0 else None,
        path="/",
        httponly=True,
        samesite="lax",
        secure=settings.secure_cookies,
    )


def session_cookie(settings: Settings, session_id: str) -> Cookie:
    """The cookie carrying ``session_id``."""
    return browser_cookie(
        settings, cookie_name(settings), session_id, settings.session_max_age_seconds
    )


def expired_session_cookie(settings: Settings) -> Cookie:
    """A cookie that makes the browser drop its session id."""
    return browser_cookie(settings, cookie_name(settings), "", 0)


def session_id_from_cookies(cookies: dict[str, str], settings: Settings) -> str | None:
    """The well-formed session id the browser sent, if any."""
    value = cookies.get(cookie_name(settings))
    return value if is_session_id(value) else None
