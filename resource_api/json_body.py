"""Strict JSON request bodies, checked before Litestar parses them.

Litestar converts a handler's ``data`` with msgspec in lax mode (``"2"`` would become ``2``)
and answers a wrong media type or broken JSON with its own generic error. This hook runs
before the handler's parameters are parsed, and after authentication (the auth plugin's
middleware runs before the route calls its ``before_request`` hook, so an unauthenticated
request gets its 401 before its body is even read); for any handler taking ``data`` it
requires a JSON media type and a non-empty body that decodes strictly into the declared
type, raising :class:`~resource_api.http_errors.InvalidBody` with the offending field named.
Reading the body enforces the app's ``request_max_body_size`` (413).
"""

from __future__ import annotations

import functools
from typing import Any

import msgspec
from litestar import Request

from .http_errors import InvalidBody, describe_validation_error


async def require_strict_json_body(request: Request[Any, Any, Any]) -> None:
    """``before_request`` hook: refuse a body that is not valid JSON for the handler's ``data``."""
    data_field = request.route_handler.parsed_data_field
    if data_field is None:
        return
    body = await request.body()  # RequestEntityTooLarge (413) beyond the app's limit
    media_type, _ = request.content_type
    if not _is_json(media_type):
        raise InvalidBody("The request body must be JSON (Content-Type: application/json).")
    if not body:
        raise InvalidBody("The request body is empty; send a JSON object.")
    try:
        _decoder(data_field.annotation).decode(body)
    except msgspec.ValidationError as exc:
        raise InvalidBody(describe_validation_error(exc)) from exc
    except msgspec.DecodeError as exc:
        raise InvalidBody("The request body is not valid JSON.") from exc


def _is_json(media_type: str) -> bool:
    media_type = media_type.strip().lower()
    return media_type == "application/json" or (
        media_type.startswith("application/") and media_type.endswith("+json")
    )


@functools.cache
def _decoder(annotation: Any) -> msgspec.json.Decoder[Any]:  # noqa: ANN401 - any body type
    return msgspec.json.Decoder(annotation, strict=True)
