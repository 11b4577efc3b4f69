"""The store API: the global product catalog (tokens for the ``store`` resource)."""

from __future__ import annotations

from typing import Annotated

import msgspec
from litestar import Router, get, post
from litestar.di import NamedDependency
from litestar.params import JSONBody
from msgspec import Meta

from resource_api.auth import requires
from resource_api.routes.contract import protected
from resource_api.storage import Product, Store


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
async def list_products(store: NamedDependency[Store]) -> ProductList:
    """Every product of the global catalog."""
    return ProductList(products=store.list_products(None))


@post(
    "/products",
    **protected(requires("store", "store:write"), with_body=True),
    operation_id="createProduct",
    summary="Add a product to the global catalog",
)
async def create_product(data: JSONBody[NewProduct], store: NamedDependency[Store]) -> Product:
    """Add a product to the global catalog."""
    return store.create_product(None, data.name, data.price_cents)


store_router = Router(path="/store", route_handlers=[list_products, create_product], tags=["store"])
