"""The benchmark-only routes, compared with the service's ``GET /shopping/orders``.

* ``public_list_orders`` — the list-orders route without authentication: ``public()``, and a
  fixed ``AccessToken`` for the benchmark subject put where the auth middleware would have put
  it; runs the service's own ``list_orders`` handler function (the store from the app's state);
* ``access_token_dependency`` — declared ``requires("shopping", "shopping:read")`` like the
  service route, but the handler takes the token through the ``access_token`` dependency and
  the store through the ``store`` dependency (the service route before it switched to
  ``AuthenticatedRequest`` and ``store_of``): what those two dependencies cost;
* ``store_dependency`` — the public copy with the store taken through the ``store``
  dependency instead of ``store_of(request)`` (what that one dependency costs).

All answer the same body as ``GET /shopping/orders`` for the benchmark token.
"""

from __future__ import annotations

from typing import Any, Final

from litestar import Request, get
from litestar.di import NamedDependency
from litestar_logto import AccessToken, public, requires

from resource_api.routes.shopping import OrderList, list_orders
from resource_api.storage import Store

from .common import AUDIENCE, SUBJECT

AUTH_PATH: Final = "/shopping/orders"
PUBLIC_PATH: Final = "/bench/public-orders"
DEPENDENCY_PATH: Final = "/bench/access-token-dependency-orders"
STORE_DEPENDENCY_PATH: Final = "/bench/store-dependency-orders"

# What the auth middleware would have put in scope for the benchmark token, built once.
FIXED_TOKEN: Final = AccessToken(
    subject=SUBJECT,
    client_id="bench",
    audiences=(AUDIENCE,),
    scopes=frozenset({"shopping:read"}),
    expires_at=float("inf"),
    issued_at=0.0,
)


@get(PUBLIC_PATH, opt=public(), include_in_schema=False)
async def public_list_orders(request: Request[Any, Any, Any]) -> OrderList:
    """``GET /shopping/orders`` without authentication: the same handler, a fixed subject."""
    request.scope["auth"] = FIXED_TOKEN  # what the auth middleware would have put there
    result: OrderList = await list_orders.fn(request=request)
    return result


@get(
    DEPENDENCY_PATH,
    opt=requires("shopping", "shopping:read"),
    include_in_schema=False,
)
async def access_token_dependency(
    access_token: NamedDependency[AccessToken], store: NamedDependency[Store]
) -> OrderList:
    """The service route with the token and the store through dependencies: two
    independent dependencies, which Litestar resolves in an anyio task group. The body is
    ``list_orders``' own (the service handler takes a request, so it cannot be called here)."""
    return OrderList(orders=await store.list_orders(access_token.subject))


@get(STORE_DEPENDENCY_PATH, opt=public(), include_in_schema=False)
async def store_dependency(store: NamedDependency[Store]) -> OrderList:
    """The public copy with the store through the ``store`` dependency."""
    return OrderList(orders=await store.list_orders(FIXED_TOKEN.subject))
