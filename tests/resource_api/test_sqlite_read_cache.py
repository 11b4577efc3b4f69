"""The SQLite store keeps its read answers while the database is unchanged, and never answers
from them once anything committed a change: its own connection, another store on the same file
(another worker), another process, a checkpoint that restarts the WAL.

The cached store is checked against a store without the cache on the same file, after every
step of a random sequence of writes; and statements actually run are counted with SQLite's
trace callback on the store's own connection."""

from __future__ import annotations

import asyncio
import os
import random
import shutil
import sqlite3
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from resource_api import storage
from resource_api.sqlite_changes import WalChanges
from resource_api.storage import OrderItem, SqliteStore
from tests.support import FakeClock

TEA = OrderItem(sku="tea", quantity=2)


@pytest.fixture
def path(tmp_path: Path) -> Path:
    """The database file the stores of a test share."""
    return tmp_path / "api.sqlite3"


@pytest.fixture
async def stores(path: Path, clock: FakeClock) -> AsyncIterator[tuple[SqliteStore, SqliteStore]]:
    """A store with the read cache, and one without it, on the same file."""
    cached = SqliteStore(path, clock=clock)
    plain = SqliteStore(path, clock=clock, read_cache=False)
    try:
        yield cached, plain
    finally:
        await cached.close()
        await plain.close()


def _selects(store: SqliteStore) -> list[str]:
    """The SELECT statements ``store``'s connection runs from now on."""
    statements: list[str] = []
    store._db.set_trace_callback(
        lambda sql: statements.append(sql) if sql.startswith("SELECT") else None
    )
    return statements


async def test_a_repeated_read_does_not_reach_sqlite_while_nothing_changed(
    stores: tuple[SqliteStore, SqliteStore],
) -> None:
    """The same read, again and again: one query; a read of something else: its own query."""
    cached, plain = stores
    await plain.create_order("user-alice", [TEA], None)
    selects = _selects(cached)
    answers = [await cached.list_orders("user-alice") for _ in range(5)]
    assert len(selects) == 1
    assert answers == [await plain.list_orders("user-alice")] * 5
    await cached.get_order("user-alice", 1)
    await cached.get_order("user-alice", 1)
    await cached.list_products(None)
    await cached.list_members("org-acme")
    assert len(selects) == 4


async def test_a_write_by_another_store_is_seen_at_once(
    stores: tuple[SqliteStore, SqliteStore],
) -> None:
    """Another worker (another connection to the file) writes after this one answered from
    SQLite: the very next read here sees the write, for every kind of read."""
    cached, other = stores
    assert await cached.list_orders("user-alice") == []
    assert await cached.get_order("user-alice", 1) is None
    assert await cached.list_products("org-acme") == []
    assert await cached.list_members("org-acme") == []
    order = await other.create_order("user-alice", [TEA], None)
    product = await other.create_product("org-acme", "Tea", 350)
    await other.record_member("org-acme", "user-alice")
    assert await cached.list_orders("user-alice") == [order]
    assert await cached.get_order("user-alice", 1) == order
    assert await cached.list_products("org-acme") == [product]
    assert [m.user_id for m in await cached.list_members("org-acme")] == ["user-alice"]


async def test_its_own_write_is_seen_at_once(stores: tuple[SqliteStore, SqliteStore]) -> None:
    """A store's own write changes what it answers next."""
    cached, _ = stores
    assert await cached.list_orders("user-alice") == []
    order = await cached.create_order("user-alice", [TEA], None)
    assert await cached.list_orders("user-alice") == [order]


async def test_a_write_by_another_process_is_seen_at_once(
    stores: tuple[SqliteStore, SqliteStore], path: Path
) -> None:
    """A process that is not this code (the sqlite3 module in another interpreter, as an
    operator's script would) inserts an order: the next read here lists it."""
    cached, _ = stores
    assert await cached.list_orders("user-alice") == []
    insert = (
        "import sqlite3, sys; db = sqlite3.connect(sys.argv[1], isolation_level=None);"
        ' db.execute("INSERT INTO orders (owner, items, note, created_at)'
        " VALUES ('user-alice', '[]', 'by hand', 0)\"); db.close()"
    )
    process = await asyncio.create_subprocess_exec(sys.executable, "-c", insert, str(path))
    assert await asyncio.wait_for(process.wait(), 60) == 0
    assert [order.note for order in await cached.list_orders("user-alice")] == ["by hand"]


@pytest.mark.parametrize("mode", ["PASSIVE", "RESTART", "TRUNCATE"])
async def test_a_checkpoint_then_a_write_is_seen(
    stores: tuple[SqliteStore, SqliteStore], mode: str
) -> None:
    """A checkpoint that restarts the WAL (the next write overwrites it from its start, with
    the same number of frames) still changes what the cached store answers."""
    cached, other = stores
    first = await other.create_order("user-alice", [TEA], None)
    assert await cached.list_orders("user-alice") == [first]
    other._db.execute(f"PRAGMA wal_checkpoint({mode})")
    second = await other.create_order("user-alice", [TEA], None)
    assert await cached.list_orders("user-alice") == [first, second]


