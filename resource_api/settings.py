"""The resource API's configuration, built once from an explicit mapping (the environment).

``load_settings(os.environ)`` is called by ``__main__`` only; everything else receives a
:class:`Settings`. Every problem of the mapping is collected and reported in one
:class:`SettingsError`, so a deployment is fixed in one round trip (the variable table is read
by :func:`service_kit.env.read_variables`, shared with the client app). Values are never echoed
back in errors (an operator may paste a secret into the wrong variable), and URLs carrying
credentials are refused, so neither ``repr(settings)`` nor an error message can leak one; the
one exception, ``DATABASE_URL`` (PostgreSQL's connection string, which may carry a password), is
held in a :class:`~service_kit.secret.Secret`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Set
from pathlib import Path
from typing import Any, Final
from urllib.parse import parse_qsl, urlsplit

import msgspec
from litestar_logto import KeySetPolicy, LogtoAuthConfig, VerifierPolicy
from litestar_logto.keys import LOGTO_ALGORITHMS, SUPPORTED_ALGORITHMS, validate_algorithms

from service_kit import env
from service_kit.secret import Secret

SettingsError = env.SettingsError  # what load_settings raises, shared by both programs
DEFAULT_SHOPPING_RESOURCE: Final = "https://shopping.your-app.com/api"
DEFAULT_STORE_RESOURCE: Final = "https://store.your-app.com/api"
DEFAULT_DATABASE: Final = "data/resource_api.sqlite3"
POSTGRES_SCHEMES: Final = ("postgresql", "postgres")
MAX_LEEWAY_SECONDS: Final = 300.0
"""More clock skew than this would quietly extend every token's life."""
MAX_SIGNATURE_THREADS: Final = 64


class Settings(msgspec.Struct, frozen=True, kw_only=True):
    """Everything the resource API is configured with (no secrets: it only verifies tokens)."""

    logto_endpoint: str
    """The Logto tenant URL without ``/oidc`` and without a trailing slash."""
    shopping_resource: str = DEFAULT_SHOPPING_RESOURCE
    """API resource indicator (token ``aud``) of the shopping API."""
    store_resource: str = DEFAULT_STORE_RESOURCE
    """API resource indicator (token ``aud``) of the store API."""
    resource_api_url: str | None = None
    """This API's public base URL, for RFC 9728 ``resource_metadata``; the request's if unset."""
    database: Path = Path(DEFAULT_DATABASE)
    """The SQLite file holding orders, products and organization members (unless
    ``database_url`` is set)."""
    database_url: Secret | None = None
    """A PostgreSQL connection string (``postgresql://...``): the store is then PostgreSQL,
    shared by every replica, instead of the SQLite file."""
    algorithms: frozenset[str] = LOGTO_ALGORITHMS
    """Signature algorithms accepted on access tokens."""
    leeway_seconds: float = 30.0
    """Clock skew tolerated on ``exp``/``nbf``/``iat``."""
    jwks_timeout_seconds: float = 5.0
    """Longest a whole key-set fetch may take."""
    jwks_cooldown_seconds: float = 30.0
    """Minimum time between two key-set fetches (bounds refetches on unknown ``kid``)."""
    jwks_refresh_seconds: float = 300.0
    """Keys older than this are revalidated in the background."""
    jwks_max_stale_seconds: float = 21600.0
    """How long last-known-good keys keep serving while the issuer is unreachable."""
    token_cache_size: int = 10_000
    """Verified tokens remembered (0 disables the cache)."""
    refusal_cache_size: int = 10_000
    """Refused well-formed tokens remembered (0 disables the refusal cache)."""
    refusal_cache_seconds: float = 60.0
    """How long a refusal is remembered at most (0 disables the refusal cache)."""
    signature_threads: int = 1
    """Threads per worker checking signatures off the event loop (0: on it)."""
    log_level: str = "INFO"
    """Root log level."""

    def auth_config(self) -> LogtoAuthConfig:
        """The verification core's configuration for these settings."""
        return LogtoAuthConfig(
            endpoint=self.logto_endpoint,
            resources={"shopping": self.shopping_resource, "store": self.store_resource},
            algorithms=self.algorithms,
            verifier=VerifierPolicy(
                leeway=self.leeway_seconds,
                cache_size=self.token_cache_size,
                refusal_cache_size=self.refusal_cache_size,
                refusal_cache_seconds=self.refusal_cache_seconds,
                signature_threads=self.signature_threads,
            ),
            key_set=KeySetPolicy(
                timeout=self.jwks_timeout_seconds,
                cooldown=self.jwks_cooldown_seconds,
                refresh_interval=self.jwks_refresh_seconds,
                max_stale=self.jwks_max_stale_seconds,
            ),
            public_url=self.resource_api_url,
        )


def load_settings(environ: Mapping[str, str]) -> Settings:
    """Build :class:`Settings` from ``environ``; raise :class:`SettingsError` listing every
    missing or invalid variable. An empty value counts as unset (the default applies)."""
    return Settings(**env.read_variables(environ, _VARIABLES, _cross_checks))


