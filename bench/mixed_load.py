"""Load: ``GET /shopping/orders`` under a mix of repeated, fresh and invalid tokens.

One server process per configuration (``python -m bench.http_server``, served as the service
is: the service's own app, keys from the loopback issuer of this process; ``metrics=(False,
True)`` serves it with metrics off and on, issue 10 #7) is loaded by the mixed pass of
:mod:`bench.loadgen` in a process of its own. Every request carries a token of one class,
and every answer is recorded with its class, which is why this benchmark uses the Python
generator and not ``wrk``: wrk's Lua ``response()`` hook is not told which request an answer
belongs to, so it cannot split latencies by class.

* **repeated** — a pool of ``pool`` users' valid tokens, each sent again and again (answered
  from the verified-token cache once seen);
* **fresh** — valid tokens never sent before (a full ES384 verification each), minted before
  the clock starts in worker processes, enough for twice the rate of the warm-up pass;
* **invalid** — five kinds in turn: a bad signature, an expired token, the wrong audience,
  garbage, and an unknown ``kid`` (which may make the API refetch the JWKS, at most once per
  cooldown; the fetches are counted; within the cooldown the API cannot ask the issuer, so an
  unknown kid is then the documented 503 + ``Retry-After``, not a 401: issue 9 #7).

A warm-up pass of repeated tokens only (it also puts the pool in the cache) is discarded; then
each round runs one **baseline** pass (repeated tokens only) and one **mixed** pass, in
alternating order, and the report gives the median of the per-round ``mixed / baseline``
requests/s. Correctness is checked, not timed: every valid request (repeated or fresh) must be
answered 200 and every invalid one 401 (an unknown kid: 401 or 503), in every pass;
:attr:`LoadResult.failures` lists any breach (``python -m bench`` then exits non-zero).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import secrets
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.support import STORE, SigningKey, make_token

from .common import AUDIENCE, REPO_ROOT, LoopbackIssuer, child_env, header, median, spread
from .http_bench import bench_server
from .loadgen import CLASSES
from .minting import batches, minting_pool
from .routes import AUTH_PATH

VALID_CLASSES = ("repeated", "fresh")
INVALID_KINDS = ("bad_signature", "expired", "wrong_audience", "garbage", "unknown_kid")
INVALID_PER_KIND = 20
# Fresh tokens minted per mixed pass: the warm-up's requests/s (repeated tokens only, the
# fastest this server goes) times this, times the pass's duration and the fresh share.
FRESH_HEADROOM = 2.0
_MIN_RATE = 1000.0
_MAX_RATE = 20_000.0  # far above what one Python process serves; bounds the minting
_MAX_REQUESTS_PER_SECOND = 200_000  # only bounds the generator's request count
_GRACE_SECONDS = 15.0
_START_SECONDS = 30.0
_MINT_SECONDS_PER_TOKEN = 0.001  # generous: ~130 µs each, for the server's lifetime only


@dataclass(frozen=True, slots=True)
class LoadResult:
    """Every pass of one load run (the generator's JSON summaries) and what it checked."""

    mix: tuple[int, int, int]
    pool: int
    connections: int
    duration: float
    fresh_per_pass: int
    mint_seconds: float
    mint_workers: int
    warmup: dict[str, Any]
    baseline: list[dict[str, Any]]
    mixed: list[dict[str, Any]]
    jwks_fetches: int
    """Key-set fetches the servers of the run made during the timed passes (all of them)."""
    failures: list[str] = field(default_factory=list)
    metrics: bool = False
    """Whether the server measured (metrics on, as ``--metrics-port`` runs it)."""

    @property
    def ratios(self) -> list[float]:
        """Per-round ``mixed / baseline`` requests per second."""
        return [m["rps"] / b["rps"] for m, b in zip(self.mixed, self.baseline, strict=True)]

    @property
    def ratio(self) -> float:
        """Median of the per-round ratios."""
        return median(self.ratios)

    def errors(self) -> dict[str, int]:
        """Valid requests not answered 200 and invalid ones not answered 401, in every pass."""
        return {
            "valid_not_200": sum(_wrong(p, VALID_CLASSES, "200") for p in self._passes()),
            "invalid_not_401": sum(_wrong_invalid(p) for p in self._passes()),
        }

    def _passes(self) -> list[dict[str, Any]]:
        return [self.warmup, *self.baseline, *self.mixed]

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready figures: every pass, the ratios and the error counts."""
        return {
            "path": AUTH_PATH,
            "mix": dict(zip(CLASSES, self.mix, strict=True)),
            "pool": self.pool,
            "connections": self.connections,
            "duration": self.duration,
            "rounds": len(self.mixed),
            "fresh_per_pass": self.fresh_per_pass,
            "mint_seconds": self.mint_seconds,
            "mint_workers": self.mint_workers,
            "warmup": self.warmup,
            "baseline": self.baseline,
            "mixed": self.mixed,
            "ratios": self.ratios,
            "ratio": self.ratio,
            "jwks_fetches": self.jwks_fetches,
            "errors": self.errors(),
            "failures": self.failures,
            "metrics": self.metrics,
        }

    def report(self) -> None:
        """Print the result."""
        shares = ", ".join(
            f"{100 * weight / sum(self.mix):g}% {name}"
            for name, weight in zip(CLASSES, self.mix, strict=True)
        )
        on = ", metrics on" if self.metrics else ", metrics off"
        header(f"load: GET {AUTH_PATH} with {shares} tokens{on}")
        print(
            f"  python generator (answers recorded per class), {self.connections} keep-alive"
            f" connections, {self.duration:g} s per pass, {len(self.mixed)} rounds of"
            " baseline + mixed (alternating order)"
        )
        print(
            f"  repeated: a pool of {self.pool} users' tokens; fresh: {self.fresh_per_pass:,}"
            f" never-sent tokens per mixed pass (minted in {self.mint_seconds:.1f} s by"
            f" {self.mint_workers} processes, before the clock); invalid:"
            f" {', '.join(INVALID_KINDS)}, in turn"
        )
        print(
            f"  {'':28}{'req/s':>7}{'requests':>10}{'p50 ms':>8}{'p90 ms':>8}{'p99 ms':>8}"
            f"{'max ms':>8}  statuses"
        )
        _row("baseline: repeated only", self.baseline)
        _row("mixed: all requests", self.mixed)
        for name in CLASSES:
            if any(p["classes"][name]["count"] for p in self.mixed):
                _row(f"  {name}", self.mixed, name)
        kinds: dict[str, Counter[str]] = {}
        for result in self.mixed:
            for kind, statuses in result["invalid_kinds"].items():
                kinds.setdefault(kind, Counter()).update(statuses)
        if kinds:
            print(
                "  invalid kinds: "
                + "; ".join(f"{kind} {_statuses(counter)}" for kind, counter in kinds.items())
            )
        print(f"  ratio mixed/baseline req/s {self.ratio:8.3f}  (rounds {spread(self.ratios)})")
        errors = self.errors()
        print(
            f"  errors: {errors['valid_not_200']} valid requests not answered 200,"
            f" {errors['invalid_not_401']} invalid ones not answered 401 (every pass)"
        )
        print(
            f"  JWKS fetches during the timed passes: {self.jwks_fetches}"
            " (unknown kids: at most one per cooldown)"
        )
        for failure in self.failures:
            print(f"  FAILED: {failure}")


def _wrong(result: dict[str, Any], names: Iterable[str], expected: str) -> int:
    return sum(
        count
        for name in names
        for status, count in result["classes"][name]["statuses"].items()
        if status != expected
    )


def _wrong_invalid(result: dict[str, Any]) -> int:
    """Invalid requests not answered 401, except an unknown kid's 503: within the refetch
    cooldown the API cannot ask the issuer whether it publishes the kid (issue 9 #7)."""
    cooldown_503 = result.get("invalid_kinds", {}).get("unknown_kid", {}).get("503", 0)
    return _wrong(result, ("invalid",), "401") - int(cooldown_503)


def _statuses(counter: Counter[str]) -> str:
    return " ".join(f"{status}: {count}" for status, count in sorted(counter.items()))


def _row(label: str, results: list[dict[str, Any]], name: str | None = None) -> None:
    """One line of the table: a class of the passes (``name``) or all their requests; rates
    and percentiles are medians over the rounds, the maximum the highest of any round."""
    figures = [result["all"] if name is None else result["classes"][name] for result in results]
    rate = median([f["count"] / r["elapsed"] for f, r in zip(figures, results, strict=True)])
    statuses: Counter[str] = Counter()
    for f in figures:
        statuses.update(f["statuses"])
    print(
        f"  {label:28}{rate:7.0f}{sum(f['count'] for f in figures):10d}"
        f"{median([f['p50_ms'] for f in figures]):8.2f}"
        f"{median([f['p90_ms'] for f in figures]):8.2f}"
        f"{median([f['p99_ms'] for f in figures]):8.2f}"
        f"{max(f['max_ms'] for f in figures):8.2f}  {_statuses(statuses)}"
    )


# -- the tokens ---------------------------------------------------------------------------------


def _signed(issuer: LoopbackIssuer, key: SigningKey, index: int, **claims: Any) -> str:
    now = int(time.time())
    values: dict[str, Any] = {
        "iss": issuer.issuer,
        "sub": f"invalid-{index}",
        "aud": AUDIENCE,
        "scope": "shopping:read shopping:write",
        "iat": now,
        "exp": now + 3600,
        "jti": secrets.token_hex(16),
    }
    values.update(claims)
    return make_token(key, **values)


def invalid_tokens(
    issuer: LoopbackIssuer, per_kind: int = INVALID_PER_KIND
) -> dict[str, list[str]]:
    """``per_kind`` distinct tokens of each invalid kind (all must get 401; an unknown kid
    within the refetch cooldown the documented 503)."""
    stranger = SigningKey.es384("bench-unknown-kid", index=1)  # not in the issuer's JWKS
    now = int(time.time())
    tokens: dict[str, list[str]] = {kind: [] for kind in INVALID_KINDS}
    for index in range(per_kind):
        signed = _signed(issuer, issuer.key, index)
        other = _signed(issuer, issuer.key, index + per_kind)
        # The claims of one token with the (well-formed, valid-length) signature of another.
        tokens["bad_signature"].append(f"{signed.rsplit('.', 1)[0]}.{other.rsplit('.', 1)[1]}")
        tokens["expired"].append(_signed(issuer, issuer.key, index, iat=now - 7200, exp=now - 3600))
        tokens["wrong_audience"].append(_signed(issuer, issuer.key, index, aud=STORE))
        tokens["garbage"].append(".".join(secrets.token_urlsafe(24) for _ in range(3)))
        tokens["unknown_kid"].append(_signed(issuer, stranger, index))
    return tokens


def mint_fresh(issuer: LoopbackIssuer, count: int, workers: int) -> list[str]:
    """``count`` distinct valid ES384 tokens minted by ``workers`` processes."""
    with minting_pool(
        issuer.key,
        issuer=issuer.issuer,
        now=int(time.time()),
        workers=workers,
        subject_prefix="fresh-user-",
    ) as pool:
        return [token for batch in batches(pool, count, 2 * workers) for token in batch]


# -- the run ------------------------------------------------------------------------------------


def _generate(
    url: str,
    tokens_file: Path,
    *,
    mix: tuple[int, int, int],
    connections: int,
    duration: float,
    seed: int,
) -> dict[str, Any]:
    command = [
        sys.executable,
        "-m",
        "bench.loadgen",
        url,
        f"--mix-file={tokens_file}",
        f"--mix={','.join(map(str, mix))}",
        f"--connections={connections}",
        f"--duration={duration}",
        f"--max-requests={int(duration * _MAX_REQUESTS_PER_SECOND)}",
        f"--seed={seed}",
    ]
    completed = subprocess.run(  # noqa: S603 - our own interpreter and module, no shell
        command,
        capture_output=True,
        text=True,
        timeout=duration + 2 * _GRACE_SECONDS,
        check=False,
        cwd=REPO_ROOT,
        env=child_env(),
    )
    if completed.returncode != 0:
        msg = f"the load generator failed ({completed.returncode}):\n{completed.stderr[-3000:]}"
        raise RuntimeError(msg)
    result: dict[str, Any] = json.loads(completed.stdout)
    return result


def _write_tokens(path: Path, tokens: dict[str, Any]) -> Path:
    path.touch(mode=0o600)
    path.write_text(json.dumps(tokens))
    return path


def check_pass(result: dict[str, Any], label: str) -> list[str]:
    failures = []
    valid = _wrong(result, VALID_CLASSES, "200")
    invalid = _wrong_invalid(result)
    if valid:
        failures.append(f"{label}: {valid} valid requests were not answered 200")
    if invalid:
        failures.append(f"{label}: {invalid} invalid requests were not answered 401")
    if result["stopped_by"] != "time":
        failures.append(f"{label}: the pass stopped early ({result['stopped_by']})")
    return failures


def run_mixed_load(
    issuer: LoopbackIssuer,
    *,
    duration: float,
    rounds: int,
    connections: int,
    mix: tuple[int, int, int],
    pool: int,
    workers: int | None = None,
    metrics: tuple[bool, ...] = (False,),
) -> list[LoadResult]:
    """Serve one server per entry of ``metrics`` (``True``: metrics on, as ``--metrics-port``
    runs it), warm each up, mint the fresh tokens, then run ``rounds`` rounds, each a baseline
    and a mixed pass on every server (the order alternating from round to round, so that
    others' load on the machine falls on every server alike). One result per server."""
    workers = workers or max(1, os.cpu_count() or 1)
    baseline_mix = (1, 0, 0)
    repeated = [issuer.token(subject=f"pool-user-{index}") for index in range(pool)]
    invalid = invalid_tokens(issuer)
    fresh_share = mix[1] / sum(mix)
    servers = len(metrics)
    # The fresh tokens are sized from the warm-up; the servers' lifetime allows for the most.
    most_fresh = (_MAX_RATE * FRESH_HEADROOM * duration * fresh_share + connections) * rounds
    lifetime = (
        _START_SECONDS
        + servers * (2 * rounds + 1) * (duration + 2 * _GRACE_SECONDS)
        + servers * most_fresh * _MINT_SECONDS_PER_TOKEN / workers
        + 60.0
    )
    failures: dict[int, list[str]] = {index: [] for index in range(servers)}
    with tempfile.TemporaryDirectory(prefix="bench-load-") as tmp, contextlib.ExitStack() as stack:
        workdir = Path(tmp)
        urls = [
            stack.enter_context(
                bench_server(issuer, workdir, lifetime, name=f"server-{index}", metrics=on)
            )
            + AUTH_PATH
            for index, on in enumerate(metrics)
        ]
        baseline_file = _write_tokens(
            workdir / "baseline.json", {"repeated": repeated, "fresh": []}
        )

        def load(
            server: int,
            tokens_file: Path,
            load_mix: tuple[int, int, int],
            seconds: float,
            seed: int,
        ) -> dict[str, Any]:
            return _generate(
                urls[server],
                tokens_file,
                mix=load_mix,
                connections=connections,
                duration=seconds,
                seed=seed,
            )

        warmups = [
            load(index, baseline_file, baseline_mix, min(1.0, duration), 0)
            for index in range(servers)
        ]
        for index, warmup in enumerate(warmups):
            failures[index] += check_pass(warmup, "warm-up")
        fastest = max(warmup["rps"] for warmup in warmups)
        fresh_per_pass = (
            math.ceil(
                min(max(fastest, _MIN_RATE), _MAX_RATE) * FRESH_HEADROOM * duration * fresh_share
            )
            + connections
            if mix[1]
            else 0
        )
        passes_with_fresh = rounds * servers
        started = time.perf_counter()
        fresh = (
            mint_fresh(issuer, fresh_per_pass * passes_with_fresh, workers)
            if fresh_per_pass
            else []
        )
        mint_seconds = time.perf_counter() - started
        mixed_files = [
            _write_tokens(
                workdir / f"mixed-{index}.json",
                {
                    "repeated": repeated,
                    "fresh": fresh[index * fresh_per_pass : (index + 1) * fresh_per_pass],
                    "invalid": invalid,
                },
            )
            for index in range(passes_with_fresh)
        ]
        del fresh
        fetches_before = issuer.hits.get("/oidc/jwks", 0)
        baseline: dict[int, list[dict[str, Any]]] = {index: [] for index in range(servers)}
        mixed: dict[int, list[dict[str, Any]]] = {index: [] for index in range(servers)}
        for index in range(rounds):
            passes = [(server, kind) for server in range(servers) for kind in ("baseline", "mixed")]
            for server, kind in passes if index % 2 == 0 else passes[::-1]:
                if kind == "baseline":
                    tokens_file, load_mix = baseline_file, baseline_mix
                else:
                    tokens_file, load_mix = mixed_files[index * servers + server], mix
                result = load(server, tokens_file, load_mix, duration, seed=index + 1)
                failures[server] += check_pass(result, f"round {index + 1} {kind}")
                (baseline if kind == "baseline" else mixed)[server].append(result)
        jwks_fetches = issuer.hits.get("/oidc/jwks", 0) - fetches_before
    return [
        LoadResult(
            mix=mix,
            pool=pool,
            connections=connections,
            duration=duration,
            fresh_per_pass=fresh_per_pass,
            mint_seconds=mint_seconds,
            mint_workers=workers,
            warmup=warmups[index],
            baseline=baseline[index],
            mixed=mixed[index],
            jwks_fetches=jwks_fetches,
            failures=failures[index],
            metrics=on,
        )
        for index, on in enumerate(metrics)
    ]


def report_metrics_overhead(off: LoadResult, on: LoadResult) -> None:
    """Print the two runs' medians side by side (issue 10 #7)."""
    header("load: metrics off vs on (two servers, their passes interleaved round by round)")
    print(f"  {'':28}{'off req/s':>10}{'on req/s':>10}{'on/off':>8}{'off p99':>9}{'on p99':>8}")
    for label, name in (("baseline: repeated only", "baseline"), ("mixed: all requests", "mixed")):
        off_passes, on_passes = getattr(off, name), getattr(on, name)
        off_rps = median([p["rps"] for p in off_passes])
        on_rps = median([p["rps"] for p in on_passes])
        off_p99 = median([p["all"]["p99_ms"] for p in off_passes])
        on_p99 = median([p["all"]["p99_ms"] for p in on_passes])
        print(
            f"  {label:28}{off_rps:10.0f}{on_rps:10.0f}{on_rps / off_rps:8.3f}"
            f"{off_p99:9.2f}{on_p99:8.2f}"
        )
    print(f"  ratio mixed/baseline: off {off.ratio:.3f}, on {on.ratio:.3f}")
