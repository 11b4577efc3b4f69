"""The demo data behind the routes: orders, store products and organization members.

:class:`Store` is the seam: handlers depend on it, :class:`SqliteStore` implements it with the
standard library's ``sqlite3`` (one WAL-mode connection, data survives restarts), and another
store (PostgreSQL, an in-memory fake) can replace it without touching a route.

Ownership rules live here, not in handlers: an order belongs to the token's ``sub`` and every
order query is filtered by it, so a caller can neither see nor learn of another's order.
"""

from __future__ import annotations

import abc
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Final

import msgspec
from msgspec import Meta

SQLITE_MAX_INTEGER: Final = 2**63 - 1
_SCHEMA_VERSION: Final = 1
_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS orders (
    id INTEGER PRIMARY KEY AUTOINCREMENT,  -- AUTOINCREMENT: an id is never handed out twice
    owner TEXT NOT NULL,                   -- the token's sub
    items TEXT NOT NULL,                   -- JSON array of {"sku", "quantity"}
    note TEXT,
    created_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS orders_by_owner ON orders (owner, id);
CREATE TABLE IF NOT EXISTS products (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    organization_id TEXT,                  -- NULL: the global store catalog
    name TEXT NOT NULL,
    price_cents INTEGER NOT NULL,
    created_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS products_by_organization ON products (organization_id, id);
CREATE TABLE IF NOT EXISTS organization_members (
    organization_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    first_seen REAL NOT NULL,
    PRIMARY KEY (organization_id, user_id)
) WITHOUT ROWID;
"""


class OrderItem(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One line of an order."""

    sku: Annotated[str, Meta(min_length=1, max_length=64, description="Stock keeping unit.")]
    quantity: Annotated[int, Meta(ge=1, le=1000)]


class Order(msgspec.Struct, frozen=True):
    """An order, visible only to the subject that placed it."""

    id: int
    items: list[OrderItem]
    note: str | None
    created_at: datetime


class Product(msgspec.Struct, frozen=True):
    """A product of the global catalog (``organization_id`` null) or of one organization."""

    id: int
    name: str
    price_cents: int
    organization_id: str | None
    created_at: datetime


class Member(msgspec.Struct, frozen=True):
    """A user this API has seen presenting an organization token for the organization."""

    user_id: str
    first_seen: datetime


class Store(abc.ABC):
    """What the routes need from a data store.

    An abstract base class rather than a ``Protocol``: Litestar checks every injected
    dependency with ``isinstance()`` on every request, and ``isinstance`` against a
    runtime-checkable protocol walks its members each time (about 15 µs, a quarter of a
    ``GET /shopping/orders``), where an ABC answers from its cache."""

    @abc.abstractmethod
    def list_orders(self, owner: str) -> list[Order]:
        """Every order of ``owner``, oldest first."""
        ...

    @abc.abstractmethod
    def get_order(self, owner: str, order_id: int) -> Order | None:
        """The order ``order_id`` if ``owner`` placed it; ``None`` otherwise (even if it
        exists: another subject's order is indistinguishable from a missing one)."""
        ...

    @abc.abstractmethod
    def create_order(self, owner: str, items: Sequence[OrderItem], note: str | None) -> Order:
        """Record a new order of ``owner``."""
        ...

    @abc.abstractmethod
    def list_products(self, organization_id: str | None) -> list[Product]:
        """The global catalog (``None``) or one organization's catalog, oldest first."""
        ...

    @abc.abstractmethod
    def create_product(self, organization_id: str | None, name: str, price_cents: int) -> Product:
        """Add a product to the global catalog (``None``) or to an organization's catalog."""
        ...

    @abc.abstractmethod
    def record_member(self, organization_id: str, user_id: str) -> None:
        """Remember that ``user_id`` is a member of the organization (idempotent)."""
        ...

    @abc.abstractmethod
    def list_members(self, organization_id: str) -> list[Member]:
        """The members seen for the organization, in the order they were first seen."""
        ...

    @abc.abstractmethod
    def close(self) -> None:
        """Release the store's resources."""
        ...


class SqliteStore(Store):
    """:class:`Store` on one SQLite file (or ``":memory:"``).

    Queries run on the calling thread, including the event loop: each is a point lookup or a
    single-row write on a local file, which takes microseconds, less than handing the call to
    a worker thread and back would cost. One connection serves every request; the lock keeps
    it safe should a caller use it from several threads.
    """

    def __init__(self, path: str | Path, *, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        if str(path) != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        # isolation_level=None: autocommit; every write below is one atomic statement.
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._lock = threading.Lock()
        try:
            self._prepare()
        except BaseException:
            self._db.close()
            raise

    def _prepare(self) -> None:
        db = self._db
        db.execute("PRAGMA journal_mode = WAL")  # readers never block the writer
        # FULL: every commit syncs the write-ahead log before it returns, so a write the API
        # has acknowledged survives a power loss or an OS crash, not only a crash of this
        # process (NORMAL syncs only at checkpoints). Costs one fsync per write; reads are
        # unaffected (see the README's "What 201 Created promises").
        db.execute("PRAGMA synchronous = FULL")
        # Another process holding the write lock (a second replica on the same file) makes a
        # write wait; keep that bounded, since it blocks the event loop meanwhile.
        db.execute("PRAGMA busy_timeout = 2000")
        (version,) = db.execute("PRAGMA user_version").fetchone()
        if version > _SCHEMA_VERSION:
            msg = f"database schema version {version} is newer than this code ({_SCHEMA_VERSION})"
            raise RuntimeError(msg)
        db.executescript(_SCHEMA)
        db.execute(f"PRAGMA user_version = {_SCHEMA_VERSION}")

    def close(self) -> None:
        """Close the connection."""
        with self._lock:
            self._db.close()

    # -- orders ---------------------------------------------------------------------------

    def list_orders(self, owner: str) -> list[Order]:
        """Every order of ``owner``, oldest first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT id, items, note, created_at FROM orders WHERE owner = ? ORDER BY id",
                (owner,),
            ).fetchall()
        return [_order(row) for row in rows]

    def get_order(self, owner: str, order_id: int) -> Order | None:
        """The order if ``owner`` placed it, else ``None``."""
        if not 0 < order_id <= SQLITE_MAX_INTEGER:  # sqlite3 raises OverflowError beyond
            return None
        with self._lock:
            row = self._db.execute(
                "SELECT id, items, note, created_at FROM orders WHERE id = ? AND owner = ?",
                (order_id, owner),
            ).fetchone()
        return None if row is None else _order(row)

    def create_order(self, owner: str, items: Sequence[OrderItem], note: str | None) -> Order:
        """Record a new order of ``owner``."""
        encoded = msgspec.json.encode(list(items)).decode()
        with self._lock:
            row = self._db.execute(
                "INSERT INTO orders (owner, items, note, created_at) VALUES (?, ?, ?, ?)"
                " RETURNING id, items, note, created_at",
                (owner, encoded, note, self._clock()),
            ).fetchone()
        return _order(row)

    # -- products -------------------------------------------------------------------------

    def list_products(self, organization_id: str | None) -> list[Product]:
        """One catalog, oldest first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT id, name, price_cents, organization_id, created_at FROM products"
                " WHERE organization_id IS ? ORDER BY id",
                (organization_id,),
            ).fetchall()
        return [_product(row) for row in rows]

    def create_product(self, organization_id: str | None, name: str, price_cents: int) -> Product:
        """Add a product to one catalog."""
        with self._lock:
            row = self._db.execute(
                "INSERT INTO products (organization_id, name, price_cents, created_at)"
                " VALUES (?, ?, ?, ?) RETURNING id, name, price_cents, organization_id, created_at",
                (organization_id, name, price_cents, self._clock()),
            ).fetchone()
        return _product(row)

    # -- organization members -------------------------------------------------------------

    def record_member(self, organization_id: str, user_id: str) -> None:
        """Remember a member; the first sighting's time is kept."""
        with self._lock:
            self._db.execute(
                "INSERT INTO organization_members (organization_id, user_id, first_seen)"
                " VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
                (organization_id, user_id, self._clock()),
            )

    def list_members(self, organization_id: str) -> list[Member]:
        """The members seen, first seen first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT user_id, first_seen FROM organization_members"
                " WHERE organization_id = ? ORDER BY first_seen, user_id",
                (organization_id,),
            ).fetchall()
        return [Member(user_id=user_id, first_seen=_time(seen)) for user_id, seen in rows]


_ITEMS = msgspec.json.Decoder(list[OrderItem])


def _time(timestamp: float) -> datetime:
    return datetime.fromtimestamp(timestamp, tz=UTC)


def _order(row: tuple[int, str, str | None, float]) -> Order:
    order_id, items, note, created_at = row
    return Order(id=order_id, items=_ITEMS.decode(items), note=note, created_at=_time(created_at))


def _product(row: tuple[int, str, int, str | None, float]) -> Product:
    product_id, name, price_cents, organization_id, created_at = row
    return Product(
        id=product_id,
        name=name,
        price_cents=price_cents,
        organization_id=organization_id,
        created_at=_time(created_at),
    )
