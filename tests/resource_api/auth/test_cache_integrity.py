"""The verified-token cache never outlives the key that verified the token, and hands out
read-only claims."""

from __future__ import annotations

import pytest
from litestar_logto import InvalidToken, RemoteKeySet, TokenVerifier

from tests.support import SHOPPING, FakeClock, FakeIssuer, SigningKey, make_token


async def test_kid_republished_with_other_key_material_invalidates_cached_tokens(
    issuer: FakeIssuer, key_set: RemoteKeySet, verifier: TokenVerifier, clock: FakeClock
) -> None:
    """If the issuer reuses a kid for a new key, tokens cached under the old key are re-verified
    (and refused) instead of served from the cache."""
    original = issuer.keys[0]
    token = make_token(original)
    await verifier.verify(token, audience=SHOPPING)
    issuer.keys = [SigningKey(original.kid, original.alg, SigningKey.es384(index=7).private_key)]
    clock.advance(key_set.policy.refresh_interval)
    await key_set.refresh()
    with pytest.raises(InvalidToken) as caught:
        await verifier.verify(token, audience=SHOPPING)
    assert caught.value.reason == "bad_signature"


async def test_cached_claims_are_read_only(issuer: FakeIssuer, verifier: TokenVerifier) -> None:
    """A handler cannot change the claims that later requests with the same token will see."""
    access_token = await verifier.verify(issuer.sign(), audience=SHOPPING)
    with pytest.raises(TypeError):
        access_token.claims["sub"] = "someone-else"  # type: ignore[index]
