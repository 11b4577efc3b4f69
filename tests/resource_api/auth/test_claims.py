"""Claim rules (RFC 9068 profile as Logto issues it), checked without keys, network or clock."""

from __future__ import annotations

from typing import Any

import pytest
from litestar_logto import AccessToken, InvalidToken
from litestar_logto.claims import check_lifetime, parse_claims

from tests.support import ISSUER, NOW, SHOPPING, STORE, claims

LEEWAY = 30.0
HOUR = 3600


def _parsed(**overrides: Any) -> AccessToken:
    return parse_claims(claims(**overrides), issuer=ISSUER)


def test_logto_token_claims_are_exposed() -> None:
    """A typical Logto shopping token becomes an AccessToken with every claim typed."""
    token = _parsed(jti="jti-1", organization_id="org-1")
    assert (
        token.subject,
        token.client_id,
        token.audiences,
        token.scopes,
        token.expires_at,
        token.issued_at,
        token.not_before,
        token.organization_id,
        token.token_id,
    ) == (
        "user-alice",
        "client-app",
        (SHOPPING,),
        frozenset({"shopping:read", "shopping:write"}),
        NOW + HOUR,
        NOW,
        None,
        "org-1",
        "jti-1",
    )


@pytest.mark.parametrize(
    ("overrides", "attribute", "expected"),
    [
        pytest.param({"aud": [SHOPPING, STORE]}, "audiences", (SHOPPING, STORE), id="aud-list"),
        pytest.param({"aud": [STORE]}, "audiences", (STORE,), id="aud-list-of-one"),
        pytest.param({"scope": None}, "scopes", frozenset(), id="scope-absent-is-no-scopes"),
        pytest.param({"scope": ""}, "scopes", frozenset(), id="scope-empty"),
        pytest.param(
            {"scope": "  a   b  "}, "scopes", frozenset({"a", "b"}), id="scope-extra-spaces"
        ),
        pytest.param({"exp": NOW + 0.5}, "expires_at", NOW + 0.5, id="exp-float"),
        pytest.param({"exp": 2**70}, "expires_at", float(2**70), id="exp-huge-int"),
        pytest.param({"nbf": NOW}, "not_before", NOW, id="nbf-present"),
        pytest.param({"jti": None}, "token_id", None, id="jti-absent"),
        pytest.param({"organization_id": None}, "organization_id", None, id="org-absent"),
        pytest.param({"sub": "user\x00x"}, "subject", "user\x00x", id="sub-with-nul"),
        pytest.param({"sub": "\U0001f600"}, "subject", "\U0001f600", id="sub-astral"),
    ],
)
def test_claim_variants_are_accepted(
    overrides: dict[str, Any], attribute: str, expected: object
) -> None:
    """Legal variants of each claim parse to the expected value."""
    assert getattr(_parsed(**overrides), attribute) == expected


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        pytest.param({"iss": None}, "wrong_issuer", id="iss-missing"),
        pytest.param({"iss": f"{ISSUER}/"}, "wrong_issuer", id="iss-trailing-slash"),
        pytest.param({"iss": "https://evil.test/oidc"}, "wrong_issuer", id="iss-foreign"),
        pytest.param({"iss": ISSUER.upper()}, "wrong_issuer", id="iss-case"),
        pytest.param({"iss": ISSUER.removesuffix("/oidc")}, "wrong_issuer", id="iss-no-oidc"),
        pytest.param({"iss": [ISSUER]}, "wrong_issuer", id="iss-list"),
        pytest.param({"sub": None}, "bad_sub", id="sub-missing"),
        pytest.param({"sub": ""}, "bad_sub", id="sub-empty"),
        pytest.param({"sub": 42}, "bad_sub", id="sub-number"),
        pytest.param({"sub": ["user-alice"]}, "bad_sub", id="sub-list"),
        pytest.param({"client_id": None}, "bad_client_id", id="client-id-missing"),
        pytest.param({"client_id": 1}, "bad_client_id", id="client-id-number"),
        pytest.param({"client_id": {"id": "x"}}, "bad_client_id", id="client-id-object"),
        pytest.param({"aud": None}, "bad_aud", id="aud-missing"),
        pytest.param({"aud": ""}, "bad_aud", id="aud-empty-string"),
        pytest.param({"aud": []}, "bad_aud", id="aud-empty-list"),
        pytest.param({"aud": 1}, "bad_aud", id="aud-number"),
        pytest.param({"aud": [SHOPPING, 1]}, "bad_aud", id="aud-list-with-number"),
        pytest.param({"aud": [SHOPPING, ""]}, "bad_aud", id="aud-list-with-empty"),
        pytest.param({"aud": {"aud": SHOPPING}}, "bad_aud", id="aud-object"),
        pytest.param({"scope": 1}, "bad_scope", id="scope-number"),
        pytest.param({"scope": ["shopping:read"]}, "bad_scope", id="scope-list"),
        pytest.param({"scope": True}, "bad_scope", id="scope-bool"),
        pytest.param({"exp": None}, "no_exp", id="exp-missing"),
        pytest.param({"exp": True}, "bad_exp", id="exp-bool"),
        pytest.param({"exp": str(int(NOW) + HOUR)}, "bad_exp", id="exp-string"),
        pytest.param({"exp": [NOW + HOUR]}, "bad_exp", id="exp-list"),
        pytest.param({"exp": 10**400}, "bad_exp", id="exp-int-beyond-float"),
        pytest.param({"exp": float("inf")}, "bad_exp", id="exp-infinite"),
        pytest.param({"exp": float("nan")}, "bad_exp", id="exp-nan"),
        pytest.param({"iat": None}, "no_iat", id="iat-missing"),
        pytest.param({"iat": "now"}, "bad_iat", id="iat-string"),
        pytest.param({"iat": False}, "bad_iat", id="iat-bool"),
        pytest.param({"nbf": "soon"}, "bad_nbf", id="nbf-string"),
        pytest.param({"nbf": True}, "bad_nbf", id="nbf-bool"),
        pytest.param({"organization_id": 7}, "bad_organization_id", id="org-number"),
        pytest.param({"organization_id": ""}, "bad_organization_id", id="org-empty"),
        pytest.param({"organization_id": ["org-1"]}, "bad_organization_id", id="org-list"),
        pytest.param({"jti": 5}, "bad_jti", id="jti-number"),
    ],
)
def test_bad_claims_are_refused(overrides: dict[str, Any], reason: str) -> None:
    """Each missing, mistyped or foreign claim is an invalid_token with its own reason."""
    with pytest.raises(InvalidToken) as caught:
        _parsed(**overrides)
    assert caught.value.reason == reason


