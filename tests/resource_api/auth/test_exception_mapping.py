"""Every foreign exception the core can hit (httpx, msgspec, PyJWT, cryptography, binascii,
the interpreter) is translated once into our error and reason and never escapes (style.md
habit 3)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from litestar_logto import InvalidToken, KeysUnavailable, RemoteKeySet, TokenVerifier
from litestar_logto.keys import LOGTO_ALGORITHMS, parse_key_set

from tests.resource_api.auth.forge import ES384, RS256, nested_json, with_signature
from tests.support import (
    JWKS_URL,
    FakeIssuer,
    b64json,
    b64url,
    claims,
    discovery,
    header,
    make_token,
)

# -- httpx, while fetching keys --------------------------------------------------------------------

_TRANSPORT_ERRORS: list[tuple[type[httpx.RequestError], str]] = [
    (httpx.ConnectTimeout, "timeout"),
    (httpx.ReadTimeout, "timeout"),
    (httpx.WriteTimeout, "timeout"),
    (httpx.PoolTimeout, "timeout"),
    (httpx.TimeoutException, "timeout"),
    (httpx.ConnectError, "http_error_ConnectError"),
    (httpx.ReadError, "http_error_ReadError"),
    (httpx.WriteError, "http_error_WriteError"),
    (httpx.CloseError, "http_error_CloseError"),
    (httpx.NetworkError, "http_error_NetworkError"),
    (httpx.ProxyError, "http_error_ProxyError"),
    (httpx.UnsupportedProtocol, "http_error_UnsupportedProtocol"),
    (httpx.LocalProtocolError, "http_error_LocalProtocolError"),
    (httpx.RemoteProtocolError, "http_error_RemoteProtocolError"),
    (httpx.ProtocolError, "http_error_ProtocolError"),
    (httpx.TransportError, "http_error_TransportError"),
    (httpx.DecodingError, "http_error_DecodingError"),
    (httpx.TooManyRedirects, "http_error_TooManyRedirects"),
    (httpx.RequestError, "http_error_RequestError"),
]


def _subclasses(cls: type[BaseException]) -> set[type[BaseException]]:
    found = set(cls.__subclasses__())
    for sub in list(found):
        found |= _subclasses(sub)
    return found


def test_the_table_covers_every_httpx_request_error() -> None:
    """A new httpx exception class shows up here before it can reach a caller unmapped."""
    assert {cls for cls, _ in _TRANSPORT_ERRORS} == _subclasses(httpx.RequestError) | {
        httpx.RequestError
    }


@pytest.mark.parametrize(
    ("error", "reason"),
    [pytest.param(error, reason, id=error.__name__) for error, reason in _TRANSPORT_ERRORS],
)
async def test_transport_errors_on_the_jwks_become_keys_unavailable(
    issuer: FakeIssuer, key_set: RemoteKeySet, error: type[httpx.RequestError], reason: str
) -> None:
    """Each httpx failure of the JWKS request is a 503-class KeysUnavailable, its cause kept
    as the fetch's failure reason."""
    issuer.jwks_route.side_effect = error
    with pytest.raises(KeysUnavailable) as caught:
        await key_set.get_key(ES384.kid)
    assert (caught.value.reason, key_set.stats.last_failure) == ("keys_unavailable", reason)


@pytest.mark.parametrize(
    ("error", "reason"),
    [
        pytest.param(httpx.ConnectError, "http_error_ConnectError", id="ConnectError"),
        pytest.param(httpx.ReadTimeout, "timeout", id="ReadTimeout"),
        pytest.param(httpx.RemoteProtocolError, "http_error_RemoteProtocolError", id="protocol"),
    ],
)
async def test_transport_errors_on_discovery_become_keys_unavailable(
    issuer: FakeIssuer, key_set: RemoteKeySet, error: type[httpx.RequestError], reason: str
) -> None:
    """The discovery request maps the same way."""
    issuer.discovery_route.side_effect = error
    with pytest.raises(KeysUnavailable) as caught:
        await key_set.get_key(ES384.kid)
    assert (caught.value.reason, key_set.stats.last_failure) == ("keys_unavailable", reason)


class _BrokenStream(httpx.AsyncByteStream):
    """A body that fails after its first chunk (the connection dropped mid-answer)."""

    def __init__(self, error: Exception) -> None:
        self._error = error

    async def __aiter__(self) -> AsyncIterator[bytes]:
        yield b'{"keys": ['
        raise self._error


