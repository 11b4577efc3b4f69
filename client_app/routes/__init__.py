"""The client app's routes: thin handlers over the gateway and the API client."""

from __future__ import annotations

from typing import Final

from litestar.types import ControllerRouterHandler

from .account import health, home, id_token_claims, me_json, protected_userinfo
from .auth import callback, sign_in, sign_out, sign_out_confirm
from .organizations import organizations
from .permissions import check_permissions
from .shopping import place_order, shopping
from .store import add_product, store

ROUTES: Final[list[ControllerRouterHandler]] = [
    home,
    health,
    id_token_claims,
    protected_userinfo,
    me_json,
    sign_in,
    callback,
    sign_out_confirm,
    sign_out,
    shopping,
    place_order,
    store,
    add_product,
    organizations,
    check_permissions,
]

__all__ = ["ROUTES"]
