"""``GET /metrics`` of a program run with ``--metrics-port``: every worker's numbers in one
scrape, on a listener of its own.

Granian forks ``--workers`` processes that share the public socket, so a ``/metrics`` route
would answer with whichever worker took the connection: one worker's numbers per scrape. Here
instead:

* each worker keeps its metrics in memory (:class:`~service_kit.metrics.Registry`, nothing but
  attribute increments on the request path) and writes a snapshot of them to a private
  directory every :data:`SNAPSHOT_INTERVAL` seconds and when it stops
  (:class:`SnapshotWriter`, one small file replaced atomically);
* an exporter process forked by the main process before granian starts (:class:`Exporter`)
  answers ``GET /metrics`` on its own address by merging the snapshots of every worker, live
  or dead (what a dead worker counted stays counted; its gauges are dropped).

A scrape therefore sums all workers, at most :data:`SNAPSHOT_INTERVAL` seconds old, and costs
the workers nothing: they are never asked anything by a scrape. The exporter is a process, not
a thread of the main process, because granian forks (and re-forks) workers from the main
process, and forking a multi-threaded process can deadlock the child.

The listener is separate so that it can stay off the public address: it binds 127.0.0.1
unless told otherwise (``--metrics-host``). Metrics reveal traffic shapes (request rates per
route, refusal reasons, sign-in failures): see the README's "Metrics" section.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import os
import shutil
import signal
import tempfile
import time
from collections.abc import Callable, Iterator
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, HTTPServer, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Final

import msgspec

from .metrics import Registry, Snapshot, render

if TYPE_CHECKING:
    from .access_log import ASGIApp

logger = logging.getLogger("service_kit.metrics")

SNAPSHOT_INTERVAL: Final = 1.0
"""Seconds between two snapshots of a worker: how old a scrape's numbers may be."""
CONTENT_TYPE: Final = "text/plain; version=0.0.4; charset=utf-8"
METRICS_PATH: Final = "/metrics"
_SUFFIX: Final = ".snapshot"
_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(Snapshot)


def write_snapshot(directory: Path, registry: Registry) -> None:
    """Replace this process's snapshot file in ``directory`` (atomically: a scrape reads the
    previous file or this one, never half of one)."""
    pid = os.getpid()
    data = _encoder.encode(registry.snapshot(pid))
    temporary = directory / f".{pid}.tmp"
    temporary.write_bytes(data)
    temporary.replace(directory / f"{pid}{_SUFFIX}")


def read_snapshots(directory: Path) -> Iterator[Snapshot]:
    """Every worker's latest snapshot in ``directory`` (unreadable files skipped)."""
    for path in directory.glob(f"*{_SUFFIX}"):
        try:
            yield _decoder.decode(path.read_bytes())
        except (OSError, msgspec.DecodeError):
            continue


def exposition(directory: Path) -> bytes:
    """All workers' metrics in the text format."""
    return render(read_snapshots(directory), live=_alive)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # pragma: no cover - another user's process reusing the pid
        return True
    return True


class SnapshotWriter:
    """ASGI wrapper of a worker's app: while the app's lifespan runs, write the registry's
    snapshot to ``directory`` every ``interval`` seconds, and once more at shutdown."""

    def __init__(
        self, app: ASGIApp, registry: Registry, directory: Path, interval: float = SNAPSHOT_INTERVAL
    ) -> None:
        self.app = app
        self.registry = registry
        self.directory = directory
        self.interval = interval

    async def __call__(self, scope: dict[str, object], receive: object, send: object) -> None:
        if scope["type"] != "lifespan":
            await self.app(scope, receive, send)
            return
        writer = asyncio.get_running_loop().create_task(self._write_every_interval())
        try:
            await self.app(scope, receive, send)
        finally:
            writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await writer
            self._write()

    async def _write_every_interval(self) -> None:
        while True:
            self._write()
            await asyncio.sleep(self.interval)

    def _write(self) -> None:
        try:
            write_snapshot(self.directory, self.registry)
        except OSError as exc:
            logger.warning(
                "metrics snapshot not written",
                extra={"event": "metrics_snapshot_failed", "error_type": type(exc).__name__},
            )


class Exporter:
    """The ``GET /metrics`` listener: bound at once (a taken port fails the start), served by
    a forked process until :meth:`close` or the main process's death."""

    def __init__(self, host: str, port: int) -> None:
        self.directory = Path(tempfile.mkdtemp(prefix="metrics-"))  # mode 700
        directory = self.directory

        class Handler(_MetricsHandler):
            source = staticmethod(lambda: exposition(directory))

        # Threads in the exporter process only (it forks nothing): a client that connects and
        # sends nothing holds one thread, not the next scrape.
        self._server: HTTPServer = ThreadingHTTPServer((host, port), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._process: multiprocessing.process.BaseProcess | None = None

    def start(self, stop_with_parent: Callable[[int], None]) -> None:
        """Fork the serving process (it runs ``stop_with_parent(parent pid)`` first)."""
        context = multiprocessing.get_context("fork")
        process = context.Process(
            target=_serve_forever,
            args=(self._server, os.getpid(), stop_with_parent),
            name="metrics-exporter",
            daemon=True,
        )
        process.start()
        self._process = process
        self._server.socket.close()  # the exporter holds it; workers must not inherit it

    def close(self) -> None:
        """Stop the serving process and remove the snapshots."""
        if self._process is not None:
            self._process.terminate()
            self._process.join(timeout=5)
        self._server.server_close()
        shutil.rmtree(self.directory, ignore_errors=True)


def _serve_forever(
    server: HTTPServer, parent: int, stop_with_parent: Callable[[int], None]
) -> None:
    stop_with_parent(parent)
    # Ctrl-C reaches the whole process group: the main process stops the exporter itself.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    server.serve_forever()


class _MetricsHandler(BaseHTTPRequestHandler):
    """``GET /metrics`` (and ``HEAD``); anything else 404, no body echoing the request."""

    source: Callable[[], bytes]
    server_version = ""
    sys_version = ""
    timeout = 10

    def do_GET(self) -> None:
        """The exposition."""
        self._answer(with_body=True)

    def do_HEAD(self) -> None:
        """The exposition's headers."""
        self._answer(with_body=False)

    def _answer(self, *, with_body: bool) -> None:
        if self.path.split("?", 1)[0] != METRICS_PATH:
            self._send(HTTPStatus.NOT_FOUND, b"not found\n", "text/plain", with_body=with_body)
            return
        started = time.perf_counter()
        body = type(self).source()
        headers = {"X-Render-Seconds": f"{time.perf_counter() - started:.6f}"}
        self._send(HTTPStatus.OK, body, CONTENT_TYPE, with_body=with_body, headers=headers)

    def _send(
        self,
        status: HTTPStatus,
        body: bytes,
        content_type: str,
        *,
        with_body: bool,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.send_response_only(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if with_body:
            self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the base's name
        """No access lines: Prometheus scrapes every few seconds."""
