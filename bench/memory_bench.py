"""Memory: N distinct valid tokens through one verifier leave its cache at the configured bound.

One :class:`TokenVerifier` (default policy but for ``cache_size``) with a :class:`RemoteKeySet`
fetching a loopback issuer's JWKS verifies ``N`` distinct valid tokens, each once. Every token
is a cache miss that is then remembered, so the cache fills to its bound and then evicts first
in, first out; the question is whether the process's resident memory stops growing with it.

The tokens are **ES256** (P-256, in Logto's default allow-list): signing and verifying are
several times cheaper than ES384, which makes a million tokens a matter of minutes. They are
**streamed**: worker processes mint numbered batches (distinct ``sub`` and ``jti``; at most a
few batches in flight), this process verifies each batch and drops it, so the resident memory
measured here is the verifier's, not a token list's (the workers' memory is their own).

Reported: tokens presented, verifications/s, cache entries at the end vs the bound, the
resident set (``VmRSS``) before the first token, when the cache first reached its bound, at the
highest sample (one after every batch) and after the last token (after a ``gc.collect()``,
the verifier and its full cache still alive), the
kernel's high-water mark ``VmHWM``, and — measured afterwards, on a fresh verifier filled to the
bound under ``tracemalloc`` — the Python heap a full cache holds.
"""

from __future__ import annotations

import asyncio
import gc
import os
import resource
import time
import tracemalloc
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from litestar_logto import LOGTO_ALGORITHMS, InvalidToken, RemoteKeySet, TokenVerifier
from litestar_logto.verifier import VerifierPolicy

from tests.support import SigningKey

from .common import AUDIENCE, INLINE_SIGNATURES, header, loopback_issuer, warmed_key_set
from .minting import batches, mint_batch, minting_pool

_MIB = 1024 * 1024


# -- memory readings ------------------------------------------------------------------------------


def _status_kib(field: str) -> int | None:
    status = Path("/proc/self/status")
    if not status.exists():
        return None
    for line in status.read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    return None


def rss_bytes() -> int:
    """The resident set now (``VmRSS``); the peak so far (``ru_maxrss``) where /proc is absent."""
    kib = _status_kib("VmRSS")
    if kib is None:
        kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kib * 1024


def hwm_bytes() -> int:
    """The resident set's high-water mark (``VmHWM``, or ``ru_maxrss``)."""
    kib = _status_kib("VmHWM")
    if kib is None:
        kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kib * 1024


