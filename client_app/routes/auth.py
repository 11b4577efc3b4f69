"""Sign-in, the callback and sign-out: the routes of Logto's guide, on server-side sessions.

Each route that changes which session the browser holds sets (or drops) the cookie itself;
failures are raised as :mod:`client_app.errors` and rendered by the app's handlers as a page
with a way back, never a 500.
"""

from __future__ import annotations

from typing import Annotated

from litestar import get, post
from litestar.params import QueryParameter
from litestar.response import Redirect, Template

from client_app.context import AnyRequest, SignedInUser, app_context, page, session_id_of
from client_app.errors import SessionsUnavailable
from client_app.security import safe_return_path
from client_app.sessions import expired_session_cookie, session_cookie
from client_app.sign_in_attempts import (
    attempt_cookie,
    expired_attempt_cookie,
    sealed_attempt_from_cookies,
)


@get("/sign-in", name="sign_in")
async def sign_in(
    request: AnyRequest,
    first_screen: Annotated[str | None, QueryParameter(name="first_screen")] = None,
    interaction_mode: Annotated[str | None, QueryParameter(name="interaction_mode")] = None,
    next_path: Annotated[str | None, QueryParameter(name="next")] = None,
) -> Redirect:
    """Start a sign-in (``?first_screen=register`` or ``?interaction_mode=signUp``: the
    registration form first) and send the browser to Logto with the attempt in its own sealed
    cookie. The current session, if any, is left as it is (a GET any site can trigger)."""
    context = app_context(request)
    if not await context.sessions_healthy():  # the callback could not store the sign-in
        raise SessionsUnavailable
    start = await context.gateway.start_sign_in(
        sign_up=first_screen == "register" or interaction_mode == "signUp",
        return_to=safe_return_path(next_path),
    )
    return Redirect(
        start.url,
        status_code=303,
        cookies=[attempt_cookie(context.settings, start.sealed_attempt)],
    )


@get("/callback", name="callback")
async def callback(request: AnyRequest) -> Redirect:
    """Finish the sign-in: exchange the code, keep the tokens in a new session, end the
    previous one, drop the attempt cookie."""
    context = app_context(request)
    done = await context.gateway.finish_sign_in(
        session_id_of(request),
        sealed_attempt_from_cookies(request.cookies, context.settings),
        request.url.query,
    )
    return Redirect(
        done.return_to,
        status_code=303,
        cookies=[
            session_cookie(context.settings, done.session_id),
            expired_attempt_cookie(context.settings),
        ],
    )


@get("/sign-out", name="sign_out_confirm")
async def sign_out_confirm(request: AnyRequest) -> Template | Redirect:
    """A page with the sign-out button (signing out on a GET would let any site do it)."""
    context = app_context(request)
    session_id = session_id_of(request)
    claims = await context.gateway.current_user(session_id)
    if session_id is None or claims is None:
        return Redirect("/", status_code=303)
    return page(request, "sign_out.html", user=SignedInUser(session_id, claims), title="Sign out")


@post("/sign-out", name="sign_out", status_code=303)
async def sign_out(request: AnyRequest) -> Redirect:
    """Clear the session, revoke its refresh token, then end Logto's session and come home."""
    context = app_context(request)
    url = await context.gateway.sign_out(session_id_of(request))
    return Redirect(url, status_code=303, cookies=[expired_session_cookie(context.settings)])
