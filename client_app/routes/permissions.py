"""``POST /permissions/check``: "Check my permissions again" (:mod:`client_app.step_up`).

The form names one token (an API resource of this app, an organization of the user's ID
token, or both) and the permissions the API said were missing. The handler gets a new token
for it with the refresh token (rate-limited per session) and sends the browser back to the
page, which says whether the permissions are now granted. A POST with the CSRF token, like
every form that changes something: here, the session's cached token.
"""

from __future__ import annotations

import logging

import msgspec
from litestar import post
from litestar.di import NamedDependency
from litestar.params import URLEncodedBody
from litestar.response import Redirect

from client_app.api_client import ApiForbidden
from client_app.context import AnyRequest, SignedInUser, app_context, authenticated
from client_app.display import TokenSummary
from client_app.errors import BadForm
from client_app.gateway import TokenTarget
from client_app.security import safe_return_path
from client_app.step_up import RecheckOffer, checked_location, known_scopes, recheck_offer

logger = logging.getLogger("client_app.permissions")


class PermissionCheckForm(msgspec.Struct, frozen=True):
    """The "Check my permissions again" form as submitted."""

    resource: str = ""
    organization_id: str = ""
    scope: str = ""
    return_to: str = ""
    csrf_token: str = ""


def offer_for(exc: Exception, target: TokenTarget, return_to: str) -> RecheckOffer | None:
    """The "Check my permissions again" offer for an API refusal naming missing permissions."""
    if not isinstance(exc, ApiForbidden):
        return None
    return recheck_offer(
        exc.missing_scopes,
        resource=target.resource,
        organization_id=target.organization_id,
        return_to=return_to,
    )


def check_target(form: PermissionCheckForm, user: SignedInUser, resources: set[str]) -> TokenTarget:
    """The token the form names, if it is one this user's pages use (else :class:`BadForm`)."""
    resource = form.resource or None
    organization_id = form.organization_id or None
    if resource is not None and resource not in resources:
        raise BadForm("This API is not one this app calls.")
    if organization_id is not None and organization_id not in (user.claims.organizations or []):
        raise BadForm("You are not a member of this organization.")
    if resource is None and organization_id is None:
        raise BadForm("Name the API or the organization whose permissions to check.")
    return TokenTarget(resource, organization_id)


@post("/permissions/check", name="check_permissions", dependencies={"user": authenticated()})
async def check_permissions(
    request: AnyRequest,
    user: NamedDependency[SignedInUser],
    data: URLEncodedBody[PermissionCheckForm],
) -> Redirect:
    """Drop the named token, get a new one with the refresh token, and go back to the page,
    which tells whether the permissions are now granted."""
    context = app_context(request)
    settings = context.settings
    target = check_target(data, user, {settings.shopping_resource, settings.store_resource})
    scopes = known_scopes(data.scope)
    if scopes is None:
        raise BadForm("Name the permissions to check (those this app uses).")
    token = await context.gateway.recheck_token(user.session_id, target)
    summary = TokenSummary.of(token)
    granted = set(summary.scopes) if summary is not None else set()
    logger.info(
        "permission check",
        extra={"event": "permission_check", "granted": granted.issuperset(scopes)},
    )
    return_to = safe_return_path(data.return_to)
    return Redirect(checked_location(return_to, scopes, target.cache_key), status_code=303)
