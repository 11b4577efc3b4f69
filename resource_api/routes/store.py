"""The store API: the global product catalog (tokens for the ``store`` resource)."""

from __future__ import annotations

from typing import Annotated

import msgspec
from litestar import Response, Router, get, post
from litestar.params import JSONBody
from litestar_logto import AuthenticatedRequest, requires
from msgspec import Meta

from resource_api.routes.app_store import store_of
from resource_api.routes.contract import protected
from resource_api.routes.idempotency import IdempotencyKeyHeader, idempotent
from resource_api.storage import Product


class NewProduct(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A product to add to the catalog."""

    name: Annotated[str, Meta(min_length=1, max_length=100)]
    price_cents: Annotated[int, Meta(ge=0, le=1_000_000_000)]


class ProductList(msgspec.Struct, frozen=True):
    """A catalog, oldest product first."""

    products: list[Product]


@get(
    "/products",
    **protected(requires("store", "store:read")),
    operation_id="listProducts",
    summary="List the global catalog",
)
async def list_products(request: AuthenticatedRequest) -> ProductList:
    """Every product of the global catalog."""
    return ProductList(products=await store_of(request).list_products(None))


@post(
    "/products",
    **protected(requires("store", "store:write"), with_body=True, idempotent=True),
    operation_id="createProduct",
    summary="Add a product to the global catalog",
)
async def create_product(
    data: JSONBody[NewProduct],
    request: AuthenticatedRequest,
    idempotency_key: IdempotencyKeyHeader = None,
) -> Response[Product]:
    """Add a product to the global catalog (once per ``Idempotency-Key``)."""
    store = store_of(request)
    return await idempotent(
        request,
        store,
        idempotency_key,
        route="createProduct",
        body=data,
        create=lambda claim: store.create_product(
            None, data.name, data.price_cents, idempotency=claim
        ),
        result=Product,
    )


store_router = Router(path="/store", route_handlers=[list_products, create_product], tags=["store"])
