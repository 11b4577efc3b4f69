"""The key-set cache policy: discovery, limits, skipping bad keys, cooldown, single flight,
background revalidation, last-known-good keys and outages."""

from __future__ import annotations

import asyncio
import gzip
import json
from typing import Any

import httpx
import pytest
import respx
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm
from litestar_logto import (
    LOGTO_ALGORITHMS,
    InvalidToken,
    KeySetPolicy,
    KeysUnavailable,
    RemoteKeySet,
)
from litestar_logto.keys import parse_key_set

from tests.support import (
    DISCOVERY_URL,
    ENDPOINT,
    ISSUER,
    JWKS_URL,
    FakeClock,
    FakeIssuer,
    SigningKey,
    discovery,
    jwks,
)

ES384 = SigningKey.es384()
ES384_NEXT = SigningKey.es384("es384-2", index=1)
RS256 = SigningKey.rs256()


# -- discovery ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "document",
    [
        pytest.param(discovery(issuer=f"{ISSUER}/"), id="issuer-trailing-slash"),
        pytest.param(discovery(issuer="https://evil.test/oidc"), id="issuer-foreign"),
        pytest.param(discovery(jwks_uri="https://evil.test/oidc/jwks"), id="jwks-uri-foreign"),
        pytest.param(
            discovery(jwks_uri="http://tenant.logto.test/oidc/jwks"), id="jwks-uri-other-scheme"
        ),
        pytest.param(
            discovery(jwks_uri="https://tenant.logto.test:8443/oidc/jwks"), id="jwks-uri-other-port"
        ),
        pytest.param({"issuer": ISSUER}, id="jwks-uri-missing"),
        pytest.param([discovery()], id="not-an-object"),
    ],
)
async def test_discovery_document_is_checked(
    issuer: FakeIssuer, key_set: RemoteKeySet, document: Any
) -> None:
    """A discovery document with the wrong issuer or a foreign jwks_uri gives no keys."""
    issuer.discovery_route.mock(return_value=httpx.Response(200, json=document))
    with pytest.raises(KeysUnavailable):
        await key_set.get_key(ES384.kid)
    assert issuer.jwks_fetches == 0


async def test_discovery_accepts_default_port_spelled_out(
    issuer: FakeIssuer, key_set: RemoteKeySet, respx_router: respx.MockRouter
) -> None:
    """``https://host:443/...`` is the issuer's origin too."""
    explicit = "https://tenant.logto.test:443/oidc/jwks"
    issuer.discovery_route.mock(return_value=httpx.Response(200, json=discovery(jwks_uri=explicit)))
    respx_router.get(explicit).mock(return_value=httpx.Response(200, json=jwks(ES384)))
    key = await key_set.get_key(ES384.kid)
    assert key.kid == ES384.kid


async def test_discovery_happens_once(
    issuer: FakeIssuer, key_set: RemoteKeySet, clock: FakeClock
) -> None:
    """Later JWKS fetches reuse the discovered jwks_uri."""
    await key_set.get_key(ES384.kid)
    clock.advance(key_set.policy.cooldown)
    await key_set.refresh()
    assert (issuer.discovery_route.call_count, issuer.jwks_fetches) == (1, 2)


# -- limits and malformed documents -------------------------------------------------------------

_TOO_BIG = b'{"keys": [' + b" " * 1_000_001 + b"]}"


async def _chunks(data: bytes) -> Any:
    for start in range(0, len(data), 65536):
        yield data[start : start + 65536]