@pytest.mark.parametrize(
    ("error", "reason"),
    [
        pytest.param(httpx.ReadError("reset"), "http_error_ReadError", id="ReadError"),
        pytest.param(httpx.ReadTimeout("slow"), "timeout", id="ReadTimeout"),
        pytest.param(
            httpx.RemoteProtocolError("incomplete chunked read"),
            "http_error_RemoteProtocolError",
            id="RemoteProtocolError",
        ),
    ],
)
async def test_errors_while_reading_the_body_are_mapped(
    issuer: FakeIssuer, key_set: RemoteKeySet, error: Exception, reason: str
) -> None:
    """A body that breaks half-way maps like a failed request."""
    issuer.jwks_response = httpx.Response(200, stream=_BrokenStream(error))
    with pytest.raises(KeysUnavailable) as caught:
        await key_set.get_key(ES384.kid)
    assert (caught.value.reason, key_set.stats.last_failure) == ("keys_unavailable", reason)


@pytest.mark.parametrize(
    ("jwks_uri", "reason"),
    [
        pytest.param(JWKS_URL + "\x00", "bad_url", id="InvalidURL-control-character"),
        pytest.param("https://tenant.logto.test:99999/oidc/jwks", "bad_url", id="port-ValueError"),
        pytest.param("https://[tenant.logto.test/oidc/jwks", "bad_url", id="bracket-ValueError"),
    ],
)
async def test_unusable_jwks_uri_is_mapped(
    issuer: FakeIssuer, key_set: RemoteKeySet, jwks_uri: str, reason: str
) -> None:
    """A jwks_uri that urllib or httpx cannot handle is a failed fetch, not a crash."""
    issuer.discovery_route.mock(return_value=httpx.Response(200, json=discovery(jwks_uri=jwks_uri)))
    with pytest.raises(KeysUnavailable):
        await key_set.get_key(ES384.kid)
    assert key_set.stats.last_failure == reason


# -- msgspec and friends, while decoding the key set -----------------------------------------------


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        pytest.param(b"<html>", "not_json", id="msgspec-DecodeError"),
        pytest.param(b'{"keys": [], "x": 1e400}', "not_json", id="msgspec-ValidationError"),
        pytest.param(b'{"keys": [], "x": "\xff"}', "not_json", id="UnicodeDecodeError"),
        pytest.param(nested_json(100_000), "not_json", id="RecursionError"),
        pytest.param(b'{"keys": "x"}', "jwks_not_a_key_set", id="keys-not-a-list"),
    ],
)
async def test_undecodable_key_sets_are_mapped(
    issuer: FakeIssuer, key_set: RemoteKeySet, body: bytes, reason: str
) -> None:
    """A JWKS body that fails to decode is a failed fetch with its own reason."""
    issuer.jwks_response = httpx.Response(200, content=body)
    with pytest.raises(KeysUnavailable):
        await key_set.get_key(ES384.kid)
    assert key_set.stats.last_failure == reason


# -- PyJWT and cryptography, while building keys ---------------------------------------------------


def _ec(**changes: Any) -> dict[str, Any]:
    return {**ES384.public_jwk(kid="bad"), **changes}


def _rsa(**changes: Any) -> dict[str, Any]:
    return {**RS256.public_jwk(kid="bad"), **changes}


