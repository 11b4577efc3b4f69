"""A controllable reverse proxy in front of the dev issuer: the issuer's public address.

The issuer is started with ``--base-url <proxy>``, so its ``iss``, discovery document and every
URL it hands out point here: the resource API (JWKS), the client app (discovery, token) and the
test's browser (sign-in pages) all reach the issuer through this proxy, and the tests break it
on purpose:

* :meth:`IssuerProxy.down` closes the listening socket (a connection is refused, as when the
  issuer's process is gone) and cuts the open ones; :meth:`IssuerProxy.up` listens again on the
  same port;
* :class:`Hang` holds matching requests (accepted, never answered) until released;
* :class:`Slow` answers after a delay;
* :class:`Replace` answers a canned body (a malformed or empty JWKS) without asking the issuer.

Every request that reached the proxy is logged (:class:`Served`) with what was done to it, so
tests count JWKS and discovery fetches and know when the last good key set was handed out.

It runs in threads of the test process and binds 127.0.0.1 only. Its port is chosen below the
system's ephemeral range, so no outgoing connection can take it while the proxy is down.
"""

from __future__ import annotations

import contextlib
import http.client
import random
import socket
import socketserver
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Final, cast
from urllib.parse import urlsplit

from litestar_logto.jwks import USER_AGENT as KEY_SOURCE_USER_AGENT

from tests.http_server_support import RequestHandler

HOST: Final = "127.0.0.1"
JWKS_PATH: Final = "/oidc/jwks"
DISCOVERY_PATH: Final = "/oidc/.well-known/openid-configuration"
KEY_PATHS: Final = (JWKS_PATH, DISCOVERY_PATH)
UPSTREAM_TIMEOUT: Final = 30.0
HOP_BY_HOP: Final = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "content-length",
    }
)
_PORT_RANGE: Final = (20000, 32000)
_REBIND_SECONDS: Final = 5.0


@dataclass(frozen=True)
class Pass:
    """Forward to the issuer (the default)."""


@dataclass(frozen=True, eq=False)
class Hang:
    """Accept the request and answer nothing until :meth:`IssuerProxy.release` (then forward)."""

    released: threading.Event = field(default_factory=threading.Event)


@dataclass(frozen=True)
class Slow:
    """Forward after ``seconds``."""

    seconds: float


@dataclass(frozen=True)
class Trickle:
    """Forward, then send the answer one byte every ``seconds``, status line included: no
    single read ever times out, only a bound on the whole fetch ends it."""

    seconds: float


@dataclass(frozen=True)
class Replace:
    """Answer ``body`` (``status``, ``content_type``) instead of the issuer; ``label`` names it
    in the log."""

    body: bytes
    label: str
    status: int = 200
    content_type: str = "application/json"


Fault = Pass | Hang | Slow | Trickle | Replace


@dataclass
class Served:
    """One request that reached the proxy, and what it got."""

    method: str
    path: str
    received_at: float
    fault: str
    """``pass``, ``hang``, ``slow``, ``trickle``, or the :class:`Replace` label."""
    status: int | None = None
    """What the proxy sent; ``None`` if it sent nothing (cut, or the caller had gone)."""
    answered_at: float | None = None
    """Just before the answer was written (so whoever reads it holds it no earlier)."""
    delivered: bool = False
    """The whole answer was written to the caller's socket."""
    from_api: bool = False
    """Sent by the resource API's key source (its ``User-Agent``; the client app fetches the
    same JWKS for ID tokens)."""


