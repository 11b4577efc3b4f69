"""Spans of the verification core, used only when :class:`~litestar_logto.LogtoAuth` is given
a tracer (imported lazily then: without tracing, this module is never imported and the
authentication middleware runs exactly the code it ran before traces existed).

* ``verify access token``: one span per authenticated request, around bearer extraction,
  signature and claims checks and authorization. Attributes: ``logto.auth.outcome``
  (``verified`` or ``refused``) and, when refused, ``logto.auth.reason`` (``expired``,
  ``wrong_audience``, …) and ``http.response.status_code``. Never the token or its claims.
* ``jwks fetch``: one span per key set fetch (discovery and JWKS requests are its children,
  as client spans of the traced HTTP client), with ``logto.jwks.outcome`` (``ok``,
  ``not_modified`` or the failure reason: ``timeout``, ``jwks_status_500``, …).
"""

from __future__ import annotations

from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any

from opentelemetry.trace import Status, StatusCode, Tracer

from .errors import AuthError

if TYPE_CHECKING:
    from litestar.handlers import BaseRouteHandler
    from litestar.types import Receive, Scope, Send

    from .jwks import FetchStats
    from .litestar import Authenticate


def traced_authentication(tracer: Tracer, authenticate: Authenticate) -> Authenticate:
    """``authenticate`` inside a ``verify access token`` span."""

    async def authenticate_in_span(
        scope: Scope, receive: Receive, send: Send, handler: BaseRouteHandler, requirement: object
    ) -> None:
        with tracer.start_as_current_span(
            "verify access token", record_exception=False, set_status_on_exception=False
        ) as span:
            try:
                await authenticate(scope, receive, send, handler, requirement)
            except AuthError as exc:
                span.set_attributes(
                    {
                        "logto.auth.outcome": "refused",
                        "logto.auth.reason": exc.reason,
                        "http.response.status_code": exc.status_code,
                    }
                )
                span.set_status(Status(StatusCode.ERROR, exc.reason))
                raise
            except Exception as exc:
                span.set_attribute("error.type", type(exc).__qualname__)
                span.set_status(Status(StatusCode.ERROR))
                raise
            span.set_attribute("logto.auth.outcome", "verified")

    return authenticate_in_span


async def traced_fetch(tracer: Tracer, fetch: Coroutine[Any, Any, bool], stats: FetchStats) -> bool:
    """Await ``fetch`` (a key set fetch answering whether it got keys) in a ``jwks fetch``
    span whose outcome is read from ``stats``."""
    with tracer.start_as_current_span(
        "jwks fetch", record_exception=False, set_status_on_exception=False
    ) as span:
        not_modified = stats.not_modified
        ok = await fetch
        if ok:
            outcome = "not_modified" if stats.not_modified > not_modified else "ok"
        else:
            outcome = stats.last_failure or "error"
            span.set_status(Status(StatusCode.ERROR, outcome))
        span.set_attribute("logto.jwks.outcome", outcome)
        return ok
