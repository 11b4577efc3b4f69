"""``HEAD`` answered as ``GET`` without the body (:mod:`service_kit.head`), on a bare Litestar
app: the same status and headers, no body (streamed bodies included), 405 where there is no
``GET``, and the layers outside the app still see ``HEAD``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from litestar import Litestar, get, post
from litestar.response import Stream
from litestar.testing import AsyncTestClient
from litestar.types import ASGIApp, Receive, Scope, Send

from service_kit.head import HeadAsGet, answer_head_as_get, request_method


@get("/thing", sync_to_thread=False)
def thing() -> dict[str, str]:
    return {"name": "tea", "note": "x" * 100}


@get("/stream", sync_to_thread=False)
def stream() -> Stream:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(3):
            yield b"chunk" * 10

    return Stream(chunks(), media_type="text/plain")


@post("/only-post", sync_to_thread=False)
def only_post() -> None:
    return None


class SeenMethods:
    """An ASGI layer outside the app (like the access line or the metrics): records the method
    the scope says before and after the app ran."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.seen: list[tuple[str, str]] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        before = str(scope.get("method"))
        await self.app(scope, receive, send)
        self.seen.append((before, str(scope.get("method"))))


def build(*, head: bool) -> Litestar:
    app = Litestar([thing, stream, only_post], logging_config=None)
    if head:
        answer_head_as_get(app)
    return app


@pytest.mark.parametrize("path", ["/thing", "/stream"])
async def test_head_gets_the_status_and_headers_of_get_and_no_body(path: str) -> None:
    """Before: 405 (Litestar routes HEAD only to handlers declared for it)."""
    async with AsyncTestClient(build(head=True)) as client:
        got = await client.get(path)
        head = await client.head(path)
    assert (head.status_code, head.content) == (200, b"")
    assert got.content  # there was a body to drop
    assert dict(head.headers) == dict(got.headers)


async def test_without_the_wrapper_head_is_405() -> None:
    """What the wrapper changes (so the test above can fail)."""
    async with AsyncTestClient(build(head=False)) as client:
        assert (await client.head("/thing")).status_code == 405


async def test_head_where_there_is_no_get_is_405() -> None:
    async with AsyncTestClient(build(head=True)) as client:
        answer = await client.head("/only-post")
    assert answer.status_code == 405
    assert "GET" not in answer.headers.get("allow", "")


async def test_the_layers_outside_the_app_see_head() -> None:
    """The scope says GET only while the app runs: an access line or a metric recorded after
    the app returns names HEAD."""
    app = build(head=True)
    outside = SeenMethods(app)
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Any) -> None:
        sent.append(message)

    scope: dict[str, Any] = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "HEAD",
        "scheme": "http",
        "path": "/thing",
        "raw_path": b"/thing",
        "root_path": "",
        "query_string": b"",
        "headers": [(b"host", b"testserver")],
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 80),
    }
    await outside(scope, receive, send)  # type: ignore[arg-type]
    assert outside.seen == [("HEAD", "HEAD")]
    assert [m["type"] for m in sent] == ["http.response.start", "http.response.body"]
    assert sent[0]["status"] == 200
    assert sent[1]["body"] == b""


class Failing:
    """An inner app that sends its body through the ``pathsend`` extension, or raises."""

    def __init__(self, *, raises: bool) -> None:
        self.raises = raises
        self.method_seen = ""

    async def __call__(self, scope: Scope, _receive: Receive, send: Send) -> None:
        self.method_seen = str(scope.get("method"))
        if self.raises:
            raise RuntimeError("boom")
        await send({"type": "http.response.start", "status": 200, "headers": []})
        path_send: Any = {"type": "http.response.pathsend", "path": "/etc/hostname"}
        await send(path_send)


def head_scope() -> dict[str, Any]:
    return {"type": "http", "method": "HEAD", "path": "/", "headers": []}


async def test_a_body_sent_by_path_is_not_sent_and_an_error_restores_head() -> None:
    """The ``pathsend`` extension's body becomes an empty one; an app that raises still leaves
    the scope saying HEAD for the layers outside."""
    sent: list[Any] = []

    async def send(message: Any) -> None:
        sent.append(message)

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    by_path = Failing(raises=False)
    scope = head_scope()
    await HeadAsGet(by_path)(scope, receive, send)  # type: ignore[arg-type]
    assert by_path.method_seen == "GET"
    assert sent[1] == {"type": "http.response.body", "body": b"", "more_body": False}
    assert (scope["method"], request_method(scope)) == ("HEAD", "HEAD")  # type: ignore[arg-type]

    failing = Failing(raises=True)
    scope = head_scope()
    with pytest.raises(RuntimeError):
        await HeadAsGet(failing)(scope, receive, send)  # type: ignore[arg-type]
    assert (failing.method_seen, scope["method"]) == ("GET", "HEAD")
