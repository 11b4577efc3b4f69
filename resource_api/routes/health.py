"""``GET /health``: liveness, and whether the issuer's signing keys are held."""

from __future__ import annotations

from typing import Literal

import msgspec
from litestar import get
from litestar.datastructures import State

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
def health(state: State) -> Health:
    """Answer 200 while the process runs, with whether usable signing keys are held."""
    auth: LogtoAuth = state.auth
    return Health(status="ok", keys_loaded=auth.keys.has_keys)
