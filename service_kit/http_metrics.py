"""Request counts and latencies per route template, for both programs.

:func:`instrument` wraps a Litestar app's outermost ASGI handler (where Litestar itself puts
its OpenTelemetry middleware), so every request is measured, the router's 404 and 405
included, from the moment the app receives it until the app returns (the response sent).

Labels are bounded whatever a client sends: ``route`` is the template Litestar matched
(``/shopping/orders/{order_id}``, never the path) or ``unmatched``; ``method`` is one of
:data:`METHODS` or ``other``; ``status`` the three digits of the answer.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Final

from litestar.enums import ScopeType

from .metrics import Family, HistogramSeries, Registry

if TYPE_CHECKING:
    from litestar import Litestar
    from litestar.types import ASGIApp, Message, Receive, Scope, Send

UNMATCHED: Final = "unmatched"
"""The ``route`` of a request no route matched (404, 405): one series, whatever the path."""
METHODS: Final = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
"""Methods named in the ``method`` label; any other is ``other``."""
OTHER_METHOD: Final = "other"
REQUEST_SECONDS: Final = "http_request_duration_seconds"


def request_histogram(registry: Registry) -> Family:
    """The request latency family (its ``_count`` is the request count)."""
    return registry.histogram(
        REQUEST_SECONDS,
        "Time from receiving a request to having sent its response, per route template, "
        "method and status; _count is the number of requests.",
        ("route", "method", "status"),
    )


def instrument(app: Litestar, registry: Registry) -> None:
    """Measure every request of ``app`` into ``registry``."""
    app.asgi_handler = RequestMetrics(app.asgi_handler, request_histogram(registry))


class RequestMetrics:
    """ASGI middleware observing each HTTP request's latency under bounded labels."""

    def __init__(self, app: ASGIApp, family: Family) -> None:
        self.app = app
        self._family = family
        self._series: dict[tuple[object, str, int], HistogramSeries] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # an app that raises without answering: the server answers 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            elapsed = time.perf_counter() - started
            # Litestar's router writes the matched template into the scope it was handed.
            # The key is bounded too (the method normalised first): a scanner's made-up
            # methods cannot grow this dictionary.
            method: str = scope["method"]
            key = (
                scope.get("path_template"),
                method if method in METHODS else OTHER_METHOD,
                status,
            )
            series = self._series.get(key)
            if series is None:
                series = self._series[key] = self._bind(*key)
            series.observe(elapsed)

    def _bind(self, template: object, method: str, status: int) -> HistogramSeries:
        route = template if isinstance(template, str) else UNMATCHED
        return self._family.histogram_labels(route, method, str(status))
