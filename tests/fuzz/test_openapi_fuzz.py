"""Schema-based fuzzing of the resource API from its own OpenAPI document (schemathesis).

The document comes from ``create_app`` in-process; schemathesis generates every operation's
path, query and body (valid and invalid data), and each request is sent through Litestar's
``TestClient`` with one kind of ``Authorization``: a valid token granting every scope for the
route's audience, the same token expired, garbage, a valid token without any scope, or a valid
token while the issuer's keys cannot be fetched. Each response must be no 5xx (but the
documented 503 of that outage), a status the operation documents, with a body matching that
status's schema; an authentication error (400/401/403 with an RFC 6750 code) must carry a
``Bearer`` challenge; each kind gets the statuses it should (expired: 401, unscoped: 403, no
keys: 503 with ``Retry-After``, ...), and a valid token with schema-valid data must succeed.

One known strictness is worked around, not hidden: JSON Schema's ``integer`` admits ``1.0``,
which the API refuses (400 ``invalid_body``, "Expected `int`, got `float`"). Schema-valid
bodies are sent with integral floats written as integers, so that the success property holds;
invalid bodies keep them, so the refusal stays exercised.

Deterministic (``derandomize``, no example database) and bounded, like ``test_fuzz.py``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final
from urllib.parse import unquote

import httpx
import pytest
import respx
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from litestar import Litestar
from litestar.testing import TestClient
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from resource_api.app import create_app
from resource_api.settings import load_settings
from resource_api.storage import OrderItem, SqliteStore
from tests.support import ENDPOINT, NOW, SHOPPING, STORE, FakeClock, FakeIssuer

_SETTINGS: Final = settings(
    derandomize=True,
    database=None,
    deadline=None,
    max_examples=25,
    suppress_health_check=list(HealthCheck),
)
_ALL_SCOPES: Final = "shopping:read shopping:write store:read store:write read:members"
_AUTH_ERRORS: Final = {"invalid_request", "invalid_token", "insufficient_scope", "unauthorized"}
_EXPECTED: Final = {  # statuses each kind may get, besides a routing 404 on a negated path
    "valid": {200, 201, 400, 404, 413},
    "expired": {401},
    "garbage": {400, 401},
    "unscoped": {403},
    "keys_unavailable": {503},
}
_CHECKS: Final = [
    not_a_server_error,  # first: dropped for keys_unavailable
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


def _document() -> dict[str, Any]:
    """The document the app serves, built in-process (no request, no lifespan)."""
    app = create_app(load_settings({"LOGTO_ENDPOINT": ENDPOINT}))
    document: dict[str, Any] = app.openapi_schema.to_schema()
    return document


SCHEMA: Final = schemathesis.openapi.from_dict(_document())
OPERATIONS: Final = [
    pytest.param(method.upper(), path, id=f"{method.upper()} {path}")
    for path, item in SCHEMA.raw_schema["paths"].items()
    for method in item
    if method in {"get", "post", "put", "patch", "delete"}
]


def _audience_claims(path: str, org_id: str | None) -> dict[str, Any]:
    """The ``aud`` (and ``organization_id``) a token needs for ``path``."""
    if path.startswith("/organizations/{org_id}/store"):
        return {"aud": STORE, "organization_id": org_id}
    if path.startswith("/organizations/"):
        return {"aud": f"urn:logto:organization:{org_id}"}
    if path.startswith("/store"):
        return {"aud": STORE}
    return {"aud": SHOPPING}


def _valid(issuer: FakeIssuer, path: str, org_id: str | None) -> str:
    return f"Bearer {issuer.sign(scope=_ALL_SCOPES, **_audience_claims(path, org_id))}"


def _expired(issuer: FakeIssuer, path: str, org_id: str | None) -> str:
    claims = _audience_claims(path, org_id)
    token = issuer.sign(scope=_ALL_SCOPES, iat=int(NOW) - 7200, exp=int(NOW) - 3600, **claims)
    return f"Bearer {token}"


_visible_ascii = st.characters(min_codepoint=0x20, max_codepoint=0x7E)
_token68 = st.text(
    alphabet=st.sampled_from(
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~+/="
    ),
    min_size=1,
    max_size=80,
)
_segment = st.text(
    alphabet=st.sampled_from("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"),
    max_size=40,
)
_GARBAGE: Final = st.one_of(
    st.builds("Bearer {}".format, _token68),
    st.builds("Bearer {}.{}.{}".format, _segment, _segment, _segment),
    st.text(alphabet=_visible_ascii, max_size=60).map(str.strip),
    st.builds("Basic {}".format, _token68),
)

KINDS: Final = ("valid", "expired", "garbage", "unscoped", "keys_unavailable")


def _authorization(
    kind: str, issuer: FakeIssuer, path: str, org_id: str | None, data: st.DataObject
) -> str:
    """The ``Authorization`` value of ``kind`` for ``path`` (empty: send none)."""
    if kind in {"valid", "keys_unavailable"}:
        return _valid(issuer, path, org_id)
    if kind == "expired":
        return _expired(issuer, path, org_id)
    if kind == "unscoped":
        return f"Bearer {issuer.sign(scope=None, **_audience_claims(path, org_id))}"
    return data.draw(_GARBAGE, label="authorization")


@pytest.fixture
def fuzz_client(
    kind: str,
    tmp_path: Path,
    issuer: FakeIssuer,
    clock: FakeClock,
    respx_router: respx.MockRouter,
) -> Iterator[TestClient[Litestar]]:
    """The app over a temporary SQLite file and the respx issuer, started once per test; for
    ``keys_unavailable`` the issuer's JWKS answers 500 from the start."""
    if kind == "keys_unavailable":
        issuer.jwks_response = httpx.Response(500)
    database = tmp_path / "api.sqlite3"
    store = SqliteStore(database, clock=clock)

    async def seed() -> None:
        for _ in range(3):  # orders 1-3 are the token subject's, so GET finds some
            await store.create_order("user-alice", [OrderItem(sku="tea", quantity=1)], None)
        await store.create_product("acme", "Acme coffee", 900)

    asyncio.run(seed())
    settings_ = load_settings({"LOGTO_ENDPOINT": ENDPOINT, "RESOURCE_API_DATABASE": str(database)})
    try:
        with TestClient(create_app(settings_, clock=clock, store=store)) as client:
            yield client
    finally:
        asyncio.run(store.close())