@pytest.mark.parametrize(
    "jwk",
    [
        pytest.param(_ec(x=b64url(b"\x01" * 10)), id="x-wrong-length"),
        pytest.param(_ec(y=_ec()["x"]), id="point-not-on-curve"),
        pytest.param(_ec(x=12), id="x-number"),
        pytest.param({k: v for k, v in _ec().items() if k != "y"}, id="missing-y"),
        pytest.param(_ec(x="***"), id="x-not-base64url"),
        pytest.param(_ec(crv=["P-384"]), id="TypeError-unhashable-crv"),
        pytest.param(_ec(crv={"P-384": 1}), id="TypeError-unhashable-crv-object"),
        pytest.param(_ec(d=b64url(b"\x00" * 48)), id="private-scalar-zero"),
        pytest.param(_ec(d=123), id="private-scalar-number"),
        pytest.param(_rsa(n=""), id="rsa-empty-modulus"),
        pytest.param(_rsa(e=b64url(b"\x00")), id="rsa-zero-exponent"),
        pytest.param(_rsa(n=[1]), id="rsa-modulus-list"),
        pytest.param(_rsa(d=b64url(b"\x05")), id="rsa-private-without-primes"),
        pytest.param(_rsa(d=b64url(b"\x05"), p="AQ", q="AQ", oth=[{}]), id="rsa-multi-prime"),
        pytest.param(_rsa(kty="RSA", n=None), id="rsa-no-modulus"),
        pytest.param({"kty": "OKP", "crv": "Ed25519", "kid": "bad", "x": "AA"}, id="okp-short"),
        pytest.param({"kty": "oct", "kid": "bad", "k": "c2VjcmV0"}, id="symmetric"),
        pytest.param({"kty": ["EC"], "kid": "bad"}, id="kty-list"),
        pytest.param(_ec(use=["sig"]), id="use-list"),
        pytest.param(_ec(key_ops="verify"), id="key-ops-string"),
        pytest.param(_ec(alg={"ES384": 1}), id="alg-object"),
    ],
)
def test_bad_keys_are_skipped_whatever_they_raise(jwk: dict[str, Any]) -> None:
    """A key that makes PyJWT raise (InvalidKeyError, wrapping cryptography's ValueError and
    TypeError) or makes our own lookups raise (an unhashable crv) is skipped on its own; the
    good key next to it is kept."""
    document = {"keys": [{k: v for k, v in jwk.items() if v is not None}, ES384.public_jwk()]}
    assert sorted(parse_key_set(document, LOGTO_ALGORITHMS)) == [ES384.kid]


async def test_key_set_of_only_bad_keys_is_keys_unavailable(
    issuer: FakeIssuer, key_set: RemoteKeySet
) -> None:
    """With every key unusable the fetch fails as a whole and callers get a 503."""
    issuer.jwks_response = httpx.Response(
        200, json={"keys": [_ec(crv=["P-384"]), _ec(x=12), _rsa(n="")]}
    )
    with pytest.raises(KeysUnavailable):
        await key_set.get_key("bad")
    assert key_set.stats.last_failure == "jwks_without_usable_keys"


# -- while verifying a token -----------------------------------------------------------------------


_NOT_UTF8 = b'{"alg": "\xff"}'


def _signed(payload: bytes) -> str:
    signing_input = f"{b64json(header(ES384))}.{b64url(payload)}"
    return f"{signing_input}.{b64url(ES384.sign(signing_input.encode()))}"


@pytest.mark.parametrize(
    ("build", "reason"),
    [
        pytest.param(
            lambda: "AAAAA.e30.AA", "bad_base64", id="binascii-Error-pre-empted-length-mod-4"
        ),
        pytest.param(lambda: f"{b64url(b'{')}.e30.AA", "bad_json", id="msgspec-DecodeError"),
        pytest.param(lambda: _signed(b'{"exp": 1e400}'), "bad_json", id="msgspec-ValidationError"),
        pytest.param(lambda: f"{b64url(_NOT_UTF8)}.e30.AA", "bad_json", id="UnicodeDecodeError"),
        pytest.param(
            lambda: f"{b64url(nested_json(3000))}.e30.AA", "bad_json", id="RecursionError"
        ),
        pytest.param(
            lambda: make_token(ES384, exp=10**400), "bad_exp", id="OverflowError-int-to-float"
        ),
        pytest.param(
            lambda: with_signature(make_token(ES384), bytes(96)),
            "bad_signature",
            id="cryptography-InvalidSignature",
        ),
        pytest.param(
            lambda: with_signature(make_token(ES384), bytes(7)),
            "bad_signature",
            id="raw_to_der-ValueError-inside-pyjwt",
        ),
        pytest.param(
            lambda: with_signature(make_token(RS256), bytes(7)),
            "bad_signature",
            id="rsa-short-InvalidSignature",
        ),
        pytest.param(
            lambda: _signed(b'{"sub": "\\ud800"}'), "bad_json", id="lone-surrogate-DecodeError"
        ),
        pytest.param(lambda: "\ud800", "malformed", id="UnicodeEncodeError-pre-empted-non-ascii"),
        pytest.param(lambda: make_token(exp=True), "bad_exp", id="bool-is-not-a-date"),
    ],
)
async def test_foreign_errors_while_verifying_become_invalid_token(
    every_key_issuer: FakeIssuer, verifier: TokenVerifier, build: Callable[[], str], reason: str
) -> None:
    """Each foreign exception on the token path becomes InvalidToken with its reason."""
    token = build()
    with pytest.raises(InvalidToken) as caught:
        await verifier.verify(token, audience=claims()["aud"])
    assert (type(caught.value), caught.value.reason) == (InvalidToken, reason)
