"""``python -m bench``: run the benchmarks side by side and print their ratios.

1. ``core``  — ``TokenVerifier.verify`` on N distinct ES384 tokens vs the bare signature checks;
2. ``pyjwt`` — ours vs ``PyJWKClient`` + ``jwt.decode`` (cold and repeated tokens);
3. ``http``  — what ``python -m resource_api``'s server and app serve, outside-in (``wrk`` or a
   Python generator): ``/health`` against a bare Litestar app on the same server (the
   ceiling), ``GET /shopping/orders`` with a repeated, a forged (replayed) and distinct tokens,
   the same handler without authentication, access lines on and off, metrics on and off (and
   the cost of a scrape);
4. ``breakdown`` — a diagnostic: the same routes called through ASGI without sockets, with
   variants separating authentication's cost from Litestar's dependency resolution;
5. ``memory`` — opt-in (``--only memory``; minutes at its default size): one verifier presented
   ``--tokens`` (default 1,000,000) distinct valid ES256 tokens, its cache bounded at
   ``--cache-size``; reports the cache's size against the bound and resident memory;
6. ``load`` — opt-in (``--only load``): ``GET /shopping/orders`` on the served app under a
   mix of repeated, fresh and invalid tokens, side by side with repeated tokens only; reports
   requests/s, latency percentiles and statuses per token class, and fails the run if a valid
   request is not answered 200 or an invalid one not 401 (an unknown kid: 401 or 503); on two
   servers, metrics off and on, their passes interleaved, and the two compared;
7. ``servers`` — opt-in (``--only servers``): the bare Litestar app on granian (shipped),
   uvicorn (h11/asyncio, httptools/uvloop) and hypercorn (asyncio, uvloop), same load;
8. ``signin`` — opt-in (``--only signin``; needs Node.js and the dev issuer's packages): the
   dev issuer, the resource API and the client app started by ``demo.launcher``, and N
   simulated users signing in, opening the shopping and store pages and signing out; reports
   sign-ins/s, per-step latencies and errors (any fails the run).

Everything binds 127.0.0.1 on free ports and stops by itself. ``--quick`` is a smoke run
(seconds, meaningless figures) used by ``tests/bench``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import sys
from pathlib import Path
from typing import Any

from litestar_logto.verifier import VerifierPolicy

from .asgi_breakdown import run_breakdown
from .common import LoopbackIssuer, loopback_issuer
from .http_bench import run_http, run_servers
from .loadgen import available_generators, parse_mix
from .memory_bench import run_memory
from .mixed_load import report_metrics_overhead, run_mixed_load
from .pyjwt_bench import run_pyjwt
from .signin_load import run_signin
from .verify_bench import run_core

BENCHMARKS = ("core", "pyjwt", "http", "breakdown", "memory", "load", "servers", "signin")
# What a run without --only runs: memory takes minutes at its default size, load about a
# minute, and signin starts the whole stack (Node.js): they are opt-in.
DEFAULT_BENCHMARKS = ("core", "pyjwt", "http", "breakdown")
# --tokens of the memory benchmark when not given (it applies to every selected benchmark).
MEMORY_TOKENS = {"default": 1_000_000, "quick": 3000}
# A full run takes about 1.5 minutes on 2 cores; short passes and many interleaved rounds make
# the medians robust to a noisy, shared machine.
DEFAULTS: dict[str, float] = {
    "tokens": 1000,
    "rounds": 11,
    "http_duration": 2.0,
    "http_rounds": 9,
    "connections": 32,
    "breakdown_requests": 2000,
    "load_duration": 5.0,
    "load_rounds": 5,
    "load_pool": 300,
    "signin_users": 200,
    "signin_concurrency": 8,
}
QUICK: dict[str, float] = {
    "tokens": 20,
    "rounds": 2,
    "http_duration": 0.5,
    "http_rounds": 1,
    "connections": 4,
    "breakdown_requests": 50,
    "load_duration": 0.5,
    "load_rounds": 1,
    "load_pool": 20,
    "signin_users": 8,
    "signin_concurrency": 2,
}


def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    model = "unknown"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "load_average": _load_average(),
    }


def _load_average() -> list[float] | None:
    """1, 5 and 15-minute load averages (others' jobs make figures move)."""
    try:
        return [round(value, 2) for value in os.getloadavg()]
    except OSError:
        return None


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line; ``--quick`` lowers every default to a smoke-test size."""
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--only", action="append", choices=BENCHMARKS, help="run only this one (repeatable)"
    )
    parser.add_argument("--quick", action="store_true", help="tiny sizes: proves the scripts run")
    for flag, kind, what in (
        ("--tokens", int, "N, tokens per pass of core and pyjwt (memory: see below)"),
        ("--rounds", int, "interleaved rounds of core, pyjwt and breakdown"),
        ("--http-duration", float, "seconds per HTTP load pass"),
        ("--http-rounds", int, "HTTP rounds (http, servers), each one pass of every row"),
        ("--connections", int, "HTTP concurrency (keep-alive connections)"),
        ("--breakdown-requests", int, "ASGI calls per breakdown variant and round"),
        ("--load-duration", float, "seconds per load pass"),
        ("--load-rounds", int, "load rounds, each one baseline and one mixed pass"),
        ("--load-pool", int, "users whose tokens the load repeats"),
        ("--signin-users", int, "signin: simulated users (sign-ins), the seed's users in turn"),
        ("--signin-concurrency", int, "signin: users at a time"),
    ):
        name = flag[2:].replace("-", "_")
        parser.add_argument(
            flag, type=kind, help=f"{what} (default {DEFAULTS[name]:g}; quick {QUICK[name]:g})"
        )
    parser.add_argument(
        "--loadgen",
        choices=("auto", "wrk", "python"),
        default="auto",
        help="HTTP load generator: wrk when installed (auto), or the Python one",
    )
    parser.add_argument(
        "--http-dependency",
        action="store_true",
        help="also load a diagnostic route: the same authentication, the token taken through the"
        " access_token dependency (what it costs)",
    )
    parser.add_argument(
        "--cache-size",
        type=int,
        help="memory: the verified-token cache bound (default VerifierPolicy's,"
        f" {VerifierPolicy().cache_size:,}); memory's --tokens defaults to"
        f" {MEMORY_TOKENS['default']:,} (quick {MEMORY_TOKENS['quick']:,})",
    )
    parser.add_argument(
        "--load-mix",
        type=_mix,
        default=(80, 15, 5),
        metavar="R,F,I",
        help="load: weights of repeated, fresh and invalid tokens (default 80,15,5)",
    )
    parser.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    args = parser.parse_args(argv)
    args.memory_tokens = (
        args.tokens
        if args.tokens is not None
        else MEMORY_TOKENS["quick" if args.quick else "default"]
    )
    for name, value in (QUICK if args.quick else DEFAULTS).items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    if args.loadgen == "auto":
        args.loadgen = available_generators()[0]
    elif args.loadgen not in available_generators():
        parser.error(f"load generator {args.loadgen!r} is not installed")
    return args


def _mix(text: str) -> tuple[int, int, int]:
    try:
        return parse_mix(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def _run_load(
    issuer: LoopbackIssuer, args: argparse.Namespace, results: dict[str, Any]
) -> list[str]:
    """Run the load benchmark on two servers, metrics off and on, their passes interleaved
    (issue 10 #7); report and record both; return their failures."""
    off, on = run_mixed_load(
        issuer,
        duration=args.load_duration,
        rounds=args.load_rounds,
        connections=args.connections,
        mix=args.load_mix,
        pool=args.load_pool,
        metrics=(False, True),
    )
    loads = {False: off, True: on}
    failures: list[str] = []
    for load in (off, on):
        load.report()
        failures += load.failures
    results["load"] = loads[False].as_dict()
    results["load_metrics_on"] = loads[True].as_dict()
    report_metrics_overhead(loads[False], loads[True])
    return failures


def _run_http(
    issuer: LoopbackIssuer, args: argparse.Namespace, results: dict[str, Any]
) -> list[str]:
    """Run, report and record the http benchmark; return its wrong answers as failures."""
    http = run_http(
        issuer,
        duration=args.http_duration,
        rounds=args.http_rounds,
        connections=args.connections,
        generator=args.loadgen,
        dependency=args.http_dependency,
    )
    http.report()
    results["http"] = http.as_dict()
    return [
        f"http: {label}: {sum(r.errors for r in passes)} wrong answer(s)"
        for label, passes in http.series.items()
        if any(r.errors for r in passes)
    ]


def main(argv: list[str] | None = None) -> int:
    """Run the selected benchmarks; print a report and optionally write JSON."""
    args = parse_args(argv)
    selected = args.only or list(DEFAULT_BENCHMARKS)
    about = machine()
    print(
        f"machine: {about['cpus']} CPUs, {about['cpu_model']};"
        f" {about['implementation']} {about['python']}; load average {about['load_average']}"
    )
    results: dict[str, Any] = {"machine": about, "quick": args.quick}
    failures: list[str] = []
    with loopback_issuer() as issuer:
        if "core" in selected:
            core = asyncio.run(run_core(issuer, tokens=args.tokens, rounds=args.rounds))
            core.report()
            results["core"] = core.as_dict()
        if "pyjwt" in selected:
            pyjwt = asyncio.run(run_pyjwt(issuer, tokens=args.tokens, rounds=args.rounds))
            pyjwt.report()
            results["pyjwt"] = pyjwt.as_dict()
        if "http" in selected:
            failures += _run_http(issuer, args, results)
        if "breakdown" in selected:
            breakdown = asyncio.run(
                run_breakdown(issuer, requests=args.breakdown_requests, rounds=args.rounds)
            )
            breakdown.report()
            results["breakdown"] = breakdown.as_dict()
        if "load" in selected:
            failures += _run_load(issuer, args, results)
        results["issuer_hits"] = dict(issuer.hits)
    if "servers" in selected:
        servers = run_servers(
            duration=args.http_duration,
            rounds=args.http_rounds,
            connections=args.connections,
            generator=args.loadgen,
        )
        servers.report()
        results["servers"] = servers.as_dict()
        failures += [
            f"servers: {name}: {sum(r.errors for r in passes)} wrong answer(s)"
            for name, passes in servers.series.items()
            if any(r.errors for r in passes)
        ]
    if "memory" in selected:  # its own ES256 issuer, after the others have released theirs
        memory = run_memory(tokens=args.memory_tokens, cache_size=args.cache_size)
        memory.report()
        results["memory"] = memory.as_dict()
    if "signin" in selected:  # the whole stack, with its own issuer
        signin = run_signin(users=args.signin_users, concurrency=args.signin_concurrency)
        signin.report()
        results["signin"] = signin.as_dict()
        failures += signin.failures
    results["load_average_after"] = _load_average()
    print(f"\nload average after the run: {results['load_average_after']}")
    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    if failures:
        print(f"\n{len(failures)} correctness check(s) failed:", file=sys.stderr)
        for failure in failures:
            print(f"  {failure}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
