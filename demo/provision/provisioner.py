"""Bring a Logto tenant to the plan: read what exists, create what is missing, correct what
differs, and say each change. A tenant that already matches receives no write.

Objects are found by their natural key (an API's indicator, a role's, user's, permission's or
organization role's name, an organization's or application's name), so what someone created by
hand in the Console is reused, not duplicated. An object of that key that cannot be the demo's
(a role of another type, an application that is not a Traditional web app, two organizations of
one name) is a conflict: it is reported, never changed or deleted.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import msgspec

from .management import ManagementApi, ProvisionError
from .plan import Permission, Plan


class ConflictError(ProvisionError):
    """An existing object has the demo's name but cannot be the demo's."""


# -- the shapes read from Logto (only the fields used; msgspec ignores the others) ----------


class _Named(msgspec.Struct):
    id: str
    name: str


class _Resource(msgspec.Struct):
    id: str
    name: str
    indicator: str
    accessTokenTtl: int = 3600  # noqa: N815 - Logto's field name


class _Role(msgspec.Struct):
    id: str
    name: str
    type: str = "User"


class _User(msgspec.Struct):
    id: str
    username: str | None = None


class _ResourceScope(msgspec.Struct):
    id: str
    name: str
    resource: _Named


class _OrganizationRole(msgspec.Struct):
    id: str
    name: str
    type: str = "User"
    scopes: list[_Named] = msgspec.field(default_factory=list)
    resourceScopes: list[_ResourceScope] = msgspec.field(default_factory=list)  # noqa: N815


class _Member(msgspec.Struct):
    id: str
    organizationRoles: list[_Named] = msgspec.field(default_factory=list)  # noqa: N815


class _Application(msgspec.Struct):
    id: str
    name: str
    type: str
    oidcClientMetadata: dict[str, Any] = msgspec.field(default_factory=dict)  # noqa: N815


class _Secret(msgspec.Struct):
    name: str
    value: str
    expiresAt: int | None = None  # noqa: N815


class _SignInExperience(msgspec.Struct):
    passwordPolicy: dict[str, Any] = msgspec.field(default_factory=dict)  # noqa: N815


@dataclass(frozen=True, slots=True)
class Credentials:
    """What the client app needs from the provisioned application."""

    app_id: str
    app_secret: str


@dataclass
class Provisioner:
    """One run against one tenant. ``say`` receives one line per change."""

    api: ManagementApi
    plan: Plan
    say: Callable[[str], None]
    changes: int = 0
    _scopes: dict[Permission, str] = field(default_factory=dict)
    _roles: dict[str, str] = field(default_factory=dict)
    _users: dict[str, str] = field(default_factory=dict)
    _organization_scopes: dict[str, str] = field(default_factory=dict)
    _organization_roles: dict[str, str] = field(default_factory=dict)

    def run(self, *, disable_pwned_check: bool = False) -> Credentials:
        """Every step, in order; the application's id and client secret."""
        if disable_pwned_check:
            self.password_policy()
        self.resources()
        self.roles()
        self.users()
        self.organization_scopes()
        self.organization_roles()
        self.organizations()
        return self.application()

    def _changed(self, line: str) -> None:
        self.changes += 1
        self.say(f"  {line}")

    # -- steps ----------------------------------------------------------------------------------

    def password_policy(self) -> None:
        """Turn off the "pwned password" check (``--disable-pwned-password-check`` only)."""
        policy = self.api.get("/api/sign-in-exp", _SignInExperience).passwordPolicy
        rejects = policy.get("rejects") or {}
        if rejects.get("pwned") is False:
            return
        updated = {**policy, "rejects": {**rejects, "pwned": False}}
        self.api.patch("/api/sign-in-exp", {"passwordPolicy": updated})
        self._changed("sign-in experience: the pwned-password check is off")

    def resources(self) -> None:
        existing = {r.indicator: r for r in self.api.list("/api/resources", _Resource)}
        for spec in self.plan.resources:
            resource = existing.get(spec.indicator)
            if resource is None:
                body = {
                    "name": spec.name,
                    "indicator": spec.indicator,
                    "accessTokenTtl": spec.access_token_ttl,
                }
                resource = self.api.post("/api/resources", body, _Resource)
                self._changed(f"API resource {spec.name} ({spec.indicator}): created")
                scopes: list[_Named] = []
            else:
                update: dict[str, Any] = {}
                if resource.name != spec.name:
                    update["name"] = spec.name
                if resource.accessTokenTtl != spec.access_token_ttl:
                    update["accessTokenTtl"] = spec.access_token_ttl
                if update:
                    self.api.patch(f"/api/resources/{resource.id}", update)
                    self._changed(f"API resource {spec.indicator}: {', '.join(update)} updated")
                scopes = self.api.list(f"/api/resources/{resource.id}/scopes", _Named)
            have = {scope.name: scope.id for scope in scopes}
            for scope in spec.scopes:
                if scope.name not in have:
                    body = {"name": scope.name, "description": scope.description}
                    path = f"/api/resources/{resource.id}/scopes"
                    have[scope.name] = self.api.post(path, body, _Named).id
                    self._changed(f"permission {scope.name} of {spec.name}: created")
                self._scopes[spec.indicator, scope.name] = have[scope.name]

    def roles(self) -> None:
        existing = {r.name: r for r in self.api.list("/api/roles", _Role)}
        for spec in self.plan.roles:
            wanted = self._scope_ids(spec.permissions, f"role {spec.name}")
            role = existing.get(spec.name)
            if role is not None and role.type != "User":
                raise ConflictError(
                    f"a role named '{spec.name}' exists with type {role.type}; the demo needs a "
                    "user role of that name: rename or delete it in the Console (Roles)"
                )
            if role is None:
                body = {
                    "name": spec.name,
                    "description": spec.description,
                    "type": "User",
                    "scopeIds": wanted,
                }
                self._roles[spec.name] = self.api.post("/api/roles", body, _Role).id
                self._changed(f"role {spec.name}: created with {_names(spec.permissions)}")
                continue
            self._roles[spec.name] = role.id
            path = f"/api/roles/{role.id}/scopes"
            have = {scope.id for scope in self.api.list(path, _Named)}
            missing = [scope_id for scope_id in wanted if scope_id not in have]
            if missing:
                self.api.post(path, {"scopeIds": missing}, list[_Named])
                self._changed(f"role {spec.name}: {len(missing)} permission(s) added")
            for extra in sorted(have - set(wanted)):
                self.api.delete(f"{path}/{extra}")
                self._changed(f"role {spec.name}: a permission the demo does not grant removed")

    def users(self) -> None:
        existing = {u.username: u for u in self.api.list("/api/users", _User) if u.username}
        for spec in self.plan.users:
            wanted = sorted(self._roles[name] for name in spec.roles)
            user = existing.get(spec.username)
            if user is None:
                body: dict[str, Any] = {"username": spec.username, "password": spec.password}
                if spec.name:
                    body["name"] = spec.name
                if spec.email:
                    body["primaryEmail"] = spec.email
                user = self.api.post("/api/users", body, _User)
                self._changed(f"user {spec.username}: created with the seed's password")
                have: list[str] = []
            else:
                self._password(user.id, spec.username, spec.password)
                have = sorted(r.id for r in self.api.list(f"/api/users/{user.id}/roles", _Role))
            self._users[spec.username] = user.id
            if have != wanted:
                self.api.put(f"/api/users/{user.id}/roles", {"roleIds": wanted})
                roles = ", ".join(spec.roles) or "none"
                self._changed(f"user {spec.username}: roles set to {roles}")

    def _password(self, user_id: str, username: str, password: str) -> None:
        """Set the seed's password unless Logto says it is already the user's."""
        path = f"/api/users/{user_id}/password"
        verified = self.api.call("POST", f"{path}/verify", {"password": password}, accept=(422,))
        if verified.status_code != 422:  # noqa: PLR2004 - 204: it matches
            return
        self.api.patch(path, {"password": password})
        self._changed(f"user {username}: password reset to the seed's")

    def organization_scopes(self) -> None:
        existing = {s.name: s.id for s in self.api.list("/api/organization-scopes", _Named)}
        for spec in self.plan.organization_scopes:
            if spec.name not in existing:
                body = {"name": spec.name, "description": spec.description}
                existing[spec.name] = self.api.post("/api/organization-scopes", body, _Named).id
                self._changed(f"organization permission {spec.name}: created")
            self._organization_scopes[spec.name] = existing[spec.name]

    def organization_roles(self) -> None:
        path = "/api/organization-roles"
        existing = {r.name: r for r in self.api.list(path, _OrganizationRole)}
        for spec in self.plan.organization_roles:
            role = existing.get(spec.name)
            if role is not None and role.type != "User":
                raise ConflictError(
                    f"an organization role named '{spec.name}' exists with type {role.type}; the "
                    "demo needs a user role of that name: rename or delete it in the Console "
                    "(Organization template)"
                )
            if role is None:
                body = {"name": spec.name, "description": spec.description, "type": "User"}
                role = self.api.post(path, body, _OrganizationRole)
                self._changed(f"organization role {spec.name}: created")
            self._organization_roles[spec.name] = role.id
            scopes = sorted(self._organization_scopes[name] for name in spec.scopes)
            if sorted(scope.id for scope in role.scopes) != scopes:
                self.api.put(f"{path}/{role.id}/scopes", {"organizationScopeIds": scopes})
                self._changed(f"organization role {spec.name}: permissions {_list(spec.scopes)}")
            permissions = sorted(
                self._scope_ids(spec.permissions, f"organization role {spec.name}")
            )
            if sorted(scope.id for scope in role.resourceScopes) != permissions:
                self.api.put(f"{path}/{role.id}/resource-scopes", {"scopeIds": permissions})
                self._changed(
                    f"organization role {spec.name}: API permissions {_names(spec.permissions)}"
                )

    def organizations(self) -> None:
        every = self.api.list("/api/organizations", _Named)
        for spec in self.plan.organizations:
            found = [organization for organization in every if organization.name == spec.name]
            if len(found) > 1:
                raise ConflictError(
                    f"{len(found)} organizations named '{spec.name}': the demo cannot tell which "
                    "is its own; keep one (Console → Organizations)"
                )
            wanted = {
                self._users[username]: sorted(self._organization_roles[r] for r in roles)
                for username, roles in spec.members
            }
            if found:
                organization = found[0]
                path = f"/api/organizations/{organization.id}/users"
                have = {
                    member.id: sorted(role.id for role in member.organizationRoles)
                    for member in self.api.list(path, _Member)
                }
            else:
                body = {"name": spec.name, "description": spec.description}
                organization = self.api.post("/api/organizations", body, _Named)
                self._changed(f"organization {spec.name}: created")
                path, have = f"/api/organizations/{organization.id}/users", {}
            if set(have) != set(wanted):
                self.api.put(path, {"userIds": sorted(wanted)})
                self._changed(
                    f"organization {spec.name}: members {_list(u for u, _ in spec.members)}"
                )
                have = {user_id: have.get(user_id, []) for user_id in wanted}
            for username, roles in spec.members:
                user_id = self._users[username]
                if have[user_id] != wanted[user_id]:
                    roles_body = {"organizationRoleIds": wanted[user_id]}
                    self.api.put(f"{path}/{user_id}/roles", roles_body)
                    self._changed(f"organization {spec.name}: {username} is {_list(roles)}")

    def application(self) -> Credentials:
        spec = self.plan.application
        named = [a for a in self.api.list("/api/applications", _Application) if a.name == spec.name]
        web = [a for a in named if a.type == "Traditional"]
        if len(web) > 1:
            raise ConflictError(
                f"{len(web)} Traditional web applications named '{spec.name}': keep one, or "
                "choose another name with --app-name"
            )
        if named and not web:
            raise ConflictError(
                f"an application named '{spec.name}' exists with type {named[0].type}; the client "
                "app needs a Traditional web application: rename it in the Console, or choose "
                "another name with --app-name"
            )
        uris = {
            "redirectUris": list(spec.redirect_uris),
            "postLogoutRedirectUris": list(spec.post_logout_redirect_uris),
        }
        if web:
            app = web[0]
            current = {key: app.oidcClientMetadata.get(key) for key in uris}
            if current != uris:
                # The whole metadata goes back (Logto may replace the JSON column on PATCH).
                metadata = {**app.oidcClientMetadata, **uris}
                self.api.patch(f"/api/applications/{app.id}", {"oidcClientMetadata": metadata})
                self._changed(
                    f"application {spec.name}: redirect URIs {_list(uris['redirectUris'])}"
                )
        else:
            body = {
                "name": spec.name,
                "type": "Traditional",
                "description": "The client app of the Logto API protection demo (demo.provision)",
                "oidcClientMetadata": uris,
            }
            app = self.api.post("/api/applications", body, _Application)
            self._changed(f"application {spec.name} (Traditional web): created")
        return Credentials(app_id=app.id, app_secret=self._secret(app.id, spec.name))

    def _secret(self, app_id: str, name: str) -> str:
        """A client secret of the application (``GET /secrets``; one is made if none is valid)."""
        path = f"/api/applications/{app_id}/secrets"
        now_ms = time.time() * 1000
        for secret in self.api.get(path, list[_Secret]):
            if secret.expiresAt is None or secret.expiresAt > now_ms:
                return secret.value
        secret = self.api.post(path, {"name": "demo.provision"}, _Secret)
        self._changed(f"application {name}: client secret created")
        return secret.value

    def _scope_ids(self, permissions: Iterable[Permission], owner: str) -> list[str]:
        missing = [p for p in permissions if p not in self._scopes]
        if missing:
            names = ", ".join(f"{scope} of {api}" for api, scope in missing)
            raise ProvisionError(f"{owner} grants {names}, which no API resource of the seed has")
        return [self._scopes[p] for p in permissions]


def _names(permissions: Iterable[Permission]) -> str:
    return _list(scope for _, scope in permissions)


def _list(names: Iterable[str]) -> str:
    return ", ".join(names) or "none"
