"""The store test suite, run against both implementations (``store_kind``: SQLite, and
PostgreSQL on a real server): orders visible only to their owner, global and per-organization
catalogs, members remembered once, data that survives a reopen, ids never reused. Then what is
SQLite's own: WAL on a created directory, a newer schema refused, ``:memory:``."""

from __future__ import annotations

import asyncio
import multiprocessing
import sqlite3
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from threading import Barrier as BarrierType

import pytest

from resource_api.storage import (
    BUSY_SECONDS,
    Member,
    Order,
    OrderItem,
    Product,
    SqliteStore,
    Store,
)
from tests.resource_api.conftest import OpenStore
from tests.support import NOW, FakeClock

CREATED = datetime.fromtimestamp(NOW, tz=UTC)
TEA = OrderItem(sku="tea", quantity=2)


@pytest.fixture
async def any_store(open_store: OpenStore) -> Store:
    """An empty store of each implementation (closed by ``open_store``)."""
    return await open_store()


def test_the_sqlite_store_is_a_store(tmp_path: Path) -> None:
    """SqliteStore is a Store, so the app can take either."""
    assert isinstance(SqliteStore(":memory:"), Store)


async def test_a_created_order_is_returned_with_its_id_and_time(any_store: Store) -> None:
    """A new order gets an id, the clock's time, and its items and note back."""
    order = await any_store.create_order("user-alice", [TEA], "by the door")
    assert order == Order(id=1, items=[TEA], note="by the door", created_at=CREATED)


async def test_orders_are_listed_only_for_their_owner(any_store: Store) -> None:
    """Each owner lists its own orders, oldest first, and none of the others'."""
    first = await any_store.create_order("user-alice", [TEA], None)
    await any_store.create_order("user-bob", [TEA], None)
    second = await any_store.create_order("user-alice", [TEA, TEA], "again")
    assert await any_store.list_orders("user-alice") == [first, second]
    assert [order.id for order in await any_store.list_orders("user-bob")] == [2]
    assert await any_store.list_orders("user-carol") == []


@pytest.mark.parametrize(
    ("owner", "order_id", "found"),
    [
        pytest.param("user-alice", 1, True, id="own-order"),
        pytest.param("user-bob", 1, False, id="someone-elses-order"),
        pytest.param("user-alice", 2, False, id="missing-order"),
        pytest.param("user-alice", 0, False, id="zero"),
        pytest.param("user-alice", -1, False, id="negative"),
        pytest.param("user-alice", 2**63, False, id="beyond-64-bit-integer"),
        pytest.param("user-alice", 10**30, False, id="huge"),
    ],
)
async def test_an_order_is_found_only_by_its_owner(
    any_store: Store, owner: str, order_id: int, found: bool
) -> None:
    """get_order answers None for another owner's order exactly as for a missing one."""
    await any_store.create_order("user-alice", [TEA], None)
    assert (await any_store.get_order(owner, order_id) is not None) is found


async def test_catalogs_are_kept_apart(any_store: Store, clock: FakeClock) -> None:
    """The global catalog and each organization's catalog list only their own products."""
    tea = await any_store.create_product(None, "Tea", 450)
    clock.advance(60)
    coffee = await any_store.create_product("acme", "Coffee", 900)
    assert tea == Product(
        id=1, name="Tea", price_cents=450, organization_id=None, created_at=CREATED
    )
    assert await any_store.list_products(None) == [tea]
    assert await any_store.list_products("acme") == [coffee]
    assert coffee.created_at == datetime.fromtimestamp(NOW + 60, tz=UTC)
    assert await any_store.list_products("globex") == []


async def test_a_member_is_recorded_once_with_its_first_sighting(
    any_store: Store, clock: FakeClock
) -> None:
    """Recording a member again keeps the first time it was seen; organizations are apart."""
    await any_store.record_member("acme", "user-alice")
    clock.advance(10)
    await any_store.record_member("acme", "user-bob")
    clock.advance(10)
    await any_store.record_member("acme", "user-alice")
    await any_store.record_member("globex", "user-carol")
    assert await any_store.list_members("acme") == [
        Member(user_id="user-alice", first_seen=CREATED),
        Member(user_id="user-bob", first_seen=datetime.fromtimestamp(NOW + 10, tz=UTC)),
    ]
    assert [member.user_id for member in await any_store.list_members("globex")] == ["user-carol"]


async def test_data_survives_closing_and_reopening(open_store: OpenStore) -> None:
    """Orders, products and members written before a close are read back after a reopen."""
    first = await open_store()
    order = await first.create_order("user-alice", [TEA], "keep me")
    product = await first.create_product("acme", "Coffee", 900)
    await first.record_member("acme", "user-alice")
    await first.close()
    second = await open_store()
    assert await second.get_order("user-alice", order.id) == order
    assert await second.list_products("acme") == [product]
    assert await second.list_members("acme") == [Member("user-alice", CREATED)]


