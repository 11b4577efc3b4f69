"""Two client app replicas behind one origin, sharing sessions (and their locks) in a real Redis.

The stack of its own: the dev issuer rotating refresh tokens on every use
(``--rotate-refresh-tokens``: a refresh token presented twice revokes the grant, and the issuer
counts it at ``GET /dev/refresh-stats``), access tokens of 3 seconds, the resource API, and two
``python -m client_app`` processes A and B with the same environment (``SESSION_REDIS_URL``,
``SESSION_SECRET``, ``CLIENT_APP_BASE_URL`` = the front door). Nothing is shared between A and
B but Redis.

The front door is a small reverse proxy in a thread of the test, bound to 127.0.0.1, as a load
balancer would stand before replicas. The test steers every request: by a rule on the path
(:meth:`FrontDoor.steer`) or per request with the ``X-Replica`` header, and the door records
which replica served what.
"""

from __future__ import annotations

import secrets
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from litestar.stores.memory import MemoryStore

from client_app.redis_sessions import SESSIONS_NAMESPACE
from client_app.sessions import COOKIE_NAME, SessionStore
from client_app.settings import Secret
from demo.launcher import (
    DEFAULT_SEED,
    HOST,
    Service,
    Stack,
    StackConfig,
    describe_exit,
    start_stack,
)
from demo.seed import api_indicators, load_seed
from tests.e2e import proxy
from tests.e2e.browser import Browser
from tests.e2e.harness import clean_environ, free_ports, ok_json, until_stopped, user_password
from tests.e2e.pages import Page
from tests.http_server_support import BackgroundServer, RequestHandler

TTL_SECONDS = 3
"""Access-token lifetime: after it the replica serving the next page must refresh."""
REPLICA_HEADER = "x-replica"
COUNTERS = ("requests", "succeeded", "rotated", "reuseDetected", "failed")
START_TIMEOUT_SECONDS = 30.0
HOP_BY_HOP = (proxy.HOP_BY_HOP - {"host"}) | {REPLICA_HEADER}
"""The recording proxy's, but the replicas are handed the door's ``Host``."""

Rule = Callable[[str, str], str]
"""(method, path) -> the replica that serves it."""


@dataclass(frozen=True)
class Served:
    """One request through the front door and the replica that answered it."""

    replica: str
    method: str
    path: str
    status: int


class FrontDoor(BackgroundServer):
    """A reverse proxy at ``http://127.0.0.1:<port>`` in front of the named replicas.

    ``url`` is the one origin of the app (``CLIENT_APP_BASE_URL``)."""

    def __init__(self) -> None:
        self.upstreams: dict[str, str] = {}
        self.served: list[Served] = []
        self._rule: Rule | None = None
        self._turn = 0
        self._lock = threading.Lock()
        super().__init__(_DoorHandler, timeout=60.0)

    def steer(self, rule: Rule | None) -> None:
        """Send requests where ``rule`` says (``None``: round robin)."""
        with self._lock:
            self._rule = rule

    def choose(self, method: str, path: str, asked: str | None) -> str:
        """The replica for this request: the ``X-Replica`` header, else the rule, else the
        next in turn."""
        if asked is not None:
            return asked
        with self._lock:
            if self._rule is not None:
                return self._rule(method, path)
            names = sorted(self.upstreams)
            self._turn += 1
            return names[self._turn % len(names)]

    def since(self, mark: int) -> list[tuple[str, str, str]]:
        """(replica, method, path) of the requests served after the first ``mark``."""
        with self._lock:
            return [(s.replica, s.method, s.path) for s in self.served[mark:]]

    def forward(
        self, replica: str, method: str, target: str, headers: list[tuple[str, str]], body: bytes
    ) -> httpx.Response:
        """Send the request on to ``replica``; record who served it."""
        response = self._http.request(
            method, self.upstreams[replica] + target, headers=headers, content=body
        )
        with self._lock:
            path = target.split("?", 1)[0]
            self.served.append(Served(replica, method, path, response.status_code))
        return response


class _DoorHandler(RequestHandler[FrontDoor]):
    """Quiet: the door records what it served."""

    methods = ("GET", "POST")

    def answer(self) -> None:
        door = self.owner
        body = self.read_body()
        headers = [(k, v) for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP]
        path = self.path.split("?", 1)[0]
        replica = door.choose(self.command, path, self.headers.get(REPLICA_HEADER))
        try:
            response = door.forward(replica, self.command, self.path, headers, body)
        except httpx.HTTPError:
            self.send_error(502)
            return
        self.send_response(response.status_code)
        for name, value in response.headers.multi_items():  # every Set-Cookie
            if name.lower() not in HOP_BY_HOP:
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(response.content)))
        self.end_headers()
        self.wfile.write(response.content)


def only(replica: str) -> Rule:
    """Every request to ``replica``."""
    return lambda _method, _path: replica