@pytest.mark.parametrize(
    "response",
    [
        pytest.param(httpx.Response(500), id="status-500"),
        pytest.param(httpx.Response(404), id="status-404"),
        pytest.param(
            httpx.Response(302, headers={"Location": "https://evil.test/jwks"}),
            id="redirect-not-followed",
        ),
        pytest.param(httpx.Response(200, content=b"<html>"), id="not-json"),
        pytest.param(httpx.Response(200, json=[1, 2]), id="json-list"),
        pytest.param(httpx.Response(200, json={"keys": {}}), id="keys-not-a-list"),
        pytest.param(httpx.Response(200, json={}), id="no-keys-member"),
        pytest.param(httpx.Response(200, json={"keys": []}), id="empty-key-set"),
        pytest.param(
            httpx.Response(200, json={"keys": [{"kty": "oct", "kid": "h", "k": "c2VjcmV0"}]}),
            id="only-unusable-keys",
        ),
        pytest.param(httpx.Response(200, content=_TOO_BIG), id="too-big-declared"),
        pytest.param(httpx.Response(200, content=_chunks(_TOO_BIG)), id="too-big-streamed"),
        pytest.param(
            httpx.Response(
                200,
                content=gzip.compress(json.dumps(jwks(ES384)).encode()),
                headers={"Content-Encoding": "gzip"},
            ),
            id="compressed-despite-identity",
        ),
    ],
)
async def test_bad_jwks_answers_give_no_keys(
    issuer: FakeIssuer, key_set: RemoteKeySet, response: httpx.Response
) -> None:
    """Non-200, non-JSON, non-key-set, oversized or keyless answers are refused."""
    issuer.jwks_response = response
    with pytest.raises(KeysUnavailable):
        await key_set.get_key(ES384.kid)
    assert key_set.stats.failures == 1


@pytest.mark.parametrize(
    "response",
    [
        pytest.param(httpx.Response(500), id="status-500"),
        pytest.param(httpx.Response(200, json={"keys": []}), id="empty-key-set"),
        pytest.param(httpx.Response(200, content=b"garbage"), id="not-json"),
        pytest.param(httpx.Response(200, content=_TOO_BIG), id="too-big"),
    ],
)
async def test_malformed_jwks_never_replaces_a_good_one(
    issuer: FakeIssuer, key_set: RemoteKeySet, clock: FakeClock, response: httpx.Response
) -> None:
    """After warm-up, a bad answer leaves the last-known-good keys in place."""
    await key_set.get_key(ES384.kid)
    issuer.jwks_response = response
    clock.advance(key_set.policy.refresh_interval)
    changed = await key_set.refresh()
    key = await key_set.get_key(ES384.kid)
    assert (changed, key.kid, key_set.stats.failures) == (False, ES384.kid, 1)


async def test_request_header_asks_for_identity_encoding(
    issuer: FakeIssuer, key_set: RemoteKeySet
) -> None:
    """The size cap counts wire bytes, so the fetch refuses compression."""
    await key_set.get_key(ES384.kid)
    assert issuer.jwks_route.calls.last.request.headers["accept-encoding"] == "identity"


async def test_key_fetches_name_themselves(issuer: FakeIssuer, key_set: RemoteKeySet) -> None:
    """Discovery and JWKS requests carry the key source's User-Agent (issuer logs and proxies
    tell it apart), even on an HTTP client with its own default."""
    await key_set.get_key(ES384.kid)
    agents = {
        route.calls.last.request.headers["user-agent"]
        for route in (issuer.discovery_route, issuer.jwks_route)
    }
    assert agents == {"logto-resource-api-keys"}


