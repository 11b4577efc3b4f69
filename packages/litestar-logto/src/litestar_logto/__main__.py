"""``python -m litestar_logto explain``: why does the API refuse this access token?

    python -m litestar_logto explain [TOKEN | -] [METHOD PATH] [options]

The token comes from the argument, or from stdin when it is ``-`` or absent (``Bearer `` and
``Authorization:`` prefixes are dropped). The API's configuration comes from flags, else from
the environment variables the service reads:

* ``--endpoint`` / ``LOGTO_ENDPOINT``: the Logto tenant URL without ``/oidc`` (``--issuer``
  instead gives ``<endpoint>/oidc``);
* ``--audience`` / ``--resource`` (repeatable), else every ``*_RESOURCE`` variable
  (``SHOPPING_RESOURCE``, ``STORE_RESOURCE`` …): the API resource indicators;
* ``--algorithms`` / ``LOGTO_ALGORITHMS``, ``--leeway`` / ``LOGTO_LEEWAY_SECONDS``,
  ``--timeout`` / ``LOGTO_JWKS_TIMEOUT_SECONDS``.

A route's requirement is given as flags: ``--scope`` (repeatable), ``--organization ORG_ID`` (an
organization-level API route), ``--organization-tokens`` (a global route that also takes
organization-level tokens). Online, discovery and the JWKS are fetched from the endpoint;
``--jwks FILE`` works offline from a saved key set.

Exit status: 0 accepted, 1 refused, 2 usage or configuration error, 3 the issuer's keys cannot
be obtained. The token, its signature and its encoded parts are never printed.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final, TextIO
from urllib.parse import urlsplit

import httpx
import msgspec

from . import jwks as jwks_module
from . import keys as keys_module
from .explain import ApiConfig, Explanation, Route, examine, render
from .jwks import KeySetPolicy, RemoteKeySet
from .keys import LOGTO_ALGORITHMS, validate_algorithms

EXIT_ACCEPTED: Final = 0
EXIT_REFUSED: Final = 1
EXIT_USAGE: Final = 2
EXIT_UNREACHABLE: Final = 3
PROGRAM: Final = "python -m litestar_logto"
_HTTP_METHODS: Final = frozenset(
    {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT"}
)
_RESOURCE_SUFFIX: Final = "_RESOURCE"
_FETCH_FAILURES: Final = {
    "discovery_issuer_mismatch": "the discovery document names another issuer than "
    "<endpoint>/oidc: LOGTO_ENDPOINT is not the URL the issuer calls itself (a custom "
    "domain, http/https, or localhost vs 127.0.0.1?)",
    "discovery_jwks_uri_foreign": "the discovery document's jwks_uri is on another origin",
    "jwks_without_usable_keys": "the key set holds no key the API can use (see the "
    "allowed algorithms)",
    "jwks_not_a_key_set": "the key set document is not a JWKS",
    "not_json": "the issuer answered something that is not JSON",
    "timeout": "the issuer did not answer in time",
}


class UsageError(Exception):
    """Bad arguments or configuration (exit status 2); the message never holds the token."""


@dataclass(frozen=True, slots=True)
class Options:
    """Everything the command was asked, resolved against the environment."""

    token: str
    config: ApiConfig
    endpoint: str
    route: Route | None
    jwks_file: Path | None
    timeout: float
    as_json: bool


def main(  # noqa: PLR0911 - one return per exit status and failure
    argv: Sequence[str] | None = None,
    environ: Mapping[str, str] | None = None,
    *,
    stdin: TextIO | None = None,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
) -> int:
    """Run the command; return the exit status."""
    stdin, stdout, stderr = stdin or sys.stdin, stdout or sys.stdout, stderr or sys.stderr
    environ = os.environ if environ is None else environ
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] != "explain":
        print(f"usage: {PROGRAM} explain [TOKEN|-] [METHOD PATH] [options]", file=stderr)
        return EXIT_USAGE
    try:
        arguments = _parser().parse_intermixed_args(argv[1:])
    except SystemExit as exited:  # argparse printed usage; its messages name flags, not values
        return EXIT_USAGE if exited.code else EXIT_ACCEPTED
    try:
        options = _options(arguments, environ, stdin)
    except UsageError as problem:
        print(f"{PROGRAM} explain: {problem}", file=stderr)
        return EXIT_USAGE
    _quiet_library_logs()
    try:
        explanation = asyncio.run(_run(options))
    except UsageError as problem:
        print(f"{PROGRAM} explain: {problem}", file=stderr)
        return EXIT_USAGE
    except _Unreachable as problem:
        print(f"{PROGRAM} explain: {problem}", file=stderr)
        return EXIT_UNREACHABLE
    if options.as_json:
        print(msgspec.json.format(msgspec.json.encode(explanation)).decode(), file=stdout)
    else:
        print(render(explanation, options.config), file=stdout)
    if explanation.status == 503:  # noqa: PLR2004 - the key lookup could not finish
        return EXIT_UNREACHABLE
    return EXIT_ACCEPTED if explanation.accepted else EXIT_REFUSED


def _parser() -> argparse.ArgumentParser:
    explain = argparse.ArgumentParser(
        prog=f"{PROGRAM} explain",
        description="Run the API's checks on an access token and explain each verdict. "
        "Exit status: 0 accepted, 1 refused, 2 usage error, 3 issuer unreachable.",
    )
    explain.add_argument(
        "words",
        nargs="*",
        metavar="[TOKEN|-] [METHOD PATH]",
        help="the token ('-' or absent: read stdin), then optionally the route",
    )
    explain.add_argument("--endpoint", help="Logto tenant URL without /oidc (LOGTO_ENDPOINT)")
    explain.add_argument("--issuer", help="the issuer, <endpoint>/oidc (instead of --endpoint)")
    explain.add_argument(
        "--audience",
        "--resource",
        dest="audiences",
        action="append",
        default=[],
        help="an API resource indicator (repeatable; default: every *_RESOURCE variable)",
    )
    explain.add_argument(
        "--scope",
        dest="scopes",
        action="append",
        default=[],
        help="a scope the route requires (repeatable)",
    )
    explain.add_argument("--organization", help="the organization id of the route")
    explain.add_argument(
        "--organization-tokens",
        action="store_true",
        help="the global route also takes organization-level tokens",
    )
    explain.add_argument(
        "--algorithms", help="allowed algorithms, comma-separated (LOGTO_ALGORITHMS)"
    )
    explain.add_argument("--leeway", help="clock skew in seconds (LOGTO_LEEWAY_SECONDS)")
    explain.add_argument(
        "--timeout", help="seconds for discovery + JWKS (LOGTO_JWKS_TIMEOUT_SECONDS)"
    )
    explain.add_argument("--jwks", type=Path, help="a saved JWKS file: work offline")
    explain.add_argument("--json", action="store_true", help="print the explanation as JSON")
    return explain


def _options(arguments: argparse.Namespace, environ: Mapping[str, str], stdin: TextIO) -> Options:
    words: list[str] = arguments.words
    token_word: str | None = None
    if words and words[0].upper() not in _HTTP_METHODS:
        token_word, words = words[0], words[1:]
    if len(words) not in (0, 2) or (words and words[0].upper() not in _HTTP_METHODS):
        raise UsageError("expected [TOKEN|-] [METHOD PATH]")
    method, path = (words[0].upper(), words[1]) if words else (None, None)
    token = _clean_token(stdin.read() if token_word in (None, "-") else token_word or "")
    if not token:
        raise UsageError("no token given (as the argument, or on stdin)")
    endpoint = _endpoint(arguments.endpoint, arguments.issuer, environ)
    audiences = tuple(arguments.audiences) or _resources_from(environ)
    if not audiences:
        raise UsageError(
            "no API resource indicator: pass --audience URL or set SHOPPING_RESOURCE-style "
            "*_RESOURCE variables"
        )
    for audience in audiences:
        if not urlsplit(audience).scheme or any(ch.isspace() for ch in audience):
            raise UsageError("a resource indicator must be an absolute URI")
    algorithms = _algorithms(arguments.algorithms or environ.get("LOGTO_ALGORITHMS"))
    leeway = _seconds(arguments.leeway or environ.get("LOGTO_LEEWAY_SECONDS"), 30.0, "leeway")
    timeout = _seconds(
        arguments.timeout or environ.get("LOGTO_JWKS_TIMEOUT_SECONDS"), 5.0, "timeout"
    )
    route = None
    if method or arguments.scopes or arguments.organization or arguments.organization_tokens:
        if arguments.organization and arguments.organization_tokens:
            raise UsageError("--organization-tokens is for global routes (no --organization)")
        route = Route(
            method=method,
            path=path,
            scopes=tuple(arguments.scopes),
            organization=arguments.organization,
            organization_tokens=arguments.organization_tokens,
        )
    config = ApiConfig(
        issuer=f"{endpoint}/oidc",
        audiences=audiences,
        algorithms=tuple(sorted(algorithms)),
        leeway=leeway,
    )
    return Options(token, config, endpoint, route, arguments.jwks, timeout, arguments.json)


def _clean_token(text: str) -> str:
    token = text.strip()
    if token.lower().startswith("authorization:"):
        token = token[len("authorization:") :].strip()
    if token.lower().startswith("bearer "):
        token = token[len("bearer ") :].strip()
    return token


def _endpoint(endpoint: str | None, issuer: str | None, environ: Mapping[str, str]) -> str:
    if issuer:
        if not issuer.rstrip("/").endswith("/oidc"):
            raise UsageError(
                "--issuer must be <endpoint>/oidc (the API derives its issuer from the endpoint)"
            )
        derived = issuer.rstrip("/").removesuffix("/oidc")
        if endpoint and endpoint.rstrip("/") != derived:
            raise UsageError("--issuer and --endpoint disagree; give one of them")
        endpoint = derived
    endpoint = (endpoint or environ.get("LOGTO_ENDPOINT", "")).strip().rstrip("/")
    if not endpoint:
        raise UsageError("no issuer: pass --endpoint (or --issuer) or set LOGTO_ENDPOINT")
    parts = urlsplit(endpoint)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UsageError("the endpoint must be an http(s) URL")
    if parts.username or parts.password or parts.query or parts.fragment:
        raise UsageError("the endpoint must not carry credentials, a query or a fragment")
    if endpoint.endswith("/oidc"):
        raise UsageError(
            "the endpoint must be the tenant URL without /oidc (the API adds /oidc itself)"
        )
    return endpoint


def _resources_from(environ: Mapping[str, str]) -> tuple[str, ...]:
    return tuple(
        value.strip()
        for name, value in sorted(environ.items())
        if name.endswith(_RESOURCE_SUFFIX) and value.strip()
    )


def _algorithms(raw: str | None) -> frozenset[str]:
    if not raw:
        return LOGTO_ALGORITHMS
    try:
        return validate_algorithms([name.strip() for name in raw.split(",") if name.strip()])
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def _seconds(raw: str | None, default: float, what: str) -> float:
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise UsageError(f"the {what} must be a number of seconds") from None
    if not 0 <= value <= 3600:  # noqa: PLR2004
        raise UsageError(f"the {what} must be between 0 and 3600 seconds")
    return value


class _Unreachable(Exception):
    """The issuer's keys cannot be obtained (exit status 3)."""


