"""The demo data behind the routes: orders, store products and organization members.

:class:`Store` is the seam: handlers depend on it and await its methods. :class:`SqliteStore`
implements it with the standard library's ``sqlite3`` (one WAL-mode connection, data survives
restarts; the embedded default), :class:`~resource_api.postgres_store.PostgresStore` with
PostgreSQL (``DATABASE_URL``: several API replicas on one database). A store that cannot reach
its database raises :class:`StoreUnavailable`, which the API answers 503 with ``Retry-After``.

Ownership rules live here, not in handlers: an order belongs to the token's ``sub`` and every
order query is filtered by it, so a caller can neither see nor learn of another's order.

Idempotency keys (:mod:`resource_api.idempotency`) live here too: a store claims a key, and
records the answer to the write in the same transaction as the write, so a crash can leave
neither an order without its key's answer nor an answer without its order.
"""

from __future__ import annotations

import abc
import contextlib
import secrets
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, ClassVar, Final, TypeVar

import msgspec
from msgspec import Meta

from .idempotency import (
    CLAIM_SECONDS,
    RETENTION_SECONDS,
    Claim,
    Claimed,
    ClaimLost,
    IdempotentRequest,
    InFlight,
    KeyReused,
    Replay,
)
from .sqlite_changes import WalChanges

