"""Ours vs the approach Logto's docs show: PyJWT's ``PyJWKClient`` + ``jwt.decode``.

Theirs, per token: ``PyJWKClient(jwks_url).get_signing_key_from_jwt(token)`` then
``jwt.decode(token, key, algorithms=["ES384"], audience=..., issuer=...)`` (the docs hard-code
``RS256``, which would refuse every default Logto token, so the benchmark allows ES384). The
``PyJWKClient`` fetches the loopback issuer's JWKS with ``urllib`` and keeps it (its default
JWK-set cache), exactly as in the docs; ours uses a warmed ``RemoteKeySet``. Neither side's key
fetch is timed.

* cold: N distinct tokens, each verified once (our verifier is fresh each round, so its
  verified-token cache never answers);
* repeated: one token verified N times (the common case of a client reusing its token until
  it expires; ours answers from its cache after the first verification).

Rounds alternate the order of the two sides; figures are medians of the per-round ratios.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from typing import Any

import jwt
from litestar_logto import RemoteKeySet

from .common import AUDIENCE, LoopbackIssuer, fresh_verifier, header, median, spread, warmed_key_set


@dataclass(frozen=True, slots=True)
class PyJwtResult:
    """Per-round figures (µs per verification) of both scenarios."""

    tokens: int
    rounds: int
    ours_cold_us: list[float]
    theirs_cold_us: list[float]
    ours_repeated_us: list[float]
    theirs_repeated_us: list[float]

    @property
    def cold_ratio(self) -> float:
        """Median per-round ``ours / theirs`` time on distinct tokens."""
        return median(_ratios(self.ours_cold_us, self.theirs_cold_us))

    @property
    def repeated_ratio(self) -> float:
        """Median per-round ``ours / theirs`` time on one repeated token."""
        return median(_ratios(self.ours_repeated_us, self.theirs_repeated_us))

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready figures, with the medians."""
        return {
            **asdict(self),
            "cold_ratio": self.cold_ratio,
            "repeated_ratio": self.repeated_ratio,
        }

    def report(self) -> None:
        """Print the result."""
        header(f"ours vs PyJWKClient + jwt.decode ({self.tokens} verifications per pass)")
        print(f"  rounds                       {self.rounds} (alternating order)")
        for label, ours, theirs in (
            ("cold (distinct tokens)", self.ours_cold_us, self.theirs_cold_us),
            ("repeated (one token)", self.ours_repeated_us, self.theirs_repeated_us),
        ):
            ratios = _ratios(ours, theirs)
            print(f"  {label}")
            print(f"    PyJWT                      {median(theirs):9.2f} µs/verification")
            print(f"    ours                       {median(ours):9.2f} µs/verification")
            print(
                f"    ratio ours/theirs (time)   {median(ratios):9.3f}  (rounds {spread(ratios)};"
                f" {1 / median(ratios):.1f}x their throughput)"
            )


def _ratios(ours: list[float], theirs: list[float]) -> list[float]:
    return [o / t for o, t in zip(ours, theirs, strict=True)]


def _decode(client: jwt.PyJWKClient, issuer: str, token: str) -> dict[str, Any]:
    """The docs' snippet, with the algorithm Logto actually signs with."""
    signing_key = client.get_signing_key_from_jwt(token)
    return jwt.decode(
        token, signing_key.key, algorithms=["ES384"], audience=AUDIENCE, issuer=issuer
    )


async def _time_theirs(client: jwt.PyJWKClient, issuer: str, tokens: list[str]) -> int:
    # async only to share the calling convention of _time_ours; nothing inside awaits.
    start = time.perf_counter_ns()
    for token in tokens:
        _decode(client, issuer, token)
    return time.perf_counter_ns() - start


async def _time_ours(keys: RemoteKeySet, tokens: list[str]) -> int:
    verify = fresh_verifier(keys).verify
    start = time.perf_counter_ns()
    for token in tokens:
        await verify(token, audience=AUDIENCE)
    return time.perf_counter_ns() - start


async def _check_agreement(
    keys: RemoteKeySet, client: jwt.PyJWKClient, issuer: str, token: str
) -> None:
    """Both sides must accept the same token and read the same subject before any timing."""
    ours = await fresh_verifier(keys).verify(token, audience=AUDIENCE)
    theirs = _decode(client, issuer, token)
    if ours.subject != theirs["sub"]:
        msg = "the two verifiers disagree on the benchmark token"
        raise RuntimeError(msg)


async def run_pyjwt(issuer: LoopbackIssuer, *, tokens: int, rounds: int) -> PyJwtResult:
    """Measure ``rounds`` interleaved rounds of both scenarios on ``tokens`` verifications."""
    distinct = issuer.tokens(tokens)
    repeated = [issuer.token()] * tokens
    client = jwt.PyJWKClient(issuer.jwks_url)  # as in Logto's docs: default caching
    async with warmed_key_set(issuer) as keys:
        await _check_agreement(keys, client, issuer.issuer, distinct[0])  # also warms both
        passes: dict[str, Callable[[], Awaitable[int]]] = {
            "theirs_cold": lambda: _time_theirs(client, issuer.issuer, distinct),
            "ours_cold": lambda: _time_ours(keys, distinct),
            "theirs_repeated": lambda: _time_theirs(client, issuer.issuer, repeated),
            "ours_repeated": lambda: _time_ours(keys, repeated),
        }
        order = list(passes)
        swapped = [order[1], order[0], order[3], order[2]]
        series: dict[str, list[float]] = {name: [] for name in passes}
        for index in range(rounds):
            for name in order if index % 2 == 0 else swapped:
                series[name].append(await passes[name]() / tokens / 1000)
    return PyJwtResult(
        tokens,
        rounds,
        ours_cold_us=series["ours_cold"],
        theirs_cold_us=series["theirs_cold"],
        ours_repeated_us=series["ours_repeated"],
        theirs_repeated_us=series["theirs_repeated"],
    )
