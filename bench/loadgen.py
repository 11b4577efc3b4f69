"""HTTP/1.1 keep-alive load generators: ``wrk`` when installed, else this module in its own process.

The Python generator (``python -m bench.loadgen URL ...``) opens ``--connections`` keep-alive
connections with asyncio streams, each sending the same GET back to back, until
``--duration`` seconds pass or ``--max-requests`` have been sent, whichever comes first. It
prints one JSON object: requests, answers other than ``--expect-status`` (200), elapsed
seconds, requests/s, latency p50 and p99 (ms). Both generators are bounded in time and count
and stop by themselves.

With a tokens file (one access token per line) each request carries the next token as its
``Authorization: Bearer`` header, so each token is sent once, and the pass ends when the file
is used up: wrk through ``bench/tokens.lua``, the Python generator by itself.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import shutil
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from urllib.parse import urlsplit

from .common import REPO_ROOT, child_env, percentile

_GRACE_SECONDS = 15.0
_TOKENS_SCRIPT = Path(__file__).with_name("tokens.lua")


@dataclass(frozen=True, slots=True)
class LoadResult:
    """One load pass against one URL."""

    requests: int
    errors: int
    elapsed: float
    rps: float
    p50_ms: float
    p99_ms: float
    socket_errors: int = 0

    def as_dict(self) -> dict[str, float | int]:
        """JSON-ready figures."""
        return asdict(self)


def available_generators() -> list[str]:
    """``wrk`` (if on PATH) and ``python`` (always)."""
    return ["wrk", "python"] if shutil.which("wrk") else ["python"]


def run_load(
    generator: str,
    url: str,
    *,
    headers: dict[str, str],
    connections: int,
    duration: float,
    max_requests: int,
    tokens_file: Path | None = None,
    expect_status: int = 200,
) -> LoadResult:
    """Run one bounded load pass in a separate process; ``errors`` counts the answers that
    are not ``expect_status``."""
    if generator == "wrk":
        result = _run_wrk(
            url, headers=headers, connections=connections, duration=duration, tokens=tokens_file
        )
        if expect_status == 200:
            return result
        # wrk counts non-2xx answers: every one is expected here (our refusals are all 4xx).
        return replace(result, errors=result.requests - result.errors + result.socket_errors)
    command = [
        sys.executable,
        "-m",
        "bench.loadgen",
        url,
        f"--connections={connections}",
        f"--duration={duration}",
        f"--max-requests={max_requests}",
        f"--expect-status={expect_status}",
        *(f"--header={name}: {value}" for name, value in headers.items()),
        *([f"--tokens-file={tokens_file}"] if tokens_file else []),
    ]
    completed = subprocess.run(  # noqa: S603 - our own interpreter and module, no shell
        command,
        capture_output=True,
        text=True,
        timeout=duration + _GRACE_SECONDS,
        check=True,
        cwd=REPO_ROOT,
        env=child_env(),
    )
    return LoadResult(**json.loads(completed.stdout))


# -- wrk ----------------------------------------------------------------------------------------

_WRK_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3}
_WRK_PERCENTILE = re.compile(r"^\s*(50|99)(?:\.0+)?%\s+([\d.]+)(us|ms|s|m)\s*$", re.MULTILINE)
_WRK_REQUESTS = re.compile(r"(\d+) requests in ([\d.]+)(us|ms|s|m),")
_WRK_ERRORS = re.compile(r"Non-2xx or 3xx responses: (\d+)")
_WRK_SOCKET_ERRORS = re.compile(
    r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)"
)


def _run_wrk(
    url: str, *, headers: dict[str, str], connections: int, duration: float, tokens: Path | None
) -> LoadResult:
    wrk = shutil.which("wrk")
    if wrk is None:
        msg = "wrk is not installed"
        raise RuntimeError(msg)
    seconds = max(1, round(duration))
    command = [wrk, "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", "--timeout=5s"]
    for name, value in headers.items():
        command += ["-H", f"{name}: {value}"]
    script = ["-s", str(_TOKENS_SCRIPT), url, "--", str(tokens)] if tokens else [url]
    completed = subprocess.run(  # noqa: S603 - fixed binary, no shell
        [*command, *script],
        capture_output=True,
        text=True,
        timeout=seconds + _GRACE_SECONDS,
        check=True,
    )
    return parse_wrk(completed.stdout)


def parse_wrk(output: str) -> LoadResult:
    """Read requests, errors, elapsed time and p50/p99 from ``wrk --latency`` output."""
    totals = _WRK_REQUESTS.search(output)
    if totals is None:
        msg = f"unexpected wrk output:\n{output}"
        raise RuntimeError(msg)
    requests = int(totals.group(1))
    elapsed = float(totals.group(2)) * _WRK_UNITS[totals.group(3)] / 1000
    latencies = {
        match.group(1): float(match.group(2)) * _WRK_UNITS[match.group(3)]
        for match in _WRK_PERCENTILE.finditer(output)
    }
    errors = int(match.group(1)) if (match := _WRK_ERRORS.search(output)) else 0
    failed = _WRK_SOCKET_ERRORS.search(output)
    socket_errors = sum(int(value) for value in failed.groups()) if failed else 0
    return LoadResult(
        requests=requests,
        errors=errors + socket_errors,
        socket_errors=socket_errors,
        elapsed=elapsed,
        rps=requests / elapsed if elapsed else 0.0,
        p50_ms=latencies.get("50", float("nan")),
        p99_ms=latencies.get("99", float("nan")),
    )


# -- the Python generator -----------------------------------------------------------------------


@dataclass(slots=True)
class _Run:
    """What every connection of one pass shares: the target, the bounds and the tallies."""

    host: str
    port: int
    request: bytes
    deadline: float
    remaining: int
    expect_status: int = 200
    tokens: list[bytes] | None = None
    errors: int = 0
    latencies: list[float] = field(default_factory=list)

    def take(self) -> bool:
        """Whether one more request may be sent (time and count both bound a pass)."""
        if self.remaining <= 0 or time.perf_counter() >= self.deadline:
            return False
        self.remaining -= 1
        return True


async def read_response(reader: asyncio.StreamReader) -> int:
    """Read one response; return its status. Handles Content-Length and chunked bodies."""
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    lowered = head.lower()
    start = lowered.find(b"\r\ncontent-length:")
    if start >= 0:
        end = lowered.index(b"\r\n", start + 2)
        await reader.readexactly(int(lowered[start + 17 : end]))
    elif b"\r\ntransfer-encoding: chunked" in lowered:
        while size := int((await reader.readuntil(b"\r\n")).split(b";")[0], 16):
            await reader.readexactly(size + 2)
        await reader.readuntil(b"\r\n")  # no trailers from our servers
    return status


async def _connection(run: _Run) -> None:
    reader, writer = await asyncio.open_connection(run.host, run.port)
    clock = time.perf_counter
    try:
        while run.take():
            request = run.request
            if run.tokens is not None:
                if not run.tokens:
                    break  # every token sent once: the pass is over
                request = request.replace(b"{token}", run.tokens.pop())
            started = clock()
            writer.write(request)
            status = await read_response(reader)
            run.latencies.append(clock() - started)
            if status != run.expect_status:
                run.errors += 1
    finally:
        writer.close()
        await writer.wait_closed()


async def generate(
    url: str,
    *,
    headers: list[str],
    connections: int,
    duration: float,
    max_requests: int,
    expect_status: int = 200,
    tokens: list[str] | None = None,
) -> LoadResult:
    """Drive ``url`` with ``connections`` keep-alive connections; bounded in time and count
    (and by ``tokens``, each sent once, when given)."""
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    if tokens is not None:
        headers = [*headers, "Authorization: Bearer {token}"]
    lines = [f"GET {parts.path or '/'} HTTP/1.1", f"Host: {parts.netloc}", *headers]
    request = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    started = time.perf_counter()
    run = _Run(
        host,
        port,
        request,
        deadline=started + duration,
        remaining=max_requests,
        expect_status=expect_status,
        tokens=[token.encode() for token in reversed(tokens)] if tokens is not None else None,
    )
    tasks = [_connection(run) for _ in range(connections)]
    await asyncio.wait_for(asyncio.gather(*tasks), timeout=duration + _GRACE_SECONDS)
    elapsed = time.perf_counter() - started
    latencies = sorted(run.latencies)
    return LoadResult(
        requests=len(latencies),
        errors=run.errors,
        elapsed=elapsed,
        rps=len(latencies) / elapsed,
        p50_ms=percentile(latencies, 0.50) * 1000,
        p99_ms=percentile(latencies, 0.99) * 1000,
    )


def main(argv: list[str] | None = None) -> None:
    """Command line of the Python load generator."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("url")
    parser.add_argument("--header", action="append", default=[], help="'Name: value'")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--duration", type=float, default=3.0, help="seconds")
    parser.add_argument("--max-requests", type=int, default=1_000_000)
    parser.add_argument("--expect-status", type=int, default=200)
    parser.add_argument("--tokens-file", type=Path, help="one token per line, each sent once")
    args = parser.parse_args(argv)
    tokens = args.tokens_file.read_text().split() if args.tokens_file else None
    result = asyncio.run(
        generate(
            args.url,
            headers=args.header,
            connections=args.connections,
            duration=args.duration,
            max_requests=args.max_requests,
            expect_status=args.expect_status,
            tokens=tokens,
        )
    )
    print(json.dumps(result.as_dict()))


if __name__ == "__main__":
    main()