# -- keys skipped one by one --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("bad_key", "reason"),
    [
        pytest.param({**ES384_NEXT.public_jwk(), "use": "enc"}, "not_for_signatures", id="use-enc"),
        pytest.param(
            {"kty": "oct", "kid": "hmac", "k": "c2VjcmV0"}, "unsupported_key_type", id="symmetric"
        ),
        pytest.param(
            SigningKey.rs256("rsa-1024", bits=1024).public_jwk(), "rsa_key_too_small", id="rsa-1024"
        ),
        pytest.param(
            {**ES384_NEXT.public_jwk(), "x": "AAAA"}, "malformed_key", id="ec-point-garbage"
        ),
        pytest.param(
            {**ES384_NEXT.public_jwk(), "crv": "P-999"},
            "alg_does_not_match_key",
            id="unknown-curve-with-alg",
        ),
        pytest.param(
            {"kty": "OKP", "crv": "Ed25519", "kid": "ed", "x": "A" * 43},
            "algorithm_not_allowed",
            id="eddsa-outside-allow-list",
        ),
        pytest.param(
            {**ES384_NEXT.public_jwk(), "alg": "ES256"},
            "alg_does_not_match_key",
            id="alg-contradicts-curve",
        ),
        pytest.param(
            {**ES384_NEXT.public_jwk(), "alg": "HS256"},
            "alg_does_not_match_key",
            id="alg-hmac-on-ec-key",
        ),
        pytest.param(
            {**ES384_NEXT.public_jwk(), "key_ops": ["encrypt"]},
            "not_for_verification",
            id="key-ops-without-verify",
        ),
        pytest.param(
            {k: v for k, v in ES384_NEXT.public_jwk().items() if k != "kid"}, "no_kid", id="no-kid"
        ),
        pytest.param({**ES384_NEXT.public_jwk(), "kid": 7}, "no_kid", id="kid-not-string"),
        pytest.param("not-an-object", "not_an_object", id="not-an-object"),
        pytest.param(
            {"kty": "OKP", "crv": "X25519", "kid": "x", "x": "AAAA"},
            "unsupported_key_type",
            id="okp-x25519",
        ),
        pytest.param({**ES384.public_jwk()}, "duplicate_kid", id="duplicate-kid"),
    ],
)
def test_bad_keys_are_skipped_one_by_one(
    bad_key: Any, reason: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A bad key is skipped with a logged reason; the good keys of the document stay."""
    document = {"keys": [ES384.public_jwk(), bad_key, RS256.public_jwk()]}
    keys = parse_key_set(document, LOGTO_ALGORITHMS)
    skipped = [getattr(record, "reason", None) for record in caplog.records]
    assert (sorted(keys), skipped) == (sorted([ES384.kid, RS256.kid]), [reason])


def test_key_algorithms_follow_type_curve_and_allow_list() -> None:
    """An EC key verifies only its curve's algorithm; an RSA key only allowed RSA algorithms."""
    keys = parse_key_set(jwks(ES384, RS256, SigningKey.es256()), frozenset({"ES384", "RS256"}))
    assert {kid: key.algorithms for kid, key in keys.items()} == {
        ES384.kid: frozenset({"ES384"}),
        RS256.kid: frozenset({"RS256"}),
    }


def test_published_private_key_is_used_as_public_only() -> None:
    """A JWKS that leaks the private ``d`` still yields only a public verification key."""
    private_jwk = {**ECAlgorithm.to_jwk(ES384.private_key, as_dict=True), "kid": ES384.kid}
    keys = parse_key_set({"keys": [private_jwk]}, LOGTO_ALGORITHMS)
    assert "d" in private_jwk
    assert isinstance(keys[ES384.kid].public_key, ec.EllipticCurvePublicKey)


# -- unknown kid, cooldown, single flight -------------------------------------------------------


async def test_unknown_kid_refetches_once_per_cooldown(
    issuer: FakeIssuer, key_set: RemoteKeySet, clock: FakeClock
) -> None:
    """A flood of made-up kids costs one fetch per cooldown, not one per request. Only the
    request that caused the fetch is told its kid is invalid (the issuer answered without it
    after the request arrived); the others joined a fetch that started before they arrived,
    or came within the cooldown, and are told when to retry (503), since a real new kid would
    look the same."""
    await key_set.get_key(ES384.kid)
    clock.advance(key_set.policy.cooldown)
    results = await asyncio.gather(
        *(key_set.get_key(f"made-up-{n}") for n in range(200)), return_exceptions=True
    )
    reasons = [getattr(result, "reason", None) for result in results]
    assert (reasons[0], set(reasons[1:])) == ("unknown_kid", {"unknown_kid_cooldown"})
    assert isinstance(results[0], InvalidToken)
    assert issuer.jwks_fetches == 2
    clock.advance(key_set.policy.cooldown - 1)
    with pytest.raises(KeysUnavailable) as within:
        await key_set.get_key("made-up-again")
    assert (within.value.retry_after, issuer.jwks_fetches) == (1, 2)
    clock.advance(1)
    with pytest.raises(InvalidToken):
        await key_set.get_key("made-up-after-cooldown")
    assert issuer.jwks_fetches == 3


async def test_unknown_kid_reason_is_unknown_kid(issuer: FakeIssuer, key_set: RemoteKeySet) -> None:
    """An unknown kid is the caller's invalid token, not an outage."""
    await key_set.get_key(ES384.kid)
    with pytest.raises(InvalidToken) as caught:
        await key_set.get_key("nope")
    assert caught.value.reason == "unknown_kid"


async def test_rotation_is_found_through_unknown_kid(
    issuer: FakeIssuer, key_set: RemoteKeySet, clock: FakeClock
) -> None:
    """A token with the new kid after a rotation triggers one refetch that finds the key."""
    await key_set.get_key(ES384.kid)
    issuer.keys = [ES384_NEXT, ES384]
    clock.advance(key_set.policy.cooldown)
    key = await key_set.get_key(ES384_NEXT.kid)
    assert (key.kid, issuer.jwks_fetches) == (ES384_NEXT.kid, 2)


async def test_junk_kid_cannot_turn_a_rotation_into_401s(
    issuer: FakeIssuer, key_set: RemoteKeySet, clock: FakeClock
) -> None:
    """Issue 9 #7: a made-up kid spends the unknown-kid refetch (the issuer answers without
    it: invalid), then the issuer rotates. Within the cooldown the new kid cannot be asked
    about, so it is an outage to retry when the cooldown ends (503), not an invalid token;
    the cooldown still holds (no fetch); after it, one fetch finds the new key."""
    await key_set.get_key(ES384.kid)
    with pytest.raises(InvalidToken) as junk:
        await key_set.get_key("attacker-kid")
    issuer.keys = [ES384_NEXT, ES384]
    clock.advance(2)
    with pytest.raises(KeysUnavailable) as during:
        await key_set.get_key(ES384_NEXT.kid)
    fetches_during = issuer.jwks_fetches
    clock.advance(28)
    key = await key_set.get_key(ES384_NEXT.kid)
    assert (junk.value.reason, during.value.reason, during.value.retry_after) == (
        "unknown_kid",
        "unknown_kid_cooldown",
        28,
    )
    assert (fetches_during, key.kid, issuer.jwks_fetches) == (2, ES384_NEXT.kid, 3)


async def test_a_kid_the_issuer_retired_is_invalid_at_once(
    issuer: FakeIssuer, key_set: RemoteKeySet, clock: FakeClock
) -> None:
    """A kid the issuer published and then dropped (tokens older than two rotations) is an
    invalid token without waiting for the cooldown: the issuer already said it is gone."""
    await key_set.get_key(ES384.kid)
    issuer.keys = [ES384_NEXT]
    clock.advance(1)
    await key_set.get_key(ES384_NEXT.kid)  # the unknown-kid fetch: ES384 has left the set
    clock.advance(1)
    with pytest.raises(InvalidToken) as retired:
        await key_set.get_key(ES384.kid)
    assert (retired.value.reason, issuer.jwks_fetches) == ("unknown_kid", 2)


async def test_concurrent_cold_requests_share_one_fetch(
    issuer: FakeIssuer, key_set: RemoteKeySet
) -> None:
    """N concurrent requests on a cold cache cause exactly one discovery and one JWKS fetch."""
    release = asyncio.Event()

    async def slow_jwks(request: httpx.Request) -> httpx.Response:
        await release.wait()
        return httpx.Response(200, json=jwks(ES384))

    issuer.jwks_route.mock(side_effect=slow_jwks)
    waiters = [asyncio.ensure_future(key_set.get_key(ES384.kid)) for _ in range(200)]
    await asyncio.sleep(0)
    release.set()
    keys = await asyncio.gather(*waiters)
    assert {key.kid for key in keys} == {ES384.kid}
    assert (issuer.discovery_route.call_count, issuer.jwks_fetches) == (1, 1)


# -- background revalidation --------------------------------------------------------------------


async def test_stale_keys_are_revalidated_in_the_background(
    issuer: FakeIssuer, key_set: RemoteKeySet, clock: FakeClock
) -> None:
    """Past refresh_interval a request is served at once and a refresh starts behind it."""
    await key_set.get_key(ES384.kid)
    clock.advance(key_set.policy.refresh_interval)
    issuer.keys = [ES384_NEXT, ES384]
    key = await key_set.get_key(ES384.kid)
    fetches_when_served = issuer.jwks_fetches
    await asyncio.sleep(0.01)  # let the background task run (no clock involved)
    assert (key.kid, fetches_when_served, key_set.knows(ES384_NEXT.kid)) == (ES384.kid, 1, True)


async def test_revalidation_uses_etag(
    issuer: FakeIssuer, key_set: RemoteKeySet, clock: FakeClock
) -> None:
    """With an ETag the refresh sends If-None-Match and a 304 keeps the keys as fresh."""
    issuer.etag = '"v1"'
    await key_set.get_key(ES384.kid)
    clock.advance(key_set.policy.refresh_interval)
    assert await key_set.refresh() is True
    request = issuer.jwks_route.calls.last.request
    assert (request.headers.get("if-none-match"), key_set.stats.not_modified) == ('"v1"', 1)
    assert key_set.knows(ES384.kid)


async def test_refresh_loop_picks_up_rotation_before_a_token_needs_it(
    issuer: FakeIssuer, key_set: RemoteKeySet, clock: FakeClock
) -> None:
    """The background loop finds a new key although no token with its kid arrived yet."""
    await key_set.get_key(ES384.kid)
    issuer.keys = [ES384_NEXT, ES384]
    sleeps: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        sleeps.append(seconds)
        if len(sleeps) > 1:
            raise asyncio.CancelledError
        clock.advance(seconds)

    with pytest.raises(asyncio.CancelledError):
        await key_set.run_refresh_loop(sleep=fake_sleep)
    assert (sleeps[0], key_set.knows(ES384_NEXT.kid)) == (key_set.policy.refresh_interval, True)


async def test_removed_key_is_forgotten(
    issuer: FakeIssuer, key_set: RemoteKeySet, clock: FakeClock
) -> None:
    """A key the issuer stops publishing stops verifying after the next refresh."""
    issuer.keys = [ES384, ES384_NEXT]
    await key_set.get_key(ES384.kid)
    issuer.keys = [ES384_NEXT]
    clock.advance(key_set.policy.refresh_interval)
    await key_set.refresh()
    assert (key_set.knows(ES384.kid), key_set.knows(ES384_NEXT.kid)) == (False, True)


# -- outages ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "failure",
    [
        pytest.param(httpx.ConnectError("refused"), id="connection-refused"),
        pytest.param(httpx.ReadTimeout("slow"), id="read-timeout"),
        pytest.param(httpx.Response(503), id="status-503"),
        pytest.param(httpx.RemoteProtocolError("garbled"), id="protocol-error"),
    ],
)
async def test_outage_after_warm_up_keeps_known_keys(
    issuer: FakeIssuer, key_set: RemoteKeySet, clock: FakeClock, failure: Any
) -> None:
    """Known keys keep working through an outage for max_stale, then the API answers 503."""
    await key_set.get_key(ES384.kid)
    issuer.jwks_route.mock(side_effect=[failure] * 1000)
    clock.advance(key_set.policy.max_stale)
    key = await key_set.get_key(ES384.kid)
    assert key.kid == ES384.kid
    clock.advance(1)
    with pytest.raises(KeysUnavailable):
        await key_set.get_key(ES384.kid)


