"""What every handler shares: the app's collaborators, the session id, the signed-in user,
the ``authenticated`` dependency (Logto's ``@authenticated`` decorator) and page rendering."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from litestar import Request
from litestar.di import Provide
from litestar.response import Template
from logto import IdTokenClaims, UserInfoResponse

from .api_client import ResourceApiClient
from .display import picture_url
from .errors import NotSignedIn
from .gateway import LogtoGateway
from .security import csrf_token, safe_return_path
from .sessions import session_id_from_cookies
from .settings import Settings

AnyRequest = Request[Any, Any, Any]


async def always_healthy() -> bool:
    """The embedded store is a directory of this machine: nothing to reach."""
    return True


@dataclass(frozen=True, slots=True)
class AppContext:
    """The collaborators ``create_app`` wired, kept in ``app.state.context``."""

    settings: Settings
    gateway: LogtoGateway
    api: ResourceApiClient
    clock: Callable[[], float] = field(default=time.time)
    sessions_healthy: Callable[[], Awaitable[bool]] = field(default=always_healthy)
    """Whether the session store can be reached now (``/health``)."""


def app_context(request: AnyRequest) -> AppContext:
    """The app's :class:`AppContext`."""
    context: AppContext = request.app.state.context
    return context


def session_id_of(request: AnyRequest) -> str | None:
    """The session id of the browser's cookie, if well-formed."""
    return session_id_from_cookies(request.cookies, app_context(request).settings)


@dataclass(frozen=True, slots=True)
class SignedInUser:
    """The signed-in user of a request: ID-token claims, and userinfo when it was fetched."""

    session_id: str
    claims: IdTokenClaims
    user_info: UserInfoResponse | None = None

    @property
    def profile(self) -> IdTokenClaims | UserInfoResponse:
        """What Logto's guide puts in ``g.user``: userinfo if fetched, else the ID token's."""
        return self.user_info if self.user_info is not None else self.claims

    @property
    def display_name(self) -> str:
        """Name, else username, else email, else the user id."""
        claims = self.claims
        return str(claims.name or claims.username or claims.email or claims.sub)

    @property
    def picture(self) -> str | None:
        """The profile picture if it is an https URL."""
        return picture_url(self.claims.picture)


def return_path_of(request: AnyRequest) -> str:
    """This request's path and query, as a safe ``next`` value."""
    query = request.url.query
    return safe_return_path(request.url.path + (f"?{query}" if query else ""))


def authenticated(*, should_redirect: bool = True, fetch_user_info: bool = False) -> Provide:
    """The dependency behind Logto's ``@authenticated(shouldRedirect, fetchUserInfo)``.

    Not signed in: redirect to sign-in (and back afterwards), or a JSON 401. Signed in: the
    :class:`SignedInUser`, with the userinfo endpoint's answer if ``fetch_user_info``. An
    expired ID token is renewed with the refresh token first.
    """

    async def provide_user(request: AnyRequest) -> SignedInUser:
        context = app_context(request)
        session_id = session_id_of(request)
        claims = await context.gateway.current_user(session_id)
        if session_id is None or claims is None:
            raise NotSignedIn(should_redirect=should_redirect, return_to=return_path_of(request))
        info = await context.gateway.user_info(session_id) if fetch_user_info else None
        return SignedInUser(session_id, claims, info)

    return Provide(provide_user)


def page(
    request: AnyRequest,
    template: str,
    *,
    user: SignedInUser | None = None,
    status_code: int = 200,
    **context: object,
) -> Template:
    """Render ``template`` in the layout (navigation, the user, the sign-out form's token)."""
    app = app_context(request)
    session_id = user.session_id if user is not None else session_id_of(request)
    return Template(
        template_name=template,
        status_code=status_code,
        context={
            "user": user,
            "csrf_token": csrf_token(app.settings.session_secret, session_id)
            if session_id
            else None,
            "now": app.clock(),
            "path": request.url.path,
            "neutral_header": False,
            **context,
        },
    )
