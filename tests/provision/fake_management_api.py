"""A stateful fake of Logto's token endpoint and Management API, served through respx.

Each route answers like Logto's own handler and checks the request the way that handler's
``koaGuard`` does (plus: unknown body keys are refused, so a misspelt field fails the test
instead of being silently stripped as zod would). The shapes come from logto-io/logto,
``packages/core/src/``:

* ``middleware/koa-pagination.ts``: ``page`` (from 1) and ``page_size`` (default 20, at most
  100, else 400 ``guard.invalid_pagination``); the total in the ``Total-Number`` header.
  Routes created with ``koaPagination({ isOptional: true })`` return everything, without the
  header, when neither parameter is given.
* ``routes/resource.ts``: ``/api/resources`` (+ ``/{id}``, ``/{id}/scopes``; optional
  pagination, POST answers 200, a scope name already used in the resource is 422
  ``scope.name_exists``).
* ``routes/role.ts`` and ``routes/role.scope.ts``: ``/api/roles`` (required pagination; POST
  ``{name, description, type, scopeIds}`` answers 200, a used name is 422
  ``role.name_in_use``), ``/api/roles/{id}/scopes`` (POST ``{scopeIds}`` non-empty, 422
  ``role.scope_exists`` when one is already assigned; DELETE ``/{scopeId}`` 204).
* ``routes/admin-user/basics.ts``, ``search.ts``, ``role.ts``: ``/api/users`` (POST answers
  200; 422 ``user.username_already_in_use`` / ``user.email_already_in_use``),
  ``PATCH /{id}/password``, ``POST /{id}/password/verify`` (204, or 422 when it does not
  match), ``/{id}/roles`` (GET paginated, PUT ``{roleIds}`` answers 200).
* ``routes/organization/scopes.ts``, ``roles.ts``, ``index.ts``, ``user/index.ts``,
  ``user/role-relations.ts`` and ``utils/SchemaRouter.ts``: ``/api/organization-scopes``,
  ``/api/organization-roles`` (GET carries ``scopes`` and ``resourceScopes``; PUT
  ``/{id}/scopes`` with ``organizationScopeIds``, PUT ``/{id}/resource-scopes`` with
  ``scopeIds``, both 204), ``/api/organizations`` (POST 201; ``/{id}/users`` GET carries each
  member's ``organizationRoles``, PUT ``{userIds}`` 204; PUT ``/{id}/users/{userId}/roles``
  ``{organizationRoleIds}`` 204, 422 ``organization.require_membership`` for a non-member).
  Unique names are 422 (``organization/utils.ts`` maps the database's unique violation).
* ``routes/applications/application.ts`` and ``application-secret.ts``: ``/api/applications``
  (optional pagination; POST answers 200 and creates the "Default secret"; PATCH merges
  ``oidcClientMetadata``), ``GET/POST /{id}/secrets``.
* ``routes/sign-in-experience``: ``GET/PATCH /api/sign-in-exp``.
* Errors are ``{"code", "message"}`` (``errors/RequestError``); a token without the
  Management API's ``all`` scope gets 403 ``auth.forbidden`` (``middleware/koa-auth``).
* The token endpoint is oidc-provider's: client_secret_basic, ``invalid_client`` as 401.
"""

from __future__ import annotations

import base64
import json
import re
import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import parse_qs, unquote

import httpx
import respx

MANAGEMENT_API: Final = "https://default.logto.app/api"
M2M_ID: Final = "m2mprovisioner"
M2M_SECRET: Final = "m2m-secret-never-printed-7c1f"
USERNAME: Final = re.compile(r"^[A-Z_a-z]\w*$")  # @logto/core-kit usernameRegEx
Json = dict[str, Any]


def error(status: int, code: str, message: str) -> httpx.Response:
    return httpx.Response(status, json={"code": code, "message": message})


class Refused(Exception):
    """A handler's early answer (a guard or a lookup failed)."""

    def __init__(self, response: httpx.Response) -> None:
        super().__init__(response.status_code)
        self.response = response