def test_explicit_null_organization_is_refused() -> None:
    """``"organization_id": null`` is present but not a string (``claims()`` drops None)."""
    payload = {**claims(), "organization_id": None}
    with pytest.raises(InvalidToken) as caught:
        parse_claims(payload, issuer=ISSUER)
    assert caught.value.reason == "bad_organization_id"


@pytest.mark.parametrize(
    "payload",
    [
        pytest.param([claims()], id="list"),
        pytest.param("claims", id="string"),
        pytest.param(42, id="number"),
        pytest.param(None, id="null"),
        pytest.param(True, id="bool"),
    ],
)
def test_payload_must_be_an_object(payload: object) -> None:
    """A payload that is not a JSON object is refused before any claim is read."""
    with pytest.raises(InvalidToken) as caught:
        parse_claims(payload, issuer=ISSUER)
    assert caught.value.reason == "malformed_payload"


@pytest.mark.parametrize(
    ("overrides", "now"),
    [
        pytest.param({}, NOW, id="fresh"),
        pytest.param({}, NOW + HOUR - 1, id="last-second"),
        pytest.param({}, NOW + HOUR + LEEWAY - 1, id="expired-within-leeway"),
        pytest.param({"iat": NOW + LEEWAY}, NOW, id="iat-future-within-leeway"),
        pytest.param({"nbf": NOW + LEEWAY}, NOW, id="nbf-future-within-leeway"),
        pytest.param({"nbf": NOW - 10}, NOW, id="nbf-past"),
        pytest.param({"exp": 2**62}, NOW, id="exp-far-future"),
    ],
)
def test_lifetime_accepts(overrides: dict[str, Any], now: float) -> None:
    """A token inside its lifetime (with the leeway) passes."""
    check_lifetime(_parsed(**overrides), now=now, leeway=LEEWAY)


@pytest.mark.parametrize(
    ("overrides", "now", "reason"),
    [
        pytest.param({}, NOW + HOUR + LEEWAY, "expired", id="expired-at-leeway-edge"),
        pytest.param({}, NOW + HOUR + LEEWAY + 1, "expired", id="expired-beyond-leeway"),
        pytest.param({"exp": NOW - 1}, NOW + LEEWAY, "expired", id="exp-in-the-past"),
        pytest.param({"exp": 0}, NOW, "expired", id="exp-epoch"),
        pytest.param({"exp": -(2**62)}, NOW, "expired", id="exp-negative"),
        pytest.param({"iat": NOW + LEEWAY + 1}, NOW, "issued_in_future", id="iat-future"),
        pytest.param(
            {"iat": NOW + 10 * HOUR, "exp": NOW + 11 * HOUR},
            NOW,
            "issued_in_future",
            id="iat-far-future",
        ),
        pytest.param({"nbf": NOW + LEEWAY + 1}, NOW, "not_yet_valid", id="nbf-future"),
        pytest.param(
            {"nbf": NOW + HOUR, "exp": NOW + 2 * HOUR}, NOW, "not_yet_valid", id="nbf-far-future"
        ),
    ],
)
def test_lifetime_refuses(overrides: dict[str, Any], now: float, reason: str) -> None:
    """An expired, not-yet-valid or future-issued token is refused with its reason."""
    token = _parsed(**overrides)
    with pytest.raises(InvalidToken) as caught:
        check_lifetime(token, now=now, leeway=LEEWAY)
    assert caught.value.reason == reason


def test_zero_leeway_is_exact() -> None:
    """With no leeway a token is expired at its ``exp`` second."""
    token = _parsed()
    with pytest.raises(InvalidToken) as caught:
        check_lifetime(token, now=NOW + HOUR, leeway=0)
    assert caught.value.reason == "expired"


def test_has_audience_is_exact() -> None:
    """``has_audience`` compares whole strings: no prefix or case match."""
    token = _parsed(aud=[SHOPPING])
    assert (
        token.has_audience(SHOPPING),
        token.has_audience(SHOPPING + "/"),
        token.has_audience(SHOPPING.upper()),
        token.has_audience("https://shopping.your-app.com"),
    ) == (True, False, False, False)


def test_access_token_repr_hides_raw_claims() -> None:
    """The raw claims (custom claims may be personal data) are kept out of ``repr``."""
    token = _parsed(email="alice@example.com")
    assert "alice@example.com" not in repr(token)
