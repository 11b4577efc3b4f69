"""The verifier against hostile tokens: structure, encoding, header rules (RFC 8725), algorithm
confusion, forged signatures, claims, and the verified-token cache."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest
import respx
from litestar_logto import (
    LOGTO_ALGORITHMS,
    InvalidToken,
    RemoteKeySet,
    TokenVerifier,
    VerifierPolicy,
)
from litestar_logto.keys import validate_algorithms

from tests.resource_api.auth.conftest import SignatureChecks
from tests.resource_api.auth.forge import (
    ATTACKER_ES384,
    ES256,
    ES384,
    RS256,
    der_signature,
    hmac_token,
    nested_json,
    noncanonical_base64url,
    public_pem,
    segment,
    self_signed_certificate,
    signed,
    with_payload,
    with_signature,
)
from tests.support import (
    ENDPOINT,
    ISSUER,
    NOW,
    SHOPPING,
    STORE,
    FakeClock,
    FakeIssuer,
    SigningKey,
    b64json,
    b64url,
    claims,
    header,
    make_token,
)

Build = Callable[[], str]
EVIL = "https://evil.test"


def _es384(**header_overrides: Any) -> str:
    return make_token(ES384, header_overrides=header_overrides)


def _with_header(token: str, header_value: object) -> str:
    _, payload_part, signature_part = token.split(".")
    return f"{segment(header_value)}.{payload_part}.{signature_part}"


def _parts(token: str) -> list[str]:
    return token.split(".")


def _signature_bytes(token: str) -> bytes:
    value = token.rsplit(".", 1)[1]
    return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))


def _alg_none_token(alg: str) -> str:
    """An ``alg: none`` token with a non-empty, meaningless signature segment."""
    return f"{b64json(header(ES384, alg=alg))}.{b64json(claims())}.{b64url(b'x')}"


def _signature_twice(token: str) -> str:
    """A real signature repeated twice: the right prefix, the wrong length."""
    return with_signature(token, _signature_bytes(token) * 2)


def _der_signed(token: str) -> str:
    """A valid ECDSA signature, DER-encoded where JWS wants the raw r || s."""
    return with_signature(token, der_signature(ES384, token))


def _nested_header_token(header_json: bytes) -> str:
    """A token whose header is ``header_json`` (the header is decoded first)."""
    return f"{b64url(header_json)}.e30.AA"


def _noncanonical_signature(token: str) -> str:
    """The same signature bytes spelled with non-zero unused bits."""
    header_part, payload_part, signature_part = token.split(".")
    return f"{header_part}.{payload_part}.{noncanonical_base64url(signature_part)}"


# -- accepted ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "build",
    [
        pytest.param(lambda: make_token(ES384), id="es384-logto-default"),
        pytest.param(lambda: make_token(RS256), id="rs256-rsa-2048"),
        pytest.param(lambda: make_token(ES256), id="es256-p256"),
        pytest.param(lambda: _es384(typ="AT+JWT"), id="typ-upper-case"),
        pytest.param(lambda: _es384(typ="at+JWT"), id="typ-mixed-case"),
        pytest.param(lambda: _es384(typ="application/at+jwt"), id="typ-full-media-type"),
        pytest.param(lambda: _es384(typ="Application/AT+JWT"), id="typ-full-media-type-case"),
        pytest.param(lambda: _es384(jku=f"{EVIL}/jwks"), id="jku-ignored-when-kid-known"),
        pytest.param(lambda: _es384(x5u=f"{EVIL}/cert.pem"), id="x5u-ignored-when-kid-known"),
        pytest.param(
            lambda: _es384(jwk=ATTACKER_ES384.public_jwk()), id="jwk-ignored-when-signed-by-issuer"
        ),
        pytest.param(lambda: _es384(cty="JWT", zip=None), id="unknown-non-critical-header"),
        pytest.param(
            lambda: make_token(ES384, aud=[STORE, SHOPPING]), id="aud-list-containing-ours"
        ),
        pytest.param(lambda: make_token(ES384, exp=NOW + 3600.5), id="exp-float"),
        pytest.param(lambda: make_token(ES384, exp=2**70), id="exp-huge-int"),
        pytest.param(lambda: make_token(ES384, exp=NOW - 29), id="expired-within-leeway"),
        pytest.param(lambda: make_token(ES384, iat=NOW + 30), id="iat-future-within-leeway"),
        pytest.param(lambda: make_token(ES384, sub="alice\x00"), id="nul-in-string"),
        pytest.param(
            lambda: signed(ES384, header(ES384), {**claims(), "sub": "a", "sub ": "b"}),
            id="look-alike-claim-names",
        ),
    ],
)
async def test_valid_tokens_are_accepted(
    every_key_issuer: FakeIssuer, verifier: TokenVerifier, build: Build
) -> None:
    """Well-signed Logto tokens verify, with every legal variant of header and claims."""
    token = await verifier.verify(build(), audience=SHOPPING)
    assert (token.client_id, token.has_audience(SHOPPING)) == ("client-app", True)


async def test_verified_claims_come_from_the_token(
    every_key_issuer: FakeIssuer, verifier: TokenVerifier
) -> None:
    """The AccessToken carries the token's own subject, scopes and organization."""
    raw = make_token(RS256, sub="user-bob", scope="store:read", organization_id="org-9")
    token = await verifier.verify(raw, audience=SHOPPING)
    assert (token.subject, token.scopes, token.organization_id) == (
        "user-bob",
        frozenset({"store:read"}),
        "org-9",
    )


