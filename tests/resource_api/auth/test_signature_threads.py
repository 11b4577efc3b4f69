"""Signatures are checked on the verifier's signature thread, not on the event loop: a full
verification (about 300 µs for ES384) neither holds up the requests behind it nor is limited
to the event loop's core (cryptography releases the GIL while it verifies). A new token
presented by several requests at once is checked once."""

from __future__ import annotations

import asyncio
import gc
import logging
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from litestar_logto import (
    InvalidToken,
    KeySetPolicy,
    LogtoAuth,
    RemoteKeySet,
    TokenVerifier,
    VerifierPolicy,
)
from litestar_logto.keys import LOGTO_ALGORITHMS, VerificationKey
from litestar_logto.signature_threads import SIGNATURE_THREAD, SignatureThreads

from bench.asgi_breakdown import asgi_status
from tests.resource_api.auth.conftest import ROUTES
from tests.support import ENDPOINT, SHOPPING, FakeClock, FakeIssuer

_WAIT = 10.0  # seconds; only reached when the behaviour under test is broken


@dataclass
class Checks:
    """Every signature check: the thread it ran on; ``gate`` holds checks until it is set."""

    threads: list[str] = field(default_factory=list)
    thread_objects: list[threading.Thread] = field(default_factory=list)
    gate: threading.Event = field(default_factory=threading.Event)
    started: threading.Event = field(default_factory=threading.Event)

    @property
    def calls(self) -> int:
        return len(self.threads)


@pytest.fixture
def checks(monkeypatch: pytest.MonkeyPatch) -> Iterator[Checks]:
    """Record the thread of each ``VerificationKey.verify`` call; open gate by default."""
    recorded = Checks()
    recorded.gate.set()
    original = VerificationKey.verify

    def recording(
        self: VerificationKey, algorithm: str, signing_input: bytes, signature: bytes
    ) -> bool:
        recorded.threads.append(threading.current_thread().name)
        recorded.thread_objects.append(threading.current_thread())
        recorded.started.set()
        if not recorded.gate.wait(_WAIT):
            msg = "the gate was never opened"
            raise AssertionError(msg)
        return original(self, algorithm, signing_input, signature)

    monkeypatch.setattr(VerificationKey, "verify", recording)
    yield recorded
    recorded.gate.set()  # never leave a signature thread waiting


def _verifier(
    key_set: RemoteKeySet, clock: FakeClock, threads: int = 1, *, caches: bool = True
) -> TokenVerifier:
    sizes = {} if caches else {"cache_size": 0, "refusal_cache_size": 0}
    return TokenVerifier(
        key_set,
        algorithms=LOGTO_ALGORITHMS,
        policy=VerifierPolicy(signature_threads=threads, **sizes),
        clock=clock,
    )


async def test_signatures_are_checked_on_the_signature_thread(
    issuer: FakeIssuer, key_set: RemoteKeySet, clock: FakeClock, checks: Checks
) -> None:
    """By default the check runs on a ``litestar_logto-signature`` thread; with
    ``signature_threads=0`` on the caller's (the event loop's) thread."""
    threaded, inline = _verifier(key_set, clock), _verifier(key_set, clock, threads=0)
    try:
        assert (await threaded.verify(issuer.sign(), audience=SHOPPING)).subject == "user-alice"
        await inline.verify(issuer.sign(), audience=SHOPPING)
    finally:
        threaded.close()
    loop_thread = threading.current_thread().name
    assert checks.threads[0].startswith(SIGNATURE_THREAD)
    assert checks.threads[1] == loop_thread


async def test_the_event_loop_serves_other_tokens_while_a_signature_is_checked(
    issuer: FakeIssuer, key_set: RemoteKeySet, clock: FakeClock, checks: Checks
) -> None:
    """A cached token is answered while another token's check is still running."""
    verifier = _verifier(key_set, clock)
    cached = issuer.sign(sub="cached")
    try:
        await verifier.verify(cached, audience=SHOPPING)
        checks.gate.clear()
        slow = asyncio.create_task(verifier.verify(issuer.sign(sub="new"), audience=SHOPPING))
        assert await asyncio.to_thread(checks.started.wait, _WAIT)
        answered = await asyncio.wait_for(verifier.verify(cached, audience=SHOPPING), _WAIT)
        assert (answered.subject, slow.done()) == ("cached", False)
        checks.gate.set()
        assert (await asyncio.wait_for(slow, _WAIT)).subject == "new"
    finally:
        verifier.close()


