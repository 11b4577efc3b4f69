"""Claim rules of a Logto access token (RFC 9068 profile), framework-free and clock-free.

``parse_claims`` turns a decoded payload into an :class:`AccessToken` once (types, issuer);
``check_lifetime`` runs on every use, including cache hits, with the caller's ``now``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from .errors import InvalidToken

ORGANIZATION_AUDIENCE_PREFIX = "urn:logto:organization:"


@dataclass(frozen=True, slots=True)
class AccessToken:
    """A verified access token: the claims a handler may rely on."""

    subject: str
    client_id: str
    audiences: tuple[str, ...]
    scopes: frozenset[str]
    expires_at: float
    issued_at: float
    not_before: float | None = None
    organization_id: str | None = None
    token_id: str | None = None
    claims: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    def has_audience(self, audience: str) -> bool:
        """Whether ``audience`` is one of the token's audiences."""
        return audience in self.audiences


def parse_claims(payload: object, *, issuer: str) -> AccessToken:
    """Check claim presence, types and issuer; raise :class:`InvalidToken` otherwise."""
    if not isinstance(payload, dict):
        raise InvalidToken(
            "The access token payload is not a JSON object.", reason="malformed_payload"
        )
    if payload.get("iss") != issuer:
        raise InvalidToken(
            "The access token was not issued by the expected issuer.", reason="wrong_issuer"
        )
    return AccessToken(
        subject=_required_string(payload, "sub"),
        client_id=_required_string(payload, "client_id"),
        audiences=_audiences(payload.get("aud")),
        scopes=_scopes(payload.get("scope")),
        expires_at=_required_date(payload, "exp"),
        issued_at=_required_date(payload, "iat"),
        not_before=_optional_date(payload, "nbf"),
        organization_id=_optional_string(payload, "organization_id"),
        token_id=_optional_string(payload, "jti"),
        claims=MappingProxyType(payload),  # shared by cache hits: read-only
    )


def check_lifetime(token: AccessToken, *, now: float, leeway: float) -> None:
    """Reject a token that is expired, not yet valid, or issued in the future (RFC 7519 §4.1)."""
    if now >= token.expires_at + leeway:
        raise InvalidToken("The access token has expired.", reason="expired")
    if token.not_before is not None and now + leeway < token.not_before:
        raise InvalidToken("The access token is not valid yet.", reason="not_yet_valid")
    if now + leeway < token.issued_at:
        raise InvalidToken("The access token was issued in the future.", reason="issued_in_future")


def _required_string(payload: Mapping[str, Any], name: str) -> str:
    value = payload.get(name)
    if not isinstance(value, str) or not value:
        raise InvalidToken(f"The access token has no valid '{name}' claim.", reason=f"bad_{name}")
    return value


def _optional_string(payload: Mapping[str, Any], name: str) -> str | None:
    if name not in payload:
        return None
    return _required_string(payload, name)


def _audiences(value: object) -> tuple[str, ...]:
    # RFC 7519 §4.1.3: a string or an array of strings.
    if isinstance(value, str) and value:
        return (value,)
    if isinstance(value, list) and value and all(isinstance(item, str) and item for item in value):
        return tuple(value)
    raise InvalidToken("The access token has no valid 'aud' claim.", reason="bad_aud")


def _scopes(value: object) -> frozenset[str]:
    # RFC 9068 §2.2.3 / RFC 8693 §4.2: space-separated string. Absent means no scopes.
    if value is None:
        return frozenset()
    if not isinstance(value, str):
        raise InvalidToken("The access token has an invalid 'scope' claim.", reason="bad_scope")
    return frozenset(value.split())


def _optional_date(payload: Mapping[str, Any], name: str) -> float | None:
    if name not in payload:
        return None
    return _required_date(payload, name)


def _required_date(payload: Mapping[str, Any], name: str) -> float:
    value = payload.get(name)
    if value is None:
        raise InvalidToken(f"The access token has no '{name}' claim.", reason=f"no_{name}")
    # bool is an int subclass; a NumericDate is a finite JSON number (RFC 7519 §2).
    if isinstance(value, int | float) and not isinstance(value, bool):
        try:
            number = float(value)
        except OverflowError:
            number = math.inf
        if math.isfinite(number):
            return number
    raise InvalidToken(f"The access token has an invalid '{name}' claim.", reason=f"bad_{name}")
