"""``Idempotency-Key`` on a creating ``POST``: the Litestar side of
:mod:`resource_api.idempotency` (the header's declaration in the OpenAPI document, its errors,
and the claim / write / replay sequence around a store write)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from http import HTTPStatus
from typing import Annotated, Final, TypeVar

import msgspec
from litestar import Response
from litestar.openapi.spec import Example
from litestar.params import HeaderParameter
from litestar_logto import AuthenticatedRequest

from resource_api.http_errors import ApiError
from resource_api.idempotency import (
    MAX_KEY_LENGTH,
    OPENAPI_PATTERN,
    RETENTION_SECONDS,
    Claimed,
    ClaimLost,
    IdempotentRequest,
    InFlight,
    InvalidIdempotencyKey,
    KeyReused,
    Replay,
    fingerprint,
    parse_idempotency_key,
)
from resource_api.storage import Store, StoreUnavailable

T = TypeVar("T")

REPLAYED_HEADER: Final = "Idempotent-Replayed"
IN_FLIGHT_RETRY_AFTER: Final = "1"

IdempotencyKeyHeader = Annotated[
    str | None,
    HeaderParameter(
        name="Idempotency-Key",
        required=False,
        description=(
            "Makes the request safe to retry (IETF draft-ietf-httpapi-idempotency-key-header): "
            "send the same unique key (e.g. a random UUID) with every copy of one request. The "
            "first copy is processed; a later copy with the same body gets the first answer "
            f"again (marked `{REPLAYED_HEADER}: true`), one with another body 422, and one sent "
            "while the first is still being processed 409. Keys are scoped to the token's "
            f"subject and this operation and kept {RETENTION_SECONDS // 3600} hours. A "
            f'Structured Field string (`"key"`) or the bare key; 1 to {MAX_KEY_LENGTH} '
            "printable ASCII characters, else 400."
        ),
        schema_extra={"minLength": 1, "maxLength": MAX_KEY_LENGTH + 2, "pattern": OPENAPI_PATTERN},
        examples=[Example(summary="a random UUID", value='"8e03978e-40d5-43e8-bc93-6894a57f9324"')],
    ),
]
"""The handler parameter that declares the header (the value is parsed by :func:`idempotent`)."""


class InvalidIdempotencyKeyHeader(ApiError):
    """The ``Idempotency-Key`` header is malformed (its own code: ``invalid_request`` is an
    authentication error of RFC 6750, answered with a ``Bearer`` challenge)."""

    error = "invalid_idempotency_key"


class IdempotencyKeyInUse(ApiError):
    """Another request with the key is still being processed."""

    error = "idempotency_key_in_use"
    status_code = HTTPStatus.CONFLICT


class IdempotencyKeyReused(ApiError):
    """The key was already used with another request body."""

    error = "idempotency_key_reused"
    status_code = HTTPStatus.UNPROCESSABLE_ENTITY


async def idempotent(
    request: AuthenticatedRequest,
    store: Store,
    header: str | None,
    *,
    route: str,
    body: msgspec.Struct,
    create: Callable[[Claimed | None], Awaitable[T]],
    result: type[T],
) -> Response[T]:
    """``await create(None)`` without a key; with one, claim it, ``await create(claim)`` (the
    store records the answer in the write's transaction), or answer a replay, 409 or 422
    instead. A store that cannot be reached raises ``StoreUnavailable`` (503) from any step; a
    claim whose write failed that way stays until it is abandoned (``CLAIM_SECONDS``), since
    the write may have been committed: a retry meanwhile is answered 409, later the replay or
    the creation."""
    if header is None:
        return Response(await create(None))
    try:
        key = parse_idempotency_key(header)
    except InvalidIdempotencyKey as exc:
        raise InvalidIdempotencyKeyHeader(str(exc)) from None
    claim = await store.claim_idempotency_key(
        IdempotentRequest(request.auth.subject, route, key, fingerprint(body))
    )
    if isinstance(claim, Replay):
        replayed = msgspec.json.decode(claim.body, type=result)
        return Response(replayed, headers={REPLAYED_HEADER: "true"})
    if isinstance(claim, KeyReused):
        raise IdempotencyKeyReused(
            "This Idempotency-Key was already used with a different request body; send a new "
            "key for a new request."
        )
    if isinstance(claim, InFlight):
        raise _in_flight()
    try:
        created = await create(claim)
    except ClaimLost:
        raise _in_flight() from None
    except StoreUnavailable:
        raise  # the write's outcome is unknown: the claim stays (see above)
    except BaseException:
        await store.release_idempotency_key(claim)
        raise
    return Response(created)


def _in_flight() -> IdempotencyKeyInUse:
    return IdempotencyKeyInUse(
        "A request with this Idempotency-Key is still being processed; retry shortly.",
        headers={"Retry-After": IN_FLIGHT_RETRY_AFTER},
    )
