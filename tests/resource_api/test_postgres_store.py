"""What is PostgreSQL's own (the shared behaviour is in ``test_storage.py``, run on both stores):
versioned migrations applied once even when replicas start together, a newer schema refused,
``DATABASE_URL`` selecting the store, and a database that goes away answered 503 with
``Retry-After`` (never 500), the API recovering by itself when it comes back.

Against a real PostgreSQL (``tests/postgres_support.py``); the outage test stops and restarts a
server of its own."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import asyncpg
import httpx
import psycopg
import pytest
from litestar.testing import AsyncTestClient

from demo.launcher import free_port
from resource_api.app import create_app
from resource_api.postgres_schema import LATEST_VERSION, MIGRATIONS, NewerSchema, migrate
from resource_api.postgres_store import PostgresStore
from resource_api.settings import load_settings
from resource_api.storage import OrderItem, StoreUnavailable
from tests import postgres_support
from tests.postgres_support import (
    Databases,
    PostgresServer,
    require_postgres_server,
    start_postgres_server,
)
from tests.resource_api.conftest import Client
from tests.resource_api.helpers import SHOPPING_READ, SHOPPING_WRITE
from tests.support import ENDPOINT, FakeClock, FakeIssuer

Auth = Callable[..., dict[str, str]]
ORDER = {"items": [{"sku": "tea", "quantity": 2}]}
TEA = OrderItem(sku="tea", quantity=1)


def _schema(url: str) -> tuple[list[tuple[object, ...]], list[tuple[object, ...]]]:
    """The recorded versions and the tables with their columns, to compare two states."""
    with psycopg.connect(url) as db:
        versions = db.execute("SELECT version FROM schema_migrations ORDER BY version").fetchall()
        columns = db.execute(
            "SELECT table_name, column_name, data_type FROM information_schema.columns"
            " WHERE table_schema = 'public' ORDER BY table_name, ordinal_position"
        ).fetchall()
    return versions, columns


# -- migrations ---------------------------------------------------------------------------------


async def test_concurrent_start_ups_on_an_empty_database_give_one_schema(
    postgres_url: str,
) -> None:
    """Eight replicas opening the store at once on an empty database all succeed; each
    migration was applied once (the advisory lock serialised them)."""
    stores = await asyncio.gather(*(PostgresStore.open(postgres_url) for _ in range(8)))
    try:
        versions, columns = _schema(postgres_url)
        assert versions == [(version,) for version, _ in MIGRATIONS]
        assert {table for table, _, _ in columns} == {
            "idempotency_keys",
            "orders",
            "organization_members",
            "products",
            "schema_migrations",
        }
        order = await stores[0].create_order("user-alice", [TEA], None)
        assert await stores[-1].get_order("user-alice", order.id) == order
    finally:
        for store in stores:
            await store.close()


async def test_concurrent_migrations_apply_each_version_once(postgres_url: str) -> None:
    """migrate() itself, raced on two connections: one applies everything, the other nothing."""
    connections = [await asyncpg.connect(postgres_url) for _ in range(2)]
    try:
        applied = await asyncio.gather(*(migrate(each) for each in connections))
    finally:
        for each in connections:
            await each.close()
    assert sorted(applied) == [[], [version for version, _ in MIGRATIONS]]


async def test_a_second_start_up_changes_nothing(postgres_url: str) -> None:
    """Opening the store again on a migrated database with data applies no migration and
    leaves schema and data as they were."""
    first = await PostgresStore.open(postgres_url)
    order = await first.create_order("user-alice", [TEA], "kept")
    await first.close()
    before = _schema(postgres_url)
    db = await asyncpg.connect(postgres_url)
    try:
        assert await migrate(db) == []
    finally:
        await db.close()
    second = await PostgresStore.open(postgres_url)
    try:
        assert _schema(postgres_url) == before
        assert await second.list_orders("user-alice") == [order]
    finally:
        await second.close()


async def test_a_database_from_newer_code_is_refused(postgres_url: str) -> None:
    """A version above ours stops the store from opening rather than writing to a schema it
    does not know."""
    await (await PostgresStore.open(postgres_url)).close()  # migrated
    with psycopg.connect(postgres_url, autocommit=True) as db:
        db.execute("INSERT INTO schema_migrations (version) VALUES (%s)", (LATEST_VERSION + 1,))
    with pytest.raises(NewerSchema, match=f"schema version {LATEST_VERSION + 1} is newer"):
        await PostgresStore.open(postgres_url)


# -- DATABASE_URL through the app -----------------------------------------------------------------


async def test_database_url_selects_the_postgresql_store(
    postgres_url: str,
    http_client: httpx.AsyncClient,
    clock: FakeClock,
    issuer: FakeIssuer,
    auth: Auth,
) -> None:
    """With DATABASE_URL set the app opens a PostgresStore at start-up (migrating the empty
    database): an order placed through the API is in PostgreSQL, owned by the token's sub."""
    settings = load_settings({"LOGTO_ENDPOINT": ENDPOINT, "DATABASE_URL": postgres_url})
    app = create_app(settings, http_client=http_client, clock=clock)
    async with AsyncTestClient(app) as client:
        assert isinstance(app.state.store, PostgresStore)
        write = {**SHOPPING_WRITE, "sub": "user-alice"}
        created = await client.post("/shopping/orders", json=ORDER, headers=auth(**write))
        assert created.status_code == 201, created.text
        mine = await client.get("/shopping/orders", headers=auth(**SHOPPING_READ, sub="user-alice"))
        theirs = await client.get(
            f"/shopping/orders/{created.json()['id']}",
            headers=auth(**SHOPPING_READ, sub="user-bob"),
        )
    assert [order["id"] for order in mine.json()["orders"]] == [created.json()["id"]]
    assert theirs.status_code == 404
    with psycopg.connect(postgres_url) as db:
        assert db.execute("SELECT owner FROM orders").fetchall() == [("user-alice",)]


