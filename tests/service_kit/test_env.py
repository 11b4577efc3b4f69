"""service_kit.env, the settings machinery of both programs: every problem reported at once in
the order of the variables, empty values unset, cross-checks told which fields failed, and the
URL and log-level parsers both programs use."""

from __future__ import annotations

import re
from collections.abc import Mapping, Set
from typing import Any

import pytest

from service_kit.env import (
    LOG_LEVELS,
    SettingsError,
    Variable,
    http_url,
    log_level,
    logto_endpoint,
    read_variables,
)


def _whole(raw: str) -> int:
    try:
        return int(raw)
    except ValueError as exc:
        raise ValueError("must be a whole number") from exc


VARIABLES = (
    Variable("FIRST", "first", _whole, required=True),
    Variable("SECOND", "second", _whole),
    Variable("THIRD", "third", str, required=True),
)


def test_set_variables_are_parsed_into_their_fields() -> None:
    """Values are stripped and parsed; unset and empty variables are left to the defaults."""
    environ = {"FIRST": " 1 ", "SECOND": "  ", "THIRD": "x", "OTHER": "ignored"}
    assert read_variables(environ, VARIABLES) == {"first": 1, "third": "x"}


def test_every_problem_is_reported_in_the_order_of_the_variables() -> None:
    """Missing required variables and invalid values, together; values are never echoed."""
    with pytest.raises(SettingsError) as caught:
        read_variables({"FIRST": "one-secret", "SECOND": "2"}, VARIABLES)
    assert caught.value.problems == ("FIRST must be a whole number", "THIRD is required")
    assert str(caught.value) == (
        "invalid configuration:\n  - FIRST must be a whole number\n  - THIRD is required"
    )
    assert "one-secret" not in str(caught.value)


def test_cross_checks_see_the_values_and_the_failed_fields() -> None:
    """Cross-check problems come after the variables' own problems."""
    seen: list[tuple[dict[str, Any], set[str]]] = []

    def checks(values: Mapping[str, Any], failed: Set[str]) -> list[str]:
        seen.append((dict(values), set(failed)))
        return ["FIRST and SECOND disagree"]

    with pytest.raises(SettingsError) as caught:
        read_variables({"FIRST": "x", "SECOND": "2", "THIRD": "t"}, VARIABLES, checks)
    assert caught.value.problems == ("FIRST must be a whole number", "FIRST and SECOND disagree")
    assert seen == [({"second": 2, "third": "t"}, {"first"})]


@pytest.mark.parametrize(
    ("raw", "url"),
    [
        pytest.param("https://tenant.logto.app/", "https://tenant.logto.app", id="slash-dropped"),
        pytest.param("http://127.0.0.1:8001", "http://127.0.0.1:8001", id="port"),
        pytest.param("http://h/api/", "http://h/api", id="path"),
    ],
)
def test_an_http_url_is_kept_without_its_trailing_slash(raw: str, url: str) -> None:
    """http(s) URLs with a host pass, the trailing slash removed."""
    assert http_url(raw) == url


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        pytest.param("https://h:99999", "must be a valid http(s) URL", id="bad-port"),
        pytest.param("ftp://h", "must be an http(s) URL with a host", id="scheme"),
        pytest.param("localhost:8001", "must be an http(s) URL with a host", id="no-scheme"),
        pytest.param("https://", "must be an http(s) URL with a host", id="no-host"),
        pytest.param("https://u:p@h", "must not contain credentials", id="credentials"),
        pytest.param("https://u@h", "must not contain credentials", id="user"),
        pytest.param("https://h?x=1", "must not have a query or fragment", id="query"),
        pytest.param("https://h#x", "must not have a query or fragment", id="fragment"),
    ],
)
def test_anything_else_is_not_an_http_url(raw: str, problem: str) -> None:
    """Each refusal says what is expected, never the value."""
    with pytest.raises(ValueError, match=f"^{re.escape(problem)}$"):
        http_url(raw)


def test_the_logto_endpoint_is_the_tenant_url_without_oidc() -> None:
    """``/oidc`` is refused (the SDK adds it); the rest is an http(s) URL."""
    assert logto_endpoint("https://tenant.logto.app/") == "https://tenant.logto.app"
    with pytest.raises(ValueError, match=r"without /oidc \(e\.g\. https://tenant\.logto\.app\)"):
        logto_endpoint("https://tenant.logto.app/oidc/")
    with pytest.raises(ValueError, match="must be an http"):
        logto_endpoint("tenant.logto.app")


def test_log_levels_are_accepted_in_any_case() -> None:
    """The level comes back in upper case; anything else lists the levels."""
    assert [log_level(level.lower()) for level in LOG_LEVELS] == list(LOG_LEVELS)
    with pytest.raises(ValueError, match=r"^must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL$"):
        log_level("LOUD")