# -- refused -------------------------------------------------------------------------------------

_NO_ALG = {"typ": "at+jwt", "kid": ES384.kid}


@pytest.mark.parametrize(
    ("build", "reason"),
    [
        # structure and size
        pytest.param(lambda: "", "malformed", id="empty"),
        pytest.param(lambda: ".".join(_parts(make_token())[:2]), "malformed", id="two-segments"),
        pytest.param(lambda: make_token() + ".e30", "malformed", id="four-segments"),
        pytest.param(
            lambda: ".".join([b64json({"alg": "RSA-OAEP", "enc": "A256GCM"}), *"abcd"]),
            "malformed",
            id="jwe-five-segments",
        ),
        pytest.param(lambda: "..", "malformed", id="only-dots"),
        pytest.param(lambda: ".".join(_parts(make_token())[:2]) + ".", "malformed", id="no-sig"),
        pytest.param(lambda: "." + make_token().split(".", 1)[1], "malformed", id="no-header"),
        pytest.param(lambda: " " + make_token(), "malformed", id="leading-space"),
        pytest.param(lambda: make_token() + "\n", "malformed", id="trailing-newline"),
        pytest.param(lambda: make_token()[:-1] + "+", "malformed", id="plus-not-minus"),
        pytest.param(lambda: make_token() + "==", "malformed", id="padding"),
        pytest.param(lambda: make_token() + "\u00e9", "malformed", id="non-ascii"),
        pytest.param(lambda: make_token() + "\ud800", "malformed", id="lone-surrogate-char"),
        pytest.param(lambda: "a" * 8193, "oversized", id="oversized"),
        # encoding of the segments
        pytest.param(lambda: "AAAAA.e30.AA", "bad_base64", id="header-length-mod-4-is-1"),
        pytest.param(
            lambda: ".".join([noncanonical_base64url(_parts(make_token())[0]), "e30", "AA"]),
            "bad_base64",
            id="header-noncanonical-base64",
        ),
        pytest.param(
            lambda: ".".join([*_parts(make_token())[:2], "A"]),
            "bad_base64",
            id="signature-length-mod-4-is-1",
        ),
        pytest.param(
            lambda: _noncanonical_signature(make_token(RS256)),
            "bad_base64",
            id="signature-noncanonical-base64-rs256",
        ),
        pytest.param(
            lambda: _noncanonical_signature(make_token(ES256)),
            "bad_base64",
            id="signature-noncanonical-base64-es256",
        ),
        pytest.param(lambda: _with_header(make_token(), b"not json"), "bad_json", id="header-text"),
        pytest.param(lambda: _with_header(make_token(), b""), "malformed", id="header-empty"),
        pytest.param(
            lambda: _with_header(make_token(), b'{"alg":"ES384"'), "bad_json", id="header-truncated"
        ),
        pytest.param(
            lambda: _with_header(make_token(), b'{"alg":"\xff"}'), "bad_json", id="header-not-utf8"
        ),
        pytest.param(
            lambda: _with_header(make_token(), b'{"alg":"\xed\xa0\x80"}'),
            "bad_json",
            id="header-utf8-surrogate",
        ),
        pytest.param(
            lambda: _with_header(make_token(), b'{"alg":"\\ud800"}'),
            "bad_json",
            id="header-escaped-lone-surrogate",
        ),
        pytest.param(
            lambda: _with_header(make_token(), b'{"alg":"ES384"} x'),
            "bad_json",
            id="header-trailing-garbage",
        ),
        pytest.param(
            lambda: _nested_header_token(nested_json(3000)),
            "bad_json",
            id="header-3000-nested-arrays",
        ),
        pytest.param(
            lambda: _nested_header_token(nested_json(1200, opener=b'{"":', closer=b"}")),
            "bad_json",
            id="header-1200-nested-objects",
        ),
        pytest.param(
            lambda: _with_header(make_token(), {**header(ES384), "x": 1e400}),
            "bad_json",
            id="header-number-out-of-range",
        ),
        pytest.param(
            lambda: _with_header(make_token(), [header(ES384)]),
            "malformed_header",
            id="header-list",
        ),
        pytest.param(
            lambda: _with_header(make_token(), "ES384"), "malformed_header", id="header-string"
        ),
        pytest.param(lambda: _with_header(make_token(), 1), "malformed_header", id="header-number"),
        pytest.param(
            lambda: _with_header(make_token(), None), "malformed_header", id="header-null"
        ),
        pytest.param(
            lambda: with_payload(make_token(), b"not json"), "bad_json", id="payload-text"
        ),
        pytest.param(
            lambda: with_payload(make_token(), nested_json(3000)),
            "bad_json",
            id="payload-3000-nested-arrays",
        ),
        pytest.param(
            lambda: with_payload(make_token(), b'{"sub":"\\udc00"}'),
            "bad_json",
            id="payload-escaped-lone-surrogate",
        ),
        pytest.param(
            lambda: signed(ES384, header(ES384), b'{"exp":1e400}'),
            "bad_json",
            id="payload-exp-1e400",
        ),
        pytest.param(
            lambda: signed(ES384, header(ES384), b'{"sub":"\xc3"}'),
            "bad_json",
            id="payload-not-utf8",
        ),
        pytest.param(
            lambda: signed(ES384, header(ES384), [claims()]),
            "malformed_payload",
            id="payload-list",
        ),
        pytest.param(
            lambda: signed(ES384, header(ES384), "claims"), "malformed_payload", id="payload-string"
        ),
        pytest.param(
            lambda: signed(ES384, header(ES384), 42), "malformed_payload", id="payload-number"
        ),
        pytest.param(
            lambda: signed(ES384, header(ES384), None), "malformed_payload", id="payload-null"
        ),
        # algorithm: never from the token (RFC 8725 §3.1)
        pytest.param(
            lambda: f"{b64json(header(ES384, alg='none'))}.{b64json(claims())}.",
            "malformed",
            id="alg-none-unsigned",
        ),
        pytest.param(
            lambda: _alg_none_token("none"), "algorithm_refused", id="alg-none-with-signature"
        ),
        pytest.param(lambda: _alg_none_token("None"), "algorithm_refused", id="alg-None"),
        pytest.param(lambda: _alg_none_token("NONE"), "algorithm_refused", id="alg-NONE"),
        pytest.param(
            lambda: hmac_token(public_pem(ES384), "HS256"),
            "algorithm_refused",
            id="hs256-public-pem-as-secret",
        ),
        pytest.param(
            lambda: hmac_token(public_pem(RS256), "HS256", kid=RS256.kid),
            "algorithm_refused",
            id="hs256-rsa-pem-as-secret",
        ),
        pytest.param(
            lambda: hmac_token(json.dumps(ES384.public_jwk()).encode(), "HS256"),
            "algorithm_refused",
            id="hs256-public-jwk-as-secret",
        ),
        pytest.param(
            lambda: hmac_token(public_pem(ES384), "HS384"), "algorithm_refused", id="hs384"
        ),
        pytest.param(
            lambda: hmac_token(public_pem(ES384), "HS512"), "algorithm_refused", id="hs512"
        ),
        pytest.param(lambda: _es384(alg=None), "algorithm_refused", id="alg-missing"),
        pytest.param(lambda: _es384(alg=["ES384"]), "algorithm_refused", id="alg-list"),
        pytest.param(lambda: _es384(alg="es384"), "algorithm_refused", id="alg-lower-case"),
        pytest.param(lambda: _es384(alg="ES384 "), "algorithm_refused", id="alg-trailing-space"),
        pytest.param(
            lambda: make_token(RS256, header_overrides={"alg": "PS256"}, sign_alg="PS256"),
            "algorithm_refused",
            id="ps256-not-in-allow-list",
        ),
        pytest.param(lambda: _es384(alg="EdDSA"), "algorithm_refused", id="eddsa-not-allowed"),
        pytest.param(
            lambda: make_token(ES384, header_overrides={"alg": "ES256"}, sign_alg="ES256"),
            "algorithm_key_mismatch",
            id="es256-header-on-p384-key",
        ),
        pytest.param(
            lambda: make_token(ES384, header_overrides={"alg": "ES512"}),
            "algorithm_key_mismatch",
            id="es512-header-on-p384-key",
        ),
        pytest.param(
            lambda: make_token(ES384, header_overrides={"alg": "RS256"}),
            "algorithm_key_mismatch",
            id="rs256-header-on-ec-key",
        ),
        pytest.param(
            lambda: make_token(RS256, header_overrides={"alg": "ES384"}),
            "algorithm_key_mismatch",
            id="es384-header-on-rsa-key",
        ),
        pytest.param(
            lambda: make_token(ES256, header_overrides={"alg": "ES384"}),
            "algorithm_key_mismatch",
            id="es384-header-on-p256-key",
        ),
        # signatures
        pytest.param(
            lambda: with_signature(make_token(), bytes(96)), "bad_signature", id="ecdsa-r-s-zero"
        ),
        pytest.param(
            lambda: with_signature(make_token(ES256), bytes(64)),
            "bad_signature",
            id="ecdsa-r-s-zero-p256",
        ),
        pytest.param(
            lambda: with_signature(make_token(), b"\xff" * 96), "bad_signature", id="ecdsa-ones"
        ),
        pytest.param(
            lambda: with_signature(make_token(), bytes(95)), "bad_signature", id="ecdsa-95-bytes"
        ),
        pytest.param(
            lambda: with_signature(make_token(), bytes(97)), "bad_signature", id="ecdsa-97-bytes"
        ),
        pytest.param(
            lambda: with_signature(make_token(), b"\x00"), "bad_signature", id="ecdsa-one-byte"
        ),
        pytest.param(
            lambda: _signature_twice(make_token()), "bad_signature", id="ecdsa-signature-twice"
        ),
        pytest.param(
            lambda: _der_signed(make_token()), "bad_signature", id="ecdsa-der-instead-of-raw"
        ),
        pytest.param(
            lambda: with_signature(make_token(RS256), bytes(256)), "bad_signature", id="rsa-zeros"
        ),
        pytest.param(
            lambda: with_signature(make_token(RS256), b"\x01"), "bad_signature", id="rsa-short"
        ),
        pytest.param(
            lambda: make_token(ATTACKER_ES384), "bad_signature", id="attacker-key-issuer-kid"
        ),
        pytest.param(
            lambda: make_token(SigningKey.rs256(kid=RS256.kid, index=5)),
            "bad_signature",
            id="attacker-rsa-key-issuer-kid",
        ),
        pytest.param(
            lambda: make_token(
                ATTACKER_ES384, header_overrides={"jwk": ATTACKER_ES384.public_jwk()}
            ),
            "bad_signature",
            id="embedded-jwk-issuer-kid",
        ),
        pytest.param(
            lambda: make_token(
                SigningKey.es384("attacker", index=7),
                header_overrides={"jwk": ATTACKER_ES384.public_jwk(kid="attacker")},
            ),
            "unknown_kid",
            id="embedded-jwk-own-kid",
        ),
        pytest.param(
            lambda: make_token(
                ATTACKER_ES384, header_overrides={"x5c": [self_signed_certificate(ATTACKER_ES384)]}
            ),
            "bad_signature",
            id="x5c-attacker-certificate",
        ),
        pytest.param(
            lambda: with_payload(make_token(), claims(sub="user-admin")),
            "bad_signature",
            id="payload-tampered",
        ),
        pytest.param(
            lambda: _with_header(make_token(), header(ES384, typ="application/at+jwt")),
            "bad_signature",
            id="header-tampered",
        ),
        pytest.param(
            lambda: with_signature(make_token(), _signature_bytes(make_token(RS256))),
            "bad_signature",
            id="signature-of-another-token",
        ),
        # header rules
        pytest.param(lambda: _es384(crit=["exp"]), "crit_header", id="crit"),
        pytest.param(lambda: _es384(crit=[]), "crit_header", id="crit-empty"),
        pytest.param(lambda: _es384(typ=None), "wrong_typ", id="typ-missing"),
        pytest.param(lambda: _es384(typ="JWT"), "wrong_typ", id="typ-JWT-id-token"),
        pytest.param(lambda: _es384(typ="jwt"), "wrong_typ", id="typ-jwt"),
        pytest.param(lambda: _es384(typ="application/jwt"), "wrong_typ", id="typ-application-jwt"),
        pytest.param(lambda: _es384(typ="at+jwt "), "wrong_typ", id="typ-trailing-space"),
        pytest.param(lambda: _es384(typ="logout+jwt"), "wrong_typ", id="typ-logout-token"),
        pytest.param(lambda: _es384(typ=["at+jwt"]), "wrong_typ", id="typ-list"),
        pytest.param(lambda: _es384(typ=1), "wrong_typ", id="typ-number"),
        pytest.param(lambda: _es384(kid=None), "bad_kid", id="kid-missing"),
        pytest.param(lambda: _es384(kid=1), "bad_kid", id="kid-number"),
        pytest.param(lambda: _es384(kid=""), "bad_kid", id="kid-empty"),
        pytest.param(lambda: _es384(kid=[ES384.kid]), "bad_kid", id="kid-list"),
        pytest.param(lambda: _es384(kid={"kid": ES384.kid}), "bad_kid", id="kid-object"),
        pytest.param(lambda: _es384(kid="k" * 257), "bad_kid", id="kid-257-chars"),
        pytest.param(lambda: _es384(kid="k" * 256), "unknown_kid", id="kid-256-chars-unknown"),
        pytest.param(lambda: _es384(kid="unknown"), "unknown_kid", id="kid-unknown"),
        pytest.param(lambda: _es384(kid="../../x"), "unknown_kid", id="kid-path-traversal"),
        pytest.param(lambda: _es384(kid="' OR 1=1 --"), "unknown_kid", id="kid-sql-injection"),
        pytest.param(lambda: _es384(kid="es384-1\x00"), "unknown_kid", id="kid-nul-suffix"),
        pytest.param(lambda: _es384(kid="ES384-1"), "unknown_kid", id="kid-case"),
        pytest.param(lambda: _es384(kid="__proto__"), "unknown_kid", id="kid-proto"),
        # claims, through the whole pipeline
        pytest.param(lambda: make_token(iss=f"{ISSUER}/"), "wrong_issuer", id="iss-trailing-slash"),
        pytest.param(lambda: make_token(iss="https://evil.test/oidc"), "wrong_issuer", id="iss"),
        pytest.param(lambda: make_token(aud=STORE), "wrong_audience", id="aud-other-api"),
        pytest.param(lambda: make_token(aud=[STORE]), "wrong_audience", id="aud-list-without"),
        pytest.param(lambda: make_token(aud=[]), "bad_aud", id="aud-empty-list"),
        pytest.param(lambda: make_token(aud=7), "bad_aud", id="aud-number"),
        pytest.param(lambda: make_token(aud=f"{SHOPPING}/"), "wrong_audience", id="aud-slash"),
        pytest.param(lambda: make_token(exp=None), "no_exp", id="exp-missing"),
        pytest.param(lambda: make_token(exp=NOW - 31), "expired", id="exp-past-beyond-leeway"),
        pytest.param(lambda: make_token(exp=True), "bad_exp", id="exp-bool"),
        pytest.param(lambda: make_token(exp="2100-01-01"), "bad_exp", id="exp-string"),
        pytest.param(lambda: make_token(exp=10**400), "bad_exp", id="exp-beyond-float"),
        pytest.param(lambda: make_token(iat=None), "no_iat", id="iat-missing"),
        pytest.param(lambda: make_token(iat=NOW + 31), "issued_in_future", id="iat-future"),
        pytest.param(lambda: make_token(nbf=NOW + 31), "not_yet_valid", id="nbf-future"),
        pytest.param(lambda: make_token(sub=None), "bad_sub", id="sub-missing"),
        pytest.param(lambda: make_token(sub=1), "bad_sub", id="sub-number"),
        pytest.param(lambda: make_token(client_id=None), "bad_client_id", id="client-id-missing"),
        pytest.param(lambda: make_token(client_id=[1]), "bad_client_id", id="client-id-list"),
        pytest.param(lambda: make_token(scope=["a"]), "bad_scope", id="scope-list"),
        pytest.param(lambda: make_token(organization_id=1), "bad_organization_id", id="org-number"),
    ],
)
async def test_hostile_tokens_are_refused(
    every_key_issuer: FakeIssuer, verifier: TokenVerifier, build: Build, reason: str
) -> None:
    """Each hostile or broken token is an invalid_token with the reason naming the flaw."""
    token = build()
    with pytest.raises(InvalidToken) as caught:
        await verifier.verify(token, audience=SHOPPING)
    assert (type(caught.value), caught.value.reason) == (InvalidToken, reason)


