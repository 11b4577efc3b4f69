"""Return paths, CSRF tokens, WWW-Authenticate parsing and the Content-Security-Policy."""

from __future__ import annotations

import pytest

from client_app.challenges import bearer_params, missing_scopes, parse_challenges
from client_app.security import (
    content_security_policy,
    csrf_matches,
    csrf_token,
    safe_return_path,
)
from client_app.sessions import new_session_id
from client_app.settings import Secret

SECRET = Secret("s" * 32)


@pytest.mark.parametrize(
    "value",
    [
        pytest.param("/", id="root"),
        pytest.param("/shopping", id="page"),
        pytest.param("/shopping?created=3", id="query"),
        pytest.param("/organizations#acme", id="fragment"),
        pytest.param("/a/b/../c", id="dots"),
        pytest.param("/sign-in-help", id="a-path-that-starts-like-sign-in"),
        pytest.param("/shopping/%2e%2e/callbacks", id="encoded-dots-elsewhere"),
    ],
)
def test_relative_paths_are_kept(value: str) -> None:
    """A path on this site is where the user goes after signing in."""
    assert safe_return_path(value) == value


@pytest.mark.parametrize(
    "value",
    [
        pytest.param(None, id="none"),
        pytest.param("", id="empty"),
        pytest.param("https://evil.test/", id="absolute"),
        pytest.param("//evil.test/", id="scheme-relative"),
        pytest.param("///evil.test/", id="triple-slash"),
        pytest.param("/\\evil.test", id="backslash"),
        pytest.param("\\\\evil.test", id="double-backslash"),
        pytest.param("/\t/evil.test", id="tab"),
        pytest.param("/\n/evil.test", id="newline"),
        pytest.param(" /shopping", id="leading-space"),
        pytest.param("javascript:alert(1)", id="javascript"),
        pytest.param("shopping", id="no-leading-slash"),
        pytest.param("/caf\u00e9", id="non-ascii"),
        pytest.param("/\u2215\u2215evil.test", id="unicode-slashes"),
        pytest.param("/" + "a" * 3000, id="too-long"),
        pytest.param("/sign-in", id="sign-in-loop"),
        pytest.param("/sign-out/", id="sign-out"),
        pytest.param("/callback?code=x", id="callback"),
        # Issue 9, item 5: spellings that a browser or server resolves to the same places.
        pytest.param("/./sign-in", id="dot-sign-in"),
        pytest.param("/sign-in/.", id="sign-in-dot"),
        pytest.param("/shopping/../sign-in", id="dot-dot-sign-in"),
        pytest.param("/%2e/sign-in", id="encoded-dot-sign-in"),
        pytest.param("/%2E%2E/callback?code=x", id="encoded-dot-dot-callback"),
        pytest.param("/%73ign-in", id="encoded-letter-sign-in"),
        pytest.param("/%5Csign-out", id="encoded-backslash-sign-out"),
        pytest.param("/sign-in%2F", id="encoded-trailing-slash"),
        pytest.param("/shopping/..//evil.test", id="dot-dot-scheme-relative"),
        pytest.param("/%2F%2Fevil.test", id="encoded-slashes"),  # a decoding server's //host
        pytest.param("/SIGN-IN", id="upper-case"),
        pytest.param("/.//evil.test/", id="dot-scheme-relative"),
        pytest.param("/%2e//evil.test/", id="encoded-dot-scheme-relative"),
    ],
)
def test_anything_else_goes_home(value: str | None) -> None:
    """Other sites, browser-normalised tricks and loops fall back to ``/``."""
    assert safe_return_path(value) == "/"


def test_csrf_token_is_bound_to_the_session_and_the_secret() -> None:
    """The token is stable for one session and differs for another session or secret."""
    session_id, other = new_session_id(), new_session_id()
    token = csrf_token(SECRET, session_id)

    assert csrf_token(SECRET, session_id) == token
    assert csrf_matches(SECRET, session_id, token)
    assert not csrf_matches(SECRET, other, token)
    assert not csrf_matches(Secret("t" * 32), session_id, token)
    assert session_id not in token


@pytest.mark.parametrize(
    "submitted",
    [None, "", 42, ["token"], "x" * 43],
    ids=["none", "empty", "number", "list", "guess"],
)
def test_anything_but_the_token_is_refused(submitted: object) -> None:
    """Missing, empty, mistyped or guessed values never match."""
    assert not csrf_matches(SECRET, new_session_id(), submitted)


def test_no_session_no_match() -> None:
    """Without a session there is no valid token."""
    assert not csrf_matches(SECRET, None, csrf_token(SECRET, "x"))


def test_csp_allows_forms_to_the_issuer_only() -> None:
    """Forms may post to this app and be redirected to the issuer; nothing else loads."""
    policy = content_security_policy(["https://tenant.logto.app"])
    assert "form-action 'self' https://tenant.logto.app;" in policy
    assert "default-src 'none'" in policy
    assert "frame-ancestors 'none'" in policy
    assert "script-src" not in policy


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        pytest.param("Bearer", [("bearer", {})], id="bare"),
        pytest.param(
            'Bearer error="insufficient_scope", error_description="The access token does not '
            'grant this operation.", scope="shopping:write", resource_metadata="http://a/.w"',
            [
                (
                    "bearer",
                    {
                        "error": "insufficient_scope",
                        "error_description": "The access token does not grant this operation.",
                        "scope": "shopping:write",
                        "resource_metadata": "http://a/.w",
                    },
                )
            ],
            id="resource-api-403",
        ),
        pytest.param(
            'Basic realm="a, b", Bearer scope="x y"',
            [("basic", {"realm": "a, b"}), ("bearer", {"scope": "x y"})],
            id="two-challenges",
        ),
        pytest.param(
            "bearer realm=api,Error=invalid_token",
            [("bearer", {"realm": "api", "error": "invalid_token"})],
            id="tokens-and-case",
        ),
        pytest.param(
            'Negotiate abc==, Bearer scope="a\\"b"',
            [("negotiate", {}), ("bearer", {"scope": 'a"b'})],
            id="token68-and-escape",
        ),
        pytest.param('Bearer error="unterminated', [("bearer", {})], id="unterminated"),
        pytest.param('Bearer scope="a", scope="b"', [("bearer", {"scope": "a"})], id="duplicate"),
        pytest.param("", [], id="empty"),
        pytest.param("=,=,=", [], id="garbage"),
    ],
)
def test_challenges_are_parsed(header: str, expected: list[tuple[str, dict[str, str]]]) -> None:
    """RFC 9110 §11.6.1 challenges: schemes, parameters, quoted strings; never an exception."""
    assert parse_challenges(header) == expected


def test_missing_scopes_come_from_the_bearer_challenge() -> None:
    """The ``scope`` of the Bearer challenge, split on spaces; nothing without one."""
    assert missing_scopes('Basic realm="x", Bearer scope="store:read store:write"') == (
        "store:read",
        "store:write",
    )
    assert missing_scopes("Basic realm=x") == ()
    assert missing_scopes(None) == ()
    assert bearer_params('Bearer error="x"') == {"error": "x"}


def test_a_huge_header_is_cut_not_choked_on() -> None:
    """A megabyte of header is read up to the cap, quickly."""
    assert parse_challenges("Bearer " + "a=b, " * 200_000)[0][0] == "bearer"
