"""``python -m bench``: run the three benchmarks side by side and print their ratios.

1. ``core``  — ``TokenVerifier.verify`` on N distinct ES384 tokens vs the bare signature checks;
2. ``pyjwt`` — ours vs ``PyJWKClient`` + ``jwt.decode`` (cold and repeated tokens);
3. ``http``  — authenticated ``GET /shopping/orders`` vs the same handler without
   authentication, on one uvicorn process, loaded by ``wrk`` (or a Python generator);
4. ``breakdown`` — a diagnostic: the same routes called through ASGI without sockets, with
   variants separating the guard's cost from Litestar's dependency resolution.

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

from .asgi_breakdown import run_breakdown
from .common import loopback_issuer
from .http_bench import run_http
from .loadgen import available_generators
from .pyjwt_bench import run_pyjwt
from .verify_bench import run_core

BENCHMARKS = ("core", "pyjwt", "http", "breakdown")


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
    }


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line; ``--quick`` lowers every default to a smoke-test size."""
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--only", action="append", choices=BENCHMARKS, help="run only this one (repeatable)"
    )
    parser.add_argument("--quick", action="store_true", help="tiny sizes: proves the scripts run")
    parser.add_argument("--tokens", type=int, help="N for core/pyjwt (default 2000; quick 20)")
    parser.add_argument("--rounds", type=int, help="core/pyjwt rounds (default 7; quick 2)")
    parser.add_argument(
        "--http-duration", type=float, help="seconds per HTTP load pass (default 4; quick 0.5)"
    )
    parser.add_argument(
        "--http-rounds", type=int, help="HTTP rounds, each auth + no-auth (default 5; quick 1)"
    )
    parser.add_argument("--connections", type=int, help="HTTP concurrency (default 16; quick 4)")
    parser.add_argument(
        "--loadgen",
        choices=("auto", "wrk", "python"),
        default="auto",
        help="HTTP load generator: wrk when installed (auto), or the Python one",
    )
    parser.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    args = parser.parse_args(argv)
    defaults = (
        {"tokens": 20, "rounds": 2, "http_duration": 0.5, "http_rounds": 1, "connections": 4}
        if args.quick
        else {
            "tokens": 2000,
            "rounds": 7,
            "http_duration": 4.0,
            "http_rounds": 5,
            "connections": 16,
        }
    )
    for name, value in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    if args.loadgen == "auto":
        args.loadgen = available_generators()[0]
    elif args.loadgen not in available_generators():
        parser.error(f"load generator {args.loadgen!r} is not installed")
    return args


def main(argv: list[str] | None = None) -> int:
    """Run the selected benchmarks; print a report and optionally write JSON."""
    args = parse_args(argv)
    selected = args.only or list(BENCHMARKS)
    about = machine()
    print(
        f"machine: {about['cpus']} CPUs, {about['cpu_model']};"
        f" {about['implementation']} {about['python']}"
    )
    results: dict[str, Any] = {"machine": about, "quick": args.quick}
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
            http = run_http(
                issuer,
                duration=args.http_duration,
                rounds=args.http_rounds,
                connections=args.connections,
                generator=args.loadgen,
            )
            http.report()
            results["http"] = http.as_dict()
        if "breakdown" in selected:
            requests = 50 if args.quick else 4000
            breakdown = asyncio.run(run_breakdown(issuer, requests=requests, rounds=args.rounds))
            breakdown.report()
            results["breakdown"] = breakdown.as_dict()
        results["issuer_hits"] = dict(issuer.hits)
    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
