"""A small program served the way ``python -m resource_api`` is (``service_kit.cli.run``), for
the server tests: ``python -m tests.service_kit.served_program --port N [--workers N] ...``.

Routes: ``GET /slow?seconds=S`` answers after S seconds (an in-flight request during a
shutdown), ``GET /whoami`` the worker's pid and the client address and scheme the app sees
(forwarded headers), ``GET /boom`` raises. The lifespan prints ``lifespan started <pid>`` and,
after a short await, ``lifespan stopped <pid>`` to stdout.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from litestar import Litestar, Request, get

from service_kit import cli
from service_kit.http_metrics import instrument
from service_kit.metrics import Registry

if TYPE_CHECKING:
    from opentelemetry.trace import TracerProvider


@dataclass(frozen=True)
class Settings:
    log_level: str


def load_settings(environ: Mapping[str, str]) -> Settings:
    return Settings(environ.get("LOG_LEVEL", "INFO"))


@get("/slow")
async def slow(seconds: float) -> dict[str, float]:
    await asyncio.sleep(seconds)
    return {"slept": seconds}


@get("/whoami")
async def whoami(request: Request[Any, Any, Any]) -> dict[str, object]:
    client = request.client
    return {
        "pid": os.getpid(),
        "client": client.host if client else None,
        "scheme": request.url.scheme,
    }


@get("/boom")
async def boom() -> None:
    raise RuntimeError("boom")


@contextlib.asynccontextmanager
async def lifespan(_: Litestar) -> AsyncIterator[None]:
    print(f"lifespan started {os.getpid()}", flush=True)
    yield
    await asyncio.sleep(0.1)
    print(f"lifespan stopped {os.getpid()}", flush=True)


def create_app(
    _: Settings, *, metrics: Registry | None = None, tracer_provider: TracerProvider | None = None
) -> Litestar:
    app = Litestar([slow, whoami, boom], lifespan=[lifespan], logging_config=None)
    if metrics is not None:
        instrument(app, metrics)
    return app


PROGRAM = cli.Program[Settings](
    name="served_program",
    description="A test program.",
    default_port=9,
    load_settings=load_settings,
    create_app=create_app,
)

if __name__ == "__main__":
    sys.exit(cli.run(PROGRAM))