@dataclass
class Replicas:
    """The stack (issuer, API, replica A), replica B, the front door and the shared secrets."""

    stack: Stack
    b: Service
    door: FrontDoor
    redis_url: str
    session_secret: str

    @property
    def url(self) -> str:
        return self.door.url

    def browser(self) -> Browser:
        """A new browser on the front door."""
        return Browser(self.url)

    def password(self, username: str) -> str:
        return user_password(self.stack.ready, username)

    def refresh_stats(self) -> dict[str, int]:
        """The issuer's refresh-grant counters (no token values)."""
        body = ok_json(httpx.get(f"{self.stack.issuer.url}/dev/refresh-stats", timeout=10))
        assert body["rotateRefreshTokens"] is True
        return {name: int(body[name]) for name in COUNTERS}

    def since(self, before: dict[str, int]) -> dict[str, int]:
        """How much each refresh counter grew since ``before``."""
        now = self.refresh_stats()
        return {name: now[name] - before[name] for name in COUNTERS}

    def stored(self, session_id: str) -> bool:
        """Whether Redis holds the session's document (looked up as the app keys it)."""
        store = SessionStore(
            MemoryStore(), secret=Secret(self.session_secret), max_age_seconds=3600
        )
        key = f"{SESSIONS_NAMESPACE}:{store.storage_key(session_id)}"
        with redis.Redis.from_url(self.redis_url) as client:
            return bool(client.exists(key))

    def assert_running(self) -> None:
        """Fail with the log of a program that exited."""
        for service in (*self.stack.services, self.b):
            if service.exit_code is not None:
                raise AssertionError(describe_exit(service))

    def stop(self) -> None:
        """Stop B, the stack and the door: each even if stopping the one before failed."""
        try:
            self.b.stop()
        finally:
            try:
                self.stack.stop()
            finally:
                self.door.stop()


@pytest.fixture(scope="module")
def replicas(tmp_path_factory: pytest.TempPathFactory, redis_url: str) -> Iterator[Replicas]:
    """Issuer, API, replicas A and B on one Redis, the front door before A and B."""
    data_dir = tmp_path_factory.mktemp("e2e-replicas")
    door = FrontDoor().start()
    secret = secrets.token_urlsafe(32)
    api_port, a_port, b_port = free_ports(3)
    shared = {"SESSION_REDIS_URL": redis_url, "CLIENT_APP_BASE_URL": door.url}
    config = StackConfig(
        issuer_port=0,
        api_port=api_port,
        client_port=a_port,
        data_dir=data_dir,
        access_token_ttl=TTL_SECONDS,
        client_environ=shared,
        issuer_args=(
            "--rotate-refresh-tokens",
            "--redirect-uri",
            f"{door.url}/callback",
            "--post-logout-redirect-uri",
            f"{door.url}/",
        ),
    )
    try:
        stack = start_stack(config, {**clean_environ(), "SESSION_SECRET": secret})
    except BaseException:
        door.stop()
        raise
    try:
        b = start_replica_b(stack, b_port, {**shared, "SESSION_SECRET": secret}, data_dir)
    except BaseException:
        stack.stop()
        door.stop()
        raise
    door.upstreams.update(a=stack.client.url, b=b.url)
    yield from until_stopped(Replicas(stack, b, door, redis_url, secret))


def start_replica_b(stack: Stack, port: int, shared: dict[str, str], data_dir: Path) -> Service:
    """``python -m client_app`` on ``port`` with replica A's configuration (as
    ``demo.launcher`` builds it); return once ``/health`` answers."""
    indicators = api_indicators(load_seed(DEFAULT_SEED))
    web = next(c for c in stack.ready["clients"] if c.get("type") == "Traditional")
    environ = {
        **clean_environ(),
        "PYTHONUNBUFFERED": "1",
        "LOGTO_ENDPOINT": stack.issuer.url,
        "LOGTO_APP_ID": str(web["id"]),
        "LOGTO_APP_SECRET": str(web["secret"]),
        "SHOPPING_RESOURCE": indicators.shopping,
        "STORE_RESOURCE": indicators.store,
        "RESOURCE_API_URL": stack.api.url,
        "SESSION_DATABASE": str(data_dir / "client_sessions_b"),
        **shared,
    }
    url = f"http://{HOST}:{port}"
    args = [sys.executable, "-m", "client_app", "--host", HOST, "--port", str(port)]
    service = Service.spawn(
        "client_app_b", "client app B", url, args, env=environ, log_dir=data_dir / "logs"
    )
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    with httpx.Client(timeout=2.0) as http:
        while True:
            if service.exit_code is not None:
                raise AssertionError(describe_exit(service))
            try:
                if http.get(f"{url}/health").status_code == httpx.codes.OK:
                    return service
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                service.stop()
                raise AssertionError("client app B did not answer /health in time")
            time.sleep(0.1)


def assert_shopping_page(replicas: Replicas, page: Page) -> None:
    """The signed-in shopping page, not a sign-in or an error page."""
    assert page.status == 200, page.text
    assert page.url == f"{replicas.url}/shopping", page.text
    assert page.alerts("error") == []
    assert page.section("Your orders")  # only a signed-in user's page has it


