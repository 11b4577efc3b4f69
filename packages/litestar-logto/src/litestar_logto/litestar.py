"""The one Litestar adapter of the verification core.

``LogtoAuth`` is a Litestar plugin. Added to an app it installs: one ASGI middleware that
enforces each route's declared :class:`Requirement` (``opt`` via ``requires()`` / ``public()``);
the ``access_token`` dependency; an exception handler rendering RFC 6750 errors; the RFC 9728
metadata documents; a start-up check that every route declares what it needs; and the
background key refresh.

Why a middleware and not a guard: Litestar runs guards through
``BaseRouteHandler.authorize_connection``, which hands each guard ``copy(handler)`` — a copy of
the route handler on every request of every route, public ones included (about 9 µs, a quarter
of a ``/health`` request). Route middleware runs after routing (``scope["route_handler"]`` and
``scope["path_params"]`` are set) and before the route creates its request, runs the
``before_request`` hook or resolves dependencies, so authentication keeps its place. A public
route costs one dictionary lookup.

A returning token takes a shortcut: a request of the plain shape (one ``Authorization: Bearer``
header, no query string, no content type) whose token the verifier remembers, for the route's
audience and scopes, is let through after one digest lookup (``_remembered``); anything else,
refusals included, takes the full check, which decides exactly as before. Only tokens that
passed the full check are remembered, so its format checks hold for them; a differential test
sends every kind of request to an app that remembers the token and to one that does not.
With tracing on, every request takes the full check (and gets its verification span).

A refusal of an HTTP request is answered by the middleware itself, with exactly what the
exception handler renders (status, ``WWW-Authenticate`` and any other header, JSON body),
rather than raised through Litestar's ``ExceptionHandlerMiddleware``: that path (a second
``Request``, the handler lookup, a ``Response`` turned into an ASGI response) cost a replayed
forgery about half of its time, and a flood of bad tokens should cost little more than
``/health``. The answer still passes through every middleware outside this one and the app's
``before_send`` hooks. A websocket's refusal is raised (Litestar closes the socket), and an
``AuthError`` raised anywhere else reaches the exception handler as before. A route- or
controller-level exception handler for ``AuthError`` therefore no longer sees the
middleware's refusals (an app-level one never did: the plugin installs its own).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeAlias
from urllib.parse import parse_qsl, quote

import httpx
import msgspec
from litestar import Request, Response, get
from litestar.di import Provide
from litestar.enums import ScopeType
from litestar.exceptions import ImproperlyConfiguredException
from litestar.handlers import BaseRouteHandler, HTTPRouteHandler
from litestar.params import FromPath
from litestar.routes import HTTPRoute

from .bearer import extract_bearer_token
from .claims import AccessToken
from .errors import AuthError, InsufficientScope, InvalidToken, KeysUnavailable
from .explain import ApiConfig, Route, explain
from .jwks import KeySetPolicy, RemoteKeySet
from .keys import LOGTO_ALGORITHMS, validate_algorithms
from .requirements import OPT_KEY, ORGANIZATIONS, Public, Requirement, authorize, public
from .verifier import TokenVerifier, VerifierPolicy

if TYPE_CHECKING:
    from litestar import Litestar
    from litestar.config.app import AppConfig
    from litestar.types import ASGIApp, Receive, Scope, Send
    from opentelemetry.trace import Tracer

logger = logging.getLogger("litestar_logto")

METADATA_PREFIX = "/.well-known/oauth-protected-resource"

Authenticate: TypeAlias = Callable[
    ["Scope", "Receive", "Send", BaseRouteHandler, object], Awaitable[None]
]
"""What the middleware calls for a protected route (:meth:`LogtoAuth.authenticate`)."""
AuthenticatedRequest: TypeAlias = Request[str, AccessToken, Any]
"""The request of a protected route: ``request.auth`` is the verified :class:`AccessToken`,
``request.user`` its subject. Reading it costs nothing, unlike the ``access_token``
dependency, which Litestar resolves in a task group next to any other dependency."""
_FORM = b"application/x-www-form-urlencoded"
_encode_json = msgspec.json.Encoder().encode


@dataclass(frozen=True, slots=True)
class LogtoAuthConfig:
    """How a Litestar app verifies Logto access tokens."""

    endpoint: str
    """The Logto tenant URL without ``/oidc``, e.g. ``https://tenant.logto.app``."""
    resources: Mapping[str, str]
    """Resource name (used in route declarations) → API resource indicator (``aud``)."""
    algorithms: frozenset[str] = LOGTO_ALGORITHMS
    """Signature algorithms accepted; never taken from the token."""
    verifier: VerifierPolicy = field(default_factory=VerifierPolicy)
    """Leeway, token size limit and verified-token cache size."""
    key_set: KeySetPolicy = field(default_factory=KeySetPolicy)
    """Timeout, body limit, cooldown, refresh interval and last-known-good window."""
    public_url: str | None = None
    """This API's public base URL for ``resource_metadata``; the request's own by default."""
    realm: str | None = None
    """Optional ``realm`` of the challenges."""
    background_refresh: bool = True
    """Refresh keys before they go stale in a background task while the app runs."""


