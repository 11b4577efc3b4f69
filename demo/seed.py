"""What the dev issuer's seed says: the API indicators to configure, and what each user may do.

The demo prints the users from the issuer's ready line (username, password) and their rights
from the seed file the issuer was started with (roles, organizations), so the text cannot drift
from what the issuer really grants.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

Seed = Mapping[str, Any]


class SeedError(ValueError):
    """The seed file cannot be read or lacks what the demo needs."""


def load_seed(path: Path) -> Seed:
    """The seed as a JSON object."""
    try:
        seed = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise SeedError(f"cannot read the issuer's seed {path}: {exc}") from exc
    if not isinstance(seed, dict):
        raise SeedError(f"the issuer's seed {path} is not a JSON object")
    return seed


@dataclass(frozen=True, slots=True)
class ApiIndicators:
    """The API resource indicators (token ``aud``) the resource API and client app use."""

    shopping: str
    store: str


def api_indicators(seed: Seed) -> ApiIndicators:
    """The indicators of the seed's APIs whose permissions are named ``shopping:…`` and
    ``store:…``."""
    by_prefix: dict[str, str] = {}
    for resource in seed.get("resources", []):
        for scope in resource.get("scopes", []):
            by_prefix.setdefault(str(scope["name"]).split(":", 1)[0], str(resource["indicator"]))
    missing = [name for name in ("shopping", "store") if name not in by_prefix]
    if missing:
        raise SeedError(f"the issuer's seed has no API with {' or '.join(missing)}:… permissions")
    return ApiIndicators(shopping=by_prefix["shopping"], store=by_prefix["store"])


@dataclass(frozen=True, slots=True)
class Membership:
    """A user's roles in one organization and what they grant there."""

    organization: str
    roles: tuple[str, ...]
    scopes: tuple[str, ...]
    """Organization permissions (in organization tokens)."""
    api_scopes: tuple[str, ...]
    """API permissions granted only in this organization (organization-level API tokens)."""


@dataclass(frozen=True, slots=True)
class DemoUser:
    """A seeded user, their password, and what they may do."""

    username: str
    password: str
    api_scopes: tuple[str, ...]
    memberships: tuple[Membership, ...]

    def rights(self) -> list[str]:
        """One line per kind of right, in words."""
        lines = [f"roles: {' '.join(self.api_scopes)}" if self.api_scopes else "no role"]
        for member in self.memberships:
            line = f"organization {member.organization} ({', '.join(member.roles)}): "
            line += " ".join(member.scopes) or "no organization permission"
            if member.api_scopes:
                line += f"; {' '.join(member.api_scopes)} through the organization"
            lines.append(line)
        if not self.memberships:
            lines.append("no organization")
        return lines


def demo_users(seed: Seed, ready_users: Iterable[Mapping[str, Any]]) -> list[DemoUser]:
    """The users of the issuer's ready line, with their rights from ``seed``."""
    roles = {str(role["name"]): role for role in seed.get("roles", [])}
    template = {
        str(role["name"]): role for role in seed.get("organizationTemplate", {}).get("roles", [])
    }
    seeded = {str(user["id"]): user for user in seed.get("users", [])}
    users = []
    for ready in ready_users:
        user_id = str(ready["id"])
        role_names = seeded.get(user_id, {}).get("roles", [])
        users.append(
            DemoUser(
                username=str(ready["username"]),
                password=str(ready["password"]),
                api_scopes=_permissions(roles[name] for name in role_names if name in roles),
                memberships=tuple(_memberships(seed, user_id, template)),
            )
        )
    return users


def _memberships(
    seed: Seed, user_id: str, template: Mapping[str, Mapping[str, Any]]
) -> Iterable[Membership]:
    for organization in seed.get("organizations", []):
        for member in organization.get("members", []):
            if member.get("userId") != user_id:
                continue
            names = tuple(str(name) for name in member.get("roles", []))
            granted = [template[name] for name in names if name in template]
            yield Membership(
                organization=str(organization.get("id")),
                roles=names,
                scopes=_unique(scope for role in granted for scope in role.get("scopes", [])),
                api_scopes=_permissions(granted),
            )


def _permissions(roles: Iterable[Mapping[str, Any]]) -> tuple[str, ...]:
    return _unique(
        scope
        for role in roles
        for scopes in role.get("permissions", {}).values()
        for scope in _strings(scopes)
    )


def _strings(values: Sequence[object]) -> list[str]:
    return [str(value) for value in values]


def _unique(values: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(values))
