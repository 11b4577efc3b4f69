"""The resource API's routes: thin handlers that declare what token they need.

Handlers never compare scopes or audiences: ``requires(...)`` / ``requires_organization(...)``
states the need and the auth plugin's middleware enforces it before the handler runs. Store calls
are awaited from the async handlers: the store decides how its I/O stays off the event loop's
critical path (see :mod:`resource_api.storage`).
"""

from __future__ import annotations

from typing import Final

from litestar.types import ControllerRouterHandler

from .health import health_route
from .organizations import organizations_router
from .shopping import shopping_router
from .store import store_router

ROUTES: Final[list[ControllerRouterHandler]] = [
    shopping_router,
    store_router,
    organizations_router,
]

__all__ = ["ROUTES", "health_route"]
