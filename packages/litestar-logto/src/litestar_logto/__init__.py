"""Verify Logto-issued access tokens in any Litestar app.

from litestar_logto import LogtoAuth, LogtoAuthConfig, requires, public

auth = LogtoAuth(LogtoAuthConfig(endpoint="https://tenant.logto.app",
                                 resources={"shopping": "https://shopping.your-app.com/api"}))

@get("/orders", opt=requires("shopping", "shopping:read"))
async def orders(access_token: AccessToken) -> list[Order]: ...

app = Litestar([orders], plugins=[auth])
"""

from .claims import AccessToken
from .errors import (
    AuthError,
    InsufficientScope,
    InvalidRequest,
    InvalidToken,
    KeysUnavailable,
    MissingCredentials,
)
from .jwks import KeySetPolicy, RemoteKeySet
from .keys import LOGTO_ALGORITHMS
from .litestar import AuthenticatedRequest, LogtoAuth, LogtoAuthConfig
from .requirements import PUBLIC, Requirement, public, requires, requires_organization
from .verifier import TokenVerifier, VerifierPolicy

__all__ = [
    "LOGTO_ALGORITHMS",
    "PUBLIC",
    "AccessToken",
    "AuthError",
    "AuthenticatedRequest",
    "InsufficientScope",
    "InvalidRequest",
    "InvalidToken",
    "KeySetPolicy",
    "KeysUnavailable",
    "LogtoAuth",
    "LogtoAuthConfig",
    "MissingCredentials",
    "RemoteKeySet",
    "Requirement",
    "TokenVerifier",
    "VerifierPolicy",
    "public",
    "requires",
    "requires_organization",
]