# -- duplicate members: the lexically last wins (RFC 7515 §4) ----------------------------------


def _duplicate_member(document: dict[str, Any], name: str, first: object) -> bytes:
    """``document`` as JSON with an extra, earlier ``name`` member holding ``first``."""
    body = json.dumps(document, separators=(",", ":"))
    return ("{" + json.dumps(name) + ":" + json.dumps(first) + "," + body[1:]).encode()


@pytest.mark.parametrize(
    ("build", "outcome"),
    [
        pytest.param(
            lambda: signed(ES384, _duplicate_member(header(ES384), "alg", "none"), claims()),
            "accepted",
            id="header-alg-none-then-es384",
        ),
        pytest.param(
            lambda: signed(
                ES384, _duplicate_member(header(ES384, alg="none"), "alg", "ES384"), claims()
            ),
            "algorithm_refused",
            id="header-alg-es384-then-none",
        ),
        pytest.param(
            lambda: signed(ES384, header(ES384), _duplicate_member(claims(), "aud", STORE)),
            "accepted",
            id="claims-aud-store-then-shopping",
        ),
        pytest.param(
            lambda: signed(
                ES384, header(ES384), _duplicate_member(claims(aud=STORE), "aud", SHOPPING)
            ),
            "wrong_audience",
            id="claims-aud-shopping-then-store",
        ),
    ],
)
async def test_duplicate_members_resolve_to_the_last(
    issuer: FakeIssuer, verifier: TokenVerifier, build: Build, outcome: str
) -> None:
    """With a repeated member only the lexically last one counts, as RFC 7515 §4 allows."""
    try:
        await verifier.verify(build(), audience=SHOPPING)
    except InvalidToken as error:
        result = error.reason
    else:
        result = "accepted"
    assert result == outcome


