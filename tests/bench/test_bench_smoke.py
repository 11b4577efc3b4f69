"""Smoke tests of ``bench/``: each benchmark runs in its ``--quick`` size, as ``./dev bench``
would run it, and only the shape of its report is checked (timings on a shared CI machine
prove nothing)."""

from __future__ import annotations

import json
import os
import random
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from bench.http_server import bench_settings, build_app
from bench.loadgen import _Run, available_generators, class_block, parse_mix, parse_wrk
from bench.mixed_load import INVALID_KINDS, check_pass
from bench.run import DEFAULT_BENCHMARKS, parse_args
from resource_api.settings import SettingsError
from resource_api.storage import SqliteStore

REPO_ROOT = Path(__file__).resolve().parents[2]
TIMEOUT = 180


def run_bench(
    tmp_path: Path, *args: str, env: dict[str, str] | None = None
) -> tuple[dict[str, Any], str]:
    """Run ``python -m bench --quick`` with ``args``; return its JSON figures and its output."""
    figures = tmp_path / "bench.json"
    completed = subprocess.run(  # noqa: S603 - our interpreter, fixed arguments, no shell
        [sys.executable, "-m", "bench", "--quick", f"--json={figures}", *args],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
        env=env,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    return json.loads(figures.read_text()), completed.stdout


def test_core_benchmark_reports_per_round_ratios(tmp_path: Path) -> None:
    """The core benchmark reports ours and the ECDSA floor for every round, and their ratio."""
    figures, output = run_bench(tmp_path, "--only=core", "--tokens=8", "--rounds=2")
    core = figures["core"]
    assert (core["tokens"], core["rounds"]) == (8, 2)
    assert len(core["ours_us"]) == len(core["floor_us"]) == len(core["ratios"]) == 2
    assert isinstance(core["ratio"], float)
    assert "ratio ours/floor" in output


def test_pyjwt_benchmark_reports_cold_and_repeated_ratios(tmp_path: Path) -> None:
    """The PyJWT comparison reports both scenarios for every round."""
    figures, output = run_bench(tmp_path, "--only=pyjwt", "--tokens=8", "--rounds=2")
    pyjwt = figures["pyjwt"]
    for series in ("ours_cold_us", "theirs_cold_us", "ours_repeated_us", "theirs_repeated_us"):
        assert len(pyjwt[series]) == 2
    assert isinstance(pyjwt["cold_ratio"], float)
    assert isinstance(pyjwt["repeated_ratio"], float)
    assert "ratio ours/theirs" in output


HTTP_ROWS = (
    "ceiling (bare Litestar, same server)",
    "health",
    "health, access log off",
    "health, access log on (health only)",
    "no auth (public copy of orders)",
    "orders, repeated token",
    "orders, forged token replayed",
    "orders, distinct tokens (each once)",
    "health, metrics on",
    "no auth, metrics on",
    "orders, repeated token, metrics on",
)
NAMED_RATIOS = (
    "health/ceiling",
    "orders repeated/health",
    "orders p99/health p99",
    "forged replayed/health",
    "distinct/floor",
    "health access log on/off",
    "auth/no-auth",
    "auth/no-auth, metrics on",
    "orders repeated/health, metrics on",
    "orders metrics on/off",
)


def assert_http_figures(figures: dict[str, Any], output: str, generator: str) -> None:
    """Every row was loaded in one round without a single wrong answer (the forged token
    refused every time, each distinct token accepted), and every ratio was printed."""
    http = figures["http"]
    assert http["generator"] == generator
    assert len(http["auth"]) == len(http["no_auth"]) == len(http["ratios"]) == 1
    assert tuple(http["rows"])[: len(HTTP_ROWS)] == HTTP_ROWS
    for label in HTTP_ROWS:
        [result] = http["rows"][label]
        assert result["requests"] > 0, label
        assert result["errors"] == 0, label
    assert (
        http["distinct_tokens"]
        == http["rows"]["orders, distinct tokens (each once)"][0]["requests"]
    )
    # The metrics-on server's /metrics was scraped after the rounds (issue 10 #7).
    assert len(http["scrape_ms"]) == len(http["scrape_render_ms"]) > 0
    assert http["scrape_bytes"] > 0
    assert "GET /metrics after the rounds" in output
    assert len(http["floor_verifications_per_second"]) == 1
    assert set(http["named_ratio_medians"]) == set(NAMED_RATIOS)
    for name in NAMED_RATIOS:
        assert f"  {name} " in output


@pytest.mark.skipif("wrk" not in available_generators(), reason="wrk is not installed")
def test_http_benchmark_with_wrk(tmp_path: Path) -> None:
    """With wrk installed, the HTTP benchmark uses it by default."""
    figures, output = run_bench(tmp_path, "--only=http")
    assert_http_figures(figures, output, "wrk")


def test_http_benchmark_falls_back_to_the_python_generator(tmp_path: Path) -> None:
    """Without wrk on PATH, the HTTP benchmark loads the routes with bench.loadgen (here
    with the access_token dependency diagnostic route too)."""
    empty_bin = tmp_path / "bin"
    empty_bin.mkdir()
    env = {**os.environ, "PATH": str(empty_bin)}  # the benchmark runs sys.executable by path
    figures, output = run_bench(tmp_path, "--only=http", "--http-dependency", env=env)
    assert_http_figures(figures, output, "python")
    http = figures["http"]
    assert len(http["dependency"]) == len(http["dependency_ratios"]) == 1
    assert all(result["errors"] == 0 for result in http["dependency"])
    assert "diagnostic: access_token dependency" in output
    assert "dependency/no-auth" in output


@pytest.mark.skipif("wrk" not in available_generators(), reason="wrk is not installed")
def test_servers_benchmark_loads_the_ceiling_app_on_every_server(tmp_path: Path) -> None:
    """The server comparison serves the same bare app on granian and its rivals and loads
    each without a wrong answer."""
    figures, output = run_bench(tmp_path, "--only=servers")
    servers = figures["servers"]["servers"]
    assert list(servers) == [
        "granian",
        "granian-asyncio",
        "uvicorn-h11",
        "uvicorn-fast",
        "hypercorn",
        "hypercorn-uvloop",
    ]
    for name, figure in servers.items():
        [result] = figure["passes"]
        assert result["requests"] > 0, name
        assert result["errors"] == 0, name
    assert max(figure["of_best"] for figure in servers.values()) == 1.0
    assert "servers: the bare Litestar app" in output


WRK_OUTPUT = """\
Running 4s test @ http://127.0.0.1:41234/shopping/orders
  1 threads and 16 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     3.51ms  612.41us  14.02ms   90.12%
    Req/Sec     4.57k   151.12     4.81k    75.00%
  Latency Distribution
     50%    3.40ms
     75%    3.61ms
     90%    3.93ms
     99%  850.00us
  18184 requests in 4.00s, 5.20MB read
  Non-2xx or 3xx responses: 3
Requests/sec:   4545.21
Transfer/sec:      1.30MB
"""


def test_wrk_output_is_parsed_with_units() -> None:
    """Requests, elapsed time, error count and percentiles are read from wrk's report."""
    result = parse_wrk(WRK_OUTPUT)
    assert (result.requests, result.errors, result.elapsed) == (18184, 3, 4.0)
    assert result.p50_ms == pytest.approx(3.40)
    assert result.p99_ms == pytest.approx(0.85)


def test_breakdown_reports_every_variant(tmp_path: Path) -> None:
    """The ASGI breakdown times every route variant."""
    figures, output = run_bench(tmp_path, "--only=breakdown")
    breakdown = figures["breakdown"]
    assert set(breakdown["us"]) == {
        "public copy",
        "service route",
        "access_token dependency",
        "store dependency",
    }
    assert "vs public copy" in output


def test_memory_benchmark_keeps_the_cache_at_its_bound(tmp_path: Path) -> None:
    """The memory benchmark (opt-in) presents every distinct token without an error and ends
    with the verified-token cache holding exactly its bound; RSS figures are reported."""
    figures, output = run_bench(tmp_path, "--only=memory", "--tokens=3000", "--cache-size=500")
    memory = figures["memory"]
    assert (memory["tokens"], memory["cache_size"]) == (3000, 500)
    assert memory["verified"] == 3000
    assert memory["errors"] == 0
    assert memory["cache_entries"] == 500
    assert memory["key_fetches"] == 1
    for reading in ("rss_before", "rss_at_bound", "rss_peak_sampled", "rss_after", "hwm_after"):
        assert memory[reading] > 0
    assert memory["cache_traced_bytes"] > 0
    assert "cache entries at the end" in output
    assert "= the bound" in output


def test_memory_benchmark_is_not_part_of_the_default_run() -> None:
    """Without --only, python -m bench leaves the (minutes-long) memory benchmark out."""
    assert "memory" not in DEFAULT_BENCHMARKS
    assert parse_args([]).memory_tokens == 1_000_000
    assert parse_args(["--quick"]).memory_tokens == 3000
    assert parse_args(["--tokens=10"]).memory_tokens == 10


def test_load_benchmark_reports_every_token_class_without_errors(tmp_path: Path) -> None:
    """The mixed load (opt-in) sends repeated, fresh and every kind of invalid token: each
    valid one answered 200, each invalid one 401 (an unknown kid within the refetch cooldown:
    the documented 503, issue 9 #7); it reports per-class figures, the baseline
    of repeated tokens only, and their ratio."""
    figures, output = run_bench(tmp_path, "--only=load")
    load = figures["load"]
    assert load["mix"] == {"repeated": 80, "fresh": 15, "invalid": 5}
    assert len(load["baseline"]) == len(load["mixed"]) == len(load["ratios"]) == 1
    assert isinstance(load["ratio"], float)
    assert load["errors"] == {"valid_not_200": 0, "invalid_not_401": 0}
    assert load["failures"] == []
    (baseline,) = load["baseline"]
    assert set(baseline["all"]["statuses"]) == {"200"}
    (mixed,) = load["mixed"]
    for name, allowed in (("repeated", {"200"}), ("fresh", {"200"}), ("invalid", {"401", "503"})):
        figures_of_class = mixed["classes"][name]
        assert figures_of_class["count"] > 0
        assert set(figures_of_class["statuses"]) <= allowed
        for percentile in ("p50_ms", "p90_ms", "p99_ms", "max_ms"):
            assert figures_of_class[percentile] > 0
    assert set(mixed["invalid_kinds"]) == set(INVALID_KINDS)
    for kind, statuses in mixed["invalid_kinds"].items():
        # An unknown kid within the refetch cooldown is the documented 503 (issue 9 #7).
        assert set(statuses) <= ({"401", "503"} if kind == "unknown_kid" else {"401"}), kind
    assert mixed["stopped_by"] == "time"
    assert load["fresh_per_pass"] >= mixed["classes"]["fresh"]["count"]
    assert "ratio mixed/baseline" in output
    # The same load with metrics on (issue 10 #7), side by side.
    assert load["metrics"] is False
    on = figures["load_metrics_on"]
    assert on["metrics"] is True
    assert on["errors"] == {"valid_not_200": 0, "invalid_not_401": 0}
    assert on["failures"] == []
    assert "load: metrics off vs on" in output


def test_load_checks_fail_on_a_wrong_status() -> None:
    """A valid request not answered 200, an invalid one not answered 401, or a pass cut short
    is a failure (which makes python -m bench exit non-zero)."""

    def summary(statuses: dict[str, int]) -> dict[str, Any]:
        return {"count": sum(statuses.values()), "statuses": statuses}

    result = {
        "stopped_by": "fresh tokens exhausted",
        "classes": {
            "repeated": summary({"200": 5}),
            "fresh": summary({"200": 3, "0": 1}),
            "invalid": summary({"401": 2, "200": 1}),
        },
    }
    assert check_pass(result, "pass") == [
        "pass: 1 valid requests were not answered 200",
        "pass: 1 invalid requests were not answered 401",
        "pass: the pass stopped early (fresh tokens exhausted)",
    ]
    # An unknown kid's 503 (refetch cooldown, issue 9 #7) is right; another kind's is not.
    cooldown = {
        "stopped_by": "time",
        "classes": {
            "repeated": summary({"200": 5}),
            "fresh": summary({"200": 4}),
            "invalid": summary({"401": 2, "503": 3}),
        },
        "invalid_kinds": {"unknown_kid": {"401": 1, "503": 2}, "expired": {"503": 1}},
    }
    assert check_pass(cooldown, "pass") == ["pass: 1 invalid requests were not answered 401"]


def test_mix_weights_make_exact_blocks() -> None:
    """The mix is three weights; each block of the schedule holds them in proportion."""
    assert parse_mix("80,15,5") == (80, 15, 5)
    assert sorted(class_block((80, 15, 5))) == ["fresh"] * 3 + ["invalid"] + ["repeated"] * 16
    assert class_block((1, 0, 0)) == ["repeated"]
    for wrong in ("80,20", "0,0,0", "-1,1,1", "a,b,c"):
        with pytest.raises(ValueError, match="mix"):
            parse_mix(wrong)


def test_signin_benchmark_runs_every_journey_without_errors(tmp_path: Path) -> None:
    """The sign-in load (opt-in) starts the real stack, and every simulated user signs in,
    opens the shopping and store pages (the client app calling both APIs with real tokens)
    and signs out, without an error; the calls the client app made are counted."""
    figures, output = run_bench(tmp_path, "--only=signin")
    signin = figures["signin"]
    assert (signin["users"], signin["concurrency"]) == (8, 2)
    assert signin["completed"] == 8
    assert signin["errors"] == 0
    assert signin["failures"] == []
    assert set(signin["expected"]) == {"alice", "bob", "carol", "dave"}
    assert set(signin["steps"]) == {"sign-in", "shopping", "store", "sign-out", "journey"}
    assert signin["signins_per_second"] > 0
    calls = signin["calls"]
    assert calls["token endpoint"] >= 8
    api_calls = sum(count for name, count in calls.items() if name.startswith("API GET"))
    assert api_calls == 2 * 8  # one per API page of every journey
    assert set(signin["cpu_seconds"]) >= {"dev_issuer", "resource_api", "client_app"}
    assert "sign-ins/s" in output


def test_load_and_signin_are_not_part_of_the_default_run() -> None:
    """They take a minute or start the whole stack: opt-in, like memory."""
    assert {"load", "signin"}.isdisjoint(DEFAULT_BENCHMARKS)


def test_a_pass_that_runs_out_of_fresh_tokens_says_so() -> None:
    """Once the fresh tokens are used up, every connection stops, and the reason stays the
    first one (not the 'count' the next connection would have written over it)."""
    run = _Run(
        host="127.0.0.1",
        port=1,
        repeated=[b"r"],
        fresh=[b"f"],
        invalid=[("garbage", b"i")],
        block=["fresh"],
        rng=random.Random(0),  # noqa: S311 - a schedule, not a secret
        deadline=time.perf_counter() + 60,
        remaining=100,
    )
    assert run.take() == ("fresh", "fresh", b"f")
    assert [run.take() for _ in range(8)] == [None] * 8
    assert run.stopped_by == "fresh tokens exhausted"


def test_postgresql_driver_benchmark_reports_both_drivers(postgres_url: str) -> None:
    """``python -m bench.pg_drivers`` runs both drivers on the store's two operations against
    a real PostgreSQL (an empty database of this test's own) and prints a row for each."""
    completed = subprocess.run(  # noqa: S603 - our interpreter, fixed arguments, no shell
        [
            sys.executable,
            "-m",
            "bench.pg_drivers",
            f"--database-url={postgres_url}",
            "--rounds=1",
            "--operations=50",
            "--concurrency=4",
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    for operation in ("list orders", "create order + key"):
        for driver in ("asyncpg", "psycopg"):
            row = rf"^{re.escape(operation)}\s+{driver}\s+[\d,]+\s+\d+"
            assert re.search(row, completed.stdout, re.MULTILINE), completed.stdout


def test_the_bench_server_takes_the_verifiers_tuning_from_the_environment() -> None:
    """``LOGTO_TOKEN_CACHE_SIZE=1 ./dev bench ...`` measures a server with that cache (the
    bench server once built its settings from the endpoint alone, so such a run measured the
    defaults); the issuer and the app's log level stay the benchmark's own."""
    settings = bench_settings(
        "http://127.0.0.1:1",
        {
            "LOGTO_TOKEN_CACHE_SIZE": "1",
            "LOGTO_SIGNATURE_THREADS": "2",
            "LOGTO_ENDPOINT": "https://tenant.logto.app",
            "LOG_LEVEL": "DEBUG",
            "DATABASE_URL": "postgresql://elsewhere",
        },
    )
    assert (settings.token_cache_size, settings.signature_threads) == (1, 2)
    assert (settings.logto_endpoint, settings.log_level) == ("http://127.0.0.1:1", "WARNING")
    assert settings.database_url is None


async def test_the_bench_server_builds_its_app_with_those_settings(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``build_app`` reads them (an invalid value stops it, as it stops the service)."""
    monkeypatch.setenv("LOGTO_TOKEN_CACHE_SIZE", "not a number")
    store = SqliteStore(":memory:")
    try:
        async with httpx.AsyncClient() as http_client:
            with pytest.raises(SettingsError, match="LOGTO_TOKEN_CACHE_SIZE"):
                build_app("http://127.0.0.1:1", store, http_client)
    finally:
        await store.close()
