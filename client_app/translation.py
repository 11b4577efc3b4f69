"""SDK, transport and token failures, in the words the user reads (``logto-tokens.md`` §6.11).

The one mapping from what :mod:`client_app.issuer_http` and the SDK raise to
:mod:`client_app.errors`. The issuer's own text (an error body, a description) never reaches
the page: a known RFC 6749 code gets our sentence, an unknown one is named by its code only.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from http import HTTPStatus
from types import UnionType
from typing import Final

import jwt
import pydantic

from .errors import AccessDenied, ClientAppError, IssuerProblem, IssuerUnavailable, SessionEnded
from .issuer_http import (
    InvalidIdToken,
    IssuerUnreachable,
    MissingClientSecret,
    OAuthError,
    UnexpectedAnswer,
)
from .logto_client import IdTokenSubjectChanged

logger = logging.getLogger("client_app.translation")

_SAFE_CODE: Final = re.compile(r"[^a-z0-9_.:-]")


def translate(exc: Exception) -> ClientAppError:
    """The user-facing error for an SDK, transport or token failure."""
    if isinstance(exc, IssuerUnreachable):
        return IssuerUnavailable(
            "Logto did not answer in time. Please try again in a moment."
            if exc.reason == "timeout"
            else None
        )
    if isinstance(exc, OAuthError):
        return _oauth_error(exc)
    for kinds, error in _FAILURES:
        if isinstance(exc, kinds):
            return error()
    logger.warning(
        "logto client error", extra={"event": "sdk_error", "error_type": type(exc).__name__}
    )
    return IssuerProblem("The sign-in library could not complete the request.")


_FAILURES: Final[tuple[tuple[type | UnionType, Callable[[], ClientAppError]], ...]] = (
    (
        MissingClientSecret,
        lambda: IssuerProblem("This app has no client secret configured (LOGTO_APP_SECRET)."),
    ),
    (
        IdTokenSubjectChanged,
        lambda: SessionEnded(
            "Logto renewed your sign-in for another account, so this session was ended. "
            "Please sign in again."
        ),
    ),
    (InvalidIdToken, lambda: IssuerProblem("Logto's ID token could not be verified.")),
    (UnexpectedAnswer | pydantic.ValidationError | jwt.PyJWTError, IssuerProblem),
)
"""Failures with one answer each, in the order they are tried."""


_OAUTH_ERRORS: Final[dict[str, Callable[[], ClientAppError]]] = {
    "invalid_grant": SessionEnded,
    "access_denied": lambda: AccessDenied(
        "Logto refused this token: you are not a member of this organization."
    ),
    "insufficient_scope": lambda: AccessDenied(
        "Sign in again to grant this app access to your organizations."
    ),
    "temporarily_unavailable": IssuerUnavailable,
    "invalid_client": lambda: IssuerProblem(
        "Logto did not accept this app's credentials (LOGTO_APP_ID/SECRET)."
    ),
    "invalid_target": lambda: IssuerProblem(
        "Logto does not know this API resource, or it was not requested at sign-in."
    ),
}
"""RFC 6749 §5.2 codes (and Logto's) that mean something to the user."""


def _oauth_error(exc: OAuthError) -> ClientAppError:
    known = _OAUTH_ERRORS.get(exc.error)
    if known is not None:
        return known()
    if exc.status >= HTTPStatus.INTERNAL_SERVER_ERROR:
        return IssuerUnavailable()
    code = _SAFE_CODE.sub("", exc.error.lower())[:64]
    return IssuerProblem(f"Logto refused the request ({code}).")
