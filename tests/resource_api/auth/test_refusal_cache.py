"""The refusal cache: a refused well-formed token presented again costs no signature check and
gets the same answer, but no remembered refusal outlives its truth (key change, TTL, a token
that has become valid) and nothing a key refresh or an outage decides is remembered.

Signature checks are counted by the ``signature_checks`` fixture (a thin wrapper around
``VerificationKey.verify``); key look-ups by a ``RemoteKeySet`` subclass. Keys are real and the
issuer is served by respx.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from litestar.testing import AsyncTestClient
from litestar_logto import (
    LOGTO_ALGORITHMS,
    AuthError,
    InvalidToken,
    KeysUnavailable,
    RemoteKeySet,
    TokenVerifier,
    VerifierPolicy,
)
from litestar_logto.keys import VerificationKey

from tests.resource_api.auth.conftest import SignatureChecks
from tests.resource_api.auth.forge import (
    ATTACKER_ES384,
    ES256,
    ES384,
    signed,
    with_payload,
    with_signature,
)
from tests.support import (
    ENDPOINT,
    ISSUER,
    NOW,
    SHOPPING,
    FakeClock,
    FakeIssuer,
    SigningKey,
    b64json,
    claims,
    header,
    make_token,
)

Build = Callable[[], str]
NEW_KEY = SigningKey.es384("es384-2", index=1)
"""A key the issuer does not publish at first (a rotation's next key)."""
REPLAYS = 5


class CountingKeySet(RemoteKeySet):
    """The real key set, counting how often the verifier asks it for a key."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.get_key_calls = 0

    async def get_key(self, kid: str) -> VerificationKey:
        self.get_key_calls += 1
        return await super().get_key(kid)


@pytest.fixture
def counting_key_set(http_client: httpx.AsyncClient, clock: FakeClock) -> CountingKeySet:
    """The issuer's key set with a look-up counter."""
    return CountingKeySet(
        ENDPOINT, http_client=http_client, algorithms=LOGTO_ALGORITHMS, clock=clock
    )


MakeVerifier = Callable[..., TokenVerifier]


@pytest.fixture
def make_verifier(counting_key_set: CountingKeySet, clock: FakeClock) -> MakeVerifier:
    """``make_verifier(**policy)``: a verifier over the counting key set and the fake clock."""

    def build(**policy: Any) -> TokenVerifier:
        return TokenVerifier(
            counting_key_set,
            algorithms=LOGTO_ALGORITHMS,
            policy=VerifierPolicy(**policy),
            clock=clock,
        )

    return build


async def _refusal(verifier: TokenVerifier, token: str) -> AuthError:
    with pytest.raises(AuthError) as caught:
        await verifier.verify(token, audience=SHOPPING)
    return caught.value


def _answer(error: AuthError) -> tuple[type[AuthError], str, str, dict[str, str], int]:
    """Everything a caller, a log line or a metric can see of a refusal."""
    return type(error), error.description, error.reason, error.body(), error.status_code


def _tampered() -> str:
    """A genuine token of the issuer whose payload was changed after signing."""
    return with_payload(make_token(ES384), claims(sub="user-mallory"))


# -- replays of refused well-formed tokens ----------------------------------------------------


@pytest.mark.usefixtures("issuer")
@pytest.mark.parametrize(
    ("build", "reason"),
    [
        pytest.param(lambda: make_token(ATTACKER_ES384), "bad_signature", id="forged-same-kid"),
        pytest.param(_tampered, "bad_signature", id="tampered-payload"),
        pytest.param(
            lambda: with_signature(make_token(ES384), bytes(96)), "bad_signature", id="zeros"
        ),
        pytest.param(
            lambda: make_token(ES256, header_overrides={"kid": ES384.kid}),
            "algorithm_key_mismatch",
            id="algorithm-key-mismatch",
        ),
        pytest.param(lambda: make_token(ES384, exp=NOW - 60), "expired", id="expired"),
        pytest.param(
            lambda: make_token(ES384, iss=f"{ISSUER}/"), "wrong_issuer", id="wrong-issuer"
        ),
        pytest.param(lambda: make_token(ES384, sub=None), "bad_sub", id="missing-sub"),
        pytest.param(lambda: make_token(ES384, exp=None), "no_exp", id="missing-exp"),
        pytest.param(lambda: make_token(ES384, aud=7), "bad_aud", id="bad-aud-type"),
        pytest.param(lambda: make_token(ES384, scope=["a"]), "bad_scope", id="bad-scope-type"),
        pytest.param(
            lambda: signed(ES384, header(ES384), [claims()]),
            "malformed_payload",
            id="payload-not-an-object",
        ),
        pytest.param(lambda: make_token(ES384, nbf=NOW + 3000), "not_yet_valid", id="nbf-future"),
        pytest.param(
            lambda: make_token(ES384, iat=NOW + 3000), "issued_in_future", id="iat-future"
        ),
    ],
)
async def test_replayed_refusal_costs_one_check_and_gets_the_same_answer(
    make_verifier: MakeVerifier,
    counting_key_set: CountingKeySet,
    signature_checks: SignatureChecks,
    build: Build,
    reason: str,
) -> None:
    """A refused well-formed token presented again and again is decided once: one signature
    check (none for an algorithm that does not fit the key), one key look-up, and the very same
    error class, description, reason and body every time."""
    verifier = make_verifier()
    token = build()
    answers = [_answer(await _refusal(verifier, token)) for _ in range(REPLAYS)]
    assert (
        answers[0][:3],
        answers.count(answers[0]),
        signature_checks.calls,
        counting_key_set.get_key_calls,
        verifier.refusal_cache_len,
        verifier.cache_len,
    ) == (
        (InvalidToken, answers[0][1], reason),
        REPLAYS,
        0 if reason == "algorithm_key_mismatch" else 1,
        1,
        1,
        0,
    )


async def test_replayed_forgery_gets_the_same_http_answer_and_log(
    api: AsyncTestClient[Any], signature_checks: SignatureChecks, caplog: pytest.LogCaptureFixture
) -> None:
    """Through the Litestar adapter, every replay of a forged token gets the identical 401
    (status, challenge, body) and the same logged reason, for one signature check; the first
    refusal is logged at INFO, its replays at DEBUG (marked ``replayed``)."""
    caplog.set_level(logging.DEBUG, logger="litestar_logto")
    credentials = {"Authorization": f"Bearer {make_token(ATTACKER_ES384)}"}
    responses = [await api.get("/shopping/orders", headers=credentials) for _ in range(3)]
    answers = {(r.status_code, r.headers["www-authenticate"], r.text) for r in responses}
    reasons = [
        (record.levelname, getattr(record, "reason", None), getattr(record, "replayed", False))
        for record in caplog.records
        if getattr(record, "event", None) == "auth_refused"
    ]
    assert (len(answers), responses[0].status_code, reasons, signature_checks.calls) == (
        1,
        401,
        [
            ("INFO", "bad_signature", False),
            ("DEBUG", "bad_signature", True),
            ("DEBUG", "bad_signature", True),
        ],
        1,
    )


# -- time-dependent refusals ------------------------------------------------------------------


@pytest.mark.parametrize("claim", ["nbf", "iat"])
async def test_not_yet_valid_token_is_accepted_once_it_could_pass(
    issuer: FakeIssuer,
    make_verifier: MakeVerifier,
    clock: FakeClock,
    signature_checks: SignatureChecks,
    claim: str,
) -> None:
    """A token refused for starting in the future is remembered only until ``start - leeway``
    (well within the TTL here): a moment before, the replay is answered from the cache; at that
    instant the token is checked again and accepted."""
    verifier = make_verifier()  # leeway 30 s, TTL 60 s
    start = NOW + 45
    starts_late: dict[str, Any] = {claim: start}
    token = make_token(ES384, **starts_late)
    first = await _refusal(verifier, token)
    clock.now = start - verifier.policy.leeway - 0.5
    before = await _refusal(verifier, token)
    checks_before = signature_checks.calls
    clock.now = start - verifier.policy.leeway
    accepted = await verifier.verify(token, audience=SHOPPING)
    assert (
        first.reason,
        _answer(before) == _answer(first),
        checks_before,
        accepted.subject,
        signature_checks.calls,
    ) == ({"nbf": "not_yet_valid", "iat": "issued_in_future"}[claim], True, 1, "user-alice", 2)


@pytest.mark.parametrize(
    "build",
    [
        pytest.param(lambda: make_token(ATTACKER_ES384), id="forged"),
        pytest.param(lambda: make_token(ES384, exp=NOW - 60), id="expired"),
        pytest.param(lambda: make_token(ES384, iss="https://evil.test/oidc"), id="wrong-issuer"),
        pytest.param(lambda: make_token(ES384, nbf=NOW + 3000), id="not-yet-valid-far-off"),
    ],
)
async def test_refusal_is_forgotten_after_its_ttl(
    issuer: FakeIssuer,
    make_verifier: MakeVerifier,
    clock: FakeClock,
    signature_checks: SignatureChecks,
    build: Build,
) -> None:
    """A refusal is answered from the cache until ``refusal_cache_seconds`` have passed, then
    decided afresh (and remembered again); an expired token is kept the whole TTL."""
    verifier = make_verifier(refusal_cache_seconds=20.0)
    token = build()
    first = await _refusal(verifier, token)
    clock.advance(19.9)
    await _refusal(verifier, token)
    within_ttl = signature_checks.calls
    clock.advance(0.1)
    again = await _refusal(verifier, token)
    assert (within_ttl, signature_checks.calls, again.reason, verifier.refusal_cache_len) == (
        1,
        2,
        first.reason,
        1,
    )


# -- decisions a key refresh or an outage can change ----------------------------------------------


async def test_unknown_kid_is_not_remembered(
    issuer: FakeIssuer,
    make_verifier: MakeVerifier,
    counting_key_set: CountingKeySet,
    clock: FakeClock,
) -> None:
    """A token of a kid the issuer does not publish is asked of the key set each time, never
    remembered: a 401 once the issuer answered without it, a 503 while the unknown-kid
    cooldown holds back the next fetch (issue 9 #7: the issuer may have published it since);
    once the issuer publishes the kid, the same token is accepted."""
    verifier = make_verifier()
    token = make_token(NEW_KEY)
    refusals = [await _refusal(verifier, token) for _ in range(3)]
    remembered = verifier.refusal_cache_len
    issuer.keys = [ES384, NEW_KEY]
    clock.advance(counting_key_set.policy.cooldown)
    accepted = await verifier.verify(token, audience=SHOPPING)
    assert ([(type(r), r.reason) for r in refusals], remembered) == (
        [(InvalidToken, "unknown_kid")] + [(KeysUnavailable, "unknown_kid_cooldown")] * 2,
        0,
    )
    assert (counting_key_set.get_key_calls, accepted.subject) == (4, "user-alice")


async def test_junk_kid_then_rotation_is_never_a_remembered_refusal(
    issuer: FakeIssuer,
    make_verifier: MakeVerifier,
    counting_key_set: CountingKeySet,
    clock: FakeClock,
) -> None:
    """Issue 9 #7 through the verifier and its refusal cache: a junk kid spends the refetch,
    the issuer rotates, the new key's valid token gets 503s within the cooldown (each asked of
    the key set, none remembered), then is accepted."""
    verifier = make_verifier(refusal_cache_seconds=3600.0)
    await verifier.verify(issuer.sign(), audience=SHOPPING)
    junk = await _refusal(verifier, make_token(SigningKey.es384("attacker-kid", index=7)))
    issuer.keys = [NEW_KEY, ES384]
    clock.advance(2)
    token = make_token(NEW_KEY)
    during = [await _refusal(verifier, token) for _ in range(2)]
    remembered = verifier.refusal_cache_len
    clock.advance(counting_key_set.policy.cooldown - 2)
    accepted = await verifier.verify(token, audience=SHOPPING)
    assert (junk.reason, [type(r) for r in during], remembered, accepted.subject) == (
        "unknown_kid",
        [KeysUnavailable] * 2,
        0,
        "user-alice",
    )


async def test_outage_refusal_is_not_remembered(
    issuer: FakeIssuer,
    make_verifier: MakeVerifier,
    counting_key_set: CountingKeySet,
    clock: FakeClock,
) -> None:
    """While the issuer is down a token of a new kid gets 503s, never remembered; once the
    issuer is back and publishes the kid, the same token is accepted."""
    verifier = make_verifier()
    await verifier.verify(issuer.sign(), audience=SHOPPING)  # keys loaded before the outage
    issuer.jwks_response = httpx.Response(503)
    token = make_token(NEW_KEY)
    refusals = [await _refusal(verifier, token) for _ in range(3)]
    remembered = verifier.refusal_cache_len
    issuer.jwks_response = None
    issuer.keys = [ES384, NEW_KEY]
    clock.advance(counting_key_set.policy.cooldown)
    accepted = await verifier.verify(token, audience=SHOPPING)
    assert ([type(r) for r in refusals], remembered, accepted.subject) == (
        [KeysUnavailable] * 3,
        0,
        "user-alice",
    )


async def test_no_usable_keys_is_not_remembered(
    issuer: FakeIssuer, make_verifier: MakeVerifier, clock: FakeClock
) -> None:
    """With no key set at all (issuer down from the start) a valid token gets 503; once the
    issuer answers, the same token is accepted."""
    verifier = make_verifier()
    issuer.jwks_response = httpx.Response(500)
    token = issuer.sign()
    refused = await _refusal(verifier, token)
    remembered = verifier.refusal_cache_len
    issuer.jwks_response = None
    clock.advance(30)
    accepted = await verifier.verify(token, audience=SHOPPING)
    assert (type(refused), remembered, accepted.subject) == (KeysUnavailable, 0, "user-alice")


async def test_refusal_is_rechecked_when_the_kid_gets_other_key_material(
    issuer: FakeIssuer,
    make_verifier: MakeVerifier,
    counting_key_set: CountingKeySet,
    clock: FakeClock,
    signature_checks: SignatureChecks,
) -> None:
    """A token refused against the key then published under its kid is checked again once the
    issuer publishes other key material under that kid (a new key object) — here the key that
    really signed it, so it is accepted. A refresh that republishes the same key keeps the
    refusal (the key object is unchanged)."""
    verifier = make_verifier(refusal_cache_seconds=3600.0)
    token = make_token(ATTACKER_ES384)  # kid of ES384, other private key
    await _refusal(verifier, token)
    clock.advance(counting_key_set.policy.refresh_interval)
    await counting_key_set.refresh()  # same JWKS: same key object
    await _refusal(verifier, token)
    after_same_keys = signature_checks.calls
    issuer.keys = [ATTACKER_ES384]
    clock.advance(counting_key_set.policy.refresh_interval)
    await counting_key_set.refresh()
    accepted = await verifier.verify(token, audience=SHOPPING)
    assert (after_same_keys, signature_checks.calls, accepted.subject, verifier.cache_len) == (
        1,
        2,
        "user-alice",
        1,
    )


@pytest.mark.parametrize(
    "build",
    [
        pytest.param(lambda: make_token(ATTACKER_ES384), id="forged"),
        pytest.param(lambda: make_token(ES384, iss="https://evil.test/oidc"), id="wrong-issuer"),
        pytest.param(lambda: make_token(ES384, exp=NOW - 60), id="expired"),
    ],
)
async def test_refusal_is_dropped_when_its_key_leaves_the_key_set(
    issuer: FakeIssuer,
    make_verifier: MakeVerifier,
    clock: FakeClock,
    signature_checks: SignatureChecks,
    build: Build,
) -> None:
    """After a rotation that no longer publishes the kid, a remembered refusal is not replayed:
    the token is decided afresh (unknown kid), like a cached verified token."""
    verifier = make_verifier(refusal_cache_seconds=3600.0)
    token = build()
    await _refusal(verifier, token)
    await _refusal(verifier, token)
    replayed_checks = signature_checks.calls
    issuer.keys = [NEW_KEY]
    clock.advance(verifier.keys.policy.cooldown)
    await verifier.keys.refresh()
    after_rotation = await _refusal(verifier, token)
    assert (replayed_checks, after_rotation.reason, verifier.refusal_cache_len) == (
        1,
        "unknown_kid",
        0,
    )


# -- what is never cached -------------------------------------------------------------------------


def _header_only(header_value: object) -> str:
    return f"{b64json(header_value)}.{b64json(claims())}.AAAA"


@pytest.mark.parametrize(
    ("build", "reason"),
    [
        pytest.param(lambda: "not-a-jwt", "malformed", id="malformed"),
        pytest.param(lambda: "a" * 9000, "oversized", id="oversized"),
        pytest.param(lambda: "A.e30.AAAA", "bad_base64", id="bad-base64"),
        pytest.param(lambda: "bm90anNvbg.e30.AAAA", "bad_json", id="bad-json"),
        pytest.param(lambda: _header_only([1]), "malformed_header", id="header-not-object"),
        pytest.param(lambda: _header_only(header(ES384, typ="JWT")), "wrong_typ", id="wrong-typ"),
        pytest.param(
            lambda: _header_only(header(ES384, alg="HS256")), "algorithm_refused", id="hs256"
        ),
        pytest.param(lambda: _header_only(header(ES384, kid=None)), "bad_kid", id="no-kid"),
    ],
)
async def test_structural_refusals_are_not_remembered(
    issuer: FakeIssuer,
    make_verifier: MakeVerifier,
    counting_key_set: CountingKeySet,
    build: Build,
    reason: str,
) -> None:
    """Tokens refused before any key is looked up (cheap to refuse again) take no room."""
    verifier = make_verifier()
    token = build()
    reasons = [(await _refusal(verifier, token)).reason for _ in range(2)]
    assert (reasons, verifier.refusal_cache_len, counting_key_set.get_key_calls) == (
        [reason] * 2,
        0,
        0,
    )


# -- bounds and switches --------------------------------------------------------------------------


async def test_refusal_cache_is_bounded_first_in_first_out(
    issuer: FakeIssuer, make_verifier: MakeVerifier, signature_checks: SignatureChecks
) -> None:
    """Five distinct forgeries leave three remembered, never more; the newest is answered from
    the cache, the oldest was evicted and costs a new check."""
    verifier = make_verifier(refusal_cache_size=3)
    tokens = [make_token(ATTACKER_ES384, sub=f"user-{n}") for n in range(5)]
    sizes = []
    for token in tokens:
        await _refusal(verifier, token)
        sizes.append(verifier.refusal_cache_len)
    await _refusal(verifier, tokens[-1])
    after_newest = signature_checks.calls
    await _refusal(verifier, tokens[0])
    assert (sizes, after_newest, signature_checks.calls, verifier.refusal_cache_len) == (
        [1, 2, 3, 3, 3],
        5,
        6,
        3,
    )


async def test_forgeries_do_not_evict_verified_tokens(
    issuer: FakeIssuer, make_verifier: MakeVerifier, signature_checks: SignatureChecks
) -> None:
    """Refusals have their own bound: a flood of forged tokens leaves a verified token cached."""
    verifier = make_verifier(cache_size=2, refusal_cache_size=2)
    valid = issuer.sign()
    await verifier.verify(valid, audience=SHOPPING)
    for n in range(4):
        await _refusal(verifier, make_token(ATTACKER_ES384, sub=f"user-{n}"))
    await verifier.verify(valid, audience=SHOPPING)
    assert (signature_checks.calls, verifier.cache_len, verifier.refusal_cache_len) == (5, 1, 2)


@pytest.mark.parametrize(
    "policy",
    [
        pytest.param({"refusal_cache_size": 0}, id="size-zero"),
        pytest.param({"refusal_cache_seconds": 0.0}, id="seconds-zero"),
    ],
)
async def test_refusal_cache_can_be_disabled(
    issuer: FakeIssuer,
    make_verifier: MakeVerifier,
    signature_checks: SignatureChecks,
    policy: dict[str, Any],
) -> None:
    """With a zero size or lifetime every presentation of a forged token is checked in full."""
    verifier = make_verifier(**policy)
    token = make_token(ATTACKER_ES384)
    reasons = [(await _refusal(verifier, token)).reason for _ in range(3)]
    assert (reasons, signature_checks.calls, verifier.refusal_cache_len) == (
        ["bad_signature"] * 3,
        3,
        0,
    )