MAX_ID: Final = 2**63 - 1
"""The largest id a store hands out (a signed 64-bit integer in both SQLite and PostgreSQL)."""
_Row = TypeVar("_Row")
_Answer = TypeVar("_Answer")
BUSY_SECONDS: Final = 2.0
"""How long a :class:`SqliteStore` waits for a lock another connection holds before it fails
(its busy timeout). Opening the file retries the switch to WAL mode for as long; a last try
that SQLite's busy handler makes wait can add up to as much again."""
READ_CACHE_ENTRIES: Final = 4096
"""Read answers a :class:`SqliteStore` keeps while its database is unchanged."""
_SCHEMA_VERSION: Final = 2  # 2: idempotency_keys
PURGE_INTERVAL_SECONDS: Final = 300.0
"""Expired idempotency keys are deleted at most this often (by the next claim)."""
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
CREATE TABLE IF NOT EXISTS idempotency_keys (
    subject TEXT NOT NULL,                 -- the token's sub: keys are per subject ...
    route TEXT NOT NULL,                   -- ... and per route
    key TEXT NOT NULL,
    fingerprint TEXT NOT NULL,             -- SHA-256 of the request body (canonical JSON)
    claim TEXT,                            -- the request processing it; NULL once answered
    claimed_until REAL,                    -- an unanswered claim older than this was abandoned
    body BLOB,                             -- the answer (201) once given
    expires_at REAL NOT NULL,
    PRIMARY KEY (subject, route, key)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS idempotency_keys_by_expiry ON idempotency_keys (expires_at);
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


class StoreUnavailable(Exception):
    """The store cannot reach its database right now (down, restarting, unreachable, out of
    connections): the request may succeed if retried shortly. The message is safe to log (it
    never carries the connection string)."""


class Store(abc.ABC):
    """What the routes need from a data store; every method is a coroutine, so that a store on
    a network database never blocks the event loop.

    An abstract base class rather than a ``Protocol``: Litestar checks every injected
    dependency with ``isinstance()`` on every request, and ``isinstance`` against a
    runtime-checkable protocol walks its members each time (about 15 µs, a quarter of a
    ``GET /shopping/orders``), where an ABC answers from its cache."""

    db_system: ClassVar[str]
    """The database's OpenTelemetry ``db.system.name`` (store spans carry it)."""

    @abc.abstractmethod
    async def list_orders(self, owner: str) -> list[Order]:
        """Every order of ``owner``, oldest first."""
        ...

    @abc.abstractmethod
    async def get_order(self, owner: str, order_id: int) -> Order | None:
        """The order ``order_id`` if ``owner`` placed it; ``None`` otherwise (even if it
        exists: another subject's order is indistinguishable from a missing one)."""
        ...

    @abc.abstractmethod
    async def create_order(
        self,
        owner: str,
        items: Sequence[OrderItem],
        note: str | None,
        *,
        idempotency: Claimed | None = None,
    ) -> Order:
        """Record a new order of ``owner``; with ``idempotency``, record the order as the
        claimed key's answer in the same transaction (:class:`ClaimLost`, and nothing written,
        if the key is no longer ours)."""
        ...

    @abc.abstractmethod
    async def list_products(self, organization_id: str | None) -> list[Product]:
        """The global catalog (``None``) or one organization's catalog, oldest first."""
        ...

    @abc.abstractmethod
    async def create_product(
        self,
        organization_id: str | None,
        name: str,
        price_cents: int,
        *,
        idempotency: Claimed | None = None,
    ) -> Product:
        """Add a product to the global catalog (``None``) or to an organization's catalog;
        ``idempotency`` as for :meth:`create_order`."""
        ...

    @abc.abstractmethod
    async def claim_idempotency_key(self, request: IdempotentRequest) -> Claim:
        """Look the key up and claim it if it is free (unknown, expired, or abandoned by a
        claim older than :data:`~resource_api.idempotency.CLAIM_SECONDS`): :class:`Claimed`;
        answered before for the same body: :class:`Replay`; used with another body:
        :class:`KeyReused`; claimed by a request still in progress: :class:`InFlight`. Keys
        expire :data:`~resource_api.idempotency.RETENTION_SECONDS` after their claim, and
        expired keys are purged."""
        ...

    @abc.abstractmethod
    async def release_idempotency_key(self, claimed: Claimed) -> None:
        """Give up a claim whose write failed, so that a retry with the key can proceed."""
        ...

    @abc.abstractmethod
    async def record_member(self, organization_id: str, user_id: str) -> None:
        """Remember that ``user_id`` is a member of the organization (idempotent)."""
        ...

    @abc.abstractmethod
    async def list_members(self, organization_id: str) -> list[Member]:
        """The members seen for the organization, in the order they were first seen."""
        ...

    @abc.abstractmethod
    async def close(self) -> None:
        """Release the store's resources."""
        ...


def _switch_to_wal(db: sqlite3.Connection, *, deadline: float) -> None:
    """Put ``db`` in WAL mode, waiting until ``deadline`` (a ``time.monotonic()``) for locks.

    On a database still in rollback-journal mode (a new file) the switch reads the file, then
    takes the exclusive lock: if another connection holds the write lock meanwhile (another
    worker creating the same file), that upgrade is refused at once, as a deadlock, without
    the busy timeout's wait. So the switch is retried here until the deadline.
    """
    while True:
        try:
            db.execute("PRAGMA journal_mode = WAL")
        except sqlite3.OperationalError as error:
            code = getattr(error, "sqlite_errorcode", 0)  # absent on errors of the module's own
            busy = code & 0xFF == sqlite3.SQLITE_BUSY
            if not busy or time.monotonic() >= deadline:
                raise
            time.sleep(0.002)
        else:
            return


class SqliteStore(Store):
    """:class:`Store` on one SQLite file (or ``":memory:"``).

    The methods are coroutines (the seam's), but run their query synchronously on the calling
    thread, the event loop included, without awaiting: each is a point lookup or a single-row
    write on a local file, which takes microseconds (the synced commit of a write about a
    millisecond), less than handing the call to a worker thread and back would cost. One
    connection serves every request; the lock keeps it safe should a caller use it from
    several threads. The constructor opens the file (and prepares the schema) synchronously.

    Read answers are kept while the database is unchanged (:meth:`_read`,
    :mod:`resource_api.sqlite_changes`): a repeated read does not reach SQLite at all.
    """

    db_system = "sqlite"

    def __init__(
        self,
        path: str | Path,
        *,
        clock: Callable[[], float] = time.time,
        read_cache: bool = True,
    ) -> None:
        """Open (and create, and migrate) the database at ``path``. ``read_cache``: keep the
        answers of read queries while the database is unchanged (:meth:`_read`)."""
        self._clock = clock
        self._next_purge = 0.0
        in_memory = str(path) == ":memory:"
        if not in_memory:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        # isolation_level=None: autocommit; every write below is one atomic statement.
        # timeout: another process holding the write lock (a second replica or worker on the
        # same file) makes a write wait (SQLite's busy timeout); keep that bounded, since it
        # blocks the event loop meanwhile.
        self._db = sqlite3.connect(
            path, timeout=BUSY_SECONDS, check_same_thread=False, isolation_level=None
        )
        self._lock = threading.Lock()
        self._shm: WalChanges | None = None  # kept open until the connection closes
        self._read_cache = False  # whether _shm's header can be trusted
        self._seen: bytes = b""  # the wal-index header the cached answers were read under
        self._answers: dict[tuple[object, ...], object] = {}
        try:
            self._prepare(watch=read_cache and not in_memory)
        except BaseException:
            self._db.close()
            shm: WalChanges | None = self._shm  # set by _open_wal_index, maybe
            if shm is not None:
                shm.close()
            raise

    def _prepare(self, *, watch: bool) -> None:
        """Set the connection up, create or migrate the schema; with ``watch``, map the
        wal-index header for :meth:`_read` if it can be trusted (:meth:`_open_wal_index`)."""
        db = self._db
        # WAL: readers never block the writer.
        _switch_to_wal(db, deadline=time.monotonic() + BUSY_SECONDS)
        # FULL: every commit syncs the write-ahead log before it returns, so a write the API
        # has acknowledged survives a power loss or an OS crash, not only a crash of this
        # process (NORMAL syncs only at checkpoints). Costs one fsync per write; reads are
        # unaffected (see the README's "What 201 Created promises").
        db.execute("PRAGMA synchronous = FULL")
        (version,) = db.execute("PRAGMA user_version").fetchone()
        if version > _SCHEMA_VERSION:
            msg = f"database schema version {version} is newer than this code ({_SCHEMA_VERSION})"
            raise RuntimeError(msg)
        db.executescript(_SCHEMA)
        shm = self._open_wal_index() if watch else None
        before = shm.header() if shm is not None else b""
        db.execute(f"PRAGMA user_version = {_SCHEMA_VERSION}")  # a commit, on every open
        # Trusted only if that commit changed the header: otherwise it is not the wal-index
        # SQLite writes (a stale -shm file, exclusive locking, ...) and every read queries.
        self._read_cache = shm is not None and shm.header() != before

    def _open_wal_index(self) -> WalChanges | None:
        """The wal-index of the file SQLite actually opened (symbolic links resolved), if the
        database is in WAL mode and the ``-shm`` file holds one; kept in ``_shm`` to be closed
        after the connection."""
        (mode,) = self._db.execute("PRAGMA journal_mode").fetchone()
        (_, _, filename) = self._db.execute("PRAGMA database_list").fetchone()
        if mode != "wal" or not filename:
            return None
        try:
            shm = self._shm = WalChanges(Path(f"{filename}-shm"))
        except OSError:
            return None
        return shm if shm.usable else None

    async def close(self) -> None:
        """Close the connection (synchronously: a local file), then the wal-index map: closing
        its descriptor first would drop the connection's locks on the file."""
        with self._lock:
            self._read_cache = False
            self._answers.clear()
            self._db.close()
            if self._shm is not None:
                self._shm.close()
                self._shm = None

    def _read(self, key: tuple[object, ...], query: Callable[[], _Answer]) -> _Answer:
        """``query()``'s answer, or the one it gave for ``key`` before if the database has not
        changed since (any commit, by any connection in any process, changes the wal-index
        header :class:`~resource_api.sqlite_changes.WalChanges` reads). The header is read
        before the query: a commit landing in between only makes the next read query again.
        An answer is shared by every caller that gets it: tuples of frozen structs, which no
        caller changes (an order's ``items`` list included). At most
        :data:`READ_CACHE_ENTRIES` are kept, and a change drops them all."""
        with self._lock:
            shm = self._shm
            if not self._read_cache or shm is None:
                return query()
            header = shm.header()
            answers = self._answers
            if header == self._seen:
                if key in answers:
                    return answers[key]  # type: ignore[return-value]  # stored by this key's query
            else:
                answers.clear()
                self._seen = header
            answer = query()
            if len(answers) >= READ_CACHE_ENTRIES:
                del answers[next(iter(answers))]  # first in, first out
            answers[key] = answer
            return answer

    # -- orders ---------------------------------------------------------------------------

    async def list_orders(self, owner: str) -> list[Order]:
        """Every order of ``owner``, oldest first."""

        def query() -> tuple[Order, ...]:
            rows = self._db.execute(
                "SELECT id, items, note, created_at FROM orders WHERE owner = ? ORDER BY id",
                (owner,),
            ).fetchall()
            return tuple(order_from_row(row) for row in rows)

        return list(self._read(("orders", owner), query))

    async def get_order(self, owner: str, order_id: int) -> Order | None:
        """The order if ``owner`` placed it, else ``None``."""
        if not 0 < order_id <= MAX_ID:  # sqlite3 raises OverflowError beyond
            return None

        def query() -> Order | None:
            row = self._db.execute(
                "SELECT id, items, note, created_at FROM orders WHERE id = ? AND owner = ?",
                (order_id, owner),
            ).fetchone()
            return None if row is None else order_from_row(row)

        return self._read(("order", owner, order_id), query)

    async def create_order(
        self,
        owner: str,
        items: Sequence[OrderItem],
        note: str | None,
        *,
        idempotency: Claimed | None = None,
    ) -> Order:
        """Record a new order of ``owner`` (and, with ``idempotency``, its key's answer)."""
        encoded = msgspec.json.encode(list(items)).decode()
        return self._insert(
            "INSERT INTO orders (owner, items, note, created_at) VALUES (?, ?, ?, ?)"
            " RETURNING id, items, note, created_at",
            (owner, encoded, note, self._clock()),
            order_from_row,
            idempotency,
        )

    # -- products -------------------------------------------------------------------------

    async def list_products(self, organization_id: str | None) -> list[Product]:
        """One catalog, oldest first."""

        def query() -> tuple[Product, ...]:
            rows = self._db.execute(
                "SELECT id, name, price_cents, organization_id, created_at FROM products"
                " WHERE organization_id IS ? ORDER BY id",
                (organization_id,),
            ).fetchall()
            return tuple(product_from_row(row) for row in rows)

        return list(self._read(("products", organization_id), query))

    async def create_product(
        self,
        organization_id: str | None,
        name: str,
        price_cents: int,
        *,
        idempotency: Claimed | None = None,
    ) -> Product:
        """Add a product to one catalog (and, with ``idempotency``, its key's answer)."""
        return self._insert(
            "INSERT INTO products (organization_id, name, price_cents, created_at)"
            " VALUES (?, ?, ?, ?) RETURNING id, name, price_cents, organization_id, created_at",
            (organization_id, name, price_cents, self._clock()),
            product_from_row,
            idempotency,
        )

    def _insert(
        self,
        sql: str,
        parameters: tuple[object, ...],
        convert: Callable[[Any], _Row],
        idempotency: Claimed | None,
    ) -> _Row:
        """One ``INSERT ... RETURNING``; with ``idempotency``, in one transaction with the
        key's answer (the row as JSON), committed together or not at all."""
        with self._lock:
            if idempotency is None:
                return convert(self._db.execute(sql, parameters).fetchone())
            with self._transaction():
                created = convert(self._db.execute(sql, parameters).fetchone())
                request = idempotency.request
                answered = self._db.execute(
                    "UPDATE idempotency_keys SET body = ?, claim = NULL, claimed_until = NULL"
                    " WHERE subject = ? AND route = ? AND key = ? AND claim = ?",
                    (
                        msgspec.json.encode(created),
                        request.subject,
                        request.route,
                        request.key,
                        idempotency.token,
                    ),
                )
                if answered.rowcount != 1:
                    raise ClaimLost
            return created

    # -- idempotency keys -----------------------------------------------------------------

    async def claim_idempotency_key(self, request: IdempotentRequest) -> Claim:
        """Claim the key, or say why not (see :meth:`Store.claim_idempotency_key`)."""
        now = self._clock()
        # Not synced (a claim lost to a power cut left nothing behind); the write's synced
        # commit that answers the key syncs it too (WAL frames are synced in order).
        with self._lock, self._transaction(durable=False):
            if now >= self._next_purge:
                self._db.execute("DELETE FROM idempotency_keys WHERE expires_at <= ?", (now,))
                self._next_purge = now + PURGE_INTERVAL_SECONDS
            row = self._db.execute(
                "SELECT fingerprint, claimed_until, body FROM idempotency_keys"
                " WHERE subject = ? AND route = ? AND key = ? AND expires_at > ?",
                (request.subject, request.route, request.key, now),
            ).fetchone()
            if row is not None:
                fingerprint, claimed_until, body = row
                if body is not None:
                    same = fingerprint == request.fingerprint
                    return Replay(bytes(body)) if same else KeyReused()
                if claimed_until > now:
                    return InFlight() if fingerprint == request.fingerprint else KeyReused()
            claimed = Claimed(request, secrets.token_hex(16))
            self._db.execute(
                "INSERT INTO idempotency_keys (subject, route, key, fingerprint, claim,"
                " claimed_until, body, expires_at) VALUES (?, ?, ?, ?, ?, ?, NULL, ?)"
                " ON CONFLICT (subject, route, key) DO UPDATE SET"
                " fingerprint = excluded.fingerprint, claim = excluded.claim,"
                " claimed_until = excluded.claimed_until, body = NULL,"
                " expires_at = excluded.expires_at",
                (
                    request.subject,
                    request.route,
                    request.key,
                    request.fingerprint,
                    claimed.token,
                    now + CLAIM_SECONDS,
                    now + RETENTION_SECONDS,
                ),
            )
            return claimed

    async def release_idempotency_key(self, claimed: Claimed) -> None:
        """Forget an unanswered claim that is still ours."""
        request = claimed.request
        with self._lock:
            self._db.execute(
                "DELETE FROM idempotency_keys WHERE subject = ? AND route = ? AND key = ?"
                " AND claim = ?",
                (request.subject, request.route, request.key, claimed.token),
            )

    @contextlib.contextmanager
    def _transaction(self, *, durable: bool = True) -> Iterator[None]:
        """``BEGIN IMMEDIATE`` ... ``COMMIT`` (``ROLLBACK`` on any exception): takes the write
        lock at once, so a second process on the same file waits (:data:`BUSY_SECONDS`) instead
        of reading a key this transaction is about to claim. ``durable=False`` commits without
        the fsync (``synchronous = NORMAL`` for this one commit)."""
        if not durable:
            self._db.execute("PRAGMA synchronous = NORMAL")
        try:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")
        finally:
            if not durable:
                self._db.execute("PRAGMA synchronous = FULL")

    # -- organization members -------------------------------------------------------------

    async def record_member(self, organization_id: str, user_id: str) -> None:
        """Remember a member; the first sighting's time is kept."""
        with self._lock:
            self._db.execute(
                "INSERT INTO organization_members (organization_id, user_id, first_seen)"
                " VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
                (organization_id, user_id, self._clock()),
            )

    async def list_members(self, organization_id: str) -> list[Member]:
        """The members seen, first seen first."""

        def query() -> tuple[Member, ...]:
            rows = self._db.execute(
                "SELECT user_id, first_seen FROM organization_members"
                " WHERE organization_id = ? ORDER BY first_seen, user_id",
                (organization_id,),
            ).fetchall()
            return tuple(
                Member(user_id=user_id, first_seen=time_from_epoch(seen)) for user_id, seen in rows
            )

        return list(self._read(("members", organization_id), query))


_ITEMS = msgspec.json.Decoder(list[OrderItem])


def time_from_epoch(timestamp: float) -> datetime:
    """The UTC time of seconds since the epoch."""
    return datetime.fromtimestamp(timestamp, tz=UTC)


def order_from_row(row: tuple[int, str, str | None, float]) -> Order:
    """An order from ``(id, items JSON, note, created_at)``."""
    order_id, items, note, created_at = row
    return Order(
        id=order_id, items=_ITEMS.decode(items), note=note, created_at=time_from_epoch(created_at)
    )


def product_from_row(row: tuple[int, str, int, str | None, float]) -> Product:
    """A product from ``(id, name, price_cents, organization_id, created_at)``."""
    product_id, name, price_cents, organization_id, created_at = row
    return Product(
        id=product_id,
        name=name,
        price_cents=price_cents,
        organization_id=organization_id,
        created_at=time_from_epoch(created_at),
    )
