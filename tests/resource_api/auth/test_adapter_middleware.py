"""How the plugin enforces declarations: an ASGI middleware, not a Litestar guard (a guard
costs a ``copy`` of the route handler on every request, public routes included). Pinned here:
no guard anywhere, the same answers on public and protected routes, a form body read for the
token-in-body check still reaching the handler, and websocket and mounted ASGI routes
protected as the guard protected them."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Annotated, Any

import pytest
from litestar import Litestar, WebSocket, asgi, get, post, websocket
from litestar.enums import RequestEncodingType
from litestar.exceptions import WebSocketDisconnect
from litestar.handlers import BaseRouteHandler
from litestar.params import Body, Parameter
from litestar.testing import AsyncTestClient
from litestar.types import HTTPResponseBodyEvent, HTTPResponseStartEvent, Receive, Scope, Send
from litestar_logto import (
    AuthenticatedRequest,
    InsufficientScope,
    InvalidToken,
    KeysUnavailable,
    LogtoAuth,
    public,
    requires,
)

from tests.resource_api.auth.conftest import ROUTES
from tests.resource_api.conftest import Client
from tests.resource_api.helpers import SHOPPING_READ, challenge
from tests.support import FakeIssuer, SigningKey, make_token

_STRANGER = SigningKey.es384("stranger-1", index=7)  # a key the issuer never published

Auth = Callable[..., dict[str, str]]


async def test_routes_answer_as_before_without_any_guard(
    app: Litestar, client: Client, auth: Auth, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The service app has no guard on any layer, Litestar never runs ``authorize_connection``
    (the per-request handler copy), and /health and /shopping/orders answer as they did."""
    assert isinstance(app.state.auth, LogtoAuth)
    assert app.guards == []
    assert app.state.auth.middleware in app.middleware
    handlers = [handler for route in app.routes for handler in getattr(route, "route_handlers", [])]
    assert handlers
    assert all(handler.resolve_guards() == [] for handler in handlers)
    authorizations: list[BaseRouteHandler] = []
    original = BaseRouteHandler.authorize_connection

    async def counting(self: BaseRouteHandler, connection: Any) -> None:
        authorizations.append(self)
        await original(self, connection)

    monkeypatch.setattr(BaseRouteHandler, "authorize_connection", counting)

    health = await client.get("/health", headers={"Authorization": "Bearer garbage"})
    assert (health.status_code, health.json()["status"]) == (200, "ok")
    refused = await client.get("/shopping/orders")
    assert (refused.status_code, refused.json()["error"]) == (401, "unauthorized")
    assert challenge(refused.headers["WWW-Authenticate"])["resource_metadata"].endswith(
        "/.well-known/oauth-protected-resource/shopping"
    )
    forbidden = await client.get(
        "/shopping/orders", headers=auth(**{**SHOPPING_READ, "scope": "store:read"})
    )
    assert (forbidden.status_code, forbidden.json()["error"]) == (403, "insufficient_scope")
    allowed = await client.get("/shopping/orders", headers=auth(**SHOPPING_READ))
    assert allowed.status_code == 200
    assert authorizations == []


# -- a small app: a form-reading route, a websocket pair and a mounted ASGI app --------------


@post("/notes", opt=requires("shopping", "shopping:write"), sync_to_thread=False)
def create_note(
    request: AuthenticatedRequest,
    data: Annotated[dict[str, str], Body(media_type=RequestEncodingType.URL_ENCODED)],
) -> dict[str, Any]:
    """Reads the form the middleware already parsed to look for ``access_token``."""
    return {"sub": request.user, "form": data}


@websocket("/ws/protected", opt=requires("shopping", "shopping:read"))
async def protected_socket(socket: WebSocket[Any, Any, Any]) -> None:
    """A protected websocket: never accepted without a token."""
    await socket.accept()
    await socket.send_json({"sub": socket.scope.get("user")})
    await socket.close()


@websocket("/ws/public", opt=public())
async def public_socket(socket: WebSocket[Any, Any, Any]) -> None:
    """A public websocket."""
    await socket.accept()
    await socket.send_json({"status": "ok"})
    await socket.close()


@asgi("/mounted", opt=requires("shopping", "shopping:read"), copy_scope=True)
async def mounted(scope: Scope, receive: Receive, send: Send) -> None:
    """A mounted ASGI app behind a declaration."""
    del receive
    start: HTTPResponseStartEvent = {"type": "http.response.start", "status": 200, "headers": []}
    body: HTTPResponseBodyEvent = {
        "type": "http.response.body",
        "body": str(scope.get("user")).encode(),
        "more_body": False,
    }
    await send(start)
    await send(body)


