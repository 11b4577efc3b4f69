"""The HTTP benchmark's server: the service's own app plus the benchmark routes.

``python -m bench.http_server --endpoint=<issuer> --database=<file> --port-file=<file>``
builds the app with ``create_app`` (settings from ``load_settings``, a seeded
:class:`~resource_api.storage.SqliteStore`), registers the routes of :mod:`bench.routes`
(``GET /bench/public-orders`` runs the very ``list_orders`` handler function with a fixed,
pre-built ``AccessToken`` for the benchmark subject), binds uvicorn to a free port on
127.0.0.1 and writes that port to the port file. It exits on SIGTERM/SIGINT, when its parent
process goes away, or after ``--lifetime`` seconds, whichever comes first.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import threading
import time
from pathlib import Path

import httpx
import uvicorn
from litestar import Litestar

from resource_api.app import create_app
from resource_api.settings import load_settings
from resource_api.storage import OrderItem, SqliteStore, Store

from .common import SUBJECT
from .routes import access_token_dependency, public_list_orders, two_dependencies

SEEDED_ORDERS = 3


def build_app(endpoint: str, store: Store, http_client: httpx.AsyncClient) -> Litestar:
    """The service's app for ``endpoint`` with the benchmark routes (:mod:`bench.routes`)
    added; three more static routes do not change what routing costs the others."""
    settings = load_settings({"LOGTO_ENDPOINT": endpoint, "LOG_LEVEL": "WARNING"})
    app = create_app(settings, http_client=http_client, store=store)
    for handler in (public_list_orders, access_token_dependency, two_dependencies):
        app.register(handler)
    return app


def seeded_store(database: Path) -> SqliteStore:
    """A store holding a few orders of the benchmark subject, so the handler has work."""
    store = SqliteStore(database)
    for number in range(SEEDED_ORDERS):
        items = [OrderItem(sku=f"sku-{number}-{line}", quantity=line + 1) for line in range(2)]
        store.create_order(SUBJECT, items, note=f"bench order {number}")
    return store


def _watchdog(server: uvicorn.Server, lifetime: float) -> None:
    parent = os.getppid()
    deadline = time.monotonic() + lifetime
    while not server.should_exit:
        if time.monotonic() >= deadline or os.getppid() != parent:
            server.should_exit = True
            return
        time.sleep(0.5)


def main(argv: list[str] | None = None) -> None:
    """Serve until told to stop (or orphaned, or out of lifetime)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--endpoint", required=True, help="the loopback issuer's endpoint")
    parser.add_argument("--database", type=Path, required=True)
    parser.add_argument("--port-file", type=Path, required=True)
    parser.add_argument("--lifetime", type=float, default=600.0, help="seconds before exiting")
    args = parser.parse_args(argv)

    store = seeded_store(args.database)
    http_client = httpx.AsyncClient(trust_env=False)  # loopback issuer only: no proxies
    app = build_app(args.endpoint, store, http_client)
    config = uvicorn.Config(
        app, log_config=None, log_level="warning", access_log=False, server_header=False
    )
    server = uvicorn.Server(config)
    # proto must say TCP: asyncio sets TCP_NODELAY only on sockets that declare it, and
    # without it uvicorn's separate header and body writes stall on Nagle + delayed ACK.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    pending = args.port_file.with_suffix(".tmp")
    pending.write_text(str(sock.getsockname()[1]))
    pending.replace(args.port_file)  # atomic: the parent never reads half a number
    threading.Thread(target=_watchdog, args=(server, args.lifetime), daemon=True).start()
    try:
        server.run(sockets=[sock])
    finally:
        asyncio.run(http_client.aclose())
        store.close()


if __name__ == "__main__":
    main()
