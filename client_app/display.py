"""Claims and tokens made readable: rows for definition lists, times in words, safe pictures."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final
from urllib.parse import urlsplit

import jwt

from .logto_client import unverified_claims

LABELS: Final = {
    "sub": "User ID (sub)",
    "iss": "Issuer (iss)",
    "aud": "Audience (aud)",
    "exp": "Expires (exp)",
    "iat": "Issued (iat)",
    "auth_time": "Signed in (auth_time)",
    "at_hash": "Access-token hash (at_hash)",
    "name": "Name",
    "username": "Username",
    "picture": "Picture",
    "email": "Email",
    "email_verified": "Email verified",
    "phone_number": "Phone number",
    "phone_number_verified": "Phone verified",
    "custom_data": "Custom data",
    "identities": "Linked identities",
    "sso_identities": "SSO identities",
    "roles": "Roles",
    "organizations": "Organizations",
    "organization_roles": "Organization roles",
    "organization_data": "Organization data",
    "created_at": "Created",
    "updated_at": "Updated",
    "scope": "Scopes (scope)",
    "client_id": "Client ID (client_id)",
    "organization_id": "Organization (organization_id)",
    "jti": "Token ID (jti)",
}
SECONDS: Final = frozenset({"exp", "iat", "auth_time", "nbf"})
MILLISECONDS: Final = frozenset({"created_at", "updated_at"})  # Logto's profile timestamps
EMPTY: Final = "(requested, no value)"


@dataclass(frozen=True, slots=True)
class Row:
    """One entry of a definition list: a scalar, a list, or nested rows."""

    label: str
    value: str = ""
    items: tuple[str, ...] = ()
    children: tuple[Row, ...] = ()


def format_time(timestamp: float) -> str:
    """``2026-11-25 16:00 UTC``."""
    return datetime.fromtimestamp(timestamp, tz=UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def relative(timestamp: float, now: float) -> str:
    """``in 59 min`` / ``3 min ago``."""
    delta = timestamp - now
    minutes = round(abs(delta) / 60)
    amount = f"{minutes} min" if minutes < 120 else f"{round(abs(delta) / 3600)} h"  # noqa: PLR2004
    return f"in {amount}" if delta >= 0 else f"{amount} ago"


def claim_rows(claims: Mapping[str, Any], *, now: float, keep_empty: bool = False) -> list[Row]:
    """Rows for every claim with a value (and, with ``keep_empty``, those set to null),
    known claims labelled."""
    return [
        _row(name, value, now) if value is not None else Row(LABELS.get(name, name), EMPTY)
        for name, value in claims.items()
        if value is not None or keep_empty
    ]


def _row(name: str, value: object, now: float) -> Row:
    label = LABELS.get(name, name)
    if name in SECONDS and isinstance(value, int | float):
        return Row(label, f"{format_time(value)} ({relative(value, now)})")
    if name in MILLISECONDS and isinstance(value, int | float):
        return Row(label, format_time(value / 1000))
    if isinstance(value, bool):
        return Row(label, "yes" if value else "no")
    if isinstance(value, list | tuple):
        return Row(label, "none" if not value else "", items=tuple(_scalar(v) for v in value))
    if isinstance(value, Mapping):
        children = tuple(_row(str(k), v, now) for k, v in value.items() if v is not None)
        return Row(label, "empty" if not children else "", children=children)
    return Row(label, _scalar(value))


def _scalar(value: object) -> str:
    if isinstance(value, Mapping):
        return ", ".join(f"{k}: {_scalar(v)}" for k, v in value.items())
    return str(value)


def picture_url(value: object) -> str | None:
    """An https picture URL, or ``None`` (anything else is never put in an ``<img>``)."""
    if not isinstance(value, str):
        return None
    parts = urlsplit(value)
    return value if parts.scheme == "https" and parts.hostname else None


@dataclass(frozen=True, slots=True)
class TokenSummary:
    """What an access token says, for the page beside what it was used for."""

    audience: str
    scopes: tuple[str, ...]
    expires_at: float | None
    issued_at: float | None
    organization_id: str | None = None
    subject: str | None = None
    claims: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def of(cls, token: str) -> TokenSummary | None:
        """The summary of a JWT access token (``None`` for an opaque one). A token without
        ``scope`` carries no permission on its API (logto-tokens.md §2)."""
        try:
            claims = unverified_claims(token)
        except jwt.DecodeError:
            return None
        audience = claims.get("aud")
        scope = claims.get("scope")
        organization_id = claims.get("organization_id")
        return cls(
            audience=audience if isinstance(audience, str) else " ".join(map(str, audience or [])),
            scopes=tuple(scope.split()) if isinstance(scope, str) else (),
            expires_at=_number(claims.get("exp")),
            issued_at=_number(claims.get("iat")),
            organization_id=organization_id if isinstance(organization_id, str) else None,
            subject=str(claims["sub"]) if "sub" in claims else None,
            claims=claims,
        )

    def rows(self, now: float) -> list[Row]:
        """Audience, scopes, organization and lifetime as rows."""
        rows = [
            Row("Audience (aud)", self.audience),
            Row(
                "Scopes (scope)",
                "" if self.scopes else "none: no permission on this API",
                items=self.scopes,
            ),
        ]
        if self.organization_id is not None:
            rows.append(Row("Organization (organization_id)", self.organization_id))
        if self.expires_at is not None:
            rows.append(_row("exp", self.expires_at, now))
        if self.issued_at is not None:
            rows.append(_row("iat", self.issued_at, now))
        return rows


def _number(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None
