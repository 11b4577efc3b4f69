"""The SQLite store: orders visible only to their owner, global and per-organization catalogs,
members remembered once, WAL on a created directory, and data that survives a reopen."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from resource_api.storage import Member, Order, OrderItem, Product, SqliteStore, Store
from tests.support import NOW, FakeClock

CREATED = datetime.fromtimestamp(NOW, tz=UTC)
TEA = OrderItem(sku="tea", quantity=2)


@pytest.fixture
def sqlite_store(tmp_path: Path, clock: FakeClock) -> Iterator[SqliteStore]:
    """An empty store on a file under a directory that does not exist yet."""
    store = SqliteStore(tmp_path / "nested" / "dir" / "api.sqlite3", clock=clock)
    yield store
    store.close()


def test_the_sqlite_store_is_a_store(sqlite_store: SqliteStore) -> None:
    """SqliteStore is a Store, so the app can take either."""
    assert isinstance(sqlite_store, Store)


def test_the_parent_directory_is_created_and_wal_is_on(tmp_path: Path, clock: FakeClock) -> None:
    """Opening a store creates its directory and puts the database in WAL mode."""
    path = tmp_path / "a" / "b" / "api.sqlite3"
    SqliteStore(path, clock=clock).close()
    with sqlite3.connect(path) as db:
        (mode,) = db.execute("PRAGMA journal_mode").fetchone()
    db.close()
    assert (path.exists(), mode) == (True, "wal")


def test_a_created_order_is_returned_with_its_id_and_time(sqlite_store: SqliteStore) -> None:
    """A new order gets an id, the clock's time, and its items and note back."""
    order = sqlite_store.create_order("user-alice", [TEA], "by the door")
    assert order == Order(id=1, items=[TEA], note="by the door", created_at=CREATED)


def test_orders_are_listed_only_for_their_owner(sqlite_store: SqliteStore) -> None:
    """Each owner lists its own orders, oldest first, and none of the others'."""
    first = sqlite_store.create_order("user-alice", [TEA], None)
    sqlite_store.create_order("user-bob", [TEA], None)
    second = sqlite_store.create_order("user-alice", [TEA, TEA], "again")
    assert sqlite_store.list_orders("user-alice") == [first, second]
    assert [order.id for order in sqlite_store.list_orders("user-bob")] == [2]
    assert sqlite_store.list_orders("user-carol") == []


@pytest.mark.parametrize(
    ("owner", "order_id", "found"),
    [
        pytest.param("user-alice", 1, True, id="own-order"),
        pytest.param("user-bob", 1, False, id="someone-elses-order"),
        pytest.param("user-alice", 2, False, id="missing-order"),
        pytest.param("user-alice", 0, False, id="zero"),
        pytest.param("user-alice", -1, False, id="negative"),
        pytest.param("user-alice", 2**63, False, id="beyond-sqlite-integer"),
        pytest.param("user-alice", 10**30, False, id="huge"),
    ],
)
def test_an_order_is_found_only_by_its_owner(
    sqlite_store: SqliteStore, owner: str, order_id: int, found: bool
) -> None:
    """get_order answers None for another owner's order exactly as for a missing one."""
    sqlite_store.create_order("user-alice", [TEA], None)
    assert (sqlite_store.get_order(owner, order_id) is not None) is found


def test_catalogs_are_kept_apart(sqlite_store: SqliteStore, clock: FakeClock) -> None:
    """The global catalog and each organization's catalog list only their own products."""
    tea = sqlite_store.create_product(None, "Tea", 450)
    clock.advance(60)
    coffee = sqlite_store.create_product("acme", "Coffee", 900)
    assert tea == Product(
        id=1, name="Tea", price_cents=450, organization_id=None, created_at=CREATED
    )
    assert sqlite_store.list_products(None) == [tea]
    assert sqlite_store.list_products("acme") == [coffee]
    assert coffee.created_at == datetime.fromtimestamp(NOW + 60, tz=UTC)
    assert sqlite_store.list_products("globex") == []


def test_a_member_is_recorded_once_with_its_first_sighting(
    sqlite_store: SqliteStore, clock: FakeClock
) -> None:
    """Recording a member again keeps the first time it was seen; organizations are apart."""
    sqlite_store.record_member("acme", "user-alice")
    clock.advance(10)
    sqlite_store.record_member("acme", "user-bob")
    clock.advance(10)
    sqlite_store.record_member("acme", "user-alice")
    sqlite_store.record_member("globex", "user-carol")
    assert sqlite_store.list_members("acme") == [
        Member(user_id="user-alice", first_seen=CREATED),
        Member(user_id="user-bob", first_seen=datetime.fromtimestamp(NOW + 10, tz=UTC)),
    ]
    assert [member.user_id for member in sqlite_store.list_members("globex")] == ["user-carol"]


def test_data_survives_closing_and_reopening(tmp_path: Path, clock: FakeClock) -> None:
    """Orders, products and members written before a close are read back after a reopen."""
    path = tmp_path / "api.sqlite3"
    first = SqliteStore(path, clock=clock)
    order = first.create_order("user-alice", [TEA], "keep me")
    product = first.create_product("acme", "Coffee", 900)
    first.record_member("acme", "user-alice")
    first.close()
    second = SqliteStore(path, clock=clock)
    try:
        assert second.get_order("user-alice", order.id) == order
        assert second.list_products("acme") == [product]
        assert second.list_members("acme") == [Member("user-alice", CREATED)]
    finally:
        second.close()


def test_ids_are_not_reused_after_a_reopen(tmp_path: Path, clock: FakeClock) -> None:
    """The next order after a reopen gets the next id, never an old one."""
    path = tmp_path / "api.sqlite3"
    first = SqliteStore(path, clock=clock)
    first.create_order("user-alice", [TEA], None)
    first.close()
    second = SqliteStore(path, clock=clock)
    try:
        assert second.create_order("user-bob", [TEA], None).id == 2
    finally:
        second.close()


def test_a_database_from_newer_code_is_refused(tmp_path: Path, clock: FakeClock) -> None:
    """A schema version above ours stops the store from opening rather than corrupting data."""
    path = tmp_path / "api.sqlite3"
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA user_version = 99")
    db.close()
    with pytest.raises(RuntimeError, match="schema version 99 is newer"):
        SqliteStore(path, clock=clock)


def test_an_in_memory_store_works(clock: FakeClock) -> None:
    """':memory:' gives a throw-away store without touching the file system."""
    store = SqliteStore(":memory:", clock=clock)
    try:
        store.create_product(None, "Tea", 1)
        assert [product.name for product in store.list_products(None)] == ["Tea"]
    finally:
        store.close()