async def test_ids_are_not_reused_after_a_reopen(open_store: OpenStore) -> None:
    """The next order after a reopen gets the next id, never an old one."""
    first = await open_store()
    await first.create_order("user-alice", [TEA], None)
    await first.close()
    second = await open_store()
    assert (await second.create_order("user-bob", [TEA], None)).id == 2


async def test_two_stores_on_one_database_see_each_others_writes(open_store: OpenStore) -> None:
    """Two replicas (two stores open on the same database) share orders, and never hand out
    the same id."""
    one, two = await open_store(), await open_store()
    first = await one.create_order("user-alice", [TEA], None)
    second = await two.create_order("user-alice", [TEA], None)
    assert first.id != second.id
    assert await one.list_orders("user-alice") == await two.list_orders("user-alice")


# -- SQLite's own ------------------------------------------------------------------------------


async def test_the_parent_directory_is_created_and_wal_is_on(
    tmp_path: Path, clock: FakeClock
) -> None:
    """Opening a store creates its directory and puts the database in WAL mode."""
    path = tmp_path / "a" / "b" / "api.sqlite3"
    await SqliteStore(path, clock=clock).close()
    with sqlite3.connect(path) as db:
        (mode,) = db.execute("PRAGMA journal_mode").fetchone()
    db.close()
    assert (path.exists(), mode) == (True, "wal")


def test_a_database_from_newer_code_is_refused(tmp_path: Path, clock: FakeClock) -> None:
    """A schema version above ours stops the store from opening rather than corrupting data."""
    path = tmp_path / "api.sqlite3"
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA user_version = 99")
    db.close()
    with pytest.raises(RuntimeError, match="schema version 99 is newer"):
        SqliteStore(path, clock=clock)


async def test_an_in_memory_store_works(clock: FakeClock) -> None:
    """':memory:' gives a throw-away store without touching the file system."""
    store = SqliteStore(":memory:", clock=clock)
    try:
        await store.create_product(None, "Tea", 1)
        assert [product.name for product in await store.list_products(None)] == ["Tea"]
    finally:
        await store.close()


async def test_a_store_opening_while_another_connection_writes_waits_for_it(
    tmp_path: Path, clock: FakeClock
) -> None:
    """Switching a database to WAL mode while another connection holds its write lock is a
    lock upgrade SQLite refuses at once, busy timeout or not; the store waits for the lock
    instead of failing to open (two ``--workers`` starting on a new file did: CI, 2026-12-04).
    """
    path = tmp_path / "api.sqlite3"
    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    try:
        other.execute("CREATE TABLE elsewhere (x)")
        other.execute("BEGIN IMMEDIATE")  # the write lock of a rollback-journal database
        other.execute("INSERT INTO elsewhere VALUES (1)")
        releases = threading.Timer(0.2, other.execute, ("COMMIT",))
        releases.start()
        try:
            store = SqliteStore(path, clock=clock)
        finally:
            releases.join()
        try:
            await store.create_product(None, "Tea", 1)
            assert [product.name for product in await store.list_products(None)] == ["Tea"]
            assert other.execute("SELECT x FROM elsewhere").fetchall() == [(1,)]
        finally:
            await store.close()
    finally:
        other.close()


def test_a_database_that_cannot_be_opened_fails_at_once(tmp_path: Path, clock: FakeClock) -> None:
    """Only a busy database is waited for: a path SQLite cannot open (here a directory) fails
    without the retries (well before BUSY_SECONDS)."""
    started = time.monotonic()
    with pytest.raises(sqlite3.OperationalError, match="unable to open"):
        SqliteStore(tmp_path, clock=clock)
    assert time.monotonic() - started < BUSY_SECONDS / 2


def _open_and_close(path: Path, start: BarrierType) -> str:
    """Open a store on ``path`` once every process is ready; the error, or "" if none."""
    start.wait()
    try:
        asyncio.run(SqliteStore(path).close())
    except sqlite3.Error as error:
        return repr(error)
    return ""


def test_processes_opening_one_new_database_at_once_all_open_it(tmp_path: Path) -> None:
    """What ``python -m resource_api --workers N`` does on a first start: N processes create
    the same database at the same moment. Every one opens it (25 rounds of 4 processes; on
    the store that did not wait for the lock, about one round in ten failed)."""
    context = multiprocessing.get_context("spawn")
    with context.Manager() as manager, ProcessPoolExecutor(4, mp_context=context) as pool:
        for round_ in range(25):
            path = tmp_path / f"api-{round_}.sqlite3"
            start = manager.Barrier(4)
            errors = [
                error for error in pool.map(_open_and_close, [path] * 4, [start] * 4) if error
            ]
            assert errors == [], f"round {round_}"