class _SkippedKeys(logging.Handler):
    """Collects why the key set's parser skipped a published key (its log records)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.reasons: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if getattr(record, "event", None) == "jwks_key_skipped":
            index, reason = getattr(record, "index", "?"), getattr(record, "reason", "?")
            self.reasons.append(f"key #{index}: {reason}")


def _quiet_library_logs() -> None:
    """The key source logs fetches and failures for a service; here they become the output."""
    for library_logger in (jwks_module.logger, keys_module.logger):
        library_logger.addHandler(logging.NullHandler())
        library_logger.propagate = False


async def _run(options: Options) -> Explanation:
    skipped = _SkippedKeys()
    keys_module.logger.addHandler(skipped)
    try:
        async with _http_client(options) as http:
            keys = RemoteKeySet(
                options.endpoint,
                http_client=http,
                algorithms=frozenset(options.config.algorithms),
                policy=KeySetPolicy(timeout=options.timeout, cooldown=0.0),
            )
            await keys.refresh()
            if not keys.has_keys:
                failure = keys.stats.last_failure or "unknown"
                if options.jwks_file is not None:
                    raise UsageError(f"the JWKS file is unusable: {_why(failure)}")
                raise _Unreachable(
                    f"cannot get the issuer's keys from {keys.discovery_url}: {_why(failure)}"
                )
            explanation = await examine(
                options.token, keys, options.config, now=time.time(), route=options.route
            )
    finally:
        keys_module.logger.removeHandler(skipped)
    return msgspec.structs.replace(explanation, skipped_keys=tuple(skipped.reasons))


def _why(failure: str) -> str:
    return _FETCH_FAILURES.get(failure, failure.replace("_", " "))


def _http_client(options: Options) -> httpx.AsyncClient:
    if options.jwks_file is None:
        return httpx.AsyncClient(timeout=options.timeout)
    try:
        document = options.jwks_file.read_bytes()
    except OSError as exc:
        raise UsageError(f"cannot read the JWKS file ({exc.strerror})") from None
    issuer = options.config.issuer
    discovery = msgspec.json.encode({"issuer": issuer, "jwks_uri": f"{issuer}/jwks"})

    return httpx.AsyncClient(transport=_FileTransport(discovery, document))


class _FileTransport(httpx.AsyncBaseTransport):
    """Serves a discovery document naming the API's issuer and the JWKS file, in memory, so
    the key source reads the file through its usual path (same parsing, same checks)."""

    def __init__(self, discovery: bytes, document: bytes) -> None:
        self._discovery = discovery
        self._document = document

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/.well-known/openid-configuration"):
            return httpx.Response(200, stream=httpx.ByteStream(self._discovery))
        return httpx.Response(200, stream=httpx.ByteStream(self._document))


if __name__ == "__main__":
    sys.exit(main())
