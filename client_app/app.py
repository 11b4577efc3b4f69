"""The client app's factory: ``create_app(settings, *, http_client=None, session_store=None)``.

It receives its collaborators and reads no environment (``__main__`` does). What it wires:

* one :class:`httpx.AsyncClient` for the issuer and the resource API (the given one stays the
  caller's to close; one created here is closed at shutdown);
* the session store: the given Litestar :class:`~litestar.stores.base.Store`; else, with
  ``SESSION_REDIS_URL``, Redis for the documents and the per-session locks
  (:mod:`client_app.redis_sessions`: replicas share sessions; its pool is closed at shutdown,
  ``/health`` pings it); else a :class:`~client_app.file_sessions.SessionFileStore` in
  ``SESSION_DATABASE`` (mode 700), whose expired sessions are swept every hour. Per-session
  locks are in-process unless ``session_locks`` is given or Redis holds the sessions;
* :class:`~client_app.oidc.LogtoProvider` (discovery once per process),
  :class:`~client_app.gateway.LogtoGateway` and
  :class:`~client_app.api_client.ResourceApiClient`, in ``app.state.context``;
* Jinja templates (autoescaped), ``/static``, the CSRF check, error pages, and the security
  headers on every response (a ``before_send`` hook, so the router's 404 and 405 have them);
* with a ``tracer_provider`` (``OTEL_EXPORTER_OTLP_ENDPOINT`` set): a server span per request
  and a client span per outgoing request of its own httpx client, which sends the W3C
  ``traceparent`` the resource API continues (:mod:`service_kit.tracing`).
* with a ``metrics`` registry: request latencies per route template
  (:func:`service_kit.http_metrics.instrument`), sign-ins, refreshes and session-store errors
  (:mod:`client_app.metrics`), exported by ``--metrics-port`` (:mod:`service_kit.cli`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import urlsplit

import httpx
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from litestar import Litestar
from litestar.datastructures import State
from litestar.plugins.jinja import JinjaTemplateEngine
from litestar.static_files import create_static_files_router
from litestar.stores.base import Store
from litestar.template import TemplateConfig

from service_kit.head import answer_head_as_get
from service_kit.http_metrics import instrument
from service_kit.metrics import Registry

from .api_client import ResourceApiClient
from .context import AppContext, always_healthy
from .display import format_time, relative
from .errors import SessionsUnavailable
from .file_sessions import SessionFileStore
from .gateway import LogtoGateway
from .handlers import EXCEPTION_HANDLERS, enforce_csrf
from .metrics import ClientMetrics, MeasuredLocks, MeasuredStore, refresh_outcome
from .oidc import LogtoProvider
from .redis_sessions import RedisSessions
from .routes import ROUTES
from .security import content_security_policy, security_headers
from .sessions import LockProvider, SessionStore
from .settings import Settings

if TYPE_CHECKING:
    from opentelemetry.trace import TracerProvider

logger = logging.getLogger("client_app")

PACKAGE: Final = Path(__file__).parent
MAX_BODY_BYTES: Final = 64 * 1024
SWEEP_INTERVAL_SECONDS: Final = 3600.0


def create_app(
    settings: Settings,
    *,
    http_client: httpx.AsyncClient | None = None,
    session_store: Store | None = None,
    session_locks: LockProvider | None = None,
    clock: Callable[[], float] = time.time,
    tracer_provider: TracerProvider | None = None,
    metrics: Registry | None = None,
) -> Litestar:
    """Build the client app. ``session_store`` and ``session_locks`` are the seam for shared
    sessions; by default Redis if ``SESSION_REDIS_URL`` is set, else a file store, with
    in-process locks. With a ``tracer_provider``, requests and the app's own HTTP client (not a
    given one) are traced. ``metrics``: the registry to measure into (``None``: not exported)."""
    events = ClientMetrics(metrics)
    own_http = http_client is None
    plugins: list[Any] = []
    http_options: dict[str, Any] = {
        "headers": {"User-Agent": "logto-litestar-client-app"},
        "follow_redirects": False,
    }
    if tracer_provider is not None:
        from service_kit.tracing import TracingTransport, tracing_plugins  # noqa: PLC0415

        plugins = tracing_plugins(tracer_provider)
        if own_http:
            tracer = tracer_provider.get_tracer("client_app")
            http_options["transport"] = TracingTransport(tracer)
    http = http_client or httpx.AsyncClient(**http_options)
    shared = (
        RedisSessions(settings)
        if session_store is None and settings.session_redis_url is not None
        else None
    )
    own_file_store = session_store is None and shared is None
    store: Store
    if shared is not None:
        store = shared.store
        session_locks = session_locks or shared.locks
    else:
        store = session_store or SessionFileStore(settings.session_database)
    sessions = SessionStore(
        MeasuredStore(store, events),
        secret=settings.session_secret,
        max_age_seconds=settings.session_max_age_seconds,
        locks=MeasuredLocks(session_locks, events) if session_locks is not None else None,
    )
    provider = LogtoProvider(
        settings.logto_endpoint,
        http_client=http,
        timeout=settings.logto_timeout_seconds,
        on_refresh=lambda error: events.refresh(refresh_outcome(error)),
    )
    context = AppContext(
        settings=settings,
        gateway=LogtoGateway(
            settings, provider=provider, sessions=sessions, clock=clock, metrics=events
        ),
        api=ResourceApiClient(
            settings.resource_api_url,
            http_client=http,
            timeout=settings.resource_api_timeout_seconds,
        ),
        clock=clock,
        sessions_healthy=shared.healthy if shared is not None else always_healthy,
    )

    @contextlib.asynccontextmanager
    async def lifespan(_: Litestar) -> AsyncIterator[None]:
        sweeper = None
        if own_file_store:  # Redis expires its keys itself
            settings.session_database.mkdir(mode=0o700, parents=True, exist_ok=True)
            sweeper = asyncio.get_running_loop().create_task(_sweep(store))
        if shared is not None and not await shared.healthy():
            # Start anyway: /health says 503 and pages say "try again" until Redis is back.
            logger.warning(
                "session store unreachable at start-up", extra={"event": "session_store_down"}
            )
        try:
            yield
        finally:
            if sweeper is not None:
                sweeper.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await sweeper
            if shared is not None:
                await shared.aclose()
            if own_http:
                await http.aclose()

    issuer = urlsplit(settings.logto_endpoint)
    app = Litestar(
        route_handlers=[
            *ROUTES,
            create_static_files_router(path="/static", directories=[PACKAGE / "static"]),
        ],
        plugins=plugins,
        state=State({"context": context}),
        lifespan=[lifespan],
        template_config=TemplateConfig(instance=_templates()),
        before_request=enforce_csrf,
        before_send=[
            security_headers(csp=content_security_policy([f"{issuer.scheme}://{issuer.netloc}"]))
        ],
        exception_handlers=EXCEPTION_HANDLERS,
        request_max_body_size=MAX_BODY_BYTES,
        openapi_config=None,
        logging_config=None,  # __main__ configures JSON logging; no Litestar defaults
    )
    answer_head_as_get(app)
    if metrics is not None:
        instrument(app, metrics)
    return app


def _templates() -> JinjaTemplateEngine:
    environment = Environment(
        loader=FileSystemLoader(PACKAGE / "templates"),
        autoescape=select_autoescape(default=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    environment.filters["time"] = format_time
    environment.filters["relative"] = relative
    return JinjaTemplateEngine.from_environment(environment)


async def _sweep(store: Store) -> None:
    """Delete expired and unreadable sessions now and then (files are only checked when
    read otherwise)."""
    delete_expired = getattr(store, "delete_expired", None)
    if delete_expired is None:
        return
    while True:
        try:
            await delete_expired()
        except (OSError, SessionsUnavailable):
            logger.warning("session sweep failed", extra={"event": "session_sweep_failed"})
        await asyncio.sleep(SWEEP_INTERVAL_SECONDS)
