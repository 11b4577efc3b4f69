"""Every error that is not an authentication error, in the same JSON shape as RFC 6750 ones.

``{"error": <stable code>, "error_description": <safe sentence>}``:

    400 invalid_body         the JSON body is missing, malformed, of the wrong media type or
                             invalid for the route (the description names the field)
    400 invalid_request      any other malformed request
    400 invalid_idempotency_key   a malformed ``Idempotency-Key`` header
    404 not_found            no such route or resource (another subject's order included)
    405 method_not_allowed   with ``Allow``
    409 idempotency_key_in_use    a request with the same ``Idempotency-Key`` is in progress
    422 idempotency_key_reused    the ``Idempotency-Key`` was used with another body
    413 request_too_large    the body exceeds the app's ``request_max_body_size``
    500 server_error         an unexpected exception: logged (method, path, traceback; never a
                             header, a body or a token) and answered with a generic sentence
    503 temporarily_unavailable   likewise, for a server-side 503; and when the store cannot
                             reach its database (``StoreUnavailable``), with ``Retry-After``
                             and a warning logged (the error's type, never the connection
                             string)

Descriptions are ours or built from msgspec's messages, reduced to printable ASCII and
bounded in length, so a client can never make the API echo a large or hostile input.
Authentication errors are rendered by the auth plugin (``litestar_logto``).
"""

from __future__ import annotations

import logging
import re
from http import HTTPStatus
from typing import Any, Final

import msgspec
from litestar import MediaType, Request, Response
from litestar.exceptions import HTTPException, ValidationException
from litestar.types import ExceptionHandlersMap

from service_kit.head import request_method

from .storage import StoreUnavailable

logger = logging.getLogger("resource_api.errors")

MAX_DESCRIPTION_LENGTH: Final = 200
STORE_RETRY_AFTER: Final = "2"
"""Seconds a client is told to wait when the database is unreachable (a restart or failover
usually takes a few seconds; the store's pool reconnects by itself)."""
_UNPRINTABLE = re.compile(r"[^\x20-\x7e]")


class ErrorBody(msgspec.Struct, frozen=True):
    """The body of every error response."""

    error: str
    """A stable, machine-readable code (RFC 6750 codes for authentication errors)."""
    error_description: str
    """A short human-readable explanation; never contains a token or library internals."""


class ApiError(HTTPException):
    """An error raised by this API with its own code and a description safe to show."""

    error: str = "invalid_request"
    status_code = HTTPStatus.BAD_REQUEST

    def __init__(self, description: str, *, headers: dict[str, str] | None = None) -> None:
        self.description = safe_text(description)
        super().__init__(detail=self.description, headers=headers)


class InvalidBody(ApiError):
    """The request body is not the JSON document the route expects."""

    error = "invalid_body"


class NotFound(ApiError):
    """No such resource, or one the caller may not know exists."""

    error = "not_found"
    status_code = HTTPStatus.NOT_FOUND


_BY_STATUS: Final[dict[int, tuple[str, str]]] = {
    400: ("invalid_request", "The request is malformed."),
    404: ("not_found", "No such resource."),
    405: ("method_not_allowed", "This method is not allowed on this resource."),
    413: ("request_too_large", "The request body is too large."),
}
_SERVER_ERROR: Final = ErrorBody("server_error", "An unexpected error occurred.")
_UNAVAILABLE: Final = ErrorBody(
    "temporarily_unavailable", "The service is temporarily unavailable; try again shortly."
)


def safe_text(text: str, limit: int = MAX_DESCRIPTION_LENGTH) -> str:
    """``text`` reduced to printable ASCII and at most ``limit`` characters."""
    text = _UNPRINTABLE.sub("?", text)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def describe_validation_error(exc: msgspec.ValidationError) -> str:
    """A description naming the offending field, from msgspec's message
    (e.g. ``Expected `int`, got `str` - at `$.items[0].quantity```)."""
    return f"The request body is invalid: {str(exc).replace(' - at ', ' at ')}."


def http_error_response(request: Request[Any, Any, Any], exc: HTTPException) -> Response[Any]:
    """Render an ``HTTPException`` (ours or Litestar's) as an :class:`ErrorBody`."""
    if isinstance(exc, ApiError):
        body = ErrorBody(exc.error, exc.description)
    elif isinstance(exc, ValidationException):
        body = ErrorBody("invalid_body", _describe_litestar_validation(exc))
    elif exc.status_code >= HTTPStatus.INTERNAL_SERVER_ERROR:
        _log_unexpected(request, exc)
        body = _UNAVAILABLE if exc.status_code == HTTPStatus.SERVICE_UNAVAILABLE else _SERVER_ERROR
    else:
        error, description = _BY_STATUS.get(exc.status_code) or _generic(exc.status_code)
        body = ErrorBody(error, description)
    return _response(body, exc.status_code, exc.headers)


def unexpected_error_response(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    """Log an unexpected exception and answer a generic 500."""
    _log_unexpected(request, exc)
    return _response(_SERVER_ERROR, HTTPStatus.INTERNAL_SERVER_ERROR, None)


def store_unavailable_response(
    request: Request[Any, Any, Any], exc: StoreUnavailable
) -> Response[Any]:
    """The database cannot be reached: 503 with ``Retry-After`` (the request may be retried),
    logged as a warning without a traceback."""
    logger.warning(
        "store unavailable",
        extra={
            "event": "store_unavailable",
            "method": request_method(request.scope),
            "path": request.url.path,
            "error_type": type(exc.__cause__ or exc).__name__,
        },
    )
    return _response(
        _UNAVAILABLE, HTTPStatus.SERVICE_UNAVAILABLE, {"Retry-After": STORE_RETRY_AFTER}
    )


EXCEPTION_HANDLERS: Final[ExceptionHandlersMap] = {
    StoreUnavailable: store_unavailable_response,
    # Keyed by class, never by status code: Litestar looks status codes up first, and the auth
    # plugin's errors (registered under AuthError) share 400/401/403/503 with these.
    HTTPException: http_error_response,
    Exception: unexpected_error_response,
}


def _response(body: ErrorBody, status_code: int, headers: dict[str, str] | None) -> Response[Any]:
    safe_body = ErrorBody(body.error, safe_text(body.error_description))
    return Response(safe_body, status_code=status_code, headers=headers, media_type=MediaType.JSON)


def _describe_litestar_validation(exc: ValidationException) -> str:
    # Litestar's own parameter validation (reached only if a value passes the strict body
    # check but not Litestar's lax conversion): extra = [{"message", "key", "source"}].
    first = exc.extra[0] if isinstance(exc.extra, list) and exc.extra else {}
    if not isinstance(first, dict) or "message" not in first:
        return "The request is invalid."
    where = f" at `{first['key']}`" if first.get("key") else ""
    return f"The request is invalid: {first['message']}{where}."


def _generic(status_code: int) -> tuple[str, str]:
    try:
        phrase = HTTPStatus(status_code).phrase
    except ValueError:
        return "invalid_request", "The request cannot be processed."
    return phrase.lower().replace(" ", "_").replace("-", "_"), f"{phrase}."


def _log_unexpected(request: Request[Any, Any, Any], exc: Exception) -> None:
    # Method and path only: headers (Authorization, cookies), the query string and the body
    # may carry credentials and are never logged.
    logger.error(
        "unexpected error",
        exc_info=exc,
        extra={
            "event": "server_error",
            "method": request_method(request.scope),
            "path": request.url.path,
            "error_type": type(exc).__name__,
        },
    )
