"""HTTP: authenticated ``GET /shopping/orders`` vs the same handler without authentication.

One uvicorn process (``python -m bench.http_server``) serves the service's own app plus
``GET /bench/public-orders``, a public copy of the list-orders route that reads the same
storage for the benchmark token's subject; the two answers are checked to be byte-identical
before any load. Both are sent the same ``Authorization`` header, so the only difference is
the authentication work (extraction, verification — a cache hit, since the token repeats —
and the scope guard; the handler reads the token from ``request.auth``). The server fetches
its keys from the loopback issuer of this process.

A warm-up pass on each route is discarded, then rounds rotate which route goes first; each
pass is one bounded run of the load generator (``wrk -t1`` or ``bench.loadgen``) at a fixed
concurrency. The ratio is the median of the per-round ``auth / no-auth`` requests/s.

``dependency=True`` adds a third, diagnostic series on
``GET /bench/access-token-dependency-orders`` (the same guard, the token taken through the
``access_token`` dependency instead of ``request.auth``: what that dependency costs).
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from .common import REPO_ROOT, SUBJECT, LoopbackIssuer, child_env, header, median, spread
from .loadgen import LoadResult, run_load
from .routes import AUTH_PATH, DEPENDENCY_PATH, PUBLIC_PATH

TARGET_RATIO = 0.85
_START_TIMEOUT = 30.0
_STOP_TIMEOUT = 10.0
_MAX_REQUESTS_PER_SECOND = 200_000  # only bounds the Python generator's request count


@dataclass(frozen=True, slots=True)
class HttpResult:
    """Per-round load results of both routes (and of the optional diagnostic route)."""

    generator: str
    connections: int
    duration: float
    auth: list[LoadResult]
    public: list[LoadResult]
    dependency: list[LoadResult]

    @property
    def ratios(self) -> list[float]:
        """Per-round ``auth / no-auth`` requests per second."""
        return _ratios(self.auth, self.public)

    @property
    def ratio(self) -> float:
        """Median of the per-round ratios."""
        return median(self.ratios)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready figures, with the medians."""
        return {
            "generator": self.generator,
            "connections": self.connections,
            "duration": self.duration,
            "rounds": len(self.auth),
            "auth": [result.as_dict() for result in self.auth],
            "no_auth": [result.as_dict() for result in self.public],
            "ratios": self.ratios,
            "ratio": self.ratio,
            "target_ratio": TARGET_RATIO,
            "dependency": [result.as_dict() for result in self.dependency],
            "dependency_ratios": _ratios(self.dependency, self.public) if self.dependency else [],
        }

    def report(self) -> None:
        """Print the result."""
        header(f"http: GET {AUTH_PATH} with a token vs the same handler without auth")
        print(
            f"  load: {self.generator}, {self.connections} keep-alive connections,"
            f" {self.duration:g} s per pass, {len(self.auth)} rotating rounds"
        )
        print(f"  {'':40}{'req/s':>8}{'p50 ms':>9}{'p99 ms':>9}{'non-200':>9}")
        rows = [("no auth (public copy)", self.public), ("auth (Bearer token)", self.auth)]
        if self.dependency:
            rows.append(("diagnostic: access_token dependency", self.dependency))
        for label, results in rows:
            print(
                f"  {label:40}{median([r.rps for r in results]):8.0f}"
                f"{median([r.p50_ms for r in results]):9.2f}"
                f"{median([r.p99_ms for r in results]):9.2f}"
                f"{sum(r.errors for r in results):9d}"
            )
        verdict = "meets" if self.ratio >= TARGET_RATIO else "MISSES"
        print(
            f"  ratio auth/no-auth req/s  {self.ratio:8.3f}  (rounds {spread(self.ratios)};"
            f" target ≥ {TARGET_RATIO}: {verdict})"
        )
        if self.dependency:
            ratios = _ratios(self.dependency, self.public)
            print(f"  dependency/no-auth req/s  {median(ratios):8.3f}  (rounds {spread(ratios)})")


def _ratios(results: list[LoadResult], baseline: list[LoadResult]) -> list[float]:
    return [r.rps / b.rps for r, b in zip(results, baseline, strict=True)]


