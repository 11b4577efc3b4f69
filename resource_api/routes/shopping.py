"""The shopping API: a caller's own orders (tokens for the ``shopping`` resource)."""

from __future__ import annotations

from typing import Annotated

import msgspec
from litestar import Response, Router, get, post
from litestar.params import FromPath, JSONBody
from litestar_logto import AuthenticatedRequest, requires
from msgspec import Meta

from resource_api.http_errors import NotFound
from resource_api.routes.app_store import store_of
from resource_api.routes.contract import protected
from resource_api.routes.idempotency import IdempotencyKeyHeader, idempotent
from resource_api.storage import Order, OrderItem


class NewOrder(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """An order to place."""

    items: Annotated[list[OrderItem], Meta(min_length=1, max_length=50)]
    note: Annotated[str, Meta(max_length=500)] | None = None


class OrderList(msgspec.Struct, frozen=True):
    """The caller's orders, oldest first."""

    orders: list[Order]


@get(
    "/orders",
    **protected(requires("shopping", "shopping:read")),
    operation_id="listOrders",
    summary="List the caller's orders",
)
async def list_orders(request: AuthenticatedRequest) -> OrderList:
    """Every order placed by the token's subject."""
    return OrderList(orders=await store_of(request).list_orders(request.auth.subject))


@get(
    "/orders/{order_id:int}",
    **protected(
        requires("shopping", "shopping:read"),
        not_found="no order with this id among the caller's orders.",
    ),
    operation_id="getOrder",
    summary="Get one of the caller's orders",
)
async def get_order(order_id: FromPath[int], request: AuthenticatedRequest) -> Order:
    """One order of the token's subject; another subject's order is answered 404, like a
    missing one, so its existence is not revealed."""
    order = await store_of(request).get_order(request.auth.subject, order_id)
    if order is None:
        raise NotFound("No order with this id.")
    return order


@post(
    "/orders",
    **protected(requires("shopping", "shopping:write"), with_body=True, idempotent=True),
    operation_id="createOrder",
    summary="Place an order",
)
async def create_order(
    data: JSONBody[NewOrder],
    request: AuthenticatedRequest,
    idempotency_key: IdempotencyKeyHeader = None,
) -> Response[Order]:
    """Record an order owned by the token's subject (once per ``Idempotency-Key``)."""
    store = store_of(request)
    return await idempotent(
        request,
        store,
        idempotency_key,
        route="createOrder",
        body=data,
        create=lambda claim: store.create_order(
            request.auth.subject, data.items, data.note, idempotency=claim
        ),
        result=Order,
    )


shopping_router = Router(
    path="/shopping", route_handlers=[list_orders, get_order, create_order], tags=["shopping"]
)
