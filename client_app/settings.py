"""The client app's configuration, built once from an explicit mapping (the environment).

``load_settings(os.environ)`` is called by ``__main__`` only; everything else receives a
:class:`Settings`. Every problem of the mapping is reported together in one
:class:`SettingsError`. Values are never echoed back in errors (the variable table is read by
:func:`service_kit.env.read_variables`, shared with the resource API), and the two secrets are held
in :class:`Secret`, whose ``repr`` and ``str`` hide them, so neither ``repr(settings)`` nor a
log line can leak one. ``SESSION_REDIS_URL`` is held the same way: it may carry a password.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Set
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit

import msgspec

from service_kit import env, secret

SettingsError = env.SettingsError  # what load_settings raises, shared by both programs
Secret = secret.Secret  # shared with the resource API (DATABASE_URL)
DEFAULT_SHOPPING_RESOURCE: Final = "https://shopping.your-app.com/api"
DEFAULT_STORE_RESOURCE: Final = "https://store.your-app.com/api"
DEFAULT_RESOURCE_API_URL: Final = "http://127.0.0.1:8001"
DEFAULT_BASE_URL: Final = "http://127.0.0.1:8000"
DEFAULT_SESSION_DATABASE: Final = "data/client_sessions"
REDIS_SCHEMES: Final = ("redis", "rediss", "unix")
DEFAULT_SCOPES: Final = (
    "email",
    "phone",
    "custom_data",
    "identities",
    "roles",
    "urn:logto:scope:organizations",
    "urn:logto:scope:organization_roles",
)
"""The user-information scopes of Logto's Python guide (``openid``, ``profile`` and
``offline_access`` are always added by the SDK)."""
MIN_SESSION_SECRET_LENGTH: Final = 32
FOURTEEN_DAYS: Final = 14 * 24 * 3600
# RFC 6749 §3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E )
_SCOPE_TOKEN: Final = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]+")


class Settings(msgspec.Struct, frozen=True, kw_only=True):
    """Everything the client app is configured with."""

    logto_endpoint: str
    """The Logto tenant URL without ``/oidc`` and without a trailing slash."""
    app_id: str
    """The client ID of the Logto traditional web application."""
    app_secret: Secret
    """Its client secret (a traditional web app always has one)."""
    session_secret: Secret
    """Keys the session store and the CSRF tokens (at least 32 characters)."""
    shopping_resource: str = DEFAULT_SHOPPING_RESOURCE
    """API resource indicator of the shopping API."""
    store_resource: str = DEFAULT_STORE_RESOURCE
    """API resource indicator of the store API."""
    resource_api_url: str = DEFAULT_RESOURCE_API_URL
    """Base URL of the resource API this app calls."""
    base_url: str = DEFAULT_BASE_URL
    """This app's public origin; the redirect URI is ``<base>/callback``."""
    scopes: tuple[str, ...] = DEFAULT_SCOPES
    """Extra user-information scopes requested at sign-in."""
    session_database: Path = Path(DEFAULT_SESSION_DATABASE)
    """Directory of the embedded session store (unused when ``session_redis_url`` is set)."""
    session_redis_url: Secret | None = None
    """Redis shared by the app's replicas for sessions and their locks (``redis://``,
    ``rediss://`` or ``unix://``); ``None``: the embedded store in ``session_database``."""
    session_max_age_seconds: int = FOURTEEN_DAYS
    """How long a session (and its cookie) lives: Logto's refresh-token lifetime by default."""
    logto_timeout_seconds: float = 10.0
    """Longest a call to the issuer (discovery, token, userinfo, revocation) may take."""
    resource_api_timeout_seconds: float = 10.0
    """Longest a call to the resource API may take."""
    log_level: str = "INFO"
    """Root log level."""

    @property
    def redirect_uri(self) -> str:
        """Where Logto sends the user back after sign-in (register it in the Console)."""
        return f"{self.base_url}/callback"

    @property
    def post_logout_redirect_uri(self) -> str:
        """Where Logto sends the user back after sign-out (register it in the Console)."""
        return f"{self.base_url}/"

    @property
    def secure_cookies(self) -> bool:
        """Cookies carry ``Secure`` (and the ``__Host-`` prefix) when the app is served over
        https."""
        return self.base_url.startswith("https://")


def load_settings(environ: Mapping[str, str]) -> Settings:
    """Build :class:`Settings` from ``environ``; raise :class:`SettingsError` listing every
    missing or invalid variable. An empty value counts as unset (the default applies)."""
    return Settings(**env.read_variables(environ, _VARIABLES, _cross_checks))


def _cross_checks(values: Mapping[str, Any], failed: Set[str]) -> list[str]:
    """Rules between two variables, checked only when both parsed (or took their default)."""
    shopping = values.get("shopping_resource", DEFAULT_SHOPPING_RESOURCE)
    store = values.get("store_resource", DEFAULT_STORE_RESOURCE)
    if not failed & {"shopping_resource", "store_resource"} and shopping == store:
        return ["SHOPPING_RESOURCE and STORE_RESOURCE must differ"]
    return []


