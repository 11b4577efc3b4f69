"""Which PostgreSQL driver for the store: psycopg 3 (async, ``psycopg_pool``) or asyncpg?

``python -m bench.pg_drivers [--database-url URL] [--rounds 6] [--operations 2000]
[--concurrency 16]``

Both run **the store's real operations** with the same SQL on the same database, side by side
in interleaved rounds (the order alternates each round):

* ``list orders``: ``GET /shopping/orders``' query for a subject with three orders, rows
  decoded into ``Order`` structs as the store does;
* ``create order + key``: ``POST /shopping/orders`` with an ``Idempotency-Key``: the claim
  transaction (``synchronous_commit = off``, upsert of the key), then the write transaction
  (insert the order, record it as the key's answer).

asyncpg's side is :class:`~resource_api.postgres_store.PostgresStore` itself (shipped); psycopg's
is the same statements with psycopg's ``%s`` placeholders on a ``psycopg_pool`` pool of the same
size (the store as it was first written on psycopg).
``--concurrency`` tasks share each pool. Prints operations/s per driver and operation (median
of the rounds, min..max beside it) and the ratio asyncpg/psycopg per round (median).

Without ``--database-url`` it starts a throw-away PostgreSQL on 127.0.0.1 as the tests do
(``tests/postgres_support.py``: ``fsync=off``, so commits cost what the drivers do rather than
what this machine's disk does).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Final

import msgspec
import psycopg
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

from resource_api.idempotency import (
    CLAIM_SECONDS,
    RETENTION_SECONDS,
    Claimed,
    IdempotentRequest,
)
from resource_api.postgres_store import POOL_MAX_SIZE, PostgresStore
from resource_api.storage import Order, OrderItem, Store, StoreUnavailable, order_from_row
from tests.postgres_support import Databases, start_postgres_server

from .common import SUBJECT, header, median, spread

SEEDED_ORDERS: Final = 3
ITEMS: Final = [OrderItem(sku="tea", quantity=2)]
DRIVERS: Final = ("asyncpg", "psycopg")
OPERATIONS: Final = ("list orders", "create order + key")


class PsycopgOperations:
    """The store's two benchmarked operations on psycopg 3, statement for statement (what
    the store ran on before it moved to asyncpg)."""

    def __init__(self, pool: AsyncConnectionPool[AsyncConnection[tuple[Any, ...]]]) -> None:
        self._pool = pool

    @contextlib.asynccontextmanager
    async def _connection(self) -> AsyncIterator[AsyncConnection[tuple[Any, ...]]]:
        """As the store wraps asyncpg's pool: errors of an unreachable database mapped."""
        try:
            async with self._pool.connection() as connection:
                yield connection
        except psycopg.OperationalError as exc:
            raise StoreUnavailable(type(exc).__name__) from None

    async def list_orders(self, owner: str) -> list[Order]:
        """``PostgresStore.list_orders``."""
        async with self._connection() as connection:
            cursor = await connection.execute(
                "SELECT id, items, note, created_at FROM orders WHERE owner = %s ORDER BY id",
                (owner,),
            )
            rows = await cursor.fetchall()
        return [order_from_row(row) for row in rows]

    async def create_with_key(self, owner: str, key: str) -> Order:
        """``claim_idempotency_key`` then ``create_order(..., idempotency=claim)``."""
        now = time.time()
        claim = secrets.token_hex(16)
        async with self._connection() as connection, connection.transaction():
            await connection.execute("SET LOCAL synchronous_commit = off")
            cursor = await connection.execute(
                "INSERT INTO idempotency_keys AS k (subject, route, key, fingerprint, claim,"
                " claimed_until, body, expires_at) VALUES (%s, %s, %s, %s, %s, %s, NULL, %s)"
                " ON CONFLICT (subject, route, key) DO UPDATE SET"
                " fingerprint = excluded.fingerprint, claim = excluded.claim,"
                " claimed_until = excluded.claimed_until, body = NULL,"
                " expires_at = excluded.expires_at"
                " WHERE k.expires_at <= %s OR (k.body IS NULL AND k.claimed_until <= %s)"
                " RETURNING claim",
                (
                    owner,
                    "createOrder",
                    key,
                    "fingerprint",
                    claim,
                    now + CLAIM_SECONDS,
                    now + RETENTION_SECONDS,
                    now,
                    now,
                ),
            )
            if await cursor.fetchone() is None:
                raise RuntimeError("a fresh key was not claimed")
        async with self._connection() as connection, connection.transaction():
            cursor = await connection.execute(
                "INSERT INTO orders (owner, items, note, created_at) VALUES (%s, %s, %s, %s)"
                " RETURNING id, items, note, created_at",
                (owner, msgspec.json.encode(ITEMS).decode(), None, time.time()),
            )
            row = await cursor.fetchone()
            if row is None:
                raise RuntimeError("no order was returned")
            created = order_from_row(row)
            answered = await connection.execute(
                "UPDATE idempotency_keys SET body = %s, claim = NULL, claimed_until = NULL"
                " WHERE subject = %s AND route = %s AND key = %s AND claim = %s",
                (msgspec.json.encode(created), owner, "createOrder", key, claim),
            )
            if answered.rowcount != 1:
                raise RuntimeError("the key's answer was not recorded")
        return created


