"""``GET /health``: liveness, and whether the issuer's signing keys are held."""

from __future__ import annotations

from typing import Any, Literal

import msgspec
from litestar import Request, get

from resource_api.auth import LogtoAuth, public


class Health(msgspec.Struct, frozen=True):
    """The service is up; ``keys_loaded`` says whether tokens can be verified right now."""

    status: Literal["ok"]
    keys_loaded: bool


@get(
    "/health",
    opt=public(),
    tags=["health"],
    operation_id="health",
    summary="Liveness and key status",
    sync_to_thread=False,
)
def health(request: Request[Any, Any, Any]) -> Health:
    """Answer 200 while the process runs, with whether usable signing keys are held."""
    # request.app.state, not a ``state: State`` parameter: Litestar copies the state for
    # that parameter on every request.
    auth: LogtoAuth = request.app.state.auth
    return Health(status="ok", keys_loaded=auth.keys.has_keys)
