"""The command line of both programs: ``python -m resource_api`` and ``python -m client_app``
each describe themselves as a :class:`Program` and hand it to :func:`run`; ``python -m demo``
checks its ports with :func:`port`.

:func:`run` is the only place that reads the environment: settings are loaded once from
``os.environ``, a configuration problem is printed as a list and exits with status 2 (no
traceback), then JSON logging is configured and :func:`service_kit.server.serve` runs granian
with ``--workers`` worker processes, each building its app from those settings.

Traces are on when ``OTEL_EXPORTER_OTLP_ENDPOINT`` (or ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``)
is set: each worker then builds its own tracer provider and exporter after granian forked it
(:func:`service_kit.tracing.otlp_provider`; the OpenTelemetry SDK reads its other ``OTEL_*``
variables itself) and flushes it at its lifespan shutdown. Unset, no tracer provider, exporter
or export thread is created and neither the SDK's tracing nor an exporter is even imported.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Final, Generic, Protocol, TypeVar

from . import server
from .env import SettingsError
from .json_logging import configure_logging
from .metrics import Registry
from .metrics_export import Exporter

if TYPE_CHECKING:
    from litestar import Litestar
    from opentelemetry.trace import TracerProvider

EXIT_CONFIGURATION_ERROR: Final = 2
MAX_PORT: Final = 65535
MAX_WORKERS: Final = 64
TRACES_ENDPOINT_VARIABLES: Final = (
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
)
"""Either one set (and the SDK not disabled) turns traces on."""
OTLP_PROTOCOL_VARIABLES: Final = (
    "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
    "OTEL_EXPORTER_OTLP_PROTOCOL",
)
SUPPORTED_OTLP_PROTOCOL: Final = "http/protobuf"


class Configured(Protocol):
    """What :func:`run` reads from a program's settings."""

    @property
    def log_level(self) -> str:
        """The root log level (``INFO``, …)."""
        ...


SettingsT = TypeVar("SettingsT", bound=Configured)
SettingsT_contra = TypeVar("SettingsT_contra", bound=Configured, contravariant=True)


class AppFactory(Protocol[SettingsT_contra]):
    """A program's ``create_app``: its settings, the registry to measure into, and the tracer
    provider to trace with."""

    def __call__(
        self,
        settings: SettingsT_contra,
        /,
        *,
        metrics: Registry | None = None,
        tracer_provider: TracerProvider | None = None,
    ) -> Litestar:
        """The ASGI app for those settings (``metrics=None``: no metrics)."""
        ...


@dataclass(frozen=True, kw_only=True)
class Program(Generic[SettingsT]):
    """One program's command line: its name, its help and how it builds its app."""

    name: str
    """The package run as ``python -m <name>``; also the prefix of a configuration error."""
    description: str
    """The ``--help`` text."""
    default_port: int
    """The ``--port`` when none is given."""
    load_settings: Callable[[Mapping[str, str]], SettingsT]
    """Settings from the environment; raises :class:`~service_kit.env.SettingsError`."""
    create_app: AppFactory[SettingsT]
    """The ASGI app for those settings."""
    redact_also: tuple[str, ...] = ()
    """Names dropped from log extras besides :data:`~service_kit.json_logging.CREDENTIAL_NAMES`."""
    workers_problem: Callable[[SettingsT, int], str | None] | None = None
    """Why these settings cannot run that many worker processes, if they cannot."""


def run(
    program: Program[SettingsT],
    argv: Sequence[str] | None = None,
    environ: Mapping[str, str] | None = None,
) -> int:
    """Parse arguments, load settings, serve; return the process exit status."""
    args = _parser(program).parse_args(argv)
    try:
        settings = program.load_settings(os.environ if environ is None else environ)
    except SettingsError as exc:
        print(f"{program.name}: {exc}", file=sys.stderr)  # logging is not configured yet
        return EXIT_CONFIGURATION_ERROR
    env = os.environ if environ is None else environ
    problem = program.workers_problem(settings, args.workers) if program.workers_problem else None
    problem = problem or tracing_problem(env)
    if problem is not None:
        print(f"{program.name}: invalid configuration:\n  - {problem}", file=sys.stderr)
        return EXIT_CONFIGURATION_ERROR
    configure_logging(settings.log_level, redact_also=program.redact_also)
    exporter = None
    if args.metrics_port is not None:
        try:
            exporter = Exporter(args.metrics_host, args.metrics_port)
        except OSError as exc:
            print(f"{program.name}: cannot listen for metrics: {exc.strerror}", file=sys.stderr)
            return EXIT_CONFIGURATION_ERROR
        exporter.start(server.stop_with_parent)
    traced = tracing_requested(env)
    try:
        server.serve(
            partial(_build_app, program.create_app, settings, name=program.name, traced=traced),
            name=program.name,
            host=args.host,
            port=args.port,
            workers=args.workers,
            log_level=settings.log_level,
            forwarded_allow_ips=args.forwarded_allow_ips,
            metrics_dir=exporter.directory if exporter is not None else None,
        )
    finally:
        if exporter is not None:
            exporter.close()
    return 0


