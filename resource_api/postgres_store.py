""":class:`~resource_api.storage.Store` on PostgreSQL: several API replicas on one database.

asyncpg with its pool, chosen over psycopg 3 (async, with ``psycopg_pool``) by measurement on
these very operations: 18 % (a list) to 39 % (a keyed order creation) less CPU in the API
process (``bench/README.md``, "PostgreSQL driver"). asyncpg ships no type information: its
values are ``Any`` here, and every row is converted into this package's typed structs at once.
Every query is awaited, so the event loop serves other requests meanwhile.

* Start-up (:meth:`PostgresStore.open`) applies the versioned migrations of
  :mod:`resource_api.postgres_schema` under an advisory lock, then opens the pool.
* Durability: writes commit with the server's ``synchronous_commit`` (``on`` by default: the
  commit is flushed to the WAL before a ``201`` leaves). Claiming an idempotency key commits
  with ``synchronous_commit = off`` for that one transaction, as SQLite's store claims with
  ``synchronous = NORMAL``: a claim lost to a crash left nothing behind, and the write that
  answers the key flushes the WAL past it.
* Ownership and idempotency: the same rules and SQL shapes as the SQLite store; the answer to
  a key is recorded in the write's transaction.
* A database that cannot be reached (refused, restarting, no connection free within
  :data:`ACQUIRE_TIMEOUT_SECONDS`) raises :class:`~resource_api.storage.StoreUnavailable`;
  the pool replaces broken connections by itself, so the API recovers without a restart.
* The connection string is a secret: it is never logged, and neither are the driver's
  messages (only the error's type is kept).
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any, Final, Self, TypeVar

import asyncpg
import msgspec

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
from .postgres_schema import migrate
from .storage import (
    MAX_ID,
    PURGE_INTERVAL_SECONDS,
    Member,
    Order,
    OrderItem,
    Product,
    Store,
    StoreUnavailable,
    order_from_row,
    product_from_row,
    time_from_epoch,
)

_Row = TypeVar("_Row")
Connection = Any  # asyncpg.Connection (untyped)

POOL_MIN_SIZE: Final = 2
POOL_MAX_SIZE: Final = 10
"""Connections per API process: with N replicas (times their worker processes) the database
needs N x this many connections (PostgreSQL's default ``max_connections`` is 100)."""
ACQUIRE_TIMEOUT_SECONDS: Final = 3.0
"""How long a request waits for a connection before it is answered 503."""
CONNECT_TIMEOUT_SECONDS: Final = 3.0
"""How long opening one connection may take."""
START_TIMEOUT_SECONDS: Final = 30.0
"""How long start-up waits for the database (migrations, the pool's first connections)."""


class PostgresStore(Store):
    """:class:`~resource_api.storage.Store` on a PostgreSQL database (``postgresql://`` URL);
    open it with :meth:`open`."""

    db_system = "postgresql"

    def __init__(self, pool: asyncpg.Pool, *, clock: Callable[[], float]) -> None:
        self._pool = pool
        self._clock = clock
        self._next_purge = 0.0

    @classmethod
    async def open(
        cls,
        url: str,
        *,
        clock: Callable[[], float] = time.time,
        min_size: int = POOL_MIN_SIZE,
        max_size: int = POOL_MAX_SIZE,
        start_timeout: float = START_TIMEOUT_SECONDS,
    ) -> Self:
        """Migrate the database at ``url``, then open a pool of connections to it; raise
        :class:`~resource_api.storage.StoreUnavailable` if it cannot be reached within
        ``start_timeout`` seconds (retrying meanwhile: replicas may start before it)."""
        deadline = time.monotonic() + start_timeout
        while True:
            try:
                connection = await asyncpg.connect(url, timeout=CONNECT_TIMEOUT_SECONDS)
                try:
                    await migrate(connection)
                finally:
                    await connection.close()
                pool = await asyncpg.create_pool(
                    url,
                    min_size=min_size,
                    max_size=max_size,
                    timeout=CONNECT_TIMEOUT_SECONDS,
                )
            except UNREACHABLE as exc:
                if time.monotonic() > deadline:
                    raise _unavailable(exc) from None
                await asyncio.sleep(0.5)
            else:
                return cls(pool, clock=clock)

    async def close(self) -> None:
        """Close every connection of the pool (waiting for those in use to be released)."""
        await self._pool.close()

    # -- orders ---------------------------------------------------------------------------

    async def list_orders(self, owner: str) -> list[Order]:
        """Every order of ``owner``, oldest first."""
        rows = await self._fetch_all(
            "SELECT id, items, note, created_at FROM orders WHERE owner = $1 ORDER BY id", owner
        )
        return [order_from_row(row) for row in rows]

    async def get_order(self, owner: str, order_id: int) -> Order | None:
        """The order if ``owner`` placed it, else ``None``."""
        if not 0 < order_id <= MAX_ID:  # beyond BIGINT: no such order
            return None
        rows = await self._fetch_all(
            "SELECT id, items, note, created_at FROM orders WHERE id = $1 AND owner = $2",
            order_id,
            owner,
        )
        return order_from_row(rows[0]) if rows else None

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
        return await self._insert(
            "INSERT INTO orders (owner, items, note, created_at) VALUES ($1, $2, $3, $4)"
            " RETURNING id, items, note, created_at",
            (owner, encoded, note, self._clock()),
            order_from_row,
            idempotency,
        )

    # -- products -------------------------------------------------------------------------

    async def list_products(self, organization_id: str | None) -> list[Product]:
        """One catalog, oldest first."""
        rows = await self._fetch_all(
            "SELECT id, name, price_cents, organization_id, created_at FROM products"
            " WHERE organization_id IS NOT DISTINCT FROM $1 ORDER BY id",
            organization_id,
        )
        return [product_from_row(row) for row in rows]

    async def create_product(
        self,
        organization_id: str | None,
        name: str,
        price_cents: int,
        *,
        idempotency: Claimed | None = None,
    ) -> Product:
        """Add a product to one catalog (and, with ``idempotency``, its key's answer)."""
        return await self._insert(
            "INSERT INTO products (organization_id, name, price_cents, created_at)"
            " VALUES ($1, $2, $3, $4) RETURNING id, name, price_cents, organization_id, created_at",
            (organization_id, name, price_cents, self._clock()),
            product_from_row,
            idempotency,
        )

    async def _insert(
        self,
        sql: str,
        parameters: tuple[object, ...],
        convert: Callable[[Any], _Row],
        idempotency: Claimed | None,
    ) -> _Row:
        """One ``INSERT ... RETURNING``; with ``idempotency``, in one transaction with the
        key's answer (the row as JSON), committed together or not at all."""
        async with self._connection() as connection:
            if idempotency is None:
                return convert(await connection.fetchrow(sql, *parameters))
            async with connection.transaction():
                created = convert(await connection.fetchrow(sql, *parameters))
                request = idempotency.request
                answered = await connection.execute(
                    "UPDATE idempotency_keys SET body = $1, claim = NULL, claimed_until = NULL"
                    " WHERE subject = $2 AND route = $3 AND key = $4 AND claim = $5",
                    msgspec.json.encode(created),
                    request.subject,
                    request.route,
                    request.key,
                    idempotency.token,
                )
                if answered != "UPDATE 1":
                    raise ClaimLost
            return created

    # -- idempotency keys -----------------------------------------------------------------

    async def claim_idempotency_key(self, request: IdempotentRequest) -> Claim:
        """Claim the key, or say why not (see :meth:`Store.claim_idempotency_key`).

        One statement claims a free key (unknown, expired, or abandoned) or, when the key is
        live, locks its row; the row is then read in the same transaction to say why not."""
        now = self._clock()
        claimed = Claimed(request, secrets.token_hex(16))
        key = (request.subject, request.route, request.key)
        async with self._connection() as connection, connection.transaction():
            await connection.execute("SET LOCAL synchronous_commit = off")
            if now >= self._next_purge:
                self._next_purge = now + PURGE_INTERVAL_SECONDS
                await connection.execute("DELETE FROM idempotency_keys WHERE expires_at <= $1", now)
            won = await connection.fetchrow(
                "INSERT INTO idempotency_keys AS k (subject, route, key, fingerprint, claim,"
                " claimed_until, body, expires_at) VALUES ($1, $2, $3, $4, $5, $6, NULL, $7)"
                " ON CONFLICT (subject, route, key) DO UPDATE SET"
                " fingerprint = excluded.fingerprint, claim = excluded.claim,"
                " claimed_until = excluded.claimed_until, body = NULL,"
                " expires_at = excluded.expires_at"
                " WHERE k.expires_at <= $8 OR (k.body IS NULL AND k.claimed_until <= $8)"
                " RETURNING claim",
                *key,
                request.fingerprint,
                claimed.token,
                now + CLAIM_SECONDS,
                now + RETENTION_SECONDS,
                now,
            )
            if won is not None:
                return claimed
            row = await connection.fetchrow(
                "SELECT fingerprint, body FROM idempotency_keys"
                " WHERE subject = $1 AND route = $2 AND key = $3",
                *key,
            )
        if row is None:  # pragma: no cover - the conflicting row is locked until commit
            return InFlight()
        fingerprint, body = row
        if fingerprint != request.fingerprint:
            return KeyReused()
        return Replay(bytes(body)) if body is not None else InFlight()

    async def release_idempotency_key(self, claimed: Claimed) -> None:
        """Forget an unanswered claim that is still ours."""
        request = claimed.request
        async with self._connection() as connection:
            await connection.execute(
                "DELETE FROM idempotency_keys WHERE subject = $1 AND route = $2 AND key = $3"
                " AND claim = $4",
                request.subject,
                request.route,
                request.key,
                claimed.token,
            )

    # -- organization members -------------------------------------------------------------

    async def record_member(self, organization_id: str, user_id: str) -> None:
        """Remember a member; the first sighting's time is kept."""
        async with self._connection() as connection:
            await connection.execute(
                "INSERT INTO organization_members (organization_id, user_id, first_seen)"
                " VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
                organization_id,
                user_id,
                self._clock(),
            )

    async def list_members(self, organization_id: str) -> list[Member]:
        """The members seen, first seen first."""
        rows = await self._fetch_all(
            "SELECT user_id, first_seen FROM organization_members"
            " WHERE organization_id = $1 ORDER BY first_seen, user_id",
            organization_id,
        )
        return [Member(user_id=user_id, first_seen=time_from_epoch(seen)) for user_id, seen in rows]

    # -- connections ----------------------------------------------------------------------

    async def _fetch_all(self, sql: str, *parameters: object) -> list[Any]:
        """The rows (``asyncpg.Record``: unpacked like tuples by the converters)."""
        async with self._connection() as connection:
            rows: list[Any] = await connection.fetch(sql, *parameters)
            return rows

    @contextlib.asynccontextmanager
    async def _connection(self) -> AsyncIterator[Connection]:
        """A connection of the pool; a database that cannot be reached (no connection within
        :data:`ACQUIRE_TIMEOUT_SECONDS`, refused, or lost mid-query) raises
        :class:`~resource_api.storage.StoreUnavailable`. The pool replaces a connection the
        server closed when it is next acquired, so the store recovers by itself."""
        try:
            # asyncio.timeout rather than acquire(timeout=...): the latter runs the acquisition
            # in a task of its own (asyncio.wait_for), a quarter of a list query's cost here.
            async with asyncio.timeout(ACQUIRE_TIMEOUT_SECONDS):
                connection = await self._pool.acquire()
            try:
                yield connection
            except UNREACHABLE:
                # Never hand this connection out again: a session the server ended mid-query
                # can leave asyncpg's protocol state corrupt (InternalClientError on its next
                # query: MagicStack/asyncpg#1069); the pool opens a fresh one in its place.
                connection.terminate()
                raise
            finally:
                await self._pool.release(connection)
        except UNREACHABLE as exc:
            raise _unavailable(exc) from None


UNREACHABLE: Final = (
    OSError,  # refused, reset, no route (ConnectionError and friends)
    TimeoutError,  # no connection free, or none opened, in time
    asyncpg.PostgresConnectionError,  # SQLSTATE class 08, and a connection lost mid-query
    asyncpg.CannotConnectNowError,  # the server is starting or shutting down
    asyncpg.AdminShutdownError,  # ... and ended this session
    asyncpg.CrashShutdownError,
    asyncpg.TooManyConnectionsError,
    asyncpg.InterfaceError,  # a connection already closed (the server went away meanwhile)
    asyncpg.InternalClientError,  # a connection whose session the server ended mid-operation
)
"""The driver's errors that mean "the database cannot be reached right now" (503)."""


def _unavailable(exc: BaseException) -> StoreUnavailable:
    """The error the API answers 503, naming the driver's error type but not its message
    (the driver's messages may name the host and user)."""
    return StoreUnavailable(f"the database cannot be reached ({type(exc).__name__})")
