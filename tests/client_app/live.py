"""Helpers for tests against the real dev issuer and the real resource API over loopback.

The dev issuer is started with ``tests/dev_issuer/support.py``; the resource API runs in-process
under uvicorn, in a thread, on a free 127.0.0.1 port. The client app runs in the test's event
loop (``tests.client_app.conftest.browser``) and reaches both over real sockets through its
httpx client.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlsplit

import httpx
import jwt
import uvicorn

from client_app.settings import Settings, load_settings
from resource_api.app import create_app as create_resource_api
from resource_api.settings import Settings as ResourceApiSettings
from tests.dev_issuer.support import CLIENT_ID, CLIENT_SECRET, DevIssuer, submit_sign_in

if TYPE_CHECKING:
    from opentelemetry.trace import TracerProvider

CLIENT_PORT = 8765
"""The port the dev issuer's redirect URIs name (nothing listens there: the test client is
in-process and the issuer's redirect is read, not followed)."""
SESSION_SECRET = "live-test-session-secret-0123456789abcdef"


@contextmanager
def serve_resource_api(
    issuer: DevIssuer, database: Path, tracer_provider: TracerProvider | None = None
) -> Iterator[str]:
    """Run the real resource API against ``issuer`` (traced by ``tracer_provider`` if
    given); yield its base URL."""
    settings = ResourceApiSettings(logto_endpoint=issuer.endpoint, database=database)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        create_resource_api(settings, tracer_provider=tracer_provider),
        log_config=None,
        lifespan="on",
        access_log=False,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the resource API did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


def client_settings(issuer: DevIssuer, api_url: str, sessions: Path) -> Settings:
    """The client app's settings for the dev issuer and the real API."""
    return load_settings(
        {
            "LOGTO_ENDPOINT": issuer.endpoint,
            "LOGTO_APP_ID": CLIENT_ID,
            "LOGTO_APP_SECRET": CLIENT_SECRET,
            "SESSION_SECRET": SESSION_SECRET,
            "CLIENT_APP_BASE_URL": f"http://127.0.0.1:{issuer.client_port}",
            "RESOURCE_API_URL": api_url,
            "SESSION_DATABASE": str(sessions),
            "LOGTO_TIMEOUT_SECONDS": "5",
        }
    )


@dataclass
class RequestLog:
    """What the app sent over its httpx client (an event hook; nothing is mocked)."""

    requests: list[httpx.Request] = field(default_factory=list)

    async def __call__(self, request: httpx.Request) -> None:
        self.requests.append(request)

    def token_grants(self, **match: str) -> list[dict[str, str]]:
        """Token-endpoint forms whose fields equal ``match``."""
        forms = [
            dict(parse_qsl(r.content.decode()))
            for r in self.requests
            if r.method == "POST" and r.url.path.endswith("/oidc/token")
        ]
        return [f for f in forms if all(f.get(k) == v for k, v in match.items())]


async def sign_in(
    client: httpx.AsyncClient,
    issuer: DevIssuer,
    username: str,
    *,
    path: str = "/sign-in",
    form_values: dict[str, str] | None = None,
) -> httpx.Response:
    """The whole browser journey: the app's /sign-in, the issuer's form (a fresh issuer
    cookie jar, so no single sign-on carries the previous user over), the app's callback."""
    started = await client.get(path, follow_redirects=False)
    assert started.status_code == 303, started.text
    redirect_uri = f"http://127.0.0.1:{issuer.client_port}/callback"
    values = form_values or {"identifier": username, "password": issuer.password(username)}
    async with httpx.AsyncClient(timeout=10) as browser:
        callback = await submit_sign_in(
            browser, started.headers["location"], stop_at=redirect_uri, form_values=values
        )
    return await client.get(f"/callback?{urlsplit(callback).query}", follow_redirects=False)


async def verified_claims(issuer: DevIssuer, token: str, audience: str) -> dict[str, Any]:
    """Claims of an access token whose signature is checked against the issuer's JWKS."""
    async with httpx.AsyncClient() as http:
        keys = jwt.PyJWKSet.from_dict((await http.get(f"{issuer.issuer}/jwks")).json())
    key = keys[jwt.get_unverified_header(token)["kid"]]
    claims: dict[str, Any] = jwt.decode(
        token, key.key, algorithms=["ES384", "RS256"], audience=audience, issuer=issuer.issuer
    )
    return claims
