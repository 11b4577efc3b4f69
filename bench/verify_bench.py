"""Core: ``TokenVerifier.verify`` on N distinct tokens vs the bare ES384 signature checks.

The floor is what no verifier can avoid: ``public_key.verify(der_signature, signing_input,
ECDSA(SHA384()))`` on the same tokens, with the JWS-to-DER signature conversion and the
signing-input bytes computed before the clock starts. Every token is distinct and every round
uses a fresh verifier, so the verified-token cache never answers; the key set is fetched once
beforehand (key fetching is not what this measures). Rounds alternate which side runs first;
the reported figure is the median of the per-round ratios.
"""

from __future__ import annotations

import base64
import time
from dataclasses import asdict, dataclass
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from litestar_logto import RemoteKeySet

from .common import AUDIENCE, LoopbackIssuer, fresh_verifier, header, median, spread, warmed_key_set

TARGET_RATIO = 1.15
_ES384_COORDINATE_BYTES = 48


@dataclass(frozen=True, slots=True)
class CoreResult:
    """Per-round figures of the core benchmark (µs per token)."""

    tokens: int
    rounds: int
    ours_us: list[float]
    floor_us: list[float]
    ratios: list[float]

    @property
    def ratio(self) -> float:
        """Median of the per-round ``ours / floor`` time ratios."""
        return median(self.ratios)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready figures, with the medians."""
        return {
            **asdict(self),
            "ratio": self.ratio,
            "ours_us_median": median(self.ours_us),
            "floor_us_median": median(self.floor_us),
            "target_ratio": TARGET_RATIO,
        }

    def report(self) -> None:
        """Print the result."""
        header(f"core: TokenVerifier.verify vs bare ES384 verify ({self.tokens} distinct tokens)")
        print(f"  rounds                      {self.rounds} (alternating order)")
        print(f"  bare ES384 verify (floor)   {median(self.floor_us):8.1f} µs/token (median)")
        print(f"  TokenVerifier.verify        {median(self.ours_us):8.1f} µs/token (median)")
        overhead = median(self.ours_us) - median(self.floor_us)
        print(f"  overhead over the floor     {overhead:8.1f} µs/token")
        verdict = "meets" if self.ratio <= TARGET_RATIO else "MISSES"
        print(
            f"  ratio ours/floor            {self.ratio:8.3f}  (rounds {spread(self.ratios)};"
            f" target ≤ {TARGET_RATIO}: {verdict})"
        )


async def _floor_inputs(
    issuer: LoopbackIssuer, keys: RemoteKeySet, tokens: list[str]
) -> tuple[ec.EllipticCurvePublicKey, list[tuple[bytes, bytes]]]:
    """The public key (as fetched from the JWKS) and each token's (DER signature, signing
    input), computed before any timing."""
    public_key = (await keys.get_key(issuer.key.kid)).public_key
    if not isinstance(public_key, ec.EllipticCurvePublicKey):
        msg = "the core benchmark expects an ES384 issuer key"
        raise TypeError(msg)
    inputs: list[tuple[bytes, bytes]] = []
    for token in tokens:
        signing_input, _, signature_part = token.rpartition(".")
        raw = base64.urlsafe_b64decode(signature_part + "=" * (-len(signature_part) % 4))
        r = int.from_bytes(raw[:_ES384_COORDINATE_BYTES], "big")
        s = int.from_bytes(raw[_ES384_COORDINATE_BYTES:], "big")
        inputs.append((encode_dss_signature(r, s), signing_input.encode()))
    return public_key, inputs


def _time_floor(public_key: ec.EllipticCurvePublicKey, inputs: list[tuple[bytes, bytes]]) -> int:
    algorithm = ec.ECDSA(hashes.SHA384())
    verify = public_key.verify
    start = time.perf_counter_ns()
    for der_signature, signing_input in inputs:
        verify(der_signature, signing_input, algorithm)
    return time.perf_counter_ns() - start


async def _time_ours(keys: RemoteKeySet, tokens: list[str]) -> int:
    verify = fresh_verifier(keys).verify  # empty cache: every token pays the full price
    start = time.perf_counter_ns()
    for token in tokens:
        await verify(token, audience=AUDIENCE)
    return time.perf_counter_ns() - start


async def run_core(issuer: LoopbackIssuer, *, tokens: int, rounds: int) -> CoreResult:
    """Measure ``rounds`` interleaved rounds over ``tokens`` distinct tokens."""
    batch = issuer.tokens(tokens)
    async with warmed_key_set(issuer) as keys:
        public_key, inputs = await _floor_inputs(issuer, keys, batch)
        await _time_ours(keys, batch[:10])  # warm-up: imports, caches, branch predictors
        _time_floor(public_key, inputs[:10])
        ours: list[float] = []
        floor: list[float] = []
        for index in range(rounds):
            if index % 2 == 0:
                floor_ns = _time_floor(public_key, inputs)
                ours_ns = await _time_ours(keys, batch)
            else:
                ours_ns = await _time_ours(keys, batch)
                floor_ns = _time_floor(public_key, inputs)
            ours.append(ours_ns / tokens / 1000)
            floor.append(floor_ns / tokens / 1000)
    ratios = [o / f for o, f in zip(ours, floor, strict=True)]
    return CoreResult(tokens, rounds, ours, floor, ratios)
