"""Fixtures: one dev issuer for the module and the real tokens it issues (M2M client
credentials, and bob's user, organization and organization-level API tokens via the SDK)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from logto import LogtoClient

from tests.dev_issuer.conftest import sdk_config, sign_in
from tests.dev_issuer.support import (
    CLIENT_ID,
    CLIENT_SECRET,
    STORE,
    DevIssuer,
    DictStorage,
)
from tests.support import SigningKey, b64json, b64url

M2M = ("dev-m2m", "dev-m2m-secret")
TEST_KEY = SigningKey.es384(kid="explain-test-key", index=7)
"""A key of the dev issuer's shape (EC P-384, ES384) for tokens it cannot issue naturally
(expired, not yet valid, another iss): published next to its real keys in a JWKS file."""


RSA_KEY = SigningKey.rs256(kid="explain-rsa-key")
"""An RSA key in the JWKS file, so an API allowing only RS256 still has a usable key."""


def parts(token: str) -> list[str]:
    return token.split(".")


def decoded(part: str) -> dict[str, Any]:
    import base64  # noqa: PLC0415

    value: dict[str, Any] = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    return value


def with_header(token: str, **changes: Any) -> str:
    """A real token whose header is changed (the signature is kept: header checks come first)."""
    header_part, payload_part, signature_part = parts(token)
    return f"{b64json({**decoded(header_part), **changes})}.{payload_part}.{signature_part}"


def resigned(token: str, **claim_changes: Any) -> str:
    """A real token's claims, changed, signed by :data:`TEST_KEY`."""
    payload = {**decoded(parts(token)[1]), **claim_changes}
    header = {"alg": "ES384", "typ": "at+jwt", "kid": TEST_KEY.kid}
    signing_input = f"{b64json(header)}.{b64json(payload)}"
    return f"{signing_input}.{b64url(TEST_KEY.sign(signing_input.encode()))}"


@dataclass
class Tokens:
    """The dev issuer and real tokens it issued."""

    issuer: DevIssuer
    jwks_file: Path
    m2m: str
    opaque: str
    organization: str
    organization_api: str


def _m2m_token(issuer: DevIssuer, **form: str) -> str:
    response = httpx.post(
        f"{issuer.issuer}/token", data={"grant_type": "client_credentials", **form}, auth=M2M
    )
    response.raise_for_status()
    return str(response.json()["access_token"])


async def _bob_tokens(issuer: DevIssuer) -> tuple[str, str]:
    client = LogtoClient(sdk_config(issuer), storage=DictStorage())
    async with httpx.AsyncClient(follow_redirects=False, timeout=10) as browser:
        await sign_in(client, browser, issuer, "bob")
        organization = await client.getOrganizationToken("acme")
        response = await browser.post(
            f"{issuer.issuer}/token",
            data={
                "grant_type": "refresh_token",
                "refresh_token": client.getRefreshToken(),
                "resource": STORE,
                "organization_id": "acme",
            },
            auth=(CLIENT_ID, CLIENT_SECRET),
        )
    response.raise_for_status()
    assert organization is not None
    return organization, str(response.json()["access_token"])


@pytest.fixture(scope="module")
def tokens(dev_issuer: DevIssuer, tmp_path_factory: pytest.TempPathFactory) -> Tokens:
    import asyncio  # noqa: PLC0415

    document = httpx.get(f"{dev_issuer.issuer}/jwks").json()
    document["keys"] += [TEST_KEY.public_jwk(), RSA_KEY.public_jwk()]
    jwks_file = tmp_path_factory.mktemp("explain") / "jwks.json"
    jwks_file.write_text(json.dumps(document))
    organization, organization_api = asyncio.run(_bob_tokens(dev_issuer))
    return Tokens(
        issuer=dev_issuer,
        jwks_file=jwks_file,
        m2m=_m2m_token(dev_issuer, resource=STORE, scope="store:read"),
        opaque=_m2m_token(dev_issuer),
        organization=organization,
        organization_api=organization_api,
    )
