"""Shared fixtures: a fake clock, a respx-served issuer and the verification core around it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
import respx
from litestar_logto import (
    LOGTO_ALGORITHMS,
    KeySetPolicy,
    RemoteKeySet,
    TokenVerifier,
    VerifierPolicy,
)

from tests.dev_issuer.support import dev_issuer_fixture  # noqa: F401 - the fixture dev_issuer
from tests.postgres_support import (  # noqa: F401 - the fixtures postgres_server, postgres_url
    postgres_server_fixture,
    postgres_url,
)
from tests.redis_support import redis_url_fixture  # noqa: F401 - the fixture redis_url
from tests.served_programs import serve_fixture  # noqa: F401 - the fixture serve
from tests.support import ENDPOINT, FakeClock, FakeIssuer, SigningKey


@pytest.fixture
def clock() -> FakeClock:
    """A clock frozen at ``NOW`` that tests advance by hand."""
    return FakeClock()


@pytest.fixture
def respx_router() -> Iterator[respx.MockRouter]:
    """Every httpx request is answered by respx; an unmocked URL fails the test."""
    with respx.mock(assert_all_called=False, assert_all_mocked=True) as router:
        yield router


@pytest.fixture
def issuer(respx_router: respx.MockRouter) -> FakeIssuer:
    """A Logto issuer publishing one ES384 key."""
    return FakeIssuer(respx_router, [SigningKey.es384()])


@pytest.fixture
async def http_client(respx_router: respx.MockRouter) -> AsyncIterator[httpx.AsyncClient]:
    """The injected HTTP client (respx intercepts its transport)."""
    async with httpx.AsyncClient() as client:
        yield client


@pytest.fixture
def key_set_policy() -> KeySetPolicy:
    """The default key-set policy; tests override this fixture to change it."""
    return KeySetPolicy()


@pytest.fixture
def key_set(
    http_client: httpx.AsyncClient, clock: FakeClock, key_set_policy: KeySetPolicy
) -> RemoteKeySet:
    """The issuer's key set as the verifier sees it."""
    return RemoteKeySet(
        ENDPOINT,
        http_client=http_client,
        algorithms=LOGTO_ALGORITHMS,
        policy=key_set_policy,
        clock=clock,
    )


@pytest.fixture
def verifier(key_set: RemoteKeySet, clock: FakeClock) -> Iterator[TokenVerifier]:
    """A verifier with the default policy (its signature thread ended afterwards)."""
    verifier = TokenVerifier(
        key_set, algorithms=LOGTO_ALGORITHMS, policy=VerifierPolicy(), clock=clock
    )
    yield verifier
    verifier.close()
