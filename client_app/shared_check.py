"""A check many requests need, run once for all of them and trusted for a few seconds.

The sign-in asks Logto for its discovery document before sending the browser there (an outage
becomes our 503 page, not the browser's "cannot connect"). Once per ``GET /sign-in`` would be
one request to Logto per anonymous request, unbounded; :class:`SharedCheck` runs the check for
every caller waiting at that moment (single flight: one timeout for all, not one each) and
trusts a success for ``ttl_seconds``. A failure is not cached: the next caller checks again.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable


class SharedCheck:
    """``await check()`` for everyone, at most once per ``ttl_seconds`` while it succeeds."""

    def __init__(
        self,
        check: Callable[[], Awaitable[None]],
        *,
        ttl_seconds: float,
        clock: Callable[[], float],
    ) -> None:
        self._check = check
        self._ttl = ttl_seconds
        self._clock = clock
        self._passed_at = -math.inf
        self._running: asyncio.Task[None] | None = None

    async def __call__(self) -> None:
        """Return if the check passed less than ``ttl_seconds`` ago or passes now; else raise
        what it raised. A caller cancelled while waiting leaves the check to the others."""
        if 0 <= self._clock() - self._passed_at < self._ttl:  # a clock set back: check again
            return
        task = self._running
        if task is None or task.done():
            task = asyncio.ensure_future(self._run())
            task.add_done_callback(_retrieve_failure)
            self._running = task
        await asyncio.shield(task)

    async def _run(self) -> None:
        await self._check()
        self._passed_at = self._clock()


def _retrieve_failure(task: asyncio.Task[None]) -> None:
    """Mark a failure as seen even if every waiter went away (no "never retrieved" log)."""
    if not task.cancelled():
        task.exception()