async def test_cold_outage_is_503_with_retry_after_and_cooldown(
    issuer: FakeIssuer, key_set: RemoteKeySet, clock: FakeClock
) -> None:
    """With no keys ever fetched the caller gets 503 + Retry-After; retries within the
    cooldown do not hammer the issuer."""
    issuer.discovery_route.mock(side_effect=httpx.ConnectError("down"))
    with pytest.raises(KeysUnavailable) as first:
        await key_set.get_key(ES384.kid)
    clock.advance(10)
    with pytest.raises(KeysUnavailable) as second:
        await key_set.get_key(ES384.kid)
    assert (first.value.status_code, first.value.retry_after, second.value.retry_after) == (
        503,
        30,
        20,
    )
    assert issuer.discovery_route.call_count == 1


async def test_recovers_when_issuer_returns(
    issuer: FakeIssuer, key_set: RemoteKeySet, clock: FakeClock
) -> None:
    """After a cold outage the first request past the cooldown fetches the keys."""
    issuer.discovery_route.mock(
        side_effect=[httpx.ConnectError("down"), httpx.Response(200, json=discovery())]
    )
    with pytest.raises(KeysUnavailable):
        await key_set.get_key(ES384.kid)
    clock.advance(key_set.policy.cooldown)
    key = await key_set.get_key(ES384.kid)
    assert key.kid == ES384.kid


