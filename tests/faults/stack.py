"""The three real programs behind the fault proxy, and the tokens the scenarios send.

``demo.launcher`` starts the dev issuer on a port of its own with ``--base-url`` set to the
:class:`~tests.faults.issuer_proxy.IssuerProxy`, so everything that talks to the issuer goes
through the proxy: the resource API's key fetches, the client app's discovery and token calls,
and the browser's sign-in pages. The client app calls the API through the e2e recording proxy,
which is where user tokens are read from (as ``tests/e2e/harness.py`` does).

The test itself reaches the issuer around the proxy (its real port) for what is control, not
traffic: minting machine-to-machine tokens and rotating keys, even while the proxy is down.
"""

from __future__ import annotations

import math
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import httpx
import jwt
from cryptography.hazmat.primitives.asymmetric import ec

from demo.launcher import ROTATE_KEYS_HEADERS, StackConfig, start_stack
from tests.e2e.browser import Browser
from tests.e2e.harness import RunningStack, claims_of, clean_environ, free_ports, ok_json
from tests.e2e.proxy import Exchange, RecordingProxy
from tests.faults.issuer_proxy import IssuerProxy
from tests.faults.traffic import Call

STORE: Final = "https://store.your-app.com/api"
SHOPPING: Final = "https://shopping.your-app.com/api"
M2M_ID: Final = "dev-m2m"
M2M_SECRET: Final = "dev-m2m-secret"  # the seed's public development secret
PATH_OF_AUDIENCE: Final = {STORE: "/store/products", SHOPPING: "/shopping/orders"}
WAIT_STEP: Final = 0.05


@dataclass(frozen=True)
class KeyPolicy:
    """The API's ``LOGTO_JWKS_*`` settings for one stack."""

    timeout: float
    cooldown: float
    refresh: float
    max_stale: float

    def environ(self) -> dict[str, str]:
        return {
            "LOGTO_JWKS_TIMEOUT_SECONDS": str(self.timeout),
            "LOGTO_JWKS_COOLDOWN_SECONDS": str(self.cooldown),
            "LOGTO_JWKS_REFRESH_SECONDS": str(self.refresh),
            "LOGTO_JWKS_MAX_STALE_SECONDS": str(self.max_stale),
        }

    def fetch_bound(self, seconds: float) -> int:
        """The most unknown-kid fetches ``seconds`` of flood may cause."""
        return math.ceil(seconds / self.cooldown) + 1


