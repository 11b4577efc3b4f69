"""HTTP/1.1 keep-alive load generators: ``wrk`` when installed, else this module in its own process.

The Python generator (``python -m bench.loadgen URL ...``) opens ``--connections`` keep-alive
connections with asyncio streams, each sending its next request as soon as the previous answer
is read, until ``--duration`` seconds pass or ``--max-requests`` have been sent, whichever comes
first. Both generators are bounded in time and count and stop by themselves. A request whose
connection failed is recorded with status 0 (and the connection is opened again).

It runs a pass in one of two shapes:

* **plain** — the same GET every time, or, with ``--tokens-file`` (one access token per line),
  each request carrying the next token as its ``Authorization: Bearer`` header, so each token
  is sent once and the pass ends when the file is used up (wrk does the same through
  ``bench/tokens.lua``). Prints one JSON object: requests, answers other than
  ``--expect-status`` (200), elapsed seconds, requests/s, latency p50 and p99 (ms).
* **mixed** (``--mix-file``) — every request carries a token of a **class** drawn from a mix,
  and every answer is recorded with its class (which is why this is not wrk: its Lua
  ``response()`` hook is not told which request an answer belongs to):

  - ``repeated`` — one of a pool of valid tokens (a few hundred users coming back);
  - ``fresh`` — a valid token never sent before (each used once, in order; the pass ends early,
    saying so, if they run out);
  - ``invalid`` — one of several kinds (bad signature, expired, wrong audience, garbage, unknown
    kid), the kinds taken in turn so each gets an equal share.

  The classes follow the mix exactly: requests are drawn from shuffled blocks holding each
  class in proportion to its weight (``--mix 80,15,5`` → blocks of 16 repeated, 3 fresh, 1
  invalid). The mix file is JSON: ``{"repeated": [...], "fresh": [...], "invalid": {kind:
  [...]}}`` (written by :mod:`bench.mixed_load` in a private temporary directory; never
  printed). Prints one JSON object: elapsed seconds, requests, requests/s, why the pass
  stopped, and per class (and overall) the count, the statuses and the latency p50/p90/p99/max
  in ms, plus the statuses of each invalid kind.

A plain pass is the engine of the mixed one with a single class: the fixed request as a pool of
one ``repeated`` request, or the tokens file as ``fresh`` tokens.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import random
import re
import shutil
import subprocess
import sys
import time
from collections import Counter
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from .common import REPO_ROOT, child_env, percentile

CLASSES = ("repeated", "fresh", "invalid")
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


def parse_mix(text: str) -> tuple[int, int, int]:
    """``"80,15,5"`` → the weights of repeated, fresh and invalid tokens (non-negative, not all
    zero)."""
    wrong = f"the mix is three whole weights, repeated,fresh,invalid (e.g. 80,15,5), not {text!r}"
    parts = text.split(",")
    if len(parts) != len(CLASSES):
        raise ValueError(wrong)
    try:
        weights = tuple(int(part) for part in parts)
    except ValueError:
        raise ValueError(wrong) from None
    if min(weights) < 0 or sum(weights) == 0:
        msg = f"the mix's weights must be non-negative and not all zero: {text!r}"
        raise ValueError(msg)
    return weights[0], weights[1], weights[2]


def class_block(mix: tuple[int, int, int]) -> list[str]:
    """One block of the schedule: each class as often as its weight, reduced by their GCD."""
    divisor = math.gcd(*mix)
    return [
        name for name, weight in zip(CLASSES, mix, strict=True) for _ in range(weight // divisor)
    ]


@dataclass(slots=True)
class _Run:
    """The shared state of one pass: the requests to send, the bounds and the records."""

    host: str
    port: int
    repeated: list[bytes]
    fresh: list[bytes]
    invalid: list[tuple[str, bytes]]
    block: list[str]
    rng: random.Random
    deadline: float
    remaining: int
    stopped_by: str = "time"
    schedule: list[str] = field(default_factory=list)
    next_fresh: int = 0
    next_invalid: int = 0
    latencies: dict[str, list[float]] = field(default_factory=lambda: {c: [] for c in CLASSES})
    statuses: dict[str, Counter[int]] = field(
        default_factory=lambda: {c: Counter() for c in CLASSES}
    )
    invalid_statuses: dict[str, Counter[int]] = field(default_factory=dict)

    def take(self) -> tuple[str, str, bytes] | None:
        """The next request's class, kind and bytes; ``None`` once the pass is over."""
        if self.remaining <= 0:
            if self.stopped_by == "time":  # keep the first reason (fresh tokens exhausted)
                self.stopped_by = "count"
            return None
        if time.perf_counter() >= self.deadline:
            return None
        if not self.schedule:
            self.schedule = self.block[:]
            self.rng.shuffle(self.schedule)
        name = self.schedule.pop()
        if name == "repeated":
            request, kind = self.rng.choice(self.repeated), name
        elif name == "fresh":
            if self.next_fresh >= len(self.fresh):
                self.stopped_by = "fresh tokens exhausted"
                self.remaining = 0
                return None
            request, kind = self.fresh[self.next_fresh], name
            self.next_fresh += 1
        else:
            kind, request = self.invalid[self.next_invalid % len(self.invalid)]
            self.next_invalid += 1
        self.remaining -= 1
        return name, kind, request

    def record(self, name: str, kind: str, status: int, seconds: float) -> None:
        """Remember one answer (status 0: the connection failed)."""
        self.latencies[name].append(seconds)
        self.statuses[name][status] += 1
        if name == "invalid":
            self.invalid_statuses.setdefault(kind, Counter())[status] += 1


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
    clock = time.perf_counter
    reader, writer = await asyncio.open_connection(run.host, run.port)
    try:
        while (item := run.take()) is not None:
            name, kind, request = item
            started = clock()
            try:
                writer.write(request)
                status = await read_response(reader)
            except (OSError, asyncio.IncompleteReadError):
                run.record(name, kind, 0, clock() - started)
                writer.close()
                reader, writer = await asyncio.open_connection(run.host, run.port)
                continue
            run.record(name, kind, status, clock() - started)
    finally:
        writer.close()
        await writer.wait_closed()


