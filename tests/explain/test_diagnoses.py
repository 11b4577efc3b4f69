"""One test per diagnosis of ``explain``, with real dev-issuer tokens.

For every case: the failing check and its plain-words cause; the explanation's verdict and
``reason`` equal those of a real verifier (its own key set, caches on) plus the route's
authorization; and the output never holds the token, its signature or its payload part.
"""

from __future__ import annotations

import asyncio
import io
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx
import msgspec
import pytest
import respx
from litestar_logto import (
    LOGTO_ALGORITHMS,
    AuthError,
    RemoteKeySet,
    Requirement,
    TokenVerifier,
)
from litestar_logto.__main__ import main
from litestar_logto.requirements import authorize

from tests.dev_issuer.support import SHOPPING, STORE
from tests.explain.conftest import Tokens, parts, resigned, with_header


@dataclass(frozen=True)
class Case:
    """A token, the command's arguments, and what it must say."""

    token: Callable[[Tokens], str]
    args: list[str]
    reason: str | None
    check: str | None
    says: tuple[str, ...] = ()
    offline: bool = False
    endpoint: Callable[[Tokens], str] = field(default=lambda t: t.issuer.endpoint)


def _tamper_signature(token: str) -> str:
    header, payload, signature = parts(token)
    middle = len(signature) // 2
    flipped = "A" if signature[middle] != "A" else "B"
    return f"{header}.{payload}.{signature[:middle]}{flipped}{signature[middle + 1 :]}"


def _custom_domain(tokens: Tokens) -> str:
    return tokens.issuer.endpoint.replace("127.0.0.1", "localhost")


CASES = {
    "opaque": Case(
        lambda t: t.opaque,
        ["--audience", STORE],
        "malformed",
        "structure",
        ("opaque token: it was requested without a resource", f"getAccessToken('{STORE}')"),
    ),
    "bad-structure": Case(
        lambda t: ".".join(parts(t.m2m)[:2]),
        ["--audience", STORE],
        "malformed",
        "structure",
        ("2 dot-separated parts, a JWT has three",),
    ),
    "wrong-typ": Case(
        lambda t: with_header(t.m2m, typ="JWT"),
        ["--audience", STORE],
        "wrong_typ",
        "typ",
        ("looks like an ID token", f"getAccessToken('{STORE}')"),
    ),
    "disallowed-alg": Case(
        lambda t: with_header(t.m2m, alg="HS256"),
        ["--audience", STORE],
        "algorithm_refused",
        "alg",
        ("alg HS256: an unsigned or shared-secret token",),
    ),
    "alg-not-configured": Case(
        lambda t: t.m2m,
        ["--audience", STORE, "--algorithms", "RS256"],
        "algorithm_refused",
        "alg",
        ("the issuer signs with ES384", "add ES384"),
        offline=True,
    ),
    "none-alg": Case(
        lambda t: with_header(t.m2m, alg="none"),
        ["--audience", STORE],
        "algorithm_refused",
        "alg",
        ("alg none: an unsigned or shared-secret token",),
    ),
    "unknown-kid": Case(
        lambda t: with_header(t.m2m, kid="rotated-away"),
        ["--audience", STORE],
        "unknown_kid",
        "kid",
        ("rotated-away is not in the issuer's key set now", "rotated out", "EC P-384, ES384"),
    ),
    "bad-signature": Case(
        lambda t: _tamper_signature(t.m2m),
        ["--audience", STORE],
        "bad_signature",
        "signature",
        ("altered after signing",),
    ),
    "issuer-trailing-slash": Case(
        lambda t: resigned(t.m2m, iss=f"{t.issuer.issuer}/"),
        ["--audience", STORE],
        "wrong_issuer",
        "iss",
        ("issuer differs", "/oidc/, API expects", "trailing slash"),
        offline=True,
    ),
    "issuer-missing-oidc": Case(
        lambda t: resigned(t.m2m, iss=t.issuer.endpoint),
        ["--audience", STORE],
        "wrong_issuer",
        "iss",
        ("issuer differs", "lacks /oidc"),
        offline=True,
    ),
    "issuer-custom-domain": Case(
        lambda t: t.m2m,
        ["--audience", STORE],
        "wrong_issuer",
        "iss",
        ("issuer differs", "another origin", "custom domain"),
        offline=True,
        endpoint=_custom_domain,
    ),
    "wrong-audience": Case(
        lambda t: t.m2m,
        ["--audience", SHOPPING],
        "wrong_audience",
        "aud",
        (f"token is for {STORE}; the API is {SHOPPING}", "another API resource"),
    ),
    "organization-token-on-global-api": Case(
        lambda t: t.organization,
        ["--audience", STORE],
        "wrong_audience",
        "aud",
        ("urn:logto:organization:acme", "an organization token (organization acme"),
    ),
    "expired": Case(
        lambda t: resigned(t.m2m, iat=int(time.time()) - 3780, exp=int(time.time()) - 180),
        ["--audience", STORE],
        "expired",
        "lifetime",
        ("expired 3 min ago", "get a new token (refresh"),
        offline=True,
    ),
    "not-yet-valid": Case(
        lambda t: resigned(t.m2m, nbf=int(time.time()) + 600),
        ["--audience", STORE],
        "not_yet_valid",
        "lifetime",
        ("not valid yet: valid in 10 min", "clock"),
        offline=True,
    ),
    "missing-scope": Case(
        lambda t: t.m2m,
        ["--audience", STORE, "POST", "/store/products", "--scope", "store:write"],
        "missing_scope",
        "scopes",
        ("scope store:write missing: ", "assign a role that grants it in Logto", "new token"),
    ),
    "organization-mismatch": Case(
        lambda t: t.organization_api,
        ["--audience", STORE, "--scope", "store:read", "--organization", "globex"],
        "wrong_organization",
        "organization",
        ("token organization acme; route is for organization globex", "another organization"),
    ),
    "organization-bound-token-on-global-route": Case(
        lambda t: t.organization_api,
        ["--audience", STORE, "GET", "/store/products", "--scope", "store:read"],
        "organization_token",
        "organization",
        ("token organization acme; route is global", "without organization_id"),
    ),
    "global-token-on-organization-route": Case(
        lambda t: t.m2m,
        ["--audience", STORE, "--scope", "store:read", "--organization", "acme"],
        "no_organization",
        "organization",
        ("token is global; route is for organization acme", "organization_id=acme"),
    ),
    "accepted": Case(
        lambda t: t.m2m,
        ["--audience", STORE, "GET", "/store/products", "--scope", "store:read"],
        None,
        None,
        ("ACCEPTED (200)",),
    ),
}


