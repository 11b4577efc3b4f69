"""Diagnostic: where an authenticated request's extra time goes, without sockets.

The HTTP benchmark's app is called directly through ASGI (no uvicorn, no load generator, so
only the application's own work is timed) on four routes returning the same orders:

* ``public copy``             — ``GET /bench/public-orders``: the service's handler, no auth;
* ``service route``           — ``GET /shopping/orders``: the auth middleware, the store from
  ``store_of(request)``, and the token read from ``request.auth``;
* ``access_token dependency`` — the service route with the token and the store taken through
  the ``access_token`` and ``store`` dependencies instead (two independent dependencies, as the
  service route had before it switched to ``AuthenticatedRequest`` and ``store_of``);
* ``store dependency``        — the public copy with the store taken through the ``store``
  dependency rather than ``store_of(request)`` (what resolving one dependency costs).

Rounds are interleaved; medians are printed with the differences to the public copy.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx
from litestar import Litestar
from litestar.types import HTTPRequestEvent, Message, Scope

from .common import SUBJECT, LoopbackIssuer, header, median
from .http_server import build_app, seeded_store
from .routes import AUTH_PATH, DEPENDENCY_PATH, PUBLIC_PATH, STORE_DEPENDENCY_PATH

VARIANTS = {
    "public copy": PUBLIC_PATH,
    "service route": AUTH_PATH,
    "access_token dependency": DEPENDENCY_PATH,
    "store dependency": STORE_DEPENDENCY_PATH,
}


@dataclass(frozen=True, slots=True)
class BreakdownResult:
    """Median µs per request of each variant."""

    requests: int
    rounds: int
    us: dict[str, float]

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready figures."""
        return asdict(self)

    def report(self) -> None:
        """Print the medians and the differences to the public copy."""
        header("breakdown: µs per request through ASGI, no sockets (diagnostic)")
        base = self.us["public copy"]
        for name, value in self.us.items():
            print(f"  {name:24}{value:8.1f} µs  ({value - base:+6.1f} vs public copy)")


def _scope(path: str, headers: list[tuple[bytes, bytes]]) -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": headers,
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 80),
        "state": {},
        "extensions": {},
    }


async def _receive() -> HTTPRequestEvent:
    return {"type": "http.request", "body": b"", "more_body": False}


async def asgi_status(app: Litestar, path: str, headers: list[tuple[bytes, bytes]]) -> int:
    """The status ``app`` answers a GET of ``path`` with ``headers``, called as a server
    would (no sockets); the body is not kept."""
    status = 0

    async def send(message: Message) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    scope: Scope = _scope(path, headers)  # type: ignore[assignment]  # a plain HTTP scope
    await app(scope, _receive, send)
    return status


async def run_breakdown(issuer: LoopbackIssuer, *, requests: int, rounds: int) -> BreakdownResult:
    """Time ``requests`` calls per variant in ``rounds`` interleaved rounds."""
    token = issuer.token(subject=SUBJECT)
    headers = [(b"host", b"127.0.0.1"), (b"authorization", f"Bearer {token}".encode())]
    timings: dict[str, list[float]] = {name: [] for name in VARIANTS}
    with tempfile.TemporaryDirectory(prefix="bench-asgi-") as tmp:
        store = seeded_store(Path(tmp) / "bench.sqlite3")
        try:
            async with httpx.AsyncClient(trust_env=False) as client:
                app = build_app(issuer.endpoint, store, client)
                async with app.lifespan():
                    await app.state.auth.keys.refresh()
                    await _check(app, headers)
                    for index in range(rounds):
                        names = list(VARIANTS) if index % 2 == 0 else list(reversed(VARIANTS))
                        for name in names:
                            timings[name].append(
                                await _time(app, VARIANTS[name], headers, requests)
                            )
        finally:
            await store.close()
    return BreakdownResult(requests, rounds, {name: median(v) for name, v in timings.items()})


async def _check(app: Litestar, headers: list[tuple[bytes, bytes]]) -> None:
    for path in VARIANTS.values():
        status = await asgi_status(app, path, headers)
        if status != 200:
            msg = f"{path} answered {status}"
            raise RuntimeError(msg)


async def _time(app: Litestar, path: str, headers: list[tuple[bytes, bytes]], count: int) -> float:
    start = time.perf_counter_ns()
    for _ in range(count):
        await asgi_status(app, path, headers)
    return (time.perf_counter_ns() - start) / count / 1000