def body_of(request: httpx.Request, required: dict[str, type], optional: dict[str, type]) -> Json:
    """The JSON body, refused (400 guard.invalid_input) unless it has exactly the ``required``
    keys, maybe some ``optional`` ones, each of the given type."""
    try:
        body = json.loads(request.content or b"null")
    except ValueError:
        raise Refused(error(400, "guard.invalid_input", "body is not JSON")) from None
    if not isinstance(body, dict):
        raise Refused(error(400, "guard.invalid_input", "body is not an object"))
    allowed = {**required, **optional}
    unknown = set(body) - set(allowed)
    missing = set(required) - set(body)
    wrong = [k for k, v in body.items() if k in allowed and not isinstance(v, allowed[k])]
    if unknown or missing or wrong:
        detail = f"unknown {sorted(unknown)} missing {sorted(missing)} wrong type {wrong}"
        raise Refused(error(400, "guard.invalid_input", detail))
    return body


def string_list(body: Json, key: str, *, nonempty: bool = False) -> list[str]:
    values = body[key]
    if not all(isinstance(v, str) and v for v in values) or (nonempty and not values):
        raise Refused(error(400, "guard.invalid_input", f"{key} must be non-empty strings"))
    return list(values)


@dataclass
class Call:
    """One request the fake received."""

    method: str
    path: str
    query: dict[str, str]
    body: Any

    def __str__(self) -> str:
        return f"{self.method} {self.path}"


