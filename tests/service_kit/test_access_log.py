"""service_kit.access_log: one JSON access line per HTTP request, batched writes, the Server
header's value, nothing from the query string. (The real server's side of it: test_server.)"""

from __future__ import annotations

import asyncio
import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest

from service_kit import access_log
from service_kit.access_log import (
    FLUSH_LINES,
    FLUSH_SECONDS,
    AccessLog,
    AccessLogWriter,
    Message,
    Receive,
    Scope,
    Send,
)


class CountingStream(io.StringIO):
    """A stream that counts its writes."""

    writes = 0

    def write(self, text: str) -> int:
        self.writes += 1
        return super().write(text)


def _scope(path: str = "/shopping/orders", query: bytes = b"") -> Scope:
    return {
        "type": "http",
        "client": ("127.0.0.1", 40000),
        "method": "GET",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query,
        "http_version": "1.1",
    }


async def _receive() -> Message:
    return {"type": "http.request", "body": b"", "more_body": False}


def _app(status: int) -> Any:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        del scope, receive
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})

    return app


@pytest.fixture
def info_level() -> Iterator[None]:
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.INFO)
    yield
    root.setLevel(level)


async def _call(middleware: AccessLog, scope: Scope) -> list[Message]:
    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    await middleware(scope, _receive, send)
    return sent


async def test_a_line_has_the_shape_of_every_log_line(info_level: None) -> None:
    """time, level, logger and message; the path without its query string; the status."""
    stream = CountingStream()
    writer = AccessLogWriter(stream)
    await _call(AccessLog(_app(403), writer=writer), _scope(query=b"access_token=SECRET"))
    writer.flush()
    [line] = [json.loads(text) for text in stream.getvalue().splitlines()]
    assert set(line) == {"time", "level", "logger", "message"}
    assert (line["level"], line["logger"]) == ("INFO", "access")
    assert line["message"] == '127.0.0.1:40000 - "GET /shopping/orders HTTP/1.1" 403'
    assert line["time"].endswith("+00:00")
    assert "SECRET" not in stream.getvalue()


async def test_lines_are_written_in_batches(info_level: None) -> None:
    """FLUSH_LINES lines make one write; fewer wait for the timer (FLUSH_SECONDS)."""
    stream = CountingStream()
    middleware = AccessLog(_app(200), writer=AccessLogWriter(stream))
    for _ in range(FLUSH_LINES + 3):
        await _call(middleware, _scope())
    assert (stream.writes, len(stream.getvalue().splitlines())) == (1, FLUSH_LINES)
    await asyncio.sleep(FLUSH_SECONDS * 3)
    assert (stream.writes, len(stream.getvalue().splitlines())) == (2, FLUSH_LINES + 3)


async def test_the_lifespan_shutdown_writes_what_is_buffered(info_level: None) -> None:
    """Lines still buffered when the server stops reach the stream before it exits."""
    stream = CountingStream()
    writer = AccessLogWriter(stream)
    middleware = AccessLog(_app(200), writer=writer)
    await _call(middleware, _scope())
    assert stream.getvalue() == ""

    async def lifespan(scope: Scope, receive: Receive, send: Send) -> None:
        del scope, receive
        await send({"type": "lifespan.shutdown.complete"})

    await AccessLog(lifespan, writer=writer)({"type": "lifespan"}, _receive, _noop_send)
    assert len(stream.getvalue().splitlines()) == 1


async def _noop_send(message: Message) -> None:
    del message


async def test_an_app_that_raises_is_logged_as_500(info_level: None) -> None:
    """The server answers 500 for an app that raised before answering; the line says so."""

    async def failing(scope: Scope, receive: Receive, send: Send) -> None:
        raise RuntimeError

    stream = CountingStream()
    writer = AccessLogWriter(stream)
    with pytest.raises(RuntimeError):
        await _call(AccessLog(failing, writer=writer), _scope("/boom"))
    writer.flush()
    assert stream.getvalue().count('"GET /boom HTTP/1.1\\" 500') == 1


async def test_below_info_nothing_is_written() -> None:
    """At LOG_LEVEL=WARNING there is no access line."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.WARNING)
    try:
        stream = CountingStream()
        writer = AccessLogWriter(stream)
        await _call(AccessLog(_app(200), writer=writer), _scope())
        writer.flush()
    finally:
        root.setLevel(level)
    assert stream.getvalue() == ""


async def test_the_server_header_value_is_replaced(info_level: None) -> None:
    """The response carries the given Server value (granian then sends no name of its own);
    the app's other headers are kept."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": [(b"x-a", b"1")]})
        await send({"type": "http.response.body", "body": b""})

    sent = await _call(AccessLog(app, writer=None, server_header=b""), _scope())
    assert sent[0]["headers"] == [(b"x-a", b"1"), (b"server", b"")]


async def test_remembered_pieces_never_mix_requests_up(info_level: None) -> None:
    """Lines built from remembered pieces are each request's own, for other clients, paths
    (with or without raw_path, with characters JSON escapes) and statuses, in order; the
    memory is bounded."""
    stream = CountingStream()
    writer = AccessLogWriter(stream)
    scopes, expected = [], []
    for index in range(3):
        for status in (200, 401):
            scope = _scope(f'/p{index}/"quoted"')
            scope["client"] = ("127.0.0.1", 40000 + index)
            bare = dict(scope)
            del bare["raw_path"]
            scopes += [(scope, status), (bare, status)]
            line = f'127.0.0.1:{40000 + index} - "GET /p{index}/"quoted" HTTP/1.1" {status}'
            expected += [line, line]
    for scope, status in scopes * 2:
        writer.record(scope, status)
    writer.flush()
    lines = [json.loads(text)["message"] for text in stream.getvalue().splitlines()]
    assert lines == expected * 2
    assert len(set(lines)) == 6  # raw_path or path: the same line
    for index in range(access_log._CACHE_ENTRIES + 10):
        writer.record(_scope(f"/many/{index}"), 200)
    assert len(writer._requests) <= access_log._CACHE_ENTRIES
