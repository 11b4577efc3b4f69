"""Fixtures of the client app's unit tests: settings, a respx-served Logto, the gateway.

The tests against the real dev issuer and resource API have their own fixtures in
``test_with_dev_issuer.py``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import respx
from litestar import Litestar
from litestar.stores.memory import MemoryStore
from litestar.testing import AsyncTestClient

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
    start = await gateway.start_sign_in(None)
    done = await gateway.finish_sign_in(start.session_id, logto.authorize(start.url, username))
    return done.session_id


@pytest.fixture
def app(settings: Settings, http_client: httpx.AsyncClient, logto: FakeLogto) -> Litestar:
    """The app over the fake issuer (respx also answers for the API at ``API_URL``)."""
    return create_app(settings, http_client=http_client, session_store=MemoryStore())


@pytest.fixture
async def client(app: Litestar) -> AsyncIterator[AsyncTestClient[Litestar]]:
    """The browser: keeps the app's cookies."""
    async with AsyncTestClient(app, base_url=BASE_URL) as test_client:
        yield test_client


async def browser_sign_in(
    client: AsyncTestClient[Litestar],
    logto: FakeLogto,
    username: str = "alice",
    path: str = "/sign-in",
) -> httpx.Response:
    """GET /sign-in, let the fake issuer 'sign the user in', GET /callback; the last answer."""
    started = await client.get(path, follow_redirects=False)
    query = logto.authorize(started.headers["location"], username)
    return await client.get(f"/callback?{query}", follow_redirects=False)
