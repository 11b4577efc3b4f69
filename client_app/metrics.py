"""The client app's own metrics: sign-ins, refreshes, session-store errors.

:class:`ClientMetrics` counts events (rare next to requests: a plain attribute increment each)
under labels drawn from fixed sets: a sign-in failure is named by its
:class:`~client_app.errors.SignInFailed` reason or its error class, a refresh by its outcome,
a session-store error by the operation that failed. :class:`MeasuredStore` and
:class:`MeasuredLocks` wrap the session store and its locks to count their failures
(:class:`~client_app.errors.SessionsUnavailable`) without touching the stores themselves.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from typing import Final, get_args

from litestar.stores.base import Store

from service_kit.metrics import Registry

from .errors import (
    AccessDenied,
    ClientAppError,
    IssuerProblem,
    IssuerUnavailable,
    SessionEnded,
    SessionsUnavailable,
    SignInFailed,
    SignInFailure,
)
from .issuer_http import IssuerUnreachable, OAuthError
from .sessions import LockProvider

_ERROR_REASONS: Final[tuple[tuple[type[ClientAppError], str], ...]] = (
    (IssuerUnavailable, "issuer_unavailable"),
    (IssuerProblem, "issuer_problem"),
    (SessionsUnavailable, "sessions_unavailable"),
    (AccessDenied, "access_denied"),
    (SessionEnded, "code_rejected"),
)
SIGN_IN_FAILURES: Final = frozenset(
    {*get_args(SignInFailure), *(reason for _, reason in _ERROR_REASONS), "other"}
)
"""Every ``reason`` of ``client_app_sign_ins_total{outcome="failed"}``."""
REFRESH_OUTCOMES: Final = ("ok", "invalid_grant", "unavailable", "refused", "error")
"""ok; invalid_grant (the grant is gone: the session ends); unavailable (unreachable, timed
out or a 5xx); refused (another OAuth error); error (an answer that is not a token answer)."""
STORE_OPERATIONS: Final = ("get", "set", "delete", "lock")


class ClientMetrics:
    """The client app's event counters, in ``registry`` (a private one by default)."""

    def __init__(self, registry: Registry | None = None) -> None:
        registry = registry or Registry()
        sign_ins = registry.counter(
            "client_app_sign_ins_total",
            "Sign-ins by outcome: started (sent to Logto), completed (a session stored), "
            "failed (with the reason; a start that could not reach Logto fails too).",
            ("outcome", "reason"),
        )
        self._started = sign_ins.labels("started", "none")
        self._completed = sign_ins.labels("completed", "none")
        self._failed = {reason: sign_ins.labels("failed", reason) for reason in SIGN_IN_FAILURES}
        refreshes = registry.counter(
            "client_app_token_refreshes_total",
            "Refresh-token grants sent to Logto, by outcome.",
            ("outcome",),
        )
        self._refreshes = {outcome: refreshes.labels(outcome) for outcome in REFRESH_OUTCOMES}
        errors = registry.counter(
            "client_app_session_store_errors_total",
            "Session-store operations that failed (Redis or the session directory "
            "unavailable), by operation.",
            ("operation",),
        )
        self._store_errors = {op: errors.labels(op) for op in STORE_OPERATIONS}

    def sign_in_started(self) -> None:
        """A browser was sent to Logto."""
        self._started.inc()

    def sign_in_completed(self) -> None:
        """A sign-in stored its session."""
        self._completed.inc()

    def sign_in_failed(self, error: ClientAppError) -> None:
        """A sign-in could not start or complete, for ``error``."""
        self._failed[sign_in_failure(error)].inc()

    def refresh(self, outcome: str) -> None:
        """A refresh grant ended with ``outcome`` (one of :data:`REFRESH_OUTCOMES`)."""
        self._refreshes[outcome].inc()

    def session_store_error(self, operation: str) -> None:
        """A session-store ``operation`` (one of :data:`STORE_OPERATIONS`) failed."""
        self._store_errors[operation].inc()


def sign_in_failure(error: ClientAppError) -> str:
    """The bounded ``reason`` label of a sign-in failure."""
    if isinstance(error, SignInFailed):
        return error.reason
    for kind, reason in _ERROR_REASONS:
        if isinstance(error, kind):
            return reason
    return "other"


def refresh_outcome(error: Exception | None) -> str:
    """The outcome of a refresh grant that raised ``error`` (``None``: it succeeded)."""
    if error is None:
        return "ok"
    if isinstance(error, IssuerUnreachable):
        return "unavailable"
    if isinstance(error, OAuthError):
        if error.error == "invalid_grant":
            return "invalid_grant"
        server_error = 500
        if error.status >= server_error or error.error == "temporarily_unavailable":
            return "unavailable"
        return "refused"
    return "error"


class MeasuredStore(Store):
    """A session store whose :class:`SessionsUnavailable` failures are counted."""

    def __init__(self, store: Store, metrics: ClientMetrics) -> None:
        self.store = store
        self.metrics = metrics

    async def set(
        self, key: str, value: str | bytes, expires_in: int | timedelta | None = None
    ) -> None:
        """Write ``value``."""
        with self._counted("set"):
            await self.store.set(key, value, expires_in=expires_in)

    async def get(self, key: str, renew_for: int | timedelta | None = None) -> bytes | None:
        """Read a value."""
        with self._counted("get"):
            return await self.store.get(key, renew_for=renew_for)

    async def delete(self, key: str) -> None:
        """Delete a value."""
        with self._counted("delete"):
            await self.store.delete(key)

    async def delete_all(self) -> None:
        """Delete everything."""
        with self._counted("delete"):
            await self.store.delete_all()

    async def delete_expired(self) -> None:
        """Sweep expired entries, if the wrapped store can."""
        sweep = getattr(self.store, "delete_expired", None)
        if sweep is not None:
            with self._counted("delete"):
                await sweep()

    async def exists(self, key: str) -> bool:
        """Whether ``key`` is stored."""
        with self._counted("get"):
            return await self.store.exists(key)

    async def expires_in(self, key: str) -> int | None:
        """Seconds until ``key`` expires."""
        with self._counted("get"):
            return await self.store.expires_in(key)

    @contextlib.contextmanager
    def _counted(self, operation: str) -> Iterator[None]:
        try:
            yield
        except SessionsUnavailable:
            self.metrics.session_store_error(operation)
            raise


class MeasuredLocks:
    """Session locks whose :class:`SessionsUnavailable` failures are counted."""

    def __init__(self, locks: LockProvider, metrics: ClientMetrics) -> None:
        self.locks = locks
        self.metrics = metrics

    @contextlib.asynccontextmanager
    async def lock(self, key: str) -> AsyncIterator[None]:
        """Hold the lock of ``key``; a store failure taking it is counted."""
        held = self.locks.lock(key)
        try:
            await held.__aenter__()
        except SessionsUnavailable:  # only taking the lock: the block's failures are its own
            self.metrics.session_store_error("lock")
            raise
        async with contextlib.AsyncExitStack() as stack:
            stack.push_async_exit(held)
            yield
