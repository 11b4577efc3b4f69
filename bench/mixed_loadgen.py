"""The mixed-token load generator: ``python -m bench.mixed_loadgen URL --tokens-file F ...``.

Like :mod:`bench.loadgen` (asyncio keep-alive connections, each sending its next request as
soon as the previous answer is read, bounded in time and count), but every request carries a
token of a **class** drawn from a mix, and every answer is recorded with its class:

* ``repeated`` — one of a pool of valid tokens (a few hundred users coming back);
* ``fresh`` — a valid token never sent before (each used once, in order; the pass ends early,
  saying so, if they run out);
* ``invalid`` — one of several kinds (bad signature, expired, wrong audience, garbage, unknown
  kid), the kinds taken in turn so each gets an equal share.

The classes follow the mix exactly: requests are drawn from shuffled blocks holding each class
in proportion to its weight (``--mix 80,15,5`` → blocks of 16 repeated, 3 fresh, 1 invalid).
The tokens file is JSON: ``{"repeated": [...], "fresh": [...], "invalid": {kind: [...]}}``
(written by :mod:`bench.mixed_load` in a private temporary directory; never printed).

Prints one JSON object: elapsed seconds, requests, requests/s, why the pass stopped, and per
class (and overall) the count, the statuses and the latency p50/p90/p99/max in ms, plus the
statuses of each invalid kind. A request whose connection failed is recorded with status 0.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from .common import percentile
from .loadgen import read_response

CLASSES = ("repeated", "fresh", "invalid")
_GRACE_SECONDS = 15.0


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


def _requests(
    url: str, tokens: dict[str, Any]
) -> tuple[list[bytes], list[bytes], list[tuple[str, bytes]]]:
    """Every request of the pass, built once: only the token differs between them."""
    parts = urlsplit(url)
    head = f"GET {parts.path or '/'} HTTP/1.1\r\nHost: {parts.netloc}\r\nAuthorization: Bearer "

    def build(token: str) -> bytes:
        return (head + token + "\r\n\r\n").encode("latin-1")

    invalid = tokens.get("invalid", {})
    kinds = sorted(invalid)
    interleaved = [
        (kind, build(invalid[kind][index]))
        for index in range(max((len(invalid[kind]) for kind in kinds), default=0))
        for kind in kinds
        if index < len(invalid[kind])
    ]
    return [build(t) for t in tokens["repeated"]], [build(t) for t in tokens["fresh"]], interleaved


async def generate(
    url: str,
    *,
    tokens: dict[str, Any],
    mix: tuple[int, int, int],
    connections: int,
    duration: float,
    max_requests: int,
    seed: int,
) -> dict[str, Any]:
    """Drive ``url`` with the mix over ``connections`` keep-alive connections; bounded in time
    and count (and by the fresh tokens available)."""
    repeated, fresh, invalid = _requests(url, tokens)
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
    elapsed = time.perf_counter() - started
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
    """Command line of the mixed-token load generator."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("url")
    parser.add_argument("--tokens-file", type=Path, required=True)
    parser.add_argument("--mix", type=parse_mix, default=(80, 15, 5), help="repeated,fresh,invalid")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--duration", type=float, default=3.0, help="seconds")
    parser.add_argument("--max-requests", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=0, help="of the class schedule")
    args = parser.parse_args(argv)
    result = asyncio.run(
        generate(
            args.url,
            tokens=json.loads(args.tokens_file.read_text()),
            mix=args.mix,
            connections=args.connections,
            duration=args.duration,
            max_requests=args.max_requests,
            seed=args.seed,
        )
    )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
