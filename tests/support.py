"""Test kit: real signing keys, a token factory, a fake clock and a respx-served issuer.

Tokens are signed with real keys (ES384 by default, RS256 and others on request) through
PyJWT's algorithm objects, but the JWS is assembled here so tests can put anything in the
header or payload.
"""

from __future__ import annotations

import base64
import json
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cache
from typing import Any, NoReturn

import httpx
import pytest
import respx
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm, get_default_algorithms

ENDPOINT = "https://tenant.logto.test"
ISSUER = f"{ENDPOINT}/oidc"
DISCOVERY_URL = f"{ISSUER}/.well-known/openid-configuration"
JWKS_URL = f"{ISSUER}/jwks"
SHOPPING = "https://shopping.your-app.com/api"
STORE = "https://store.your-app.com/api"
NOW = 1_800_000_000.0


def b64url(data: bytes) -> str:
    """Unpadded base64url (RFC 7515 §2)."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64json(value: object) -> str:
    """base64url of compact JSON."""
    return b64url(json.dumps(value, separators=(",", ":")).encode())


@dataclass
class FakeClock:
    """A clock tests move by hand."""

    now: float = NOW

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@cache
def _ec_key(curve_name: str, index: int) -> ec.EllipticCurvePrivateKey:
    del index  # cache key only: distinct keys of one curve
    curves: dict[str, ec.EllipticCurve] = {
        "P-256": ec.SECP256R1(),
        "P-384": ec.SECP384R1(),
        "P-521": ec.SECP521R1(),
    }
    return ec.generate_private_key(curves[curve_name])


@cache
def _rsa_key(bits: int, index: int) -> rsa.RSAPrivateKey:
    del index
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)


@dataclass(frozen=True)
class SigningKey:
    """A private key, its kid and algorithm, and its public JWK."""

    kid: str
    alg: str
    private_key: Any

    @classmethod
    def es384(cls, kid: str = "es384-1", index: int = 0) -> SigningKey:
        return cls(kid, "ES384", _ec_key("P-384", index))

    @classmethod
    def es256(cls, kid: str = "es256-1", index: int = 0) -> SigningKey:
        return cls(kid, "ES256", _ec_key("P-256", index))

    @classmethod
    def rs256(cls, kid: str = "rs256-1", bits: int = 2048, index: int = 0) -> SigningKey:
        return cls(kid, "RS256", _rsa_key(bits, index))

    def public_jwk(self, **extra: Any) -> dict[str, Any]:
        public = self.private_key.public_key()
        if isinstance(public, ec.EllipticCurvePublicKey):
            jwk = ECAlgorithm.to_jwk(public, as_dict=True)
            jwk.update(use="sig", alg=self.alg)  # as Logto publishes EC keys
        else:
            jwk = RSAAlgorithm.to_jwk(public, as_dict=True)
            jwk.update(use="sig")  # Logto's RSA keys carry no alg
        jwk["kid"] = self.kid
        jwk.update(extra)
        return {k: v for k, v in jwk.items() if v is not None}

    def sign(self, signing_input: bytes, alg: str | None = None) -> bytes:
        return get_default_algorithms()[alg or self.alg].sign(signing_input, self.private_key)


def jwks(*keys: SigningKey) -> dict[str, Any]:
    """A JWKS document publishing ``keys``."""
    return {"keys": [key.public_jwk() for key in keys]}


def claims(**overrides: Any) -> dict[str, Any]:
    """Claims of a typical Logto shopping token at ``NOW``; ``None`` removes a claim."""
    base: dict[str, Any] = {
        "iss": ISSUER,
        "sub": "user-alice",
        "aud": SHOPPING,
        "client_id": "client-app",
        "scope": "shopping:read shopping:write",
        "iat": int(NOW),
        "exp": int(NOW) + 3600,
        "jti": uuid.uuid4().hex,
    }
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def header(key: SigningKey, **overrides: Any) -> dict[str, Any]:
    """A Logto access-token header for ``key``; ``None`` removes a field."""
    base: dict[str, Any] = {"alg": key.alg, "typ": "at+jwt", "kid": key.kid}
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def make_token(
    key: SigningKey | None = None,
    *,
    header_overrides: dict[str, Any] | None = None,
    sign_alg: str | None = None,
    **claim_overrides: Any,
) -> str:
    """Sign a compact JWS with ``key`` (ES384 by default)."""
    key = key or SigningKey.es384()
    signing_input = (
        f"{b64json(header(key, **(header_overrides or {})))}.{b64json(claims(**claim_overrides))}"
    )
    signature = key.sign(signing_input.encode(), sign_alg)
    return f"{signing_input}.{b64url(signature)}"


def raw_token(header_value: object, payload: object, signature: bytes = b"sig") -> str:
    """An unsigned token with any header and payload (for malformed-input tests)."""
    return f"{b64json(header_value)}.{b64json(payload)}.{b64url(signature)}"


def discovery(issuer: str = ISSUER, jwks_uri: str = JWKS_URL) -> dict[str, Any]:
    """The subset of Logto's discovery document the verifier reads."""
    return {
        "issuer": issuer,
        "jwks_uri": jwks_uri,
        "authorization_endpoint": f"{issuer}/auth",
        "token_endpoint": f"{issuer}/token",
    }


@dataclass
class FakeIssuer:
    """A Logto issuer served through respx: discovery and a JWKS the test can change."""

    router: respx.MockRouter
    keys: list[SigningKey] = field(default_factory=lambda: [SigningKey.es384()])
    jwks_response: httpx.Response | None = None
    etag: str | None = None
    discovery_route: respx.Route = field(init=False)
    jwks_route: respx.Route = field(init=False)

    def __post_init__(self) -> None:
        self.discovery_route = self.router.get(DISCOVERY_URL).mock(
            return_value=httpx.Response(200, json=discovery())
        )
        self.jwks_route = self.router.get(JWKS_URL).mock(side_effect=self._serve_jwks)

    def _serve_jwks(self, request: httpx.Request) -> httpx.Response:
        if self.jwks_response is not None:
            return self.jwks_response
        if self.etag and request.headers.get("if-none-match") == self.etag:
            return httpx.Response(304, headers={"ETag": self.etag})
        headers = {"ETag": self.etag} if self.etag else {}
        return httpx.Response(200, json=jwks(*self.keys), headers=headers)

    @property
    def jwks_fetches(self) -> int:
        return self.jwks_route.call_count

    def sign(self, **claim_overrides: Any) -> str:
        """A valid token signed by the current (first) key."""
        return make_token(self.keys[0], **claim_overrides)


def serve_issuer(router: respx.MockRouter, *keys: SigningKey) -> Iterator[FakeIssuer]:
    """Fixture body: a respx issuer publishing ``keys`` (ES384 by default)."""
    yield FakeIssuer(router, list(keys) or [SigningKey.es384()])


def missing_on_this_machine(reason: str, *, tests: str) -> NoReturn:
    """Skip a test that needs a piece this machine lacks; fail it instead under ``CI``, which
    must run ``tests`` (``.ci/run`` installs every piece)."""
    if os.environ.get("CI"):
        pytest.fail(f"{reason}: CI must run {tests}", pytrace=False)
    pytest.skip(reason)
