"""Bearer-token extraction (RFC 6750 §2): only one Authorization header, only the Bearer
scheme, only one token68 credential, never a token in the URL or the body."""

from __future__ import annotations

import pytest
from litestar_logto import AuthError, InvalidRequest, InvalidToken, MissingCredentials
from litestar_logto.bearer import DEFAULT_MAX_TOKEN_BYTES, extract_bearer_token

TOKEN = "eyJhbGciOiJFUzM4NCJ9.eyJzdWIiOiJhIn0.c2ln"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param(f"Bearer {TOKEN}", TOKEN, id="canonical"),
        pytest.param(f"bearer {TOKEN}", TOKEN, id="lower-case-scheme"),
        pytest.param(f"BEARER {TOKEN}", TOKEN, id="upper-case-scheme"),
        pytest.param(f"BeArEr {TOKEN}", TOKEN, id="mixed-case-scheme"),
        pytest.param(f"  Bearer {TOKEN}\t", TOKEN, id="surrounding-blanks"),
        pytest.param(f"Bearer   {TOKEN}  ", TOKEN, id="extra-spaces-around-token"),
        pytest.param("Bearer abc+/~-._==", "abc+/~-._==", id="every-token68-character"),
        pytest.param("Bearer " + "a" * DEFAULT_MAX_TOKEN_BYTES, "a" * 8192, id="exactly-8-KiB"),
    ],
)
def test_bearer_token_is_extracted(value: str, expected: str) -> None:
    """A single Bearer credential is returned as is, whatever the scheme's case."""
    assert extract_bearer_token([value]) == expected


@pytest.mark.parametrize(
    ("headers", "error", "reason"),
    [
        pytest.param([], MissingCredentials, "no_credentials", id="no-header"),
        pytest.param(["Basic dXNlcjpwYXNz"], MissingCredentials, "other_scheme", id="basic"),
        pytest.param([f"DPoP {TOKEN}"], MissingCredentials, "other_scheme", id="dpop"),
        pytest.param([""], MissingCredentials, "other_scheme", id="empty-header"),
        pytest.param([f"Bearer{TOKEN}"], MissingCredentials, "other_scheme", id="no-space"),
        pytest.param([f"Bearer\t{TOKEN}"], MissingCredentials, "other_scheme", id="tab-separator"),
        pytest.param(
            [f"Bearer\u00a0{TOKEN}"], MissingCredentials, "other_scheme", id="nbsp-separator"
        ),
        pytest.param([f"Bearer{TOKEN} x"], MissingCredentials, "other_scheme", id="glued-scheme"),
        pytest.param(["Bearer"], InvalidRequest, "empty_credentials", id="scheme-only"),
        pytest.param(["Bearer    "], InvalidRequest, "empty_credentials", id="blank-credentials"),
        pytest.param(["Bearer a b"], InvalidRequest, "malformed_credentials", id="two-tokens"),
        pytest.param(
            [f"Bearer {TOKEN}, Bearer {TOKEN}"],
            InvalidRequest,
            "malformed_credentials",
            id="two-credentials-one-header",
        ),
        pytest.param(["Bearer a,b"], InvalidRequest, "malformed_credentials", id="comma"),
        pytest.param(['Bearer "abc"'], InvalidRequest, "malformed_credentials", id="quoted"),
        pytest.param(["Bearer realm=x"], InvalidRequest, "malformed_credentials", id="auth-param"),
        pytest.param(["Bearer =abc"], InvalidRequest, "malformed_credentials", id="leading-equals"),
        pytest.param(["Bearer ab=c"], InvalidRequest, "malformed_credentials", id="inner-equals"),
        pytest.param(["Bearer a\tb"], InvalidRequest, "malformed_credentials", id="inner-tab"),
        pytest.param(
            [f"Bearer {TOKEN}\n"], InvalidRequest, "malformed_credentials", id="trailing-newline"
        ),
        pytest.param(
            [f"Bearer {TOKEN}\r\nX-Evil: 1"],
            InvalidRequest,
            "malformed_credentials",
            id="header-injection",
        ),
        pytest.param(
            [f"Bearer {TOKEN}\x00"], InvalidRequest, "malformed_credentials", id="nul-byte"
        ),
        pytest.param(
            ["Bearer abc\u00e9"], InvalidRequest, "malformed_credentials", id="latin-1-letter"
        ),
        pytest.param(
            ["Bearer \u0661\u0662\u0663"],
            InvalidRequest,
            "malformed_credentials",
            id="unicode-digits",
        ),
        pytest.param(
            ["Bearer \uff41\uff42\uff43"],
            InvalidRequest,
            "malformed_credentials",
            id="fullwidth-letters",
        ),
        pytest.param(
            [f"Bearer {TOKEN}\u200b"],
            InvalidRequest,
            "malformed_credentials",
            id="zero-width-space",
        ),
        pytest.param(
            ["Bearer \ud800"], InvalidRequest, "malformed_credentials", id="lone-surrogate"
        ),
        pytest.param(
            ["Bearer " + "a" * (DEFAULT_MAX_TOKEN_BYTES + 1)],
            InvalidToken,
            "oversized",
            id="8-KiB-plus-one",
        ),
        pytest.param(
            ["Bearer " + "a b" * 10_000],
            InvalidToken,
            "oversized",
            id="oversized-refused-before-parsing",
        ),
        pytest.param(
            ["Bearer " + " " * 100_000 + "a"],
            InvalidToken,
            "oversized",
            id="oversized-padding",
        ),
        pytest.param(
            [f"Bearer {TOKEN}", f"Bearer {TOKEN}"],
            InvalidRequest,
            "duplicate_authorization",
            id="duplicate-headers",
        ),
        pytest.param(
            [f"Bearer {TOKEN}", ""],
            InvalidRequest,
            "duplicate_authorization",
            id="duplicate-one-empty",
        ),
        pytest.param(
            ["Basic dXNlcjpwYXNz", f"Bearer {TOKEN}"],
            InvalidRequest,
            "duplicate_authorization",
            id="duplicate-mixed-schemes",
        ),
    ],
)
def test_bad_authorization_is_refused(
    headers: list[str], error: type[AuthError], reason: str
) -> None:
    """Each malformed or foreign Authorization header maps to its RFC 6750 error and reason."""
    with pytest.raises(AuthError) as caught:
        extract_bearer_token(headers)
    assert (type(caught.value), caught.value.reason) == (error, reason)


