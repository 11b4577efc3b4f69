"""Small HTTP servers that run in threads of the test process, bound to 127.0.0.1.

* :class:`RequestHandler`: a quiet keep-alive handler that answers the ``methods`` it names
  with one method, ``answer``;
* :class:`BackgroundServer`: a ``ThreadingHTTPServer`` on a free port serving in a daemon
  thread, with an ``httpx`` client for the upstream it forwards to; the handler reaches the
  object that owns the server as :attr:`RequestHandler.owner`.

Used by the e2e recording proxy, the replicas' front door and the fault tests' issuer proxy.
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar, Generic, Self, TypeVar, cast

import httpx

HOST = "127.0.0.1"

OwnerT = TypeVar("OwnerT")


class RequestHandler(BaseHTTPRequestHandler, Generic[OwnerT]):
    """Answers every method in ``methods`` with :meth:`answer` (any other gets 501); logs
    nothing (the servers keep their own records, and never log tokens)."""

    protocol_version = "HTTP/1.1"  # keep-alive, like the programs behind the proxies
    methods: ClassVar[tuple[str, ...]] = ()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for method in cls.methods:
            setattr(cls, f"do_{method}", RequestHandler._dispatch)

    def _dispatch(self) -> None:
        self.answer()

    @property
    def owner(self) -> OwnerT:
        """What serves: the :class:`BackgroundServer` running this handler, else the server
        the handler was given."""
        server = self.server
        return cast(OwnerT, server.owner if isinstance(server, _ThreadedServer) else server)

    def answer(self) -> None:
        """Answer the request."""
        raise NotImplementedError

    def read_body(self) -> bytes:
        """The request body (``Content-Length`` bytes; none without it)."""
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - base signature
        """Quiet."""


class BackgroundServer:
    """Serves ``handler`` at ``http://127.0.0.1:<free port>`` in a daemon thread once started;
    ``_http`` is the client to the upstream (``timeout`` seconds, redirects not followed)."""

    def __init__(self, handler: type[RequestHandler[Any]], *, timeout: float) -> None:
        self._http = httpx.Client(timeout=timeout, follow_redirects=False)
        self._server = _ThreadedServer(self, handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        """The server's base URL."""
        return f"http://{HOST}:{self._server.server_address[1]}"

    def start(self) -> Self:
        """Serve in a background thread."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the upstream client."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)
        self._http.close()


class _ThreadedServer(ThreadingHTTPServer):
    daemon_threads = True  # a kept-alive connection must not hold up shutdown

    def __init__(self, owner: BackgroundServer, handler: type[RequestHandler[Any]]) -> None:
        super().__init__((HOST, 0), handler)
        self.owner = owner
