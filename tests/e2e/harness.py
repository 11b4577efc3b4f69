"""The three programs started by ``demo.launcher`` on free ports, with the recording proxy
between the client app and the resource API, and what the tests need to look inside.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, Protocol, TypeVar

import httpx
import jwt

from demo.launcher import (
    ROTATE_KEYS_HEADERS,
    Stack,
    StackConfig,
    describe_exit,
    free_port,
    start_stack,
)
from tests.e2e.browser import Browser
from tests.e2e.proxy import Exchange, RecordingProxy

JWKS_COOLDOWN_SECONDS = 1.0
"""The API fetches keys for an unknown kid at most this often (30 s by default): the rotation
test rotates twice within seconds, and its second new key would otherwise be refused until
the cooldown passed."""
PROGRAM_VARIABLES = (
    "LOGTO_",
    "DEV_ISSUER_",
    "SESSION_",
    "RESOURCE_API_",
    "CLIENT_APP_",
    "SHOPPING_",
    "STORE_",
    "LOG_LEVEL",
    "OTEL_",
    "DATABASE_URL",
)
"""Environment variables that configure the programs: never inherited from the developer's
shell, so the tests run the same everywhere."""


class Stoppable(Protocol):
    def stop(self) -> None: ...


StoppableT = TypeVar("StoppableT", bound=Stoppable)


@dataclass
class RunningStack:
    """The programs ``demo.launcher`` started, and what every scenario asks of them."""

    stack: Stack

    @property
    def client_url(self) -> str:
        return self.stack.client.url

    @property
    def api_url(self) -> str:
        return self.stack.api.url

    def browser(self) -> Browser:
        """A new browser (empty cookie jar) on the client app."""
        return Browser(self.client_url)

    def password(self, username: str) -> str:
        """The password the issuer announced for ``username``."""
        return user_password(self.stack.ready, username)

    def user_id(self, username: str) -> str:
        """The id (token ``sub``) of ``username``."""
        return user_id(self.stack.ready, username)

    def assert_running(self) -> None:
        """Fail with the log of a program that exited."""
        dead = self.stack.first_dead()
        if dead is not None:
            raise AssertionError(describe_exit(dead))


@dataclass
class Harness(RunningStack):
    """A running stack, its proxy, and the exchanges the proxy recorded."""

    proxy: RecordingProxy
    exchanges: list[Exchange]

    @property
    def issuer_url(self) -> str:
        return self.stack.issuer.url

    def rotate_keys(self) -> dict[str, Any]:
        """``POST /dev/rotate-keys`` at the issuer; then wait out the API's refetch cooldown."""
        summary = ok_json(
            httpx.post(
                f"{self.issuer_url}/dev/rotate-keys", headers=ROTATE_KEYS_HEADERS, timeout=10
            )
        )
        time.sleep(JWKS_COOLDOWN_SECONDS)
        return summary

    def set_roles(self, username: str, **change: list[str]) -> list[str]:
        """``POST /dev/users/<username>/roles`` at the issuer (``roles=[…]`` replaces the
        user's global roles, ``add=[…]``/``remove=[…]`` change them); the roles now."""
        answer = ok_json(
            httpx.post(
                f"{self.issuer_url}/dev/users/{username}/roles",
                json=change,
                headers=ROTATE_KEYS_HEADERS,
                timeout=10,
            )
        )
        return list(answer["roles"])

    def refresh_stats(self) -> dict[str, Any]:
        """The issuer's ``GET /dev/refresh-stats`` counters."""
        return ok_json(httpx.get(f"{self.issuer_url}/dev/refresh-stats", timeout=10))

    def api(self, method: str, path: str, token: str | None, **kwargs: Any) -> httpx.Response:
        """Call the resource API directly (not through the client app)."""
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.request(method, f"{self.api_url}{path}", headers=headers, timeout=10, **kwargs)

    def tokens(self, *, subject: str, audience: str | None = None) -> list[str]:
        """The bearer tokens the client app sent for ``subject`` (newest last)."""
        found: list[str] = []
        for exchange in list(self.exchanges):
            scheme, _, token = exchange.request_headers.get("authorization", "").partition(" ")
            if scheme.lower() != "bearer" or token in found:
                continue
            claims = claims_of(token)
            if claims.get("sub") == subject and audience in (None, claims.get("aud")):
                found.append(token)
        return found

    @cached_property
    def openapi(self) -> dict[str, Any]:
        """The resource API's OpenAPI document, as it serves it."""
        return ok_json(httpx.get(f"{self.api_url}/schema/openapi.json", timeout=10))

    def stop(self) -> None:
        """Stop the programs, then the proxy."""
        try:
            self.stack.stop()
        finally:
            self.proxy.stop()


def ok_json(response: httpx.Response) -> dict[str, Any]:
    """The JSON object of a successful answer (an error status raises)."""
    response.raise_for_status()
    body: dict[str, Any] = response.json()
    return body


def until_stopped(running: StoppableT) -> Iterator[StoppableT]:
    """For a fixture, ``yield from until_stopped(started)``: hand ``started`` to the tests,
    then stop it, whatever happened meanwhile."""
    try:
        yield running
    finally:
        running.stop()


def user_password(ready: Mapping[str, Any], username: str) -> str:
    """The password of ``username`` in the issuer's ready line."""
    return str(_announced_user(ready, username)["password"])


def user_id(ready: Mapping[str, Any], username: str) -> str:
    """The id (token ``sub``) of ``username`` in the issuer's ready line."""
    return str(_announced_user(ready, username)["id"])


def _announced_user(ready: Mapping[str, Any], username: str) -> Mapping[str, Any]:
    return next(u for u in ready["users"] if u["username"] == username)


def claims_of(token: str) -> dict[str, Any]:
    """A JWT's payload, unverified (to pick tokens out of the recording)."""
    try:
        claims: dict[str, Any] = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError:
        return {}
    return claims


def free_ports(count: int) -> list[int]:
    """``count`` different free ports of 127.0.0.1."""
    ports: list[int] = []
    while len(ports) < count:
        port = free_port()
        if port not in ports:
            ports.append(port)
    return ports


def clean_environ() -> dict[str, str]:
    """This process's environment without the programs' configuration variables."""
    return {k: v for k, v in os.environ.items() if not k.startswith(PROGRAM_VARIABLES)}


def start_harness(
    data_dir: Path,
    exchanges: list[Exchange],
    *,
    access_token_ttl: int | None = None,
    api_environ: Mapping[str, str] | None = None,
    issuer_args: tuple[str, ...] = (),
) -> Harness:
    """Start issuer, API and client app on free ports, the client calling the API through a
    recording proxy; ``issuer_args`` are extra dev issuer options."""
    api_port, client_port = free_ports(2)
    proxy = RecordingProxy(f"http://127.0.0.1:{api_port}", exchanges).start()
    config = StackConfig(
        issuer_port=0,
        api_port=api_port,
        client_port=client_port,
        data_dir=data_dir,
        access_token_ttl=access_token_ttl,
        client_api_url=proxy.url,
        api_environ={
            "LOGTO_JWKS_COOLDOWN_SECONDS": str(JWKS_COOLDOWN_SECONDS),
            **(api_environ or {}),
        },
        issuer_args=issuer_args,
    )
    try:
        stack = start_stack(config, clean_environ())
    except BaseException:
        proxy.stop()
        raise
    return Harness(stack, proxy, exchanges)
