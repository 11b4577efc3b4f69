"""Property tests: whatever arrives, the core answers with a token or one of our errors.

Deterministic (``derandomize``, no example database) and bounded, so a failure reproduces on
every run and the suite's duration does not drift.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from litestar_logto import (
    AccessToken,
    AuthError,
    InvalidRequest,
    InvalidToken,
    KeysUnavailable,
    MissingCredentials,
    TokenVerifier,
)
from litestar_logto.bearer import extract_bearer_token
from litestar_logto.keys import LOGTO_ALGORITHMS, VerificationKey, parse_key_set

from tests.resource_api.auth.forge import ES256, ES384, RS256, signed, with_signature
from tests.support import (
    ISSUER,
    NOW,
    SHOPPING,
    FakeIssuer,
    SigningKey,
    b64url,
    claims,
    header,
    make_token,
)

_TOKEN68 = re.compile(r"[A-Za-z0-9\-._~+/]+=*")
_SETTINGS = settings(
    derandomize=True,
    database=None,
    deadline=None,
    max_examples=300,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

_json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
)
_json_values = st.recursive(
    _json_scalars,
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3)
    ),
    max_leaves=8,
)


_EXTRACTION_ERRORS = {MissingCredentials, InvalidRequest, InvalidToken}


def _extract(value: str) -> str | AuthError:
    try:
        return extract_bearer_token([value])
    except AuthError as error:
        return error


async def _verify(verifier: TokenVerifier, token: str) -> AccessToken | AuthError:
    try:
        return await verifier.verify(token, audience=SHOPPING)
    except AuthError as error:
        return error


# -- the Authorization header --------------------------------------------------------------------

_header_values = (
    st.text(max_size=200)
    | st.text(alphabet=st.characters(max_codepoint=0xFF), max_size=200)
    | st.builds(
        lambda scheme, rest: f"{scheme} {rest}",
        st.sampled_from(["Bearer", "bearer"]),
        st.text(max_size=100),
    )
)


@_SETTINGS
@given(value=_header_values)
def test_any_authorization_value_gives_a_token68_or_our_error(value: str) -> None:
    """Any header value yields one token68 taken from it, or an RFC 6750 error of ours."""
    outcome = _extract(value)
    if isinstance(outcome, AuthError):
        assert type(outcome) in _EXTRACTION_ERRORS
    else:
        assert (_TOKEN68.fullmatch(outcome) is not None, outcome in value, len(outcome)) == (
            True,
            True,
            min(len(outcome), 8192),
        )


# -- raw token text --------------------------------------------------------------------------------

_segments = st.binary(max_size=120).map(b64url)
_token_text = (
    st.text(max_size=300)
    | st.text(
        alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.", max_size=300
    )
    | st.lists(_segments, min_size=1, max_size=6).map(".".join)
    | st.binary(max_size=300).map(lambda raw: raw.decode("latin-1"))
)


@_SETTINGS
@given(token=_token_text)
async def test_any_text_as_token_is_an_access_token_or_our_error(
    issuer: FakeIssuer, verifier: TokenVerifier, token: str
) -> None:
    """No string makes the verifier raise anything but one of our errors."""
    outcome = await _verify(verifier, token)
    assert type(outcome) in {AccessToken, InvalidToken}  # the issuer is up: never a 503


# -- arbitrary signatures over a valid token -----------------------------------------------------


@_SETTINGS
@given(
    key=st.sampled_from([ES384, ES256, RS256]),
    signature=st.binary(min_size=1, max_size=600)
    | st.sampled_from([bytes(64), bytes(96), bytes(256), b"\xff" * 96, b"\x00" * 512]),
)
async def test_any_signature_bytes_are_a_clean_bad_signature(
    every_key_issuer: FakeIssuer, verifier: TokenVerifier, key: SigningKey, signature: bytes
) -> None:
    """Whatever bytes stand in for the signature of a well-formed token, PyJWT and
    cryptography answer through us: bad_signature, never an exception of theirs."""
    token = with_signature(make_token(key), signature)
    outcome = await _verify(verifier, token)
    assert (type(outcome), getattr(outcome, "reason", None)) == (InvalidToken, "bad_signature")


# -- structured header and payload ----------------------------------------------------------------

_header_fields = st.fixed_dictionaries(
    {},
    optional={
        "alg": st.sampled_from(["ES384", "ES256", "RS256", "none", "HS256"]) | _json_values,
        "typ": st.sampled_from(["at+jwt", "AT+JWT", "application/at+jwt", "JWT"]) | _json_values,
        "kid": st.sampled_from([ES384.kid, "other", ""]) | _json_values,
        "crit": _json_values,
        "jku": _json_values,
        "jwk": _json_values,
    },
)
_claim_fields = st.dictionaries(
    st.sampled_from(
        ["iss", "sub", "aud", "exp", "iat", "nbf", "client_id", "scope", "organization_id", "jti"]
    )
    | st.text(max_size=8),
    _json_values
    | st.sampled_from([ISSUER, SHOPPING, [SHOPPING], NOW, NOW + 10, "shopping:read", True]),
    max_size=4,
)


@_SETTINGS
@given(header_changes=_header_fields, claim_changes=_claim_fields, drop_header=st.booleans())
async def test_signed_tokens_with_any_header_and_claims(
    issuer: FakeIssuer,
    verifier: TokenVerifier,
    header_changes: dict[str, Any],
    claim_changes: dict[str, Any],
    drop_header: bool,
) -> None:
    """A really signed token with arbitrary header fields and claims is either refused with
    our error or accepted only when every rule holds."""
    header_value = header_changes if drop_header else {**header(ES384), **header_changes}
    payload = {**claims(), **claim_changes}
    token = signed(ES384, header_value, json.dumps(payload).encode())
    outcome = await _verify(verifier, token)
    if isinstance(outcome, KeysUnavailable):
        # Another made-up kid within the unknown-kid cooldown (the verifier lives across
        # examples): the issuer cannot be asked about it now, so it is a 503 to retry.
        assert outcome.reason == "unknown_kid_cooldown"
        assert header_value.get("kid") != ES384.kid
    elif isinstance(outcome, AuthError):
        assert type(outcome) is InvalidToken
    else:
        assert _obeys_every_rule(header_value, payload, outcome)


def _obeys_every_rule(
    header_value: dict[str, Any], payload: dict[str, Any], result: AccessToken
) -> bool:
    typ = header_value.get("typ")
    aud = payload.get("aud")
    return (
        header_value.get("alg") == "ES384"
        and header_value.get("kid") == ES384.kid
        and isinstance(typ, str)
        and typ.lower() in {"at+jwt", "application/at+jwt"}
        and "crit" not in header_value
        and payload.get("iss") == ISSUER
        and (aud == SHOPPING or (isinstance(aud, list) and SHOPPING in aud))
        and result.subject == payload.get("sub")
        and result.client_id == payload.get("client_id")
        and result.expires_at + 30 > NOW
        and result.issued_at <= NOW + 30
    )


# -- JWKS members --------------------------------------------------------------------------------

_jwk_members = st.dictionaries(
    st.sampled_from(
        [
            "kty",
            "crv",
            "x",
            "y",
            "n",
            "e",
            "d",
            "p",
            "q",
            "dp",
            "dq",
            "qi",
            "oth",
            "k",
            "kid",
            "alg",
            "use",
            "key_ops",
        ]
    ),
    _json_values
    | st.binary(max_size=70).map(b64url)
    | st.sampled_from(["EC", "RSA", "OKP", "P-384", "ES384", "sig"]),
    max_size=8,
)


@_SETTINGS
@given(
    members=_jwk_members,
    base=st.sampled_from(
        [
            {},
            ES384.public_jwk(kid="fuzz"),
            {"kty": "RSA", "kid": "fuzz", "n": "AQAB", "e": "AQAB"},
        ]
    ),
)
def test_any_jwk_is_a_key_or_skipped(members: dict[str, Any], base: dict[str, Any]) -> None:
    """Whatever a JWKS entry holds, parsing keeps it as a key or skips it; nothing raises."""
    keys = parse_key_set({"keys": [{**base, **members}]}, LOGTO_ALGORITHMS)
    assert all(isinstance(key, VerificationKey) for key in keys.values())


@pytest.mark.parametrize(
    ("document", "kids"),
    [
        pytest.param({"keys": [None, 1, "x", [], {}]}, [], id="junk-entries"),
        pytest.param({"keys": [ES384.public_jwk()] * 3}, [ES384.kid], id="duplicate-kids"),
    ],
)
def test_junk_key_set_entries_are_skipped(document: dict[str, Any], kids: list[str]) -> None:
    """Entries that are not JWK objects, and repeated kids, are skipped one by one."""
    assert sorted(parse_key_set(document, LOGTO_ALGORITHMS)) == kids
