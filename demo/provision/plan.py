"""What the demo tenant holds, read from the dev issuer's seed: the single source of the users,
passwords, roles, organizations and rights that ``./dev demo`` serves.

Pure data: no I/O besides what :func:`demo.seed.load_seed` already did.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from demo.seed import Seed, SeedError

Permission = tuple[str, str]
"""``(API indicator, permission name)``."""


@dataclass(frozen=True, slots=True)
class ScopeSpec:
    """A permission of an API resource, or an organization permission."""

    name: str
    description: str


@dataclass(frozen=True, slots=True)
class ResourceSpec:
    """An API resource: its indicator is the tokens' ``aud``."""

    name: str
    indicator: str
    access_token_ttl: int
    scopes: tuple[ScopeSpec, ...]


@dataclass(frozen=True, slots=True)
class RoleSpec:
    """A global user role and the API permissions it grants."""

    name: str
    description: str
    permissions: tuple[Permission, ...]


@dataclass(frozen=True, slots=True)
class UserSpec:
    """A demo user, their password and their global roles."""

    username: str
    password: str
    name: str | None
    email: str | None
    roles: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class OrganizationRoleSpec:
    """A role of the organization template: organization permissions, and API permissions
    granted in organization-level tokens."""

    name: str
    description: str
    scopes: tuple[str, ...]
    permissions: tuple[Permission, ...]


@dataclass(frozen=True, slots=True)
class OrganizationSpec:
    """An organization and its members (username, organization roles)."""

    name: str
    description: str
    members: tuple[tuple[str, tuple[str, ...]], ...]


@dataclass(frozen=True, slots=True)
class ApplicationSpec:
    """The client app's Traditional web application."""

    name: str
    redirect_uris: tuple[str, ...]
    post_logout_redirect_uris: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Plan:
    """Everything the tenant must hold, in the order it is created."""

    resources: tuple[ResourceSpec, ...]
    roles: tuple[RoleSpec, ...]
    users: tuple[UserSpec, ...]
    organization_scopes: tuple[ScopeSpec, ...]
    organization_roles: tuple[OrganizationRoleSpec, ...]
    organizations: tuple[OrganizationSpec, ...]
    application: ApplicationSpec


def plan_from_seed(
    seed: Seed,
    *,
    indicators: Mapping[str, str],
    client_base_url: str,
    app_name: str,
) -> Plan:
    """The plan for ``seed``. ``indicators`` maps a seed API indicator to the one to create
    (``SHOPPING_RESOURCE`` / ``STORE_RESOURCE``); the application's redirect URIs are
    ``<client_base_url>/callback`` and ``<client_base_url>/``, as the client app sends them."""
    try:
        return _plan(seed, indicators, client_base_url.rstrip("/"), app_name)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise SeedError(f"the issuer's seed lacks what provisioning needs: {exc!r}") from exc


def _plan(seed: Seed, indicators: Mapping[str, str], base: str, app_name: str) -> Plan:
    def indicator(seed_indicator: str) -> str:
        return indicators.get(seed_indicator, seed_indicator)

    resources = tuple(
        ResourceSpec(
            name=str(resource["name"]),
            indicator=indicator(str(resource["indicator"])),
            access_token_ttl=int(resource.get("accessTokenTtl", 3600)),
            scopes=tuple(_scope(scope) for scope in resource.get("scopes", [])),
        )
        for resource in seed["resources"]
    )
    roles = tuple(
        RoleSpec(
            name=str(role["name"]),
            description=str(role.get("description") or f"Demo role {role['name']} (seed.json)"),
            permissions=_permissions(role.get("permissions", {}), indicator),
        )
        for role in seed["roles"]
        if role.get("type", "User") == "User"
    )
    role_names = {role.name for role in roles}
    usernames = {str(user["id"]): str(user["username"]) for user in seed["users"]}
    users = tuple(_user(user, role_names) for user in seed["users"])
    template = seed["organizationTemplate"]
    organization_scopes = tuple(_scope(scope) for scope in template["scopes"])
    organization_roles = tuple(
        OrganizationRoleSpec(
            name=str(role["name"]),
            description=str(role.get("description") or f"Demo organization role {role['name']}"),
            scopes=tuple(str(scope) for scope in role.get("scopes", [])),
            permissions=_permissions(role.get("permissions", {}), indicator),
        )
        for role in template["roles"]
    )
    organizations = tuple(
        OrganizationSpec(
            name=str(organization["name"]),
            description=str(organization.get("description") or ""),
            members=tuple(
                (
                    usernames[str(member["userId"])],
                    tuple(str(name) for name in member.get("roles", [])),
                )
                for member in organization.get("members", [])
            ),
        )
        for organization in seed["organizations"]
    )
    application = ApplicationSpec(
        name=app_name,
        redirect_uris=(f"{base}/callback",),
        post_logout_redirect_uris=(f"{base}/",),
    )
    return Plan(
        resources,
        roles,
        users,
        organization_scopes,
        organization_roles,
        organizations,
        application,
    )


def _scope(scope: Mapping[str, Any]) -> ScopeSpec:
    return ScopeSpec(name=str(scope["name"]), description=str(scope.get("description") or ""))


def _permissions(
    by_indicator: Mapping[str, Any], indicator: Callable[[str], str]
) -> tuple[Permission, ...]:
    return tuple(
        (indicator(str(api)), str(scope))
        for api, scopes in by_indicator.items()
        for scope in scopes
    )


def _user(user: Mapping[str, Any], role_names: set[str]) -> UserSpec:
    roles = tuple(str(name) for name in user.get("roles", []))
    unknown = [name for name in roles if name not in role_names]
    if unknown:
        msg = f"user {user['username']} has roles that are not user roles of the seed: {unknown}"
        raise ValueError(msg)
    return UserSpec(
        username=str(user["username"]),
        password=str(user["password"]),
        name=str(user["name"]) if user.get("name") else None,
        email=str(user["primaryEmail"]) if user.get("primaryEmail") else None,
        roles=roles,
    )
