"""Settings: built from an explicit mapping, every problem reported at once, nothing secret
echoed or kept, and turned faithfully into the verification core's configuration."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from litestar_logto import KeySetPolicy, LogtoAuthConfig, VerifierPolicy

from resource_api.settings import Settings, SettingsError, load_settings

ENDPOINT = "https://tenant.logto.app"
REQUIRED = {"LOGTO_ENDPOINT": ENDPOINT}


def _problems(environ: dict[str, str]) -> tuple[str, ...]:
    with pytest.raises(SettingsError) as caught:
        load_settings(environ)
    return caught.value.problems


def test_defaults_apply_when_only_the_endpoint_is_set() -> None:
    """With LOGTO_ENDPOINT alone every other setting takes its documented default."""
    assert load_settings(REQUIRED) == Settings(
        logto_endpoint=ENDPOINT,
        shopping_resource="https://shopping.your-app.com/api",
        store_resource="https://store.your-app.com/api",
        resource_api_url=None,
        database=Path("data/resource_api.sqlite3"),
        algorithms=frozenset({"ES256", "ES384", "ES512", "RS256"}),
        leeway_seconds=30.0,
        jwks_timeout_seconds=5.0,
        jwks_cooldown_seconds=30.0,
        jwks_refresh_seconds=300.0,
        jwks_max_stale_seconds=21600.0,
        token_cache_size=10_000,
        log_level="INFO",
    )


@pytest.mark.parametrize(
    ("variable", "value", "field", "expected"),
    [
        pytest.param(
            "LOGTO_ENDPOINT",
            "https://t.logto.app/",
            "logto_endpoint",
            "https://t.logto.app",
            id="endpoint-trailing-slash-stripped",
        ),
        pytest.param(
            "LOGTO_ENDPOINT",
            "http://127.0.0.1:3001",
            "logto_endpoint",
            "http://127.0.0.1:3001",
            id="endpoint-plain-http-for-local-issuer",
        ),
        pytest.param(
            "LOGTO_ENDPOINT",
            "  https://t.logto.app  ",
            "logto_endpoint",
            "https://t.logto.app",
            id="endpoint-blanks-stripped",
        ),
        pytest.param(
            "SHOPPING_RESOURCE",
            "urn:shop",
            "shopping_resource",
            "urn:shop",
            id="indicator-any-absolute-uri",
        ),
        pytest.param(
            "STORE_RESOURCE",
            "https://store.example/api/",
            "store_resource",
            "https://store.example/api/",
            id="indicator-kept-verbatim",
        ),
        pytest.param(
            "RESOURCE_API_URL",
            "https://api.example/v1/",
            "resource_api_url",
            "https://api.example/v1",
            id="public-url-trailing-slash-stripped",
        ),
        pytest.param("RESOURCE_API_URL", "", "resource_api_url", None, id="empty-means-unset"),
        pytest.param(
            "RESOURCE_API_DATABASE",
            "/var/lib/api/db.sqlite3",
            "database",
            Path("/var/lib/api/db.sqlite3"),
            id="database-path",
        ),
        pytest.param(
            "LOGTO_ALGORITHMS",
            " ES384 , RS256 ,",
            "algorithms",
            frozenset({"ES384", "RS256"}),
            id="algorithms-blanks-and-trailing-comma",
        ),
        pytest.param("LOGTO_LEEWAY_SECONDS", "0", "leeway_seconds", 0.0, id="leeway-zero"),
        pytest.param("LOGTO_LEEWAY_SECONDS", "2.5", "leeway_seconds", 2.5, id="leeway-fraction"),
        pytest.param(
            "LOGTO_JWKS_TIMEOUT_SECONDS",
            "1.5",
            "jwks_timeout_seconds",
            1.5,
            id="timeout",
        ),
        pytest.param(
            "LOGTO_JWKS_COOLDOWN_SECONDS",
            "0",
            "jwks_cooldown_seconds",
            0.0,
            id="cooldown-zero",
        ),
        pytest.param(
            "LOGTO_JWKS_REFRESH_SECONDS",
            "60",
            "jwks_refresh_seconds",
            60.0,
            id="refresh",
        ),
        pytest.param(
            "LOGTO_JWKS_MAX_STALE_SECONDS",
            "300",
            "jwks_max_stale_seconds",
            300.0,
            id="max-stale-equal-to-refresh",
        ),
        pytest.param("LOGTO_TOKEN_CACHE_SIZE", "0", "token_cache_size", 0, id="cache-disabled"),
        pytest.param(
            "LOGTO_TOKEN_CACHE_SIZE",
            "10_000",
            "token_cache_size",
            10_000,
            id="cache-underscores",
        ),
        pytest.param(
            "LOGTO_REFUSAL_CACHE_SIZE", "0", "refusal_cache_size", 0, id="refusals-disabled"
        ),
        pytest.param(
            "LOGTO_REFUSAL_CACHE_SECONDS", "5", "refusal_cache_seconds", 5.0, id="refusals-5s"
        ),
        pytest.param(
            "LOGTO_SIGNATURE_THREADS", "0", "signature_threads", 0, id="signatures-inline"
        ),
        pytest.param("LOG_LEVEL", "debug", "log_level", "DEBUG", id="log-level-any-case"),
    ],
)
def test_a_valid_value_is_parsed(variable: str, value: str, field: str, expected: Any) -> None:
    """Each variable is parsed and normalised into its typed field."""
    settings = load_settings({**REQUIRED, variable: value})
    assert getattr(settings, field) == expected


@pytest.mark.parametrize(
    ("variable", "value", "problem"),
    [
        pytest.param(
            "LOGTO_ENDPOINT",
            "",
            "LOGTO_ENDPOINT is required",
            id="endpoint-empty",
        ),
        pytest.param(
            "LOGTO_ENDPOINT",
            "ftp://t.logto.app",
            "LOGTO_ENDPOINT must be an http(s) URL with a host",
            id="endpoint-not-http",
        ),
        pytest.param(
            "LOGTO_ENDPOINT",
            "t.logto.app",
            "LOGTO_ENDPOINT must be an http(s) URL with a host",
            id="endpoint-no-scheme",
        ),
        pytest.param(
            "LOGTO_ENDPOINT",
            "https://t.logto.app:http",
            "LOGTO_ENDPOINT must be a valid http(s) URL",
            id="endpoint-bad-port",
        ),
        pytest.param(
            "LOGTO_ENDPOINT",
            "https://t.logto.app/oidc",
            "LOGTO_ENDPOINT must be the tenant URL without /oidc (e.g. https://tenant.logto.app)",
            id="endpoint-with-oidc",
        ),
        pytest.param(
            "LOGTO_ENDPOINT",
            "https://admin:pw@t.logto.app",
            "LOGTO_ENDPOINT must not contain credentials",
            id="endpoint-with-credentials",
        ),
        pytest.param(
            "LOGTO_ENDPOINT",
            "https://t.logto.app/?x=1",
            "LOGTO_ENDPOINT must not have a query or fragment",
            id="endpoint-with-query",
        ),
        pytest.param(
            "SHOPPING_RESOURCE",
            "shopping api",
            "SHOPPING_RESOURCE must be an absolute URI (the API resource indicator)",
            id="indicator-with-space",
        ),
        pytest.param(
            "STORE_RESOURCE",
            "store",
            "STORE_RESOURCE must be an absolute URI (the API resource indicator)",
            id="indicator-relative",
        ),
        pytest.param(
            "RESOURCE_API_URL",
            "api.example",
            "RESOURCE_API_URL must be an http(s) URL with a host",
            id="public-url-no-scheme",
        ),
        pytest.param(
            "LOGTO_ALGORITHMS",
            "HS256",
            "LOGTO_ALGORITHMS must be a comma-separated list drawn from ES256, ES384, ES512, "
            "EdDSA, PS256, PS384, PS512, RS256, RS384, RS512",
            id="algorithms-hmac",
        ),
        pytest.param(
            "LOGTO_ALGORITHMS",
            "RS256,none",
            "LOGTO_ALGORITHMS must be a comma-separated list drawn from ES256, ES384, ES512, "
            "EdDSA, PS256, PS384, PS512, RS256, RS384, RS512",
            id="algorithms-with-none",
        ),
        pytest.param(
            "LOGTO_ALGORITHMS",
            ",",
            "LOGTO_ALGORITHMS must be a comma-separated list drawn from ES256, ES384, ES512, "
            "EdDSA, PS256, PS384, PS512, RS256, RS384, RS512",
            id="algorithms-empty-list",
        ),
        pytest.param(
            "LOGTO_LEEWAY_SECONDS",
            "thirty",
            "LOGTO_LEEWAY_SECONDS must be a number of seconds",
            id="leeway-not-a-number",
        ),
        pytest.param(
            "LOGTO_LEEWAY_SECONDS",
            "-1",
            "LOGTO_LEEWAY_SECONDS must be between 0 and 300 seconds",
            id="leeway-negative",
        ),
        pytest.param(
            "LOGTO_LEEWAY_SECONDS",
            "301",
            "LOGTO_LEEWAY_SECONDS must be between 0 and 300 seconds",
            id="leeway-too-large",
        ),
        pytest.param(
            "LOGTO_LEEWAY_SECONDS",
            "nan",
            "LOGTO_LEEWAY_SECONDS must be a finite number of seconds",
            id="leeway-nan",
        ),
        pytest.param(
            "LOGTO_JWKS_TIMEOUT_SECONDS",
            "0",
            "LOGTO_JWKS_TIMEOUT_SECONDS must be more than 0 and at most 60 seconds",
            id="timeout-zero",
        ),
        pytest.param(
            "LOGTO_JWKS_TIMEOUT_SECONDS",
            "inf",
            "LOGTO_JWKS_TIMEOUT_SECONDS must be a finite number of seconds",
            id="timeout-infinite",
        ),
        pytest.param(
            "LOGTO_JWKS_COOLDOWN_SECONDS",
            "-5",
            "LOGTO_JWKS_COOLDOWN_SECONDS must be between 0 and 3600 seconds",
            id="cooldown-negative",
        ),
        pytest.param(
            "LOGTO_JWKS_REFRESH_SECONDS",
            "5m",
            "LOGTO_JWKS_REFRESH_SECONDS must be a number of seconds",
            id="refresh-with-unit",
        ),
        pytest.param(
            "LOGTO_JWKS_MAX_STALE_SECONDS",
            "-1",
            "LOGTO_JWKS_MAX_STALE_SECONDS must be more than 0 and at most 604800 seconds",
            id="max-stale-negative",
        ),
        pytest.param(
            "LOGTO_TOKEN_CACHE_SIZE",
            "1.5",
            "LOGTO_TOKEN_CACHE_SIZE must be a whole number",
            id="cache-fraction",
        ),
        pytest.param(
            "LOGTO_TOKEN_CACHE_SIZE",
            "-1",
            "LOGTO_TOKEN_CACHE_SIZE must be between 0 and 1000000",
            id="cache-negative",
        ),
        pytest.param(
            "LOG_LEVEL",
            "verbose",
            "LOG_LEVEL must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL",
            id="log-level",
        ),
    ],
)
def test_an_invalid_value_is_reported(variable: str, value: str, problem: str) -> None:
    """An invalid value is refused with one problem naming the variable and the rule."""
    assert _problems({**REQUIRED, variable: value}) == (problem,)


@pytest.mark.parametrize(
    ("environ", "problem"),
    [
        pytest.param(
            {"SHOPPING_RESOURCE": "https://api.example/", "STORE_RESOURCE": "https://api.example/"},
            "SHOPPING_RESOURCE and STORE_RESOURCE must differ: a token for one API would be "
            "accepted by the other",
            id="same-indicator-twice",
        ),
        pytest.param(
            {"STORE_RESOURCE": "https://shopping.your-app.com/api"},
            "SHOPPING_RESOURCE and STORE_RESOURCE must differ: a token for one API would be "
            "accepted by the other",
            id="store-set-to-shopping-default",
        ),
        pytest.param(
            {"LOGTO_JWKS_MAX_STALE_SECONDS": "200"},
            "LOGTO_JWKS_MAX_STALE_SECONDS must be at least LOGTO_JWKS_REFRESH_SECONDS",
            id="max-stale-below-default-refresh",
        ),
        pytest.param(
            {"LOGTO_JWKS_REFRESH_SECONDS": "600", "LOGTO_JWKS_MAX_STALE_SECONDS": "599"},
            "LOGTO_JWKS_MAX_STALE_SECONDS must be at least LOGTO_JWKS_REFRESH_SECONDS",
            id="max-stale-below-refresh",
        ),
    ],
)
def test_conflicting_values_are_reported(environ: dict[str, str], problem: str) -> None:
    """Two individually valid values that contradict each other are refused."""
    assert _problems({**REQUIRED, **environ}) == (problem,)


def test_every_problem_is_reported_together() -> None:
    """A missing endpoint and several invalid values come back in one error, in order."""
    environ = {
        "LOGTO_ALGORITHMS": "HS256",
        "LOGTO_LEEWAY_SECONDS": "x",
        "LOGTO_TOKEN_CACHE_SIZE": "many",
        "LOG_LEVEL": "loud",
    }
    with pytest.raises(SettingsError) as caught:
        load_settings(environ)
    assert [problem.split(" ", 1)[0] for problem in caught.value.problems] == [
        "LOGTO_ENDPOINT",
        "LOGTO_ALGORITHMS",
        "LOGTO_LEEWAY_SECONDS",
        "LOGTO_TOKEN_CACHE_SIZE",
        "LOG_LEVEL",
    ]
    assert str(caught.value).startswith("invalid configuration:\n  - LOGTO_ENDPOINT is required")


def test_a_conflict_check_is_skipped_when_one_of_its_values_is_invalid() -> None:
    """An unparsable refresh interval is reported alone, not also as a conflict with max-stale."""
    problems = _problems(
        {**REQUIRED, "LOGTO_JWKS_REFRESH_SECONDS": "soon", "LOGTO_JWKS_MAX_STALE_SECONDS": "10"}
    )
    assert problems == ("LOGTO_JWKS_REFRESH_SECONDS must be a number of seconds",)


def test_the_process_environment_is_never_read(monkeypatch: pytest.MonkeyPatch) -> None:
    """Only the mapping passed in counts: os.environ's LOGTO_ENDPOINT is ignored."""
    monkeypatch.setenv("LOGTO_ENDPOINT", ENDPOINT)
    assert _problems({}) == ("LOGTO_ENDPOINT is required",)


