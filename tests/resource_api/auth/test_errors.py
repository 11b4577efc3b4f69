"""The RFC 6750 error classes: status, code, body and challenge of each, exactly."""

from __future__ import annotations

import pytest
from litestar_logto import (
    AuthError,
    InsufficientScope,
    InvalidRequest,
    InvalidToken,
    KeysUnavailable,
    MissingCredentials,
)
from litestar_logto.errors import quote_safe

META = "https://api.test/.well-known/oauth-protected-resource/shopping"


@pytest.mark.parametrize(
    ("error", "status", "body", "challenge"),
    [
        pytest.param(
            MissingCredentials(),
            401,
            {"error": "unauthorized", "error_description": "A bearer access token is required."},
            f'Bearer resource_metadata="{META}"',
            id="missing-credentials-no-code",
        ),
        pytest.param(
            InvalidRequest(),
            400,
            {
                "error": "invalid_request",
                "error_description": "The request carries malformed credentials.",
            },
            'Bearer error="invalid_request",'
            ' error_description="The request carries malformed credentials.",'
            f' resource_metadata="{META}"',
            id="invalid-request",
        ),
        pytest.param(
            InvalidToken(),
            401,
            {"error": "invalid_token", "error_description": "The access token is invalid."},
            'Bearer error="invalid_token", error_description="The access token is invalid.",'
            f' resource_metadata="{META}"',
            id="invalid-token",
        ),
        pytest.param(
            InsufficientScope(["store:write", "store:admin"]),
            403,
            {
                "error": "insufficient_scope",
                "error_description": "The access token does not grant this operation.",
            },
            'Bearer error="insufficient_scope",'
            ' error_description="The access token does not grant this operation.",'
            f' scope="store:write store:admin", resource_metadata="{META}"',
            id="insufficient-scope",
        ),
        pytest.param(
            InsufficientScope([], "Wrong organization."),
            403,
            {"error": "insufficient_scope", "error_description": "Wrong organization."},
            'Bearer error="insufficient_scope", error_description="Wrong organization.",'
            f' resource_metadata="{META}"',
            id="insufficient-scope-without-scopes",
        ),
    ],
)
def test_error_renders_exactly(
    error: AuthError, status: int, body: dict[str, str], challenge: str
) -> None:
    """Each error class has its status, JSON body and Bearer challenge, byte for byte."""
    assert (
        error.status_code,
        error.body(),
        error.headers(resource_metadata=META),
    ) == (status, body, {"WWW-Authenticate": challenge})


def test_keys_unavailable_is_a_503_without_challenge() -> None:
    """An issuer outage answers 503 with Retry-After and no WWW-Authenticate."""
    error = KeysUnavailable(retry_after=17)
    assert (
        error.status_code,
        error.body(),
        error.headers(realm="api", resource_metadata=META),
        error.reason,
    ) == (
        503,
        {
            "error": "temporarily_unavailable",
            "error_description": "The token issuer cannot be reached; try again shortly.",
        },
        {"Retry-After": "17"},
        "keys_unavailable",
    )


@pytest.mark.parametrize(
    ("error", "challenge"),
    [
        pytest.param(MissingCredentials(), "Bearer", id="bare-bearer"),
        pytest.param(
            InvalidToken("x"), 'Bearer error="invalid_token", error_description="x"', id="no-meta"
        ),
    ],
)
def test_challenge_without_metadata(error: AuthError, challenge: str) -> None:
    """Without realm or metadata the challenge is the bare scheme plus any error."""
    assert error.www_authenticate() == challenge


def test_realm_comes_first() -> None:
    """A configured realm is the first auth-param (RFC 6750 §3)."""
    assert MissingCredentials().www_authenticate(realm="shop", resource_metadata=META) == (
        f'Bearer realm="shop", resource_metadata="{META}"'
    )


@pytest.mark.parametrize(
    ("description", "rendered"),
    [
        pytest.param('say "hi"', "say hi", id="double-quotes"),
        pytest.param("back\\slash", "backslash", id="backslash"),
        pytest.param("line\r\nX-Injected: 1", "lineX-Injected: 1", id="crlf"),
        pytest.param("tab\there", "tabhere", id="tab"),
        pytest.param("nul\x00del\x7f", "nuldel", id="nul-and-del"),
        pytest.param("caf\u00e9 \u2603", "caf ", id="non-ascii"),
        pytest.param('", error="x', ", error=x", id="param-injection"),
    ],
)
def test_descriptions_are_neutralised_in_the_challenge(description: str, rendered: str) -> None:
    """Quotes, backslashes, control and non-ASCII characters cannot break the quoted string."""
    assert InvalidToken(description).www_authenticate() == (
        f'Bearer error="invalid_token", error_description="{rendered}"'
    )


def test_realm_and_metadata_are_neutralised_too() -> None:
    """Every quoted value goes through the same filter, not only the description."""
    header = MissingCredentials().www_authenticate(
        realm='r"\\\n', resource_metadata='https://h/"x\r\n'
    )
    assert header == 'Bearer realm="r", resource_metadata="https://h/x"'


def test_missing_scopes_are_neutralised() -> None:
    """A scope name cannot smuggle a quote into the challenge either."""
    header = InsufficientScope(['a"b', "c\\d"], "d").www_authenticate()
    assert header == 'Bearer error="insufficient_scope", error_description="d", scope="ab cd"'


def test_quote_safe_keeps_every_allowed_character() -> None:
    """The printable ASCII range except '"' and '\\' passes through unchanged."""
    allowed = "".join(chr(code) for code in range(0x20, 0x7F) if chr(code) not in '"\\')
    assert quote_safe(allowed) == allowed


@pytest.mark.parametrize(
    ("error", "reason"),
    [
        pytest.param(MissingCredentials(), "unspecified", id="missing-default"),
        pytest.param(InvalidToken(reason="expired"), "expired", id="invalid-token"),
        pytest.param(InsufficientScope(["a"]), "missing_scope", id="scope-default"),
        pytest.param(KeysUnavailable(), "keys_unavailable", id="keys-default"),
    ],
)
def test_reason_is_kept(error: AuthError, reason: str) -> None:
    """The machine-readable reason travels with the error, not in its description."""
    assert (error.reason, reason in error.description) == (reason, False)


def test_every_error_is_an_auth_error() -> None:
    """One ``except AuthError`` catches every class answered to a caller."""
    classes = (MissingCredentials, InvalidRequest, InvalidToken, InsufficientScope, KeysUnavailable)
    assert all(issubclass(cls, AuthError) for cls in classes)