# -- refusals that cost no network ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("build", "reason"),
    [
        pytest.param(lambda: "abc", "malformed", id="malformed"),
        pytest.param(lambda: "AAAAA.e30.AA", "bad_base64", id="bad-base64"),
        pytest.param(lambda: _with_header(make_token(), b"{"), "bad_json", id="bad-json"),
        pytest.param(lambda: _with_header(make_token(), []), "malformed_header", id="header-list"),
        pytest.param(lambda: _alg_none_token("none"), "algorithm_refused", id="alg-none"),
        pytest.param(lambda: hmac_token(b"k", "HS256"), "algorithm_refused", id="hs256"),
        pytest.param(lambda: _es384(typ="JWT"), "wrong_typ", id="typ"),
        pytest.param(lambda: _es384(crit=["b64"]), "crit_header", id="crit"),
        pytest.param(lambda: _es384(kid=None), "bad_kid", id="kid"),
        pytest.param(lambda: with_payload(make_token(), b"["), "bad_json", id="payload-json"),
    ],
)
async def test_refused_before_any_key_fetch(
    issuer: FakeIssuer, verifier: TokenVerifier, build: Build, reason: str
) -> None:
    """A token refused on its structure or header never makes the verifier contact the issuer."""
    with pytest.raises(InvalidToken) as caught:
        await verifier.verify(build(), audience=SHOPPING)
    assert (caught.value.reason, issuer.discovery_route.call_count, issuer.jwks_fetches) == (
        reason,
        0,
        0,
    )


