"""The pieces of ``service_kit.tracing`` on their own: the store stand-in, the httpx transport
and the redaction every exported span goes through."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from litestar import Litestar, get
from litestar.testing import AsyncTestClient
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from service_kit.head import answer_head_as_get
from service_kit.tracing import TracingTransport, build_provider, traced_calls, tracing_plugins


class Shelf:
    def __init__(self) -> None:
        self.items: list[str] = []

    async def put(self, item: str) -> int:
        self.items.append(item)
        return len(self.items)

    async def take(self, secret: str) -> str:
        if not self.items:
            raise LookupError(f"nothing for {secret}")
        return self.items.pop()


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def provider(exporter: InMemorySpanExporter) -> Iterator[TracerProvider]:
    provider = build_provider("test", SimpleSpanProcessor(exporter))
    yield provider
    provider.shutdown()


def spans(exporter: InMemorySpanExporter) -> dict[str, ReadableSpan]:
    return {s.name: s for s in exporter.get_finished_spans()}


async def test_every_store_call_runs_in_a_span_and_a_failure_says_only_its_type(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    shelf = Shelf()
    traced = traced_calls(shelf, provider.get_tracer("t"), prefix="store")

    assert isinstance(traced, Shelf)  # Litestar checks a dependency against its type
    assert await traced.put("tea") == 1
    assert await traced.take("s3cr3t") == "tea"
    with pytest.raises(LookupError):
        await traced.take("s3cr3t")
    assert traced.items == []  # any other attribute is the target's

    names = [s.name for s in exporter.get_finished_spans()]
    assert names == ["store.put", "store.take", "store.take"]
    failed = exporter.get_finished_spans()[-1]
    assert failed.kind == SpanKind.CLIENT
    assert failed.status.status_code == StatusCode.ERROR
    assert dict(failed.attributes or {}) == {
        "db.operation.name": "take",
        "error.type": "LookupError",
    }
    assert not failed.events  # no exception event: its message names the argument
    assert "s3cr3t" not in repr(exporter.get_finished_spans())


def test_a_synchronous_method_is_refused(provider: TracerProvider) -> None:
    """A synchronous method would run on the stand-in (no ``__init__`` ran): refused up front."""

    class Ledger:
        def total(self) -> int:
            return 0

    with pytest.raises(TypeError, match=r"Ledger\.total"):
        traced_calls(Ledger(), provider.get_tracer("t"), prefix="store")


async def test_an_outgoing_request_is_a_client_span_whose_traceparent_is_sent(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    sent: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        if request.url.path == "/down":
            raise httpx.ConnectError("refused", request=request)
        return httpx.Response(503 if request.url.path == "/busy" else 200)

    tracer = provider.get_tracer("t")
    transport = TracingTransport(tracer, httpx.MockTransport(answer))
    async with httpx.AsyncClient(transport=transport) as http:
        with tracer.start_as_current_span("page"):
            await http.get("https://api.test:8443/orders?access_token=abc#frag")
            await http.get("https://api.test:8443/busy")
            with pytest.raises(httpx.ConnectError):
                await http.post("https://api.test:8443/down")

    page = spans(exporter)["page"]
    calls = [s for s in exporter.get_finished_spans() if s.kind == SpanKind.CLIENT]
    assert [s.name for s in calls] == ["GET", "GET", "POST"]
    for request, call in zip(sent, calls, strict=True):
        assert call.parent is not None
        assert call.parent.span_id == page.context.span_id
        trace_id, span_id = f"{call.context.trace_id:032x}", f"{call.context.span_id:016x}"
        assert request.headers["traceparent"].startswith(f"00-{trace_id}-{span_id}-")
    ok, busy, down = (dict(s.attributes or {}) for s in calls)
    assert ok == {
        "http.request.method": "GET",
        "server.address": "api.test",
        "server.port": 8443,
        "url.full": "https://api.test:8443/orders",
        "http.response.status_code": 200,
    }
    assert busy["error.type"] == "503"
    assert down["error.type"] == "ConnectError"
    assert calls[2].status.status_code == StatusCode.ERROR


def test_exported_spans_lose_queries_and_credential_headers(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    with provider.get_tracer("t").start_as_current_span(
        "GET /callback",
        attributes={
            "http.url": "http://app/callback?code=c0de&state=st4te",
            "http.target": "/callback?code=c0de",
            "url.full": "http://app/callback?code=c0de#x",
            "url.query": "code=c0de",
            "url.path": "/callback",
            "http.request.header.authorization": ("Bearer t0ken",),
            "http.request.header.cookie": ("sid=c00kie",),
            "http.response.header.set_cookie": ("sid=c00kie",),
            "http.request.header.x_api_key": ("k3y",),
            "http.request.header.accept": ("text/html",),
        },
    ):
        pass
    with trace.get_tracer("t", tracer_provider=provider).start_as_current_span(
        "clean", attributes={"http.route": "/x"}
    ):
        pass

    exported = spans(exporter)
    assert dict(exported["GET /callback"].attributes or {}) == {
        "http.url": "http://app/callback",
        "http.target": "/callback",
        "url.full": "http://app/callback",
        "url.path": "/callback",
        "http.request.header.accept": ("text/html",),
    }
    assert dict(exported["clean"].attributes or {}) == {"http.route": "/x"}


async def test_a_head_request_is_traced_as_head(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    """A HEAD is served as GET inside the app (service_kit.head), where Litestar's
    OpenTelemetry middleware runs: its server span still says HEAD, by name and attribute."""

    @get("/thing", sync_to_thread=False)
    def thing() -> dict[str, str]:
        return {"name": "tea"}

    app = Litestar([thing], plugins=tracing_plugins(provider), logging_config=None)
    answer_head_as_get(app)
    async with AsyncTestClient(app) as client:
        assert (await client.head("/thing")).status_code == 200
    server = [s for s in exporter.get_finished_spans() if s.kind == SpanKind.SERVER]
    assert [s.name for s in server] == ["HEAD /thing"]
    attributes = server[0].attributes or {}
    assert attributes.get("http.method") == "HEAD"
    assert "GET" not in {str(value) for value in attributes.values()}
