"""A reverse proxy between the client app and the resource API that records every exchange and
can answer in the API's place.

It runs in a thread of the test process (``ThreadingHTTPServer``), so the tests read what it
recorded directly. ``inject`` makes the next matching request get a canned answer (or a dropped
connection) instead of the API's: that is how the contract tests make the API answer each error
it documents without touching the client app.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import httpx

from tests.http_server_support import BackgroundServer, RequestHandler

HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "host",
        "content-length",
        "content-encoding",  # httpx hands over the decoded body
    }
)


@dataclass(frozen=True)
class Exchange:
    """One request the client app sent, and what it was answered."""

    method: str
    path: str
    query: str
    request_headers: Mapping[str, str]
    request_body: bytes
    status: int | None
    """``None`` when the proxy dropped the connection."""
    response_headers: Mapping[str, str]
    response_body: bytes
    injected: bool
    """Whether the answer was a fault injected by the test rather than the API's."""


@dataclass
class Fault:
    """A canned answer for the next ``times`` requests matching ``method`` and ``path``;
    ``status=None`` closes the connection without an answer; ``forward=True`` (with
    ``status=None``) first lets the API process the request, then drops its answer (a timeout
    after the API acted)."""

    method: str
    path: str
    status: int | None
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""
    times: int = 1
    forward: bool = False


class RecordingProxy(BackgroundServer):
    """Forwards ``http://127.0.0.1:<port>/…`` to ``upstream``; records into ``exchanges``.

    ``url`` is the proxy's base URL (give it to the client app as ``RESOURCE_API_URL``)."""

    def __init__(self, upstream: str, exchanges: list[Exchange]) -> None:
        self.upstream = upstream.rstrip("/")
        self.exchanges = exchanges
        self._faults: list[Fault] = []
        self._lock = threading.Lock()
        super().__init__(_Handler, timeout=30.0)

    def inject(self, fault: Fault) -> None:
        """Answer the next matching request(s) with ``fault``."""
        with self._lock:
            self._faults.append(fault)

    def clear_faults(self) -> list[Fault]:
        """Drop the faults not used yet, and return them."""
        with self._lock:
            unused, self._faults = self._faults, []
        return unused

    def take_fault(self, method: str, path: str) -> Fault | None:
        """The fault for this request, if one is pending (used up after ``times``)."""
        with self._lock:
            for fault in self._faults:
                if fault.method == method and fault.path == path:
                    fault.times -= 1
                    if fault.times <= 0:
                        self._faults.remove(fault)
                    return fault
        return None

    def record(self, exchange: Exchange) -> None:
        """Keep ``exchange`` (thread-safe)."""
        with self._lock:
            self.exchanges.append(exchange)

    def forward(
        self, method: str, target: str, headers: Mapping[str, str], body: bytes
    ) -> httpx.Response:
        """Send the request on to the API."""
        return self._http.request(method, self.upstream + target, headers=headers, content=body)


class _Handler(RequestHandler[RecordingProxy]):
    """Quiet: the exchanges are recorded instead."""

    methods = ("GET", "POST", "PUT", "DELETE", "PATCH")

    def answer(self) -> None:
        proxy = self.owner
        body = self.read_body()
        target = urlsplit(self.path)
        request_headers = {k.lower(): v for k, v in self.headers.items()}
        fault = proxy.take_fault(self.command, target.path)
        if fault is not None and fault.status is None:
            self.close_connection = True
            status: int | None = None
            headers: dict[str, str] = {}
            answer = b""
            if fault.forward:
                forwarded = {k: v for k, v in request_headers.items() if k not in HOP_BY_HOP}
                proxy.forward(self.command, self.path, forwarded, body)
        elif fault is not None:
            status, headers, answer = fault.status, dict(fault.headers), fault.body
        else:
            forwarded = {k: v for k, v in request_headers.items() if k not in HOP_BY_HOP}
            response = proxy.forward(self.command, self.path, forwarded, body)
            status, answer = response.status_code, response.content
            headers = {k.lower(): v for k, v in response.headers.items() if k not in HOP_BY_HOP}
        # Recorded before answering: once the client app has its answer, the test sees it.
        proxy.record(
            Exchange(
                method=self.command,
                path=target.path,
                query=target.query,
                request_headers=request_headers,
                request_body=body,
                status=status,
                response_headers=headers,
                response_body=answer,
                injected=fault is not None,
            )
        )
        if status is not None:
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)
