"""The PostgreSQL store's schema, as numbered migrations applied at start-up.

:func:`migrate` runs in one transaction holding a transaction-level advisory lock
(``pg_advisory_xact_lock``), so replicas starting at the same moment apply each migration
exactly once: the first takes the lock and migrates, the others wait for its commit, then find
nothing left to do. Applied versions are recorded in ``schema_migrations``; a database migrated
by newer code (a version this code does not know) is refused rather than written to.

A migration is never edited once released: a change is a new migration appended to
:data:`MIGRATIONS`.
"""

from __future__ import annotations

from typing import Final

import asyncpg

MIGRATION_LOCK: Final = 0x4C6F67746F_01  # "Logto" + 1: this application's advisory lock key
"""The advisory lock key held while migrating (any 64-bit number unique to this schema)."""

MIGRATIONS: Final[tuple[tuple[int, str], ...]] = (
    (
        1,
        """
        CREATE TABLE orders (
            id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,  -- never handed out twice
            owner TEXT NOT NULL,                   -- the token's sub
            items TEXT NOT NULL,                   -- JSON array of {"sku", "quantity"}
            note TEXT,
            created_at DOUBLE PRECISION NOT NULL   -- seconds since the epoch
        );
        CREATE INDEX orders_by_owner ON orders (owner, id);
        CREATE TABLE products (
            id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            organization_id TEXT,                  -- NULL: the global store catalog
            name TEXT NOT NULL,
            price_cents BIGINT NOT NULL,
            created_at DOUBLE PRECISION NOT NULL
        );
        CREATE INDEX products_by_organization ON products (organization_id, id);
        CREATE TABLE organization_members (
            organization_id TEXT NOT NULL,
            user_id TEXT NOT NULL,
            first_seen DOUBLE PRECISION NOT NULL,
            PRIMARY KEY (organization_id, user_id)
        );
        """,
    ),
    (
        2,
        """
        CREATE TABLE idempotency_keys (
            subject TEXT NOT NULL,                 -- the token's sub: keys are per subject ...
            route TEXT NOT NULL,                   -- ... and per route
            key TEXT NOT NULL,
            fingerprint TEXT NOT NULL,             -- SHA-256 of the request body
            claim TEXT,                            -- the request processing it; NULL once answered
            claimed_until DOUBLE PRECISION,        -- an older unanswered claim was abandoned
            body BYTEA,                            -- the answer (201) once given
            expires_at DOUBLE PRECISION NOT NULL,
            PRIMARY KEY (subject, route, key)
        );
        CREATE INDEX idempotency_keys_by_expiry ON idempotency_keys (expires_at);
        """,
    ),
)
"""Every migration, in order: ``(version, SQL)``."""

LATEST_VERSION: Final = MIGRATIONS[-1][0]


class NewerSchema(RuntimeError):
    """The database was migrated by newer code than this."""


async def migrate(connection: asyncpg.Connection) -> list[int]:
    """Bring the database to :data:`LATEST_VERSION` on ``connection`` (an
    ``asyncpg.Connection`` outside a transaction); return the versions applied (none when it
    was already there)."""
    applied: list[int] = []
    async with connection.transaction():
        await connection.execute("SELECT pg_advisory_xact_lock($1)", MIGRATION_LOCK)
        await connection.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " version INTEGER PRIMARY KEY,"
            " applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"
        )
        current: int = await connection.fetchval(
            "SELECT coalesce(max(version), 0) FROM schema_migrations"
        )
        if current > LATEST_VERSION:
            msg = f"database schema version {current} is newer than this code ({LATEST_VERSION})"
            raise NewerSchema(msg)
        for version, sql in MIGRATIONS:
            if version <= current:
                continue
            await connection.execute(sql)  # no arguments: several statements may run
            await connection.execute("INSERT INTO schema_migrations (version) VALUES ($1)", version)
            applied.append(version)
    return applied