# -- keys named by the token are never fetched ---------------------------------------------------


@pytest.mark.parametrize(
    "field",
    [
        pytest.param("jku", id="jku"),
        pytest.param("x5u", id="x5u"),
    ],
)
async def test_key_urls_in_the_token_are_never_fetched(
    issuer: FakeIssuer, verifier: TokenVerifier, respx_router: respx.MockRouter, field: str
) -> None:
    """A ``jku``/``x5u`` naming the attacker's key set is ignored: only the issuer's JWKS counts
    (fetched cold, then once more for the unknown kid)."""
    attacker = SigningKey.es384("attacker", index=9)
    evil_route = respx_router.get(f"{EVIL}/keys").mock(
        return_value=httpx.Response(200, json={"keys": [attacker.public_jwk()]})
    )
    token = make_token(attacker, header_overrides={field: f"{EVIL}/keys"})
    with pytest.raises(InvalidToken) as caught:
        await verifier.verify(token, audience=SHOPPING)
    assert (caught.value.reason, evil_route.called, issuer.jwks_fetches) == (
        "unknown_kid",
        False,
        2,
    )


# -- the allow-list is configuration ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("build", "reason"),
    [
        pytest.param(lambda: make_token(RS256), "algorithm_refused", id="rs256-refused"),
        pytest.param(lambda: make_token(ES256), "algorithm_refused", id="es256-refused"),
    ],
)
async def test_allow_list_es384_only(
    every_key_issuer: FakeIssuer,
    key_set: RemoteKeySet,
    clock: FakeClock,
    build: Build,
    reason: str,
) -> None:
    """With only ES384 configured, tokens of the issuer's other keys are refused."""
    strict = TokenVerifier(key_set, algorithms=frozenset({"ES384"}), clock=clock)
    with pytest.raises(InvalidToken) as caught:
        await strict.verify(build(), audience=SHOPPING)
    assert caught.value.reason == reason


