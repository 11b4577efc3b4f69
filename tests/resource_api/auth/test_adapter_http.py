"""The Litestar adapter over HTTP: RFC 6750 answers (status, body, challenge), the 503 for an
issuer outage, the start-up route check, RFC 9728 documents and what the logs say."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from litestar import Litestar, get
from litestar.exceptions import ImproperlyConfiguredException
from litestar.testing import AsyncTestClient
from litestar_logto import (
    LOGTO_ALGORITHMS,
    LogtoAuth,
    LogtoAuthConfig,
    requires,
    requires_organization,
)

from tests.resource_api.auth.conftest import ROUTES, auth_config
from tests.resource_api.auth.forge import ATTACKER_ES384, ES384, hmac_token, nested_json, public_pem
from tests.support import (
    ENDPOINT,
    ISSUER,
    NOW,
    SHOPPING,
    STORE,
    FakeClock,
    FakeIssuer,
    SigningKey,
    b64url,
    make_token,
)

Client = AsyncTestClient[Any]
BASE = "http://testserver.local"
METADATA = f"{BASE}/.well-known/oauth-protected-resource"
ORG_1 = "urn:logto:organization:org-1"


def _challenge(
    resource: str = "shopping",
    error: str | None = None,
    description: str | None = None,
    scope: str | None = None,
) -> str:
    params = []
    if error is not None:
        params += [f'error="{error}"', f'error_description="{description}"']
    if scope is not None:
        params.append(f'scope="{scope}"')
    params.append(f'resource_metadata="{METADATA}/{resource}"')
    return "Bearer " + ", ".join(params)


@dataclass(frozen=True)
class Call:
    """One request of the table: a token (built lazily) and where it is sent."""

    token: Callable[[], str] | None = None
    method: str = "GET"
    path: str = "/shopping/orders"
    scheme: str = "Bearer"
    headers: list[tuple[str, str]] = field(default_factory=list)
    params: dict[str, str] | None = None
    raw_query: str | None = None
    form: dict[str, str] | None = None

    async def send(self, client: Client) -> tuple[httpx.Response, str | None]:
        """Send it; return the response and the credential sent (to look for it in logs)."""
        token = self.token() if self.token else None
        headers = list(self.headers)
        if token is not None:
            headers.append(("Authorization", f"{self.scheme} {token}"))
        url = f"{self.path}?{self.raw_query}" if self.raw_query else self.path
        response = await client.request(
            self.method, url, headers=headers, params=self.params, data=self.form
        )
        return response, token


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


_KID_NOT_YET = (
    "The access token is signed with a key the API cannot look up yet; try again shortly."
)


def _read(**claims: Any) -> Callable[[], str]:
    return lambda: make_token(ES384, scope="shopping:read", **claims)


# -- refused requests ------------------------------------------------------------------------------

_NO_TOKEN = {"error": "unauthorized", "error_description": "A bearer access token is required."}


def _body(error: str, description: str) -> dict[str, str]:
    return {"error": error, "error_description": description}


_NOT_UTF8_HEADER = b64url(b'{"alg":"\xff"}') + ".e30.AA"
_INVALID_REQUEST = "invalid_request"
_INVALID_TOKEN = "invalid_token"
_SCOPE = "insufficient_scope"


def _refusal(
    call: Call,
    status: int,
    error: str | None,
    description: str,
    reason: str,
    *,
    resource: str = "shopping",
    scope: str | None = None,
    id: str,  # noqa: A002 - mirrors pytest.param
) -> Any:
    body = _body(error, description) if error else _NO_TOKEN
    challenge = _challenge(resource, error, description if error else None, scope)
    return pytest.param(call, Answer(status, body, challenge, reason), id=id)


@dataclass(frozen=True)
class Answer:
    """What a refused request must get: status, exact body, exact challenge, logged reason."""

    status: int
    body: dict[str, str]
    challenge: str
    reason: str


@pytest.mark.parametrize(
    ("call", "expected"),
    [
        _refusal(Call(), 401, None, "", "no_credentials", id="no-credentials"),
        _refusal(
            Call(token=lambda: "dXNlcjpwYXNz", scheme="Basic"),
            401,
            None,
            "",
            "other_scheme",
            id="basic-scheme",
        ),
        _refusal(
            Call(path="/organizations/org-1/members"),
            401,
            None,
            "",
            "no_credentials",
            resource="organizations/org-1",
            id="no-credentials-organization-route",
        ),
        _refusal(
            Call(headers=[("Authorization", "Bearer")]),
            400,
            _INVALID_REQUEST,
            "The Bearer credentials are empty.",
            "empty_credentials",
            id="empty-credentials",
        ),
        _refusal(
            Call(token=lambda: "a b"),
            400,
            _INVALID_REQUEST,
            "The Bearer credentials must be a single token.",
            "malformed_credentials",
            id="two-tokens",
        ),
        _refusal(
            Call(token=lambda: f"{_read()()}, Bearer x"),
            400,
            _INVALID_REQUEST,
            "The Bearer credentials must be a single token.",
            "malformed_credentials",
            id="two-credentials-in-one-header",
        ),
        _refusal(
            Call(params={"access_token": "x"}),
            400,
            _INVALID_REQUEST,
            "Access tokens are not accepted in the URL; use the Authorization header.",
            "token_in_query",
            id="token-in-query",
        ),
        _refusal(
            Call(token=_read(), raw_query="access%5Ftoken=x"),
            400,
            _INVALID_REQUEST,
            "Access tokens are not accepted in the URL; use the Authorization header.",
            "token_in_query",
            id="percent-encoded-token-in-query-next-to-header",
        ),
        _refusal(
            Call(method="POST", form={"access_token": "x"}),
            400,
            _INVALID_REQUEST,
            "Access tokens are not accepted in the request body; use the Authorization header.",
            "token_in_body",
            id="token-in-form-body",
        ),
        _refusal(
            Call(
                token=lambda: make_token(ES384, scope="shopping:write"),
                method="POST",
                form={"access_token": "x", "note": "y"},
            ),
            400,
            _INVALID_REQUEST,
            "Send the access token in exactly one place.",
            "token_in_body",
            id="token-in-form-body-and-header",
        ),
        _refusal(
            Call(token=lambda: "a" * 8193),
            401,
            _INVALID_TOKEN,
            "The access token is too large.",
            "oversized",
            id="oversized",
        ),
        _refusal(
            Call(token=lambda: "abc"),
            401,
            _INVALID_TOKEN,
            "The access token is not a signed JWT.",
            "malformed",
            id="not-a-jwt",
        ),
        _refusal(
            Call(token=lambda: f"{b64url(nested_json(3000))}.e30.AA"),
            401,
            _INVALID_TOKEN,
            "The access token is not valid JSON.",
            "bad_json",
            id="deeply-nested-header",
        ),
        _refusal(
            Call(token=lambda: _NOT_UTF8_HEADER),
            401,
            _INVALID_TOKEN,
            "The access token is not valid JSON.",
            "bad_json",
            id="header-not-utf8",
        ),
        _refusal(
            Call(token=_read(exp=NOW - 60)),
            401,
            _INVALID_TOKEN,
            "The access token has expired.",
            "expired",
            id="expired",
        ),
        _refusal(
            Call(token=lambda: make_token(ES384, aud=STORE, scope="store:read")),
            401,
            _INVALID_TOKEN,
            "The access token is not meant for this API.",
            "wrong_audience",
            id="store-token-on-shopping",
        ),
        _refusal(
            Call(token=lambda: make_token(ATTACKER_ES384)),
            401,
            _INVALID_TOKEN,
            "The access token signature is invalid.",
            "bad_signature",
            id="forged-signature",
        ),
        _refusal(
            Call(token=lambda: hmac_token(public_pem(ES384), "HS256")),
            401,
            _INVALID_TOKEN,
            "The access token is signed with a refused algorithm.",
            "algorithm_refused",
            id="hs256-alg-confusion",
        ),
        _refusal(
            Call(token=_read(iss=f"{ISSUER}/")),
            401,
            _INVALID_TOKEN,
            "The access token was not issued by the expected issuer.",
            "wrong_issuer",
            id="wrong-issuer",
        ),
        _refusal(
            Call(token=_read(), method="POST"),
            403,
            _SCOPE,
            "The access token lacks the permission this operation needs.",
            "missing_scope",
            scope="shopping:write",
            id="missing-scope",
        ),
        _refusal(
            Call(
                token=lambda: make_token(ES384, aud=STORE, scope="store:read"),
                path="/organizations/org-1/store/products",
            ),
            403,
            _SCOPE,
            "This route needs an organization-level token for this organization.",
            "no_organization",
            resource="store",
            scope="store:read",
            id="global-token-on-organization-route",
        ),
        _refusal(
            Call(
                token=lambda: make_token(
                    ES384, aud=STORE, scope="store:read", organization_id="org-2"
                ),
                path="/organizations/org-1/store/products",
            ),
            403,
            _SCOPE,
            "The access token is for another organization.",
            "wrong_organization",
            resource="store",
            scope="store:read",
            id="token-of-another-organization",
        ),
        _refusal(
            Call(
                token=lambda: make_token(
                    ES384, aud="urn:logto:organization:org-2", scope="read:members"
                ),
                path="/organizations/org-1/members",
            ),
            401,
            _INVALID_TOKEN,
            "The access token is not meant for this API.",
            "wrong_audience",
            resource="organizations/org-1",
            id="organization-token-of-another-organization",
        ),
        _refusal(
            Call(
                token=lambda: make_token(ES384, aud=ORG_1, scope="write:members"),
                path="/organizations/org-1/members",
            ),
            403,
            _SCOPE,
            "The access token lacks the permission this operation needs.",
            "missing_scope",
            resource="organizations/org-1",
            scope="read:members",
            id="organization-token-without-scope",
        ),
        _refusal(
            Call(
                token=lambda: make_token(ES384, aud=SHOPPING, scope="read:members"),
                path="/organizations/org-1/members",
            ),
            401,
            _INVALID_TOKEN,
            "The access token is not meant for this API.",
            "wrong_audience",
            resource="organizations/org-1",
            id="api-token-on-organization-token-route",
        ),
    ],
)
async def test_refusals_are_rfc_6750(
    api: Client, caplog: pytest.LogCaptureFixture, call: Call, expected: Answer
) -> None:
    """Every refusal has its status, exact JSON body and challenge; the log names the reason
    and never holds the credential."""
    caplog.set_level(logging.INFO, logger="litestar_logto")
    response, credential = await call.send(api)
    refused = [r for r in caplog.records if getattr(r, "event", None) == "auth_refused"]
    ours = "\n".join(
        str(r.__dict__)
        for r in caplog.records
        if r.name.startswith(("litestar_logto", "resource_api"))
    )
    assert (
        response.status_code,
        response.json(),
        response.headers.get("WWW-Authenticate"),
        [(r.reason, r.status) for r in refused],  # type: ignore[attr-defined]
        credential is not None and credential in ours,
    ) == (
        expected.status,
        expected.body,
        expected.challenge,
        [(expected.reason, expected.status)],
        False,
    )


# -- accepted requests -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("call", "status", "body"),
    [
        pytest.param(
            Call(token=_read()),
            200,
            {"sub": "user-alice", "scopes": ["shopping:read"], "organization_id": None},
            id="shopping-read",
        ),
        pytest.param(
            Call(token=_read(), scheme="bearer"),
            200,
            {"sub": "user-alice", "scopes": ["shopping:read"], "organization_id": None},
            id="lower-case-scheme",
        ),
        pytest.param(
            Call(token=lambda: make_token(ES384, scope="shopping:write"), method="POST"),
            201,
            {"sub": "user-alice", "scopes": ["shopping:write"], "organization_id": None},
            id="shopping-write",
        ),
        pytest.param(
            Call(
                token=lambda: make_token(
                    ES384, aud=STORE, scope="store:read", organization_id="org-1"
                ),
                path="/organizations/org-1/store/products",
            ),
            200,
            {
                "org": "org-1",
                "sub": "user-alice",
                "scopes": ["store:read"],
                "organization_id": "org-1",
            },
            id="organization-level-token-of-the-path",
        ),
        pytest.param(
            Call(
                token=lambda: make_token(ES384, aud=ORG_1, scope="read:members"),
                path="/organizations/org-1/members",
            ),
            200,
            {
                "org": "org-1",
                "sub": "user-alice",
                "scopes": ["read:members"],
                "organization_id": None,
            },
            id="organization-token",
        ),
        pytest.param(Call(path="/health"), 200, {"status": "ok"}, id="public-without-token"),
        pytest.param(
            Call(path="/health", token=lambda: "garbage"),
            200,
            {"status": "ok"},
            id="public-ignores-credentials",
        ),
    ],
)
async def test_valid_requests_reach_the_handler(
    api: Client, call: Call, status: int, body: dict[str, Any]
) -> None:
    """A request holding what its route declares gets the handler's answer."""
    response, _ = await call.send(api)
    assert (response.status_code, response.json()) == (status, body)