def _negated(case: schemathesis.Case[Any], *, reads_headers: bool) -> set[str]:
    """Where schemathesis generated invalid data, ignoring headers unless the operation reads
    one besides Authorization (which is ours): ``Idempotency-Key`` on the creating POSTs."""
    if case.meta is None:
        return set()
    return {
        location.value
        for location, info in case.meta.components.items()
        if info.mode is GenerationMode.NEGATIVE and (reads_headers or location.value != "header")
    }


def _integral_floats_as_ints(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, list):
        return [_integral_floats_as_ints(item) for item in value]
    if isinstance(value, dict):
        return {key: _integral_floats_as_ints(item) for key, item in value.items()}
    return value


def _check_challenge(response: Any) -> None:
    if response.status_code not in {400, 401, 403}:
        return
    body = response.json()
    if body.get("error") not in _AUTH_ERRORS:
        return  # a body or routing error, not an authentication one
    challenge = response.headers.get("www-authenticate", "")
    assert challenge.split(" ", 1)[0] == "Bearer", (response.status_code, body, challenge)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(("method", "path"), OPERATIONS)
def test_every_response_matches_the_document(
    method: str, path: str, kind: str, fuzz_client: TestClient[Litestar], issuer: FakeIssuer
) -> None:
    operation = SCHEMA[path][method]
    cases = st.one_of(
        operation.as_strategy(generation_mode=GenerationMode.POSITIVE),
        operation.as_strategy(generation_mode=GenerationMode.NEGATIVE),
    )
    protected = bool(operation.definition.raw.get("security"))
    reads_headers = any(p["in"] == "header" for p in operation.definition.raw.get("parameters", []))
    sent_keys: set[str] = set()  # examples may repeat a key with another body: 422

    @_SETTINGS
    @given(case=cases, data=st.data())
    def run(case: schemathesis.Case[Any], data: st.DataObject) -> None:
        kwargs = case.as_transport_kwargs(base_url="http://testserver.local")
        # Schemathesis may negate or drop the security requirement; the kind decides instead.
        headers = {k: v for k, v in kwargs["headers"].items() if k.lower() != "authorization"}
        if protected:
            org_id = (case.path_parameters or {}).get("org_id")  # stored percent-encoded
            org = None if org_id is None else unquote(str(org_id))
            authorization = _authorization(kind, issuer, path, org, data)
            if authorization:
                headers["Authorization"] = authorization
        negated = _negated(case, reads_headers=reads_headers)
        key = next((v for k, v in headers.items() if k.lower() == "idempotency-key"), None)
        reused = key is not None and key.strip(' \t"') in sent_keys
        body = kwargs.get("json")
        if "body" not in negated:
            body = _integral_floats_as_ints(body)
        if key is not None:
            sent_keys.add(key.strip(' \t"'))
        response = fuzz_client.request(
            kwargs["method"],
            kwargs["url"],
            params=kwargs.get("params"),
            headers=headers,
            content=kwargs.get("data"),
            json=body,
        )
        # The documented 503 of an issuer outage is the one 5xx allowed, and only then.
        checks = _CHECKS[1:] if protected and kind == "keys_unavailable" else _CHECKS
        case.validate_response(response, checks=checks, headers=headers)
        _check_challenge(response)
        if not protected:
            return
        status = response.status_code
        routing_miss = status == 404 and "path" in negated
        key_reuse = status == 422 and reused
        assert status in _EXPECTED[kind] or routing_miss or key_reuse, (kind, status, response.text)
        if status == 503:
            assert response.headers["retry-after"].isdigit(), response.headers
        if kind == "valid" and not negated:
            assert status in {200, 201} or (status == 404 and "{order_id}" in path) or key_reuse, (
                status,
                response.text,
            )

    run()
