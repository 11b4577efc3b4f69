"""OpenTelemetry traces for both programs, on only when ``OTEL_EXPORTER_OTLP_ENDPOINT`` is set.

Imported only when tracing is on (:func:`service_kit.cli.run` and the app factories import it
lazily): with the variable unset neither program imports the SDK's tracing or an exporter,
creates a tracer provider or starts an exporter thread. What it provides:

* :func:`otlp_provider`: the tracer provider of one worker process, built after granian forked
  it (a batch processor's export thread does not survive a fork). The SDK reads the standard
  variables itself (``OTEL_SERVICE_NAME``, ``OTEL_RESOURCE_ATTRIBUTES``, ``OTEL_TRACES_SAMPLER``,
  ``OTEL_EXPORTER_OTLP_HEADERS``, ``OTEL_BSP_*``, …); spans go out over OTLP/HTTP (protobuf).
* :class:`RedactingSpanProcessor`, in front of every exporter: no query string, credential
  header or cookie leaves the process in a span, whatever an instrumentation recorded.
* :func:`tracing_plugins`: Litestar's OpenTelemetry plugin (one server span per request, the
  caller's W3C ``traceparent`` continued), named and tagged by route template once routed.
* :class:`TracingTransport`: an httpx transport making one client span per outgoing request and
  sending the W3C ``traceparent`` of that span.
* :func:`traced_calls`: a proxy running every public method of an object (the store) in a span.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from functools import wraps
from typing import TYPE_CHECKING, Any, Final, TypeVar

import httpx
from litestar.plugins import InitPlugin
from litestar.plugins.opentelemetry import OpenTelemetryConfig, OpenTelemetryPlugin
from opentelemetry import propagate, trace
from opentelemetry.metrics import NoOpMeterProvider
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.trace import SpanKind, Status, StatusCode

from .head import HEAD_MARK, request_method

if TYPE_CHECKING:
    from litestar.config.app import AppConfig
    from litestar.types import ASGIApp, Receive, Scope, Send
    from opentelemetry.context import Context
    from opentelemetry.sdk.trace import Span
    from opentelemetry.util.types import Attributes

T = TypeVar("T")

HTTP_METHODS: Final = frozenset(
    {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT"}
)
URL_ATTRIBUTES: Final = frozenset({"http.url", "http.target", "url.full", "url.original"})
"""Attributes holding a URL or a path with its query string: the query is cut off."""
DROPPED_ATTRIBUTES: Final = frozenset({"url.query"})
SENSITIVE_HEADER_PARTS: Final = ("authorization", "cookie", "token", "secret", "session", "key")
"""A captured header attribute (``http.request.header.<name>``) naming one of these is dropped
(``OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_*`` could otherwise ask for ``Authorization``)."""
_HEADER_PREFIXES: Final = ("http.request.header.", "http.response.header.")
_EXCLUDED_ASGI_SPANS: Final[list[Any]] = ["receive", "send"]


def otlp_provider(service_name: str) -> TracerProvider:
    """This process's tracer provider, exporting over OTLP/HTTP in batches (one thread)."""
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import (  # noqa: PLC0415
        OTLPSpanExporter,  # the exporter's import (protobuf, requests) only when exporting
    )
    from opentelemetry.sdk.trace.export import BatchSpanProcessor  # noqa: PLC0415

    return build_provider(service_name, BatchSpanProcessor(OTLPSpanExporter()))


def build_provider(service_name: str, processor: SpanProcessor) -> TracerProvider:
    """A tracer provider sending its spans through :class:`RedactingSpanProcessor` to
    ``processor``. ``service_name`` unless ``OTEL_SERVICE_NAME`` (or
    ``OTEL_RESOURCE_ATTRIBUTES``) names the service; ``process.pid`` tells workers apart."""
    resource = Resource.create({"process.pid": os.getpid()})
    if str(resource.attributes.get(SERVICE_NAME, "")).startswith("unknown_service"):
        resource = resource.merge(Resource({SERVICE_NAME: service_name}))
    # shutdown_on_exit: the worker's lifespan shutdown flushes instead (a forked worker exits
    # without running atexit handlers).
    provider = TracerProvider(resource=resource, shutdown_on_exit=False)
    provider.add_span_processor(RedactingSpanProcessor(processor))
    return provider