@pytest.mark.parametrize(
    "failure",
    [
        pytest.param(httpx.ConnectError("refused"), id="connection-refused"),
        pytest.param(httpx.Response(502), id="status-502"),
        pytest.param(httpx.Response(200, text="<html>maintenance</html>"), id="malformed"),
        pytest.param(httpx.Response(200, json={"keys": []}), id="empty-key-set"),
    ],
)
async def test_unknown_kid_while_the_issuer_fails_is_an_outage(
    issuer: FakeIssuer, key_set: RemoteKeySet, clock: FakeClock, failure: Any
) -> None:
    """A kid the issuer could not be asked about is a 503 to retry, not a 401: a token signed
    right after a rotation that coincides with an outage may be valid. Known keys keep
    working; once the issuer answers again, a kid it does not publish is invalid again."""
    await key_set.get_key(ES384.kid)
    issuer.jwks_route.mock(side_effect=[failure] * 3)
    clock.advance(key_set.policy.cooldown)
    with pytest.raises(KeysUnavailable) as during:
        await key_set.get_key(ES384_NEXT.kid)
    assert (during.value.status_code, key_set.stats.failures) == (503, 1)
    with pytest.raises(KeysUnavailable):  # within the cooldown: no fetch, still an outage
        await key_set.get_key("made-up")
    assert issuer.jwks_route.call_count == 2
    assert (await key_set.get_key(ES384.kid)).kid == ES384.kid
    issuer.jwks_route.mock(side_effect=None, return_value=httpx.Response(200, json=jwks(ES384)))
    clock.advance(key_set.policy.cooldown)
    with pytest.raises(InvalidToken) as after:
        await key_set.get_key(ES384_NEXT.kid)
    assert after.value.reason == "unknown_kid"


