"""``HEAD`` answered as the ``GET`` of the same URL, without its body (RFC 9110 §9.3.2).

Litestar routes a ``HEAD`` only to handlers declared for it, and refuses a ``HEAD`` handler that
returns a body, so a plain ``@get`` page answered ``HEAD`` with 405: uptime checks and link
checkers that probe with ``HEAD`` saw an error where a browser saw the page.
:func:`answer_head_as_get` wraps a Litestar app's ASGI handler (where
:func:`service_kit.http_metrics.instrument` puts its own, which it must come before): a
``HEAD`` goes through routing, middleware, authentication and the handler as a ``GET``, and the
answer keeps its status and headers (``Content-Length`` and ``Content-Type`` included) while the
body is not sent. The scope says ``GET`` only while the app runs; the layers outside (metrics,
the access line) read ``HEAD``; inside, the handler, the middleware, Litestar's ``before_send``
hooks and the OpenTelemetry middleware see ``GET``, so what they log or trace asks
:func:`request_method`. A route without ``GET`` answers ``HEAD`` 405, as before, and a handler
declared for ``HEAD`` is not reached (Litestar's static-files router has one: its ``GET``
serves the ``HEAD`` instead, the file read and not sent).

Any other request costs one function call: the wrapper hands back the app's own coroutine.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import TYPE_CHECKING, Final

from litestar.enums import ScopeType

if TYPE_CHECKING:
    from litestar import Litestar
    from litestar.types import ASGIApp, HTTPScope, Message, Receive, Scope, Send

HEAD_MARK: Final = "service_kit.head"
"""Scope key set on a ``HEAD`` served as ``GET`` (:func:`request_method`)."""
_BODY_MESSAGES: Final = frozenset(
    {"http.response.body", "http.response.zerocopysend", "http.response.pathsend"}
)
"""Messages that carry (a part of) a response's body: the ASGI one and its extensions'."""


class HeadAsGet:
    """ASGI wrapper: a ``HEAD`` request is served as ``GET`` and its body dropped."""

    def __init__(self, app: ASGIApp) -> None:
        """Wrap ``app``."""
        self.app = app

    def __call__(self, scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
        """The app's coroutine for ``scope``, or, for a ``HEAD``, one that drops the body."""
        if scope["type"] != ScopeType.HTTP or scope["method"] != "HEAD":
            return self.app(scope, receive, send)
        return self._head(scope, receive, send)

    async def _head(self, scope: HTTPScope, receive: Receive, send: Send) -> None:
        async def send_without_body(message: Message) -> None:
            kind = message["type"]
            if kind in _BODY_MESSAGES:
                if message.get("more_body", False):
                    return  # a chunk of a streamed body: nothing of it is sent
                message = {"type": "http.response.body", "body": b"", "more_body": False}
            await send(message)

        scope[HEAD_MARK] = True  # type: ignore[typeddict-unknown-key]  # an extension key
        scope["method"] = "GET"
        try:
            await self.app(scope, receive, send_without_body)
        finally:
            scope["method"] = "HEAD"


def request_method(scope: Scope) -> str:
    """The method the client sent: ``HEAD`` for a ``HEAD`` served as ``GET``. For what is
    logged or traced inside the app, where ``scope["method"]`` says ``GET``."""
    if scope.get(HEAD_MARK):
        return "HEAD"
    return str(scope.get("method", ""))


def answer_head_as_get(app: Litestar) -> None:
    """Have ``app`` answer ``HEAD`` on every ``GET`` route (call before ``instrument``)."""
    app.asgi_handler = HeadAsGet(app.asgi_handler)
