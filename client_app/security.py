"""Browser-facing protections: return paths, CSRF tokens and response headers.

* :func:`safe_return_path` accepts a ``next`` value only if it is a path on this site: no
  scheme, no ``//host``, no backslash (browsers read ``/\\host`` as ``//host``), no control or
  whitespace characters (browsers drop tabs and newlines, turning ``/\\t/host`` into
  ``//host``), nothing outside printable ASCII; and, once percent-decoded and its dot segments
  resolved, neither ``//host`` nor the sign-in, sign-out or callback route.
* CSRF: a synchronizer token bound to the session, ``HMAC(SESSION_SECRET, session id)``,
  checked on every unsafe request together with the ``Origin`` header when the browser sends
  one (OWASP CSRF cheat sheet). A token stolen from another session, or minted without the
  secret, never matches.
* :func:`security_headers` (a ``before_send`` hook: every response, the router's 404 and 405
  included): a strict Content-Security-Policy, no framing, no sniffing, a
  referrer for this site only (``same-origin``: under ``no-referrer`` Chromium posts forms with
  ``Origin: null``), and ``Cache-Control: no-store`` on every page (they show personal data).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Iterable
from http import HTTPStatus
from typing import Final
from urllib.parse import unquote, urlsplit

from litestar.datastructures import MutableScopeHeaders
from litestar.types import BeforeMessageSendHookHandler, Message, Scope

from .settings import Secret

MAX_RETURN_PATH: Final = 2048
CSRF_FIELD: Final = "csrf_token"
CSRF_HEADER: Final = "x-csrf-token"
SAFE_METHODS: Final = frozenset({"GET", "HEAD", "OPTIONS"})
_NO_RETURN: Final = ("/sign-in", "/sign-out", "/callback")
"""Paths that would loop or act again when returned to after sign-in."""


def safe_return_path(value: str | None, default: str = "/") -> str:
    """``value`` if it is a relative path on this site, else ``default``."""
    return value if value is not None and _is_return_path(value) else default


def _is_return_path(value: str) -> bool:
    if not value or len(value) > MAX_RETURN_PATH:
        return False
    if not all("\x21" <= ch <= "\x7e" for ch in value) or "\\" in value:
        return False
    if not value.startswith("/") or value.startswith("//"):
        return False
    parts = urlsplit(value)
    if parts.scheme or parts.netloc:
        return False
    # What a browser, a proxy or a server may make of the path: percent-decoded, backslashes
    # as slashes, dot segments resolved (RFC 3986 §5.2.4). "/./sign-in", "/%2e/callback" and
    # "/sign-in/." are the sign-in again; "/.//host" and "/%2F%2Fhost" a host.
    resolved = _resolve_dots(unquote(parts.path).replace("\\", "/"))
    if resolved.startswith("//"):
        return False
    return re.sub("/+", "/", resolved).rstrip("/").lower() not in _NO_RETURN


def _resolve_dots(path: str) -> str:
    """``path`` (absolute) without ``.`` and ``..`` segments; empty segments kept."""
    segments: list[str] = []
    for segment in path.split("/")[1:]:
        if segment == "..":
            if segments:
                segments.pop()
        elif segment != ".":
            segments.append(segment)
    return "/" + "/".join(segments)


def csrf_token(secret: Secret, session_id: str) -> str:
    """The form token of ``session_id``."""
    key = hmac.digest(secret.reveal().encode(), b"client_app csrf", "sha256")
    digest = hmac.new(key, session_id.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def csrf_matches(secret: Secret, session_id: str | None, submitted: object) -> bool:
    """Whether ``submitted`` is the token of ``session_id`` (constant-time comparison)."""
    if session_id is None or not isinstance(submitted, str):
        return False
    return hmac.compare_digest(submitted.encode(), csrf_token(secret, session_id).encode())


def origin_allowed(origin: str | None, expected: str) -> bool:
    """A request without ``Origin`` passes (the token decides); with one, it must be ours."""
    return origin is None or origin == expected


def content_security_policy(form_targets: Iterable[str]) -> str:
    """This app's CSP: own styles, https images (avatars), forms to itself and the issuer
    (the sign-out form is redirected there, and ``form-action`` covers redirects)."""
    targets = " ".join(["'self'", *form_targets])
    return (
        "default-src 'none'; style-src 'self'; img-src 'self' https: data:; "
        f"form-action {targets}; frame-ancestors 'none'; base-uri 'none'"
    )


def security_headers(*, csp: str, static_prefix: str = "/static/") -> BeforeMessageSendHookHandler:
    """A ``before_send`` hook adding the headers to every HTTP response of the app.

    A hook, not a middleware: Litestar runs middleware only around route handlers, so the
    router's own answers (404 for no route, 405 for a wrong method) and the exception
    handlers' pages would go out without them. ``before_send`` wraps the app's ``send``
    itself. Static files may be cached; their error pages may not."""

    async def add_headers(message: Message, scope: Scope) -> None:
        if message["type"] != "http.response.start":
            return
        headers = MutableScopeHeaders.from_message(message)
        headers["Content-Security-Policy"] = csp
        headers["X-Content-Type-Options"] = "nosniff"
        headers["X-Frame-Options"] = "DENY"
        # same-origin, not no-referrer: under no-referrer Chromium sends "Origin: null" with
        # same-site form posts, which the CSRF check refuses.
        headers["Referrer-Policy"] = "same-origin"
        is_static = scope["path"].startswith(static_prefix)
        if not is_static or message["status"] >= HTTPStatus.BAD_REQUEST:
            headers["Cache-Control"] = "no-store"

    return add_headers
