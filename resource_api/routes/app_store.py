"""The app's store, as the route handlers reach it.

Handlers call :func:`store_of` with their request rather than take a ``store`` parameter that
Litestar's dependency injection fills: resolving that one dependency (a parameter to parse, a
provider to call, a cleanup group to enter) cost ``GET /shopping/orders`` 3.6 to 6 µs of 37 in
process, and 0.60 → 0.69 of ``/health`` under load (``bench/README.md``). The ``store``
dependency stays registered for routes of your own, where that cost does not matter.
"""

from __future__ import annotations

from typing import Any

from litestar import Request

from resource_api.storage import Store


def store_of(request: Request[Any, Any, Any]) -> Store:
    """The store of the app serving ``request`` (opened, maybe wrapped in spans, at
    start-up; see :func:`resource_api.app.create_app`)."""
    return opened(request.app.state.store)


def opened(store: Store | None) -> Store:
    """``store``, the app state's, which is ``None`` only outside the app's lifespan."""
    if store is None:  # pragma: no cover - only before start-up or after shutdown
        msg = "the store is opened at application start-up"
        raise RuntimeError(msg)
    return store
