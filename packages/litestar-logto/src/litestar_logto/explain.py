"""Why was this access token refused? Each check of the verifier, in its order, in plain words.

Framework-free. The decision is never made here: the caller runs the real verifier (and
:func:`~.requirements.authorize` for a route) and hands over what it raised, or ``None`` when
the token was accepted. :func:`explain` maps that refusal's ``reason`` to the check that
raised it: the checks before it passed (the verifier runs them in this order and stops at the
first failure), the failing one gets a likely cause and a fix, the later ones are skipped. So
an explanation always agrees with the API's answer.

What it shows of the token: header fields, claim values, times; never the token, its
signature or a whole encoded part. Values are shortened and stripped of control characters.

The command line (``python -m litestar_logto explain``) lives in ``__main__``; the service logs
:meth:`Explanation.for_log` at DEBUG when it refuses a token.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, Literal, Protocol

import msgspec

from .claims import ORGANIZATION_AUDIENCE_PREFIX
from .errors import AuthError, InsufficientScope
from .jwks import RemoteKeySet
from .requirements import Requirement, authorize
from .verifier import TokenVerifier, VerifierPolicy

Verdict = Literal["ok", "fail", "skipped"]

CHECKS: Final = (
    "structure",
    "alg",
    "typ",
    "crit",
    "kid",
    "signature",
    "iss",
    "claims",
    "lifetime",
    "aud",
    "organization",
    "scopes",
)
"""Every check, in the order the verifier (then the route's authorization) runs them."""

_CHECK_OF_REASON: Final[Mapping[str, str]] = {
    "oversized": "structure",
    "malformed": "structure",
    "bad_base64": "structure",
    "bad_json": "structure",
    "malformed_header": "structure",
    "algorithm_refused": "alg",
    "wrong_typ": "typ",
    "crit_header": "crit",
    "bad_kid": "kid",
    "unknown_kid": "kid",
    "unknown_kid_cooldown": "kid",
    "keys_unavailable": "kid",
    "algorithm_key_mismatch": "signature",
    "bad_signature": "signature",
    "malformed_payload": "iss",
    "wrong_issuer": "iss",
    "expired": "lifetime",
    "not_yet_valid": "lifetime",
    "issued_in_future": "lifetime",
    "wrong_audience": "aud",
    "no_organization": "organization",
    "wrong_organization": "organization",
    "organization_token": "organization",
    "missing_scope": "scopes",
}
"""Which check raises each ``reason`` (claim type reasons, ``bad_<claim>``/``no_<claim>``, are
the ``claims`` check's)."""

_TITLES: Final[Mapping[str, str]] = {
    "structure": "three base64url parts, header and payload JSON",
    "alg": "signature algorithm allowed",
    "typ": "an access token (typ at+jwt)",
    "crit": "no critical extension",
    "kid": "key id in the issuer's key set",
    "signature": "signature",
    "iss": "issuer",
    "claims": "required claims present and well-formed",
    "lifetime": "lifetime (exp, nbf, iat) with the clock skew",
    "aud": "audience (API resource indicator)",
    "organization": "organization binding",
    "scopes": "scopes the route requires",
}
_MAX_SHOWN: Final = 120
_UNPRINTABLE: Final = re.compile(r"[^\x20-\x7e]")
_OPAQUE: Final = re.compile(r"[A-Za-z0-9_~+/-]{16,}={0,2}")


class KeyInfo(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """A public key of the issuer described without its material."""

    kid: str
    kty: str
    """``EC``, ``RSA`` or ``OKP``."""
    crv: str | None = None
    """The curve of an EC or OKP key (``P-384``, ``Ed25519``)."""
    bits: int | None = None
    """The modulus size of an RSA key."""
    algorithms: tuple[str, ...] = ()
    """The algorithms the API would verify with it."""

    def describe(self) -> str:
        """``EC P-384, ES384`` and the like."""
        shape = self.crv or (f"{self.bits} bits" if self.bits else "")
        return f"{self.kty} {shape}, {'/'.join(self.algorithms)}".replace("  ", " ")


class ApiConfig(msgspec.Struct, frozen=True, kw_only=True):
    """What the API expects of a token (the same values the service is configured with)."""

    issuer: str
    audiences: tuple[str, ...]
    algorithms: tuple[str, ...]
    leeway: float
    max_token_bytes: int = 8 * 1024


class Route(msgspec.Struct, frozen=True, kw_only=True):
    """What one route requires beyond a valid token of its audience."""

    method: str | None = None
    path: str | None = None
    scopes: tuple[str, ...] = ()
    organization: str | None = None
    """The organization the route is for (an organization-level API route), if any."""
    organization_tokens: bool = False
    """A global route that also takes organization-level tokens."""


class Check(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """One check: its verdict and, for a failure, the likely cause and the fix."""

    name: str
    title: str
    verdict: Verdict
    detail: str = ""
    """What was seen (values from the token, never the token)."""
    cause: str | None = None
    fix: str | None = None


class Explanation(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """The verdict of every check and the API's answer."""

    accepted: bool
    status: int
    """The HTTP status the API answers: 200, 401, 403 or 503."""
    reason: str | None
    """The verifier's ``reason`` of the refusal (``None`` when accepted)."""
    description: str | None
    """The API's own ``error_description`` of the refusal."""
    checks: tuple[Check, ...]
    route: Route | None = None
    key: KeyInfo | None = None
    """The key the token names, if the issuer publishes it (command line only)."""
    key_set: tuple[KeyInfo, ...] = ()
    """The issuer's usable keys (command line only)."""
    skipped_keys: tuple[str, ...] = ()
    """Why published keys are unusable by the API (command line only)."""

    @property
    def failed(self) -> Check | None:
        """The failing check, if any."""
        return next((check for check in self.checks if check.verdict == "fail"), None)

    def for_log(self) -> dict[str, Any]:
        """The explanation for a log record: no key-set details, plain JSON types."""
        data: dict[str, Any] = msgspec.to_builtins(self)
        for name in ("key", "key_set", "skipped_keys"):
            data.pop(name, None)
        return data


def check_of_reason(reason: str) -> str:
    """The check that raises ``reason``."""
    known = _CHECK_OF_REASON.get(reason)
    if known is not None:
        return known
    if reason.startswith(("bad_", "no_")):
        return "claims"
    return "structure"


def explain(
    token: str,
    refusal: AuthError | None,
    config: ApiConfig,
    *,
    now: float,
    route: Route | None = None,
    describe_key: Callable[[str], KeyInfo | None] | None = None,
) -> Explanation:
    """Explain the API's decision ``refusal`` (``None``: accepted) about ``token``."""
    view = _TokenView.of(token)
    failing = check_of_reason(refusal.reason) if refusal is not None else None
    failed_at = CHECKS.index(failing) if failing is not None else len(CHECKS)
    context = _Context(
        view=view,
        config=config,
        route=route,
        now=now,
        refusal=refusal,
        describe_key=describe_key,
    )
    checks = []
    for index, name in enumerate(CHECKS):
        if name in {"organization", "scopes"} and route is None and index != failed_at:
            checks.append(
                Check(
                    name=name,
                    title=_TITLES[name],
                    verdict="skipped",
                    detail="skipped: no route given (--scope / --organization)",
                )
            )
            continue
        if index > failed_at:
            checks.append(
                Check(
                    name=name,
                    title=_TITLES[name],
                    verdict="skipped",
                    detail="skipped: an earlier check failed",
                )
            )
            continue
        detail, cause, fix = _DESCRIBE[name](context, failed=index == failed_at)
        checks.append(
            Check(
                name=name,
                title=_TITLES[name],
                verdict="fail" if index == failed_at else "ok",
                detail=detail,
                cause=cause if index == failed_at else None,
                fix=fix if index == failed_at else None,
            )
        )
    kid = view.header_str("kid")
    key = describe_key(kid) if describe_key is not None and kid else None
    return Explanation(
        accepted=refusal is None,
        status=200 if refusal is None else refusal.status_code,
        reason=None if refusal is None else refusal.reason,
        description=None if refusal is None else refusal.description,
        checks=tuple(checks),
        route=route,
        key=key,
    )


# -- looking at the token (display only: the decision is the verifier's) ------------------------


class _TokenView:
    """The token's parts, decoded leniently for display."""

    def __init__(self, parts: list[str], header: object, payload: object, length: int) -> None:
        self.parts = parts
        self.header = header if isinstance(header, dict) else None
        self.raw_header = header
        self.payload = payload if isinstance(payload, dict) else None
        self.length = length

    @classmethod
    def of(cls, token: str) -> _TokenView:
        parts = token.split(".")
        header = _json_part(parts[0]) if len(parts) >= 2 else None  # noqa: PLR2004
        payload = _json_part(parts[1]) if len(parts) >= 2 else None  # noqa: PLR2004
        return cls(parts, header, payload, len(token))

    def header_str(self, name: str) -> str | None:
        value = (self.header or {}).get(name)
        return value if isinstance(value, str) else None

    def claim(self, name: str) -> object:
        return (self.payload or {}).get(name)


def _json_part(part: str) -> object:
    try:
        raw = base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))
        return json.loads(raw)
    except (binascii.Error, ValueError, RecursionError):
        return _UNDECODABLE


_UNDECODABLE: Final = object()


def shown(value: object) -> str:
    """A token value made safe to print: quoted if a string, shortened, printable ASCII only."""
    text = value if isinstance(value, str) else json.dumps(value, default=repr)
    text = _UNPRINTABLE.sub("?", text)
    if len(text) > _MAX_SHOWN:
        text = text[: _MAX_SHOWN - 1] + "…"
    return text


@dataclass(frozen=True, slots=True, kw_only=True)
class _Context:
    view: _TokenView
    config: ApiConfig
    route: Route | None
    now: float
    refusal: AuthError | None
    describe_key: Callable[[str], KeyInfo | None] | None

    @property
    def reason(self) -> str | None:
        return self.refusal.reason if self.refusal is not None else None

    @property
    def audience(self) -> str:
        """The API resource indicator a token should be requested for."""
        token_audiences = _audiences(self.view.claim("aud"))
        matching = [aud for aud in self.config.audiences if aud in token_audiences]
        return (matching or list(self.config.audiences) or ["<API resource indicator>"])[0]


Described = tuple[str, str | None, str | None]
"""(detail, likely cause, fix)"""


class _Describer(Protocol):
    def __call__(self, ctx: _Context, *, failed: bool) -> Described: ...


# -- one function per check ------------------------------------------------------------------


def _structure(ctx: _Context, *, failed: bool) -> Described:  # noqa: PLR0911 - one per shape
    view = ctx.view
    if not failed:
        return (
            "JWS compact: three base64url parts, header and payload are JSON objects",
            None,
            None,
        )
    reason = ctx.reason
    count = len(view.parts)
    if reason == "oversized":
        return (
            f"{view.length} characters, more than the {ctx.config.max_token_bytes} accepted",
            "the token carries too many claims (custom claims, very many scopes or roles)",
            "request fewer scopes or trim the custom claims in Logto's token customizer",
        )
    if count == 1 and _OPAQUE.fullmatch(view.parts[0]):
        return (
            f"one part of {view.length} characters, no dots: an opaque token",
            (
                "opaque token: it was requested without a resource, so Logto issued a token only "
                "its userinfo endpoint understands"
            ),
            (
                f"ask for getAccessToken('{ctx.audience}') (the API resource indicator), and list "
                "that resource in the client's resources"
            ),
        )
    if count == 5:  # noqa: PLR2004 - JWE compact serialisation
        return (
            "five parts: an encrypted token (JWE)",
            "Logto signs access tokens, it does not encrypt them: this token comes from elsewhere",
            "send the access token Logto issued for this API",
        )
    if count != 3:  # noqa: PLR2004
        return (
            f"{count} dot-separated parts, a JWT has three",
            "the token was cut or pasted with extra text (a line break, quotes, 'Bearer ')",
            "copy the whole access token and nothing else",
        )
    if reason == "malformed":
        return (
            (
                "three parts, but characters outside base64url (padding '=', '+', '/', spaces or "
                "non-ASCII)"
            ),
            "the token was re-encoded (standard base64 instead of base64url) or damaged",
            "send the token exactly as the issuer returned it",
        )
    if view.header is None or reason == "malformed_header":
        what = "is not a JSON object" if view.raw_header is not _UNDECODABLE else "does not decode"
        return (
            f"the header {what}",
            "the token was altered or is not a JWT",
            "send the token exactly as the issuer returned it",
        )
    if view.payload is None and view.raw_header is not _UNDECODABLE:
        return (
            "the header decodes, the payload is not valid base64url JSON",
            "the token was altered or truncated",
            "send the token exactly as the issuer returned it",
        )
    return (
        "a part is not canonical base64url (the signature, or bits after the last character)",
        "the token was re-encoded or altered",
        "send the token exactly as the issuer returned it",
    )


def _alg(ctx: _Context, *, failed: bool) -> Described:
    alg = ctx.view.header_str("alg")
    allowed = ", ".join(sorted(ctx.config.algorithms))
    if not failed:
        return f"{shown(alg)} (allowed: {allowed})", None, None
    raw = (ctx.view.header or {}).get("alg")
    if alg is not None and (alg.lower() == "none" or alg.upper().startswith("HS")):
        cause = f"alg {shown(alg)}: an unsigned or shared-secret token, never a Logto access token"
        fix = "send the access token Logto issued; the API never accepts such algorithms"
    elif alg is not None and alg in {"ES256", "ES384", "ES512", "RS256"}:
        cause = (
            f"the issuer signs with {alg} (its signing key was rotated to another type?) and the "
            f"API allows only {allowed}"
        )
        fix = f"add {alg} to the API's allowed algorithms (LOGTO_ALGORITHMS / --algorithms)"
    else:
        cause = f"alg {shown(raw)} is not one the API allows ({allowed})"
        fix = "send an access token signed by Logto (ES384 by default, RS256 for an RSA key)"
    return f"{shown(raw)} (allowed: {allowed})", cause, fix


def _typ(ctx: _Context, *, failed: bool) -> Described:
    raw = (ctx.view.header or {}).get("typ")
    if not failed:
        return f"{shown(raw)}", None, None
    payload = ctx.view.payload or {}
    if "nonce" in payload or "at_hash" in payload or raw == "JWT":
        cause = (
            f"typ {shown(raw)}: this looks like an ID token (it says who signed in, to the client "
            "app), not an access token for an API"
        )
    else:
        cause = f"typ {shown(raw)}: not an access token (RFC 9068 access tokens are at+jwt)"
    fix = f"send the access token: getAccessToken('{ctx.audience}'), not the ID token"
    return f"{shown(raw)}, expected at+jwt", cause, fix


def _crit(ctx: _Context, *, failed: bool) -> Described:
    if not failed:
        return "none", None, None
    crit = (ctx.view.header or {}).get("crit")
    return (
        f"crit {shown(crit)}",
        "the token requires extensions the API does not understand (RFC 7515 §4.1.11)",
        "send an access token issued by Logto; it never sets crit",
    )


def _kid(ctx: _Context, *, failed: bool) -> Described:
    kid = ctx.view.header_str("kid")
    info = ctx.describe_key(kid) if ctx.describe_key is not None and kid else None
    if not failed:
        if info is not None:
            return f"{shown(kid)}: {info.describe()}", None, None
        return f"{shown(kid)} is in the issuer's key set", None, None
    reason = ctx.reason
    if reason == "bad_kid":
        raw = (ctx.view.header or {}).get("kid")
        return (
            f"kid {shown(raw)}",
            "the header names no key (kid missing, empty or not a string)",
            "send an access token issued by Logto; it always names its signing key",
        )
    if reason in {"keys_unavailable", "unknown_kid_cooldown"}:
        return (
            f"{shown(kid)}: the issuer's key set cannot be obtained now",
            (
                "the issuer cannot be reached (network, DNS, TLS) or answers something that is not "
                "its key set"
            ),
            (
                "check LOGTO_ENDPOINT and that the issuer's /oidc/.well-known/openid-configuration "
                "and jwks_uri answer from this machine; then try again"
            ),
        )
    return (
        f"{shown(kid)} is not in the issuer's key set now",
        (
            "the key was rotated out (the token was signed before a rotation and the old key is "
            "no longer published), or the token comes from another issuer or tenant"
        ),
        "get a new token; if it keeps failing, compare the token's iss with the API's issuer",
    )


def _signature(ctx: _Context, *, failed: bool) -> Described:
    kid = ctx.view.header_str("kid")
    info = ctx.describe_key(kid) if ctx.describe_key is not None and kid else None
    alg = ctx.view.header_str("alg")
    if not failed:
        return f"verified with {shown(kid)} ({shown(alg)})", None, None
    if ctx.reason == "algorithm_key_mismatch":
        key = info.describe() if info is not None else "another type"
        return (
            f"alg {shown(alg)}, but key {shown(kid)} is {key}",
            "the header's algorithm does not fit the key it names (a forged or re-signed token)",
            "send the access token exactly as Logto issued it",
        )
    return (
        f"does not verify with key {shown(kid)}",
        (
            "the token was altered after signing, or was signed by another issuer's key that "
            "carries the same kid"
        ),
        (
            "send the access token exactly as the issuer returned it; get a new one from the "
            "issuer the API trusts"
        ),
    )


def _iss(ctx: _Context, *, failed: bool) -> Described:
    iss = ctx.view.claim("iss")
    expected = ctx.config.issuer
    if not failed:
        return f"{shown(iss)}", None, None
    if ctx.reason == "malformed_payload":
        return (
            "the payload is not a JSON object",
            "the token was built by hand or altered",
            "send the access token exactly as Logto issued it",
        )
    detail = f"token says {shown(iss)}, API expects {expected}"
    cause, fix = _issuer_difference(iss, expected)
    return detail, f"issuer differs: {cause}", fix


def _issuer_difference(iss: object, expected: str) -> tuple[str, str]:
    endpoint = expected.removesuffix("/oidc")
    if not isinstance(iss, str):
        return "the token has no iss claim", "send an access token issued by Logto"
    if iss.rstrip("/") == expected:
        return (
            "a trailing slash: issuers are compared exactly, character by character",
            (
                "the token's issuer ends in '/': it was not issued by this Logto endpoint as "
                "configured (a proxy rewriting the issuer URL?); LOGTO_ENDPOINT must be the URL "
                "whose /oidc is exactly the token's iss"
            ),
        )
    if expected == f"{iss}/oidc":
        return (
            "the token's issuer lacks /oidc, which every Logto issuer ends with",
            (
                "this is not a Logto access token of this tenant; get the token from the tenant's "
                "/oidc/token endpoint (the SDK's getAccessToken)"
            ),
        )
    if iss.endswith("/oidc/oidc") or expected.endswith("/oidc/oidc"):
        return (
            "LOGTO_ENDPOINT ends in /oidc, but the API adds /oidc itself",
            f"set LOGTO_ENDPOINT to {endpoint.removesuffix('/oidc')} (without /oidc)",
        )
    token_parts = _split_origin(iss)
    expected_parts = _split_origin(expected)
    if token_parts[1] == expected_parts[1] and token_parts[0] != expected_parts[0]:
        return (
            (
                f"another origin for the same issuer path: {token_parts[0]} vs {expected_parts[0]} "
                "(a custom domain, or http/https, or localhost vs 127.0.0.1)"
            ),
            (
                "Logto writes into iss the domain the client used: set LOGTO_ENDPOINT to "
                f"{shown(iss.removesuffix('/oidc'))}, or make the client use {endpoint}"
            ),
        )
    return (
        "another issuer (another Logto tenant or environment)",
        (
            f"get the token from {endpoint}, or point LOGTO_ENDPOINT at "
            f"{shown(iss.removesuffix('/oidc'))}"
        ),
    )


def _split_origin(url: str) -> tuple[str, str]:
    scheme, sep, rest = url.partition("://")
    host, slash, path = rest.partition("/")
    return f"{scheme}{sep}{host}", f"{slash}{path}"


def _claims(ctx: _Context, *, failed: bool) -> Described:
    if not failed:
        return "sub, client_id, aud, exp, iat present; scope a string", None, None
    reason = ctx.reason or ""
    claim = reason.removeprefix("bad_").removeprefix("no_")
    missing = reason.startswith("no_") or claim not in (ctx.view.payload or {})
    return (
        f"'{claim}' is {'missing' if missing else 'not of the right type'}",
        (
            "the token was not issued by Logto as an access token (Logto always sets sub, "
            "client_id, aud, exp and iat)"
        ),
        "send the access token Logto issued for this API",
    )


def _lifetime(ctx: _Context, *, failed: bool) -> Described:
    exp, nbf, iat = (_number(ctx.view.claim(name)) for name in ("exp", "nbf", "iat"))
    leeway = ctx.config.leeway
    now = ctx.now
    parts = []
    if exp is not None:
        parts.append(f"exp {_at(exp)} ({_relative(exp - now)})")
    if nbf is not None:
        parts.append(f"nbf {_at(nbf)}")
    if iat is not None:
        parts.append(f"iat {_at(iat)} ({_relative(iat - now)})")
    parts.append(f"now {_at(now)}, clock skew allowed {leeway:g} s")
    detail = "; ".join(parts)
    if not failed:
        return detail, None, None
    if ctx.reason == "expired" and exp is not None:
        return (
            detail,
            f"expired {_duration(now - exp)} ago",
            (
                "get a new token (refresh: the SDK's getAccessToken does it with the refresh "
                "token; a machine-to-machine client requests a new one)"
            ),
        )
    start = nbf if ctx.reason == "not_yet_valid" and nbf is not None else iat
    ahead = _duration((start or now) - now)
    what = "not valid yet" if ctx.reason == "not_yet_valid" else "issued in the future"
    return (
        detail,
        (
            f"{what}: valid in {ahead}; the issuer's clock is ahead of this machine's (or this "
            "machine's is behind) by more than the allowed skew"
        ),
        "synchronise both clocks (NTP); raise the skew (LOGTO_LEEWAY_SECONDS) only a little",
    )


def _aud(ctx: _Context, *, failed: bool) -> Described:
    audiences = _audiences(ctx.view.claim("aud"))
    shown_aud = ", ".join(shown(aud) for aud in audiences) or "none"
    expected = ", ".join(ctx.config.audiences)
    if not failed:
        return f"{shown_aud}", None, None
    detail = f"token is for {shown_aud}; the API is {expected}"
    organizations = [aud for aud in audiences if aud.startswith(ORGANIZATION_AUDIENCE_PREFIX)]
    if organizations:
        org = organizations[0].removeprefix(ORGANIZATION_AUDIENCE_PREFIX)
        return (
            detail,
            (
                f"an organization token (organization {shown(org)}, requested with "
                "getOrganizationToken): it is for the organization's own permissions, not for an "
                "API resource"
            ),
            (
                f"ask for getAccessToken('{ctx.audience}'); for an organization-level API token, "
                f"the refresh grant with resource={ctx.audience} and organization_id={shown(org)}"
            ),
        )
    near = [
        aud for aud in audiences if aud.rstrip("/") in {a.rstrip("/") for a in ctx.config.audiences}
    ]
    if near:
        return (
            detail,
            "the indicators differ only by a trailing slash: they are compared exactly",
            (
                "use the same resource indicator in Logto, in the client and in the API's "
                "configuration"
            ),
        )
    return (
        detail,
        "the token was requested for another API resource",
        (
            f"ask for getAccessToken('{ctx.audience}') and list that resource in the client's "
            "resources (or check the API's resource indicator configuration)"
        ),
    )


def _organization(ctx: _Context, *, failed: bool) -> Described:
    route = ctx.route or Route()
    token_org = ctx.view.claim("organization_id")
    token_text = f"token organization {shown(token_org)}" if token_org else "token is global"
    route_text = (
        f"route is for organization {route.organization}"
        if route.organization
        else "route is global"
    )
    detail = f"{token_text}; {route_text}"
    if not failed:
        return detail, None, None
    if ctx.reason == "organization_token":
        return (
            detail,
            (
                "an organization-level token (requested with organization_id) on a global route: "
                "its permissions come from the user's roles in that one organization (403)"
            ),
            (
                f"ask for a global token of the API: getAccessToken('{ctx.audience}') without "
                "organization_id"
            ),
        )
    if ctx.reason == "no_organization":
        return (
            detail,
            (
                "a global token on an organization route: the route needs the permissions of the "
                "user's roles in that organization"
            ),
            (
                f"ask for an organization-level token: the refresh grant with resource="
                f"{ctx.audience} and organization_id={route.organization}"
            ),
        )
    return (
        detail,
        "the token is for another organization",
        f"ask for a token with organization_id={route.organization} (the user must be a member)",
    )


def _scopes(ctx: _Context, *, failed: bool) -> Described:
    route = ctx.route or Route()
    granted = ctx.view.claim("scope")
    granted_text = shown(granted) if isinstance(granted, str) and granted else "none"
    required = " ".join(route.scopes) or "none"
    detail = f"required: {required}; granted: {granted_text}"
    if not failed:
        return detail, None, None
    missing = (
        ctx.refusal.missing_scopes if isinstance(ctx.refusal, InsufficientScope) else route.scopes
    )
    names = " ".join(missing)
    return (
        detail,
        (
            f"scope {names} missing: the user (or machine-to-machine app) has no role granting it, "
            "or the client did not request it"
        ),
        (
            "assign a role that grants it in Logto (and request the scope in the client's "
            "scopes), then get a new token: Logto computes scopes when it issues a token"
        ),
    )


_DESCRIBE: Final[Mapping[str, _Describer]] = {
    "structure": _structure,
    "alg": _alg,
    "typ": _typ,
    "crit": _crit,
    "kid": _kid,
    "signature": _signature,
    "iss": _iss,
    "claims": _claims,
    "lifetime": _lifetime,
    "aud": _aud,
    "organization": _organization,
    "scopes": _scopes,
}


def _audiences(value: object) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [item for item in value if isinstance(item, str)]
    return []


def _number(value: object) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        try:
            return float(value)
        except OverflowError:
            return None
    return None


def _at(timestamp: float) -> str:
    try:
        return datetime.fromtimestamp(timestamp, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    except (OverflowError, OSError, ValueError):
        return f"{timestamp:g}"


def _duration(seconds: float) -> str:
    seconds = abs(seconds)
    if seconds < 120:  # noqa: PLR2004
        return f"{seconds:.0f} s"
    if seconds < 7200:  # noqa: PLR2004
        return f"{seconds / 60:.0f} min"
    if seconds < 172800:  # noqa: PLR2004
        return f"{seconds / 3600:.0f} h"
    return f"{seconds / 86400:.0f} days"


def _relative(delta: float) -> str:
    return f"in {_duration(delta)}" if delta >= 0 else f"{_duration(delta)} ago"


def render(explanation: Explanation, config: ApiConfig) -> str:
    """The explanation as text for a terminal."""
    lines = [f"API: issuer {config.issuer}; audience {', '.join(config.audiences)}"]
    route = explanation.route
    if route is not None:
        what = " ".join(part for part in (route.method, route.path) if part) or "the route"
        needs = [f"scope {' '.join(route.scopes)}"] if route.scopes else []
        if route.organization:
            needs.append(f"organization {route.organization}")
        lines.append(f"Route: {what} needs {', '.join(needs) or 'a valid token'}")
    lines.append("")
    for check in explanation.checks:
        mark = {"ok": "ok  ", "fail": "FAIL", "skipped": "skip"}[check.verdict]
        lines.append(f"{mark}  {check.name:<12} {check.detail or check.title}")
        if check.cause:
            lines.append(f"      {'':<12} cause: {check.cause}")
        if check.fix:
            lines.append(f"      {'':<12} fix:   {check.fix}")
    if explanation.key_set:
        lines.append("")
        lines.append("Issuer's keys now:")
        lines.extend(f"  {key.kid}: {key.describe()}" for key in explanation.key_set)
    lines.extend(f"  skipped: {reason}" for reason in explanation.skipped_keys)
    lines.append("")
    if explanation.accepted:
        lines.append("ACCEPTED (200)")
    else:
        lines.append(
            f"REFUSED ({explanation.status}, {explanation.reason}): {explanation.description}"
        )
    return "\n".join(lines)


def key_info(kid: str, algorithms: Sequence[str], public_key: object) -> KeyInfo:
    """Describe a verification key by its type and size, never its material."""
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa  # noqa: PLC0415

    algs = tuple(sorted(algorithms))
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        curves = {"secp256r1": "P-256", "secp384r1": "P-384", "secp521r1": "P-521"}
        return KeyInfo(kid=kid, kty="EC", crv=curves.get(public_key.curve.name), algorithms=algs)
    if isinstance(public_key, rsa.RSAPublicKey):
        return KeyInfo(kid=kid, kty="RSA", bits=public_key.key_size, algorithms=algs)
    if isinstance(public_key, ed25519.Ed25519PublicKey):
        return KeyInfo(kid=kid, kty="OKP", crv="Ed25519", algorithms=algs)
    return KeyInfo(kid=kid, kty="unknown", algorithms=algs)


async def examine(
    token: str,
    keys: RemoteKeySet,
    config: ApiConfig,
    *,
    now: float,
    route: Route | None = None,
) -> Explanation:
    """Run the API's own checks on ``token`` (a fresh verifier without caches, then the
    route's authorization) and explain the outcome, with the key set's details."""
    verifier = TokenVerifier(
        keys,
        algorithms=frozenset(config.algorithms),
        policy=VerifierPolicy(
            leeway=config.leeway,
            max_token_bytes=config.max_token_bytes,
            cache_size=0,
            refusal_cache_size=0,
            signature_threads=0,  # one token, checked once: no thread to start
        ),
        clock=lambda: now,
    )
    token_audiences = _audiences(_TokenView.of(token).claim("aud"))
    matching = [aud for aud in config.audiences if aud in token_audiences]
    audience = (matching or list(config.audiences))[0]
    refusal: AuthError | None = None
    try:
        access_token = await verifier.verify(token, audience=audience)
        if route is not None:
            requirement = Requirement(
                audience,
                route.scopes,
                organization_param="organization" if route.organization else None,
                organization_tokens=route.organization_tokens,
            )
            authorize(access_token, requirement, route.organization)
    except AuthError as refused:
        refusal = refused

    def describe(kid: str) -> KeyInfo | None:
        key = keys.current(kid)
        return key_info(kid, sorted(key.algorithms), key.public_key) if key else None

    explanation = explain(token, refusal, config, now=now, route=route, describe_key=describe)
    key_set = tuple(info for kid in keys.kids() if (info := describe(kid)) is not None)
    return msgspec.structs.replace(explanation, key_set=key_set)