def test_unrelated_secrets_of_the_environment_are_not_kept() -> None:
    """The client app's secrets in the same environment appear nowhere in the settings."""
    settings = load_settings(
        {**REQUIRED, "LOGTO_APP_SECRET": "app-secret-value", "SESSION_SECRET": "session-value"}
    )
    assert "app-secret-value" not in repr(settings)
    assert "session-value" not in repr(settings)


@pytest.mark.parametrize(
    ("variable", "value", "secret"),
    [
        pytest.param(
            "LOGTO_ENDPOINT", "https://admin:hunter2@t.logto.app", "hunter2", id="url-password"
        ),
        pytest.param("LOGTO_LEEWAY_SECONDS", "pasted-secret-123", "pasted-secret-123", id="number"),
        pytest.param("LOGTO_ALGORITHMS", "ES384,sk_live_abc", "sk_live_abc", id="algorithms"),
        pytest.param("LOG_LEVEL", "sk_live_abc", "sk_live_abc", id="log-level"),
        pytest.param(
            "DATABASE_URL", "postgresql://api:hunter2@db:notaport/api", "hunter2", id="db-port"
        ),
        pytest.param("DATABASE_URL", "mysql://api:hunter2@db:5432/api", "hunter2", id="db-scheme"),
        pytest.param("DATABASE_URL", "postgresql://api:hunter 2@db/api", "hunter", id="db-space"),
        pytest.param("DATABASE_URL", "postgresql://api:hunter2@db/", "hunter2", id="db-no-name"),
        pytest.param(
            "DATABASE_URL", "postgresql://api:hunter2@db/api?sslmode", "hunter2", id="db-query"
        ),
    ],
)
def test_an_invalid_value_is_never_echoed(variable: str, value: str, secret: str) -> None:
    """Errors name the variable, never its value: a secret pasted in the wrong place stays put."""
    with pytest.raises(SettingsError) as caught:
        load_settings({**REQUIRED, variable: value})
    assert secret not in str(caught.value)


