"""Route declarations and the one check that enforces them: scopes, organization context."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from litestar_logto import PUBLIC, AccessToken, InsufficientScope, Requirement
from litestar_logto.requirements import (
    OPT_KEY,
    ORGANIZATIONS,
    authorize,
    public,
    requires,
    requires_organization,
)

from tests.support import NOW, SHOPPING, STORE

INDICATORS = {"shopping": SHOPPING, "store": STORE}


def _token(scopes: str = "", organization_id: str | None = None) -> AccessToken:
    return AccessToken(
        subject="user-alice",
        client_id="client-app",
        audiences=(STORE,),
        scopes=frozenset(scopes.split()),
        expires_at=NOW + 3600,
        issued_at=NOW,
        organization_id=organization_id,
    )


def _requirement(opt: dict[str, Any]) -> Requirement:
    requirement = opt[OPT_KEY]
    assert isinstance(requirement, Requirement)
    return requirement


@pytest.mark.parametrize(
    ("required", "held", "missing"),
    [
        pytest.param(("a",), "", ("a",), id="no-scopes-at-all"),
        pytest.param(("a", "b", "c"), "b", ("a", "c"), id="names-exactly-the-missing"),
        pytest.param(("c", "a"), "x y", ("c", "a"), id="declaration-order"),
        pytest.param(("store:write",), "store:read", ("store:write",), id="read-is-not-write"),
        pytest.param(("store:read",), "store:reader", ("store:read",), id="no-prefix-match"),
        pytest.param(("store:read",), "Store:Read", ("store:read",), id="case-sensitive"),
    ],
)
def test_missing_scopes_are_named(
    required: tuple[str, ...], held: str, missing: tuple[str, ...]
) -> None:
    """A 403 names exactly the scopes the token lacks, and only those, in the challenge."""
    requirement = _requirement(requires("store", *required))
    with pytest.raises(InsufficientScope) as caught:
        authorize(_token(held), requirement, None)
    assert (caught.value.reason, caught.value.missing_scopes) == ("missing_scope", missing)
    assert caught.value.www_authenticate().endswith(f'scope="{" ".join(missing)}"')


@pytest.mark.parametrize(
    ("required", "held"),
    [
        pytest.param(("a",), "a", id="exact"),
        pytest.param(("a", "b"), "b x a", id="superset"),
    ],
)
def test_held_scopes_pass(required: tuple[str, ...], held: str) -> None:
    """A token holding every declared scope is authorized."""
    authorize(_token(held), _requirement(requires("store", *required)), None)


@pytest.mark.parametrize(
    ("claim", "path", "reason"),
    [
        pytest.param(None, "org-1", "no_organization", id="global-token-on-org-route"),
        pytest.param("org-2", "org-1", "wrong_organization", id="other-organization"),
        pytest.param("ORG-1", "org-1", "wrong_organization", id="case-differs"),
        pytest.param("org-1 ", "org-1", "wrong_organization", id="trailing-space"),
        pytest.param("org-1", None, "wrong_organization", id="no-path-organization"),
    ],
)
def test_organization_level_token_must_match_the_path(
    claim: str | None, path: str | None, reason: str
) -> None:
    """An organization-level API route refuses a token without or for another organization."""
    requirement = _requirement(requires("store", "store:read", organization_param="org_id"))
    with pytest.raises(InsufficientScope) as caught:
        authorize(_token("store:read", organization_id=claim), requirement, path)
    assert (caught.value.reason, caught.value.status_code) == (reason, 403)


@pytest.mark.parametrize(
    "declare",
    [
        pytest.param(lambda: requires("store", "store:read"), id="api-resource-route"),
        pytest.param(lambda: requires("store", "store:read", "store:write"), id="two-scopes"),
    ],
)
def test_organization_bound_token_is_refused_on_a_route_without_organization(
    declare: Callable[[], dict[str, Any]],
) -> None:
    """Issue 9 #8: a token with ``organization_id`` is for that organization's resources; a
    route that declares no organization refuses it (403 insufficient_scope, the route's
    scopes: what a global token must grant), even when it holds every scope."""
    requirement = _requirement(declare())
    with pytest.raises(InsufficientScope) as caught:
        authorize(_token("store:read store:write", organization_id="org-1"), requirement, None)
    assert (
        caught.value.reason,
        caught.value.status_code,
        caught.value.missing_scopes,
        caught.value.description,
    ) == (
        "organization_token",
        403,
        requirement.scopes,
        (
            "This route takes a global token of this API; the access token is bound to an "
            "organization."
        ),
    )


def test_a_route_may_opt_in_to_organization_bound_tokens() -> None:
    """``requires(..., organization_tokens=True)``: global and organization-level tokens of the
    API (of any organization) pass, on their scopes."""
    requirement = _requirement(requires("store", "store:read", organization_tokens=True))
    authorize(_token("store:read", organization_id="org-1"), requirement, None)
    authorize(_token("store:read"), requirement, None)
    with pytest.raises(InsufficientScope) as caught:
        authorize(_token("store:write", organization_id="org-1"), requirement, None)
    assert (requirement.organization_tokens, caught.value.reason) == (True, "missing_scope")


def test_opting_in_on_an_organization_route_is_refused() -> None:
    """An organization route already takes (only) its organization's tokens: the flag would
    mean nothing there, so declaring it is a mistake caught at import time."""
    with pytest.raises(ValueError, match="organization_tokens"):
        requires("store", "store:read", organization_param="org_id", organization_tokens=True)


def test_organization_level_token_of_the_path_passes() -> None:
    """The same organization in token and path, with the scope, is authorized."""
    requirement = _requirement(requires("store", "store:read", organization_param="org_id"))
    authorize(_token("store:read", organization_id="org-1"), requirement, "org-1")


def test_organization_is_checked_before_scopes() -> None:
    """A token for another organization is refused as such even when it has the scope."""
    requirement = _requirement(requires("store", "store:read", organization_param="org_id"))
    with pytest.raises(InsufficientScope) as caught:
        authorize(_token("", organization_id="org-2"), requirement, "org-1")
    assert caught.value.reason == "wrong_organization"


def test_organization_token_route_relies_on_the_audience() -> None:
    """An organization token (no organization_id claim) passes the guard on its scopes."""
    requirement = _requirement(requires_organization("read:members"))
    authorize(_token("read:members"), requirement, "org-1")


def test_organization_token_audience_is_the_path_organization() -> None:
    """``requires_organization`` routes expect ``urn:logto:organization:<path org>``."""
    requirement = _requirement(requires_organization("read:members"))
    assert (
        requirement.audience(INDICATORS, "org-1"),
        requirement.organization_token,
        requirement.organization_param,
    ) == ("urn:logto:organization:org-1", True, "org_id")


def test_resource_audience_is_the_configured_indicator() -> None:
    """``requires("shopping", …)`` expects the shopping indicator, whatever the path."""
    requirement = _requirement(requires("shopping", "shopping:read"))
    assert requirement.audience(INDICATORS, "org-1") == SHOPPING


@pytest.mark.parametrize(
    "declare",
    [
        pytest.param(lambda: requires("shopping"), id="requires-no-scopes"),
        pytest.param(requires_organization, id="organization-no-scopes"),
        pytest.param(lambda: requires("shopping", ""), id="empty-scope"),
        pytest.param(lambda: requires("shopping", "a b"), id="scope-with-space"),
        pytest.param(lambda: requires("shopping", "a\tb"), id="scope-with-tab"),
        pytest.param(lambda: requires("shopping", 'a"b'), id="scope-with-quote"),
        pytest.param(lambda: requires("shopping", "a\\b"), id="scope-with-backslash"),
        pytest.param(lambda: requires("shopping", "a\x00"), id="scope-with-nul"),
        pytest.param(lambda: requires("shopping", "a\x7f"), id="scope-with-del"),
        pytest.param(lambda: requires("shopping", "lecture:\u00e9"), id="scope-non-ascii"),
        pytest.param(lambda: requires("shopping", "a", "b c"), id="second-scope-bad"),
        pytest.param(lambda: requires(ORGANIZATIONS, "read:members"), id="reserved-resource"),
    ],
)
def test_bad_declarations_raise_value_error(declare: Callable[[], object]) -> None:
    """A declaration that could never be satisfied or rendered fails at import time."""
    with pytest.raises(ValueError, match=r"scope|requires_organization"):
        declare()


def test_public_marks_the_route() -> None:
    """``public()`` puts the PUBLIC marker under the plugin's opt key."""
    assert public() == {OPT_KEY: PUBLIC}


def test_every_printable_scope_character_is_accepted() -> None:
    """Scope names may use any RFC 6749 scope-token character (``urn:…``, ``a/b``, ``!``)."""
    scopes = ("urn:logto:scope:organizations", "a/b", "!#$%&'()*+,-./:;<=>?@[]^_`{|}~")
    assert _requirement(requires("shopping", *scopes)).scopes == scopes