class IssuerProxy:
    """Forwards ``http://127.0.0.1:<port>/…`` to the issuer on ``upstream_port``."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.log: list[Served] = []
        self._faults: dict[str | None, Fault] = {}
        self._lock = threading.Lock()
        self._connections: set[socket.socket] = set()
        self._hangs: list[Hang] = []
        self._stopping = False
        self._listener: socket.socket | None = None
        self._accepting = threading.Thread(target=self._accept_loop, daemon=True)
        self._up = threading.Event()
        self.port = self._listen(None)

    # -- control ------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """The issuer's public base URL (``--base-url``)."""
        return f"http://{HOST}:{self.port}"

    def start(self) -> IssuerProxy:
        """Accept connections in a background thread."""
        self._up.set()
        self._accepting.start()
        return self

    def stop(self) -> None:
        """Release every held request, close every socket, stop the accepting thread."""
        with self._lock:
            self._stopping = True
        self.reset()
        self.down()
        self._up.set()
        self._accepting.join(timeout=5)

    def set_fault(self, fault: Fault, paths: Iterable[str | None] = (None,)) -> None:
        """Apply ``fault`` to requests for ``paths`` (``None``: every other path)."""
        with self._lock:
            for path in paths:
                self._faults[path] = fault
            if isinstance(fault, Hang):
                self._hangs.append(fault)

    def release(self) -> None:
        """Forward every held request and let later ones pass (back to :class:`Pass`)."""
        with self._lock:
            hangs, self._hangs = self._hangs, []
            self._faults = {p: f for p, f in self._faults.items() if not isinstance(f, Hang)}
        for hang in hangs:
            hang.released.set()

    def reset(self) -> None:
        """Everything back to normal: up, no faults, held requests released."""
        self.release()
        with self._lock:
            self._faults.clear()
        if not self._up.is_set() and not self._stopping:
            self.up()

    def down(self) -> None:
        """Refuse connections (the listening socket is closed) and cut the open ones."""
        with self._lock:
            self._up.clear()
            connections = list(self._connections)
        self._close_listener()
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)

    def up(self) -> None:
        """Listen again on the same port."""
        self._listen(self.port)
        self._up.set()

    # -- reading the log ----------------------------------------------------------------------

    def api_requests(
        self, path: str, *, since: float = 0.0, until: float = float("inf")
    ) -> list[Served]:
        """The resource API's requests for ``path`` received in ``[since, until)``."""
        with self._lock:
            return [
                s
                for s in self.log
                if s.from_api and s.path == path and since <= s.received_at < until
            ]

    def good_key_sets(self) -> list[Served]:
        """JWKS answers the issuer itself gave the API (200 or 304), delivered whole."""
        return [
            s
            for s in self.api_requests(JWKS_PATH)
            if s.fault in ("pass", "slow") and s.status in (200, 304) and s.delivered
        ]

    # -- serving ------------------------------------------------------------------------------

    def _listen(self, port: int | None) -> int:
        deadline = time.monotonic() + _REBIND_SECONDS
        while True:
            listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            chosen = port if port is not None else random.randrange(*_PORT_RANGE)  # noqa: S311
            try:
                listener.bind((HOST, chosen))
            except OSError:
                listener.close()
                if time.monotonic() > deadline:
                    raise
                if port is not None:
                    time.sleep(0.05)
                continue
            listener.listen(512)
            with self._lock:
                self._listener = listener
            return chosen

    def _close_listener(self) -> None:
        with self._lock:
            listener, self._listener = self._listener, None
        if listener is not None:
            with contextlib.suppress(OSError):
                listener.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept()
            listener.close()

    def _accept_loop(self) -> None:
        while True:
            self._up.wait()
            with self._lock:
                if self._stopping:
                    return
                listener = self._listener
            if listener is None:
                time.sleep(0.01)
                continue
            try:
                connection, _ = listener.accept()
            except OSError:
                continue  # closed by down() or stop()
            with self._lock:
                self._connections.add(connection)
            threading.Thread(target=self._serve, args=(connection,), daemon=True).start()

    def _serve(self, connection: socket.socket) -> None:
        try:
            _Handler(connection, (HOST, 0), cast(socketserver.BaseServer, self))
        except OSError:
            pass  # the caller or down() cut the connection
        finally:
            with self._lock:
                self._connections.discard(connection)
            with contextlib.suppress(OSError):
                connection.close()

    def fault_for(self, path: str) -> Fault:
        with self._lock:
            return self._faults.get(path) or self._faults.get(None) or Pass()

    def record(self, served: Served) -> None:
        with self._lock:
            self.log.append(served)

    def forward(
        self, method: str, target: str, headers: list[tuple[str, str]], body: bytes
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        """Ask the issuer (a new connection per request: nothing pooled survives a fault)."""
        upstream = http.client.HTTPConnection(HOST, self.upstream_port, timeout=UPSTREAM_TIMEOUT)
        try:
            upstream.request(method, target, body=body or None, headers=dict(headers))
            response = upstream.getresponse()
            answer = response.read()
            kept = [(k, v) for k, v in response.getheaders() if k.lower() not in HOP_BY_HOP]
            return response.status, kept, answer
        finally:
            upstream.close()


class _Handler(RequestHandler[IssuerProxy]):
    """Quiet: the proxy keeps its own log (and never logs tokens)."""

    methods = ("GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS")
    timeout = 60

    def answer(self) -> None:
        proxy = self.owner
        body = self.read_body()
        path = urlsplit(self.path).path
        fault = proxy.fault_for(path)
        served = Served(self.command, path, time.time(), _name(fault))
        served.from_api = self.headers.get("User-Agent", "") == KEY_SOURCE_USER_AGENT
        proxy.record(served)
        if isinstance(fault, Replace):
            status = fault.status
            headers = [("Content-Type", fault.content_type), ("Cache-Control", "no-store")]
            answer = fault.body
        else:
            if isinstance(fault, Hang):
                fault.released.wait()
            elif isinstance(fault, Slow):
                time.sleep(fault.seconds)
            kept = [(k, v) for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP]
            try:
                status, headers, answer = proxy.forward(self.command, self.path, kept, body)
            except OSError:
                self.close_connection = True  # the issuer itself is gone: so is this answer
                return
        served.status = status
        served.answered_at = time.time()
        if isinstance(fault, Trickle):
            self._trickle(status, headers, answer, fault.seconds)
            served.delivered = True
            return
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(answer)
        self.wfile.flush()
        served.delivered = True

    def _trickle(
        self, status: int, headers: list[tuple[str, str]], answer: bytes, seconds: float
    ) -> None:
        """The whole answer, status line included, one byte every ``seconds``."""
        raw = _raw_answer(status, headers, b"" if self.command == "HEAD" else answer)
        for index in range(len(raw)):
            self.wfile.write(raw[index : index + 1])
            self.wfile.flush()
            time.sleep(seconds)


def _raw_answer(status: int, headers: list[tuple[str, str]], body: bytes) -> bytes:
    lines = [f"HTTP/1.1 {status} {http.client.responses.get(status, '')}"]
    lines += [f"{name}: {value}" for name, value in headers]
    lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def _name(fault: Fault) -> str:
    if isinstance(fault, Replace):
        return fault.label
    return type(fault).__name__.lower()


__all__ = [
    "DISCOVERY_PATH",
    "JWKS_PATH",
    "KEY_PATHS",
    "Fault",
    "Hang",
    "IssuerProxy",
    "Pass",
    "Replace",
    "Served",
    "Slow",
    "Trickle",
]