@contextlib.contextmanager
def bench_server(issuer: LoopbackIssuer, workdir: Path, lifetime: float) -> Iterator[str]:
    """Start ``bench.http_server`` on a free loopback port; yield its base URL. The server
    exits by itself after ``lifetime`` seconds should this process fail to stop it."""
    port_file = workdir / "port"
    log_path = workdir / "server.log"
    command = [
        sys.executable,
        "-m",
        "bench.http_server",
        f"--endpoint={issuer.endpoint}",
        f"--database={workdir / 'bench.sqlite3'}",
        f"--port-file={port_file}",
        f"--lifetime={lifetime}",
    ]
    with log_path.open("w") as log:
        process = subprocess.Popen(  # noqa: S603 - our interpreter and module, no shell
            command, cwd=REPO_ROOT, stdout=log, stderr=subprocess.STDOUT, env=child_env()
        )
    try:
        base_url = _wait_until_serving(process, port_file, log_path)
        yield base_url
    finally:
        process.terminate()
        try:
            process.wait(timeout=_STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=_STOP_TIMEOUT)


def _wait_until_serving(process: subprocess.Popen[bytes], port_file: Path, log: Path) -> str:
    deadline = time.monotonic() + _START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            msg = f"the bench server exited ({process.returncode}):\n{log.read_text()[-3000:]}"
            raise RuntimeError(msg)
        if port_file.exists():
            base_url = f"http://127.0.0.1:{port_file.read_text().strip()}"
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{base_url}/health", timeout=1.0, trust_env=False).is_success:
                    return base_url
        time.sleep(0.05)
    msg = f"the bench server did not start in {_START_TIMEOUT:g} s:\n{log.read_text()[-3000:]}"
    raise RuntimeError(msg)


def _check_routes(base_url: str, headers: dict[str, str], paths: list[str]) -> None:
    """Every route must answer 200 with the same body before they are compared, and the
    authenticated ones must refuse a bad token."""
    with httpx.Client(base_url=base_url, headers=headers, trust_env=False, timeout=10) as client:
        answers = {path: client.get(path) for path in paths}
        refused = {
            path: client.get(path, headers={"Authorization": "Bearer x.y.z"}).status_code
            for path in paths
            if path != PUBLIC_PATH
        }
    expected = answers[AUTH_PATH].content
    for path, answer in answers.items():
        if answer.status_code != 200 or answer.content != expected:
            msg = f"{path} answered {answer.status_code}, not what {AUTH_PATH} answers"
            raise RuntimeError(msg)
    for path, status in refused.items():
        if status != 401:  # proves the route really authenticates
            msg = f"a bad token got {status} on {path}"
            raise RuntimeError(msg)


def run_http(
    issuer: LoopbackIssuer,
    *,
    duration: float,
    rounds: int,
    connections: int,
    generator: str,
    dependency: bool = False,
) -> HttpResult:
    """Serve, check, warm up, then load the routes in ``rounds`` rotating rounds."""
    headers = {"Authorization": f"Bearer {issuer.token(subject=SUBJECT)}"}
    paths = [PUBLIC_PATH, AUTH_PATH, *([DEPENDENCY_PATH] if dependency else [])]
    series: dict[str, list[LoadResult]] = {path: [] for path in paths}
    lifetime = _START_TIMEOUT + (len(paths) * (rounds + 1)) * (duration + 5.0) + 60.0
    with (
        tempfile.TemporaryDirectory(prefix="bench-http-") as tmp,
        bench_server(issuer, Path(tmp), lifetime) as base_url,
    ):
        _check_routes(base_url, headers, paths)

        def load(path: str, seconds: float) -> LoadResult:
            return run_load(
                generator,
                base_url + path,
                headers=headers,
                connections=connections,
                duration=seconds,
                max_requests=int(seconds * _MAX_REQUESTS_PER_SECOND),
            )

        for path in paths:
            load(path, min(1.0, duration))  # warm-up, discarded
        for index in range(rounds):
            shift = index % len(paths)
            for path in paths[shift:] + paths[:shift]:
                series[path].append(load(path, duration))
    return HttpResult(
        generator,
        connections,
        duration,
        auth=series[AUTH_PATH],
        public=series[PUBLIC_PATH],
        dependency=series.get(DEPENDENCY_PATH, []),
    )