async def _store_create(store: Store, owner: str, key: str) -> Order:
    claim = await store.claim_idempotency_key(
        IdempotentRequest(owner, "createOrder", key, "fingerprint")
    )
    if not isinstance(claim, Claimed):
        raise RuntimeError("a fresh key was not claimed")  # noqa: TRY004 - a benchmark check
    return await store.create_order(owner, ITEMS, None, idempotency=claim)


async def _rate(
    call: Callable[[], Awaitable[object]], total: int, concurrency: int
) -> tuple[float, float]:
    """Operations per second of ``total`` calls made by ``concurrency`` tasks, and the CPU
    time this process spent per operation (µs): the driver's cost to an API process, which
    the other processes of a busy machine disturb less than the rate."""
    counter = iter(range(total))

    async def worker() -> None:
        for _ in counter:
            await call()

    start, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
    return total / elapsed, cpu / total * 1e6


async def run(url: str, *, rounds: int, operations: int, concurrency: int) -> None:
    """Seed, warm both pools up, then time interleaved rounds and print the table."""
    store = await PostgresStore.open(url, min_size=POOL_MAX_SIZE, max_size=POOL_MAX_SIZE)
    pool: AsyncConnectionPool[AsyncConnection[tuple[Any, ...]]] = AsyncConnectionPool(
        url,
        min_size=POOL_MAX_SIZE,
        max_size=POOL_MAX_SIZE,
        kwargs={"autocommit": True},
        open=False,
    )
    await pool.open(wait=True)
    rival = PsycopgOperations(pool)
    try:
        for _ in range(SEEDED_ORDERS):
            await store.create_order(SUBJECT, ITEMS, "bench order")
        calls = _calls(store, rival)
        rates: dict[tuple[str, str], list[tuple[float, float]]] = {name: [] for name in calls}
        for call in calls.values():  # warm-up (prepared statements, caches), discarded
            await _rate(call, 200, concurrency)
        for index in range(rounds):
            drivers = DRIVERS if index % 2 == 0 else tuple(reversed(DRIVERS))
            for operation in OPERATIONS:
                for driver in drivers:
                    rate = await _rate(calls[driver, operation], operations, concurrency)
                    rates[driver, operation].append(rate)
        _report(rates, rounds=rounds, operations=operations, concurrency=concurrency)
    finally:
        await pool.close()
        await store.close()


def _calls(
    store: PostgresStore, rival: PsycopgOperations
) -> dict[tuple[str, str], Callable[[], Awaitable[object]]]:
    """Each (driver, operation) as a call; every creation uses a key never used before."""
    keys = itertools.count()

    def fresh_key() -> str:
        return f"key-{next(keys)}"

    return {
        ("asyncpg", OPERATIONS[0]): lambda: store.list_orders(SUBJECT),
        ("asyncpg", OPERATIONS[1]): lambda: _store_create(store, "user-writer", fresh_key()),
        ("psycopg", OPERATIONS[0]): lambda: rival.list_orders(SUBJECT),
        ("psycopg", OPERATIONS[1]): lambda: rival.create_with_key("user-writer", fresh_key()),
    }


def _report(
    rates: dict[tuple[str, str], list[tuple[float, float]]],
    *,
    rounds: int,
    operations: int,
    concurrency: int,
) -> None:
    header(
        f"PostgreSQL drivers: {rounds} interleaved rounds x {operations} operations, "
        f"{concurrency} tasks, pools of {POOL_MAX_SIZE}"
    )
    print(
        f"{'operation':<20}{'driver':<9}{'ops/s':>8}{'CPU µs/op':>11}"
        f"{'asyncpg/psycopg ops/s':>26}{'psycopg/asyncpg CPU':>24}"
    )
    for operation in OPERATIONS:
        fast = rates["asyncpg", operation]
        slow = rates["psycopg", operation]
        speed = [a[0] / p[0] for a, p in zip(fast, slow, strict=True)]
        cost = [p[1] / a[1] for a, p in zip(fast, slow, strict=True)]
        for driver in DRIVERS:
            measured = rates[driver, operation]
            line = (
                f"{operation:<20}{driver:<9}{median([m[0] for m in measured]):>8,.0f}"
                f"{median([m[1] for m in measured]):>11.0f}"
            )
            if driver == DRIVERS[0]:
                line += f"{median(speed):>12.2f} ({spread(speed)})"
                line += f"{median(cost):>10.2f} ({spread(cost)})"
            print(line)


def main(argv: list[str] | None = None) -> None:
    """Parse arguments, start a PostgreSQL unless given one, run, stop it."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--database-url", help="an empty database to use (else one is started)")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--operations", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args(argv)
    options = {
        "rounds": args.rounds,
        "operations": args.operations,
        "concurrency": args.concurrency,
    }
    if args.database_url:
        asyncio.run(run(args.database_url, **options))
        return
    server = start_postgres_server()
    try:
        asyncio.run(run(Databases(server.url).create(), **options))
    finally:
        server.remove()


if __name__ == "__main__":
    main()
