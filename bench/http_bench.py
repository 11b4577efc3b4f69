"""HTTP: what ``python -m resource_api`` serves, measured outside-in against the framework's
ceiling on the same server, in one run.

Five server processes (``python -m bench.http_server``), all served exactly as the service
is (granian through :func:`service_kit.server.serve`, one worker, access lines on at ``INFO``):

* the **service** app plus the benchmark routes (its keys fetched from the loopback issuer of
  this process);
* the same app at ``LOG_LEVEL=WARNING`` (**access lines off**), and once more at ``INFO``
  (**access lines on**), both loaded on ``GET /health`` only, for what the lines cost between
  two servers with the same history;
* a **ceiling** app: bare Litestar, one JSON handler (``GET /ceiling``);
* the service app with **metrics on** (``--metrics-port``'s set-up: the worker measures every
  request and writes its snapshot every second, an exporter process serves ``/metrics``).

Rows, each loaded for ``duration`` seconds per round at ``connections`` keep-alive
connections (``wrk -t1`` or ``bench.loadgen``), the rows' order rotating from round to round:
``ceiling``; ``health`` (``GET /health`` on the service server) and, on their own servers,
``health, access log off`` and ``health, access log on (health only)``; ``no auth`` — ``GET
/bench/public-orders``, a public copy of the list-orders route that runs the very handler
function with a fixed token (checked byte-identical to the real route's answer before any
load); ``orders, repeated token`` — ``GET /shopping/orders`` with one valid token (a
verified-cache hit); ``orders, forged token replayed`` — one token whose signature is another
token's (every answer must be 401; after the first, a refusal-cache hit); ``orders, distinct
tokens`` — valid tokens never sent before, each sent once (a full ES384 verification each),
minted beforehand in worker processes. The verification floor — one core's bare P-384
verifications per second (cryptography, on a sample of the same tokens, in this process) — is
measured in every round too.

Printed: req/s and p50/p99 per row (medians over rounds), wrong answers, and the ratios of
``issues`` 8, each the median of per-round ratios: health/ceiling, orders/health and the p99
ratio, forged/health, distinct/floor, access log on/off, and auth/no-auth.

Metrics rows (issue 10 #7): ``health``, ``no auth`` and ``orders, repeated token`` again on the
metrics-on server, giving auth/no-auth and orders/health with metrics on and orders metrics
on/off; after the rounds, :data:`SCRAPES` scrapes of its ``/metrics`` (wall time, and the
exporter's merge + render time) are the scrape cost.

``dependency=True`` adds a diagnostic row on ``GET /bench/access-token-dependency-orders``
(the token taken through the ``access_token`` dependency instead of ``request.auth``).

:func:`run_servers` is the server comparison: the ceiling app on granian (as shipped) and on
uvicorn (h11 + asyncio, httptools + uvloop) and hypercorn (asyncio, uvloop), loaded the same
way, in rotating rounds.
"""

from __future__ import annotations

import base64
import contextlib
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import httpx
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from .common import REPO_ROOT, SUBJECT, LoopbackIssuer, child_env, header, median, spread
from .http_server import CEILING_PATH, SERVERS
from .loadgen import LoadResult, run_load
from .minting import batches, minting_pool
from .routes import AUTH_PATH, DEPENDENCY_PATH, PUBLIC_PATH

TARGET_RATIO = 0.85
_START_TIMEOUT = 30.0
_STOP_TIMEOUT = 10.0
_MAX_REQUESTS_PER_SECOND = 200_000  # only bounds the Python generator's request count
_DISTINCT_RATE_BOUND = 6000  # tokens minted per second of a distinct pass: above what it uses
_FLOOR_SAMPLE = 400
HEALTH: Final = "/health"