@pytest.mark.parametrize(
    "case",
    [(False, True), (True, True), (False, False), (True, False)],
    ids=["valid", "forged", "valid-no-caches", "forged-no-caches"],
)
async def test_a_new_token_presented_at_once_by_many_requests_is_checked_once(
    issuer: FakeIssuer,
    key_set: RemoteKeySet,
    clock: FakeClock,
    checks: Checks,
    case: tuple[bool, bool],
) -> None:
    """Twenty concurrent presentations of one new token make one signature check, with the
    caches on or off (the waiters get the outcome, not a cache entry); a forged one is
    refused to each with its own exception (a shared instance would grow its traceback with
    every raise)."""
    forged, caches = case
    verifier = _verifier(key_set, clock, caches=caches)
    token = issuer.sign()
    if forged:
        other = issuer.sign(sub="someone-else")
        token = token.rpartition(".")[0] + "." + other.rpartition(".")[2]
    checks.gate.clear()
    try:
        calls = [verifier.verify(token, audience=SHOPPING) for _ in range(20)]
        answers = asyncio.gather(*calls, return_exceptions=True)
        assert await asyncio.to_thread(checks.started.wait, _WAIT)
        assert verifier.stats.cache_misses == 20  # all twenty arrived while the check ran
        checks.gate.set()
        results = await asyncio.wait_for(answers, _WAIT)
    finally:
        verifier.close()
    assert checks.calls == 1
    stats = verifier.stats
    if forged:
        assert all(isinstance(r, InvalidToken) and r.reason == "bad_signature" for r in results)
        assert len({id(r) for r in results}) == 20
        # One refusal; the other nineteen are answered from the refusal cache as replays.
        assert sorted(r.replayed for r in results if isinstance(r, InvalidToken)) == [
            False,
            *[True] * 19,
        ]
        assert (stats.cache_misses, stats.refusal_hits, stats.cache_hits) == (20, 19, 0)
    else:
        assert {r.subject for r in results if not isinstance(r, BaseException)} == {"user-alice"}
        assert len(results) == 20
        assert (stats.cache_misses, stats.cache_hits) == (20, 19)


async def test_a_caller_that_goes_away_does_not_leave_the_others_without_an_answer(
    issuer: FakeIssuer, key_set: RemoteKeySet, clock: FakeClock, checks: Checks
) -> None:
    """Cancelling the request whose verification another request waits for (its client
    disconnected) leaves the other to verify the token itself: it gets its answer."""
    verifier = _verifier(key_set, clock)
    token = issuer.sign()
    checks.gate.clear()
    try:
        first = asyncio.create_task(verifier.verify(token, audience=SHOPPING))
        assert await asyncio.to_thread(checks.started.wait, _WAIT)
        second = asyncio.create_task(verifier.verify(token, audience=SHOPPING))
        await asyncio.sleep(0)  # the second waits for the first's verification
        first.cancel()
        with pytest.raises(asyncio.CancelledError):
            await first
        checks.gate.set()
        assert (await asyncio.wait_for(second, _WAIT)).subject == "user-alice"
    finally:
        verifier.close()
    # The first check had started (a running check cannot be stopped); the second is the
    # waiter's own.
    assert checks.calls == 2