@dataclass
class FaultStack(RunningStack):
    """A running stack, its issuer proxy and the client→API recording."""

    proxy: IssuerProxy
    recorder: RecordingProxy
    exchanges: list[Exchange]
    policy: KeyPolicy

    @property
    def issuer_direct(self) -> str:
        """The issuer's own socket (around the proxy)."""
        return f"http://127.0.0.1:{self.proxy.upstream_port}"

    @property
    def issuer(self) -> str:
        """The ``iss`` of every token."""
        return f"{self.proxy.url}/oidc"

    def m2m_calls(self, count: int) -> list[Call]:
        """``count`` fresh client-credentials tokens (``store:read``) for ``GET /store/products``,
        signed with the issuer's current key."""
        calls = []
        with httpx.Client(timeout=10) as http:
            for index in range(count):
                response = http.post(
                    f"{self.issuer_direct}/oidc/token",
                    data={
                        "grant_type": "client_credentials",
                        "resource": STORE,
                        "scope": "store:read",
                    },
                    auth=(M2M_ID, M2M_SECRET),
                )
                response.raise_for_status()
                token = str(response.json()["access_token"])
                calls.append(Call(f"m2m#{index}", PATH_OF_AUDIENCE[STORE], token))
        return calls

    def user_calls(self, browser: Browser, username: str) -> list[Call]:
        """Sign ``username`` in with ``browser``, open the shopping and store pages (the client
        app calls the API with the user's tokens) and return a call per token it sent."""
        since = len(self.exchanges)
        home = browser.sign_in(username, self.password(username))
        assert home.title.startswith("Welcome, "), home.text
        for page in ("/shopping", "/store"):
            assert browser.get(page).status == httpx.codes.OK
        subject = self.user_id(username)
        calls: dict[str, Call] = {}
        for exchange in list(self.exchanges)[since:]:
            scheme, _, token = exchange.request_headers.get("authorization", "").partition(" ")
            claims = claims_of(token)
            if (
                scheme.lower() == "bearer"
                and exchange.method == "GET"
                and exchange.status == httpx.codes.OK
                and claims.get("sub") == subject
                and token not in calls
            ):
                calls[token] = Call(f"{username}{exchange.path}", exchange.path, token)
        assert calls, f"the client app sent no token of {username} that the API accepted"
        return list(calls.values())

    def made_up_kid_call(self) -> Call:
        """A well-formed ES384 access token, genuinely signed, whose ``kid`` the issuer never
        published (the flood of the brief)."""
        key = ec.generate_private_key(ec.SECP384R1())
        now = int(time.time())
        claims = {
            "iss": self.issuer,
            "aud": STORE,
            "sub": "flood",
            "client_id": M2M_ID,
            "scope": "store:read",
            "iat": now,
            "exp": now + 600,
            "jti": secrets.token_hex(8),
        }
        headers = {"kid": secrets.token_urlsafe(32), "typ": "at+jwt"}
        token = jwt.encode(claims, key, algorithm="ES384", headers=headers)
        return Call("made-up kid", PATH_OF_AUDIENCE[STORE], token)

    def rotate_keys(self) -> dict[str, Any]:
        """``POST /dev/rotate-keys`` (a new signing key; the old one stays published)."""
        return ok_json(
            httpx.post(
                f"{self.issuer_direct}/dev/rotate-keys", headers=ROTATE_KEYS_HEADERS, timeout=30
            )
        )

    def health(self) -> dict[str, Any]:
        return ok_json(httpx.get(f"{self.api_url}/health", timeout=10))

    def settle(self) -> None:
        """Back to normal: no fault, keys loaded, one good key set handed out from now on
        (when the API refreshes in the background), and the unknown-kid cooldown passed."""
        self.proxy.reset()
        since = time.time()
        wait_until(lambda: self.health()["keys_loaded"], 10, "the API holds keys again")
        if self.policy.refresh < self.policy.max_stale:
            wait_until(
                lambda: any(s.received_at >= since for s in self.proxy.good_key_sets()),
                10,
                "a background key refresh",
            )
        time.sleep(self.policy.cooldown)
        self.assert_running()

    def stop(self) -> None:
        try:
            self.stack.stop()
        finally:
            self.recorder.stop()
            self.proxy.stop()


def wait_until(condition: Callable[[], object], seconds: float, what: str) -> None:
    """Poll ``condition`` until it is true; fail after ``seconds``."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(WAIT_STEP)


def start_fault_stack(
    data_dir: Path,
    policy: KeyPolicy,
    *,
    prepare: Callable[[IssuerProxy], None] | None = None,
    wait_for_api_keys: bool = True,
    api_environ: Mapping[str, str] | None = None,
) -> FaultStack:
    """Start the issuer proxy, then the three programs on free ports behind it.
    ``prepare`` breaks the proxy before anything starts (a cold API)."""
    issuer_port, api_port, client_port = free_ports(3)
    proxy = IssuerProxy(issuer_port).start()
    exchanges: list[Exchange] = []
    recorder = RecordingProxy(f"http://127.0.0.1:{api_port}", exchanges).start()
    if prepare is not None:
        prepare(proxy)
    config = StackConfig(
        issuer_port=issuer_port,
        api_port=api_port,
        client_port=client_port,
        data_dir=data_dir,
        client_api_url=recorder.url,
        issuer_base_url=proxy.url,
        wait_for_api_keys=wait_for_api_keys,
        api_environ={**policy.environ(), **(api_environ or {})},
    )
    try:
        stack = start_stack(config, clean_environ())
    except BaseException:
        recorder.stop()
        proxy.stop()
        raise
    return FaultStack(stack, proxy, recorder, exchanges, policy)