# -- the database goes away and comes back --------------------------------------------------------


@pytest.fixture
def own_server() -> Iterator[PostgresServer]:
    """A PostgreSQL server of this test's own, which it may stop and start."""
    require_postgres_server("(this test stops and restarts a server of its own)")
    server = start_postgres_server()
    try:
        yield server
    finally:
        server.remove()


async def test_an_unreachable_database_is_503_and_the_api_recovers(
    own_server: PostgresServer,
    *,
    http_client: httpx.AsyncClient,
    clock: FakeClock,
    issuer: FakeIssuer,
    auth: Auth,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """PostgreSQL stops while the API runs: reads and writes are answered 503
    temporarily_unavailable with Retry-After (never 500), and the log names neither the
    connection string nor its password; once PostgreSQL is back, the same app (no restart)
    serves again and nothing acknowledged was lost."""
    url = Databases(own_server.url).create().replace("postgres@", "postgres:s3cret-pw@")
    settings = load_settings({"LOGTO_ENDPOINT": ENDPOINT, "DATABASE_URL": url})
    app = create_app(settings, http_client=http_client, clock=clock)
    read = auth(**SHOPPING_READ, sub="user-alice")
    write = auth(**SHOPPING_WRITE, sub="user-alice")
    async with AsyncTestClient(app) as client:
        before = await client.post("/shopping/orders", json=ORDER, headers=write)
        assert before.status_code == 201
        own_server.stop()
        with caplog.at_level(logging.WARNING):
            answers = [
                await client.get("/shopping/orders", headers=read),
                await client.post("/shopping/orders", json=ORDER, headers=write),
                await client.post(
                    "/shopping/orders", json=ORDER, headers={**write, "Idempotency-Key": "k"}
                ),
            ]
        for answer in answers:
            assert (answer.status_code, answer.json()) == (
                503,
                {
                    "error": "temporarily_unavailable",
                    "error_description": "The service is temporarily unavailable; try again "
                    "shortly.",
                },
            )
            assert answer.headers["retry-after"] == "2"
        assert "s3cret-pw" not in caplog.text
        assert url not in caplog.text
        assert any(getattr(r, "event", None) == "store_unavailable" for r in caplog.records)
        own_server.start()
        recovered = await _eventually_ok(client, read)
        assert [order["id"] for order in recovered.json()["orders"]] == [before.json()["id"]]
        after = await client.post("/shopping/orders", json=ORDER, headers=write)
        assert after.status_code == 201


async def _eventually_ok(client: Client, headers: dict[str, str]) -> httpx.Response:
    """The first 200 of ``GET /shopping/orders`` within 10 s (broken pooled connections are
    replaced as they are found); every answer before it must be a 503, never a 500."""
    for _ in range(100):
        response = await client.get("/shopping/orders", headers=headers)
        if response.status_code == 200:
            return response
        assert response.status_code == 503, response.text
        await asyncio.sleep(0.1)
    raise AssertionError("the API did not recover within 10 s")


async def test_start_up_against_an_unreachable_database_fails_without_the_password() -> None:
    """Opening the store on a port nobody listens on gives up with StoreUnavailable, whose
    message names neither the URL nor the password."""
    url = f"postgresql://api:s3cret-pw@127.0.0.1:{free_port()}/orders"
    with pytest.raises(StoreUnavailable) as caught:
        await PostgresStore.open(url, start_timeout=1.0)
    assert "s3cret-pw" not in str(caught.value)
    assert "127.0.0.1" not in str(caught.value)


# -- the test server itself ------------------------------------------------------------------------


def test_a_missing_server_fails_under_ci_and_skips_elsewhere(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Without PostgreSQL's binaries the tests are skipped on a workstation, but under CI they
    fail: a missing server must not turn CI green."""
    monkeypatch.setattr(postgres_support, "server_binaries", lambda: None)
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception):
        postgres_support.require_postgres_server()
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI must run the PostgreSQL tests"):
        postgres_support.require_postgres_server()


def test_the_server_runs_unprivileged(own_server: PostgresServer) -> None:
    """initdb and postgres refuse root: as root the fixture runs them as another user."""
    with psycopg.connect(own_server.url) as db:
        row = db.execute("SELECT pg_backend_pid()").fetchone()
        assert row is not None
        # While connected: the backend process ends with its connection.
        owner = Path(f"/proc/{row[0]}").stat().st_uid
    assert owner != 0
    assert (own_server.user is not None) is (os.geteuid() == 0)