async def test_a_check_not_started_is_dropped_when_its_caller_goes_away(
    issuer: FakeIssuer, key_set: RemoteKeySet, clock: FakeClock, checks: Checks
) -> None:
    """A flood of new tokens whose clients disconnect leaves no work behind: a check still
    queued for the signature thread is dropped with its caller."""
    verifier = _verifier(key_set, clock)
    checks.gate.clear()
    try:
        busy = asyncio.create_task(verifier.verify(issuer.sign(sub="busy"), audience=SHOPPING))
        assert await asyncio.to_thread(checks.started.wait, _WAIT)  # the one thread is taken
        abandoned = [
            asyncio.create_task(verifier.verify(issuer.sign(sub=f"gone-{n}"), audience=SHOPPING))
            for n in range(10)
        ]
        await asyncio.sleep(0)
        await asyncio.sleep(0)  # each is queued for the thread
        threads = verifier._executor
        assert threads is not None
        assert threads._checks.qsize() == 10
        for task in abandoned:
            task.cancel()
        await asyncio.gather(*abandoned, return_exceptions=True)
        checks.gate.set()
        assert (await asyncio.wait_for(busy, _WAIT)).subject == "busy"
        # Another token checked afterwards runs after the dropped ones would have.
        await verifier.verify(issuer.sign(sub="after"), audience=SHOPPING)
    finally:
        verifier.close()
    assert checks.calls == 2  # "busy" and "after"; none of the ten


async def test_close_ends_the_signature_thread_and_a_later_check_starts_another(
    issuer: FakeIssuer, key_set: RemoteKeySet, clock: FakeClock, checks: Checks
) -> None:
    """``close()`` (the app's lifespan shutdown) lets the thread end; the verifier still works
    afterwards, on a new thread."""
    verifier = _verifier(key_set, clock)
    await verifier.verify(issuer.sign(sub="a"), audience=SHOPPING)
    verifier.close()
    assert await asyncio.to_thread(_alive_after_waiting, checks.thread_objects) == []
    await verifier.verify(issuer.sign(sub="b"), audience=SHOPPING)
    verifier.close()
    assert [name.startswith(SIGNATURE_THREAD) for name in checks.threads] == [True, True]


def _alive_after_waiting(threads: list[threading.Thread]) -> list[str]:
    """Those of ``threads`` still alive after waiting (boundedly) for each to end."""
    for thread in threads:
        thread.join(_WAIT)
    return [thread.name for thread in threads if thread.is_alive()]


async def test_the_app_stops_its_signature_thread_when_it_stops(
    issuer: FakeIssuer, logto_auth: LogtoAuth, checks: Checks
) -> None:
    """A protected request checks its token on the signature thread; the app's lifespan
    shutdown ends that thread."""
    app = Litestar(route_handlers=ROUTES, plugins=[logto_auth])
    async with AsyncTestClient(app) as client:
        answer = await client.get(
            "/shopping/orders", headers={"Authorization": f"Bearer {issuer.sign()}"}
        )
        assert answer.status_code == 200
        assert checks.thread_objects[0].is_alive()
    assert await asyncio.to_thread(_alive_after_waiting, checks.thread_objects) == []
    assert checks.threads[0].startswith(SIGNATURE_THREAD)


async def test_a_flood_of_one_forged_token_is_refused_once_and_replayed_after(
    issuer: FakeIssuer, logto_auth: LogtoAuth, checks: Checks, caplog: pytest.LogCaptureFixture
) -> None:
    """Twenty parallel requests with one forged token: one signature check and one refusal
    logged at INFO; the nineteen others are replays of it (DEBUG), as they would be had they
    come one after the other. (Called on the ASGI interface directly: the test client sends
    one request at a time.)"""
    valid = issuer.sign(scope="shopping:read")
    forged = valid.rpartition(".")[0] + "." + issuer.sign(sub="x").rpartition(".")[2]
    app = Litestar(route_handlers=ROUTES, plugins=[logto_auth])
    caplog.set_level(logging.DEBUG, logger="litestar_logto")
    checks.gate.clear()
    ours = logging.getLogger("litestar_logto")
    async with app.lifespan():
        # The app's start replaced the root logger's handlers, caplog's among them.
        ours.addHandler(caplog.handler)
        try:
            statuses = await _flood(app, forged, logto_auth, checks)
        finally:
            ours.removeHandler(caplog.handler)
    assert statuses == [401] * 20
    refused = [r for r in caplog.records if getattr(r, "event", None) == "auth_refused"]
    assert sorted(r.levelno for r in refused) == [logging.DEBUG] * 19 + [logging.INFO]
    assert (checks.calls, logto_auth.verifier.stats.refusal_hits) == (1, 19)


