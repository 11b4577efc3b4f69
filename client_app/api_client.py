"""Calls to the resource API with the access token of the right resource.

Every answer becomes either a typed result or an :class:`ApiError` the page can show; no
answer of the API (or its absence) can make this app fail:

    ApiError                 base (a ClientAppError: it has a page of its own if unhandled)
    ├── ApiUnauthorized      401: the token was refused; ``call_with_token`` refreshes once
    ├── ApiForbidden         403: ``missing_scopes`` read from ``WWW-Authenticate`` (RFC 6750 §3)
    ├── ApiRejected          any other 4xx, with the API's own error code
    │   ├── ApiStillProcessing   409: the form's Idempotency-Key is still being processed
    │   └── ApiFormReused        422: the form's Idempotency-Key went with other values
    ├── ApiUnavailable       503, a timeout or no connection
    └── ApiBadAnswer         any other status, or a body that is not the documented JSON
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime
from typing import Any, ClassVar, Final, Protocol, TypeVar
from urllib.parse import quote

import httpx
import msgspec

from .challenges import missing_scopes
from .errors import Action, ClientAppError
from .gateway import TokenTarget

logger = logging.getLogger("client_app.api_client")

T = TypeVar("T")
MAX_DESCRIPTION: Final = 200


class OrderItem(msgspec.Struct, frozen=True):
    """One line of an order."""

    sku: str
    quantity: int


class Order(msgspec.Struct, frozen=True):
    """An order of the signed-in user."""

    id: int
    items: list[OrderItem]
    note: str | None
    created_at: datetime


class Product(msgspec.Struct, frozen=True):
    """A product of the global catalog or of an organization's."""

    id: int
    name: str
    price_cents: int
    organization_id: str | None
    created_at: datetime


class Member(msgspec.Struct, frozen=True):
    """A member of an organization, as the API has seen them."""

    user_id: str
    first_seen: datetime


class _Orders(msgspec.Struct, frozen=True):
    orders: list[Order]


class _Products(msgspec.Struct, frozen=True):
    products: list[Product]


class _Members(msgspec.Struct, frozen=True):
    organization_id: str
    members: list[Member]


class _ErrorBody(msgspec.Struct, frozen=True):
    error: str = ""
    error_description: str = ""


class ApiError(ClientAppError):
    """The resource API did not give what was asked."""

    status_code = 502
    title = "The API could not help"
    default_message = "The API answered unexpectedly."
    action: ClassVar[Action] = "retry"


class ApiUnauthorized(ApiError):
    """The API refused the access token (expired, revoked, wrong audience)."""

    status_code = 401
    title = "The API did not accept your sign-in"
    default_message = "The API did not accept your access token. Please sign in again."
    action = "sign_in"


class ApiForbidden(ApiError):
    """The token is valid but lacks a permission (or the organization) the route needs."""

    status_code = 403
    title = "Permission missing"

    def __init__(self, scopes: tuple[str, ...], description: str = "") -> None:
        self.missing_scopes = scopes
        self.description = description
        if scopes:
            names = ", ".join(scopes)
            plural = "s" if len(scopes) > 1 else ""
            message = f"Your access token lacks the permission{plural} {names} needed for this."
        else:
            message = "Your access token does not grant this operation."
        super().__init__(message)


class ApiRejected(ApiError):
    """The API refused the request itself (invalid body, unknown resource ...)."""

    status_code = 400
    title = "The API refused the request"

    def __init__(self, status: int, error: str, description: str) -> None:
        self.status = status
        self.error = error
        super().__init__(description or f"The API refused the request ({error or status}).")


class ApiStillProcessing(ApiRejected):
    """409 ``idempotency_key_in_use``: this form's first submission is still being processed."""

    status_code = 409

    def __init__(self) -> None:
        super().__init__(
            409,
            "idempotency_key_in_use",
            "This form is still being processed. Wait a moment, then reload the page to see "
            "the result before submitting again.",
        )


class ApiFormReused(ApiRejected):
    """422 ``idempotency_key_reused``: this form was already submitted with other values."""

    status_code = 422

    def __init__(self) -> None:
        super().__init__(
            422,
            "idempotency_key_reused",
            "This form was already submitted with other values. Check the list, then submit "
            "the form again to send these values as a new request.",
        )


class ApiUnavailable(ApiError):
    """The API is down, overloaded or too slow."""

    status_code = 503
    title = "The API is unavailable"
    default_message = "The API is temporarily unavailable. Please try again in a moment."


class ApiBadAnswer(ApiError):
    """The API answered with an unexpected status or body."""


