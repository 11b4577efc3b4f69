"""Settings: built from a mapping, every problem reported at once, secrets never shown."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from client_app.settings import (
    DEFAULT_SCOPES,
    Secret,
    Settings,
    SettingsError,
    load_settings,
)
from tests.client_app.conftest import SESSION_SECRET, environment
from tests.client_app.fake_logto import CLIENT_SECRET

MINIMAL = {
    "LOGTO_ENDPOINT": "https://tenant.logto.app/",
    "LOGTO_APP_ID": "app-id",
    "LOGTO_APP_SECRET": "app-secret",
    "SESSION_SECRET": SESSION_SECRET,
}


@pytest.mark.parametrize(
    ("field", "expected"),
    [
        pytest.param("logto_endpoint", "https://tenant.logto.app", id="endpoint-without-slash"),
        pytest.param("shopping_resource", "https://shopping.your-app.com/api", id="shopping"),
        pytest.param("store_resource", "https://store.your-app.com/api", id="store"),
        pytest.param("resource_api_url", "http://127.0.0.1:8001", id="resource-api"),
        pytest.param("base_url", "http://127.0.0.1:8000", id="base-url"),
        pytest.param("redirect_uri", "http://127.0.0.1:8000/callback", id="redirect-uri"),
        pytest.param("post_logout_redirect_uri", "http://127.0.0.1:8000/", id="post-logout"),
        pytest.param("scopes", DEFAULT_SCOPES, id="scopes"),
        pytest.param("session_database", Path("data/client_sessions"), id="session-database"),
        pytest.param("session_max_age_seconds", 14 * 86400, id="session-max-age"),
        pytest.param("logto_timeout_seconds", 10.0, id="logto-timeout"),
        pytest.param("resource_api_timeout_seconds", 10.0, id="api-timeout"),
        pytest.param("secure_cookies", False, id="http-cookies"),
        pytest.param("log_level", "INFO", id="log-level"),
        pytest.param("session_redis_url", None, id="embedded-sessions"),
    ],
)
def test_defaults(field: str, expected: Any) -> None:
    """The four required variables are enough; everything else has the documented default."""
    assert getattr(load_settings(MINIMAL), field) == expected


def test_every_missing_variable_is_reported_together() -> None:
    """One error lists every required variable."""
    with pytest.raises(SettingsError) as caught:
        load_settings({"LOGTO_APP_ID": "  "})
    assert caught.value.problems == (
        "LOGTO_ENDPOINT is required",
        "LOGTO_APP_ID is required",
        "LOGTO_APP_SECRET is required",
        "SESSION_SECRET is required",
    )


@pytest.mark.parametrize(
    ("variable", "value", "problem"),
    [
        pytest.param(
            "LOGTO_ENDPOINT", "https://t.logto.app/oidc", "without /oidc", id="oidc-suffix"
        ),
        pytest.param("LOGTO_ENDPOINT", "ftp://t.logto.app", "http(s) URL", id="not-http"),
        pytest.param("LOGTO_ENDPOINT", "https://u:p@t.logto.app", "credentials", id="credentials"),
        pytest.param("LOGTO_ENDPOINT", "https://t.logto.app?x=1", "query", id="query"),
        pytest.param("LOGTO_ENDPOINT", "https://t.logto.app:99999", "valid", id="bad-port"),
        pytest.param("LOGTO_APP_ID", "app id", "client ID", id="app-id-space"),
        pytest.param("SESSION_SECRET", "x" * 31, "at least 32", id="short-secret"),
        pytest.param("CLIENT_APP_BASE_URL", "http://h/app", "without a path", id="base-with-path"),
        pytest.param("RESOURCE_API_URL", "localhost:8001", "http(s) URL", id="api-no-scheme"),
        pytest.param("SHOPPING_RESOURCE", "not a uri", "absolute URI", id="resource-space"),
        pytest.param("STORE_RESOURCE", "https://s/api#x", "without a fragment", id="fragment"),
        pytest.param("LOGTO_SCOPES", 'email, "quoted"', "scope names", id="bad-scope"),
        pytest.param("LOGTO_TIMEOUT_SECONDS", "0", "more than 0", id="zero-timeout"),
        pytest.param("LOGTO_TIMEOUT_SECONDS", "nan", "more than 0", id="nan-timeout"),
        pytest.param("RESOURCE_API_TIMEOUT_SECONDS", "soon", "number", id="word-timeout"),
        pytest.param("SESSION_MAX_AGE_SECONDS", "60", "between", id="short-session"),
        pytest.param("SESSION_MAX_AGE_SECONDS", "1.5", "whole number", id="fraction"),
        pytest.param("LOG_LEVEL", "LOUD", "one of", id="log-level"),
        pytest.param("SESSION_REDIS_URL", "http://cache:6379", "redis://", id="redis-scheme"),
        pytest.param("SESSION_REDIS_URL", "redis://:pw@:6379", "with a host", id="redis-no-host"),
        pytest.param("SESSION_REDIS_URL", "redis://cache:99999", "valid", id="redis-bad-port"),
        pytest.param("SESSION_REDIS_URL", "redis://cache/first", "by number", id="redis-db"),
        pytest.param("SESSION_REDIS_URL", "unix://redis.sock", "absolute path", id="unix-rel"),
        pytest.param("SESSION_REDIS_URL", "redis://cache:6379 /0", "spaces", id="redis-space"),
    ],
)
def test_invalid_values_are_named(variable: str, value: str, problem: str) -> None:
    """Each bad value is reported with its variable and what is expected, never echoed."""
    with pytest.raises(SettingsError) as caught:
        load_settings({**MINIMAL, variable: value})
    (reported,) = caught.value.problems
    assert reported.startswith(variable)
    assert problem in reported
    if len(value) > 3:
        assert value not in reported


@pytest.mark.parametrize(
    "url",
    [
        pytest.param("redis://cache.internal:6379/0", id="redis"),
        pytest.param("rediss://app:pw@cache.internal:6380", id="rediss-with-password"),
        pytest.param("redis://[::1]:6379", id="ipv6"),
        pytest.param("unix:///run/redis/redis.sock?db=1", id="unix-socket"),
    ],
)
def test_redis_urls_are_accepted_and_kept_secret(url: str) -> None:
    """A redis://, rediss:// or unix:// URL selects the shared store; it is held as a secret
    (it may carry a password), so the settings never show it."""
    settings = load_settings({**MINIMAL, "SESSION_REDIS_URL": f" {url} "})
    assert settings.session_redis_url is not None
    assert settings.session_redis_url.reveal() == url
    assert url not in repr(settings)
    assert "pw" not in repr(settings)


def test_a_bad_redis_url_never_shows_its_password() -> None:
    """The problem names the variable and what is wrong, not the URL or its password."""
    with pytest.raises(SettingsError) as caught:
        load_settings({**MINIMAL, "SESSION_REDIS_URL": "redis://:hunter2-pw@cache:6379/zero"})
    assert caught.value.problems == (
        "SESSION_REDIS_URL must name a database by number (redis://host:6379/0)",
    )
    assert "hunter2" not in str(caught.value)


def test_cross_checks_join_the_other_problems() -> None:
    """Two equal resource indicators are reported along with a missing variable."""
    env = {**MINIMAL, "STORE_RESOURCE": "https://shopping.your-app.com/api"}
    del env["SESSION_SECRET"]
    with pytest.raises(SettingsError) as caught:
        load_settings(env)
    assert caught.value.problems == (
        "SESSION_SECRET is required",
        "SHOPPING_RESOURCE and STORE_RESOURCE must differ",
    )


def test_scopes_are_a_comma_separated_list_without_duplicates() -> None:
    """Spaces around names are dropped, duplicates kept once, order kept."""
    settings = load_settings({**MINIMAL, "LOGTO_SCOPES": " email , roles,email,,custom_data "})
    assert settings.scopes == ("email", "roles", "custom_data")


def test_https_base_url_makes_cookies_secure() -> None:
    """Served over https, cookies carry Secure."""
    settings = load_settings({**MINIMAL, "CLIENT_APP_BASE_URL": "https://app.example.com/"})
    assert settings.secure_cookies
    assert settings.redirect_uri == "https://app.example.com/callback"


def test_secrets_never_show() -> None:
    """Neither ``repr`` nor ``str`` of the settings (or of a secret) shows a secret."""
    settings = load_settings(environment())
    for text in (repr(settings), str(settings), repr(settings.app_secret), f"{settings}"):
        assert CLIENT_SECRET not in text
        assert SESSION_SECRET not in text
    assert settings.app_secret.reveal() == CLIENT_SECRET
    assert repr(settings.session_secret) == "Secret('**********')"


def test_secrets_compare_by_value() -> None:
    """Two secrets are equal when their values are (settings compare as values)."""
    assert Secret("a") == Secret("a")
    assert Secret("a") != Secret("b")
    assert load_settings(environment()) == load_settings(environment())


def test_settings_are_frozen() -> None:
    """Settings cannot be changed after loading."""
    settings: Settings = load_settings(MINIMAL)
    with pytest.raises(AttributeError):
        settings.app_id = "other"  # type: ignore[misc]