@dataclass(slots=True)
class Decisions:
    """How many requests the middleware let through, and refused per status and reason."""

    accepted: int = 0
    refusals: dict[tuple[int, str], int] = field(default_factory=dict)

    def refused(self, status: int, reason: str) -> None:
        """Count one refusal."""
        key = (status, reason)
        self.refusals[key] = self.refusals.get(key, 0) + 1


class LogtoAuth:
    """Protect a Litestar app with Logto access tokens: ``plugins=[LogtoAuth(config)]``."""

    def __init__(
        self,
        config: LogtoAuthConfig,
        *,
        http_client: httpx.AsyncClient | None = None,
        clock: Callable[[], float] = time.time,
        tracer: Tracer | None = None,
    ) -> None:
        """``tracer``: spans for token verification and key fetches (none without it)."""
        unknown = set(config.resources) & {ORGANIZATIONS}
        if unknown:
            msg = f"resource name {ORGANIZATIONS!r} is reserved for organization tokens"
            raise ImproperlyConfiguredException(msg)
        self.config = config
        self.tracer = tracer
        self._clock = clock
        algorithms = validate_algorithms(config.algorithms)
        self._owns_client = http_client is None
        self.http_client = http_client or httpx.AsyncClient()
        self.keys = RemoteKeySet(
            config.endpoint,
            http_client=self.http_client,
            algorithms=algorithms,
            policy=config.key_set,
            clock=clock,
            tracer=tracer,
        )
        self.verifier = TokenVerifier(
            self.keys, algorithms=algorithms, policy=config.verifier, clock=clock
        )
        self._indicators = dict(config.resources)
        self._max_authorization = len(b"Bearer ") + config.verifier.max_token_bytes
        self.decisions = Decisions()
        self.scopes_supported: dict[str, tuple[str, ...]] = {}

    # -- Litestar plugin protocol -------------------------------------------------------------

    def on_app_init(self, app_config: AppConfig) -> AppConfig:
        """Install the middleware, dependency, error handler, metadata routes and lifespan."""
        # Appended: the innermost of the app's middleware (which still wraps the 401s), outside
        # router-, controller- and handler-level middleware and Litestar's per-route CSRF,
        # compression and allowed-hosts middleware, all of which a guard ran after.
        app_config.middleware = [*app_config.middleware, self.middleware]
        app_config.dependencies["access_token"] = Provide(
            _provide_access_token, sync_to_thread=False
        )
        app_config.exception_handlers[AuthError] = self.error_response
        app_config.route_handlers = [*app_config.route_handlers, *self._metadata_handlers()]
        app_config.signature_types = [*app_config.signature_types, AccessToken]
        app_config.lifespan = [*app_config.lifespan, self._lifespan]
        return app_config

    @contextlib.asynccontextmanager
    async def _lifespan(self, app: Litestar) -> AsyncIterator[None]:
        self.scopes_supported = check_routes(app, self._indicators)
        refresher = None
        if self.config.background_refresh:
            refresher = asyncio.get_running_loop().create_task(self.keys.run_refresh_loop())
            self.keys.warm_up()
        try:
            yield
        finally:
            if refresher is not None:
                refresher.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await refresher
            self.verifier.close()
            if self._owns_client:
                await self.http_client.aclose()

    # -- the middleware -----------------------------------------------------------------------

    def middleware(self, app: ASGIApp) -> ASGIApp:
        """Wrap one route handler's ASGI app (Litestar builds the route middleware stack once
        per handler and HTTP method) with authentication and authorization.

        What a handler needs is decided on its first request and remembered per handler (the
        key is the handler object, set by the router in ``scope["route_handler"]``): ``None``
        for a public or Litestar built-in route, which then costs one lookup and no copy.
        Each decision is counted in :attr:`decisions` (metrics read it when scraped).
        """
        requirements: dict[BaseRouteHandler, object] = {}
        authenticate: Authenticate = self.authenticate
        remembered: Callable[[Scope, Requirement], AccessToken | None] | None = self._remembered
        if self.tracer is not None:  # decided here, once: untraced requests pay nothing
            from .tracing import traced_authentication  # noqa: PLC0415 - only when tracing

            authenticate = traced_authentication(self.tracer, authenticate)
            remembered = None  # every request gets its verification span
        decisions = self.decisions

        async def authentication(scope: Scope, receive: Receive, send: Send) -> None:
            handler = scope["route_handler"]
            try:
                requirement = requirements[handler]
            except KeyError:
                requirement = requirements[handler] = _route_requirement(handler)
            if requirement is not None:
                access_token = (
                    remembered(scope, requirement)
                    if remembered is not None and isinstance(requirement, Requirement)
                    else None
                )
                if access_token is not None:
                    scope["auth"] = access_token
                    scope["user"] = access_token.subject
                    decisions.accepted += 1
                    await app(scope, receive, send)
                    return
                try:
                    await authenticate(scope, receive, send, handler, requirement)
                except AuthError as exc:
                    decisions.refused(exc.status_code, exc.reason)
                    if scope["type"] != ScopeType.HTTP:  # a websocket: Litestar closes it
                        raise
                    await self._refuse(scope, receive, send, exc)
                    return
                decisions.accepted += 1
            await app(scope, receive, send)

        return authentication

    async def authenticate(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        handler: BaseRouteHandler,
        requirement: object,
    ) -> None:
        """Authenticate and authorize one request against its route's declaration; on success
        put the token in ``scope["auth"]`` and its subject in ``scope["user"]``."""
        if not isinstance(requirement, Requirement):  # refused at start-up; fail closed anyway
            raise InsufficientScope((), "This route is not available.", reason="undeclared_route")
        authorization, form = _read_headers(scope["headers"])
        token = extract_bearer_token(
            authorization,
            token_in_query=_token_in_query(scope["query_string"]),
            token_in_body=form and await _token_in_form_body(scope, receive, send, handler),
            max_token_bytes=self.config.verifier.max_token_bytes,
        )
        organization_id = (
            scope["path_params"].get(requirement.organization_param)
            if requirement.organization_param
            else None
        )
        audience = requirement.audience(self._indicators, organization_id)
        try:
            access_token = await self.verifier.verify(token, audience=audience)
            authorize(access_token, requirement, organization_id)
        except AuthError as refused:
            # The first refusal of a token is explained check by check at DEBUG (a replay was
            # explained the first time); the explanation holds no token and no key material.
            if logger.isEnabledFor(logging.DEBUG) and not getattr(refused, "replayed", False):
                self._log_explanation(token, refused, requirement, audience, organization_id)
            raise
        scope["auth"] = access_token
        scope["user"] = access_token.subject

    def _remembered(self, scope: Scope, requirement: Requirement) -> AccessToken | None:
        """The request's token if :meth:`authenticate` would accept it from the verified-token
        cache: the one shape a returning client's request has (one ``Authorization: Bearer``
        header, no query string, no content type), a token the verifier remembers
        (:meth:`TokenVerifier.remembered`), the route's audience and scopes. ``None`` for
        anything else, which :meth:`authenticate` then decides, refusals included.

        Only a token that passed every check of :meth:`authenticate` can be in the cache, so
        the format checks it made are not repeated; what the token is asked for here is what
        can differ per request (the route's requirement)."""
        authorization = _plain_bearer(scope)
        if authorization is None or len(authorization) > self._max_authorization:
            return None
        organization_id = (
            scope["path_params"].get(requirement.organization_param)
            if requirement.organization_param
            else None
        )
        access_token = self.verifier.remembered(
            authorization[7:].decode("latin-1"),
            audience=requirement.audience(self._indicators, organization_id),
        )
        if access_token is None:
            return None
        try:
            authorize(access_token, requirement, organization_id)
        except AuthError:
            return None
        self.verifier.stats.cache_hits += 1
        return access_token

    def _log_explanation(
        self,
        token: str,
        refused: AuthError,
        requirement: Requirement,
        audience: str,
        organization_id: str | None,
    ) -> None:
        config = ApiConfig(
            issuer=self.keys.issuer,
            audiences=(audience,),
            algorithms=tuple(sorted(self.config.algorithms)),
            leeway=self.config.verifier.leeway,
            max_token_bytes=self.config.verifier.max_token_bytes,
        )
        route = Route(
            scopes=requirement.scopes,
            organization=organization_id if requirement.organization_param else None,
            organization_tokens=requirement.organization_tokens,
        )
        explanation = explain(token, refused, config, now=self._clock(), route=route)
        logger.debug(
            "refusal explained",
            extra={
                "event": "auth_refusal_explained",
                "reason": refused.reason,
                "explanation": explanation.for_log(),
            },
        )

    # -- errors -------------------------------------------------------------------------------

    def error_response(
        self, request: Request[Any, Any, Any], exc: AuthError
    ) -> Response[dict[str, str]]:
        """Render an RFC 6750 error: JSON body, challenge header, no token, no library text.

        The app's exception handler for an ``AuthError`` raised outside the middleware (by a
        handler, say); the middleware answers its own refusals with the same status, headers
        and body (:meth:`_refuse`)."""
        self._log_refusal(request, exc)
        return Response(
            exc.body(), status_code=exc.status_code, headers=self._challenge(request, exc)
        )

    async def _refuse(self, scope: Scope, receive: Receive, send: Send, exc: AuthError) -> None:
        """Answer a refusal from the middleware itself: what :meth:`error_response` answers,
        sent without going through Litestar's exception handling (a replayed forgery costs
        about 40 % less), so a flood of bad tokens costs little more than ``/health``.

        Route- and controller-level exception handlers and ``after_exception`` hooks do not see
        these refusals, and Litestar does not log them: :meth:`_log_refusal` does."""
        request: Request[Any, Any, Any] = Request(scope, receive, send)
        self._log_refusal(request, exc)
        body = _encode_json(exc.body())
        headers = [
            (name.lower().encode("latin-1"), value.encode("latin-1"))
            for name, value in self._challenge(request, exc).items()
        ]
        headers += [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
        await send({"type": "http.response.start", "status": exc.status_code, "headers": headers})
        await send({"type": "http.response.body", "body": body, "more_body": False})

    def _log_refusal(self, request: Request[Any, Any, Any], exc: AuthError) -> None:
        # A replay of a token refused before is logged at DEBUG: its first refusal was logged
        # at INFO with the same reason, and each replay keeps its access line (status 401).
        # A flood of one forged token neither fills the logs nor pays a log record each time.
        # An unknown kid within the refetch cooldown is a 503 but no outage: logged at INFO
        # like the 401 it replaces, so a flood of made-up kids cannot fill a WARNING log.
        outage = not isinstance(exc, KeysUnavailable) or exc.outage
        if exc.status_code >= 500 and outage:  # noqa: PLR2004
            level = logging.WARNING
        elif isinstance(exc, InvalidToken) and exc.replayed:
            level = logging.DEBUG
        else:
            level = logging.INFO
        if logger.isEnabledFor(level):
            logger.log(
                level,
                "request refused",
                extra={
                    "event": "auth_refused",
                    "status": exc.status_code,
                    "reason": exc.reason,
                    "error": exc.error,
                    "path": request.url.path,
                    **({"replayed": True} if level == logging.DEBUG else {}),
                },
            )

    def _challenge(self, request: Request[Any, Any, Any], exc: AuthError) -> dict[str, str]:
        requirement = request.route_handler.opt.get(OPT_KEY)
        metadata = self._metadata_url(request, requirement)
        return exc.headers(realm=self.config.realm, resource_metadata=metadata)

    def _metadata_url(self, request: Request[Any, Any, Any], requirement: object) -> str | None:
        if not isinstance(requirement, Requirement):
            return None
        base = (self.config.public_url or str(request.base_url)).rstrip("/")
        return f"{base}{self._metadata_path(requirement, request.path_params)}"

    def _metadata_path(self, requirement: Requirement, path_params: Mapping[str, Any]) -> str:
        if requirement.organization_token and requirement.organization_param:
            org = quote(str(path_params.get(requirement.organization_param, "")), safe="")
            return f"{METADATA_PREFIX}/{ORGANIZATIONS}/{org}"
        return f"{METADATA_PREFIX}/{quote(requirement.resource, safe='')}"

    # -- RFC 9728 -----------------------------------------------------------------------------

    def _metadata_handlers(self) -> list[Any]:
        @get(
            f"{METADATA_PREFIX}/{{name:str}}",
            opt=public(),
            include_in_schema=False,
            sync_to_thread=False,
            name="oauth_protected_resource",
        )
        def resource_metadata(name: FromPath[str]) -> Response[dict[str, Any]]:
            indicator = self._indicators.get(name)
            if indicator is None:
                return Response(
                    {"error": "not_found", "error_description": "No such protected resource."},
                    status_code=404,
                )
            return Response(self._metadata(indicator, name), headers=_CACHE_METADATA)

        @get(
            f"{METADATA_PREFIX}/{ORGANIZATIONS}/{{org_id:str}}",
            opt=public(),
            include_in_schema=False,
            sync_to_thread=False,
            name="oauth_protected_organization",
        )
        def organization_metadata(org_id: FromPath[str]) -> Response[dict[str, Any]]:
            return Response(
                self._metadata(f"urn:logto:organization:{org_id}", ORGANIZATIONS),
                headers=_CACHE_METADATA,
            )

        return [resource_metadata, organization_metadata]

    def _metadata(self, resource: str, name: str) -> dict[str, Any]:
        return {
            "resource": resource,
            "authorization_servers": [self.keys.issuer],
            "scopes_supported": list(self.scopes_supported.get(name, ())),
            "bearer_methods_supported": ["header"],
            "resource_signing_alg_values_supported": sorted(self.config.algorithms),
        }


_CACHE_METADATA = {"Cache-Control": "public, max-age=300"}


def check_routes(app: Litestar, indicators: Mapping[str, str]) -> dict[str, tuple[str, ...]]:
    """Refuse any route that declares neither scopes nor ``public()``; return the scopes
    declared per resource name (for RFC 9728 ``scopes_supported``)."""
    problems: list[str] = []
    scopes: dict[str, set[str]] = {name: set() for name in [*indicators, ORGANIZATIONS]}
    for route in app.routes:
        if not isinstance(route, HTTPRoute):
            continue
        for handler in route.route_handlers:
            requirement = handler.opt.get(OPT_KEY)
            where = f"{sorted(handler.http_methods)} {route.path}"
            if isinstance(requirement, Public) or _is_litestar_builtin_route(handler):
                continue
            if not isinstance(requirement, Requirement):
                problems.append(f"{where}: declares neither requires(...) nor public()")
                continue
            problems.extend(_requirement_problems(requirement, route, indicators, where))
            scopes.setdefault(requirement.resource, set()).update(requirement.scopes)
    if problems:
        raise ImproperlyConfiguredException(
            "LogtoAuth refuses to start:\n  " + "\n  ".join(problems)
        )
    return {name: tuple(sorted(values)) for name, values in scopes.items()}


def _requirement_problems(
    requirement: Requirement, route: HTTPRoute, indicators: Mapping[str, str], where: str
) -> Iterable[str]:
    if not requirement.organization_token and requirement.resource not in indicators:
        yield f"{where}: unknown resource {requirement.resource!r}"
    param = requirement.organization_param
    if param is not None and param not in route.path_parameters:
        yield f"{where}: no path parameter {param!r} for the organization"


def _route_requirement(handler: BaseRouteHandler) -> object:
    """What a request of ``handler`` must satisfy: ``None`` when nothing (a public or Litestar
    built-in route), else the declared :class:`Requirement` (or whatever else the ``opt`` key
    holds, which :meth:`LogtoAuth.authenticate` refuses)."""
    requirement = handler.opt.get(OPT_KEY)
    if isinstance(requirement, Public) or _is_litestar_builtin_route(handler):
        return None
    return requirement


def _is_litestar_builtin_route(handler: BaseRouteHandler) -> bool:
    # Litestar's own routes are public by design: the OpenAPI documentation (its handlers live
    # in litestar._openapi and litestar.openapi) and the OPTIONS handler it adds to every path
    # (litestar.routes.http), which only answers ``Allow``.
    return getattr(handler.fn, "__module__", "").startswith(_LITESTAR_BUILTIN_MODULES)


_LITESTAR_BUILTIN_MODULES = ("litestar._openapi", "litestar.openapi", "litestar.routes.http")


def _plain_bearer(scope: Scope) -> bytes | None:
    """The ``Authorization`` value of a request with no query string, no content type and
    exactly one such header, if it starts ``Bearer``; ``None`` otherwise."""
    if scope["query_string"]:
        return None
    authorization = None
    for name, value in scope["headers"]:
        if name == b"authorization":
            if authorization is not None:
                return None
            authorization = value
        elif name == b"content-type":
            return None
    return authorization if authorization and authorization.startswith(b"Bearer ") else None


def _read_headers(headers: Iterable[tuple[bytes, bytes]]) -> tuple[list[str], bool]:
    """Every ``Authorization`` value, and whether the (first) ``Content-Type`` is a form: the
    two things authentication reads from the headers, in one pass."""
    authorization = []
    content_type = None
    for name, value in headers:
        if name == b"authorization":
            authorization.append(value.decode("latin-1"))
        elif name == b"content-type" and content_type is None:
            content_type = value
    return authorization, content_type is not None and content_type.lower().startswith(_FORM)


def _token_in_query(query_string: bytes) -> bool:
    if not query_string:
        return False
    # No byte-level shortcut: "access%5Ftoken" names the same parameter (RFC 3986 §2.1).
    return any(
        name == "access_token"
        for name, _ in parse_qsl(query_string.decode("latin-1"), keep_blank_values=True)
    )


async def _token_in_form_body(
    scope: Scope, receive: Receive, send: Send, handler: BaseRouteHandler
) -> bool:
    """Whether the form body (the caller saw a form content type) has an ``access_token``."""
    # Only an HTTP route handler's connection is a Request with a body to look at (a guard was
    # handed a WebSocket or a bare ASGIConnection elsewhere, and never read a body there).
    if not isinstance(handler, HTTPRouteHandler):
        return False
    # The form (and the body under it) is kept in the scope's state, so the Request the route
    # creates next reads the same parsed form instead of a consumed stream.
    request: Request[Any, Any, Any] = handler.resolve_request_class()(
        scope=scope, receive=receive, send=send
    )
    form = await request.form()
    return "access_token" in form


def _provide_access_token(request: Request[Any, Any, Any]) -> AccessToken:
    token = request.scope.get("auth")
    if not isinstance(token, AccessToken):  # a public route asked for a token
        msg = "access_token is only available on routes declared with requires()"
        raise ImproperlyConfiguredException(msg)
    return token