async def test_litestar_builtin_routes_need_no_token(api: Client) -> None:
    """The automatic OPTIONS handler and the OpenAPI schema answer without a token."""
    options = await api.options("/shopping/orders")
    schema = await api.get("/schema/openapi.json")
    assert (options.status_code, schema.status_code) == (204, 200)


async def test_duplicate_authorization_headers_are_400(api: Client) -> None:
    """Two Authorization headers are a 400 (sent through httpx's ASGI transport, because the
    test client folds repeated headers into one)."""
    token = _read()()
    transport = httpx.ASGITransport(app=api.app)
    async with httpx.AsyncClient(transport=transport, base_url=BASE) as raw:
        response = await raw.get(
            "/shopping/orders",
            headers=[("Authorization", f"Bearer {token}"), ("Authorization", f"Bearer {token}")],
        )
    assert (response.status_code, response.json(), response.headers["WWW-Authenticate"]) == (
        400,
        _body(_INVALID_REQUEST, "Send exactly one Authorization header."),
        _challenge("shopping", _INVALID_REQUEST, "Send exactly one Authorization header."),
    )


# -- issuer outage ---------------------------------------------------------------------------------


async def test_issuer_down_before_any_key_is_503(
    issuer: FakeIssuer, api: Client, caplog: pytest.LogCaptureFixture
) -> None:
    """With no key ever fetched an unreachable issuer is our outage: 503 and Retry-After,
    no challenge, not 401."""
    issuer.jwks_route.side_effect = httpx.ConnectError("refused")
    caplog.set_level(logging.INFO, logger="litestar_logto")
    response = await api.get("/shopping/orders", headers={"Authorization": f"Bearer {_read()()}"})
    assert (
        response.status_code,
        response.headers.get("Retry-After"),
        "WWW-Authenticate" in response.headers,
        response.json(),
        [getattr(r, "reason", None) for r in caplog.records if r.levelno >= logging.WARNING],
    ) == (
        503,
        "30",
        False,
        {
            "error": "temporarily_unavailable",
            "error_description": "The token issuer cannot be reached; try again shortly.",
        },
        ["http_error_ConnectError", "keys_unavailable"],
    )