def test_database_url_selects_postgresql_and_is_kept_secret() -> None:
    """DATABASE_URL is held as a Secret: its password is in neither repr(settings) nor str()."""
    url = "postgresql://api:hunter2@db.internal:5432/orders?sslmode=require"
    settings = load_settings({**REQUIRED, "DATABASE_URL": url})
    assert settings.database_url is not None
    assert settings.database_url.reveal() == url
    assert "hunter2" not in repr(settings)
    assert "hunter2" not in str(settings.database_url)


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://api@127.0.0.1/orders",
        "postgres://api:pw@db:6432/orders",
        "postgresql:///orders?host=/run/postgresql",
    ],
)
def test_database_url_forms_are_accepted(url: str) -> None:
    """TCP with or without a password or port, the short scheme, a Unix socket's directory."""
    settings = load_settings({**REQUIRED, "DATABASE_URL": url})
    assert settings.database_url is not None
    assert settings.database_url.reveal() == url


def test_a_malformed_database_url_says_what_is_expected() -> None:
    """The problem names the variable and the expected shape, not the value."""
    assert _problems({**REQUIRED, "DATABASE_URL": "postgresql://api:hunter2@db:x/api"}) == (
        "DATABASE_URL must be a postgresql://[user[:password]@]host[:port]/database URL",
    )


