"""What the user is told when something fails: one class per situation, each with its page.

Exception tree (messages are ours and safe to show; never library text, never a token)::

    ClientAppError                   status, title, message, what the page offers next
    ├── NotSignedIn                  401  the page needs a signed-in user
    ├── SessionEnded                 401  the refresh token was refused: sign in again
    ├── SignInFailed                 400  the callback cannot complete (``reason`` says why)
    ├── AccessDenied                 403  the issuer refused a token (not a member ...)
    ├── FormExpired                  403  CSRF token or Origin check failed
    ├── BadForm                      400  a form field is invalid
    ├── IssuerUnavailable            503  Logto cannot be reached or timed out
    ├── IssuerProblem                502  Logto answered something unusable (or refused the app)
    ├── SessionsUnavailable          503  the session store cannot read or write (Redis down or
    │                                     full, a session directory that refuses a write)
    ├── CheckTooSoon                 429  "Check my permissions again" sent again too soon
    └── ApiError (client_app.api_client)   the resource API's answers

``client_app.translation`` is the one place that turns SDK and transport failures into
these; the API client (``client_app.api_client``) does the same for the resource API.
"""

from __future__ import annotations

import logging
from typing import ClassVar, Literal

logger = logging.getLogger("client_app.sessions")

Action = Literal["sign_in", "retry", "home"]


class ClientAppError(Exception):
    """Base of every failure shown to the user."""

    status_code: ClassVar[int] = 500
    title: ClassVar[str] = "Something went wrong"
    default_message: ClassVar[str] = "An unexpected error occurred."
    action: ClassVar[Action] = "home"

    def __init__(self, message: str | None = None) -> None:
        self.message = message or self.default_message
        super().__init__(self.message)


class NotSignedIn(ClientAppError):
    """The page needs a signed-in user; the guard chooses a redirect or a JSON 401."""

    status_code = 401
    title = "Please sign in"
    default_message = "You need to sign in to see this page."
    action = "sign_in"

    def __init__(
        self, message: str | None = None, *, should_redirect: bool = True, return_to: str = "/"
    ) -> None:
        super().__init__(message)
        self.should_redirect = should_redirect
        self.return_to = return_to


class SessionEnded(ClientAppError):
    """Logto refused the refresh token (expired, revoked or reused): the session is over."""

    status_code = 401
    title = "Your session has ended"
    default_message = "Your sign-in has expired or was revoked. Please sign in again."
    action = "sign_in"


SignInFailure = Literal[
    "cancelled", "denied", "no_attempt", "expired_attempt", "state_mismatch", "no_code",
    "code_rejected",
]  # fmt: skip


class SignInFailed(ClientAppError):
    """The sign-in callback cannot complete."""

    status_code = 400
    title = "Sign-in did not complete"
    action = "sign_in"
    _MESSAGES: ClassVar[dict[str, str]] = {
        "cancelled": "The sign-in was cancelled. You can try again whenever you like.",
        "denied": "Logto did not complete the sign-in.",
        "no_attempt": "No sign-in was started in this browser, or it already finished.",
        "expired_attempt": "This sign-in attempt is too old. Please start again.",
        "state_mismatch": "This answer does not belong to the sign-in started in this browser.",
        "no_code": "Logto's answer carries no authorization code.",
        "code_rejected": "This sign-in answer has expired or was already used.",
    }

    def __init__(self, reason: SignInFailure) -> None:
        self.reason = reason
        super().__init__(self._MESSAGES[reason])


class AccessDenied(ClientAppError):
    """Logto refused a token this user is not entitled to."""

    status_code = 403
    title = "Access denied"
    default_message = "Logto did not grant this access."


class FormExpired(ClientAppError):
    """The form's CSRF token or the request's origin did not check out."""

    status_code = 403
    title = "This form has expired"
    default_message = "Please reload the page and submit the form again."
    action = "retry"


class BadForm(ClientAppError):
    """A submitted form field is invalid."""

    status_code = 400
    title = "Please check the form"
    default_message = "The form is not valid."
    action = "retry"


class IssuerUnavailable(ClientAppError):
    """Logto (the issuer) cannot be reached right now: a passing outage, said as one."""

    status_code = 503
    title = "Sign-in is temporarily unavailable"
    default_message = "Logto cannot be reached right now. Please try again in a moment."
    action = "retry"
    retry_after_seconds: ClassVar[int] = 5
    """``Retry-After``: the gateway asks whether Logto is reachable again only this often
    (``gateway.REACHABILITY_TTL_SECONDS``), so a sooner retry would get the same answer."""


class IssuerProblem(ClientAppError):
    """Logto answered something this app cannot use, or refused the app itself."""

    status_code = 502
    title = "Sign-in service problem"
    default_message = "Logto answered unexpectedly. Please try again later."


class SessionsUnavailable(ClientAppError):
    """The session store cannot be read or written: Redis unreachable or full, the session
    directory refusing a write (a full disk, a failed or short write). Nothing was stored, so
    nothing is said to have succeeded."""

    status_code = 503
    title = "Sessions temporarily unavailable"
    default_message = (
        "This app cannot reach its session store right now. Please try again in a moment."
    )
    action = "retry"
    retry_after_seconds: ClassVar[int] = 5

    @classmethod
    def logged(cls, exc: Exception, operation: str) -> SessionsUnavailable:
        """The error for a store failure ``exc`` during ``operation``, logged (at WARNING) with
        the failure's type only (and its ``errno``, for an ``OSError``)."""
        extra: dict[str, object] = {
            "event": "session_store_unavailable",
            "operation": operation,
            "error_type": type(exc).__name__,
        }
        if isinstance(exc, OSError):
            extra["errno"] = exc.errno
        logger.warning("session store unavailable", extra=extra)
        return cls()


class CheckTooSoon(ClientAppError):
    """A permission check (``client_app.step_up``) for the same token came too soon after the
    last one: the issuer is not asked again before ``retry_after_seconds``."""

    status_code = 429
    title = "Checked a moment ago"
    action = "retry"

    def __init__(self, retry_after_seconds: int) -> None:
        self.retry_after_seconds = max(1, retry_after_seconds)
        plural = "s" if self.retry_after_seconds > 1 else ""
        super().__init__(
            "Your permissions were checked a moment ago. Please wait "
            f"{self.retry_after_seconds} second{plural} before checking again."
        )