def assert_clean_refreshes(grew: dict[str, Any], *, at_least: int = 1) -> None:
    """At least ``at_least`` refreshes, every one with a refresh token never presented
    before (each rotated, no reuse, no failure)."""
    assert grew["succeeded"] >= at_least, grew
    assert grew == {
        **grew,
        "succeeded": grew["requests"],
        "rotated": grew["requests"],
        "reuseDetected": 0,
        "failed": 0,
    }


def test_a_session_moves_freely_between_replicas(replicas: Replicas) -> None:
    """bob starts signing in on A and comes back from Logto to B; he sees his orders on A and
    places one through B; his tokens are refreshed by A, then B, then A, then B, each with the
    refresh token the other stored; he signs out through B and the session is gone for both."""
    r, door = replicas, replicas.door
    sku = f"REPLICA-{uuid.uuid4().hex[:8]}"
    with r.browser() as browser:
        door.steer(lambda _method, path: "b" if path == "/callback" else "a")
        mark = len(door.served)
        home = browser.sign_in("bob", r.password("bob"))
        assert home.url == f"{r.url}/"
        assert home.title == "Welcome, Bob Example"
        assert door.since(mark) == [
            ("a", "GET", "/sign-in"),
            ("b", "GET", "/callback"),
            ("a", "GET", "/"),
        ]

        door.steer(only("a"))
        shopping = browser.get("/shopping")
        assert_shopping_page(r, shopping)
        door.steer(only("b"))
        mark = len(door.served)
        placed = browser.submit(shopping, "/shopping/orders", sku=sku, quantity="2")
        assert placed.alerts("success") != [], placed.text
        assert {replica for replica, _, _ in door.since(mark)} == {"b"}
        door.steer(only("a"))
        orders = browser.get("/shopping")
        assert [row[1] for row in orders.table_rows()] == [f"2 \N{MULTIPLICATION SIGN} {sku}"]

        for replica in ("a", "b", "a", "b"):
            time.sleep(TTL_SECONDS)  # the token the other replica got has expired
            door.steer(only(replica))
            before, mark = r.refresh_stats(), len(door.served)
            page = browser.get("/shopping")
            assert_shopping_page(r, page)
            assert door.since(mark) == [(replica, "GET", "/shopping")]
            assert_clean_refreshes(r.since(before))

        session_id = browser.cookie(COOKIE_NAME)
        assert session_id is not None
        assert r.stored(session_id)
        door.steer(only("b"))
        mark = len(door.served)
        signed_out = browser.sign_out(orders)  # the form of A's page, posted to B
        assert ("b", "POST", "/sign-out") in door.since(mark)
        assert signed_out.url == f"{r.url}/"
        assert signed_out.title == "You are not signed in"
        assert browser.cookie(COOKIE_NAME) is None

    assert not r.stored(session_id)
    for replica in ("a", "b"):  # the old cookie is worth nothing on either
        me = httpx.get(
            f"{r.url}/protected/me.json",
            cookies={COOKIE_NAME: session_id},
            headers={"X-Replica": replica},
            timeout=10,
        )
        assert (me.status_code, me.json()["error"]) == (401, "not_authenticated")
        assert door.served[-1].replica == replica
    r.assert_running()


def test_concurrent_refreshes_on_both_replicas_present_each_refresh_token_once(
    replicas: Replicas,
) -> None:
    """alice opens her orders on A and on B at the same moment, three times, each time after
    her token expired: the two replicas refresh one after the other (the session's lock is in
    Redis), each with the refresh token the other stored, so the issuer never sees a refresh
    token twice and the grant survives."""
    r, door = replicas, replicas.door
    with r.browser() as browser:
        door.steer(only("a"))
        browser.sign_in("alice", r.password("alice"))
        assert_shopping_page(r, browser.get("/shopping"))
        door.steer(None)

        for _ in range(3):
            time.sleep(TTL_SECONDS)
            before, mark = r.refresh_stats(), len(door.served)
            start = threading.Barrier(2)

            def open_shopping(replica: str, start: threading.Barrier = start) -> Page:
                with httpx.Client(
                    cookies=browser.http.cookies, headers={"X-Replica": replica}, timeout=60.0
                ) as http:
                    start.wait(timeout=30)
                    return Page.of(http.get(f"{r.url}/shopping"))

            with ThreadPoolExecutor(2) as pool:
                pages = list(pool.map(open_shopping, ("a", "b")))

            for page in pages:
                assert_shopping_page(r, page)
            assert sorted(door.since(mark)) == [
                ("a", "GET", "/shopping"),
                ("b", "GET", "/shopping"),
            ]
            assert_clean_refreshes(r.since(before), at_least=2)

        time.sleep(TTL_SECONDS)
        door.steer(only("b"))
        before = r.refresh_stats()
        assert_shopping_page(r, browser.get("/shopping"))  # the grant is alive
        assert_clean_refreshes(r.since(before))
    r.assert_running()


def test_replicas_report_the_shared_store_healthy(replicas: Replicas) -> None:
    """Both replicas answer ``/health`` with 200 while Redis is up."""
    for replica in ("a", "b"):
        response = httpx.get(f"{replicas.url}/health", headers={"X-Replica": replica}, timeout=10)
        assert (response.status_code, response.json()) == (200, {"status": "ok"})
        assert replicas.door.served[-1].replica == replica
