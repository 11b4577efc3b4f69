"""The verifier runs its checks in the order ``explain`` lists them (structure first)."""

from __future__ import annotations

import httpx
import respx
from litestar_logto import LOGTO_ALGORITHMS, InvalidToken, TokenVerifier
from litestar_logto.explain import CHECKS, check_of_reason
from litestar_logto.jwks import RemoteKeySet

from tests.support import ENDPOINT, SigningKey, b64json, b64url, header, serve_issuer


async def test_a_broken_payload_is_a_structure_failure_even_with_a_refused_alg() -> None:
    """A token failing two checks is refused for the first one explain lists: structure."""
    key = SigningKey.es384()
    token = f"{b64json(header(key, alg='HS256'))}.{b64url(b'not json')}.{b64url(b'sig')}"
    with respx.mock as router:
        next(serve_issuer(router, key))
        async with httpx.AsyncClient() as http:
            keys = RemoteKeySet(ENDPOINT, http_client=http, algorithms=LOGTO_ALGORITHMS)
            verifier = TokenVerifier(keys, algorithms=LOGTO_ALGORITHMS)
            try:
                await verifier.verify(token, audience="https://shopping.your-app.com/api")
            except InvalidToken as refused:
                reason = refused.reason
    assert reason == "bad_json"
    assert CHECKS.index(check_of_reason(reason)) < CHECKS.index(
        check_of_reason("algorithm_refused")
    )