def _summary(latencies: list[float], statuses: Counter[int]) -> dict[str, Any]:
    ordered = sorted(latencies)
    return {
        "count": len(ordered),
        "statuses": {str(status): count for status, count in sorted(statuses.items())},
        "p50_ms": percentile(ordered, 0.50) * 1000,
        "p90_ms": percentile(ordered, 0.90) * 1000,
        "p99_ms": percentile(ordered, 0.99) * 1000,
        "max_ms": (ordered[-1] if ordered else float("nan")) * 1000,
    }


def _request_head(url: str, headers: list[str]) -> tuple[str, int, str]:
    """The host and port to connect to and the request's first lines (without the blank line)."""
    parts = urlsplit(url)
    lines = [f"GET {parts.path or '/'} HTTP/1.1", f"Host: {parts.netloc}", *headers]
    return parts.hostname or "127.0.0.1", parts.port or 80, "\r\n".join(lines) + "\r\n"


def _with_token(head: str, token: str) -> bytes:
    return (head + "Authorization: Bearer " + token + "\r\n\r\n").encode("latin-1")


async def _drive(
    url: str,
    *,
    requests: tuple[list[bytes], list[bytes], list[tuple[str, bytes]]],
    mix: tuple[int, int, int],
    connections: int,
    duration: float,
    max_requests: int,
    seed: int,
) -> tuple[_Run, float]:
    """Send the pass over ``connections`` keep-alive connections; return its records and its
    elapsed seconds."""
    repeated, fresh, invalid = requests
    block = class_block(mix)
    for name, available in (("repeated", repeated), ("invalid", invalid)):
        if name in block and not available:
            msg = f"the mix asks for {name} tokens but the tokens file has none"
            raise ValueError(msg)
    parts = urlsplit(url)
    started = time.perf_counter()
    run = _Run(
        parts.hostname or "127.0.0.1",
        parts.port or 80,
        repeated,
        fresh,
        invalid,
        block,
        random.Random(seed),  # noqa: S311 - a reproducible schedule, not a secret
        deadline=started + duration,
        remaining=max_requests,
    )
    tasks = [_connection(run) for _ in range(connections)]
    await asyncio.wait_for(asyncio.gather(*tasks), timeout=duration + _GRACE_SECONDS)
    return run, time.perf_counter() - started


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
    """A plain pass: drive ``url`` with ``connections`` keep-alive connections; bounded in time
    and count (and by ``tokens``, each sent once, when given)."""
    _, _, head = _request_head(url, headers)
    if tokens is None:
        requests: tuple[list[bytes], list[bytes], list[tuple[str, bytes]]] = (
            [(head + "\r\n").encode("latin-1")],
            [],
            [],
        )
        mix = (1, 0, 0)
    else:
        requests = ([], [_with_token(head, token) for token in tokens], [])
        mix = (0, 1, 0)
    run, elapsed = await _drive(
        url,
        requests=requests,
        mix=mix,
        connections=connections,
        duration=duration,
        max_requests=max_requests,
        seed=0,
    )
    latencies = sorted(latency for name in CLASSES for latency in run.latencies[name])
    expected = sum(counter[expect_status] for counter in run.statuses.values())
    return LoadResult(
        requests=len(latencies),
        errors=len(latencies) - expected,
        elapsed=elapsed,
        rps=len(latencies) / elapsed,
        p50_ms=percentile(latencies, 0.50) * 1000,
        p99_ms=percentile(latencies, 0.99) * 1000,
    )