def test_sqlite_file_and_database_url_together_are_refused() -> None:
    """Both store variables set is a mistake to report, not a silent choice."""
    environ = {**REQUIRED, "RESOURCE_API_DATABASE": "x.sqlite3", "DATABASE_URL": "postgresql://h/d"}
    assert _problems(environ) == (
        (
            "RESOURCE_API_DATABASE (a SQLite file) and DATABASE_URL (PostgreSQL) are both set: "
            "set only the one naming the store to use"
        ),
    )


def test_settings_are_frozen() -> None:
    """Settings cannot be changed after loading."""
    settings = load_settings(REQUIRED)
    with pytest.raises(AttributeError):
        settings.log_level = "DEBUG"  # type: ignore[misc]


def test_auth_config_carries_every_verification_setting() -> None:
    """The core's configuration gets the indicators, algorithms, policies and public URL."""
    settings = load_settings(
        {
            **REQUIRED,
            "SHOPPING_RESOURCE": "https://shop.example/api",
            "STORE_RESOURCE": "https://store.example/api",
            "RESOURCE_API_URL": "https://api.example",
            "LOGTO_ALGORITHMS": "ES384",
            "LOGTO_LEEWAY_SECONDS": "10",
            "LOGTO_JWKS_TIMEOUT_SECONDS": "2",
            "LOGTO_JWKS_COOLDOWN_SECONDS": "15",
            "LOGTO_JWKS_REFRESH_SECONDS": "120",
            "LOGTO_JWKS_MAX_STALE_SECONDS": "3600",
            "LOGTO_TOKEN_CACHE_SIZE": "50",
        }
    )
    assert settings.auth_config() == LogtoAuthConfig(
        endpoint=ENDPOINT,
        resources={"shopping": "https://shop.example/api", "store": "https://store.example/api"},
        algorithms=frozenset({"ES384"}),
        verifier=VerifierPolicy(leeway=10.0, cache_size=50),
        key_set=KeySetPolicy(timeout=2.0, cooldown=15.0, refresh_interval=120.0, max_stale=3600.0),
        public_url="https://api.example",
    )