class RedactingSpanProcessor(SpanProcessor):
    """Hand ``inner`` each ended span without query strings, credential headers or cookies."""

    def __init__(self, inner: SpanProcessor) -> None:
        self._inner = inner

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        self._inner.on_start(span, parent_context)

    def on_end(self, span: ReadableSpan) -> None:
        self._inner.on_end(redacted(span))

    def shutdown(self) -> None:
        self._inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self._inner.force_flush(timeout_millis)


def redacted(span: ReadableSpan) -> ReadableSpan:
    """``span``, or a copy of it whose attributes say nothing secret."""
    attributes = span.attributes or {}
    if not any(_needs_redaction(name, value) for name, value in attributes.items()):
        return span
    clean: dict[str, Any] = {}
    for name, value in attributes.items():
        if name in DROPPED_ATTRIBUTES or _sensitive_header(name):
            continue
        clean[name] = _without_query(value) if name in URL_ATTRIBUTES else value
    return ReadableSpan(
        name=span.name,
        context=span.context,
        parent=span.parent,
        resource=span.resource,
        attributes=clean,
        events=span.events,
        links=span.links,
        kind=span.kind,
        status=span.status,
        start_time=span.start_time,
        end_time=span.end_time,
        instrumentation_scope=span.instrumentation_scope,
    )


def _needs_redaction(name: str, value: object) -> bool:
    if name in DROPPED_ATTRIBUTES or _sensitive_header(name):
        return True
    return name in URL_ATTRIBUTES and isinstance(value, str) and ("?" in value or "#" in value)


def _sensitive_header(name: str) -> bool:
    if not name.startswith(_HEADER_PREFIXES):
        return False
    header = name.rsplit(".", 1)[-1].lower()
    return any(part in header for part in SENSITIVE_HEADER_PARTS)


def _without_query(value: object) -> object:
    if not isinstance(value, str):
        return value
    return value.split("?", 1)[0].split("#", 1)[0]


# -- requests -----------------------------------------------------------------------------------


def tracing_plugins(provider: trace.TracerProvider) -> list[InitPlugin]:
    """The plugins tracing an app's requests: Litestar's OpenTelemetry plugin (outermost: one
    server span per request, continuing the caller's trace) and the route naming."""
    config = OpenTelemetryConfig(
        tracer_provider=provider,
        meter_provider=NoOpMeterProvider(),  # metrics are Prometheus's job (GET /metrics)
        scope_span_details_extractor=_span_details,
        exclude_spans=_EXCLUDED_ASGI_SPANS,
        # Captured headers (OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_*) never show these.
        http_capture_headers_sanitize_fields=[f".*{part}.*" for part in SENSITIVE_HEADER_PARTS],
    )
    return [OpenTelemetryPlugin(config), RouteNaming()]


def _span_details(scope: Scope) -> tuple[str, dict[str, Any]]:
    # Before routing: the method only (a path may be anything a client made up); the route
    # template replaces it once the router found the route (RouteNaming). A HEAD served as
    # GET (service_kit.head) is named and attributed HEAD.
    method = request_method(scope).upper()
    if method not in HTTP_METHODS:
        return "HTTP", {}
    head = {"http.method": method, "http.request.method": method} if scope.get(HEAD_MARK) else {}
    return method, head


class RouteNaming(InitPlugin):
    """Name each request's server span ``<METHOD> <route template>`` and set ``http.route``
    (the template, e.g. ``/shopping/orders/{order_id}``), never the concrete path."""

    def on_app_init(self, app_config: AppConfig) -> AppConfig:
        # First: the outermost of the app's middleware, so a refused request is named too.
        app_config.middleware = [_name_by_route, *app_config.middleware]
        return app_config


def _name_by_route(app: ASGIApp) -> ASGIApp:
    async def named(scope: Scope, receive: Receive, send: Send) -> None:
        span = trace.get_current_span()
        template = scope.get("path_template")  # set by Litestar's router
        if template and span.is_recording():
            method = request_method(scope)
            span.update_name(f"{method} {template}" if method else str(template))
            span.set_attribute("http.route", str(template))
        await app(scope, receive, send)

    return named


# -- outgoing HTTP ------------------------------------------------------------------------------


