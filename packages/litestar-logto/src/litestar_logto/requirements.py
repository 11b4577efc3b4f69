"""What a route needs from a token, and the one check that enforces it (framework-free).

Three kinds of protected route, matching Logto's three token patterns:

* ``requires("shopping", "shopping:read")`` — a global API resource token: ``aud`` is the
  resource indicator configured under the name ``shopping``, and no ``organization_id``: an
  organization-level token is for that organization's resources (Logto's model), so a route
  that declares no organization refuses it (403 ``insufficient_scope``) unless it opts in with
  ``organization_tokens=True``;
* ``requires("store", "store:read", organization_param="org_id")`` — an organization-level API
  token: the same audience **and** an ``organization_id`` claim equal to the path's
  organization (a global token carries the union of the user's roles in every organization,
  so it must never be accepted here);
* ``requires_organization("read:members", organization_param="org_id")`` — an organization
  token: ``aud`` is ``urn:logto:organization:<org_id>``.

``PUBLIC`` marks a route that deliberately needs no token.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Final

from .claims import ORGANIZATION_AUDIENCE_PREFIX, AccessToken
from .errors import InsufficientScope

OPT_KEY: Final = "logto_auth"
ORGANIZATIONS: Final = "organizations"
"""The pseudo resource name of organization tokens (``urn:logto:organization:<id>``)."""
# RFC 6749 §3.3 scope-token: printable ASCII except space, '"' and '\\'; anything else could
# not be named in the challenge's scope="…" (RFC 6750 §3).
_SCOPE_TOKEN: Final = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]+")


@dataclass(frozen=True, slots=True)
class Public:
    """Marker: this route needs no access token."""


PUBLIC: Final = Public()
"""The declaration of a route open to everyone (what :func:`public` puts in ``opt``): the
plugin checks no token there, and refuses to start while a route declares neither this nor a
requirement."""


@dataclass(frozen=True, slots=True)
class Requirement:
    """The audience, scopes and organization a route requires."""

    resource: str
    """A configured resource name, or ``ORGANIZATIONS`` for organization tokens."""
    scopes: tuple[str, ...]
    organization_param: str | None = None
    """Path parameter naming the organization the token must be for."""
    organization_tokens: bool = False
    """A route without ``organization_param`` that also takes organization-level tokens of
    its API (of any organization); by default it takes global tokens only."""

    @property
    def organization_token(self) -> bool:
        """Whether the route takes an organization token rather than an API resource token."""
        return self.resource == ORGANIZATIONS

    def audience(self, indicators: dict[str, str], organization_id: str | None) -> str:
        """The audience a token must carry for this route."""
        if self.organization_token:
            return f"{ORGANIZATION_AUDIENCE_PREFIX}{organization_id}"
        return indicators[self.resource]


def requires(
    resource: str,
    *scopes: str,
    organization_param: str | None = None,
    organization_tokens: bool = False,
) -> dict[str, Any]:
    """Route ``opt`` for a token of API resource ``resource`` holding every one of ``scopes``.

    Without ``organization_param`` the token must be global (no ``organization_id``) unless
    ``organization_tokens`` is true; with it, an organization-level token of that organization.
    """
    if resource == ORGANIZATIONS:
        msg = "use requires_organization() for organization tokens"
        raise ValueError(msg)
    if organization_tokens and organization_param is not None:
        msg = "organization_tokens is for routes without organization_param"
        raise ValueError(msg)
    return {
        OPT_KEY: Requirement(resource, _scopes(scopes), organization_param, organization_tokens)
    }


def requires_organization(*scopes: str, organization_param: str = "org_id") -> dict[str, Any]:
    """Route ``opt`` for an organization token of the path's organization with ``scopes``."""
    return {OPT_KEY: Requirement(ORGANIZATIONS, _scopes(scopes), organization_param)}


def public() -> dict[str, Any]:
    """Route ``opt`` for a route that deliberately needs no token."""
    return {OPT_KEY: PUBLIC}


def authorize(token: AccessToken, requirement: Requirement, organization_id: str | None) -> None:
    """Raise :class:`InsufficientScope` unless ``token`` satisfies ``requirement``.

    The audience was already checked by the verifier.
    """
    if requirement.organization_param is not None and not requirement.organization_token:
        if token.organization_id is None:
            raise InsufficientScope(
                requirement.scopes,
                "This route needs an organization-level token for this organization.",
                reason="no_organization",
            )
        if token.organization_id != organization_id:
            raise InsufficientScope(
                requirement.scopes,
                "The access token is for another organization.",
                reason="wrong_organization",
            )
    elif (
        token.organization_id is not None
        and requirement.organization_param is None
        and not requirement.organization_tokens
    ):
        # A valid token of the right audience, but for one organization's resources: the
        # request needs another grant (a global token), not new credentials (RFC 6750 §3.1).
        raise InsufficientScope(
            requirement.scopes,
            "This route takes a global token of this API; the access token is bound to an "
            "organization.",
            reason="organization_token",
        )
    missing = [scope for scope in requirement.scopes if scope not in token.scopes]
    if missing:
        raise InsufficientScope(
            missing, "The access token lacks the permission this operation needs."
        )


def _scopes(scopes: tuple[str, ...]) -> tuple[str, ...]:
    if not scopes:
        msg = "declare at least one scope, or mark the route public()"
        raise ValueError(msg)
    for scope in scopes:
        if _SCOPE_TOKEN.fullmatch(scope) is None:
            msg = f"invalid scope name: {scope!r}"
            raise ValueError(msg)
    return scopes