class ResourceApiClient:
    """The shopping, store and organization routes of the resource API."""

    def __init__(self, base_url: str, *, http_client: httpx.AsyncClient, timeout: float) -> None:
        self.base_url = base_url.rstrip("/")
        self._http = http_client
        self._timeout = timeout

    async def list_orders(self, token: str) -> list[Order]:
        """``GET /shopping/orders`` (``shopping:read``)."""
        return (await self._call("GET", "/shopping/orders", token, _Orders)).orders

    async def create_order(
        self,
        token: str,
        items: list[OrderItem],
        note: str | None,
        *,
        idempotency_key: str | None = None,
    ) -> Order:
        """``POST /shopping/orders`` (``shopping:write``); with ``idempotency_key``, a copy
        of the request (a double submit, a retry) gets the first order back."""
        body = {"items": msgspec.to_builtins(items), "note": note}
        return await self._call(
            "POST", "/shopping/orders", token, Order, body, headers=_idempotency(idempotency_key)
        )

    async def list_products(self, token: str) -> list[Product]:
        """``GET /store/products`` (``store:read``)."""
        return (await self._call("GET", "/store/products", token, _Products)).products

    async def create_product(
        self, token: str, name: str, price_cents: int, *, idempotency_key: str | None = None
    ) -> Product:
        """``POST /store/products`` (``store:write``); ``idempotency_key`` as for orders."""
        body = {"name": name, "price_cents": price_cents}
        return await self._call(
            "POST", "/store/products", token, Product, body, headers=_idempotency(idempotency_key)
        )

    async def organization_members(self, token: str, organization_id: str) -> list[Member]:
        """``GET /organizations/{id}/members`` (organization token, ``read:members``)."""
        path = f"/organizations/{quote(organization_id, safe='')}/members"
        return (await self._call("GET", path, token, _Members)).members

    async def organization_products(self, token: str, organization_id: str) -> list[Product]:
        """``GET /organizations/{id}/store/products`` (organization-level store token)."""
        path = f"/organizations/{quote(organization_id, safe='')}/store/products"
        return (await self._call("GET", path, token, _Products)).products

    async def _call(
        self,
        method: str,
        path: str,
        token: str,
        result: type[T],
        body: Mapping[str, Any] | None = None,
        *,
        headers: Mapping[str, str] | None = None,
    ) -> T:
        try:
            async with asyncio.timeout(self._timeout):
                response = await self._http.request(
                    method,
                    f"{self.base_url}{path}",
                    headers={
                        "Authorization": f"Bearer {token}",
                        "Accept": "application/json",
                        **(headers or {}),
                    },
                    json=body,
                    timeout=self._timeout,
                )
        except (TimeoutError, httpx.TimeoutException) as exc:
            raise ApiUnavailable("The API did not answer in time.") from exc
        except httpx.HTTPError as exc:
            raise ApiUnavailable("The API cannot be reached right now.") from exc
        if response.is_success:
            try:
                return msgspec.json.decode(response.content, type=result)
            except (msgspec.DecodeError, UnicodeDecodeError) as exc:
                raise ApiBadAnswer from exc
        raise _error_for(response)


_FORM_KEY_ERRORS: Final[dict[tuple[int, str], Callable[[], ApiError]]] = {
    (409, "idempotency_key_in_use"): ApiStillProcessing,
    (422, "idempotency_key_reused"): ApiFormReused,
}


def _idempotency(key: str | None) -> dict[str, str]:
    """The ``Idempotency-Key`` header (an RFC 8941 string, as the IETF draft defines it)."""
    return {} if key is None else {"Idempotency-Key": f'"{key}"'}


def _error_for(response: httpx.Response) -> ApiError:
    status = response.status_code
    try:
        body = msgspec.json.decode(response.content, type=_ErrorBody)
    except (msgspec.DecodeError, UnicodeDecodeError):
        body = _ErrorBody()
    description = body.error_description[:MAX_DESCRIPTION]
    if status == httpx.codes.UNAUTHORIZED:
        return ApiUnauthorized()
    if status == httpx.codes.FORBIDDEN:
        return ApiForbidden(missing_scopes(response.headers.get("www-authenticate")), description)
    if status == httpx.codes.SERVICE_UNAVAILABLE:
        return ApiUnavailable()
    if (status, body.error) in _FORM_KEY_ERRORS:
        return _FORM_KEY_ERRORS[status, body.error]()
    if httpx.codes.is_client_error(status):
        return ApiRejected(status, body.error[:64], description)
    logger.warning("unexpected API answer", extra={"event": "api_error", "status": status})
    return ApiBadAnswer()


class TokenSource(Protocol):
    """Where access tokens come from (the gateway)."""

    async def token(self, session_id: str, target: TokenTarget) -> str:
        """A valid access token for ``target``."""
        ...

    async def discard_token(self, session_id: str, target: TokenTarget, token: str) -> None:
        """Forget ``token``: the API refused it."""
        ...


async def call_with_token(
    tokens: TokenSource,
    session_id: str,
    target: TokenTarget,
    call: Callable[[str], Awaitable[T]],
    *,
    token: str | None = None,
) -> T:
    """``call(token)`` with ``token`` (one the page already holds) or the session's current
    one; on a 401 the token is dropped, a new one obtained and the call retried once (the
    cached token may have been revoked, or the API's clock be ahead of ours)."""
    if token is None:
        token = await tokens.token(session_id, target)
    try:
        return await call(token)
    except ApiUnauthorized:
        await tokens.discard_token(session_id, target, token)
    return await call(await tokens.token(session_id, target))