@pytest.fixture
def short_timeout() -> KeySetPolicy:
    return KeySetPolicy(timeout=0.2)


@pytest.fixture
def quick_key_set(
    http_client: httpx.AsyncClient, clock: FakeClock, short_timeout: KeySetPolicy
) -> RemoteKeySet:
    """A key set whose fetches give up after 0.2 s."""
    return RemoteKeySet(
        ENDPOINT,
        http_client=http_client,
        algorithms=LOGTO_ALGORITHMS,
        policy=short_timeout,
        clock=clock,
    )


def hang_jwks(issuer: FakeIssuer) -> None:
    """From now on the JWKS endpoint accepts requests and never answers."""
    never = asyncio.Event()

    async def hang(request: httpx.Request) -> httpx.Response:
        await never.wait()
        return httpx.Response(200)  # pragma: no cover

    issuer.jwks_route.mock(side_effect=hang)


async def test_unknown_kid_while_the_issuer_hangs_is_an_outage(
    issuer: FakeIssuer, quick_key_set: RemoteKeySet, clock: FakeClock
) -> None:
    """A refetch for an unknown kid that hangs ends at the timeout with 503, not 401."""
    await quick_key_set.get_key(ES384.kid)
    hang_jwks(issuer)
    clock.advance(quick_key_set.policy.cooldown)
    with pytest.raises(KeysUnavailable):
        await asyncio.wait_for(quick_key_set.get_key(ES384_NEXT.kid), timeout=10)
    await asyncio.sleep(quick_key_set.policy.timeout * 2)  # the shared fetch ends on its own
    assert quick_key_set.stats.last_failure == "timeout"


async def test_hung_issuer_never_holds_a_request_past_the_timeout(
    issuer: FakeIssuer, quick_key_set: RemoteKeySet
) -> None:
    """A JWKS endpoint that never answers costs a request the fetch timeout, then 503."""
    hang_jwks(issuer)
    timeout = quick_key_set.policy.timeout
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(KeysUnavailable):
        await asyncio.wait_for(quick_key_set.get_key(ES384.kid), timeout=10)
    waited = loop.time() - started
    assert waited < timeout * 10  # bounded by the timeout, not by the hang
    await asyncio.sleep(timeout * 2)  # the shared fetch ends on its own deadline
    assert quick_key_set.stats.last_failure == "timeout"


