"""Serve an ASGI app with granian: the HTTP server both programs run.

granian was chosen by measurement (``python -m bench --only servers``, table in
``bench/README.md``): on the same bare Litestar app and the same load it serves several times
what uvicorn on h11/asyncio did, well ahead of uvicorn on httptools/uvloop and of hypercorn.
What :func:`serve` keeps of the uvicorn set-up it replaced:

* **processes**: granian's main process binds the socket and forks ``workers`` worker
  processes, each of which builds its own app (its own key set, verified-token cache, store
  connection and HTTP client) from the settings the main process loaded once. A worker whose
  main process dies without stopping it (SIGKILL, a crash) is killed by the kernel
  (``PR_SET_PDEATHSIG``), so no orphan keeps the port.
* **graceful shutdown**: SIGTERM or SIGINT to the main process stops accepting, lets in-flight
  requests finish, runs each worker's lifespan shutdown (background key refresh stopped, store
  closed), then exits 0. A worker still busy after :data:`WORKER_KILL_TIMEOUT` seconds is
  killed.
* **event loop**: uvloop (granian's ``auto`` picks it when installed, and it is a dependency).
* **logs**: granian's own records go to the root logger (the JSON handler of
  :mod:`service_kit.json_logging`); access lines come from :class:`~service_kit.access_log.
  AccessLog` (granian's access log stays off).
* **Server header**: granian always sends one and lets the app replace its value; the apps
  replace ``granian`` with an empty value, which names no software.
* **forwarded headers** (``X-Forwarded-For`` / ``X-Forwarded-Proto``) are ignored unless
  ``forwarded_allow_ips`` names the proxies trusted to send them (granian's own
  ``wrap_asgi_with_proxy_headers``).
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import multiprocessing
import os
import signal
import sys
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any, Final

from granian.constants import HTTPModes, Interfaces, Loops
from granian.log import LogLevels
from granian.server import Server
from granian.utils.proxies import wrap_asgi_with_proxy_headers

from .access_log import AccessLog, AccessLogWriter, ASGIApp
from .metrics import Registry
from .metrics_export import SnapshotWriter

WORKER_KILL_TIMEOUT: Final = 20
"""Seconds a worker may take to finish its requests and its lifespan shutdown."""
SERVER_HEADER: Final = b""
"""The value sent in place of granian's ``Server: granian``."""
_PR_SET_PDEATHSIG: Final = 1
# granian's own loggers hand their records to the root logger (our JSON handler).
_LOG_CONFIG: Final[dict[str, Any]] = {
    "loggers": {
        "_granian": {"handlers": [], "propagate": True},
        "granian.access": {"handlers": [], "propagate": True},
    }
}


AppBuilder = Callable[[Registry | None], ASGIApp]
"""Builds a worker's app, measuring into the registry given (``None``: no metrics)."""


def serve(
    build_app: AppBuilder,
    *,
    name: str,
    host: str,
    port: int,
    workers: int = 1,
    log_level: str = "INFO",
    forwarded_allow_ips: str | None = None,
    loop: str = "auto",
    metrics_dir: Path | None = None,
) -> None:
    """Serve the app ``build_app`` returns (called once in each worker) on ``host:port``
    until SIGTERM or SIGINT. ``loop="auto"`` runs uvloop (a dependency; about 14 % more
    requests per second than asyncio's loop here), ``"asyncio"`` the standard loop. With
    ``metrics_dir``, each worker measures into a registry of its own and writes its snapshots
    there (:mod:`service_kit.metrics_export`)."""
    if "fork" in multiprocessing.get_all_start_methods():
        # granian uses the default start method; workers must inherit the loaded settings
        # (``build_app`` is a closure) rather than re-import and re-read the environment.
        multiprocessing.set_start_method("fork", force=True)
    server = Server(
        name,
        address=host,
        port=port,
        interface=Interfaces.ASGI,
        workers=workers,
        loop=Loops(loop),
        http=HTTPModes.http1,
        websockets=False,
        log_level=LogLevels(log_level.lower()),
        log_dictconfig=_LOG_CONFIG,
        log_access=False,
        workers_kill_timeout=WORKER_KILL_TIMEOUT,
    )
    loader = partial(
        _build_in_worker,
        build_app,
        parent=os.getpid(),
        forwarded_allow_ips=forwarded_allow_ips,
        metrics_dir=metrics_dir,
    )
    server.serve(target_loader=loader, wrap_loader=False)


def wrap_app(app: ASGIApp, *, forwarded_allow_ips: str | None = None) -> ASGIApp:
    """``app`` as a worker serves it: access lines (when ``INFO`` is logged), the ``Server``
    value, and forwarded headers honoured only from ``forwarded_allow_ips``."""
    wrapped: ASGIApp = AccessLog(app, writer=AccessLogWriter(), server_header=SERVER_HEADER)
    if forwarded_allow_ips:
        trusted = [host.strip() for host in forwarded_allow_ips.split(",") if host.strip()]
        wrapped = wrap_asgi_with_proxy_headers(wrapped, trusted)
    return wrapped


def _build_in_worker(
    build_app: AppBuilder,
    *,
    parent: int,
    forwarded_allow_ips: str | None,
    metrics_dir: Path | None,
) -> ASGIApp:
    stop_with_parent(parent)
    if metrics_dir is None:
        return wrap_app(build_app(None), forwarded_allow_ips=forwarded_allow_ips)
    registry = Registry()
    app = wrap_app(build_app(registry), forwarded_allow_ips=forwarded_allow_ips)
    return SnapshotWriter(app, registry, metrics_dir)


def stop_with_parent(parent: int) -> None:
    """Have the kernel kill this worker when its main process dies (Linux).

    SIGKILL, not SIGTERM: the main process only dies without stopping its workers when it is
    killed or crashes (on SIGTERM it stops them gracefully and waits), and granian can lose a
    SIGTERM that reaches a worker still starting (seen: a worker hung for good in about one
    start in six with two workers). A graceful stop goes through the main process.
    """
    library = ctypes.util.find_library("c")
    if sys.platform.startswith("linux") and library:
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(library, use_errno=True).prctl(
                _PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0
            )
    if os.getppid() != parent:  # it died before the request above: stop now
        sys.exit(0)