@dataclass
class FakeLogto:
    """One Logto tenant: its objects, the M2M app's credentials, and every call received."""

    endpoint: str
    management_access: bool = True
    """Whether the M2M app holds the "Logto Management API access" role (else 403)."""
    resources: dict[str, Json] = field(default_factory=dict)
    scopes: dict[str, Json] = field(default_factory=dict)
    roles: dict[str, Json] = field(default_factory=dict)
    role_scopes: set[tuple[str, str]] = field(default_factory=set)
    users: dict[str, Json] = field(default_factory=dict)
    passwords: dict[str, str] = field(default_factory=dict)
    user_roles: set[tuple[str, str]] = field(default_factory=set)
    org_scopes: dict[str, Json] = field(default_factory=dict)
    org_roles: dict[str, Json] = field(default_factory=dict)
    org_role_scopes: set[tuple[str, str]] = field(default_factory=set)
    org_role_resource_scopes: set[tuple[str, str]] = field(default_factory=set)
    organizations: dict[str, Json] = field(default_factory=dict)
    members: set[tuple[str, str]] = field(default_factory=set)
    member_roles: set[tuple[str, str, str]] = field(default_factory=set)
    applications: dict[str, Json] = field(default_factory=dict)
    app_secrets: dict[str, list[Json]] = field(default_factory=dict)
    sign_in_exp: Json = field(default_factory=dict)
    calls: list[Call] = field(default_factory=list)
    token: str = field(default_factory=lambda: secrets.token_urlsafe(16))

    def __post_init__(self) -> None:
        # What a freshly seeded Logto OSS tenant holds (packages/schemas/src/seeds/): the
        # Management API resource with its "all" scope, the M2M role granting it, and the M2M
        # application created in the Console (the one click step).
        api = self.add_resource("Logto Management API", MANAGEMENT_API, ["all"])
        role = self.add_role("Logto Management API access", "MachineToMachine")
        self.role_scopes.add((role, self.scope_id(api, "all")))
        self.applications[M2M_ID] = {
            "id": M2M_ID,
            "name": "Provisioner",
            "type": "MachineToMachine",
            "description": None,
            "secret": "internal_x",
            "oidcClientMetadata": {"redirectUris": [], "postLogoutRedirectUris": []},
        }
        self.sign_in_exp = {
            "id": "default",
            "signInMode": "SignInAndRegister",
            "passwordPolicy": {
                "length": {"min": 8, "max": 256},
                "characterTypes": {"min": 1},
                "rejects": {
                    "pwned": True,
                    "repetitionAndSequence": True,
                    "userInfo": True,
                    "words": [],
                },
            },
        }

    # -- building state (tests set up "partial" tenants with these) -------------------------

    @staticmethod
    def new_id(length: int = 21) -> str:
        return secrets.token_hex(length)[:length]

    def add_resource(self, name: str, indicator: str, scope_names: Iterable[str] = ()) -> str:
        rid = self.new_id()
        self.resources[rid] = {
            "tenantId": "default",
            "id": rid,
            "name": name,
            "indicator": indicator,
            "isDefault": False,
            "accessTokenTtl": 3600,
        }
        for name_ in scope_names:
            self.add_scope(rid, name_)
        return rid

    def add_scope(self, resource_id: str, name: str, description: str | None = None) -> str:
        sid = self.new_id()
        self.scopes[sid] = {
            "tenantId": "default",
            "id": sid,
            "resourceId": resource_id,
            "name": name,
            "description": description,
            "createdAt": 0,
        }
        return sid

    def scope_id(self, resource_id: str, name: str) -> str:
        return str(
            next(
                s["id"]
                for s in self.scopes.values()
                if s["resourceId"] == resource_id and s["name"] == name
            )
        )

    def resource_by_indicator(self, indicator: str) -> Json:
        return next(r for r in self.resources.values() if r["indicator"] == indicator)

    def add_role(self, name: str, type_: str = "User") -> str:
        rid = self.new_id()
        self.roles[rid] = {
            "tenantId": "default",
            "id": rid,
            "name": name,
            "description": name,
            "type": type_,
            "isDefault": False,
        }
        return rid

    def add_user(self, username: str, password: str | None = None, email: str | None = None) -> str:
        uid = self.new_id(12)
        self.users[uid] = {
            "id": uid,
            "username": username,
            "primaryEmail": email,
            "primaryPhone": None,
            "name": None,
            "avatar": None,
            "customData": {},
            "identities": {},
            "lastSignInAt": None,
            "createdAt": 0,
            "updatedAt": 0,
            "profile": {},
            "applicationId": None,
            "isSuspended": False,
            "hasPassword": password is not None,
        }
        if password is not None:
            self.passwords[uid] = password
        return uid

    def add_organization(self, name: str) -> str:
        oid = self.new_id(12)
        self.organizations[oid] = {
            "tenantId": "default",
            "id": oid,
            "name": name,
            "description": None,
            "customData": {},
            "isMfaRequired": False,
            "branding": {},
            "createdAt": 0,
        }
        return oid

    def add_application(self, name: str, type_: str, redirect_uris: list[str]) -> str:
        aid = self.new_id()
        self.applications[aid] = {
            "tenantId": "default",
            "id": aid,
            "name": name,
            "type": type_,
            "description": None,
            "secret": f"internal_{secrets.token_hex(8)}",
            "oidcClientMetadata": {"redirectUris": redirect_uris, "postLogoutRedirectUris": []},
        }
        self.app_secrets[aid] = [self._secret(aid, "Default secret")]
        return aid

    def _secret(self, app_id: str, name: str) -> Json:
        return {
            "tenantId": "default",
            "applicationId": app_id,
            "name": name,
            "value": secrets.token_urlsafe(24),
            "createdAt": 0,
            "expiresAt": None,
        }

    # -- reading state (assertions) ----------------------------------------------------------

    def user_id(self, username: str) -> str:
        return str(next(u["id"] for u in self.users.values() if u["username"] == username))

    def role_names_of(self, username: str) -> set[str]:
        uid = self.user_id(username)
        return {self.roles[r]["name"] for u, r in self.user_roles if u == uid}

    def role_permissions(self, role_name: str) -> dict[str, set[str]]:
        """``indicator -> scope names`` a global role grants."""
        rid = next(r["id"] for r in self.roles.values() if r["name"] == role_name)
        return self._by_indicator(s for r, s in self.role_scopes if r == rid)

    def _by_indicator(self, scope_ids: Iterable[str]) -> dict[str, set[str]]:
        granted: dict[str, set[str]] = {}
        for sid in scope_ids:
            scope = self.scopes[sid]
            indicator = self.resources[scope["resourceId"]]["indicator"]
            granted.setdefault(indicator, set()).add(scope["name"])
        return granted

    def org_role(self, name: str) -> Json:
        return next(r for r in self.org_roles.values() if r["name"] == name)

    def org_role_scope_names(self, name: str) -> set[str]:
        rid = self.org_role(name)["id"]
        return {self.org_scopes[s]["name"] for r, s in self.org_role_scopes if r == rid}

    def org_role_permissions(self, name: str) -> dict[str, set[str]]:
        rid = self.org_role(name)["id"]
        return self._by_indicator(s for r, s in self.org_role_resource_scopes if r == rid)

    def organization_members(self, name: str) -> dict[str, set[str]]:
        """``username -> organization role names`` in the organization called ``name``."""
        (oid,) = [o["id"] for o in self.organizations.values() if o["name"] == name]
        return {
            self.users[u]["username"]: {
                self.org_roles[r]["name"] for o2, u2, r in self.member_roles if (o2, u2) == (o, u)
            }
            for o, u in self.members
            if o == oid
        }

    def writes(self) -> list[Call]:
        """Calls that change something: not GET, not the token, not a password check."""
        return [
            c
            for c in self.calls
            if c.method != "GET"
            and c.path != "/oidc/token"
            and not c.path.endswith("/password/verify")
        ]

    # -- serving ----------------------------------------------------------------------------

    def install(self, router: respx.MockRouter) -> FakeLogto:
        router.route(url__startswith=f"{self.endpoint}/").mock(side_effect=self._serve)
        return self

    def _serve(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        query = {k: v[-1] for k, v in parse_qs(request.url.query.decode()).items()}
        body: Any = None
        if request.content and request.headers.get("content-type", "").startswith(
            "application/json"
        ):
            body = json.loads(request.content)
        self.calls.append(Call(request.method, path, query, body))
        if path == "/oidc/token" and request.method == "POST":
            return self._token(request)
        if request.headers.get("authorization") != f"Bearer {self.token}":
            return error(401, "auth.unauthorized", "Unauthorized")
        if not self.management_access:
            return error(403, "auth.forbidden", "Forbidden")
        for method, pattern, handler in self._routes():
            match = re.fullmatch(pattern, path)
            if match and method == request.method:
                try:
                    return handler(request, *match.groups())
                except Refused as refused:
                    return refused.response
        return error(404, "guard.not_found", f"no route {request.method} {path}")

    def _token(self, request: httpx.Request) -> httpx.Response:
        # oidc-provider: client_secret_basic, the id and secret form-urlencoded then base64.
        scheme, _, encoded = request.headers.get("authorization", "").partition(" ")
        client_id, _, secret = base64.b64decode(encoded or "").decode().partition(":")
        form = {k: v[-1] for k, v in parse_qs(request.content.decode()).items()}
        if scheme != "Basic" or (unquote(client_id), unquote(secret)) != (M2M_ID, M2M_SECRET):
            return httpx.Response(
                401,
                json={
                    "error": "invalid_client",
                    "error_description": "client authentication failed",
                },
            )
        expected = {"grant_type": "client_credentials", "resource": MANAGEMENT_API, "scope": "all"}
        if form != expected:
            return httpx.Response(
                400, json={"error": "invalid_request", "error_description": f"got {form}"}
            )
        return httpx.Response(
            200,
            json={
                "access_token": self.token,
                "expires_in": 3600,
                "token_type": "Bearer",
                "scope": "all" if self.management_access else "",
            },
        )

    def _routes(self) -> list[tuple[str, str, Callable[..., httpx.Response]]]:
        i = "([^/]+)"
        return [
            ("GET", "/api/resources", self._list(self.resources.values, optional=True)),
            ("POST", "/api/resources", self._create_resource),
            ("PATCH", f"/api/resources/{i}", self._patch_resource),
            ("GET", f"/api/resources/{i}/scopes", self._resource_scopes),
            ("POST", f"/api/resources/{i}/scopes", self._create_scope),
            ("GET", "/api/roles", self._list(self.roles.values)),
            ("POST", "/api/roles", self._create_role),
            ("GET", f"/api/roles/{i}/scopes", self._role_scopes),
            ("POST", f"/api/roles/{i}/scopes", self._add_role_scopes),
            ("DELETE", f"/api/roles/{i}/scopes/{i}", self._delete_role_scope),
            ("GET", "/api/users", self._list(self.users.values)),
            ("POST", "/api/users", self._create_user),
            ("POST", f"/api/users/{i}/password/verify", self._verify_password),
            ("PATCH", f"/api/users/{i}/password", self._set_password),
            ("GET", f"/api/users/{i}/roles", self._user_roles),
            ("PUT", f"/api/users/{i}/roles", self._put_user_roles),
            ("GET", "/api/organization-scopes", self._list(self.org_scopes.values)),
            ("POST", "/api/organization-scopes", self._create_org_scope),
            ("GET", "/api/organization-roles", self._list(self._org_roles_with_scopes)),
            ("POST", "/api/organization-roles", self._create_org_role),
            ("PUT", f"/api/organization-roles/{i}/scopes", self._put_org_role_scopes),
            (
                "PUT",
                f"/api/organization-roles/{i}/resource-scopes",
                self._put_org_role_resource_scopes,
            ),
            ("GET", "/api/organizations", self._list(self.organizations.values)),
            ("POST", "/api/organizations", self._create_organization),
            ("GET", f"/api/organizations/{i}/users", self._organization_users),
            ("PUT", f"/api/organizations/{i}/users", self._put_organization_users),
            ("PUT", f"/api/organizations/{i}/users/{i}/roles", self._put_member_roles),
            (
                "GET",
                "/api/applications",
                self._list(self.applications.values, optional=True),
            ),
            ("POST", "/api/applications", self._create_application),
            ("PATCH", f"/api/applications/{i}", self._patch_application),
            ("GET", f"/api/applications/{i}/secrets", self._secrets),
            ("POST", f"/api/applications/{i}/secrets", self._create_secret),
            ("GET", "/api/sign-in-exp", lambda _r: httpx.Response(200, json=self.sign_in_exp)),
            ("PATCH", "/api/sign-in-exp", self._patch_sign_in_exp),
        ]

    # -- pagination (middleware/koa-pagination.ts) -------------------------------------------

    @staticmethod
    def paginate(
        request: httpx.Request, items: Iterable[Json], *, optional: bool = False
    ) -> httpx.Response:
        every = list(items)
        page_text = request.url.params.get("page")
        size_text = request.url.params.get("page_size")
        if optional and page_text is None and size_text is None:
            return httpx.Response(200, json=every)
        try:
            page = int(page_text) if page_text else 1
            size = int(size_text) if size_text else 20
        except ValueError:
            page = size = 0
        if page < 1 or not 1 <= size <= 100:
            return error(400, "guard.invalid_pagination", "invalid pagination")
        chunk = every[(page - 1) * size : page * size]
        return httpx.Response(200, json=chunk, headers={"Total-Number": str(len(every))})

    def _list(
        self, items: Callable[[], Iterable[Json]], *, optional: bool = False
    ) -> Callable[[httpx.Request], httpx.Response]:
        return lambda request: self.paginate(request, items(), optional=optional)

    def _found(self, table: dict[str, Json], key: str) -> Json:
        if key not in table:
            raise Refused(error(404, "entity.not_exists_with_id", f"{key} does not exist"))
        return table[key]

    # -- resources and scopes ---------------------------------------------------------------

    def _create_resource(self, request: httpx.Request) -> httpx.Response:
        body = body_of(request, {"name": str, "indicator": str}, {"accessTokenTtl": int})
        if any(r["indicator"] == body["indicator"] for r in self.resources.values()):
            return error(422, "resource.resource_identifier_in_use", "identifier in use")
        rid = self.add_resource(body["name"], body["indicator"])
        self.resources[rid]["accessTokenTtl"] = body.get("accessTokenTtl", 3600)
        return httpx.Response(200, json={**self.resources[rid], "scopes": []})

    def _patch_resource(self, request: httpx.Request, rid: str) -> httpx.Response:
        body = body_of(request, {}, {"name": str, "accessTokenTtl": int})
        self._found(self.resources, rid).update(body)
        return httpx.Response(200, json=self.resources[rid])

    def _resource_scopes(self, request: httpx.Request, rid: str) -> httpx.Response:
        found = [s for s in self.scopes.values() if s["resourceId"] == rid]
        return self.paginate(request, found, optional=True)

    def _create_scope(self, request: httpx.Request, rid: str) -> httpx.Response:
        self._found(self.resources, rid)
        body = body_of(request, {"name": str}, {"description": str})
        if any(s["resourceId"] == rid and s["name"] == body["name"] for s in self.scopes.values()):
            return error(422, "scope.name_exists", "name exists")
        sid = self.add_scope(rid, body["name"], body.get("description"))
        return httpx.Response(200, json=self.scopes[sid])

    # -- global roles -----------------------------------------------------------------------

    def _create_role(self, request: httpx.Request) -> httpx.Response:
        body = body_of(
            request,
            {"name": str, "description": str},
            {"type": str, "scopeIds": list, "isDefault": bool},
        )
        if any(r["name"] == body["name"] for r in self.roles.values()):
            return error(422, "role.name_in_use", f"The role name {body['name']} is already in use")
        scope_ids = string_list(body, "scopeIds") if "scopeIds" in body else []
        for sid in scope_ids:
            self._found(self.scopes, sid)
        rid = self.add_role(body["name"], body.get("type", "User"))
        self.roles[rid]["description"] = body["description"]
        self.role_scopes |= {(rid, sid) for sid in scope_ids}
        return httpx.Response(200, json=self.roles[rid])

    def _role_scopes(self, request: httpx.Request, rid: str) -> httpx.Response:
        self._found(self.roles, rid)
        found = [
            {**self.scopes[s], "resource": self.resources[self.scopes[s]["resourceId"]]}
            for r, s in self.role_scopes
            if r == rid
        ]
        return self.paginate(request, found, optional=True)

    def _add_role_scopes(self, request: httpx.Request, rid: str) -> httpx.Response:
        self._found(self.roles, rid)
        scope_ids = string_list(body_of(request, {"scopeIds": list}, {}), "scopeIds", nonempty=True)
        for sid in scope_ids:
            if (rid, sid) in self.role_scopes:
                return error(422, "role.scope_exists", f"scope {sid} already assigned")
            self._found(self.scopes, sid)
        self.role_scopes |= {(rid, sid) for sid in scope_ids}
        return httpx.Response(200, json=[self.scopes[s] for r, s in self.role_scopes if r == rid])

    def _delete_role_scope(self, _request: httpx.Request, rid: str, sid: str) -> httpx.Response:
        self.role_scopes.discard((rid, sid))
        return httpx.Response(204)

    # -- users ------------------------------------------------------------------------------

    def _create_user(self, request: httpx.Request) -> httpx.Response:
        body = body_of(
            request, {}, {"username": str, "password": str, "name": str, "primaryEmail": str}
        )
        username = body.get("username")
        if username is not None and not USERNAME.fullmatch(username):
            return error(400, "guard.invalid_input", "invalid username")
        if any(u["username"] == username for u in self.users.values()):
            return error(422, "user.username_already_in_use", "This username is already in use.")
        email = body.get("primaryEmail")
        if email and any(u["primaryEmail"] == email for u in self.users.values()):
            return error(
                422,
                "user.email_already_in_use",
                "This email is associated with an existing account.",
            )
        uid = self.add_user(username or "", body.get("password"), email)
        self.users[uid]["name"] = body.get("name")
        return httpx.Response(200, json=self.users[uid])

    def _verify_password(self, request: httpx.Request, uid: str) -> httpx.Response:
        self._found(self.users, uid)
        body = body_of(request, {"password": str}, {})
        if self.passwords.get(uid) != body["password"]:
            return error(422, "session.invalid_credentials", "Wrong account or password.")
        return httpx.Response(204)

    def _set_password(self, request: httpx.Request, uid: str) -> httpx.Response:
        self._found(self.users, uid)
        self.passwords[uid] = body_of(request, {"password": str}, {})["password"]
        self.users[uid]["hasPassword"] = True
        return httpx.Response(200, json=self.users[uid])

    def _user_roles(self, request: httpx.Request, uid: str) -> httpx.Response:
        self._found(self.users, uid)
        found = [
            self.roles[r]
            for u, r in sorted(self.user_roles)
            if u == uid and self.roles[r]["type"] == "User"
        ]
        return self.paginate(request, found)

    def _put_user_roles(self, request: httpx.Request, uid: str) -> httpx.Response:
        self._found(self.users, uid)
        role_ids = string_list(body_of(request, {"roleIds": list}, {}), "roleIds")
        for rid in role_ids:
            self._found(self.roles, rid)
        self.user_roles = {(u, r) for u, r in self.user_roles if u != uid}
        self.user_roles |= {(uid, rid) for rid in role_ids}
        return httpx.Response(200)

    # -- organization template ----------------------------------------------------------------

    def _create_org_scope(self, request: httpx.Request) -> httpx.Response:
        body = body_of(request, {"name": str}, {"description": str})
        if any(s["name"] == body["name"] for s in self.org_scopes.values()):
            return error(422, "entity.unique_integrity_violation", "name in use")
        sid = self.new_id()
        self.org_scopes[sid] = {
            "tenantId": "default",
            "id": sid,
            "name": body["name"],
            "description": body.get("description"),
        }
        return httpx.Response(201, json=self.org_scopes[sid])

    def _org_roles_with_scopes(self) -> list[Json]:
        return [
            {
                **role,
                "scopes": [
                    {"id": s, "name": self.org_scopes[s]["name"]}
                    for r, s in self.org_role_scopes
                    if r == role["id"]
                ],
                "resourceScopes": [
                    {
                        "id": s,
                        "name": self.scopes[s]["name"],
                        "resource": {
                            "id": self.scopes[s]["resourceId"],
                            "name": self.resources[self.scopes[s]["resourceId"]]["name"],
                        },
                    }
                    for r, s in self.org_role_resource_scopes
                    if r == role["id"]
                ],
            }
            for role in self.org_roles.values()
        ]

    def add_org_role(self, name: str, type_: str = "User") -> str:
        rid = self.new_id()
        self.org_roles[rid] = {
            "tenantId": "default",
            "id": rid,
            "name": name,
            "description": None,
            "type": type_,
        }
        return rid

    def _create_org_role(self, request: httpx.Request) -> httpx.Response:
        body = body_of(
            request,
            {"name": str},
            {
                "description": str,
                "type": str,
                "organizationScopeIds": list,
                "resourceScopeIds": list,
            },
        )
        if any(r["name"] == body["name"] for r in self.org_roles.values()):
            return error(422, "entity.unique_integrity_violation", "name in use")
        rid = self.add_org_role(body["name"], body.get("type", "User"))
        self.org_roles[rid]["description"] = body.get("description")
        return httpx.Response(201, json=self.org_roles[rid])

    def _put_org_role_scopes(self, request: httpx.Request, rid: str) -> httpx.Response:
        self._found(self.org_roles, rid)
        ids = string_list(
            body_of(request, {"organizationScopeIds": list}, {}), "organizationScopeIds"
        )
        if any(i not in self.org_scopes for i in ids):
            return error(422, "entity.relation_foreign_key_not_found", "unknown scope")
        self.org_role_scopes = {(r, s) for r, s in self.org_role_scopes if r != rid}
        self.org_role_scopes |= {(rid, s) for s in ids}
        return httpx.Response(204)

    def _put_org_role_resource_scopes(self, request: httpx.Request, rid: str) -> httpx.Response:
        self._found(self.org_roles, rid)
        ids = string_list(body_of(request, {"scopeIds": list}, {}), "scopeIds")
        if any(i not in self.scopes for i in ids):
            return error(422, "entity.relation_foreign_key_not_found", "unknown scope")
        self.org_role_resource_scopes = {
            (r, s) for r, s in self.org_role_resource_scopes if r != rid
        }
        self.org_role_resource_scopes |= {(rid, s) for s in ids}
        return httpx.Response(204)

    # -- organizations ----------------------------------------------------------------------

    def _create_organization(self, request: httpx.Request) -> httpx.Response:
        body = body_of(request, {"name": str}, {"description": str})
        oid = self.add_organization(body["name"])
        self.organizations[oid]["description"] = body.get("description")
        return httpx.Response(201, json=self.organizations[oid])

    def _organization_users(self, request: httpx.Request, oid: str) -> httpx.Response:
        self._found(self.organizations, oid)
        found = [
            {
                **self.users[u],
                "organizationRoles": [
                    {"id": r, "name": self.org_roles[r]["name"]}
                    for o2, u2, r in self.member_roles
                    if (o2, u2) == (o, u)
                ],
            }
            for o, u in sorted(self.members)
            if o == oid
        ]
        return self.paginate(request, found)

    def _put_organization_users(self, request: httpx.Request, oid: str) -> httpx.Response:
        self._found(self.organizations, oid)
        user_ids = string_list(body_of(request, {"userIds": list}, {}), "userIds")
        if any(u not in self.users for u in user_ids):
            return error(422, "entity.relation_foreign_key_not_found", "unknown user")
        self.members = {(o, u) for o, u in self.members if o != oid} | {(oid, u) for u in user_ids}
        self.member_roles = {(o, u, r) for o, u, r in self.member_roles if (o, u) in self.members}
        return httpx.Response(204)

    def _put_member_roles(self, request: httpx.Request, oid: str, uid: str) -> httpx.Response:
        if (oid, uid) not in self.members:
            return error(422, "organization.require_membership", "not a member")
        ids = string_list(
            body_of(request, {}, {"organizationRoleIds": list}), "organizationRoleIds"
        )
        if any(r not in self.org_roles for r in ids):
            return error(422, "entity.relation_foreign_key_not_found", "unknown role")
        self.member_roles = {m for m in self.member_roles if m[:2] != (oid, uid)}
        self.member_roles |= {(oid, uid, r) for r in ids}
        return httpx.Response(204)

    # -- applications -------------------------------------------------------------------------

    def _create_application(self, request: httpx.Request) -> httpx.Response:
        body = body_of(
            request,
            {"name": str, "type": str},
            {"description": str, "oidcClientMetadata": dict},
        )
        metadata = body.get("oidcClientMetadata", {})
        if set(metadata) - {"redirectUris", "postLogoutRedirectUris"}:
            return error(400, "guard.invalid_input", "unknown oidcClientMetadata key")
        aid = self.add_application(body["name"], body["type"], [])
        self.applications[aid]["oidcClientMetadata"] = {
            "redirectUris": [],
            "postLogoutRedirectUris": [],
            **metadata,
        }
        return httpx.Response(200, json=self.applications[aid])

    def _patch_application(self, request: httpx.Request, aid: str) -> httpx.Response:
        app = self._found(self.applications, aid)
        body = body_of(request, {}, {"oidcClientMetadata": dict})
        app["oidcClientMetadata"].update(body.get("oidcClientMetadata", {}))
        return httpx.Response(200, json=app)

    def _secrets(self, _request: httpx.Request, aid: str) -> httpx.Response:
        self._found(self.applications, aid)
        return httpx.Response(200, json=self.app_secrets.get(aid, []))

    def _create_secret(self, request: httpx.Request, aid: str) -> httpx.Response:
        self._found(self.applications, aid)
        body = body_of(request, {"name": str}, {"expiresAt": int})
        secret = self._secret(aid, body["name"])
        self.app_secrets.setdefault(aid, []).append(secret)
        return httpx.Response(201, json=secret)

    # -- sign-in experience ---------------------------------------------------------------------

    def _patch_sign_in_exp(self, request: httpx.Request) -> httpx.Response:
        body = body_of(request, {"passwordPolicy": dict}, {})
        policy = body["passwordPolicy"]
        if set(policy) != set(self.sign_in_exp["passwordPolicy"]):
            return error(400, "guard.invalid_input", "partial passwordPolicy")
        self.sign_in_exp["passwordPolicy"] = policy
        return httpx.Response(200, json=self.sign_in_exp)