@get("/self-refusing", opt=requires("shopping", "shopping:read"), sync_to_thread=False)
def self_refusing(
    refusal: Annotated[str | None, Parameter()] = None,
    retry_after: Annotated[int, Parameter()] = 0,
) -> None:
    """Raises, after authentication, the refusal the middleware gives another token: it
    reaches the app through Litestar's exception handling (``LogtoAuth.error_response``).
    Without ``refusal`` it answers 200: a request the middleware should have refused and let
    through would show."""
    if refusal is None:
        return
    if refusal == "forged":
        raise InvalidToken("The access token signature is invalid.", reason="bad_signature")
    if refusal == "scope":
        raise InsufficientScope(
            ["shopping:read"], "The access token lacks the permission this operation needs."
        )
    raise KeysUnavailable(
        "The access token is signed with a key the API cannot look up yet; try again shortly.",
        retry_after=retry_after,
        reason="unknown_kid_cooldown",
        outage=False,
    )


@pytest.fixture
async def small_api(issuer: FakeIssuer, logto_auth: LogtoAuth) -> AsyncIterator[Client]:
    """The adapter's test routes plus the routes above, started."""
    del issuer
    app = Litestar(
        route_handlers=[
            *ROUTES,
            create_note,
            protected_socket,
            public_socket,
            mounted,
            self_refusing,
        ],
        plugins=[logto_auth],
    )
    async with AsyncTestClient(app) as client:
        yield client


async def test_a_form_read_for_the_token_check_reaches_the_handler(
    small_api: Client, issuer: FakeIssuer
) -> None:
    """The middleware parses a form body to refuse ``access_token`` in it; the handler still
    receives that form (kept in the scope state, not a consumed stream)."""
    token = issuer.sign(scope="shopping:write")
    response = await small_api.post(
        "/notes", data={"note": "tea"}, headers={"Authorization": f"Bearer {token}"}
    )
    assert (response.status_code, response.json()) == (
        201,
        {"sub": "user-alice", "form": {"note": "tea"}},
    )
    in_body = await small_api.post(
        "/notes", data={"access_token": token}, headers={"Authorization": f"Bearer {token}"}
    )
    assert (in_body.status_code, in_body.json()["error"]) == (400, "invalid_request")


async def test_websocket_and_asgi_routes_are_protected_as_by_the_guard(
    small_api: Client, issuer: FakeIssuer
) -> None:
    """The guard ran for every kind of route; so does the middleware: a protected websocket
    is closed before it is accepted, a public one works, a mounted app gets 401 or its user."""
    with pytest.raises(WebSocketDisconnect):  # noqa: PT012 - refused while connecting
        socket = await small_api.websocket_connect("/ws/protected")
        with socket:
            socket.receive_json()
    with await small_api.websocket_connect("/ws/public") as socket:
        assert socket.receive_json() == {"status": "ok"}
    refused = await small_api.get("/mounted")
    assert (refused.status_code, refused.json()["error"]) == (401, "unauthorized")
    token = issuer.sign(scope="shopping:read")
    allowed = await small_api.get("/mounted", headers={"Authorization": f"Bearer {token}"})
    assert (allowed.status_code, allowed.text) == (200, "user-alice")


@pytest.mark.parametrize(
    ("refusal", "status", "error"),
    [
        ("forged", 401, "invalid_token"),
        ("scope", 403, "insufficient_scope"),
        ("kid", 503, "temporarily_unavailable"),
    ],
)
async def test_the_middleware_refuses_exactly_as_the_exception_handler_does(
    small_api: Client, issuer: FakeIssuer, refusal: str, status: int, error: str
) -> None:
    """The middleware answers its refusals itself, without Litestar's exception handling (a
    replayed forgery costs about half); the answer is the one ``error_response`` renders for
    the same refusal raised inside a route: status, every header, body. For a forged token,
    a token without the route's scope, and an unknown kid within the refetch cooldown."""
    valid = issuer.sign(scope="shopping:read")
    if refusal == "forged":
        token = valid.rpartition(".")[0] + "." + issuer.sign(sub="x").rpartition(".")[2]
    elif refusal == "scope":
        token = issuer.sign(scope="shopping:write")
    else:  # the first unknown kid spends the refetch; the next, within the cooldown, is a 503
        await small_api.get(
            "/self-refusing",
            headers={"Authorization": f"Bearer {make_token(_STRANGER, scope='shopping:read')}"},
        )
        token = make_token(SigningKey.es384("stranger-2", index=8), scope="shopping:read")
    by_middleware = await small_api.get(
        "/self-refusing", headers={"Authorization": f"Bearer {token}"}
    )
    retry_after = by_middleware.headers.get("Retry-After", "0")
    by_handler = await small_api.get(
        f"/self-refusing?refusal={refusal}&retry_after={retry_after}",
        headers={"Authorization": f"Bearer {valid}"},
    )
    assert by_handler.status_code == by_middleware.status_code == status
    assert by_middleware.headers.multi_items() == by_handler.headers.multi_items()
    assert by_middleware.content == by_handler.content
    assert by_middleware.json()["error"] == error
    if status == 503:
        assert "www-authenticate" not in by_middleware.headers
        assert int(retry_after) > 0
    else:
        assert challenge(by_middleware.headers["WWW-Authenticate"])["error"] == error
