"""App-wide hooks: the CSRF check before every unsafe request, and the error pages.

Every failure ends on a page with a way back (or, on JSON routes, ``{"error",
"error_description"}``): :class:`~client_app.errors.ClientAppError` with its own status and
message, Litestar's HTTP errors (404, 405, a malformed form) with a generic sentence, and
anything unexpected as a logged 500 whose page says nothing of the cause.
"""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any, Final
from urllib.parse import urlencode

from litestar import MediaType, Response
from litestar.exceptions import HTTPException
from litestar.response import Redirect
from litestar.types import ExceptionHandlersMap

from service_kit.head import request_method

from .context import AnyRequest, app_context, page, session_id_of
from .errors import ClientAppError, FormExpired, NotSignedIn
from .security import (
    CSRF_FIELD,
    CSRF_HEADER,
    SAFE_METHODS,
    csrf_matches,
    origin_allowed,
    safe_return_path,
)

logger = logging.getLogger("client_app.errors")

JSON_ERRORS_OPT: Final = "json_errors"
_RETRY_PAGE: Final = {
    "/shopping/orders": "/shopping",
    "/store/products": "/store",
    "/sign-in": "/sign-in",
    "/callback": "/sign-in",
}
"""Where "Try again" leads from these paths: a form's page, not its action; a new sign-in for
the sign-in steps (``safe_return_path`` refuses them as return targets, and a callback cannot
be replayed). Elsewhere a safe request is retried as it was, anything else from home."""
_FORM_TYPES: Final = ("application/x-www-form-urlencoded", "multipart/form-data")


async def enforce_csrf(request: AnyRequest) -> None:
    """Refuse an unsafe request from another origin or without this session's CSRF token."""
    if request.method in SAFE_METHODS:
        return
    settings = app_context(request).settings
    if not origin_allowed(request.headers.get("origin"), settings.base_url):
        raise FormExpired("This form was sent from another site.")
    submitted: object = request.headers.get(CSRF_HEADER)
    if submitted is None and request.content_type[0] in _FORM_TYPES:
        submitted = (await request.form()).get(CSRF_FIELD)
    if not csrf_matches(settings.session_secret, session_id_of(request), submitted):
        raise FormExpired


def _wants_json(request: AnyRequest) -> bool:
    handler = request.scope.get("route_handler")
    return handler is not None and bool(handler.opt.get(JSON_ERRORS_OPT))


def client_error(request: AnyRequest, exc: ClientAppError) -> Response[Any]:
    """Our errors: sign-in redirect, JSON, or the error page with the error's status."""
    if isinstance(exc, NotSignedIn) and exc.should_redirect:
        return Redirect(f"/sign-in?{urlencode({'next': exc.return_to})}", status_code=303)
    retry_after = getattr(exc, "retry_after_seconds", None)  # a passing outage says when
    headers = {"Retry-After": str(retry_after)} if isinstance(retry_after, int) else None
    if _wants_json(request):
        code = "not_authenticated" if isinstance(exc, NotSignedIn) else type(exc).__name__
        return Response(
            {"error": code, "error_description": exc.message},
            status_code=exc.status_code,
            headers=headers,
            media_type=MediaType.JSON,
        )
    return _error_page(
        request,
        status=exc.status_code,
        title=exc.title,
        message=exc.message,
        action=exc.action,
        headers=headers,
    )


def http_error(request: AnyRequest, exc: HTTPException) -> Response[Any]:
    """Litestar's HTTP errors (no such page, wrong method, a malformed form)."""
    status = exc.status_code
    if status >= HTTPStatus.INTERNAL_SERVER_ERROR:
        return unexpected_error(request, exc)
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = "Error"
    message = {
        404: "There is no page at this address.",
        405: "This page does not accept that kind of request.",
    }.get(status, "The request could not be understood.")
    if _wants_json(request):
        return Response(
            {"error": phrase.lower().replace(" ", "_"), "error_description": message},
            status_code=status,
            headers=exc.headers,
            media_type=MediaType.JSON,
        )
    return _error_page(
        request, status=status, title=phrase, message=message, action="home", headers=exc.headers
    )


def unexpected_error(request: AnyRequest, exc: Exception) -> Response[Any]:
    """Log method, path and traceback (never headers, cookies, query or body); answer 500."""
    logger.error(
        "unexpected error",
        exc_info=exc,
        extra={
            "event": "server_error",
            "method": request_method(request.scope),
            "path": request.url.path,
        },
    )
    message = "An unexpected error occurred. Please try again."
    if _wants_json(request):
        return Response(
            {"error": "server_error", "error_description": message},
            status_code=500,
            media_type=MediaType.JSON,
        )
    return _error_page(
        request, status=500, title="Something went wrong", message=message, action="home"
    )


def _error_page(
    request: AnyRequest,
    *,
    status: int,
    title: str,
    message: str,
    action: str,
    headers: dict[str, str] | None = None,
) -> Response[Any]:
    path = str(request.url.path)
    if path in _RETRY_PAGE:
        retry = _RETRY_PAGE[path]
    elif request.method in SAFE_METHODS:
        retry = safe_return_path(path + (f"?{request.url.query}" if request.url.query else ""))
    else:
        retry = "/"
    template = page(
        request,
        "error.html",
        status_code=status,
        title=title,
        message=message,
        action=action,
        retry=retry,
        neutral_header=True,  # the user is not looked up here: no sign-in button either
    )
    if headers:
        template.headers.update(headers)
    return template


EXCEPTION_HANDLERS: Final[ExceptionHandlersMap] = {
    ClientAppError: client_error,
    HTTPException: http_error,
    Exception: unexpected_error,
}
