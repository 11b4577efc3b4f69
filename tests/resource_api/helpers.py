"""Small helpers of the service-layer tests: bearer headers, challenge parsing, token claims."""

from __future__ import annotations

import re
from typing import Any, Final

from tests.support import SHOPPING, STORE

ACME: Final = "urn:logto:organization:acme"
GLOBEX: Final = "urn:logto:organization:globex"
BASE_URL: Final = "http://testserver.local"
METADATA: Final = f"{BASE_URL}/.well-known/oauth-protected-resource"

# Claims of the tokens the tables refer to (signed by the fake issuer at NOW).
SHOPPING_READ: Final[dict[str, Any]] = {"aud": SHOPPING, "scope": "shopping:read"}
SHOPPING_WRITE: Final[dict[str, Any]] = {"aud": SHOPPING, "scope": "shopping:write"}
STORE_READ: Final[dict[str, Any]] = {"aud": STORE, "scope": "store:read"}
STORE_WRITE: Final[dict[str, Any]] = {"aud": STORE, "scope": "store:write"}
ACME_MEMBERS: Final[dict[str, Any]] = {"aud": ACME, "scope": "read:members"}
ACME_STORE_READ: Final[dict[str, Any]] = {
    "aud": STORE,
    "scope": "store:read",
    "organization_id": "acme",
}

_AUTH_PARAM = re.compile(r'([a-z_]+)="([^"]*)"')


def bearer(token: str) -> dict[str, str]:
    """The Authorization header carrying ``token``."""
    return {"Authorization": f"Bearer {token}"}


def challenge(header: str) -> dict[str, str]:
    """The auth-params of a ``Bearer`` challenge (``{}`` for a bare ``Bearer``)."""
    scheme, _, params = header.partition(" ")
    assert scheme == "Bearer", header
    return dict(_AUTH_PARAM.findall(params))
