"""Fixtures of the service-layer tests: settings over a temporary SQLite file, a seeded store,
and the app from ``create_app`` served by ``AsyncTestClient`` (the shared kit — clock, respx
issuer, HTTP client — comes from ``tests/conftest.py``); and ``open_store``, which opens a store
of each implementation (SQLite, and PostgreSQL on a real server) for the store test suite."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import httpx
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from resource_api.app import create_app
from resource_api.postgres_store import PostgresStore
from resource_api.settings import Settings, load_settings
from resource_api.storage import OrderItem, SqliteStore, Store
from tests.resource_api.helpers import bearer
from tests.support import ENDPOINT, FakeClock, FakeIssuer

Client = AsyncTestClient[Litestar]
OpenStore = Callable[[], Awaitable[Store]]
STORE_KINDS = ("sqlite", "postgres")


@pytest.fixture
def database(tmp_path: Path) -> Path:
    """A SQLite file in a directory that does not exist yet."""
    return tmp_path / "data" / "resource_api.sqlite3"


@pytest.fixture
def environ(database: Path) -> dict[str, str]:
    """The environment of a test deployment; tests add variables to it."""
    return {"LOGTO_ENDPOINT": ENDPOINT, "RESOURCE_API_DATABASE": str(database)}


@pytest.fixture
def settings(environ: dict[str, str]) -> Settings:
    """Settings loaded from ``environ``."""
    return load_settings(environ)


@pytest.fixture
async def store(database: Path, clock: FakeClock) -> AsyncIterator[SqliteStore]:
    """A store holding alice's order 1, a global product and one product of acme."""
    sqlite_store = SqliteStore(database, clock=clock)
    await sqlite_store.create_order("user-alice", [OrderItem(sku="tea", quantity=1)], "first")
    await sqlite_store.create_product(None, "Global tea", 450)
    await sqlite_store.create_product("acme", "Acme coffee", 900)
    yield sqlite_store
    await sqlite_store.close()


@pytest.fixture(params=STORE_KINDS)
def store_kind(request: pytest.FixtureRequest) -> str:
    """Which implementation of the store the test runs against."""
    kind: str = request.param
    return kind


@pytest.fixture
async def open_store(
    store_kind: str, tmp_path: Path, clock: FakeClock, request: pytest.FixtureRequest
) -> AsyncIterator[OpenStore]:
    """``await open_store()``: a store of ``store_kind`` on this test's own database (empty at
    first; every call opens another store on the same database, as another replica or a
    restart would). Every store opened is closed at the end."""
    opened: list[Store] = []
    if store_kind == "sqlite":
        path = tmp_path / "store" / "api.sqlite3"

        async def open_sqlite() -> Store:
            opened.append(SqliteStore(path, clock=clock))
            return opened[-1]

        opener: OpenStore = open_sqlite
    else:
        url: str = request.getfixturevalue("postgres_url")

        async def open_postgres() -> Store:
            opened.append(await PostgresStore.open(url, clock=clock))
            return opened[-1]

        opener = open_postgres
    yield opener
    for each in opened:
        await each.close()


@pytest.fixture
def app(
    settings: Settings,
    http_client: httpx.AsyncClient,
    clock: FakeClock,
    issuer: FakeIssuer,
    store: SqliteStore,
) -> Litestar:
    """The resource API around the seeded store and the respx issuer."""
    return create_app(settings, http_client=http_client, clock=clock, store=store)


@pytest.fixture
async def client(app: Litestar) -> AsyncIterator[Client]:
    """A test client with the app started (lifespan run)."""
    async with AsyncTestClient(app) as test_client:
        yield test_client


@pytest.fixture
def auth(issuer: FakeIssuer) -> Callable[..., dict[str, str]]:
    """``auth(aud=..., scope=..., sub=...)``: the header of a token the issuer signed."""

    def header(**claims: object) -> dict[str, str]:
        return bearer(issuer.sign(**claims))

    return header
