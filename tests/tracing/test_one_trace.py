"""One client page, one trace across both programs (issue 10 item 6).

The real dev issuer (subprocess), the real resource API (uvicorn in a thread, over loopback)
and the client app (in the test's loop), each with its own tracer provider built the way the
programs build theirs (``service_kit.tracing.build_provider``: the redacting processor in
front), both exporting to one in-memory exporter. Alice signs in through the issuer's form and
opens ``/shopping``: the spans must form one trace, client server span → client httpx span →
API server span → token verification and store call, and none may carry a credential.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest
from litestar import Litestar
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from client_app.app import create_app
from client_app.sessions import COOKIE_NAME
from service_kit.tracing import build_provider
from tests.client_app.conftest import browser
from tests.client_app.live import (
    CLIENT_PORT,
    SESSION_SECRET,
    client_settings,
    serve_resource_api,
)
from tests.client_app.live import sign_in as live_sign_in
from tests.dev_issuer.support import CLIENT_SECRET, SHOPPING, DevIssuer, start_dev_issuer

SPAN_WAIT_SECONDS = 10.0


@pytest.fixture(scope="module")
def dev_issuer() -> Iterator[DevIssuer]:
    issuer = start_dev_issuer("--development", client_port=CLIENT_PORT)
    try:
        yield issuer
    finally:
        issuer.stop()


@pytest.fixture(scope="module")
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


def provider(service: str, exporter: InMemorySpanExporter) -> TracerProvider:
    return build_provider(service, SimpleSpanProcessor(exporter))


@pytest.fixture(scope="module")
def resource_api(
    dev_issuer: DevIssuer, exporter: InMemorySpanExporter, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    database = tmp_path_factory.mktemp("api") / "api.sqlite3"
    api_provider = provider("resource_api", exporter)
    with serve_resource_api(dev_issuer, database, tracer_provider=api_provider) as url:
        yield url


@pytest.fixture
def app(
    dev_issuer: DevIssuer, resource_api: str, exporter: InMemorySpanExporter, tmp_path: Path
) -> Litestar:
    settings = client_settings(dev_issuer, resource_api, tmp_path / "sessions")
    # No http_client given: the app builds its own, traced one, as the program does. (The
    # provider is not shut down: that would stop the exporter the other tests share.)
    return create_app(settings, tracer_provider=provider("client_app", exporter))


def service(span: ReadableSpan) -> str:
    return str(span.resource.attributes["service.name"])


async def wait_for_spans(
    exporter: InMemorySpanExporter,
    ready: Callable[[ReadableSpan], bool],
    trace_id: int | None = None,
) -> list[ReadableSpan]:
    """The finished spans (of ``trace_id``) once one is ``ready`` (the API ends its server
    span just after it sent the last byte, in its own thread)."""
    deadline = time.monotonic() + SPAN_WAIT_SECONDS
    while True:
        spans = [
            s
            for s in exporter.get_finished_spans()
            if trace_id is None or s.context.trace_id == trace_id
        ]
        if any(ready(s) for s in spans) or time.monotonic() > deadline:
            return spans
        await asyncio.sleep(0.02)


def one(spans: Sequence[ReadableSpan], **match: object) -> ReadableSpan:
    found = [
        s
        for s in spans
        if all(
            (service(s) if key == "service" else getattr(s, key)) == value
            for key, value in match.items()
        )
    ]
    assert len(found) == 1, (match, [(service(s), s.name) for s in spans])
    return found[0]


def refused_server_span(span: ReadableSpan) -> bool:
    attributes = span.attributes or {}
    status = attributes.get("http.status_code")
    return service(span) == "resource_api" and isinstance(status, int) and status >= 400


def child_of(span: ReadableSpan, parent: ReadableSpan) -> bool:
    return span.parent is not None and span.parent.span_id == parent.context.span_id


async def test_a_client_page_is_one_trace_across_both_programs(
    app: Litestar, dev_issuer: DevIssuer, exporter: InMemorySpanExporter
) -> None:
    async with browser(app, f"http://127.0.0.1:{CLIENT_PORT}") as client:
        await sign_in(client, dev_issuer, "alice")
        exporter.clear()
        page = await client.get("/shopping")
    assert page.status_code == 200, page.text

    [server] = [
        s
        for s in exporter.get_finished_spans()
        if service(s) == "client_app" and s.kind == SpanKind.SERVER
    ]
    assert server.name == "GET /shopping"
    assert server.attributes is not None
    assert server.attributes["http.route"] == "/shopping"
    assert server.parent is None  # the browser sent no trace context
    trace_id = server.context.trace_id
    spans = await wait_for_spans(exporter, lambda s: s.name == "store.list_orders", trace_id)

    calls = [
        s
        for s in spans
        if service(s) == "client_app" and s.kind == SpanKind.CLIENT and child_of(s, server)
    ]
    api_server = one(spans, service="resource_api", kind=SpanKind.SERVER)
    assert api_server.name == "GET /shopping/orders"
    assert api_server.attributes is not None
    assert api_server.attributes["http.route"] == "/shopping/orders"
    [api_call] = [c for c in calls if child_of(api_server, c)]  # the API continued our trace
    assert api_call.attributes is not None
    assert str(api_call.attributes["url.full"]).endswith("/shopping/orders")
    assert api_call.attributes["http.response.status_code"] == 200

    verify = one(spans, service="resource_api", name="verify access token")
    assert child_of(verify, api_server)
    assert verify.attributes is not None
    assert verify.attributes["logto.auth.outcome"] == "verified"
    store = one(spans, service="resource_api", name="store.list_orders")
    assert child_of(store, api_server)
    assert store.attributes is not None
    assert store.attributes["db.system.name"] == "sqlite"
    assert {s.context.trace_id for s in spans} == {server.context.trace_id}


async def test_no_span_carries_a_credential(
    app: Litestar, dev_issuer: DevIssuer, exporter: InMemorySpanExporter
) -> None:
    """Sign-in (the callback's code and state in its query), token grants, a page calling
    the API with a bearer token, a refused token: no span says any of it."""
    exporter.clear()
    async with browser(app, f"http://127.0.0.1:{CLIENT_PORT}") as client:
        callback = await sign_in(client, dev_issuer, "alice")
        await client.get("/shopping")
        session_id = str(client.cookies[COOKIE_NAME])
        tokens = await access_tokens(app, session_id)
        query = dict(parse_qsl(urlsplit(str(callback.request.url)).query))
        async with httpx.AsyncClient() as http:  # a token refused by the API, with a query
            refused = await http.get(
                f"{app.state.context.api.base_url}/shopping/orders?access_token=sneaky",
                headers={"Authorization": "Bearer not.a.token", "Cookie": "sid=secret-cookie"},
            )
    assert refused.status_code in (400, 401)
    secrets = {
        "session id": session_id,
        "authorization code": query["code"],
        "state": query["state"],
        "client secret": CLIENT_SECRET,
        "session secret": SESSION_SECRET,
        "query token": "sneaky",
        "bad bearer": "not.a.token",
        "cookie": "secret-cookie",
        **{f"access token for {resource}": token for resource, token in tokens.items()},
    }
    assert tokens  # the page used at least one access token
    # The API ends its last server span in its own thread, just after its answer.
    spans = await wait_for_spans(exporter, refused_server_span)
    assert {service(s) for s in spans} == {"client_app", "resource_api"}
    refusal = [s for s in spans if s.name == "verify access token" and s.status.is_ok is False]
    assert refusal, [s.name for s in spans]
    for span in spans:
        texts = [span.name, *(f"{k}={v!s}" for k, v in (span.attributes or {}).items())]
        texts += [f"{k}={v!s}" for e in span.events for k, v in (e.attributes or {}).items()]
        for text in texts:
            assert not re.search(r"authorization|cookie", text.split("=")[0], re.IGNORECASE)
            for what, secret in secrets.items():
                assert secret not in text, f"{what} in span {span.name!r}: {text[:80]}"


async def sign_in(client: httpx.AsyncClient, issuer: DevIssuer, username: str) -> httpx.Response:
    done = await live_sign_in(client, issuer, username)
    assert done.status_code == 303, done.text
    return done


async def access_tokens(app: Litestar, session_id: str) -> dict[str, str]:
    data = await app.state.context.gateway.sessions.load(session_id)
    token_map = json.loads(data.get("accessTokenMap") or '{"x": {}}')["x"]
    assert any(SHOPPING in key for key in token_map)
    return {key: entry["token"] for key, entry in token_map.items()}