@pytest.fixture
async def warm_api(
    issuer: FakeIssuer, http_client: httpx.AsyncClient, clock: FakeClock
) -> AsyncIterator[Client]:
    """The app with background refresh on, started while the issuer is unreachable."""
    issuer.jwks_route.side_effect = httpx.ConnectTimeout("timed out")
    auth = LogtoAuth(auth_config(background_refresh=True), http_client=http_client, clock=clock)
    async with AsyncTestClient(Litestar(route_handlers=ROUTES, plugins=[auth])) as client:
        yield client


async def test_failed_warm_up_then_request_is_503(warm_api: Client, clock: FakeClock) -> None:
    """After a failed warm-up a request inside the cooldown is told when to come back."""
    clock.advance(10)
    response = await warm_api.get(
        "/shopping/orders", headers={"Authorization": f"Bearer {_read()()}"}
    )
    assert (response.status_code, response.headers.get("Retry-After")) == (503, "20")


async def test_known_keys_survive_an_outage(
    issuer: FakeIssuer, api: Client, clock: FakeClock
) -> None:
    """Once keys were fetched, an outage does not turn valid tokens away."""
    headers = {"Authorization": f"Bearer {_read()()}"}
    await api.get("/shopping/orders", headers=headers)
    issuer.jwks_route.side_effect = httpx.ConnectError("refused")
    clock.advance(3600 - 60)
    response = await api.get("/shopping/orders", headers={"Authorization": f"Bearer {_read()()}"})
    assert response.status_code == 200


