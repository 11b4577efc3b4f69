"""The README's "Use it in your own service" example runs as written and protects its route."""

from __future__ import annotations

import re
import sys
import types
from pathlib import Path

import httpx
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from litestar_logto import LogtoAuth

from tests.support import ENDPOINT, FakeClock, FakeIssuer

README = Path(__file__).resolve().parent.parent / "README.md"


def _first_example() -> str:
    section = README.read_text(encoding="utf-8").split("## Use it in your own service", 1)[1]
    match = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert match is not None, "the README lost its example"
    return match.group(1)


@pytest.fixture
def readme_app(
    issuer: FakeIssuer,
    http_client: httpx.AsyncClient,
    clock: FakeClock,
    monkeypatch: pytest.MonkeyPatch,
) -> Litestar:
    """The README example, executed with its endpoint pointed at the respx issuer."""
    source = _first_example().replace("https://your-tenant.logto.app", ENDPOINT)
    source = source.replace(
        "auth = LogtoAuth(", "auth = LogtoAuth(http_client=_client, clock=_clock, config="
    )
    module = types.ModuleType("readme_example")  # Litestar resolves handler hints by module
    monkeypatch.setitem(sys.modules, module.__name__, module)
    module.__dict__.update(_client=http_client, _clock=clock)
    exec(compile(source, str(README), "exec"), module.__dict__)  # noqa: S102 - our own README
    app = module.__dict__["app"]
    assert isinstance(app, Litestar)
    assert any(isinstance(plugin, LogtoAuth) for plugin in app.plugins)
    return app


async def test_readme_example_accepts_a_valid_token(
    readme_app: Litestar, issuer: FakeIssuer
) -> None:
    """A shopping:read token for the shopping API reaches the handler and its subject."""
    async with AsyncTestClient(readme_app) as client:
        response = await client.get(
            "/orders", headers={"Authorization": f"Bearer {issuer.sign(sub='user-bob')}"}
        )
    assert (response.status_code, response.json()) == (200, {"user": "user-bob"})


async def test_readme_example_refuses_without_token(readme_app: Litestar) -> None:
    """Without a token the protected route answers 401 with a Bearer challenge."""
    async with AsyncTestClient(readme_app) as client:
        protected = await client.get("/orders")
        open_route = await client.get("/ping")
    assert protected.status_code == 401
    assert protected.headers["www-authenticate"].startswith("Bearer")
    assert (open_route.status_code, open_route.text) == (200, "pong")
