"""The organizations page: for each organization of the ID token, its organization token and
members, and an organization-level store token and the organization's catalog.

An organization-level token is what an organization-scoped API route must require: a global
token carries the union of the user's permissions in *all* organizations
(``logto-tokens.md`` §3), which is why the API checks ``organization_id``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeVar

from litestar import get
from litestar.di import NamedDependency
from litestar.params import FromQuery
from litestar.response import Template

from client_app.api_client import ApiError, Member, Product, call_with_token
from client_app.context import (
    AnyRequest,
    AppContext,
    SignedInUser,
    app_context,
    authenticated,
    page,
)
from client_app.display import Row, TokenSummary
from client_app.errors import AccessDenied, IssuerProblem
from client_app.gateway import TokenTarget
from client_app.routes.permissions import offer_for
from client_app.step_up import PermissionNotice, RecheckOffer, permission_notice

T = TypeVar("T")


@dataclass(slots=True)
class Panel:
    """One token and what the API answered with it (or why either failed)."""

    token_rows: list[Row] = field(default_factory=list)
    token_problem: str | None = None
    items: list[Member] | list[Product] = field(default_factory=list)
    problem: str | None = None
    offer: RecheckOffer | None = None
    """"Check my permissions again", when the API named a missing permission."""
    permission: PermissionNotice | None = None
    """What that check found, on the page it came back to."""


@dataclass(frozen=True, slots=True)
class OrganizationView:
    """An organization: the user's roles in it and the two panels."""

    id: str
    roles: tuple[str, ...]
    members: Panel
    products: Panel


def roles_in(organization_roles: list[str] | None, organization_id: str) -> tuple[str, ...]:
    """The user's roles in one organization, from ``<organization_id>:<role>`` claims."""
    prefix = f"{organization_id}:"
    return tuple(r.removeprefix(prefix) for r in organization_roles or [] if r.startswith(prefix))


async def panel(
    context: AppContext,
    user: SignedInUser,
    target: TokenTarget,
    call: Callable[[str], Awaitable[list[Member]] | Awaitable[list[Product]]],
    checked: tuple[str | None, str | None] = (None, None),
) -> Panel:
    """Get the token for ``target``, describe it, call the API with it; ``checked`` is the
    page's ``(checked, target)`` query after "Check my permissions again"."""
    result = Panel()
    try:
        token = await context.gateway.token(user.session_id, target)
    except (AccessDenied, IssuerProblem) as exc:
        result.token_problem = exc.message
        return result
    summary = TokenSummary.of(token)
    result.token_rows = summary.rows(context.clock()) if summary else []
    result.permission = permission_notice(
        *checked,
        cache_key=target.cache_key,
        token_scopes=summary.scopes if summary else (),
        organization_id=target.organization_id,
    )
    try:
        result.items = await call_with_token(
            context.gateway, user.session_id, target, call, token=token
        )
    except ApiError as exc:
        result.problem = exc.message
        result.offer = offer_for(exc, target, "/organizations")
    return result


@get("/organizations", name="organizations", dependencies={"user": authenticated()})
async def organizations(
    request: AnyRequest,
    user: NamedDependency[SignedInUser],
    checked: FromQuery[str | None] = None,
    target: FromQuery[str | None] = None,
) -> Template:
    """One card per organization in the ID token's ``organizations`` claim."""
    context = app_context(request)
    store = context.settings.store_resource
    views = []
    for organization_id in user.claims.organizations or []:

        def members(token: str, org: str = organization_id) -> Awaitable[list[Member]]:
            return context.api.organization_members(token, org)

        def products(token: str, org: str = organization_id) -> Awaitable[list[Product]]:
            return context.api.organization_products(token, org)

        views.append(
            OrganizationView(
                id=organization_id,
                roles=roles_in(user.claims.organization_roles, organization_id),
                members=await panel(
                    context,
                    user,
                    TokenTarget(organization_id=organization_id),
                    members,
                    (checked, target),
                ),
                products=await panel(
                    context, user, TokenTarget(store, organization_id), products, (checked, target)
                ),
            )
        )
    return page(request, "organizations.html", user=user, title="Organizations", views=views)