async def test_unknown_kid_within_the_cooldown_is_503_not_401(
    issuer: FakeIssuer, api: Client, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    """Issue 9 #7: a junk token spends the unknown-kid refetch, then the issuer rotates its
    key. A valid token signed with the new key inside the cooldown gets 503 + Retry-After
    (the API could not ask the issuer about its kid), never 401; after the cooldown, 200.
    Those 503s are logged at INFO like the 401s they replace, not as an outage (WARNING): a
    flood of made-up kids must not fill logs that keep only warnings."""
    caplog.set_level(logging.INFO, logger="litestar_logto")
    junk = make_token(SigningKey.es384("attacker-kid", index=7), scope="shopping:read")
    refused = await api.get("/shopping/orders", headers=_bearer(junk))
    fetches_after_junk = issuer.jwks_fetches
    new_key = SigningKey.es384("es384-2", index=1)
    issuer.keys = [new_key, ES384]
    clock.advance(2)
    valid = make_token(new_key, scope="shopping:read")
    during = [await api.get("/shopping/orders", headers=_bearer(valid)) for _ in range(2)]
    fetches_during = issuer.jwks_fetches
    clock.advance(28)
    after = await api.get("/shopping/orders", headers=_bearer(valid))
    assert (refused.status_code, refused.json()["error"]) == (401, "invalid_token")
    assert [(r.status_code, r.headers.get("Retry-After"), r.json()) for r in during] == [
        (503, "28", {"error": "temporarily_unavailable", "error_description": _KID_NOT_YET})
    ] * 2
    assert all("www-authenticate" not in r.headers for r in during)
    refusals = [
        (r.levelno, getattr(r, "reason", None))
        for r in caplog.records
        if getattr(r, "event", None) == "auth_refused" and getattr(r, "status", None) == 503
    ]
    assert refusals == [(logging.INFO, "unknown_kid_cooldown")] * 2
    assert (fetches_during, after.status_code, issuer.jwks_fetches) == (
        fetches_after_junk,
        200,
        fetches_after_junk + 1,
    )


# -- the start-up check ----------------------------------------------------------------------------


@get("/undeclared", sync_to_thread=False)
def undeclared() -> None:
    """A route that forgot to declare anything."""


@get("/billing", opt=requires("billing", "billing:read"), sync_to_thread=False)
def unknown_resource() -> None:
    """A route naming a resource the configuration does not have."""


@get(
    "/store/everything",
    opt=requires("store", "store:read", organization_param="org_id"),
    sync_to_thread=False,
)
def no_organization_param() -> None:
    """An organization-level route without the organization in its path."""


@get("/members", opt=requires_organization("read:members"), sync_to_thread=False)
def no_organization_param_for_org_token() -> None:
    """An organization-token route without the organization in its path."""


@get("/openly", opt={"logto_auth": "public"}, sync_to_thread=False)
def wrong_marker() -> None:
    """A route whose opt holds something that is neither a Requirement nor PUBLIC."""


@pytest.mark.parametrize(
    ("handler", "problem"),
    [
        pytest.param(undeclared, r"\['GET'\] /undeclared: declares neither", id="undeclared"),
        pytest.param(unknown_resource, r"/billing: unknown resource 'billing'", id="unknown"),
        pytest.param(
            no_organization_param,
            r"/store/everything: no path parameter 'org_id'",
            id="organization-param-missing",
        ),
        pytest.param(
            no_organization_param_for_org_token,
            r"/members: no path parameter 'org_id'",
            id="organization-token-param-missing",
        ),
        pytest.param(wrong_marker, r"/openly: declares neither", id="wrong-marker"),
    ],
)
async def test_start_up_refuses_undeclared_routes(
    issuer: FakeIssuer,
    logto_auth: LogtoAuth,
    handler: Any,
    problem: str,
) -> None:
    """Entering the app's lifespan fails when a route's declaration is missing or unusable."""
    app = Litestar(route_handlers=[*ROUTES, handler], plugins=[logto_auth])
    expected = pytest.RaisesExc(ImproperlyConfiguredException, match=problem)
    with pytest.RaisesGroup(expected, flatten_subgroups=True, allow_unwrapped=True):
        async with AsyncTestClient(app):
            pass


@pytest.mark.parametrize(
    ("config", "error"),
    [
        pytest.param(
            auth_config(resources={"organizations": SHOPPING}),
            ImproperlyConfiguredException,
            id="reserved-resource-name",
        ),
        pytest.param(auth_config(algorithms=frozenset({"HS256"})), ValueError, id="hmac-allowed"),
        pytest.param(auth_config(algorithms=frozenset({"none"})), ValueError, id="none-allowed"),
    ],
)
def test_bad_configuration_is_refused_at_construction(
    http_client: httpx.AsyncClient, config: LogtoAuthConfig, error: type[Exception]
) -> None:
    """A configuration that would weaken verification fails before the app exists."""
    with pytest.raises(error):
        LogtoAuth(config, http_client=http_client)


# -- RFC 9728 --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "resource", "scopes"),
    [
        pytest.param("shopping", SHOPPING, ["shopping:read", "shopping:write"], id="shopping"),
        pytest.param("store", STORE, ["store:read"], id="store"),
        pytest.param("organizations/org-1", ORG_1, ["read:members"], id="organization"),
    ],
)
async def test_protected_resource_metadata(
    api: Client, name: str, resource: str, scopes: list[str]
) -> None:
    """Each resource publishes its RFC 9728 document with the scopes its routes declare."""
    response = await api.get(f"/.well-known/oauth-protected-resource/{name}")
    assert (response.status_code, response.json(), response.headers["cache-control"]) == (
        200,
        {
            "resource": resource,
            "authorization_servers": [ISSUER],
            "scopes_supported": scopes,
            "bearer_methods_supported": ["header"],
            "resource_signing_alg_values_supported": sorted(LOGTO_ALGORITHMS),
        },
        "public, max-age=300",
    )


async def test_unknown_resource_metadata_is_404(api: Client) -> None:
    """A resource name that is not configured has no metadata document."""
    response = await api.get("/.well-known/oauth-protected-resource/billing")
    assert (response.status_code, response.json()["error"]) == (404, "not_found")


async def test_metadata_url_uses_public_url(
    issuer: FakeIssuer, http_client: httpx.AsyncClient, clock: FakeClock
) -> None:
    """With ``public_url`` configured, challenges point there rather than at the Host header."""
    auth = LogtoAuth(
        auth_config(public_url="https://api.example.com/", realm="shop"),
        http_client=http_client,
        clock=clock,
    )
    async with AsyncTestClient(Litestar(route_handlers=ROUTES, plugins=[auth])) as client:
        response = await client.get("/shopping/orders", headers={"Host": "evil.test"})
    assert response.headers["WWW-Authenticate"] == (
        'Bearer realm="shop", resource_metadata='
        '"https://api.example.com/.well-known/oauth-protected-resource/shopping"'
    )


def test_endpoint_is_the_tenant_url(logto_auth: LogtoAuth) -> None:
    """The issuer the adapter expects is ``<endpoint>/oidc``."""
    assert logto_auth.keys.issuer == f"{ENDPOINT}/oidc"
