"""Traces out of the real program: ``python -m resource_api --workers 2`` with
``OTEL_EXPORTER_OTLP_ENDPOINT`` pointing at a loopback OTLP/HTTP receiver in this test.

Each granian worker builds its own tracer provider after the fork (its export thread would not
survive one) and flushes it at its lifespan shutdown: with a batch delay of a minute nothing
is sent until SIGTERM, and then every span of both workers arrives, protobuf-encoded, with
the service name, each worker's pid, and the caller's W3C trace continued.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import KeyValue

from bench.common import loopback_issuer
from tests.http_server_support import BackgroundServer, RequestHandler
from tests.served_programs import REPO, Serve, program_environ, wait_gone

REQUESTS = 12


@dataclass
class Export:
    path: str
    content_type: str
    body: bytes


@dataclass
class Receiver:
    """What the loopback collector was sent."""

    exports: list[Export] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


class _Collector(RequestHandler["OtlpReceiver"]):
    methods = ("POST",)

    def answer(self) -> None:
        body = self.read_body()
        with self.owner.received.lock:
            self.owner.received.exports.append(
                Export(self.path, self.headers.get("Content-Type", ""), body)
            )
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()


class OtlpReceiver(BackgroundServer):
    def __init__(self) -> None:
        super().__init__(_Collector, timeout=5)
        self.received = Receiver()


@pytest.fixture
def receiver() -> Iterator[OtlpReceiver]:
    server = OtlpReceiver().start()
    try:
        yield server
    finally:
        server.stop()


@dataclass(frozen=True)
class Span:
    service: str
    pid: int
    name: str
    trace_id: str
    parent_span_id: str
    attributes: dict[str, Any]


def _value(pair: KeyValue) -> Any:
    return getattr(pair.value, pair.value.WhichOneof("value") or "string_value")


def decode(exports: list[Export]) -> list[Span]:
    spans: list[Span] = []
    for export in exports:
        request = ExportTraceServiceRequest.FromString(export.body)
        for resource_spans in request.resource_spans:
            resource = {a.key: _value(a) for a in resource_spans.resource.attributes}
            spans.extend(
                Span(
                    service=str(resource["service.name"]),
                    pid=int(resource["process.pid"]),
                    name=span.name,
                    trace_id=span.trace_id.hex(),
                    parent_span_id=span.parent_span_id.hex(),
                    attributes={a.key: _value(a) for a in span.attributes},
                )
                for scope_spans in resource_spans.scope_spans
                for span in scope_spans.spans
            )
    return spans


def test_each_worker_exports_its_spans_over_otlp_http(
    serve: Serve, receiver: OtlpReceiver, tmp_path: Path
) -> None:
    with loopback_issuer() as issuer:
        environ = program_environ(  # no OTEL_* variable inherited from the shell
            LOGTO_ENDPOINT=issuer.endpoint,
            RESOURCE_API_DATABASE=str(tmp_path / "api.sqlite3"),
            LOG_LEVEL="WARNING",
            OTEL_EXPORTER_OTLP_ENDPOINT=receiver.url,
            OTEL_BSP_SCHEDULE_DELAY="60000",  # nothing leaves before the shutdown's flush
        )
        served = serve("resource_api", "--workers", "2", environ=environ)
        workers = served.workers()
        assert len(workers) == 2
        token = issuer.token(subject="tracer")
        trace_id, parent = secrets.token_hex(16), secrets.token_hex(8)
        for _ in range(REQUESTS):  # a new connection each: the kernel picks the worker
            answer = httpx.get(
                f"{served.url}/shopping/orders?page=1",
                headers={
                    "Authorization": f"Bearer {token}",
                    "traceparent": f"00-{trace_id}-{parent}-01",
                },
                timeout=10,
            )
            assert answer.status_code == 200
        assert receiver.received.exports == []  # batched for a minute: held until shutdown
        assert served.stop() == 0
        assert wait_gone(workers) == []

    exports = receiver.received.exports
    assert {(e.path, e.content_type) for e in exports} == {("/v1/traces", "application/x-protobuf")}
    spans = decode(exports)
    assert {s.service for s in spans} == {"resource_api"}
    # Each worker fetched its keys at start-up, in a span of its own provider.
    fetches = [s for s in spans if s.name == "jwks fetch"]
    assert {s.pid for s in fetches} == set(workers)
    assert {s.attributes["logto.jwks.outcome"] for s in fetches} == {"ok"}
    servers = [s for s in spans if s.name == "GET /shopping/orders"]
    assert len(servers) == REQUESTS  # none lost at the shutdown
    assert {(s.trace_id, s.parent_span_id) for s in servers} == {(trace_id, parent)}
    assert {s.attributes["http.route"] for s in servers} == {"/shopping/orders"}
    assert {s.attributes["http.target"] for s in servers} == {"/shopping/orders"}  # no query
    verified = [s for s in spans if s.name == "verify access token"]
    assert len(verified) == REQUESTS
    assert {s.trace_id for s in verified} == {trace_id}
    for span in spans:
        assert token not in repr(span.attributes)


def test_a_grpc_protocol_is_a_configuration_error(tmp_path: Path) -> None:
    """Only the OTLP/HTTP exporter is installed: asking for gRPC stops the program at once."""
    environ = {"PATH": os.environ.get("PATH", "")} | {
        "LOGTO_ENDPOINT": "http://127.0.0.1:9",
        "RESOURCE_API_DATABASE": str(tmp_path / "api.sqlite3"),
        "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4317",
        "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
    }
    done = subprocess.run(
        [sys.executable, "-m", "resource_api"],
        cwd=REPO,
        env=environ,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 2
    assert "OTEL_EXPORTER_OTLP_PROTOCOL must be http/protobuf" in done.stderr
    assert "Traceback" not in done.stderr
