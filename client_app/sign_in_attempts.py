"""A sign-in attempt kept by the browser, sealed: no server storage before the callback.

``GET /sign-in`` is anonymous and needs no CSRF token, so anything it stored on the server
would let a loop fill the store (a document per request, kept an hour). The attempt (the SDK's
``signInSession``: redirect URI, ``state``, PKCE ``code_verifier``; the return path; when it
started) instead travels in a cookie of its own, ``client_app_sign_in`` (``__Host-`` prefixed
over https), HttpOnly, SameSite=Lax (Logto's redirect to ``/callback`` is a top-level GET, so
the cookie comes back with it), living Logto's interaction hour.

Sealed, not merely signed: AES-256-GCM (``cryptography``)
under a key derived from ``SESSION_SECRET``, a random 96-bit nonce per attempt. Signing alone
would stop forgery but show the ``code_verifier`` to whoever sees the cookie (a proxy or server
log recording ``Cookie`` headers, a browser extension, a copied cookie jar): with an
intercepted authorization code, the verifier is what PKCE keeps secret (RFC 7636 §1). Sealed,
the cookie tells nothing of the attempt, and an altered, truncated or foreign one (another
``SESSION_SECRET``) opens to nothing: the callback answers "no sign-in was started".
"""

from __future__ import annotations

import base64
import binascii
import hmac
import os
from typing import Final

import msgspec
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from litestar.datastructures import Cookie

from .sessions import browser_cookie
from .settings import Secret, Settings

ATTEMPT_COOKIE_NAME: Final = "client_app_sign_in"
SECURE_ATTEMPT_COOKIE_NAME: Final = f"__Host-{ATTEMPT_COOKIE_NAME}"
ATTEMPT_MAX_AGE_SECONDS: Final = 3600
"""Logto's sign-in interaction lives one hour; an older attempt cannot complete."""
MAX_SEALED_LENGTH: Final = 4096
"""Longer than any attempt this app seals; a longer cookie is not even decoded."""
_NONCE_BYTES: Final = 12
_ASSOCIATED_DATA: Final = b"client_app sign-in attempt v1"


class SignInAttempt(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One sign-in in progress."""

    sdk_session: str
    """The SDK's ``signInSession`` (JSON: redirect URI, state, PKCE code verifier)."""
    return_to: str
    started_at: int
    """Unix time the attempt started (the callback refuses one older than an hour)."""


class AttemptSealer:
    """Seal and open attempts with a key derived from ``SESSION_SECRET``."""

    def __init__(self, secret: Secret) -> None:
        key = hmac.digest(secret.reveal().encode(), b"client_app sign-in attempt key", "sha256")
        self._cipher = AESGCM(key)

    def seal(self, attempt: SignInAttempt) -> str:
        """The cookie value: base64url(nonce || ciphertext and tag), no padding."""
        nonce = os.urandom(_NONCE_BYTES)
        sealed = self._cipher.encrypt(nonce, msgspec.json.encode(attempt), _ASSOCIATED_DATA)
        return base64.urlsafe_b64encode(nonce + sealed).rstrip(b"=").decode("ascii")

    def open(self, value: str | None) -> SignInAttempt | None:
        """The attempt sealed in ``value``; ``None`` if missing, altered, foreign or garbled."""
        if not value or len(value) > MAX_SEALED_LENGTH:
            return None
        try:
            raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
            nonce, sealed = raw[:_NONCE_BYTES], raw[_NONCE_BYTES:]
            if len(nonce) != _NONCE_BYTES:
                return None
            plain = self._cipher.decrypt(nonce, sealed, _ASSOCIATED_DATA)
            return msgspec.json.decode(plain, type=SignInAttempt)
        except (binascii.Error, ValueError, InvalidTag, msgspec.DecodeError):
            return None


def attempt_cookie_name(settings: Settings) -> str:
    """The attempt cookie's name: ``__Host-`` prefixed when served over https."""
    return SECURE_ATTEMPT_COOKIE_NAME if settings.secure_cookies else ATTEMPT_COOKIE_NAME


def attempt_cookie(settings: Settings, sealed: str) -> Cookie:
    """The cookie carrying a sealed attempt: HttpOnly, SameSite=Lax, an hour at most."""
    return browser_cookie(settings, attempt_cookie_name(settings), sealed, ATTEMPT_MAX_AGE_SECONDS)


def expired_attempt_cookie(settings: Settings) -> Cookie:
    """A cookie that makes the browser drop a finished attempt."""
    return browser_cookie(settings, attempt_cookie_name(settings), "", 0)


def sealed_attempt_from_cookies(cookies: dict[str, str], settings: Settings) -> str | None:
    """The sealed attempt the browser sent, if any."""
    return cookies.get(attempt_cookie_name(settings)) or None