@pytest.fixture
def ps256_verifier(http_client: httpx.AsyncClient, clock: FakeClock) -> TokenVerifier:
    """A verifier (and key set) configured to allow PS256 besides Logto's algorithms."""
    allowed = LOGTO_ALGORITHMS | {"PS256"}
    keys = RemoteKeySet(ENDPOINT, http_client=http_client, algorithms=allowed, clock=clock)
    return TokenVerifier(keys, algorithms=allowed, clock=clock)


async def test_ps256_when_configured(
    every_key_issuer: FakeIssuer, ps256_verifier: TokenVerifier
) -> None:
    """An RSA key without ``alg`` verifies PS256 once the allow-list holds it."""
    token = make_token(RS256, header_overrides={"alg": "PS256"}, sign_alg="PS256")
    verified = await ps256_verifier.verify(token, audience=SHOPPING)
    assert verified.subject == "user-alice"


async def test_ps256_allowed_is_still_refused_on_an_ec_key(
    every_key_issuer: FakeIssuer, ps256_verifier: TokenVerifier
) -> None:
    """Allowing PS256 does not let it verify against an EC key."""
    token = make_token(ES384, header_overrides={"alg": "PS256"})
    with pytest.raises(InvalidToken) as caught:
        await ps256_verifier.verify(token, audience=SHOPPING)
    assert caught.value.reason == "algorithm_key_mismatch"