def test_the_refusal_cache_settings_reach_the_verifier() -> None:
    """LOGTO_REFUSAL_CACHE_SIZE / _SECONDS become the verifier policy's refusal cache."""
    settings = load_settings(
        {
            "LOGTO_ENDPOINT": "https://t.logto.app",
            "LOGTO_REFUSAL_CACHE_SIZE": "42",
            "LOGTO_REFUSAL_CACHE_SECONDS": "7.5",
        }
    )
    policy = settings.auth_config().verifier
    assert (policy.refusal_cache_size, policy.refusal_cache_seconds) == (42, 7.5)
    defaults = load_settings({"LOGTO_ENDPOINT": "https://t.logto.app"}).auth_config().verifier
    assert (defaults.refusal_cache_size, defaults.refusal_cache_seconds) == (10_000, 60.0)


def test_the_signature_threads_reach_the_verifier() -> None:
    """LOGTO_SIGNATURE_THREADS becomes the verifier policy's signature threads (default 1)."""
    settings = load_settings(
        {"LOGTO_ENDPOINT": "https://t.logto.app", "LOGTO_SIGNATURE_THREADS": "3"}
    )
    assert settings.auth_config().verifier.signature_threads == 3
    defaults = load_settings({"LOGTO_ENDPOINT": "https://t.logto.app"}).auth_config().verifier
    assert defaults.signature_threads == 1


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        (
            "LOGTO_REFUSAL_CACHE_SIZE",
            "-1",
            "LOGTO_REFUSAL_CACHE_SIZE must be between 0 and 1000000",
        ),
        (
            "LOGTO_REFUSAL_CACHE_SECONDS",
            "3601",
            "LOGTO_REFUSAL_CACHE_SECONDS must be between 0 and 3600 seconds",
        ),
        ("LOGTO_SIGNATURE_THREADS", "65", "LOGTO_SIGNATURE_THREADS must be between 0 and 64"),
        ("LOGTO_SIGNATURE_THREADS", "two", "LOGTO_SIGNATURE_THREADS must be a whole number"),
    ],
)
def test_refusal_cache_settings_out_of_range_are_refused(
    variable: str, value: str, message: str
) -> None:
    """Out-of-range refusal cache settings are configuration errors naming the variable."""
    with pytest.raises(SettingsError) as caught:
        load_settings({"LOGTO_ENDPOINT": "https://t.logto.app", variable: value})
    assert message in str(caught.value)
