"""Bearer-token extraction from an HTTP request (RFC 6750 §2), framework-free.

Only the ``Authorization`` header is accepted (§2.1). A token offered in the query string
(§2.3) or a form body (§2.2) is refused with ``invalid_request`` rather than silently ignored,
so a client that leaks tokens into URLs learns about it at once.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from .errors import InvalidRequest, InvalidToken, MissingCredentials

DEFAULT_MAX_TOKEN_BYTES = 8 * 1024

# RFC 7235 §2.1 token68; a JWS compact serialisation is a subset of it.
_TOKEN68 = re.compile(r"[A-Za-z0-9\-._~+/]+=*")


def extract_bearer_token(
    authorization: Sequence[str],
    *,
    token_in_query: bool = False,
    token_in_body: bool = False,
    max_token_bytes: int = DEFAULT_MAX_TOKEN_BYTES,
) -> str:
    """Return the single bearer token of a request, or raise the RFC 6750 error.

    ``authorization`` holds every ``Authorization`` header value of the request.
    """
    if token_in_query:
        raise InvalidRequest(
            "Access tokens are not accepted in the URL; use the Authorization header.",
            reason="token_in_query",
        )
    if len(authorization) > 1:
        raise InvalidRequest(
            "Send exactly one Authorization header.", reason="duplicate_authorization"
        )
    if not authorization:
        if token_in_body:
            raise InvalidRequest(
                "Access tokens are not accepted in the request body; use the Authorization header.",
                reason="token_in_body",
            )
        raise MissingCredentials(reason="no_credentials")
    if token_in_body:
        raise InvalidRequest("Send the access token in exactly one place.", reason="token_in_body")
    return _parse_authorization(authorization[0], max_token_bytes)


def _parse_authorization(value: str, max_token_bytes: int) -> str:
    value = value.strip(" \t")
    scheme, _, credentials = value.partition(" ")
    if scheme.lower() != "bearer":
        # Another scheme (Basic, DPoP …) is not a bearer credential: challenge without a code.
        raise MissingCredentials(reason="other_scheme")
    if len(credentials) > max_token_bytes + 16:  # refuse before any regex or parsing
        raise InvalidToken("The access token is too large.", reason="oversized")
    token = credentials.strip(" ")
    if not token:
        raise InvalidRequest("The Bearer credentials are empty.", reason="empty_credentials")
    if len(token) > max_token_bytes:
        raise InvalidToken("The access token is too large.", reason="oversized")
    if _TOKEN68.fullmatch(token) is None:
        raise InvalidRequest(
            "The Bearer credentials must be a single token.", reason="malformed_credentials"
        )
    return token