def _run(tokens: Tokens, case: Case, token: str, *extra: str) -> tuple[int, str]:
    args = ["explain", "-", "--endpoint", case.endpoint(tokens), *case.args, *extra]
    if case.offline:
        args += ["--jwks", str(tokens.jwks_file)]
    out, err = io.StringIO(), io.StringIO()
    status = main(args, {}, stdin=io.StringIO(token), stdout=out, stderr=err)
    assert err.getvalue() == ""
    return status, out.getvalue()


async def _real_verdict(tokens: Tokens, case: Case, token: str) -> str | None:
    """What the API itself decides: a verifier of its own (default policy, caches on)."""
    endpoint = case.endpoint(tokens)
    audiences = [case.args[i + 1] for i, a in enumerate(case.args) if a == "--audience"]
    algorithms = LOGTO_ALGORITHMS
    if "--algorithms" in case.args:
        algorithms = frozenset(case.args[case.args.index("--algorithms") + 1].split(","))
    scopes = tuple(case.args[i + 1] for i, a in enumerate(case.args) if a == "--scope")
    organization = (
        case.args[case.args.index("--organization") + 1] if "--organization" in case.args else None
    )
    jwks_document = tokens.jwks_file.read_bytes()
    with respx.mock(assert_all_called=False) as router:
        if case.offline:  # the same key set as the file, served where the endpoint says
            issuer = f"{endpoint}/oidc"
            router.get(f"{issuer}/.well-known/openid-configuration").respond(
                json={"issuer": issuer, "jwks_uri": f"{issuer}/jwks"}
            )
            router.get(f"{issuer}/jwks").respond(content=jwks_document)
        else:
            router.route().pass_through()
        async with httpx.AsyncClient() as http:
            keys = RemoteKeySet(endpoint, http_client=http, algorithms=algorithms)
            verifier = TokenVerifier(keys, algorithms=algorithms)
            try:
                access_token = await verifier.verify(token, audience=audiences[0])
                if scopes or organization:
                    requirement = Requirement(
                        "api", scopes, organization_param="org" if organization else None
                    )
                    authorize(access_token, requirement, organization)
            except AuthError as refused:
                return refused.reason
    return None


@pytest.mark.parametrize("name", list(CASES))
def test_diagnosis(tokens: Tokens, name: str) -> None:
    case = CASES[name]
    token = case.token(tokens)
    status, text = _run(tokens, case, token)
    json_status, json_text = _run(tokens, case, token, "--json")
    explanation = msgspec.json.decode(json_text)

    # agrees with the API's own decision
    real_reason = asyncio.run(_real_verdict(tokens, case, token))
    assert (explanation["reason"], explanation["accepted"]) == (real_reason, real_reason is None)
    assert explanation["reason"] == case.reason
    assert status == json_status == (0 if case.reason is None else 1)

    # the failing check, the checks before it ok, the ones after it skipped
    verdicts = {check["name"]: check["verdict"] for check in explanation["checks"]}
    if case.check is None:
        assert set(verdicts.values()) == {"ok"}
    else:
        names = list(verdicts)
        failed_at = names.index(case.check)
        assert [verdicts[n] for n in names[:failed_at]] == ["ok"] * failed_at
        assert verdicts[case.check] == "fail"
        assert {verdicts[n] for n in names[failed_at + 1 :]} <= {"skipped"}
        failed = explanation["checks"][failed_at]
        assert failed["cause"]
        assert failed["fix"]
    flat = " ".join(text.split())
    for words in case.says:
        assert words in flat, text

    # never the token, its signature or its encoded payload
    for output in (text, json_text):
        assert token not in output
        for part in parts(token)[1:]:
            if len(part) >= 8:
                assert part not in output
    if "." not in token:
        assert token[:8] not in text


def test_key_details_never_hold_key_material(tokens: Tokens) -> None:
    """The kid check names the key by type and curve; the JSON has no x/y/n/e."""
    case = CASES["accepted"]
    _, json_text = _run(tokens, case, tokens.m2m, "--json")
    explanation = json.loads(json_text)
    assert explanation["key"]["kty"] == "EC"
    assert explanation["key"]["crv"] == "P-384"
    assert explanation["key"]["algorithms"] == ["ES384"]
    published = httpx.get(f"{tokens.issuer.issuer}/jwks").json()["keys"]
    for jwk in published:
        for name in ("x", "y", "n", "e"):
            if name in jwk:
                assert jwk[name] not in json_text