# Rows of run_http: label, server, path, what each request carries, the expected status.
CEILING_ROW: Final = "ceiling (bare Litestar, same server)"
HEALTH_ROW: Final = "health"
HEALTH_QUIET_ROW: Final = "health, access log off"
HEALTH_LOGGED_ROW: Final = "health, access log on (health only)"
PUBLIC_ROW: Final = "no auth (public copy of orders)"
REPEATED_ROW: Final = "orders, repeated token"
FORGED_ROW: Final = "orders, forged token replayed"
DISTINCT_ROW: Final = "orders, distinct tokens (each once)"
DEPENDENCY_ROW: Final = "diagnostic: access_token dependency"
HEALTH_METRICS_ROW: Final = "health, metrics on"
PUBLIC_METRICS_ROW: Final = "no auth, metrics on"
REPEATED_METRICS_ROW: Final = "orders, repeated token, metrics on"
SCRAPES: Final = 30
# Targets of the ratios (issue 8); figures, not timed tests.
TARGETS: Final = {
    "health/ceiling": (0.80, ">="),
    "orders repeated/health": (0.70, ">="),
    "orders p99/health p99": (1.5, "<="),
    "forged replayed/health": (0.70, ">="),
    "distinct/floor": (0.80, ">="),
    "health access log on/off": (0.95, ">="),
    "auth/no-auth": (TARGET_RATIO, ">="),
    # Issue 10 #7: the same targets with metrics on, and what metrics cost on their own.
    "auth/no-auth, metrics on": (TARGET_RATIO, ">="),
    "orders repeated/health, metrics on": (0.70, ">="),
    "orders metrics on/off": (0.95, ">="),
}


@dataclass(frozen=True, slots=True)
class Row:
    """One series of passes: which server, which path, with what."""

    label: str
    server: str
    path: str
    headers: dict[str, str] = field(default_factory=dict)
    distinct: bool = False
    expect_status: int = 200


