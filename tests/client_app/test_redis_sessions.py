"""Sessions and their locks in a real Redis (``SESSION_REDIS_URL``): what replicas share.

Every test talks to a real ``redis-server`` (``tests/redis_support.py``); only the issuer is
served by respx. Keys of different tests never collide: each session id is new.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from redis.asyncio import Redis

from client_app.app import create_app
from client_app.errors import SessionsUnavailable
from client_app.redis_sessions import (
    HEALTH_TIMEOUT_SECONDS,
    LOCKS_PREFIX,
    SESSIONS_NAMESPACE,
    RedisLocks,
    RedisSessions,
    SessionBusy,
    lock_ttl_seconds,
    redis_client,
)
from client_app.sessions import COOKIE_NAME, SessionData, SessionStore, new_session_id
from client_app.settings import Settings, load_settings
from demo.launcher import ROOT, free_port
from tests.client_app.conftest import BASE_URL, browser, browser_sign_in, environment, running
from tests.client_app.fake_logto import FakeLogto
from tests.redis_support import require_redis_server, start_redis_server

LONG = 60.0
"""A lock lifetime or wait no test reaches."""
PAUSE_MS = 600
"""How long ``CLIENT PAUSE`` holds the writes of a test that needs a slow Redis (well under the
app's 2 s socket timeout, so the paused command is answered, not timed out)."""


@pytest.fixture
async def raw(redis_url: str) -> AsyncIterator[Redis]:
    """A plain client to look inside Redis (not the app's)."""
    client = Redis.from_url(redis_url)
    try:
        yield client
    finally:
        await client.aclose()


@pytest.fixture
async def clients(redis_url: str) -> AsyncIterator[tuple[Redis, Redis]]:
    """Two independent clients (two connection pools), as two replicas have."""
    first, second = redis_client(redis_url), redis_client(redis_url)
    try:
        yield first, second
    finally:
        await first.aclose()
        await second.aclose()


@pytest.fixture
def redis_settings(redis_url: str, tmp_path: Path) -> Settings:
    """The respx-served issuer, sessions in the real Redis."""
    return load_settings(
        environment(SESSION_REDIS_URL=redis_url, SESSION_DATABASE=str(tmp_path / "unused"))
    )


@pytest.fixture
async def shared(redis_settings: Settings) -> AsyncIterator[RedisSessions]:
    """The app's Redis sessions, built from the settings."""
    sessions = RedisSessions(redis_settings)
    try:
        yield sessions
    finally:
        await sessions.aclose()


def session_store(settings: Settings, shared: RedisSessions) -> SessionStore:
    """Session documents over ``shared`` as the app keys them."""
    return SessionStore(
        shared.store,
        secret=settings.session_secret,
        max_age_seconds=settings.session_max_age_seconds,
        locks=shared.locks,
    )


# -- the documents ---------------------------------------------------------------------------


async def test_documents_live_under_the_hmac_key_and_expire_in_redis(
    redis_settings: Settings, shared: RedisSessions, raw: Redis
) -> None:
    """A signed-in document lives the session's lifetime, a sign-in attempt an hour, both
    under the HMAC of the id; Redis expires them itself (there is no sweep)."""
    store = session_store(redis_settings, shared)
    signed_in, pending = new_session_id(), new_session_id()
    async with store.open(signed_in) as data:
        data.set("refreshToken", "rt-1")
    async with store.open(pending) as data:
        data.set("signInSession", "{}")

    for session_id, lifetime in ((signed_in, 14 * 86400), (pending, 3600)):
        key = f"{SESSIONS_NAMESPACE}:{store.storage_key(session_id)}"
        assert lifetime - 10 <= await raw.ttl(key) <= lifetime
        assert session_id.encode() not in (await raw.get(key) or b"")
    assert await raw.keys(f"*{signed_in}*") == []


async def test_a_second_replica_reads_and_changes_what_the_first_wrote(
    redis_settings: Settings, redis_url: str
) -> None:
    """Two processes' worth of clients: what one saves the other loads, and an emptied
    session is gone for both."""
    first, second = RedisSessions(redis_settings), RedisSessions(redis_settings)
    try:
        one, other = session_store(redis_settings, first), session_store(redis_settings, second)
        session_id = new_session_id()
        async with one.open(session_id) as data:
            data.set("idToken", "id-1")
        async with other.open(session_id) as data:
            assert data.get("idToken") == "id-1"
            data.set("refreshToken", "rt-2")
        assert (await one.load(session_id)).snapshot() == {
            "idToken": "id-1",
            "refreshToken": "rt-2",
        }
        async with one.open(session_id) as data:
            data.clear()
        assert (await other.load(session_id)).keys() == frozenset()
    finally:
        await first.aclose()
        await second.aclose()


async def test_the_lock_key_is_derived_from_the_store_key(
    redis_settings: Settings, shared: RedisSessions, raw: Redis
) -> None:
    """While a session is open its lock sits under the store key (an HMAC), never the id;
    it is gone once the block ends."""
    store = session_store(redis_settings, shared)
    session_id = new_session_id()
    lock_key = f"{LOCKS_PREFIX}{store.storage_key(session_id)}"
    async with store.open(session_id):
        assert await raw.exists(lock_key) == 1
        assert 0 < await raw.pttl(lock_key) <= lock_ttl_seconds(redis_settings) * 1000
        assert await raw.keys(f"*{session_id}*") == []
    assert await raw.exists(lock_key) == 0


# -- the lock --------------------------------------------------------------------------------


async def test_two_clients_never_hold_one_lock_together(
    clients: tuple[Redis, Redis], raw: Redis
) -> None:
    """Twelve read-modify-write blocks on one key, alternating between two independent
    clients, run one at a time: no update is lost and no two blocks overlap."""
    locks = [RedisLocks(client, ttl_seconds=LONG, wait_seconds=LONG) for client in clients]
    key, counter = secrets.token_hex(8), f"test:counter:{secrets.token_hex(8)}"
    inside, most = 0, 0

    async def increment(lock: RedisLocks) -> None:
        nonlocal inside, most
        async with lock.lock(key):
            inside += 1
            most = max(most, inside)
            value = int(await raw.get(counter) or 0)
            await asyncio.sleep(0.005)  # let the other client try meanwhile
            await raw.set(counter, value + 1, ex=60)
            inside -= 1

    await asyncio.gather(*(increment(locks[i % 2]) for i in range(12)))

    assert int(await raw.get(counter) or 0) == 12
    assert most == 1
    assert await raw.exists(locks[0].key(key)) == 0


HOLD_AND_HANG = """
import asyncio, sys
from client_app.redis_sessions import RedisLocks, redis_client

async def main() -> None:
    locks = RedisLocks(redis_client(sys.argv[1]), ttl_seconds=float(sys.argv[3]), wait_seconds=0)
    print(await locks.acquire(sys.argv[2]), flush=True)
    await asyncio.sleep(3600)

asyncio.run(main())
"""


async def test_a_crashed_holders_lock_expires(
    redis_url: str, clients: tuple[Redis, Redis], raw: Redis
) -> None:
    """Another process takes the lock and is killed while holding it: the lock outlives it
    only until its TTL, then a waiting client gets it."""
    key = secrets.token_hex(8)
    waiter = RedisLocks(clients[1], ttl_seconds=LONG, wait_seconds=LONG)
    holder = await asyncio.create_subprocess_exec(
        sys.executable, "-c", HOLD_AND_HANG, redis_url, key, "3.0",
        stdout=asyncio.subprocess.PIPE,
        cwd=ROOT,
    )  # fmt: skip
    assert holder.stdout is not None
    try:
        held = (await holder.stdout.readline()).decode().strip()
        assert held, "the holder did not take the lock"
        assert await raw.get(waiter.key(key)) == held.encode()
        assert 0 < await raw.pttl(waiter.key(key)) <= 3000
    finally:
        holder.kill()
        await holder.wait()

    token = await waiter.acquire(key)

    assert token != held
    assert await raw.get(waiter.key(key)) == token.encode()
    assert await waiter.release(key, token)


async def test_release_never_deletes_another_holders_lock(
    clients: tuple[Redis, Redis], raw: Redis, caplog: pytest.LogCaptureFixture
) -> None:
    """A holder that outlived its TTL finds the lock taken by another: its release leaves
    that lock alone (and says so in the log); the new holder's own release works."""
    first = RedisLocks(clients[0], ttl_seconds=0.2, wait_seconds=0)
    second = RedisLocks(clients[1], ttl_seconds=LONG, wait_seconds=LONG)
    key = secrets.token_hex(8)
    caplog.set_level(logging.WARNING, logger="client_app.sessions")

    async with first.lock(key):
        await wait_until_gone(raw, first.key(key))
        taken = await second.acquire(key)
    assert await raw.get(second.key(key)) == taken.encode()
    events = [getattr(r, "event", None) for r in caplog.records if r.name == "client_app.sessions"]
    assert events == ["session_lock_expired"]

    assert await second.release(key, "not-the-holder") is False
    assert await raw.get(second.key(key)) == taken.encode()
    assert await second.release(key, taken) is True
    assert await raw.exists(second.key(key)) == 0


async def test_a_lock_that_cannot_be_had_in_time_is_session_busy(
    clients: tuple[Redis, Redis], raw: Redis
) -> None:
    """A waiter gives up after its bounded wait with :class:`SessionBusy`, leaving the
    holder's lock in place."""
    holder = RedisLocks(clients[0], ttl_seconds=LONG, wait_seconds=0)
    waiter = RedisLocks(clients[1], ttl_seconds=LONG, wait_seconds=0.2)
    key = secrets.token_hex(8)
    token = await holder.acquire(key)

    with pytest.raises(SessionBusy):
        async with waiter.lock(key):
            pytest.fail("the lock was held by another")

    assert await raw.get(holder.key(key)) == token.encode()
    assert await holder.release(key, token)


async def test_a_lock_already_holding_our_token_is_taken_at_once(
    clients: tuple[Redis, Redis], raw: Redis
) -> None:
    """What a ``SET NX`` whose reply was lost leaves behind (redis-py re-sends it): the lock
    holding our own token. Taking it again with that token succeeds at once and renews its
    lifetime, instead of waiting for ourselves until the wait runs out."""
    locks = RedisLocks(clients[0], ttl_seconds=LONG, wait_seconds=LONG)
    key, token = secrets.token_hex(8), secrets.token_urlsafe(18)
    await raw.set(locks.key(key), token, px=5000)

    assert await asyncio.wait_for(locks.acquire(key, token), timeout=2.0) == token

    assert 5000 < await raw.pttl(locks.key(key)) <= LONG * 1000
    assert await locks.release(key, token)


async def test_another_token_still_waits(clients: tuple[Redis, Redis], raw: Redis) -> None:
    """Idempotence is for our own token only: another holder's lock is still busy."""
    locks = RedisLocks(clients[0], ttl_seconds=LONG, wait_seconds=0.1)
    key = secrets.token_hex(8)
    await raw.set(locks.key(key), "someone-else", px=5000)

    with pytest.raises(SessionBusy):
        await locks.acquire(key, secrets.token_urlsafe(18))
    assert await raw.get(locks.key(key)) == b"someone-else"
    await raw.delete(locks.key(key))


async def cancel_twice(task: asyncio.Task[None], raw: Redis) -> float:
    """Cancel ``task`` (waiting inside its block) once with Redis writes paused, so that its
    cleanup hangs on Redis, and again while it does; return how long the task took to end."""
    await raw.client_pause(PAUSE_MS, all=False)  # WRITE mode: scripts and SET wait
    started = time.monotonic()
    task.cancel()
    await asyncio.sleep(PAUSE_MS / 4000)  # the cleanup's command is now waiting in Redis
    assert not task.done()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    return time.monotonic() - started


async def test_a_release_interrupted_by_a_second_cancellation_still_releases(
    clients: tuple[Redis, Redis], raw: Redis
) -> None:
    """A request cancelled inside the lock and cancelled again while its release waits on a
    slow Redis still releases the lock (and only then ends): the lock does not stay for its
    whole TTL."""
    locks = RedisLocks(clients[0], ttl_seconds=LONG, wait_seconds=LONG)
    key = secrets.token_hex(8)
    inside = asyncio.Event()

    async def hold() -> None:
        async with locks.lock(key):
            inside.set()
            await asyncio.sleep(3600)

    task = asyncio.create_task(hold())
    await inside.wait()
    assert await raw.exists(locks.key(key)) == 1

    took = await cancel_twice(task, raw)

    assert await raw.exists(locks.key(key)) == 0
    assert took >= PAUSE_MS / 2000  # it waited for the release


async def test_a_save_interrupted_by_a_second_cancellation_is_completed(
    redis_settings: Settings, shared: RedisSessions, raw: Redis
) -> None:
    """A rotated refresh token is being saved when the request is cancelled (again): the
    save completes, so the next refresh presents the new token, not the revoked old one."""
    store = session_store(redis_settings, shared)
    session_id = new_session_id()
    async with store.open(session_id) as data:
        data.set("refreshToken", "rt-old")
    inside = asyncio.Event()

    async def rotate() -> None:
        async with store.open(session_id) as data:
            data.set("refreshToken", "rt-rotated")
            inside.set()
            await asyncio.sleep(3600)

    task = asyncio.create_task(rotate())
    await inside.wait()

    await cancel_twice(task, raw)

    assert (await store.load(session_id)).get("refreshToken") == "rt-rotated"
    assert await raw.exists(shared.locks.key(store.storage_key(session_id))) == 0


async def test_a_cancelled_wait_for_another_holders_lock_logs_nothing(
    clients: tuple[Redis, Redis], raw: Redis, caplog: pytest.LogCaptureFixture
) -> None:
    """A request cancelled while asking for a lock another holds never had it: giving back
    "what may be ours" finds nothing of ours, which is not an expired lock worth a warning;
    the holder's lock stays."""
    holder = RedisLocks(clients[0], ttl_seconds=LONG, wait_seconds=0)
    waiter = RedisLocks(clients[1], ttl_seconds=LONG, wait_seconds=LONG)
    key = secrets.token_hex(8)
    token = await holder.acquire(key)
    caplog.set_level(logging.WARNING, logger="client_app.sessions")
    await raw.client_pause(PAUSE_MS, all=False)
    task = asyncio.create_task(waiter.acquire(key))
    await asyncio.sleep(PAUSE_MS / 4000)  # its SET is waiting in Redis

    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    assert [r.getMessage() for r in caplog.records if r.name == "client_app.sessions"] == []
    assert await raw.get(holder.key(key)) == token.encode()
    assert await holder.release(key, token)


async def test_the_health_check_of_a_hung_redis_is_bounded(
    shared: RedisSessions, raw: Redis
) -> None:
    """Redis accepts connections but answers nothing (paused): the health check says false
    within its bound, instead of waiting out two socket timeouts."""
    assert await shared.healthy()
    pause = 1.5
    await raw.client_pause(round(pause * 1000), all=True)
    started = time.monotonic()

    healthy = await shared.healthy()

    took = time.monotonic() - started
    await asyncio.sleep(max(0.0, pause - took) + 0.1)  # let the pause end for the next test
    assert healthy is False
    assert HEALTH_TIMEOUT_SECONDS <= took < pause
    assert await shared.healthy()


async def wait_until_gone(raw: Redis, key: str) -> None:
    """Poll until ``key`` has expired (bounded: a lock that never expires fails the test)."""
    for _ in range(600):
        if not await raw.exists(key):
            return
        await asyncio.sleep(0.05)
    pytest.fail(f"{key} did not expire")


# -- the app ---------------------------------------------------------------------------------


async def test_a_busy_session_gets_a_clean_page(
    redis_settings: Settings,
    http_client: httpx.AsyncClient,
    logto: FakeLogto,
    clients: tuple[Redis, Redis],
) -> None:
    """Another replica holds the session's lock past the wait: the page is a 503 "try again"
    with ``Retry-After``, not a 500; once the lock is free the page works."""
    holder = RedisLocks(clients[0], ttl_seconds=LONG, wait_seconds=0)
    impatient = RedisLocks(clients[1], ttl_seconds=LONG, wait_seconds=0.2)
    app = create_app(redis_settings, http_client=http_client, session_locks=impatient)
    async with browser(app) as client:
        await browser_sign_in(client, logto)
        session_id = str(client.cookies[COOKIE_NAME])
        key = app.state.context.gateway.sessions.storage_key(session_id)
        token = await holder.acquire(key)

        page = await client.get("/claims")

        assert page.status_code == 503
        assert "Still working on your last request" in page.text
        assert page.headers["retry-after"] == "2"
        assert 'href="/claims"' in page.text  # "Try again"
        assert await holder.release(key, token)
        assert (await client.get("/claims")).status_code == 200


async def test_redis_down_at_start_is_a_friendly_503_until_it_is_back(
    http_client: httpx.AsyncClient,
    logto: FakeLogto,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The app starts without its Redis: ``/health`` is 503, home renders, every page that
    needs the session says "try again" (JSON for the JSON route), nothing is a 500. Once Redis
    is up the same app serves sign-in."""
    require_redis_server()
    port = free_port()
    settings = load_settings(
        environment(
            SESSION_REDIS_URL=f"redis://:do-not-log-me@127.0.0.1:{port}/0",
            SESSION_DATABASE=str(tmp_path / "unused"),
        )
    )
    caplog.set_level(logging.INFO)
    app = create_app(settings, http_client=http_client)
    async with browser(app) as client:
        health = await client.get("/health")
        assert (health.status_code, health.json()) == (
            503,
            {"status": "unavailable", "sessions": "unavailable"},
        )
        assert health.headers["retry-after"] == str(SessionsUnavailable.retry_after_seconds)
        assert (await client.get("/")).status_code == 200  # no session needed to say hello
        sign_in = await client.get("/sign-in")
        assert sign_in.status_code == 503
        assert "Sessions temporarily unavailable" in sign_in.text
        assert sign_in.headers["retry-after"] == "5"
        client.cookies.set(COOKIE_NAME, new_session_id())
        me = await client.get("/protected/me.json")
        assert (me.status_code, me.json()["error"]) == (503, "SessionsUnavailable")
        assert (await client.get("/shopping")).status_code == 503
        assert (await client.get("/")).status_code == 503  # a browser with a session

        server = start_redis_server(tmp_path / "redis", port=port)
        try:
            await server_requires_password(server.url, "do-not-log-me")
            assert (await client.get("/health")).status_code == 200
            done = await browser_sign_in(client, logto)
            assert (done.status_code, done.headers["location"]) == (303, "/")
            assert "Alice" in (await client.get("/")).text
        finally:
            server.stop()

    events = [getattr(record, "event", None) for record in caplog.records]
    assert "session_store_down" in events
    assert "server_error" not in events
    assert not any("do-not-log-me" in record.getMessage() for record in caplog.records)
    assert "do-not-log-me" not in caplog.text


async def server_requires_password(url: str, password: str) -> None:
    """Make the test server ask for ``password`` (as a production Redis would)."""
    async with Redis.from_url(url) as admin:
        await admin.config_set("requirepass", password)


async def test_the_connection_pool_is_closed_at_shutdown(
    redis_settings: Settings, http_client: httpx.AsyncClient, logto: FakeLogto, raw: Redis
) -> None:
    """The app's connections to Redis are open while it serves and closed when it stops;
    with Redis it keeps no session directory (and runs no sweep)."""
    before = await app_connections(raw)
    app = create_app(redis_settings, http_client=http_client)
    async with browser(app) as client:
        await browser_sign_in(client, logto)
        during = await app_connections(raw) - before
        assert during

    for _ in range(100):  # the server notices a closed socket on its next loop turn
        if not await app_connections(raw) & during:
            break
        await asyncio.sleep(0.05)
    assert not await app_connections(raw) & during
    assert not redis_settings.session_database.exists()


async def app_connections(raw: Redis) -> set[int]:
    """Ids of the connections the client app opened (named ``client_app``)."""
    return {int(c["id"]) for c in await raw.client_list() if c.get("name") == "client_app"}


async def test_sessions_unavailable_is_raised_for_every_store_operation(tmp_path: Path) -> None:
    """With nothing listening, reading, writing, deleting and locking all fail as
    :class:`SessionsUnavailable`, and the health check says false."""
    down = load_settings(
        environment(
            SESSION_REDIS_URL=f"redis://127.0.0.1:{free_port()}/0",
            SESSION_DATABASE=str(tmp_path / "unused"),
        )
    )
    sessions = RedisSessions(down)
    try:
        store = session_store(down, sessions)
        session_id = new_session_id()
        assert await sessions.healthy() is False
        with pytest.raises(SessionsUnavailable):
            await store.load(session_id)
        with pytest.raises(SessionsUnavailable):
            await store.save(session_id, SessionData({"idToken": "x"}))
        with pytest.raises(SessionsUnavailable):
            await store.delete(session_id)
        with pytest.raises(SessionsUnavailable):
            async with store.open(session_id):
                pytest.fail("opened without a lock")
    finally:
        await sessions.aclose()


async def test_a_full_redis_answers_503_and_evicts_no_session(
    http_client: httpx.AsyncClient, logto: FakeLogto, tmp_path: Path
) -> None:
    """Compose's policy (``maxmemory`` with ``noeviction``, issue 9 item 4) at its bound: a new
    sign-in and a signed-in page are a 503 "try again" (Redis refuses the write and the lock),
    never a 500; nobody's session is evicted, and once memory is available again everyone is
    still signed in. A garbled document in Redis is no session and is removed."""
    require_redis_server()
    server = start_redis_server(tmp_path / "redis")
    settings = load_settings(
        environment(SESSION_REDIS_URL=server.url, SESSION_DATABASE=str(tmp_path / "unused"))
    )
    try:
        async with Redis.from_url(server.url) as admin:
            app = create_app(settings, http_client=http_client)
            transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
            async with (
                running(app),
                httpx.AsyncClient(transport=transport, base_url=BASE_URL) as alice,
                httpx.AsyncClient(transport=transport, base_url=BASE_URL) as bob,
            ):
                await browser_sign_in(alice, logto, "alice")
                keys = await admin.keys(f"{SESSIONS_NAMESPACE}:*")
                await admin.config_set("maxmemory-policy", "noeviction")
                await admin.config_set("maxmemory", "1")

                done = await browser_sign_in(bob, logto, "bob")
                assert done.status_code == 503
                assert "Sessions temporarily unavailable" in done.text
                me = await alice.get("/protected/me.json")
                assert (me.status_code, me.json()["error"]) == (503, "SessionsUnavailable")
                assert await admin.keys(f"{SESSIONS_NAMESPACE}:*") == keys

                await admin.config_set("maxmemory", "0")
                assert (await alice.get("/protected/me.json")).json()["sub"] == "user-alice"
                assert (await browser_sign_in(bob, logto, "bob")).status_code == 303

                (key,) = keys
                await admin.set(key, b"\xff not json", keepttl=True)
                assert (await alice.get("/protected/me.json")).status_code == 401
                assert not await admin.exists(key)
    finally:
        server.stop()
