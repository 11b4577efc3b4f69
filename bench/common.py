"""What every benchmark shares: a loopback issuer, token minting and robust statistics.

The issuer is a real HTTP server on 127.0.0.1 (a free port chosen by the kernel) so that both
our ``httpx`` key fetch and PyJWT's ``urllib``-based ``PyJWKClient`` reach it the way they
would reach Logto. Tokens are signed with the test kit's real ES384 key
(:mod:`tests.support`), with ``iat``/``exp`` around the real clock because the benchmarks run
the verifiers with ``time.time``.
"""

from __future__ import annotations

import json
import os
import statistics
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Final

import httpx
from litestar_logto import LOGTO_ALGORITHMS, RemoteKeySet, TokenVerifier, VerifierPolicy

from tests.support import SHOPPING, SigningKey, discovery, jwks, make_token

AUDIENCE = SHOPPING
SUBJECT = "user-bench"
REPO_ROOT = Path(__file__).resolve().parent.parent


def child_env() -> dict[str, str]:
    """The environment of a benchmark subprocess: ours, with the repository importable."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    return env


@dataclass
class LoopbackIssuer:
    """A Logto-shaped issuer: discovery at ``<endpoint>/oidc/.well-known/...`` and a JWKS."""

    endpoint: str
    key: SigningKey
    hits: dict[str, int] = field(default_factory=dict)

    @property
    def issuer(self) -> str:
        """The ``iss`` of its tokens: ``<endpoint>/oidc`` as Logto mounts it."""
        return f"{self.endpoint}/oidc"

    @property
    def jwks_url(self) -> str:
        """Where its key set is published."""
        return f"{self.issuer}/jwks"

    def documents(self) -> dict[str, bytes]:
        """Path → JSON body served."""
        return {
            "/oidc/.well-known/openid-configuration": json.dumps(
                discovery(issuer=self.issuer, jwks_uri=self.jwks_url)
            ).encode(),
            "/oidc/jwks": json.dumps(jwks(self.key)).encode(),
        }

    def token(self, *, subject: str = SUBJECT, lifetime: int = 3600) -> str:
        """A valid Logto shopping access token (ES384, ``at+jwt``), unique by its ``jti``."""
        now = int(time.time())
        return make_token(
            self.key,
            iss=self.issuer,
            sub=subject,
            aud=AUDIENCE,
            scope="shopping:read shopping:write",
            iat=now,
            exp=now + lifetime,
            jti=uuid.uuid4().hex,
        )

    def tokens(self, count: int) -> list[str]:
        """``count`` distinct valid tokens (distinct subjects and ``jti``)."""
        return [self.token(subject=f"user-{index}") for index in range(count)]


@contextmanager
def loopback_issuer(key: SigningKey | None = None) -> Iterator[LoopbackIssuer]:
    """Serve an issuer on 127.0.0.1 in a daemon thread for the duration of the block."""
    signing_key = key or SigningKey.es384()
    server = _IssuerServer(("127.0.0.1", 0), _IssuerHandler)
    host, port = server.server_address[:2]
    issuer = LoopbackIssuer(f"http://{host!s}:{port}", signing_key)
    server.documents = issuer.documents()
    server.hits = issuer.hits
    thread = threading.Thread(target=server.serve_forever, name="bench-issuer", daemon=True)
    thread.start()
    try:
        yield issuer
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


class _IssuerServer(ThreadingHTTPServer):
    daemon_threads = True
    documents: dict[str, bytes]
    hits: dict[str, int]


class _IssuerHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _IssuerServer

    def do_GET(self) -> None:
        documents = self.server.documents
        hits = self.server.hits
        body = documents.get(self.path)
        hits[self.path] = hits.get(self.path, 0) + 1
        if body is None:
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        del format, args  # quiet: the benchmark's output is its report


# -- statistics ---------------------------------------------------------------------------------


def median(values: Sequence[float]) -> float:
    """The median of a non-empty sequence."""
    return statistics.median(values)


def percentile(sorted_values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile of already sorted values (``fraction`` in [0, 1])."""
    if not sorted_values:
        return float("nan")
    rank = max(0, min(len(sorted_values) - 1, round(fraction * len(sorted_values)) - 1))
    return sorted_values[rank]


def spread(values: Sequence[float]) -> str:
    """``min-max`` of the rounds, to show how noisy the machine was."""
    return f"{min(values):.3f}..{max(values):.3f}"


def header(title: str) -> None:
    """Print a section title."""
    print(f"\n== {title} " + "=" * max(0, 76 - len(title)))


# -- the verification core, warmed against the loopback issuer ------------------------------------


@asynccontextmanager
async def warmed_key_set(issuer: LoopbackIssuer) -> AsyncIterator[RemoteKeySet]:
    """Our key set for ``issuer`` with its keys already fetched (default policy)."""
    async with httpx.AsyncClient(trust_env=False) as client:
        keys = RemoteKeySet(issuer.endpoint, http_client=client, algorithms=LOGTO_ALGORITHMS)
        if not await keys.refresh():
            msg = f"the loopback issuer's keys could not be fetched ({keys.stats.last_failure})"
            raise RuntimeError(msg)
        yield keys


INLINE_SIGNATURES: Final = VerifierPolicy(signature_threads=0)
"""The default policy with signatures checked on the caller's thread: the in-process
benchmarks call ``verify`` one token at a time from one coroutine, where a signature thread
would only add its hand-off to each call; what the thread does under concurrent load is
measured by ``http`` and ``load``, on the service as shipped."""


def fresh_verifier(keys: RemoteKeySet) -> TokenVerifier:
    """A verifier with an empty verified-token cache, signatures checked inline
    (:data:`INLINE_SIGNATURES`)."""
    return TokenVerifier(keys, algorithms=LOGTO_ALGORITHMS, policy=INLINE_SIGNATURES)