@pytest.mark.parametrize(
    ("headers", "in_query", "in_body", "reason"),
    [
        pytest.param([], True, False, "token_in_query", id="query-only"),
        pytest.param([f"Bearer {TOKEN}"], True, False, "token_in_query", id="query-and-header"),
        pytest.param([], False, True, "token_in_body", id="body-only"),
        pytest.param([f"Bearer {TOKEN}"], False, True, "token_in_body", id="body-and-header"),
        pytest.param([], True, True, "token_in_query", id="query-and-body"),
        pytest.param(
            [f"Bearer {TOKEN}", f"Bearer {TOKEN}"],
            True,
            False,
            "token_in_query",
            id="query-beats-duplicates",
        ),
    ],
)
def test_token_outside_the_header_is_refused(
    headers: list[str], in_query: bool, in_body: bool, reason: str
) -> None:
    """A token in the URL or a form body is a 400, never silently used or ignored."""
    with pytest.raises(InvalidRequest) as caught:
        extract_bearer_token(headers, token_in_query=in_query, token_in_body=in_body)
    assert caught.value.reason == reason


def test_size_limit_is_configurable() -> None:
    """``max_token_bytes`` moves the oversize limit."""
    with pytest.raises(InvalidToken) as caught:
        extract_bearer_token(["Bearer abcdefghijk"], max_token_bytes=10)
    assert caught.value.reason == "oversized"


def test_errors_carry_no_part_of_the_credentials() -> None:
    """A refused credential is not echoed in the error's description."""
    with pytest.raises(InvalidRequest) as caught:
        extract_bearer_token(["Bearer secret-part other-part"])
    assert "secret-part" not in caught.value.description
