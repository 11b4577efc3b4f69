"""Hostile-token construction for the adversarial tests: anything in any segment, really signed.

``tests.support.make_token`` builds well-formed Logto tokens; these helpers build the ones an
attacker or a broken issuer would send (non-object payloads, forged keys, HMAC with a public
key as the secret, hand-made signatures).
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.support import SigningKey, b64json, b64url, claims, header

ES384 = SigningKey.es384()
RS256 = SigningKey.rs256()
ES256 = SigningKey.es256()
ATTACKER_ES384 = SigningKey.es384(kid=ES384.kid, index=7)
"""A P-384 key the issuer never published, claiming the issuer's kid."""

_HMAC_HASHES = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}


def segment(value: object) -> str:
    """One base64url segment: ``bytes`` as they are, anything else as compact JSON."""
    if isinstance(value, bytes):
        return b64url(value)
    return b64json(value)


def signed(
    key: SigningKey, header_value: object, payload: object, *, alg: str | None = None
) -> str:
    """A compact JWS over any header and payload, really signed by ``key``."""
    signing_input = f"{segment(header_value)}.{segment(payload)}"
    return f"{signing_input}.{b64url(key.sign(signing_input.encode(), alg))}"


def with_signature(token: str, signature: bytes) -> str:
    """``token`` with its signature segment replaced by ``signature``."""
    header_part, payload_part, _ = token.split(".")
    return f"{header_part}.{payload_part}.{b64url(signature)}"


def with_payload(token: str, payload: object) -> str:
    """``token`` with another payload and the original signature (tampering)."""
    header_part, _, signature_part = token.split(".")
    return f"{header_part}.{segment(payload)}.{signature_part}"


def hmac_token(secret: bytes, alg: str, *, kid: str = ES384.kid, **claim_overrides: Any) -> str:
    """An HMAC-signed token: the algorithm-confusion attack when ``secret`` is a public key."""
    signing_input = (
        f"{b64json(header(ES384, alg=alg, kid=kid))}.{b64json(claims(**claim_overrides))}"
    )
    mac = hmac.new(secret, signing_input.encode(), _HMAC_HASHES[alg]).digest()
    return f"{signing_input}.{b64url(mac)}"


def public_pem(key: SigningKey) -> bytes:
    """The PEM of ``key``'s public half (what an alg-confusion attacker uses as HMAC secret)."""
    return bytes(
        key.private_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )


def der_signature(key: SigningKey, token: str) -> bytes:
    """A valid ECDSA signature over ``token``'s signing input, DER-encoded instead of raw."""
    signing_input = token.rsplit(".", 1)[0].encode()
    private: ec.EllipticCurvePrivateKey = key.private_key
    return private.sign(signing_input, ec.ECDSA(_ec_hash(private)))


def _ec_hash(private: ec.EllipticCurvePrivateKey) -> hashes.HashAlgorithm:
    by_size: dict[int, hashes.HashAlgorithm] = {
        256: hashes.SHA256(),
        384: hashes.SHA384(),
        521: hashes.SHA512(),
    }
    return by_size[private.curve.key_size]


def nested_json(depth: int, *, opener: bytes = b"[", closer: bytes = b"]") -> bytes:
    """``depth`` levels of nesting: the JSON that makes naive decoders recurse."""
    return opener * depth + closer * depth


def noncanonical_base64url(segment_value: str) -> str:
    """The same bytes spelled with non-zero unused bits in the last character."""
    if len(segment_value) % 4 == 0:
        msg = "a segment whose length is a multiple of 4 has no unused bits"
        raise ValueError(msg)
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    last = alphabet[alphabet.index(segment_value[-1]) | 1]
    spelled = segment_value[:-1] + last
    padded = spelled + "=" * (-len(spelled) % 4)
    original = segment_value + "=" * (-len(segment_value) % 4)
    assert base64.urlsafe_b64decode(padded) == base64.urlsafe_b64decode(original)
    assert spelled != segment_value
    return spelled


def self_signed_certificate(key: SigningKey) -> str:
    """A base64 (not url) DER certificate for ``key``: what an ``x5c`` header would carry."""
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "tenant.logto.test")])
    start = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.private_key.public_key())
        .serial_number(1)
        .not_valid_before(start)
        .not_valid_after(start + dt.timedelta(days=3650))
        .sign(key.private_key, hashes.SHA384())
    )
    return base64.b64encode(certificate.public_bytes(serialization.Encoding.DER)).decode()
