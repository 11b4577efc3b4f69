"""The resource API application factory.

``create_app`` receives its collaborators (settings, HTTP client, clock, store) and reads no
environment; ``__main__`` is the only place that does. What it wires:

* ``LogtoAuth`` (the verification core's plugin): the middleware enforcing each route's
  declaration, the ``access_token`` dependency, RFC 6750 errors and RFC 9728 metadata; kept in
  ``app.state.auth`` for ``/health`` and tests;
* the ``store`` dependency: the given :class:`~resource_api.storage.Store`, or one opened at
  start-up and closed at shutdown: a :class:`~resource_api.postgres_store.PostgresStore` when
  ``DATABASE_URL`` is set (migrating the database first), else a
  :class:`~resource_api.storage.SqliteStore` on the ``RESOURCE_API_DATABASE`` file;
* strict JSON bodies (``json_body``), a 64 KiB body limit, and the non-auth error shape
  (``http_errors``);
* the OpenAPI document at ``/schema/openapi.json`` with the Bearer security scheme;
* with a ``tracer_provider`` (``OTEL_EXPORTER_OTLP_ENDPOINT`` set): request, token
  verification, key fetch, store and outgoing HTTP spans (:mod:`service_kit.tracing`).
* with a ``metrics`` registry: request latencies per route template
  (:func:`service_kit.http_metrics.instrument`) and the authentication metrics
  (:mod:`resource_api.metrics`), exported by ``--metrics-port`` (:mod:`service_kit.cli`).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any, Final, TypeAlias

import httpx
from litestar import Litestar
from litestar.datastructures import State
from litestar.di import Provide
from litestar.openapi import OpenAPIConfig
from litestar.openapi.spec import Server
from litestar_logto import LogtoAuth

from service_kit.head import answer_head_as_get
from service_kit.http_metrics import instrument
from service_kit.metrics import Registry

from . import metrics as api_metrics
from .http_errors import EXCEPTION_HANDLERS
from .json_body import require_strict_json_body
from .postgres_store import PostgresStore
from .routes import ROUTES, health_route
from .routes.app_store import opened
from .routes.contract import SECURITY_COMPONENTS, ClosedStructSchemaPlugin
from .settings import Settings
from .storage import SqliteStore, Store

Lifespan: TypeAlias = Callable[[Litestar], contextlib.AbstractAsyncContextManager[None]]

if TYPE_CHECKING:
    from opentelemetry.trace import Tracer, TracerProvider

MAX_BODY_BYTES: Final = 64 * 1024
API_TITLE: Final = "Logto-protected resource API"
API_VERSION: Final = "0.1.0"


def create_app(
    settings: Settings,
    *,
    http_client: httpx.AsyncClient | None = None,
    clock: Callable[[], float] = time.time,
    store: Store | None = None,
    tracer_provider: TracerProvider | None = None,
    metrics: Registry | None = None,
) -> Litestar:
    """Build the resource API. A given ``http_client`` or ``store`` stays the caller's to
    close; the ones created here are closed when the app shuts down. With a
    ``tracer_provider``, requests, verifications, key fetches, store calls and the key set's
    own HTTP client (not a given one) are traced. ``metrics``: the registry to measure into
    (``None``: nothing is measured)."""
    plugins: list[Any] = []
    lifespans: list[Lifespan] = []
    tracer = None
    if tracer_provider is not None:
        plugins, lifespans, tracer, http_client = _tracing(tracer_provider, http_client)
    auth = LogtoAuth(settings.auth_config(), http_client=http_client, clock=clock, tracer=tracer)

    @contextlib.asynccontextmanager
    async def open_store(app: Litestar) -> AsyncIterator[None]:
        if app.state.store is not None:
            yield
            return
        if settings.database_url is not None:
            app.state.store = await PostgresStore.open(settings.database_url.reveal(), clock=clock)
        else:
            app.state.store = SqliteStore(settings.database, clock=clock)
        try:
            yield
        finally:
            await app.state.store.close()
            app.state.store = None

    state = State({"auth": auth, "store": store, "settings": settings})

    def provide_store() -> Store:
        # A closure over the app's state rather than a provider taking ``state``: Litestar
        # resolves a provider's own parameters on every request (the ``state`` one alone cost
        # about 10 µs of a ``GET /shopping/orders``).
        return opened(state.store)

    app = Litestar(
        route_handlers=[health_route(auth), *ROUTES],
        plugins=[*plugins, auth, ClosedStructSchemaPlugin()],
        state=state,
        lifespan=[open_store, *lifespans],
        dependencies={"store": Provide(provide_store, sync_to_thread=False)},
        signature_namespace={"Store": Store},
        before_request=require_strict_json_body,
        exception_handlers=EXCEPTION_HANDLERS,
        request_max_body_size=MAX_BODY_BYTES,
        openapi_config=OpenAPIConfig(
            title=API_TITLE,
            version=API_VERSION,
            description=(
                "Demo shopping, store and organization routes protected with Logto access "
                "tokens. Errors are JSON `{error, error_description}`; authentication errors "
                "follow RFC 6750 and carry a `WWW-Authenticate: Bearer` challenge."
            ),
            components=SECURITY_COMPONENTS,
            servers=[Server(url=settings.resource_api_url or "/")],
        ),
        logging_config=None,  # __main__ configures structured logging; no Litestar defaults
    )
    answer_head_as_get(app)
    if metrics is not None:
        instrument(app, metrics)
        api_metrics.register(metrics, auth, clock=clock)
    return app


def _tracing(
    provider: TracerProvider, http_client: httpx.AsyncClient | None
) -> tuple[list[Any], list[Lifespan], Tracer, httpx.AsyncClient | None]:
    """Plugins, lifespans, tracer and key set HTTP client of a traced app."""
    from service_kit.tracing import (  # noqa: PLC0415 - only when tracing
        traced_calls,
        traced_http_client,
        tracing_plugins,
    )

    tracer = provider.get_tracer("resource_api")
    own_http = traced_http_client(tracer) if http_client is None else None

    @contextlib.asynccontextmanager
    async def trace_store(app: Litestar) -> AsyncIterator[None]:
        # After open_store: the store is there; every call of it now runs in a span.
        store: Store = app.state.store
        app.state.store = traced_calls(
            store, tracer, prefix="store", attributes={"db.system.name": store.db_system}
        )
        try:
            yield
        finally:
            app.state.store = store
            if own_http is not None:
                await own_http.aclose()

    return tracing_plugins(provider), [trace_store], tracer, own_http or http_client