@dataclass(frozen=True, slots=True)
class HttpResult:
    """Per-round load results of every row, and the verification floor of every round."""

    generator: str
    connections: int
    duration: float
    series: dict[str, list[LoadResult]]
    floor: list[float]
    distinct_tokens: int = 0
    ran_out: int = 0
    scrape_ms: list[float] = field(default_factory=list)
    """Wall time of each ``GET /metrics`` of the metrics-on server after the rounds."""
    render_ms: list[float] = field(default_factory=list)
    """The exporter's own time (merge and render) of each of those scrapes."""
    scrape_bytes: int = 0

    @property
    def auth(self) -> list[LoadResult]:
        """The repeated-token orders passes."""
        return self.series[REPEATED_ROW]

    @property
    def public(self) -> list[LoadResult]:
        """The public-copy passes."""
        return self.series[PUBLIC_ROW]

    @property
    def dependency(self) -> list[LoadResult]:
        """The diagnostic passes (empty unless asked for)."""
        return self.series.get(DEPENDENCY_ROW, [])

    @property
    def ratios(self) -> list[float]:
        """Per-round ``auth / no-auth`` requests per second."""
        return _ratios(self.auth, self.public)

    @property
    def ratio(self) -> float:
        """Median of the per-round auth/no-auth ratios."""
        return median(self.ratios)

    def named_ratios(self) -> dict[str, list[float]]:
        """Every per-round ratio of issue 8's targets that this run measured."""
        rps = {label: [r.rps for r in results] for label, results in self.series.items()}
        named = {
            "health/ceiling": _div(rps[HEALTH_ROW], rps[CEILING_ROW]),
            "orders repeated/health": _div(rps[REPEATED_ROW], rps[HEALTH_ROW]),
            "orders p99/health p99": _div(
                [r.p99_ms for r in self.auth], [r.p99_ms for r in self.series[HEALTH_ROW]]
            ),
            "forged replayed/health": _div(rps[FORGED_ROW], rps[HEALTH_ROW]),
            "health access log on/off": _div(rps[HEALTH_LOGGED_ROW], rps[HEALTH_QUIET_ROW]),
            "auth/no-auth": self.ratios,
        }
        if DISTINCT_ROW in rps:
            named["distinct/floor"] = _div(rps[DISTINCT_ROW], self.floor)
        if REPEATED_METRICS_ROW in rps:
            named["auth/no-auth, metrics on"] = _div(
                rps[REPEATED_METRICS_ROW], rps[PUBLIC_METRICS_ROW]
            )
            named["orders repeated/health, metrics on"] = _div(
                rps[REPEATED_METRICS_ROW], rps[HEALTH_METRICS_ROW]
            )
            named["orders metrics on/off"] = _div(rps[REPEATED_METRICS_ROW], rps[REPEATED_ROW])
        return named

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready figures, with the medians."""
        named = self.named_ratios()
        return {
            "generator": self.generator,
            "connections": self.connections,
            "duration": self.duration,
            "rounds": len(self.auth),
            "rows": {
                label: [result.as_dict() for result in results]
                for label, results in self.series.items()
            },
            "floor_verifications_per_second": self.floor,
            "distinct_tokens": self.distinct_tokens,
            "distinct_passes_out_of_tokens": self.ran_out,
            "auth": [result.as_dict() for result in self.auth],
            "no_auth": [result.as_dict() for result in self.public],
            "ratios": self.ratios,
            "ratio": self.ratio,
            "target_ratio": TARGET_RATIO,
            "named_ratios": named,
            "named_ratio_medians": {name: median(values) for name, values in named.items()},
            "dependency": [result.as_dict() for result in self.dependency],
            "dependency_ratios": _ratios(self.dependency, self.public) if self.dependency else [],
            "scrape_ms": self.scrape_ms,
            "scrape_render_ms": self.render_ms,
            "scrape_bytes": self.scrape_bytes,
        }

    def report(self) -> None:
        """Print the result."""
        header("http: python -m resource_api's server and app, outside-in, vs the ceiling")
        print(
            f"  load: {self.generator}, {self.connections} keep-alive connections,"
            f" {self.duration:g} s per pass, {len(self.auth)} rotating rounds; one worker"
        )
        print(f"  {'':40}{'req/s':>8}{'p50 ms':>9}{'p99 ms':>9}{'wrong':>7}")
        for label, results in self.series.items():
            print(
                f"  {label:40}{median([r.rps for r in results]):8.0f}"
                f"{median([r.p50_ms for r in results]):9.2f}"
                f"{median([r.p99_ms for r in results]):9.2f}"
                f"{sum(r.errors for r in results):7d}"
            )
        print(f"  {'floor: bare P-384 verifications/s':40}{median(self.floor):8.0f}")
        if self.distinct_tokens:
            out = f"; {self.ran_out} pass(es) used every token" if self.ran_out else ""
            print(f"  distinct tokens sent: {self.distinct_tokens:,}, each once{out}")
        for name, values in self.named_ratios().items():
            target, sense = TARGETS[name]
            value = median(values)
            met = value >= target if sense == ">=" else value <= target
            print(
                f"  {name:32}{value:8.3f}  (rounds {spread(values)};"
                f" target {sense} {target}: {'meets' if met else 'MISSES'})"
            )
        if self.dependency:
            ratios = _ratios(self.dependency, self.public)
            print(f"  dependency/no-auth req/s  {median(ratios):8.3f}  (rounds {spread(ratios)})")
        if self.scrape_ms:
            print(
                f"  GET /metrics after the rounds ({len(self.scrape_ms)} scrapes,"
                f" {self.scrape_bytes:,} bytes): median {median(self.scrape_ms):.2f} ms wall,"
                f" {median(self.render_ms):.2f} ms merge + render (max"
                f" {max(self.render_ms):.2f}; budget 2 ms)"
            )


def _div(values: list[float], baseline: list[float]) -> list[float]:
    return [v / b if b else float("nan") for v, b in zip(values, baseline, strict=True)]


def _ratios(results: list[LoadResult], baseline: list[LoadResult]) -> list[float]:
    return _div([r.rps for r in results], [b.rps for b in baseline])


@contextlib.contextmanager
def bench_server(
    issuer: LoopbackIssuer | None,
    workdir: Path,
    lifetime: float,
    *,
    app: str = "service",
    server: str = SERVERS[0],
    log_level: str = "INFO",
    name: str = "server",
    metrics: bool = False,
) -> Iterator[str]:
    """Start ``bench.http_server`` on a free loopback port; yield its base URL. The server
    exits by itself after ``lifetime`` seconds should this process fail to stop it."""
    port_file = workdir / f"{name}.port"
    log_path = workdir / f"{name}.log"
    command = [
        sys.executable,
        "-m",
        "bench.http_server",
        f"--app={app}",
        f"--server={server}",
        f"--log-level={log_level}",
        f"--port-file={port_file}",
        f"--lifetime={lifetime}",
    ]
    if issuer is not None:
        command += [f"--endpoint={issuer.endpoint}", f"--database={workdir / f'{name}.sqlite3'}"]
    if metrics:
        command.append("--metrics")
    ready = CEILING_PATH if app == "ceiling" else HEALTH
    with log_path.open("w") as log:
        process = subprocess.Popen(  # noqa: S603 - our interpreter and module, no shell
            command, cwd=REPO_ROOT, stdout=log, stderr=subprocess.STDOUT, env=child_env()
        )
    try:
        base_url = _wait_until_serving(process, port_file, log_path, ready)
        yield base_url
    finally:
        process.terminate()
        try:
            process.wait(timeout=_STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=_STOP_TIMEOUT)


def _wait_until_serving(
    process: subprocess.Popen[bytes], port_file: Path, log: Path, ready: str
) -> str:
    deadline = time.monotonic() + _START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            msg = f"the bench server exited ({process.returncode}):\n{log.read_text()[-3000:]}"
            raise RuntimeError(msg)
        if port_file.exists():
            base_url = f"http://127.0.0.1:{port_file.read_text().strip()}"
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{base_url}{ready}", timeout=1.0, trust_env=False).is_success:
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


def forged(token: str, other: str) -> str:
    """``token``'s header and claims with ``other``'s signature: well-formed, valid claims, a
    known kid, and a signature that does not verify."""
    return token.rpartition(".")[0] + "." + other.rpartition(".")[2]


def verification_floor(issuer: LoopbackIssuer, tokens: list[str]) -> float:
    """Bare P-384 verifications per second on one core: cryptography's ``verify`` of
    ``tokens``, with the signature conversion and signing input prepared beforehand."""
    public_key = issuer.key.private_key.public_key()
    assert isinstance(public_key, ec.EllipticCurvePublicKey)
    prepared = []
    for token in tokens:
        signing_input, _, signature = token.rpartition(".")
        raw = base64.urlsafe_b64decode(signature + "=" * (-len(signature) % 4))
        half = len(raw) // 2
        der = encode_dss_signature(
            int.from_bytes(raw[:half], "big"), int.from_bytes(raw[half:], "big")
        )
        prepared.append((der, signing_input.encode()))
    algorithm = ec.ECDSA(hashes.SHA384())
    started = time.perf_counter()
    for der, data in prepared:
        public_key.verify(der, data, algorithm)
    return len(prepared) / (time.perf_counter() - started)


def run_http(
    issuer: LoopbackIssuer,
    *,
    duration: float,
    rounds: int,
    connections: int,
    generator: str,
    dependency: bool = False,
) -> HttpResult:
    """Serve, check, warm up, then load every row in ``rounds`` rotating rounds."""
    token = issuer.token(subject=SUBJECT)
    headers = {"Authorization": f"Bearer {token}"}
    bad = {"Authorization": f"Bearer {forged(token, issuer.token(subject='someone-else'))}"}
    rows = [
        Row(CEILING_ROW, "ceiling", CEILING_PATH),
        Row(HEALTH_ROW, "service", HEALTH),
        Row(HEALTH_QUIET_ROW, "quiet", HEALTH),
        Row(HEALTH_LOGGED_ROW, "logged", HEALTH),
        Row(PUBLIC_ROW, "service", PUBLIC_PATH, headers),
        Row(REPEATED_ROW, "service", AUTH_PATH, headers),
        Row(FORGED_ROW, "service", AUTH_PATH, bad, expect_status=401),
        Row(DISTINCT_ROW, "service", AUTH_PATH, distinct=True),
        Row(HEALTH_METRICS_ROW, "metrics", HEALTH),
        Row(PUBLIC_METRICS_ROW, "metrics", PUBLIC_PATH, headers),
        Row(REPEATED_METRICS_ROW, "metrics", AUTH_PATH, headers),
    ]
    if dependency:
        rows.append(Row(DEPENDENCY_ROW, "service", DEPENDENCY_PATH, headers))
    series: dict[str, list[LoadResult]] = {row.label: [] for row in rows}
    # wrk runs whole seconds (at least one): mint for the time a pass really lasts.
    seconds = max(1, round(duration)) if generator == "wrk" else duration
    per_pass = max(50, int(seconds * _DISTINCT_RATE_BOUND))
    lifetime = _START_TIMEOUT + (len(rows) * (rounds + 1)) * (duration + 5.0) + 120.0
    floor: list[float] = []
    ran_out = 0
    with (
        tempfile.TemporaryDirectory(prefix="bench-http-") as tmp,
        contextlib.ExitStack() as stack,
    ):
        workdir = Path(tmp)
        urls = {
            "service": stack.enter_context(bench_server(issuer, workdir, lifetime)),
            "quiet": stack.enter_context(
                bench_server(issuer, workdir, lifetime, log_level="WARNING", name="quiet")
            ),
            # Access lines on, and like "quiet" serving nothing but /health: the on/off
            # comparison is between two servers with the same history. (The service server's
            # /health is measured after the other rows filled its caches, which alone costs
            # it several per cent: not an access-line cost.)
            "logged": stack.enter_context(bench_server(issuer, workdir, lifetime, name="logged")),
            "ceiling": stack.enter_context(
                bench_server(None, workdir, lifetime, app="ceiling", name="ceiling")
            ),
            "metrics": stack.enter_context(
                bench_server(issuer, workdir, lifetime, name="metrics", metrics=True)
            ),
        }
        paths = [PUBLIC_PATH, AUTH_PATH, *([DEPENDENCY_PATH] if dependency else [])]
        _check_routes(urls["service"], headers, paths)
        token_files = _distinct_token_files(issuer, workdir, rounds + 1, per_pass)

        def load(row: Row, seconds: float, tokens: Path | None = None) -> LoadResult:
            return run_load(
                generator,
                urls[row.server] + row.path,
                headers=row.headers,
                connections=connections,
                duration=seconds,
                max_requests=int(seconds * _MAX_REQUESTS_PER_SECOND),
                tokens_file=tokens,
                expect_status=row.expect_status,
            )

        for row in rows:  # warm-up, discarded
            load(row, min(1.0, duration), next(token_files) if row.distinct else None)
        for index in range(rounds):
            shift = index % len(rows)
            for row in rows[shift:] + rows[:shift]:
                tokens = next(token_files) if row.distinct else None
                result = load(row, duration, tokens)
                if tokens is not None and result.requests >= per_pass - connections:
                    ran_out += 1
                series[row.label].append(result)
            floor.append(verification_floor(issuer, _sample(token_files.last)))
        metrics_port = (workdir / "metrics.metrics").read_text().strip()
        scrape_ms, render_ms, scrape_bytes = scrape(f"http://127.0.0.1:{metrics_port}/metrics")
    return HttpResult(
        generator,
        connections,
        duration,
        series,
        floor,
        distinct_tokens=sum(r.requests for r in series[DISTINCT_ROW]),
        ran_out=ran_out,
        scrape_ms=scrape_ms,
        render_ms=render_ms,
        scrape_bytes=scrape_bytes,
    )


def scrape(url: str, times: int = SCRAPES) -> tuple[list[float], list[float], int]:
    """``GET url`` ``times`` times on one connection: wall milliseconds, the exporter's own
    merge + render milliseconds (``X-Render-Seconds``), and the exposition's size."""
    wall: list[float] = []
    render: list[float] = []
    size = 0
    with httpx.Client(trust_env=False, timeout=10) as client:
        for _ in range(times):
            started = time.perf_counter()
            answer = client.get(url)
            wall.append((time.perf_counter() - started) * 1000)
            answer.raise_for_status()
            render.append(float(answer.headers["x-render-seconds"]) * 1000)
            size = len(answer.content)
    return wall, render, size


