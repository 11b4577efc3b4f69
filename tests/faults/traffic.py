"""Requests to the resource API's real socket: continuous background traffic, one-off calls,
and a burst of many concurrent connections.

Every answer is kept as a :class:`Sample` (status, timing, the headers a verdict needs), so a
scenario asserts on all of them afterwards. Tokens travel in headers only and are never kept in
a sample, printed or logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final
from urllib.parse import urlsplit

import httpx

REQUEST_TIMEOUT: Final = 30.0
"""Far above every bound the tests assert: a request that hangs shows as a long one."""


@dataclass(frozen=True)
class Call:
    """A request to send: ``GET path`` with ``token``; ``label`` says whose and what."""

    label: str
    path: str
    token: str = field(repr=False)


@dataclass(frozen=True)
class Sample:
    """One answer (or its absence)."""

    label: str
    path: str
    sent: float
    done: float
    status: int | None
    """``None``: no answer (connection refused, cut, or timed out)."""
    error: str | None = None
    """The body's ``error`` member, or the transport exception's name."""
    retry_after: str | None = None
    challenge: str | None = None
    """``WWW-Authenticate``."""

    @property
    def seconds(self) -> float:
        return self.done - self.sent

    def describe(self) -> str:
        return f"{self.label} {self.path} -> {self.status} {self.error} in {self.seconds:.2f}s"


def call(http: httpx.Client, api_url: str, request: Call) -> Sample:
    """Send one request and describe its answer."""
    sent = time.time()
    try:
        response = http.get(
            f"{api_url}{request.path}", headers={"Authorization": f"Bearer {request.token}"}
        )
    except httpx.HTTPError as exc:
        return Sample(request.label, request.path, sent, time.time(), None, type(exc).__name__)
    done = time.time()
    error = None
    if response.status_code != httpx.codes.OK:
        with contextlib.suppress(ValueError, AttributeError):
            error = str(response.json().get("error"))
    return Sample(
        request.label,
        request.path,
        sent,
        done,
        response.status_code,
        error,
        response.headers.get("retry-after"),
        response.headers.get("www-authenticate"),
    )


class Traffic:
    """Background threads sending ``calls`` round robin to the API until stopped."""

    def __init__(
        self, api_url: str, calls: Sequence[Call], *, workers: int = 3, pause: float = 0.02
    ) -> None:
        if not calls:
            raise ValueError("traffic needs at least one call")
        self.api_url = api_url
        self._calls = list(calls)
        self._pause = pause
        self._samples: list[Sample] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._run, args=(index,), daemon=True)
            for index in range(workers)
        ]

    def __enter__(self) -> Traffic:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def set_calls(self, calls: Sequence[Call]) -> None:
        """Send these from now on (e.g. tokens signed by a new key)."""
        with self._lock:
            self._calls = list(calls)

    def stop(self) -> list[Sample]:
        """Stop sending; every sample (in-flight requests finish first)."""
        self._stop.set()
        for thread in self._threads:
            if thread.is_alive():
                thread.join(REQUEST_TIMEOUT + 5)
        return self.samples

    @property
    def samples(self) -> list[Sample]:
        with self._lock:
            return list(self._samples)

    def _run(self, index: int) -> None:
        with httpx.Client(timeout=REQUEST_TIMEOUT) as http:
            turn = index
            while not self._stop.is_set():
                with self._lock:
                    request = self._calls[turn % len(self._calls)]
                turn += 1
                sample = call(http, self.api_url, request)
                with self._lock:
                    self._samples.append(sample)
                self._stop.wait(self._pause)


def burst(api_url: str, requests: Sequence[Call], *, all_sent: threading.Event) -> list[Sample]:
    """Open one connection per request, write every request, set ``all_sent``, then read
    every answer. Raw HTTP/1.1, so "sent" means written to the API's socket."""
    return asyncio.run(_burst(api_url, requests, all_sent))


async def _burst(api_url: str, requests: Sequence[Call], all_sent: threading.Event) -> list[Sample]:
    url = urlsplit(api_url)
    host, port = url.hostname or "127.0.0.1", url.port or 80

    async def open_and_send(
        request: Call,
    ) -> tuple[float, asyncio.StreamReader, asyncio.StreamWriter]:
        reader, writer = await asyncio.open_connection(host, port)
        sent = time.time()
        writer.write(
            (
                f"GET {request.path} HTTP/1.1\r\nHost: {url.netloc}\r\n"
                f"Authorization: Bearer {request.token}\r\nConnection: close\r\n\r\n"
            ).encode()
        )
        await writer.drain()
        return sent, reader, writer

    opened = await asyncio.gather(*(open_and_send(request) for request in requests))
    all_sent.set()

    async def read(request: Call, sent: float, reader: asyncio.StreamReader) -> Sample:
        raw = await asyncio.wait_for(reader.read(), REQUEST_TIMEOUT)
        done = time.time()
        head, _, _ = raw.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ")
        status = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else None
        headers = {
            name.strip().lower(): value.strip()
            for name, _, value in (line.partition(":") for line in lines[1:])
        }
        return Sample(
            request.label,
            request.path,
            sent,
            done,
            status,
            None,
            headers.get("retry-after"),
            headers.get("www-authenticate"),
        )

    try:
        return await asyncio.gather(
            *(
                read(request, sent, reader)
                for request, (sent, reader, _) in zip(requests, opened, strict=True)
            )
        )
    finally:
        for _, _, writer in opened:
            writer.close()