def tracing_requested(environ: Mapping[str, str]) -> bool:
    """Whether the environment asks for traces: an OTLP endpoint, the SDK not disabled."""
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    if environ.get("OTEL_TRACES_EXPORTER", "").strip().lower() == "none":
        return False
    return any(environ.get(name, "").strip() for name in TRACES_ENDPOINT_VARIABLES)


def tracing_problem(environ: Mapping[str, str]) -> str | None:
    """Why the tracing configuration cannot work, if it cannot (only OTLP/HTTP is installed)."""
    if not tracing_requested(environ):
        return None
    for name in OTLP_PROTOCOL_VARIABLES:
        value = environ.get(name, "").strip()
        if value and value != SUPPORTED_OTLP_PROTOCOL:
            return f"{name} must be {SUPPORTED_OTLP_PROTOCOL} (the only OTLP exporter installed)"
    exporter = environ.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if exporter and exporter != "otlp":
        return "OTEL_TRACES_EXPORTER must be otlp or none"
    return None


def _build_app(
    create_app: AppFactory[SettingsT],
    settings: SettingsT,
    metrics: Registry | None = None,
    *,
    name: str,
    traced: bool,
) -> Litestar:
    """In a worker, after the fork: the app, measuring into ``metrics``; traced, with the
    worker's own tracer provider and export thread, flushed and stopped at the app's shutdown
    (a forked worker runs no ``atexit`` handler)."""
    if not traced:
        return create_app(settings, metrics=metrics)
    from .tracing import otlp_provider  # noqa: PLC0415 - only when tracing

    provider = otlp_provider(name)
    app = create_app(settings, metrics=metrics, tracer_provider=provider)

    async def flush_traces() -> None:
        await asyncio.to_thread(provider.shutdown)

    app.on_shutdown.append(flush_traces)
    return app


def port(value: str) -> int:
    """An argparse ``type``: a TCP port number from 1 to 65535."""
    try:
        number = int(value)
    except ValueError:
        number = -1
    if not 0 < number <= MAX_PORT:
        msg = f"must be a port number between 1 and {MAX_PORT}"
        raise argparse.ArgumentTypeError(msg)
    return number


def workers(value: str) -> int:
    """An argparse ``type``: a number of worker processes from 1 to :data:`MAX_WORKERS`."""
    try:
        number = int(value)
    except ValueError:
        number = 0
    if not 0 < number <= MAX_WORKERS:
        msg = f"must be a number of processes between 1 and {MAX_WORKERS}"
        raise argparse.ArgumentTypeError(msg)
    return number


def _parser(program: Program[SettingsT]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=f"python -m {program.name}", description=program.description
    )
    parser.add_argument("--host", default="127.0.0.1", help="interface to bind (127.0.0.1)")
    parser.add_argument(
        "--port",
        type=port,
        default=program.default_port,
        help=f"TCP port ({program.default_port})",
    )
    parser.add_argument(
        "--workers",
        type=workers,
        default=1,
        help="worker processes, each with its own app (1); one per CPU core to use them all",
    )
    parser.add_argument(
        "--forwarded-allow-ips",
        metavar="IPS",
        default=None,
        help="comma-separated addresses or networks of the reverse proxies whose "
        "X-Forwarded-For/-Proto headers are trusted (none: those headers are ignored)",
    )
    parser.add_argument(
        "--metrics-port",
        type=port,
        default=None,
        help="serve Prometheus metrics (GET /metrics, all workers summed) on this port of "
        "--metrics-host, a listener apart from the public one (default: no metrics)",
    )
    parser.add_argument(
        "--metrics-host",
        default="127.0.0.1",
        help="interface of the metrics listener (127.0.0.1); metrics reveal traffic shapes, "
        "keep them off public networks",
    )
    return parser
