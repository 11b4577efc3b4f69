"""One JSON access line per HTTP request, cheap enough to leave on.

:class:`AccessLog` wraps an ASGI app (the server runner in :mod:`service_kit.server` puts it
outside each program's Litestar app). Each line has the shape of every other log line
(:mod:`service_kit.json_logging`): ``time``, ``level`` (``INFO``), ``logger`` (``access``) and
``message`` — ``127.0.0.1:53122 - "GET /shopping/orders HTTP/1.1" 200`` — and nothing else: no
query string (where a misbehaving client may have put an ``access_token`` and where the sign-in
callback carries the authorization ``code``), no header, no body.

Why not a ``logging`` call per request: a ``LogRecord``, the formatter and a locked, flushed
``write`` per line cost about 17 % of the throughput of ``GET /health``. Here a line is a few
byte concatenations of pieces escaped by msgspec once and remembered (a client address, a
request line with its status: both repeat), appended to a buffer that is written
in one ``write`` when it holds :data:`FLUSH_LINES` lines or :data:`FLUSH_SECONDS` after its
first line, and when the server stops (the lifespan's shutdown, and at exit). A line may so
reach the stream up to 50 ms after the records ``logging`` wrote in the meantime.

The line is written only when the root logger is enabled for ``INFO`` (``LOG_LEVEL=WARNING``
silences access lines, as it silenced uvicorn's).
"""

from __future__ import annotations

import asyncio
import atexit
import logging
import sys
import time
from collections.abc import Awaitable, Callable, MutableMapping
from datetime import UTC, datetime
from typing import Any, Final, TextIO

import msgspec

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[..., Awaitable[None]]  # (scope, receive, send); Litestar types them its own way

FLUSH_LINES: Final = 256
"""A buffer holding this many lines is written at once."""
FLUSH_SECONDS: Final = 0.05
"""Otherwise it is written this long after its first line."""
ACCESS_LOGGER: Final = "access"
"""The ``logger`` field of an access line."""
_PREFIX: Final = b'{"time":"'
_MIDDLE: Final = (
    b'","level":"INFO","logger":"' + ACCESS_LOGGER.encode() + b'","message":'
)  # fmt: skip
_encode = msgspec.json.Encoder().encode
_MILLIS: Final = tuple(b".%03d+00:00" % millis for millis in range(1000))
_CACHE_ENTRIES: Final = 4096
_now = time.time


class AccessLogWriter:
    """Buffer access lines and write them to ``stream`` in batches."""

    def __init__(self, stream: TextIO | None = None) -> None:
        """Write to ``stream``, or to ``sys.stderr`` as it is when a batch is written."""
        self._stream = stream
        self._pending: list[tuple[Any, ...]] = []
        self._timer: asyncio.TimerHandle | None = None
        self._second = -1
        self._stamp = b""
        # The JSON-encoded pieces of recent messages: a client address ("127.0.0.1:53122 - ")
        # and a request line with its status ("GET /health HTTP/1.1" 200) repeat from request
        # to request, so each is escaped once (bounded: cleared when full).
        self._clients: dict[object, bytes] = {}
        self._requests: dict[tuple[object, ...], bytes] = {}
        atexit.register(self.flush)

    def record(self, scope: Scope, status: int) -> None:
        """Buffer the access line of the request ``scope`` answered with ``status``.

        Only the facts are kept on the request's path (one tuple); lines are built when the
        batch is written, in one loop."""
        pending = self._pending
        pending.append(
            (
                _now(),
                scope.get("client"),
                scope.get("method"),
                scope.get("raw_path") or scope.get("path"),
                scope.get("http_version"),
                status,
            )
        )
        if len(pending) == 1:  # the first line of a batch: write it at the latest in a while
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:  # no loop (a synchronous caller): write at once
                self.flush()
                return
            self._timer = loop.call_later(FLUSH_SECONDS, self.flush)
        elif len(pending) >= FLUSH_LINES:
            self.flush()

    def _lines(self) -> list[bytes]:
        clients, requests = self._clients, self._requests
        lines = []
        for now, client, method, path, version, status in self._pending:
            head = clients.get(client)
            if head is None:
                address = f"{client[0]}:{client[1]}" if client else "-"
                head = _encode(f"{address} - ")[:-1]  # the opening quote and the address
                _remember(clients, client, head)
            key = (method, path, version, status)
            tail = requests.get(key)
            if tail is None:
                tail = _encode(_request_line(method, path, version, status))[1:]  # quote kept
                _remember(requests, key, tail)
            second = int(now)
            if second != self._second:
                self._second = second
                stamp = datetime.fromtimestamp(second, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S")
                self._stamp = stamp.encode()
            millis = _MILLIS[int((now - second) * 1000)]
            lines.append(b"".join((_PREFIX, self._stamp, millis, _MIDDLE, head, tail, b"}\n")))
        self._pending.clear()
        return lines

    def flush(self) -> None:
        """Write every buffered line in one ``write``."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if not self._pending:
            return
        data = b"".join(self._lines())
        stream = self._stream or sys.stderr
        try:
            binary = getattr(stream, "buffer", None)
            if binary is None:
                stream.write(data.decode())
            else:  # the bytes as they are, after what the text layer still holds
                stream.flush()
                binary.write(data)
            stream.flush()
        except (OSError, ValueError):  # a closed or broken stream must not break a request
            pass


def _remember(cache: dict[Any, bytes], key: object, value: bytes) -> None:
    if len(cache) >= _CACHE_ENTRIES:
        cache.clear()
    cache[key] = value


class AccessLog:
    """ASGI middleware: one access line per HTTP request, and the ``Server`` header value.

    ``server_header`` replaces the value of the ``Server`` header the HTTP server would add
    (granian always adds one and lets the app replace its value, see
    :mod:`service_kit.server`): ``b""`` sends an empty value that names no software.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        writer: AccessLogWriter | None,
        server_header: bytes | None = None,
    ) -> None:
        """Wrap ``app``; ``writer=None`` writes no access line (the header is still set)."""
        self.app = app
        self.writer = writer
        self.server_header = server_header

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve ``scope``; log it if it is an HTTP request."""
        kind = scope["type"]
        if kind != "http":
            if kind == "lifespan" and self.writer is not None:
                await self.app(scope, receive, self._flushing(send))
                return
            await self.app(scope, receive, send)
            return
        status = 0
        server_header = self.server_header

        async def send_with_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                if server_header is not None:
                    message["headers"] = [*message.get("headers", ()), (b"server", server_header)]
            await send(message)

        try:
            await self.app(scope, receive, send_with_status)
        except Exception:
            status = status or 500  # what the server answers for an app that raised
            raise
        finally:
            if self.writer is not None and logging.root.isEnabledFor(logging.INFO):
                self.writer.record(scope, status)

    def _flushing(self, send: Send) -> Send:
        writer = self.writer

        async def send_and_flush(message: Message) -> None:
            if message["type"].startswith("lifespan.shutdown") and writer is not None:
                writer.flush()
            await send(message)

        return send_and_flush


def _request_line(
    method: str | None, path: bytes | str | None, version: str | None, status: int
) -> str:
    """``"GET /path HTTP/1.1" 200``: the path without a query string (ASGI keeps it apart;
    cut anyway should a server's raw_path carry one)."""
    if isinstance(path, bytes):
        path = path.decode("latin-1")
    path = (path or "").partition("?")[0]
    return f'"{method or ""} {path} HTTP/{version or "1.1"}" {status}'
