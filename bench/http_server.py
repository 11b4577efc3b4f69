"""The HTTP benchmarks' server: the service's own app (plus the benchmark routes), or a bare
Litestar app, on the shipped server or on one of its rivals.

``python -m bench.http_server --app=service --endpoint=<issuer> --database=<file>
--port-file=<file> [--server=granian] [--log-level=INFO]``

* ``--app=service`` builds the app with ``create_app`` (settings from ``load_settings``, a
  seeded :class:`~resource_api.storage.SqliteStore`) and registers the routes of
  :mod:`bench.routes` (``GET /bench/public-orders`` runs the very ``list_orders`` handler
  function with a fixed, pre-built ``AccessToken``); ``--app=ceiling`` is a bare Litestar app
  with one JSON handler, ``GET /ceiling`` (the framework's ceiling on this machine).
* ``--server=granian`` (the default) serves it exactly as ``python -m resource_api`` does:
  :func:`service_kit.server.serve` with JSON logging at ``--log-level`` (``INFO``: access lines
  on, as shipped; ``WARNING``: off), the Server header replaced and forwarded headers ignored.
  ``granian-asyncio`` is the same with asyncio's event loop instead of uvloop. The rivals, for
  the server comparison, serve the app as it is with their own access logs off:
  ``uvicorn-h11`` (h11 + asyncio, what the service ran before), ``uvicorn-fast`` (httptools +
  uvloop), ``hypercorn`` (asyncio), ``hypercorn-uvloop``.
* ``--metrics`` turns the metrics on as ``--metrics-port`` does (the worker measures and writes
  its snapshot every second; an exporter process serves ``GET /metrics``), its port written
  to ``<port file>.metrics``.

It picks a free port on 127.0.0.1, writes it to the port file (atomically), and serves until
SIGTERM/SIGINT, until its parent process goes away, or for ``--lifetime`` seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Final

import httpx
from litestar import Litestar, get

from resource_api.app import create_app
from resource_api.settings import Settings, load_settings
from resource_api.storage import OrderItem, SqliteStore, Store
from service_kit import server
from service_kit.json_logging import configure_logging
from service_kit.metrics import Registry
from service_kit.metrics_export import Exporter

from .common import SUBJECT
from .routes import access_token_dependency, public_list_orders, store_dependency

SEEDED_ORDERS = 3
CEILING_PATH: Final = "/ceiling"
SERVERS: Final = (
    "granian",
    "granian-asyncio",
    "uvicorn-h11",
    "uvicorn-fast",
    "hypercorn",
    "hypercorn-uvloop",
)
"""The shipped server first, then its rivals."""
HOST: Final = "127.0.0.1"


def bench_settings(endpoint: str, environ: Mapping[str, str]) -> Settings:
    """The service's settings for the issuer at ``endpoint``, with the verifier's tuning
    variables (``LOGTO_TOKEN_CACHE_SIZE``, ``LOGTO_SIGNATURE_THREADS``, ...) taken from
    ``environ`` as ``python -m resource_api`` takes them, so that an experiment run with one
    set measures what it says. The endpoint is the benchmark's issuer whatever ``environ``
    says, and the app logs at ``WARNING`` (the access lines are the server's, at
    ``--log-level``)."""
    tuning = {name: value for name, value in environ.items() if name.startswith("LOGTO_")}
    return load_settings({**tuning, "LOGTO_ENDPOINT": endpoint, "LOG_LEVEL": "WARNING"})


def build_app(
    endpoint: str,
    store: Store,
    http_client: httpx.AsyncClient,
    metrics: Registry | None = None,
) -> Litestar:
    """The service's app for ``endpoint`` with the benchmark routes (:mod:`bench.routes`)
    added; three more static routes do not change what routing costs the others."""
    settings = bench_settings(endpoint, os.environ)
    app = create_app(settings, http_client=http_client, store=store, metrics=metrics)
    for handler in (public_list_orders, access_token_dependency, store_dependency):
        app.register(handler)
    return app


@get(CEILING_PATH, sync_to_thread=False)
def ceiling() -> dict[str, str]:
    """One JSON handler: what Litestar serves with nothing of ours in the way."""
    return {"status": "ok"}


def build_ceiling_app() -> Litestar:
    """A bare Litestar app with one JSON handler."""
    return Litestar([ceiling], logging_config=None)


def seeded_store(database: Path) -> SqliteStore:
    """A store holding a few orders of the benchmark subject, so the handler has work."""
    store = SqliteStore(database)

    async def seed() -> None:
        for number in range(SEEDED_ORDERS):
            items = [OrderItem(sku=f"sku-{number}-{line}", quantity=line + 1) for line in range(2)]
            await store.create_order(SUBJECT, items, note=f"bench order {number}")

    # On a thread of its own: a caller may be running an event loop already.
    with ThreadPoolExecutor(1) as seeder:
        seeder.submit(asyncio.run, seed()).result()
    return store


def _stop_when_orphaned_or_old(lifetime: float) -> None:
    """SIGTERM this process when its parent goes away or ``lifetime`` runs out."""
    parent = os.getppid()
    deadline = time.monotonic() + lifetime

    def watch() -> None:
        while time.monotonic() < deadline and os.getppid() == parent:
            time.sleep(0.5)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="bench-watchdog", daemon=True).start()


def _metrics_exporter(port_file: Path) -> Exporter:
    """The metrics listener on a free loopback port, written to ``<port file>.metrics``."""
    exporter = Exporter(HOST, 0)
    exporter.start(server.stop_with_parent)
    pending = port_file.with_suffix(".metrics-tmp")
    pending.write_text(str(exporter.port))
    pending.replace(port_file.with_suffix(".metrics"))
    return exporter


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((HOST, 0))
        port: int = probe.getsockname()[1]
        return port


def _serve_rival(name: str, app: Any, port: int) -> None:
    if name.startswith("uvicorn"):
        import uvicorn  # noqa: PLC0415 - a benchmark-only dependency

        fast = name == "uvicorn-fast"
        uvicorn.run(
            app,
            host=HOST,
            port=port,
            loop="uvloop" if fast else "asyncio",
            http="httptools" if fast else "h11",
            log_config=None,
            log_level="warning",
            access_log=False,
            server_header=False,
        )
        return
    from hypercorn.asyncio import serve as hypercorn_serve  # noqa: PLC0415
    from hypercorn.config import Config  # noqa: PLC0415

    config = Config()
    config.bind = [f"{HOST}:{port}"]
    config.accesslog = None
    config.loglevel = "WARNING"
    run: Callable[[Any], Any] = asyncio.run
    if name == "hypercorn-uvloop":
        import uvloop  # noqa: PLC0415

        run = uvloop.run
    run(hypercorn_serve(app, config))


def main(argv: list[str] | None = None) -> None:
    """Serve until told to stop (or orphaned, or out of lifetime)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--app", choices=("service", "ceiling"), default="service")
    parser.add_argument("--server", choices=SERVERS, default=SERVERS[0])
    parser.add_argument("--endpoint", help="the loopback issuer's endpoint (--app=service)")
    parser.add_argument("--database", type=Path, help="SQLite file (--app=service)")
    parser.add_argument("--port-file", type=Path, required=True)
    parser.add_argument("--log-level", default="INFO", help="INFO: access lines on")
    parser.add_argument("--lifetime", type=float, default=600.0, help="seconds before exiting")
    parser.add_argument(
        "--metrics",
        action="store_true",
        help="metrics on, as --metrics-port serves them (granian only); the exporter's port is "
        "written next to the port file (.metrics)",
    )
    args = parser.parse_args(argv)
    if args.app == "service" and (args.endpoint is None or args.database is None):
        parser.error("--app=service needs --endpoint and --database")

    configure_logging(args.log_level)  # as shipped: at INFO each refusal is logged too
    port = _free_port()
    pending = args.port_file.with_suffix(".tmp")
    pending.write_text(str(port))
    pending.replace(args.port_file)  # atomic: the parent never reads half a number
    _stop_when_orphaned_or_old(args.lifetime)

    def build(metrics: Registry | None = None) -> Litestar:
        if args.app == "ceiling":
            return build_ceiling_app()
        # Built in the worker: its SQLite connection and HTTP client belong to that process.
        store = seeded_store(args.database)
        http_client = httpx.AsyncClient(trust_env=False)  # loopback issuer only: no proxies
        return build_app(args.endpoint, store, http_client, metrics)

    if args.server.startswith("granian"):
        loop = "asyncio" if args.server == "granian-asyncio" else "auto"
        exporter = _metrics_exporter(args.port_file) if args.metrics else None
        try:
            server.serve(
                build,
                name="bench",
                host=HOST,
                port=port,
                log_level=args.log_level,
                loop=loop,
                metrics_dir=exporter.directory if exporter is not None else None,
            )
        finally:
            if exporter is not None:
                exporter.close()
    else:
        _serve_rival(args.server, build(), port)


if __name__ == "__main__":
    main()
