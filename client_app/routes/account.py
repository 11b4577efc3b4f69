"""The home page, the user's claims and userinfo (Logto guide: ``isAuthenticated``,
``getIdTokenClaims``, ``fetchUserInfo`` and the ``@authenticated`` decorator), and health."""

from __future__ import annotations

from typing import Any

from litestar import MediaType, Response, get
from litestar.di import NamedDependency
from litestar.response import Template

from client_app.context import (
    AnyRequest,
    SignedInUser,
    app_context,
    authenticated,
    page,
    session_id_of,
)
from client_app.display import claim_rows
from client_app.errors import IssuerProblem, IssuerUnavailable, SessionsUnavailable


@get("/", name="home")
async def home(request: AnyRequest) -> Template:
    """Signed out: sign in or create an account. Signed in: who, and where to go."""
    context = app_context(request)
    session_id = session_id_of(request)
    notice = None
    try:
        claims = await context.gateway.current_user(session_id)
    except (IssuerUnavailable, IssuerProblem) as exc:  # home must render without Logto
        claims, notice = None, exc.message
    user = SignedInUser(session_id, claims) if session_id and claims else None
    return page(request, "home.html", user=user, title="Home", notice=notice)


@get("/claims", name="claims", dependencies={"user": authenticated()})
async def id_token_claims(request: AnyRequest, user: NamedDependency[SignedInUser]) -> Template:
    """Every claim of the ID token (``getIdTokenClaims``)."""
    claims = user.claims.model_dump(exclude_none=True)
    rows = claim_rows(claims, now=app_context(request).clock())
    return page(request, "claims.html", user=user, title="ID token claims", rows=rows)


@get(
    "/protected/userinfo",
    name="userinfo",
    dependencies={"user": authenticated(should_redirect=True, fetch_user_info=True)},
)
async def protected_userinfo(request: AnyRequest, user: NamedDependency[SignedInUser]) -> Template:
    """The userinfo endpoint's answer (``fetchUserInfo``), unset fields left out: a field
    shown empty was requested but has no value; one absent was not requested."""
    info = user.profile
    rows = claim_rows(
        info.model_dump(exclude_unset=True), now=app_context(request).clock(), keep_empty=True
    )
    return page(
        request,
        "userinfo.html",
        user=user,
        title="User info",
        rows=rows,
        as_json=info.model_dump_json(indent=2, exclude_unset=True),
    )


@get(
    "/protected/me.json",
    name="me_json",
    opt={"json_errors": True},
    dependencies={"user": authenticated(should_redirect=False)},
)
async def me_json(user: NamedDependency[SignedInUser]) -> dict[str, Any]:
    """The ID-token claims as JSON; a JSON 401 when nobody is signed in."""
    claims: dict[str, Any] = user.claims.model_dump(exclude_none=True)
    return claims


@get("/health", name="health", opt={"json_errors": True})
async def health(request: AnyRequest) -> Response[dict[str, str]]:
    """Readiness (for process managers, load balancers and the end-to-end tests): 200 while
    the session store answers; 503 while a shared one (Redis) cannot be reached, so that a
    load balancer sends the browsers to a replica that can serve them. A hung Redis is
    unavailable too: the check is bounded (``redis_sessions.HEALTH_TIMEOUT_SECONDS``)."""
    if await app_context(request).sessions_healthy():
        return Response({"status": "ok"}, media_type=MediaType.JSON)
    return Response(
        {"status": "unavailable", "sessions": "unavailable"},
        status_code=503,
        headers={"Retry-After": str(SessionsUnavailable.retry_after_seconds)},
        media_type=MediaType.JSON,
    )
