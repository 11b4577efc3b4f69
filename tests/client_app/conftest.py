"""Fixtures of the client app's unit tests: settings, a respx-served Logto, the gateway, a
real Redis (``tests/redis_support.py``, the fixture ``redis_url`` of ``tests/conftest.py``).

The tests against the real dev issuer and resource API have their own fixtures in
``test_with_dev_issuer.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import respx
from litestar import Litestar
from litestar.stores.memory import MemoryStore

from client_app.app import create_app
from client_app.gateway import LogtoGateway
from client_app.oidc import LogtoProvider
from client_app.sessions import SessionStore
from client_app.settings import Settings, load_settings
from tests.client_app.fake_logto import CLIENT_ID, CLIENT_SECRET, ENDPOINT, FakeLogto

BASE_URL = "http://127.0.0.1:8000"
API_URL = "https://api.test"
SESSION_SECRET = "test-session-secret-of-at-least-32-characters"


def environment(**overrides: str) -> dict[str, str]:
    """A complete configuration for the respx-served issuer; keyword arguments override."""
    return {
        "LOGTO_ENDPOINT": ENDPOINT,
        "LOGTO_APP_ID": CLIENT_ID,
        "LOGTO_APP_SECRET": CLIENT_SECRET,
        "SESSION_SECRET": SESSION_SECRET,
        "RESOURCE_API_URL": API_URL,
        "CLIENT_APP_BASE_URL": BASE_URL,
        **overrides,
    }


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Settings pointing at the fake issuer and a fake API, sessions under ``tmp_path``."""
    return load_settings(environment(SESSION_DATABASE=str(tmp_path / "sessions")))


@pytest.fixture
def logto(respx_router: respx.MockRouter) -> FakeLogto:
    """The respx-served issuer."""
    return FakeLogto(respx_router)


@pytest.fixture
def sessions(settings: Settings) -> SessionStore:
    """Sessions in memory."""
    return SessionStore(MemoryStore(), secret=settings.session_secret, max_age_seconds=3600)


@pytest.fixture
def provider(settings: Settings, http_client: httpx.AsyncClient) -> LogtoProvider:
    """The process-wide issuer view."""
    return LogtoProvider(settings.logto_endpoint, http_client=http_client, timeout=2.0)


@pytest.fixture
def gateway(settings: Settings, provider: LogtoProvider, sessions: SessionStore) -> LogtoGateway:
    """The gateway over the fake issuer and in-memory sessions."""
    return LogtoGateway(settings, provider=provider, sessions=sessions)


async def sign_in(gateway: LogtoGateway, logto: FakeLogto, username: str = "alice") -> str:
    """Sign ``username`` in through the gateway; return the signed-in session id."""
    start = await gateway.start_sign_in()
    query = logto.authorize(start.url, username)
    done = await gateway.finish_sign_in(None, start.sealed_attempt, query)
    return done.session_id


@pytest.fixture
def app(settings: Settings, http_client: httpx.AsyncClient, logto: FakeLogto) -> Litestar:
    """The app over the fake issuer (respx also answers for the API at ``API_URL``)."""
    return create_app(settings, http_client=http_client, session_store=MemoryStore())


@contextlib.asynccontextmanager
async def browser(app: Litestar, base_url: str = BASE_URL) -> AsyncIterator[httpx.AsyncClient]:
    """A browser on ``app``: keeps its cookies, follows redirects unless told not to.

    The app runs in the test's event loop (``httpx.ASGITransport`` and the app's lifespan):
    Litestar's ``AsyncTestClient`` runs it in another thread's loop and blocks the test's loop
    during each request, so requests sent together would not overlap there.
    """
    # Litestar types its ASGI callable with TypedDict scopes, httpx with plain mappings.
    transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
    async with (
        running(app),
        httpx.AsyncClient(transport=transport, base_url=base_url, follow_redirects=True) as client,
    ):
        yield client


@contextlib.asynccontextmanager
async def running(app: Litestar) -> AsyncIterator[None]:
    """The app's lifespan, entered and left by one task of its own (anyio's task group
    inside it must not be left by another task, as pytest-asyncio's fixture teardown is)."""
    started, stop = asyncio.Event(), asyncio.Event()

    async def hold() -> None:
        async with app.lifespan():
            started.set()
            await stop.wait()

    task = asyncio.get_running_loop().create_task(hold())
    await asyncio.wait([task, asyncio.ensure_future(started.wait())], return_when="FIRST_COMPLETED")
    if task.done():
        await task  # start-up failed: raise its error
    try:
        yield
    finally:
        stop.set()
        await task


@pytest.fixture
async def client(app: Litestar) -> AsyncIterator[httpx.AsyncClient]:
    """The browser on the app."""
    async with browser(app) as test_client:
        yield test_client


async def browser_sign_in(
    client: httpx.AsyncClient,
    logto: FakeLogto,
    username: str = "alice",
    path: str = "/sign-in",
) -> httpx.Response:
    """GET /sign-in, let the fake issuer 'sign the user in', GET /callback; the last answer."""
    started = await client.get(path, follow_redirects=False)
    query = logto.authorize(started.headers["location"], username)
    return await client.get(f"/callback?{query}", follow_redirects=False)