async def test_hung_issuer_after_warm_up_does_not_delay_known_keys(
    issuer: FakeIssuer, quick_key_set: RemoteKeySet, clock: FakeClock
) -> None:
    """With keys known, a hung refresh runs behind the request instead of in front of it."""
    await quick_key_set.get_key(ES384.kid)
    hang_jwks(issuer)
    timeout = quick_key_set.policy.timeout
    clock.advance(quick_key_set.policy.refresh_interval)
    key = await asyncio.wait_for(quick_key_set.get_key(ES384.kid), timeout=timeout / 2)
    assert key.kid == ES384.kid
    await asyncio.sleep(timeout * 2)  # the background fetch times out on its own
    assert quick_key_set.stats.last_failure == "timeout"


async def test_rsa_issuer(respx_router: respx.MockRouter, key_set: RemoteKeySet) -> None:
    """An RSA key set (Logto after rotating to RSA) is usable; its keys verify RS256."""
    FakeIssuer(respx_router, [RS256])
    key = await key_set.get_key(RS256.kid)
    assert key.algorithms == frozenset({"RS256"})


def test_discovery_url_is_logtos() -> None:
    """Discovery lives under ``<endpoint>/oidc`` and the issuer is exactly that."""
    key_set = RemoteKeySet(
        f"{ENDPOINT}/", http_client=httpx.AsyncClient(), algorithms=LOGTO_ALGORITHMS
    )
    assert (key_set.issuer, key_set.discovery_url) == (ISSUER, DISCOVERY_URL)


def test_jwks_url_constant_matches_discovery() -> None:
    """The test issuer publishes its JWKS where its discovery says."""
    assert discovery()["jwks_uri"] == JWKS_URL


async def test_refetch_with_same_keys_keeps_key_identity(
    issuer: FakeIssuer, key_set: RemoteKeySet, clock: FakeClock
) -> None:
    """A full 200 refetch of unchanged keys keeps the same key objects (cache hits stay hits)."""
    before = await key_set.get_key(ES384.kid)
    clock.advance(key_set.policy.refresh_interval)
    await key_set.refresh()
    assert (issuer.jwks_fetches, key_set.current(ES384.kid) is before) == (2, True)


async def test_a_crash_inside_the_fetch_is_an_outage_not_a_500(
    issuer: FakeIssuer, key_set: RemoteKeySet, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An unexpected exception while parsing keys keeps the known keys (warm) and is a 503
    (cold), never an exception escaping to the request."""

    def explode(document: object, allowed: frozenset[str]) -> None:
        raise ZeroDivisionError

    await key_set.get_key(ES384.kid)
    monkeypatch.setattr("litestar_logto.jwks.parse_key_set", explode)
    clock.advance(key_set.policy.refresh_interval)
    assert await key_set.refresh() is False
    key = await key_set.get_key(ES384.kid)
    clock.advance(key_set.policy.max_stale + 1)
    with pytest.raises(KeysUnavailable):
        await key_set.get_key(ES384.kid)
    assert (key.kid, key_set.stats.last_failure) == (ES384.kid, "unexpected_error")


async def test_rotation_right_after_a_routine_fetch_is_found_at_once(
    issuer: FakeIssuer, key_set: RemoteKeySet, clock: FakeClock
) -> None:
    """A start-up or background fetch seconds before a rotation does not make the new key
    wait out a cooldown: unknown kids have a budget of their own."""
    await key_set.get_key(ES384.kid)  # the routine fetch
    issuer.keys = [ES384_NEXT, ES384]
    clock.advance(1)
    key = await key_set.get_key(ES384_NEXT.kid)
    with pytest.raises(KeysUnavailable):  # the unknown-kid cooldown now holds
        await key_set.get_key("made-up-after-the-rotation")
    assert (key.kid, issuer.jwks_fetches) == (ES384_NEXT.kid, 2)