# -- the benchmark ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MemoryResult:
    """Figures of one memory run (bytes, seconds)."""

    tokens: int
    cache_size: int
    workers: int
    verified: int
    errors: int
    cache_entries: int
    key_fetches: int
    elapsed_s: float
    verify_s: float
    rss_before: int
    rss_at_bound: int
    rss_peak_sampled: int
    rss_after: int
    hwm_after: int
    cache_traced_bytes: int

    @property
    def verifications_per_s(self) -> float:
        """Tokens presented per second of the whole run (minting waits included)."""
        return self.verified / self.elapsed_s if self.elapsed_s else 0.0

    @property
    def verify_only_per_s(self) -> float:
        """Tokens verified per second spent inside ``verify``."""
        return self.verified / self.verify_s if self.verify_s else 0.0

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready figures."""
        return {
            **asdict(self),
            "verifications_per_s": self.verifications_per_s,
            "verify_only_per_s": self.verify_only_per_s,
            "growth_after_bound": self.rss_after - self.rss_at_bound,
            "cache_bytes_per_entry": self.cache_traced_bytes / max(1, self.cache_size),
        }

    def report(self) -> None:
        """Print the result."""
        header(
            f"memory: {self.tokens:,} distinct ES256 tokens, verified-token cache bound"
            f" {self.cache_size:,}"
        )
        bound = "= the bound" if self.cache_entries == self.cache_size else "≠ THE BOUND"
        print(f"  tokens presented            {self.verified:,} ({self.errors} errors)")
        print(f"  key set fetches             {self.key_fetches}")
        print(
            f"  verifications/s             {self.verifications_per_s:8.0f} overall"
            f" ({self.elapsed_s:.1f} s; {self.workers} minting process(es));"
            f" {self.verify_only_per_s:.0f} inside verify"
        )
        print(f"  cache entries at the end    {self.cache_entries:,} {bound}")

        def mib(value: int) -> str:
            return f"{value / _MIB:8.1f} MiB"

        print(f"  RSS before the first token  {mib(self.rss_before)}")
        print(f"  RSS when the cache was full {mib(self.rss_at_bound)}")
        print(f"  RSS peak (sampled per batch){mib(self.rss_peak_sampled)}")
        print(f"  RSS after the run           {mib(self.rss_after)}")
        print(f"  RSS high-water mark (VmHWM) {mib(self.hwm_after)}")
        growth = self.rss_after - self.rss_at_bound
        print(
            f"  growth after the cache was full {growth / _MIB:+.1f} MiB over"
            f" {max(0, self.verified - self.cache_size):,} more tokens;"
            f" ratio RSS after/at-bound {self.rss_after / self.rss_at_bound:.3f}"
        )
        per_entry = self.cache_traced_bytes / max(1, self.cache_size)
        print(
            f"  a full cache (tracemalloc)  {mib(self.cache_traced_bytes)}"
            f" ({per_entry:.0f} B/entry)"
        )


async def _cache_traced_bytes(keys: RemoteKeySet, policy: VerifierPolicy, tokens: list[str]) -> int:
    """The Python heap a fresh verifier holds after verifying ``tokens`` (its cache), traced."""
    gc.collect()
    tracemalloc.start()
    try:
        verifier = TokenVerifier(keys, algorithms=LOGTO_ALGORITHMS, policy=policy)
        before = tracemalloc.get_traced_memory()[0]
        for token in tokens:
            await verifier.verify(token, audience=AUDIENCE)
        gc.collect()
        return tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()


async def _present(
    keys: RemoteKeySet, pool: ProcessPoolExecutor, tokens: int, policy: VerifierPolicy, workers: int
) -> dict[str, Any]:
    """Stream ``tokens`` minted tokens through one verifier, sampling RSS after every batch."""
    verifier = TokenVerifier(keys, algorithms=LOGTO_ALGORITHMS, policy=policy)
    verify = verifier.verify
    pool.submit(mint_batch, 0, 1).result()  # the workers' start-up is not part of the run
    gc.collect()
    rss_before = rss_bytes()
    rss_at_bound = 0
    peak = rss_before
    verified = errors = 0
    verify_ns = 0
    start = time.perf_counter_ns()
    for batch in batches(pool, tokens, in_flight=2 * workers + 1):
        began = time.perf_counter_ns()
        for token in batch:
            try:
                await verify(token, audience=AUDIENCE)
            except InvalidToken:
                errors += 1
        verify_ns += time.perf_counter_ns() - began
        verified += len(batch)
        now_rss = rss_bytes()
        peak = max(peak, now_rss)
        if not rss_at_bound and verifier.cache_len >= policy.cache_size:
            rss_at_bound = now_rss
    elapsed_ns = time.perf_counter_ns() - start
    gc.collect()
    rss_after = rss_bytes()  # the verifier, its cache full, is still alive here
    hwm_after = hwm_bytes()
    return {
        "verified": verified,
        "errors": errors,
        "cache_entries": verifier.cache_len,
        "elapsed_s": elapsed_ns / 1e9,
        "verify_s": verify_ns / 1e9,
        "rss_before": rss_before,
        "rss_at_bound": rss_at_bound or peak,
        "rss_peak_sampled": peak,
        "rss_after": rss_after,
        "hwm_after": hwm_after,
        "key_fetches": keys.stats.attempts,
    }


def run_memory(*, tokens: int, cache_size: int | None, workers: int | None = None) -> MemoryResult:
    """Present ``tokens`` distinct valid tokens to one verifier bounded at ``cache_size``."""
    policy = replace(
        INLINE_SIGNATURES,
        cache_size=VerifierPolicy().cache_size if cache_size is None else cache_size,
    )
    workers = workers or max(1, (os.cpu_count() or 1) - 1)
    key = SigningKey.es256("bench-es256")
    with (
        loopback_issuer(key) as issuer,
        minting_pool(key, issuer=issuer.issuer, now=int(time.time()), workers=workers) as pool,
    ):

        async def present() -> dict[str, Any]:
            async with warmed_key_set(issuer) as keys:
                return await _present(keys, pool, tokens, policy, workers)

        figures = asyncio.run(present())
        # Afterwards, so that tracing costs the run nothing: what a full cache holds.
        sample = [t for b in batches(pool, policy.cache_size, 2 * workers + 1) for t in b]

        async def trace() -> int:
            async with warmed_key_set(issuer) as keys:
                return await _cache_traced_bytes(keys, policy, sample)

        traced = asyncio.run(trace()) if sample else 0
    return MemoryResult(
        tokens=tokens,
        cache_size=policy.cache_size,
        workers=workers,
        cache_traced_bytes=traced,
        **figures,
    )
