"""Minting many valid Logto access tokens in worker processes (spawned), in numbered batches.

Signing costs ~20 µs (ES256) to ~130 µs (ES384) per token in one process; the memory and load
benchmarks need tens of thousands to a million distinct tokens, so they mint them in a
:class:`~concurrent.futures.ProcessPoolExecutor` whose workers hold the issuer's private key
(handed over as PEM: key objects do not pickle). Token ``n`` of a run carries ``sub =
<prefix><n>`` and ``jti = <n as 32 hex digits>``, so every token is distinct, and is valid for
an hour from the ``now`` the pool was started with.
"""

from __future__ import annotations

import base64
import json
import multiprocessing
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from tests.support import SigningKey

from .common import AUDIENCE

BATCH = 1000
LIFETIME_SECONDS = 3600
# JWS ECDSA algorithms: the hash and the byte length of each of r and s (RFC 7518 §3.4).
_EC_ALGORITHMS: dict[str, tuple[type[hashes.HashAlgorithm], int]] = {
    "ES256": (hashes.SHA256, 32),
    "ES384": (hashes.SHA384, 48),
}


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@dataclass(frozen=True, slots=True)
class _MinterSpec:
    """What a worker needs (pickled to it once): the key as PEM and the fixed claims."""

    private_pem: bytes
    alg: str
    kid: str
    issuer: str
    now: int
    subject_prefix: str


_minter: dict[str, Any] = {}


def _init_minter(spec: _MinterSpec) -> None:
    """Worker initializer: the issuer's EC private key and the fixed parts of every token."""
    key = serialization.load_pem_private_key(spec.private_pem, password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        msg = "the benchmarks' minting workers sign with EC keys"
        raise TypeError(msg)
    hash_type, coordinate_bytes = _EC_ALGORITHMS[spec.alg]
    encoded_header = json.dumps(
        {"alg": spec.alg, "typ": "at+jwt", "kid": spec.kid}, separators=(",", ":")
    )
    _minter.update(
        key=key,
        algorithm=ec.ECDSA(hash_type()),
        coordinate_bytes=coordinate_bytes,
        header=_b64url(encoded_header.encode()),
        issuer=spec.issuer,
        now=spec.now,
        subject_prefix=spec.subject_prefix,
    )


def mint_batch(start: int, count: int) -> list[str]:
    """Tokens ``start .. start+count-1``: valid Logto shopping access tokens, each distinct by
    its ``sub`` and ``jti``, valid for an hour from the pool's ``now``."""
    key: ec.EllipticCurvePrivateKey = _minter["key"]
    algorithm: ec.ECDSA = _minter["algorithm"]
    size: int = _minter["coordinate_bytes"]
    encoded_header: str = _minter["header"]
    issuer: str = _minter["issuer"]
    now: int = _minter["now"]
    prefix: str = _minter["subject_prefix"]
    tokens: list[str] = []
    for index in range(start, start + count):
        payload = {
            "iss": issuer,
            "sub": f"{prefix}{index}",
            "aud": AUDIENCE,
            "client_id": "client-bench",
            "scope": "shopping:read shopping:write",
            "iat": now,
            "exp": now + LIFETIME_SECONDS,
            "jti": f"{index:032x}",
        }
        encoded_payload = _b64url(json.dumps(payload, separators=(",", ":")).encode())
        signing_input = f"{encoded_header}.{encoded_payload}"
        r, s = decode_dss_signature(key.sign(signing_input.encode(), algorithm))
        signature = r.to_bytes(size, "big") + s.to_bytes(size, "big")
        tokens.append(f"{signing_input}.{_b64url(signature)}")
    return tokens


def minting_pool(
    key: SigningKey, *, issuer: str, now: int, workers: int, subject_prefix: str = "user-"
) -> ProcessPoolExecutor:
    """``workers`` spawned processes ready to :func:`mint_batch` with ``key`` (ES256/ES384)."""
    if key.alg not in _EC_ALGORITHMS:
        msg = f"cannot mint {key.alg} tokens in worker processes"
        raise ValueError(msg)
    private_pem = key.private_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return ProcessPoolExecutor(
        max_workers=workers,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=_init_minter,
        initargs=(_MinterSpec(private_pem, key.alg, key.kid, issuer, now, subject_prefix),),
    )


def batches(
    pool: ProcessPoolExecutor, total: int, in_flight: int, *, start: int = 0
) -> Iterator[list[str]]:
    """Tokens ``start .. start+total-1`` in batches, in order, with at most ``in_flight``
    batches minted ahead of the consumer."""
    pending: deque[Future[list[str]]] = deque()
    next_start, end = start, start + total
    while next_start < end or pending:
        while next_start < end and len(pending) < in_flight:
            count = min(BATCH, end - next_start)
            pending.append(pool.submit(mint_batch, next_start, count))
            next_start += count
        yield pending.popleft().result()
