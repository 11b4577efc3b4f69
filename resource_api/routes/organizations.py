"""Organization routes: Logto's organization tokens and organization-level API tokens."""

from __future__ import annotations

import msgspec
from litestar import Router, get
from litestar.params import FromPath
from litestar_logto import AuthenticatedRequest, requires, requires_organization

from resource_api.routes.app_store import store_of
from resource_api.routes.contract import protected
from resource_api.routes.store import ProductList
from resource_api.storage import Member


class MemberList(msgspec.Struct, frozen=True):
    """The members this API has seen for an organization, first seen first."""

    organization_id: str
    members: list[Member]


@get(
    "/members",
    **protected(requires_organization("read:members", organization_param="org_id")),
    operation_id="listOrganizationMembers",
    summary="List the organization's members seen by this API",
)
async def list_members(org_id: FromPath[str], request: AuthenticatedRequest) -> MemberList:
    """Record the caller as a member (Logto issues organization tokens only to members),
    then list every member seen so far."""
    store = store_of(request)
    await store.record_member(org_id, request.auth.subject)
    return MemberList(organization_id=org_id, members=await store.list_members(org_id))


@get(
    "/store/products",
    **protected(requires("store", "store:read", organization_param="org_id")),
    operation_id="listOrganizationProducts",
    summary="List the organization's catalog",
)
async def list_organization_products(
    org_id: FromPath[str], request: AuthenticatedRequest
) -> ProductList:
    """Every product of the organization's own catalog."""
    return ProductList(products=await store_of(request).list_products(org_id))


organizations_router = Router(
    path="/organizations/{org_id:str}",
    route_handlers=[list_members, list_organization_products],
    tags=["organizations"],
)
