"""Turning a JWKS document into verification keys, one key at a time (RFC 7517).

A key that is malformed, meant for encryption, symmetric, too weak or of an algorithm we do
not allow is skipped on its own; the good keys of the same document are kept.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from jwt.algorithms import Algorithm, get_default_algorithms

logger = logging.getLogger("litestar_logto.keys")

# The asymmetric algorithms Logto can sign access tokens with (ES384 by default; an RSA key
# gives RS256; newer Logto derives ES256/ES512 from the curve).
LOGTO_ALGORITHMS: frozenset[str] = frozenset({"ES256", "ES384", "ES512", "RS256"})
"""The signing algorithms accepted by default (``LogtoAuthConfig.algorithms``): those Logto
signs access tokens with (ES384 by default; RS256 when the tenant's key is RSA)."""
SUPPORTED_ALGORITHMS: frozenset[str] = frozenset(
    {"ES256", "ES384", "ES512", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "EdDSA"}
)
MIN_RSA_BITS = 2048
MAX_KEYS = 64

_EC_ALGORITHM_BY_CURVE = {"P-256": "ES256", "P-384": "ES384", "P-521": "ES512"}
_RSA_ALGORITHMS = frozenset({"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"})
_ALGORITHMS: Mapping[str, Algorithm] = {
    name: algorithm
    for name, algorithm in get_default_algorithms().items()
    if name in SUPPORTED_ALGORITHMS
}


@dataclass(frozen=True, slots=True)
class VerificationKey:
    """A public key from the issuer's JWKS and the algorithms it may verify."""

    kid: str
    algorithms: frozenset[str]
    public_key: Any

    def verify(self, algorithm: str, signing_input: bytes, signature: bytes) -> bool:
        """Check ``signature`` over ``signing_input``; the caller has checked ``algorithm``."""
        return _ALGORITHMS[algorithm].verify(signing_input, self.public_key, signature)


def validate_algorithms(algorithms: Collection[str]) -> frozenset[str]:
    """Check a configured allow-list: asymmetric algorithms we can verify, nothing else."""
    chosen = frozenset(algorithms)
    unknown = chosen - SUPPORTED_ALGORITHMS
    if unknown or not chosen:
        msg = (
            f"allowed algorithms must be a non-empty subset of {sorted(SUPPORTED_ALGORITHMS)};"
            f" refused: {sorted(unknown)}"
        )
        raise ValueError(msg)
    return chosen


def parse_key_set(document: object, allowed: frozenset[str]) -> dict[str, VerificationKey]:
    """Return the usable keys of a JWKS document by ``kid``; raise ``ValueError`` if it is not
    a key set at all. An empty result means no key was usable."""
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise ValueError("not_a_key_set")  # noqa: TRY004 - callers map ValueError to a bad JWKS
    keys: dict[str, VerificationKey] = {}
    for index, jwk in enumerate(document["keys"][:MAX_KEYS]):
        try:
            key = parse_key(jwk, allowed)
        except _SkippedKey as skipped:
            logger.warning(
                "jwks key skipped",
                extra={"event": "jwks_key_skipped", "index": index, "reason": skipped.reason},
            )
            continue
        if key.kid in keys:
            logger.warning(
                "jwks key skipped",
                extra={"event": "jwks_key_skipped", "index": index, "reason": "duplicate_kid"},
            )
            continue
        keys[key.kid] = key
    return keys


class _SkippedKey(Exception):
    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


def parse_key(jwk: object, allowed: frozenset[str]) -> VerificationKey:
    """Build one verification key, or raise ``_SkippedKey`` saying why it is unusable."""
    if not isinstance(jwk, dict):
        raise _SkippedKey("not_an_object")
    kid = jwk.get("kid")
    if not isinstance(kid, str) or not kid:
        raise _SkippedKey("no_kid")
    if jwk.get("use", "sig") != "sig":
        raise _SkippedKey("not_for_signatures")
    key_ops = jwk.get("key_ops")
    if key_ops is not None and (not isinstance(key_ops, list) or "verify" not in key_ops):
        raise _SkippedKey("not_for_verification")
    algorithms = _key_algorithms(jwk) & allowed
    if not algorithms:
        raise _SkippedKey("algorithm_not_allowed")
    public_key = _public_key(jwk, next(iter(algorithms)))
    if isinstance(public_key, rsa.RSAPublicKey) and public_key.key_size < MIN_RSA_BITS:
        raise _SkippedKey("rsa_key_too_small")
    return VerificationKey(kid=kid, algorithms=algorithms, public_key=public_key)


def _key_algorithms(jwk: dict[str, Any]) -> frozenset[str]:
    kty = jwk.get("kty")
    if kty == "EC":
        crv = jwk.get("crv")  # any JSON value: a list or object is unhashable
        by_curve = _EC_ALGORITHM_BY_CURVE.get(crv) if isinstance(crv, str) else None
        compatible = frozenset({by_curve}) if by_curve else frozenset()
    elif kty == "RSA":
        compatible = _RSA_ALGORITHMS
    elif kty == "OKP" and jwk.get("crv") == "Ed25519":
        compatible = frozenset({"EdDSA"})
    else:
        raise _SkippedKey("unsupported_key_type")  # includes "oct": never a symmetric key
    declared = jwk.get("alg")
    if declared is None:
        return compatible
    if not isinstance(declared, str) or declared not in compatible:
        raise _SkippedKey("alg_does_not_match_key")
    return frozenset({declared})


def _public_key(jwk: dict[str, Any], algorithm: str) -> Any:  # noqa: ANN401 - a crypto key
    try:
        key = jwt.PyJWK(jwk, algorithm=algorithm).key
    except (jwt.PyJWTError, ValueError, TypeError, KeyError, AttributeError) as exc:
        raise _SkippedKey("malformed_key") from exc
    if isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey):
        return key.public_key()  # a published private key still verifies only as public
    return key