def _mixed_requests(
    url: str, tokens: dict[str, Any]
) -> tuple[list[bytes], list[bytes], list[tuple[str, bytes]]]:
    """Every request of a mixed pass, built once: only the token differs between them."""
    _, _, head = _request_head(url, [])
    invalid = tokens.get("invalid", {})
    kinds = sorted(invalid)
    interleaved = [
        (kind, _with_token(head, invalid[kind][index]))
        for index in range(max((len(invalid[kind]) for kind in kinds), default=0))
        for kind in kinds
        if index < len(invalid[kind])
    ]
    return (
        [_with_token(head, token) for token in tokens["repeated"]],
        [_with_token(head, token) for token in tokens["fresh"]],
        interleaved,
    )


async def generate_mixed(
    url: str,
    *,
    tokens: dict[str, Any],
    mix: tuple[int, int, int],
    connections: int,
    duration: float,
    max_requests: int,
    seed: int,
) -> dict[str, Any]:
    """A mixed pass: drive ``url`` with the mix over ``connections`` keep-alive connections;
    bounded in time and count (and by the fresh tokens available)."""
    run, elapsed = await _drive(
        url,
        requests=_mixed_requests(url, tokens),
        mix=mix,
        connections=connections,
        duration=duration,
        max_requests=max_requests,
        seed=seed,
    )
    every = [latency for name in CLASSES for latency in run.latencies[name]]
    all_statuses: Counter[int] = Counter()
    for counter in run.statuses.values():
        all_statuses.update(counter)
    return {
        "elapsed": elapsed,
        "requests": len(every),
        "rps": len(every) / elapsed,
        "stopped_by": run.stopped_by,
        "all": _summary(every, all_statuses),
        "classes": {name: _summary(run.latencies[name], run.statuses[name]) for name in CLASSES},
        "invalid_kinds": {
            kind: {str(status): count for status, count in sorted(counter.items())}
            for kind, counter in sorted(run.invalid_statuses.items())
        },
    }


def main(argv: list[str] | None = None) -> None:
    """Command line of the Python load generator."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("url")
    parser.add_argument("--header", action="append", default=[], help="'Name: value' (plain)")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--duration", type=float, default=3.0, help="seconds")
    parser.add_argument("--max-requests", type=int, default=1_000_000)
    parser.add_argument("--expect-status", type=int, default=200, help="plain")
    parser.add_argument("--tokens-file", type=Path, help="plain: one token per line, each once")
    parser.add_argument("--mix-file", type=Path, help="mixed: the JSON token classes")
    parser.add_argument("--mix", type=parse_mix, default=(80, 15, 5), help="repeated,fresh,invalid")
    parser.add_argument("--seed", type=int, default=0, help="of the mixed pass's schedule")
    args = parser.parse_args(argv)
    if args.mix_file is not None:
        mixed = asyncio.run(
            generate_mixed(
                args.url,
                tokens=json.loads(args.mix_file.read_text()),
                mix=args.mix,
                connections=args.connections,
                duration=args.duration,
                max_requests=args.max_requests,
                seed=args.seed,
            )
        )
        print(json.dumps(mixed))
        return
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
