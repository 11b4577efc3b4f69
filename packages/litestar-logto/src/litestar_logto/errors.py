"""Errors of the bearer-token layer, one class per RFC 6750 code.

Exception tree (every class carries a safe, stable description of our own):

    AuthError                       base: status, error code, challenge rendering
    ├── MissingCredentials          401, no error code (RFC 6750 §3.1: no credentials sent)
    ├── InvalidRequest              400 ``invalid_request``
    ├── InvalidToken                401 ``invalid_token``
    ├── InsufficientScope           403 ``insufficient_scope`` with the missing scopes
    └── KeysUnavailable             503, ``Retry-After``: the issuer's keys cannot be obtained
                                    (or the token's kid cannot be looked up yet)

``reason`` is a short machine-readable failure class (``expired``, ``bad_signature`` …) used in
logs and tests. Descriptions never contain library text or any part of the token.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

# RFC 6750 §3: error_description and scope values are restricted to printable ASCII
# without '"' and '\'. We strip anything else rather than escape it.
_UNSAFE_CHALLENGE_CHARS = re.compile(r"[^\x20\x21\x23-\x5b\x5d-\x7e]")


def quote_safe(value: str) -> str:
    """Return ``value`` reduced to the characters an RFC 6750 quoted string may hold."""
    return _UNSAFE_CHALLENGE_CHARS.sub("", value)


class AuthError(Exception):
    """Base of every authentication or authorization failure answered to the caller."""

    status_code: int = 401
    error: str | None = None
    body_error: str = "unauthorized"
    default_description = "Authentication is required."

    def __init__(self, description: str | None = None, *, reason: str = "unspecified") -> None:
        self.description = description or self.default_description
        self.reason = reason
        super().__init__(self.description)

    def challenge_params(self) -> list[tuple[str, str]]:
        """The auth-params of the ``WWW-Authenticate`` challenge, in order."""
        if self.error is None:
            return []
        return [("error", self.error), ("error_description", self.description)]

    def www_authenticate(
        self, *, realm: str | None = None, resource_metadata: str | None = None
    ) -> str:
        """Render the RFC 6750 §3 ``Bearer`` challenge for this error."""
        params: list[tuple[str, str]] = []
        if realm:
            params.append(("realm", realm))
        params.extend(self.challenge_params())
        if resource_metadata:  # RFC 9728 §5.1
            params.append(("resource_metadata", resource_metadata))
        if not params:
            return "Bearer"
        return "Bearer " + ", ".join(f'{name}="{quote_safe(value)}"' for name, value in params)

    def headers(
        self, *, realm: str | None = None, resource_metadata: str | None = None
    ) -> dict[str, str]:
        """Response headers for this error."""
        return {
            "WWW-Authenticate": self.www_authenticate(
                realm=realm, resource_metadata=resource_metadata
            )
        }

    def body(self) -> dict[str, str]:
        """The JSON body ``{"error", "error_description"}``."""
        return {"error": self.error or self.body_error, "error_description": self.description}


class MissingCredentials(AuthError):
    """No bearer credentials were sent (RFC 6750 §3.1: the challenge carries no error code)."""

    default_description = "A bearer access token is required."


class InvalidRequest(AuthError):
    """The request is malformed: duplicate or unparsable credentials, or a token in the URL."""

    status_code = 400
    error = "invalid_request"
    default_description = "The request carries malformed credentials."


class InvalidToken(AuthError):
    """The token is malformed, expired, not signed by the issuer, or meant for someone else."""

    error = "invalid_token"
    default_description = "The access token is invalid."

    def __init__(
        self, description: str | None = None, *, reason: str = "unspecified", replayed: bool = False
    ) -> None:
        super().__init__(description, reason=reason)
        self.replayed = replayed
        """``True`` when the verifier answered from its refusal cache: this very token was
        refused before, for this reason (and that refusal was logged)."""


class InsufficientScope(AuthError):
    """The token is valid but lacks a permission (or the organization) the route needs."""

    status_code = 403
    error = "insufficient_scope"
    default_description = "The access token does not grant this operation."

    def __init__(
        self,
        missing_scopes: Iterable[str],
        description: str | None = None,
        *,
        reason: str = "missing_scope",
    ) -> None:
        self.missing_scopes = tuple(missing_scopes)
        super().__init__(description, reason=reason)

    def challenge_params(self) -> list[tuple[str, str]]:
        """The error's auth-params, then ``scope``: the missing scopes (RFC 6750 §3)."""
        params = super().challenge_params()
        if self.missing_scopes:
            params.append(("scope", " ".join(self.missing_scopes)))
        return params


class KeysUnavailable(AuthError):
    """The issuer's signing keys cannot be obtained (or the issuer cannot be asked about the
    token's kid right now): our outage, not the caller's fault."""

    status_code = 503
    body_error = "temporarily_unavailable"
    default_description = "The token issuer cannot be reached; try again shortly."

    def __init__(
        self,
        description: str | None = None,
        *,
        retry_after: int = 30,
        reason: str = "keys_unavailable",
        outage: bool = True,
    ) -> None:
        self.retry_after = retry_after
        self.outage = outage
        """``False`` when nothing is broken: the issuer merely cannot be asked about the token's
        kid yet (unknown-kid cooldown); logged like a refusal, not as an outage."""
        super().__init__(description, reason=reason)

    def headers(
        self, *, realm: str | None = None, resource_metadata: str | None = None
    ) -> dict[str, str]:
        """``Retry-After`` (seconds) only: a 503 is not a challenge, so no ``WWW-Authenticate``."""
        del realm, resource_metadata  # a 503 is not a challenge
        return {"Retry-After": str(self.retry_after)}


class KeySetError(Exception):
    """A key set or issuer metadata document could not be fetched or was unusable.

    Internal to the key source; never shown to a caller as is.
    """

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)