def _origin(raw: str) -> str:
    url = env.http_url(raw)
    if urlsplit(url).path:
        raise ValueError("must be an origin (scheme://host[:port]) without a path")
    return url


def _indicator(raw: str) -> str:
    # RFC 8707 §2: an absolute URI without a fragment; compared verbatim with `aud`.
    if any(ch.isspace() for ch in raw) or not urlsplit(raw).scheme or "#" in raw:
        raise ValueError("must be an absolute URI without a fragment (the API resource indicator)")
    return raw


def _client_id(raw: str) -> str:
    if not raw.isprintable() or any(ch.isspace() for ch in raw):
        raise ValueError("must be the application's client ID (printable, no spaces)")
    return raw


def _redis_url(raw: str) -> Secret:
    # Never echo the value: it may carry a password (redis://:password@host).
    if any(ch.isspace() for ch in raw):
        raise ValueError("must be a URL without spaces")
    try:
        parts = urlsplit(raw)
        port = parts.port  # raises ValueError on a malformed port
    except ValueError as exc:
        raise ValueError("must be a valid redis://, rediss:// or unix:// URL") from exc
    if parts.scheme not in REDIS_SCHEMES:
        raise ValueError("must be a redis://, rediss:// or unix:// URL")
    if parts.fragment:
        raise ValueError("must be a URL without a fragment")
    if parts.scheme == "unix":
        if not parts.path.startswith("/") or port is not None:
            raise ValueError("must name the socket's absolute path (unix:///path/redis.sock)")
        return Secret(raw)
    if not parts.hostname:
        raise ValueError("must be a redis:// or rediss:// URL with a host")
    database = parts.path.lstrip("/")
    if database and not database.isdigit():
        raise ValueError("must name a database by number (redis://host:6379/0)")
    return Secret(raw)


def _secret(raw: str) -> Secret:
    return Secret(raw)


def _session_secret(raw: str) -> Secret:
    if len(raw) < MIN_SESSION_SECRET_LENGTH:
        raise ValueError(
            f"must be at least {MIN_SESSION_SECRET_LENGTH} characters "
            '(e.g. python -c "import secrets; print(secrets.token_urlsafe(32))")'
        )
    return Secret(raw)


def _scopes(raw: str) -> tuple[str, ...]:
    names = [name.strip() for name in raw.split(",") if name.strip()]
    if not all(_SCOPE_TOKEN.fullmatch(name) for name in names):
        raise ValueError("must be a comma-separated list of scope names (RFC 6749 scope-token)")
    return tuple(dict.fromkeys(names))


def _positive_seconds(high: float) -> Callable[[str], float]:
    def parse(raw: str) -> float:
        try:
            value = float(raw)
        except ValueError as exc:
            raise ValueError("must be a number of seconds") from exc
        if not math.isfinite(value) or not 0 < value <= high:
            raise ValueError(f"must be more than 0 and at most {high:g} seconds")
        return value

    return parse


def _whole_seconds(low: int, high: int) -> Callable[[str], int]:
    def parse(raw: str) -> int:
        try:
            value = int(raw)
        except ValueError as exc:
            raise ValueError("must be a whole number of seconds") from exc
        if not low <= value <= high:
            raise ValueError(f"must be between {low} and {high} seconds")
        return value

    return parse


_VARIABLES: Final = (
    env.Variable("LOGTO_ENDPOINT", "logto_endpoint", env.logto_endpoint, required=True),
    env.Variable("LOGTO_APP_ID", "app_id", _client_id, required=True),
    env.Variable("LOGTO_APP_SECRET", "app_secret", _secret, required=True),
    env.Variable("SESSION_SECRET", "session_secret", _session_secret, required=True),
    env.Variable("SHOPPING_RESOURCE", "shopping_resource", _indicator),
    env.Variable("STORE_RESOURCE", "store_resource", _indicator),
    env.Variable("RESOURCE_API_URL", "resource_api_url", env.http_url),
    env.Variable("CLIENT_APP_BASE_URL", "base_url", _origin),
    env.Variable("LOGTO_SCOPES", "scopes", _scopes),
    env.Variable("SESSION_DATABASE", "session_database", Path),
    env.Variable("SESSION_REDIS_URL", "session_redis_url", _redis_url),
    env.Variable(
        "SESSION_MAX_AGE_SECONDS", "session_max_age_seconds", _whole_seconds(300, 90 * 86400)
    ),
    env.Variable("LOGTO_TIMEOUT_SECONDS", "logto_timeout_seconds", _positive_seconds(60.0)),
    env.Variable(
        "RESOURCE_API_TIMEOUT_SECONDS", "resource_api_timeout_seconds", _positive_seconds(60.0)
    ),
    env.Variable("LOG_LEVEL", "log_level", env.log_level),
)
"""Every variable read, in the order problems are reported."""