class _TokenFiles:
    """Files of ``per_pass`` never-sent valid tokens, one file per pass, minted up front in
    worker processes (``bench/minting.py``)."""

    def __init__(self, files: list[Path]) -> None:
        self._files = iter(files)
        self.last: Path = files[0]

    def __next__(self) -> Path:
        self.last = next(self._files)
        return self.last


def _distinct_token_files(
    issuer: LoopbackIssuer, workdir: Path, passes: int, per_pass: int
) -> _TokenFiles:
    files = []
    with minting_pool(issuer.key, issuer=issuer.issuer, now=int(time.time()), workers=2) as pool:
        minted = (token for batch in batches(pool, passes * per_pass, 4) for token in batch)
        for index in range(passes):
            path = workdir / f"tokens-{index}.txt"
            path.write_text("\n".join(next(minted) for _ in range(per_pass)) + "\n")
            files.append(path)
    return _TokenFiles(files)


def _sample(path: Path) -> list[str]:
    return path.read_text().split()[:_FLOOR_SAMPLE]


@dataclass(frozen=True, slots=True)
class ServersResult:
    """The ceiling app's passes on each server."""

    generator: str
    connections: int
    duration: float
    series: dict[str, list[LoadResult]]

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready figures."""
        best = max(median([r.rps for r in results]) for results in self.series.values())
        return {
            "generator": self.generator,
            "connections": self.connections,
            "duration": self.duration,
            "servers": {
                name: {
                    "passes": [r.as_dict() for r in results],
                    "rps": median([r.rps for r in results]),
                    "p99_ms": median([r.p99_ms for r in results]),
                    "of_best": median([r.rps for r in results]) / best,
                }
                for name, results in self.series.items()
            },
        }

    def report(self) -> None:
        """Print the comparison."""
        header("servers: the bare Litestar app (one JSON handler) on each HTTP server")
        rounds = len(next(iter(self.series.values())))
        print(
            f"  load: {self.generator}, {self.connections} keep-alive connections,"
            f" {self.duration:g} s per pass, {rounds} rotating rounds; one process each"
        )
        print(f"  {'':24}{'req/s':>8}{'p50 ms':>9}{'p99 ms':>9}{'wrong':>7}{'of best':>9}")
        figures = self.as_dict()["servers"]
        for name, results in self.series.items():
            print(
                f"  {name:24}{figures[name]['rps']:8.0f}"
                f"{median([r.p50_ms for r in results]):9.2f}"
                f"{figures[name]['p99_ms']:9.2f}"
                f"{sum(r.errors for r in results):7d}{figures[name]['of_best']:9.2f}"
            )


def run_servers(*, duration: float, rounds: int, connections: int, generator: str) -> ServersResult:
    """Load the ceiling app on every server of :data:`bench.http_server.SERVERS`."""
    series: dict[str, list[LoadResult]] = {name: [] for name in SERVERS}
    lifetime = _START_TIMEOUT + len(SERVERS) * (rounds + 1) * (duration + 5.0) + 60.0
    with (
        tempfile.TemporaryDirectory(prefix="bench-servers-") as tmp,
        contextlib.ExitStack() as stack,
    ):
        # Access lines off for every server (the rivals' too): the servers are compared,
        # not the logging. granian still runs our wrapper (the Server header's value).
        urls = {
            name: stack.enter_context(
                bench_server(
                    None,
                    Path(tmp),
                    lifetime,
                    app="ceiling",
                    server=name,
                    name=name,
                    log_level="WARNING",
                )
            )
            for name in SERVERS
        }

        def load(name: str, seconds: float) -> LoadResult:
            return run_load(
                generator,
                urls[name] + CEILING_PATH,
                headers={},
                connections=connections,
                duration=seconds,
                max_requests=int(seconds * _MAX_REQUESTS_PER_SECOND),
            )

        for name in SERVERS:
            load(name, min(1.0, duration))
        names = list(SERVERS)
        for index in range(rounds):
            shift = index % len(names)
            for name in names[shift:] + names[:shift]:
                series[name].append(load(name, duration))
    return ServersResult(generator, connections, duration, series)