async def test_random_writes_never_leave_a_stale_answer(
    stores: tuple[SqliteStore, SqliteStore],
) -> None:
    """Writes by either store, no-op writes, checkpoints, in a random order: after each, every
    read of the cached store equals the same read without the cache."""
    cached, plain = stores
    rng = random.Random(8)  # noqa: S311 - a reproducible sequence, not a secret
    owners, organizations = ["user-alice", "user-bob"], [None, "org-acme"]
    for step in range(150):
        writer = rng.choice([cached, plain])
        action = rng.randrange(5)
        if action == 0:
            await writer.create_order(rng.choice(owners), [TEA], f"step {step}")
        elif action == 1:
            await writer.create_product(rng.choice(organizations), f"p{step}", step)
        elif action == 2:
            await writer.record_member("org-acme", rng.choice(owners))  # often a no-op
        elif action == 3:
            writer._db.execute("PRAGMA wal_checkpoint(RESTART)")
        for owner in owners:
            assert await cached.list_orders(owner) == await plain.list_orders(owner), step
            for order_id in range(1, 4):
                got = await cached.get_order(owner, order_id)
                assert got == await plain.get_order(owner, order_id), step
        for organization in organizations:
            got_products = await cached.list_products(organization)
            assert got_products == await plain.list_products(organization), step
        assert await cached.list_members("org-acme") == await plain.list_members("org-acme")


async def test_the_cache_is_bounded(
    stores: tuple[SqliteStore, SqliteStore], monkeypatch: pytest.MonkeyPatch
) -> None:
    """At most READ_CACHE_ENTRIES answers are kept; the oldest goes first."""
    monkeypatch.setattr(storage, "READ_CACHE_ENTRIES", 2)
    cached, _ = stores
    selects = _selects(cached)
    for owner in ("a", "b", "c", "c", "b", "a"):
        await cached.list_orders(owner)
    assert len(selects) == 4


async def test_a_store_without_a_wal_index_queries_every_time(clock: FakeClock) -> None:
    """``:memory:`` (no ``-shm`` file) works as before: every read queries SQLite."""
    store = SqliteStore(":memory:", clock=clock)
    try:
        selects = _selects(store)
        await store.list_orders("user-alice")
        order = await store.create_order("user-alice", [TEA], None)
        assert await store.list_orders("user-alice") == [order]
        assert len(selects) == 2
    finally:
        await store.close()


def test_a_file_that_is_not_a_wal_index_is_refused(tmp_path: Path) -> None:
    """The header is only trusted when it is one SQLite wrote: a rollback-journal database
    has no ``-shm`` file; a ``-shm`` file of other bytes is not usable."""
    path = tmp_path / "journal.sqlite3"
    sqlite3.connect(path).close()
    shm = Path(f"{path}-shm")
    with pytest.raises(FileNotFoundError):
        WalChanges(shm)
    shm.write_bytes(b"\x00" * 32768)
    changes = WalChanges(shm)
    try:
        assert changes.usable is False
    finally:
        changes.close()


def _linked_database_with_a_stale_wal_index(tmp_path: Path, clock: FakeClock) -> Path:
    """A link to a database, and beside the link a copy of a real wal-index of it."""
    (tmp_path / "real").mkdir()
    target = tmp_path / "real" / "api.sqlite3"
    link = tmp_path / "api.sqlite3"
    link.symlink_to(target)
    writer = SqliteStore(target, clock=clock, read_cache=False)
    shutil.copyfile(f"{target}-shm", f"{link}-shm")
    writer._db.close()
    return link


async def test_a_stale_wal_index_beside_a_link_is_not_trusted(
    tmp_path: Path, clock: FakeClock
) -> None:
    """SQLite keeps the ``-shm`` file beside the database it opened, links resolved: a store
    opened through a symbolic link watches that one, and a stale ``-shm`` beside the link
    (nothing writes it) is never read. Its own writes are seen at once."""
    link = _linked_database_with_a_stale_wal_index(tmp_path, clock)
    store = SqliteStore(link, clock=clock)
    try:
        assert await store.list_orders("user-alice") == []
        order = await store.create_order("user-alice", [TEA], None)
        assert await store.list_orders("user-alice") == [order]
        selects = _selects(store)
        await store.list_orders("user-alice")
        assert selects == []  # the cache works, on the wal-index SQLite writes
    finally:
        await store.close()


def _locks_held_on(path: Path) -> list[str]:
    """The POSIX locks this process holds on ``path`` (Linux's ``/proc/locks``)."""
    inode = path.stat().st_ino
    held = []
    for line in Path("/proc/locks").read_text().splitlines():
        fields = line.split()
        if "->" in fields:  # a waiter, not a holder
            continue
        if int(fields[4]) == os.getpid() and int(fields[5].rsplit(":", 1)[1]) == inode:
            held.append(line)
    return held


async def test_opening_the_cache_keeps_sqlites_lock_on_the_wal_index(
    stores: tuple[SqliteStore, SqliteStore], path: Path
) -> None:
    """POSIX locks belong to the process, and closing any descriptor of a file drops them all:
    reading the header through a descriptor of our own must not drop the lock SQLite's
    connection holds on the ``-shm`` file, which tells other processes the wal-index is in
    use (without it, the next process to open the database rebuilds the wal-index under the
    running connections). Another process that reads leaves the header as it was."""
    cached, plain = stores
    await cached.list_orders("user-alice")
    await plain.close()  # only the cached store's connection holds locks now
    shm = Path(f"{path}-shm")
    assert _locks_held_on(shm) != []
    # Read through the store's own map: opening the file here would drop the locks too.
    changes = cached._shm
    assert changes is not None
    before = changes.header()
    reader = (
        "import sqlite3, sys; db = sqlite3.connect(sys.argv[1]);"
        " db.execute('SELECT count(*) FROM orders').fetchone(); db.close()"
    )
    process = await asyncio.create_subprocess_exec(sys.executable, "-c", reader, str(path))
    assert await asyncio.wait_for(process.wait(), 60) == 0
    assert changes.header() == before