@pytest.mark.parametrize(
    "algorithms",
    [
        pytest.param(frozenset({"none"}), id="none"),
        pytest.param(frozenset({"HS256"}), id="hs256"),
        pytest.param(frozenset({"ES384", "HS512"}), id="hs512-mixed-in"),
        pytest.param(frozenset(), id="empty"),
    ],
)
def test_allow_list_refuses_symmetric_and_none(algorithms: frozenset[str]) -> None:
    """An allow-list holding ``none`` or an HMAC algorithm is a configuration error."""
    with pytest.raises(ValueError, match="allowed algorithms"):
        validate_algorithms(algorithms)


# -- deep nesting beyond the default size limit ----------------------------------------------------


@pytest.fixture
def roomy_verifier(key_set: RemoteKeySet, clock: FakeClock) -> TokenVerifier:
    """A verifier that lets 128 KiB tokens reach the JSON decoder."""
    return TokenVerifier(
        key_set,
        algorithms=LOGTO_ALGORITHMS,
        policy=VerifierPolicy(max_token_bytes=128 * 1024),
        clock=clock,
    )


@pytest.mark.parametrize(
    "build",
    [
        pytest.param(
            lambda: _with_header(make_token(), nested_json(10_000)), id="header-10000-arrays"
        ),
        pytest.param(
            lambda: _with_header(make_token(), nested_json(10_000, opener=b'{"":', closer=b"}")),
            id="header-10000-objects",
        ),
        pytest.param(
            lambda: with_payload(make_token(), nested_json(10_000)), id="payload-10000-arrays"
        ),
    ],
)
async def test_deep_nesting_is_a_clean_invalid_token(
    issuer: FakeIssuer, roomy_verifier: TokenVerifier, build: Build
) -> None:
    """10,000 levels of nesting give bad_json, never a RecursionError."""
    with pytest.raises(InvalidToken) as caught:
        await roomy_verifier.verify(build(), audience=SHOPPING)
    assert caught.value.reason == "bad_json"


# -- the verified-token cache ----------------------------------------------------------------------


async def test_repeated_token_verifies_its_signature_once(
    issuer: FakeIssuer, verifier: TokenVerifier, signature_checks: SignatureChecks
) -> None:
    """A token presented three times costs one signature check."""
    token = issuer.sign()
    for_each = [await verifier.verify(token, audience=SHOPPING) for _ in range(3)]
    assert (signature_checks.calls, len(set(for_each))) == (1, 1)


async def test_cached_token_past_exp_is_refused(
    issuer: FakeIssuer,
    verifier: TokenVerifier,
    clock: FakeClock,
    signature_checks: SignatureChecks,
) -> None:
    """The lifetime is checked again on a cache hit: an expired token is refused."""
    token = issuer.sign()
    await verifier.verify(token, audience=SHOPPING)
    clock.advance(3600 + verifier.policy.leeway)
    with pytest.raises(InvalidToken) as caught:
        await verifier.verify(token, audience=SHOPPING)
    assert (caught.value.reason, signature_checks.calls) == ("expired", 1)


async def test_cache_hit_still_checks_the_audience(
    issuer: FakeIssuer, verifier: TokenVerifier, signature_checks: SignatureChecks
) -> None:
    """A token cached for the shopping API is refused by the store API."""
    token = issuer.sign()
    await verifier.verify(token, audience=SHOPPING)
    with pytest.raises(InvalidToken) as caught:
        await verifier.verify(token, audience=STORE)
    assert (caught.value.reason, signature_checks.calls) == ("wrong_audience", 1)


@pytest.fixture
def small_cache_verifier(key_set: RemoteKeySet, clock: FakeClock) -> TokenVerifier:
    """A verifier that remembers three tokens."""
    return TokenVerifier(
        key_set, algorithms=LOGTO_ALGORITHMS, policy=VerifierPolicy(cache_size=3), clock=clock
    )


