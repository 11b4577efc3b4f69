"""A token the middleware has verified before is answered from the verified-token cache without
the full check (``LogtoAuth._remembered``: no bearer parsing, no coroutine, no second digest).
That shortcut must never decide differently from the full check: every request below is sent
to an app that has verified the token before (the shortcut's candidate) and to one that has
not, and both must answer alike."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from litestar_logto import LogtoAuth, TokenVerifier

from tests.resource_api.auth.conftest import ROUTES, auth_config
from tests.resource_api.helpers import (
    ACME_MEMBERS,
    ACME_STORE_READ,
    SHOPPING_READ,
    STORE_READ,
    bearer,
)
from tests.support import FakeClock, FakeIssuer, SigningKey

Client = AsyncTestClient[Litestar]


@dataclass
class Api:
    """A started app and its plugin."""

    client: Client
    auth: LogtoAuth


@dataclass
class Verifications:
    """Calls of ``TokenVerifier.verify`` (the full check), per verifier."""

    calls: dict[int, int] = field(default_factory=dict)

    def of(self, auth: LogtoAuth) -> int:
        return self.calls.get(id(auth.verifier), 0)


@pytest.fixture
def verifications(monkeypatch: pytest.MonkeyPatch) -> Verifications:
    """Count the full checks each verifier makes."""
    counted = Verifications()
    original = TokenVerifier.verify

    async def counting(self: TokenVerifier, token: str, *, audience: str) -> Any:
        counted.calls[id(self)] = counted.calls.get(id(self), 0) + 1
        return await original(self, token, audience=audience)

    monkeypatch.setattr(TokenVerifier, "verify", counting)
    return counted


async def _api(http_client: httpx.AsyncClient, clock: FakeClock) -> AsyncIterator[Api]:
    auth = LogtoAuth(auth_config(), http_client=http_client, clock=clock)
    app = Litestar(route_handlers=ROUTES, plugins=[auth])
    async with AsyncTestClient(app) as client:
        yield Api(client, auth)


@pytest.fixture
async def primed(
    issuer: FakeIssuer, http_client: httpx.AsyncClient, clock: FakeClock
) -> AsyncIterator[Api]:
    """The app that has verified each case's token before the case's request."""
    del issuer
    async for api in _api(http_client, clock):
        yield api


@pytest.fixture
async def fresh(
    issuer: FakeIssuer, http_client: httpx.AsyncClient, clock: FakeClock
) -> AsyncIterator[Api]:
    """An app that sees each case's token for the first time with the case's request."""
    del issuer
    async for api in _api(http_client, clock):
        yield api


# Each case: the token's claims, the request that primes the cache (it must answer 200), then
# the request under test: method, path, extra headers (a value None: the Authorization header
# replaced), body.
CASES: list[Any] = [
    pytest.param(
        (SHOPPING_READ, "/shopping/orders", ("GET", "/shopping/orders", {}, None)), id="same"
    ),
    pytest.param(
        (SHOPPING_READ, "/shopping/orders", ("POST", "/shopping/orders", {}, None)), id="no-scope"
    ),
    pytest.param(
        (SHOPPING_READ, "/shopping/orders", ("GET", "/store/products", {}, None)), id="other-api"
    ),
    pytest.param(
        (SHOPPING_READ, "/shopping/orders", ("GET", "/shopping/orders?access_token=x", {}, None)),
        id="token-in-query",
    ),
    pytest.param(
        (SHOPPING_READ, "/shopping/orders", ("GET", "/shopping/orders?page=2", {}, None)),
        id="other-query",
    ),
    pytest.param(
        (
            {**SHOPPING_READ, "scope": "shopping:read shopping:write"},
            "/shopping/orders",
            (
                "POST",
                "/shopping/orders",
                {"Content-Type": "application/x-www-form-urlencoded"},
                b"access_token=x",
            ),
        ),
        id="token-in-form",
    ),
    pytest.param(
        (SHOPPING_READ, "/shopping/orders", ("GET", "/shopping/orders", {"lower": ""}, None)),
        id="lower-case-scheme",
    ),
    pytest.param(
        (SHOPPING_READ, "/shopping/orders", ("GET", "/shopping/orders", {"spaces": ""}, None)),
        id="extra-spaces",
    ),
    pytest.param(
        (SHOPPING_READ, "/shopping/orders", ("GET", "/shopping/orders", {"twice": ""}, None)),
        id="two-authorization-headers",
    ),
    pytest.param((STORE_READ, "/store/products", ("GET", "/store/products", {}, None)), id="store"),
    pytest.param(
        (
            ACME_MEMBERS,
            "/organizations/acme/members",
            ("GET", "/organizations/globex/members", {}, None),
        ),
        id="organization-token-other-organization",
    ),
    pytest.param(
        (
            ACME_STORE_READ,
            "/organizations/acme/store/products",
            ("GET", "/organizations/globex/store/products", {}, None),
        ),
        id="organization-resource-other-organization",
    ),
    pytest.param(
        (
            ACME_STORE_READ,
            "/organizations/acme/store/products",
            ("GET", "/store/products", {}, None),
        ),
        id="organization-bound-token-on-global-route",
    ),
]


def _headers(token: str, extra: dict[str, str]) -> list[tuple[str, str]]:
    if "lower" in extra:
        return [("Authorization", f"bearer {token}")]
    if "spaces" in extra:
        return [("Authorization", f"Bearer   {token} ")]
    if "twice" in extra:
        return [("Authorization", f"Bearer {token}"), ("Authorization", f"Bearer {token}")]
    return [("Authorization", f"Bearer {token}"), *extra.items()]


async def _send(api: Api, token: str, request: tuple[Any, ...]) -> httpx.Response:
    method, path, extra, body = request
    return await api.client.request(method, path, headers=_headers(token, extra), content=body)


def _answer(response: httpx.Response) -> tuple[int, str | None, bytes]:
    return response.status_code, response.headers.get("WWW-Authenticate"), response.content


@pytest.mark.parametrize("case", CASES)
async def test_a_remembered_token_gets_the_answer_the_full_check_gives(
    issuer: FakeIssuer, primed: Api, fresh: Api, case: tuple[Any, ...]
) -> None:
    """Whatever the request, the app that remembers the token answers like the one that does
    not: status, challenge and body."""
    claims, prime, request = case
    token = issuer.sign(**claims)
    assert (await primed.client.get(prime, headers=bearer(token))).status_code == 200
    remembered = await _send(primed, token, request)
    first_time = await _send(fresh, token, request)
    assert _answer(remembered) == _answer(first_time)


async def test_a_returning_token_skips_the_full_check_and_counts_as_a_cache_hit(
    issuer: FakeIssuer, primed: Api, verifications: Verifications
) -> None:
    """The plain repeat of an accepted request is answered from the cache (no call of
    ``verify``), and counted once as a cache hit."""
    token = issuer.sign(**SHOPPING_READ)
    first = await primed.client.get("/shopping/orders", headers=bearer(token))
    again = await primed.client.get("/shopping/orders", headers=bearer(token))
    assert (first.status_code, again.status_code, again.json()) == (200, 200, first.json())
    stats = primed.auth.verifier.stats
    assert (verifications.of(primed.auth), stats.cache_hits, stats.cache_misses) == (1, 1, 1)
    assert primed.auth.decisions.accepted == 2


async def test_a_remembered_token_goes_back_to_the_full_check_when_time_or_keys_move(
    issuer: FakeIssuer, primed: Api, clock: FakeClock, verifications: Verifications
) -> None:
    """Past its expiry the remembered token is refused as expired; after its kid is
    republished with other key material it is checked again (and refused: the signature no
    longer verifies)."""
    expiring = issuer.sign(**SHOPPING_READ, exp=int(clock()) + 60)
    rotated = issuer.sign(**SHOPPING_READ)
    for token in (expiring, rotated):
        assert (
            await primed.client.get("/shopping/orders", headers=bearer(token))
        ).status_code == 200
    clock.advance(60 + 31)  # past exp and the 30 s leeway
    expired = await primed.client.get("/shopping/orders", headers=bearer(expiring))
    assert (expired.status_code, expired.json()["error_description"]) == (
        401,
        "The access token has expired.",
    )
    issuer.keys = [SigningKey.es384(index=9)]  # the same kid, another key
    await primed.auth.keys.refresh()
    refused = await primed.client.get("/shopping/orders", headers=bearer(rotated))
    assert (refused.status_code, refused.json()["error_description"]) == (
        401,
        "The access token signature is invalid.",
    )
    assert verifications.of(primed.auth) == 4  # both primes, then both full checks again