def _cross_checks(values: Mapping[str, Any], failed: Set[str]) -> list[str]:
    """Rules between two variables, checked only when both parsed (or took their default)."""
    problems = []
    settings = Settings(**{"logto_endpoint": "", **values})  # the defaults, then the values
    if not failed & {"shopping_resource", "store_resource"} and (
        settings.shopping_resource == settings.store_resource
    ):
        problems.append(
            "SHOPPING_RESOURCE and STORE_RESOURCE must differ: a token for one API would "
            "be accepted by the other"
        )
    if not failed & {"jwks_refresh_seconds", "jwks_max_stale_seconds"} and (
        settings.jwks_max_stale_seconds < settings.jwks_refresh_seconds
    ):
        problems.append("LOGTO_JWKS_MAX_STALE_SECONDS must be at least LOGTO_JWKS_REFRESH_SECONDS")
    if "database" in values and ("database_url" in values or "database_url" in failed):
        problems.append(
            "RESOURCE_API_DATABASE (a SQLite file) and DATABASE_URL (PostgreSQL) are both set: "
            "set only the one naming the store to use"
        )
    return problems


def _indicator(raw: str) -> str:
    # Logto API resource indicators are absolute URIs; they are compared verbatim with `aud`.
    if any(ch.isspace() for ch in raw) or not urlsplit(raw).scheme:
        raise ValueError("must be an absolute URI (the API resource indicator)")
    return raw


def _database_url(raw: str) -> Secret:
    # Never echo the value, nor a part of it: it may carry a password.
    expected = "must be a postgresql://[user[:password]@]host[:port]/database URL"
    if any(ch.isspace() or not ch.isprintable() for ch in raw):
        raise ValueError(f"{expected} without spaces")
    try:
        parts = urlsplit(raw)
        port = parts.port  # raises ValueError on a malformed port
        parse_qsl(parts.query, strict_parsing=bool(parts.query))
    except ValueError:
        raise ValueError(expected) from None
    if parts.scheme not in POSTGRES_SCHEMES or parts.fragment:
        raise ValueError(expected)
    host = parts.hostname or dict(parse_qsl(parts.query)).get("host")
    database = parts.path.lstrip("/")
    if not host or not database or "/" in database or port == 0:
        raise ValueError(expected)
    return Secret(raw)


def _algorithms(raw: str) -> frozenset[str]:
    names = [name.strip() for name in raw.split(",") if name.strip()]
    try:
        return validate_algorithms(names)
    except ValueError as exc:
        allowed = ", ".join(sorted(SUPPORTED_ALGORITHMS))
        raise ValueError(f"must be a comma-separated list drawn from {allowed}") from exc


def _number(raw: str) -> float:
    try:
        value = float(raw)
    except ValueError as exc:
        raise ValueError("must be a number of seconds") from exc
    if not math.isfinite(value):
        raise ValueError("must be a finite number of seconds")
    return value


def _seconds(low: float, high: float) -> Callable[[str], float]:
    def parse(raw: str) -> float:
        value = _number(raw)
        if not low <= value <= high:
            raise ValueError(f"must be between {low:g} and {high:g} seconds")
        return value

    return parse


def _positive_seconds(high: float) -> Callable[[str], float]:
    def parse(raw: str) -> float:
        value = _number(raw)
        if not 0 < value <= high:
            raise ValueError(f"must be more than 0 and at most {high:g} seconds")
        return value

    return parse


def _count(high: int) -> Callable[[str], int]:
    def parse(raw: str) -> int:
        try:
            value = int(raw)
        except ValueError as exc:
            raise ValueError("must be a whole number") from exc
        if not 0 <= value <= high:
            raise ValueError(f"must be between 0 and {high}")
        return value

    return parse


_VARIABLES: Final = (
    env.Variable("LOGTO_ENDPOINT", "logto_endpoint", env.logto_endpoint, required=True),
    env.Variable("SHOPPING_RESOURCE", "shopping_resource", _indicator),
    env.Variable("STORE_RESOURCE", "store_resource", _indicator),
    env.Variable("RESOURCE_API_URL", "resource_api_url", env.http_url),
    env.Variable("RESOURCE_API_DATABASE", "database", Path),
    env.Variable("DATABASE_URL", "database_url", _database_url),
    env.Variable("LOGTO_ALGORITHMS", "algorithms", _algorithms),
    env.Variable("LOGTO_LEEWAY_SECONDS", "leeway_seconds", _seconds(0.0, MAX_LEEWAY_SECONDS)),
    env.Variable("LOGTO_JWKS_TIMEOUT_SECONDS", "jwks_timeout_seconds", _positive_seconds(60.0)),
    env.Variable("LOGTO_JWKS_COOLDOWN_SECONDS", "jwks_cooldown_seconds", _seconds(0.0, 3600.0)),
    env.Variable("LOGTO_JWKS_REFRESH_SECONDS", "jwks_refresh_seconds", _positive_seconds(86400.0)),
    env.Variable(
        "LOGTO_JWKS_MAX_STALE_SECONDS", "jwks_max_stale_seconds", _positive_seconds(7 * 86400.0)
    ),
    env.Variable("LOGTO_TOKEN_CACHE_SIZE", "token_cache_size", _count(1_000_000)),
    env.Variable("LOGTO_REFUSAL_CACHE_SIZE", "refusal_cache_size", _count(1_000_000)),
    env.Variable("LOGTO_REFUSAL_CACHE_SECONDS", "refusal_cache_seconds", _seconds(0.0, 3600.0)),
    env.Variable("LOGTO_SIGNATURE_THREADS", "signature_threads", _count(MAX_SIGNATURE_THREADS)),
    env.Variable("LOG_LEVEL", "log_level", env.log_level),
)
"""Every variable read, in the order problems are reported."""