async def test_cache_is_bounded_first_in_first_out(
    issuer: FakeIssuer, small_cache_verifier: TokenVerifier, signature_checks: SignatureChecks
) -> None:
    """Five distinct tokens leave three cached; the oldest must be verified again."""
    tokens = [issuer.sign(sub=f"user-{n}") for n in range(5)]
    for token in tokens:
        await small_cache_verifier.verify(token, audience=SHOPPING)
    await small_cache_verifier.verify(tokens[-1], audience=SHOPPING)
    after_newest = signature_checks.calls
    await small_cache_verifier.verify(tokens[0], audience=SHOPPING)
    assert (small_cache_verifier.cache_len, after_newest, signature_checks.calls) == (3, 5, 6)


@pytest.fixture
def no_cache_verifier(key_set: RemoteKeySet, clock: FakeClock) -> TokenVerifier:
    """A verifier with the cache disabled."""
    return TokenVerifier(
        key_set, algorithms=LOGTO_ALGORITHMS, policy=VerifierPolicy(cache_size=0), clock=clock
    )


async def test_cache_size_zero_disables_the_cache(
    issuer: FakeIssuer, no_cache_verifier: TokenVerifier, signature_checks: SignatureChecks
) -> None:
    """``cache_size=0`` verifies every presentation."""
    token = issuer.sign()
    await no_cache_verifier.verify(token, audience=SHOPPING)
    await no_cache_verifier.verify(token, audience=SHOPPING)
    assert (signature_checks.calls, no_cache_verifier.cache_len) == (2, 0)


@pytest.mark.parametrize(
    ("build", "reason"),
    [
        pytest.param(lambda: make_token(ATTACKER_ES384), "bad_signature", id="bad-signature"),
        pytest.param(lambda: make_token(exp=NOW - 60), "expired", id="expired"),
        pytest.param(lambda: make_token(iss=f"{ISSUER}/"), "wrong_issuer", id="wrong-issuer"),
    ],
)
async def test_refused_tokens_never_enter_the_verified_cache(
    issuer: FakeIssuer,
    verifier: TokenVerifier,
    signature_checks: SignatureChecks,
    build: Build,
    reason: str,
) -> None:
    """A refused token never enters the verified cache; its replay is answered by the refusal
    cache (one signature check, same reason; see test_refusal_cache.py)."""
    token = build()
    with pytest.raises(InvalidToken):
        await verifier.verify(token, audience=SHOPPING)
    with pytest.raises(InvalidToken) as caught:
        await verifier.verify(token, audience=SHOPPING)
    assert (
        caught.value.reason,
        signature_checks.calls,
        verifier.cache_len,
        verifier.refusal_cache_len,
    ) == (reason, 1, 0, 1)


async def test_wrong_audience_token_is_cached_but_refused(
    issuer: FakeIssuer, verifier: TokenVerifier, signature_checks: SignatureChecks
) -> None:
    """A well-signed token for another API is refused every time without re-checking its
    signature (the audience is checked outside the cache)."""
    token = issuer.sign(aud=STORE)
    with pytest.raises(InvalidToken):
        await verifier.verify(token, audience=SHOPPING)
    with pytest.raises(InvalidToken) as caught:
        await verifier.verify(token, audience=SHOPPING)
    assert (caught.value.reason, signature_checks.calls) == ("wrong_audience", 1)


async def test_cached_token_is_dropped_when_its_key_leaves_the_key_set(
    issuer: FakeIssuer, verifier: TokenVerifier, key_set: RemoteKeySet, clock: FakeClock
) -> None:
    """After a refresh that no longer publishes the token's key, the cached token is refused."""
    token = issuer.sign()
    await verifier.verify(token, audience=SHOPPING)
    issuer.keys = [SigningKey.es384("es384-2", index=1)]
    clock.advance(key_set.policy.cooldown)
    await key_set.refresh()
    with pytest.raises(InvalidToken) as caught:
        await verifier.verify(token, audience=SHOPPING)
    assert (caught.value.reason, verifier.cache_len) == ("unknown_kid", 0)


async def test_cache_key_is_the_whole_token(
    issuer: FakeIssuer, verifier: TokenVerifier, signature_checks: SignatureChecks
) -> None:
    """A cached token does not vouch for a token that differs only in its signature."""
    token = issuer.sign()
    await verifier.verify(token, audience=SHOPPING)
    forged = with_signature(token, bytes(96))
    with pytest.raises(InvalidToken) as caught:
        await verifier.verify(forged, audience=SHOPPING)
    assert (caught.value.reason, signature_checks.calls) == ("bad_signature", 2)