class TracingTransport(httpx.AsyncBaseTransport):
    """One ``CLIENT`` span per request (``url.full`` without its query) and the W3C
    ``traceparent`` of that span in the request, so the server continues the trace."""

    def __init__(self, tracer: trace.Tracer, inner: httpx.AsyncBaseTransport | None = None) -> None:
        self._tracer = tracer
        self._inner = inner or httpx.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        attributes: dict[str, str | int] = {
            "http.request.method": request.method,
            "server.address": url.host,
            "url.full": str(url.copy_with(query=None, fragment=None)),
        }
        if url.port is not None:
            attributes["server.port"] = url.port
        with self._tracer.start_as_current_span(
            request.method,
            kind=SpanKind.CLIENT,
            attributes=attributes,
            record_exception=False,  # an exception's text may quote the request
            set_status_on_exception=False,
        ) as span:
            propagate.inject(request.headers)
            try:
                response = await self._inner.handle_async_request(request)
            except Exception as exc:
                span.set_attribute("error.type", type(exc).__qualname__)
                span.set_status(Status(StatusCode.ERROR))
                raise
            span.set_attribute("http.response.status_code", response.status_code)
            if response.status_code >= httpx.codes.INTERNAL_SERVER_ERROR:
                span.set_attribute("error.type", str(response.status_code))
                span.set_status(Status(StatusCode.ERROR))
            return response

    async def aclose(self) -> None:
        await self._inner.aclose()


def traced_http_client(tracer: trace.Tracer, **options: Any) -> httpx.AsyncClient:  # noqa: ANN401
    """An :class:`httpx.AsyncClient` (``options`` as httpx takes them) whose requests are
    traced by :class:`TracingTransport`."""
    return httpx.AsyncClient(transport=TracingTransport(tracer), **options)


# -- calls --------------------------------------------------------------------------------------


def traced_calls(
    target: T, tracer: trace.Tracer, *, prefix: str, attributes: Mapping[str, str] | None = None
) -> T:
    """A stand-in for ``target`` whose public methods (coroutine functions: a synchronous one is
    refused, it would run on the stand-in) each await ``target``'s in a span named
    ``<prefix>.<method>``. It is an instance of ``target``'s class (Litestar checks a dependency
    against its declared type), built without running that class's ``__init__``; any other
    attribute is ``target``'s. Arguments and results are not recorded; a failure records the
    exception's type only."""
    cls = type(target)
    span_attributes: dict[str, str] = dict(attributes or {})
    namespace: dict[str, Any] = {
        "__getattr__": lambda self, name: getattr(self.__dict__["_traced_target"], name),
    }
    for name in dir(cls):
        member = inspect.getattr_static(cls, name)
        if name.startswith("_") or not inspect.isfunction(member):
            continue
        if not inspect.iscoroutinefunction(member):
            msg = f"{cls.__name__}.{name} is not a coroutine function: it cannot be traced"
            raise TypeError(msg)
        namespace[name] = _delegate(name, member, tracer, f"{prefix}.{name}", span_attributes)
    stand_in: T = object.__new__(type(f"Traced{cls.__name__}", (cls,), namespace))
    stand_in.__dict__["_traced_target"] = target
    return stand_in


def _delegate(
    name: str,
    method: Callable[..., Any],
    tracer: trace.Tracer,
    span_name: str,
    attributes: dict[str, str],
) -> Callable[..., Any]:
    attributes = {**attributes, "db.operation.name": name}

    @wraps(method)
    async def call(self: Any, *args: Any, **kwargs: Any) -> Any:  # noqa: ANN401
        with _call_span(tracer, span_name, attributes) as span:
            try:
                return await getattr(self.__dict__["_traced_target"], name)(*args, **kwargs)
            except BaseException as exc:
                _failed(span, exc)
                raise

    return call


def _call_span(
    tracer: trace.Tracer, name: str, attributes: Attributes
) -> AbstractContextManager[trace.Span]:
    return tracer.start_as_current_span(
        name,
        kind=SpanKind.CLIENT,
        attributes=attributes,
        record_exception=False,
        set_status_on_exception=False,
    )


def _failed(span: trace.Span, exc: BaseException) -> None:
    span.set_attribute("error.type", type(exc).__qualname__)
    span.set_status(Status(StatusCode.ERROR))