async def _flood(app: Litestar, token: str, logto_auth: LogtoAuth, checks: Checks) -> list[int]:
    """Send twenty requests with ``token`` at once, open the gate once all twenty wait."""
    answers = asyncio.gather(*(_asgi_get(app, "/shopping/orders", token) for _ in range(20)))
    assert await asyncio.to_thread(checks.started.wait, _WAIT)
    for _ in range(int(_WAIT / 0.005)):  # until all twenty wait for the one check
        if logto_auth.verifier.stats.cache_misses == 20:
            break
        await asyncio.sleep(0.005)
    else:
        checks.gate.set()
        pytest.fail("the twenty requests did not all arrive while the check ran")
    checks.gate.set()
    return await asyncio.wait_for(answers, _WAIT)


async def _asgi_get(app: Litestar, path: str, token: str) -> int:
    """The status ``app`` answers a GET of ``path`` with ``token``, called as a server would."""
    headers = [(b"host", b"testserver"), (b"authorization", f"Bearer {token}".encode())]
    return await asgi_status(app, path, headers)


class _Fussy:
    """A key whose check raises for one signature (as a broken backend would)."""

    def verify(self, algorithm: str, signing_input: bytes, signature: bytes) -> bool:
        del algorithm, signing_input
        if signature == b"raise":
            msg = "the backend failed"
            raise ValueError(msg)
        return signature == b"valid"


async def test_a_check_that_raises_reaches_its_caller_and_the_thread_goes_on() -> None:
    """An exception raised by a check is raised to the caller that awaits it; the thread
    keeps taking checks."""
    threads = SignatureThreads(1)
    key: Any = _Fussy()
    try:
        with pytest.raises(ValueError, match="the backend failed"):
            await threads.check(key, "ES384", b"input", b"raise")
        assert [await threads.check(key, "ES384", b"input", s) for s in (b"valid", b"x")] == [
            True,
            False,
        ]
    finally:
        threads.close()


async def test_the_threads_of_an_instance_nobody_closed_end_when_it_is_collected() -> None:
    """A verifier dropped without ``close()`` leaves no thread waiting forever."""
    threads: SignatureThreads | None = SignatureThreads(2)
    key: Any = _Fussy()
    assert threads is not None
    assert await threads.check(key, "ES384", b"input", b"valid") is True
    started = list(threads._threads)
    assert [thread.is_alive() for thread in started] == [True, True]
    threads = None
    gc.collect()
    assert await asyncio.to_thread(_alive_after_waiting, started) == []


async def test_copies_of_a_token_that_arrive_during_an_outage_share_its_answer(
    issuer: FakeIssuer, http_client: httpx.AsyncClient, clock: FakeClock
) -> None:
    """The issuer's JWKS answers 503 after a while: ten copies of one token that arrive while
    the first one's fetch runs get that fetch's 503, each its own exception, instead of each
    starting a fetch (and a wait) of its own, one after the other, once the one before failed
    (no cooldown here, so nothing else would hold them back)."""

    async def slow_failure(request: httpx.Request) -> httpx.Response:
        del request
        await asyncio.sleep(0.05)
        return httpx.Response(503)

    issuer.jwks_route.mock(side_effect=slow_failure)
    key_set = RemoteKeySet(
        ENDPOINT,
        http_client=http_client,
        algorithms=LOGTO_ALGORITHMS,
        policy=KeySetPolicy(cooldown=0.0),
        clock=clock,
    )
    verifier = _verifier(key_set, clock)
    token = issuer.sign()
    try:
        results = await asyncio.gather(
            *(verifier.verify(token, audience=SHOPPING) for _ in range(10)),
            return_exceptions=True,
        )
    finally:
        verifier.close()
    assert [type(r).__name__ for r in results] == ["KeysUnavailable"] * 10
    assert len({id(r) for r in results}) == 10
    assert issuer.jwks_fetches == 1
