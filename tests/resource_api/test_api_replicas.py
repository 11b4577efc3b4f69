"""Two resource API replicas on one PostgreSQL, behind one steerable front door.

Real parts: two ``python -m resource_api`` processes A and B (granian, one worker each) with the
same environment (``DATABASE_URL`` of one database on a PostgreSQL server of this module's own,
a loopback issuer publishing a real ES384 key); the front door is the client replicas' reverse
proxy (``tests/e2e/test_replicas.py``), which the test steers: round robin, or every request to
one replica. Nothing is shared between A and B but PostgreSQL.

* hundreds of concurrent orders through the door: every one acknowledged (201), no id given
  twice, every order listed by either replica;
* A killed with SIGKILL mid-burst: B keeps and no order acknowledged by either is lost;
* PostgreSQL stopped under load: 503 with ``Retry-After`` while it is down (never a 500), and
  both replicas serve again once it is back, without a restart.

The figures (orders written, lost, duplicates) are printed for the closing note.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import httpx
import pytest

from bench.common import LoopbackIssuer, loopback_issuer
from tests.e2e.test_replicas import FrontDoor, only
from tests.postgres_support import (
    Databases,
    PostgresServer,
    require_postgres_server,
    start_postgres_server,
)
from tests.served_programs import Serve, Served, program_environ, wait_gone

CLIENTS = 16
SUBJECTS = [f"user-{n}" for n in range(8)]
BURST = 400
"""Orders of the concurrent burst."""


@dataclass
class Replicas:
    """A and B, the door in front of them, and the database they share."""

    a: Served
    b: Served
    door: FrontDoor
    server: PostgresServer
    tokens: dict[str, str]

    def headers(self, subject: str, replica: str | None = None) -> dict[str, str]:
        """The subject's bearer header, and ``X-Replica`` to steer this one request."""
        headers = {"Authorization": f"Bearer {self.tokens[subject]}"}
        if replica is not None:
            headers["X-Replica"] = replica
        return headers

    def listed(self, replica: str) -> dict[int, dict[str, object]]:
        """Every order of every subject, as ``replica`` lists them, by id."""
        orders: dict[int, dict[str, object]] = {}
        with httpx.Client(base_url=self.door.url, timeout=10) as client:
            for subject in SUBJECTS:
                response = client.get("/shopping/orders", headers=self.headers(subject, replica))
                assert response.status_code == 200, response.text
                for order in response.json()["orders"]:
                    orders[order["id"]] = {**order, "owner": subject}
        return orders


@dataclass
class Burst:
    """What a burst of order placements saw."""

    acknowledged: list[dict[str, object]] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)
    retry_after: set[str] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, subject: str, response: httpx.Response) -> None:
        with self.lock:
            self.statuses[response.status_code] += 1
            if response.status_code == 201:
                self.acknowledged.append({**response.json(), "owner": subject})
            if response.status_code == 503:
                self.retry_after.add(response.headers.get("retry-after", "missing"))


def place_orders(
    replicas: Replicas, count: int, burst: Burst, *, pause: threading.Event | None = None
) -> None:
    """``count`` orders through the door from ``CLIENTS`` threads, subjects in turn."""
    numbers = iter(range(count))
    numbers_lock = threading.Lock()

    def client() -> None:
        with httpx.Client(base_url=replicas.door.url, timeout=15) as http:
            while True:
                with numbers_lock:
                    number = next(numbers, None)
                if number is None:
                    return
                if pause is not None:
                    pause.wait()
                subject = SUBJECTS[number % len(SUBJECTS)]
                response = http.post(
                    "/shopping/orders",
                    json={"items": [{"sku": f"sku-{number}", "quantity": 1}]},
                    headers=replicas.headers(subject),
                )
                burst.record(subject, response)

    with ThreadPoolExecutor(max_workers=CLIENTS) as pool:
        for future in [pool.submit(client) for _ in range(CLIENTS)]:
            future.result(timeout=300)


def assert_all_listed(replicas: Replicas, burst: Burst, replica_names: list[str]) -> None:
    """Every acknowledged order is listed, with its items and owner, by each named replica;
    no id was acknowledged twice."""
    ids = [order["id"] for order in burst.acknowledged]
    assert len(ids) == len(set(ids)), "an id was handed out twice"
    for name in replica_names:
        listed = replicas.listed(name)
        lost = [order["id"] for order in burst.acknowledged if listed.get(order["id"]) != order]  # type: ignore[call-overload]
        assert lost == [], f"replica {name} does not list acknowledged orders {lost[:10]}"


@pytest.fixture
def issuer() -> Iterator[LoopbackIssuer]:
    """An issuer on 127.0.0.1 publishing one ES384 key."""
    with loopback_issuer() as running:
        yield running


@pytest.fixture
def database_server() -> Iterator[PostgresServer]:
    """A PostgreSQL server of this test's own (the outage test stops and restarts it)."""
    require_postgres_server("(the replica tests start a server of their own)")
    server = start_postgres_server()
    try:
        yield server
    finally:
        server.remove()


@pytest.fixture
def replicas(
    serve: Serve, issuer: LoopbackIssuer, database_server: PostgresServer
) -> Iterator[Replicas]:
    """A and B on one empty database, started together (both migrate it at once), behind the
    door."""
    url = Databases(database_server.url).create()
    environ = program_environ(LOGTO_ENDPOINT=issuer.endpoint, DATABASE_URL=url, LOG_LEVEL="WARNING")
    with ThreadPoolExecutor(max_workers=2) as pool:
        a, b = pool.map(lambda _: serve("resource_api", environ=environ), range(2))
    door = FrontDoor()
    door.upstreams = {"a": a.url, "b": b.url}
    door.start()
    tokens = {subject: issuer.token(subject=subject) for subject in SUBJECTS}
    try:
        yield Replicas(a, b, door, database_server, tokens)
    finally:
        door.stop()


def test_concurrent_orders_through_both_replicas_are_all_kept_once(replicas: Replicas) -> None:
    """Hundreds of concurrent orders, round robin over A and B: every one is acknowledged,
    no id twice, and each replica lists every order (owned by its subject only)."""
    burst = Burst()
    place_orders(replicas, BURST, burst)
    assert burst.statuses == Counter({201: BURST})
    served_by = Counter(s.replica for s in replicas.door.served if s.method == "POST")
    assert set(served_by) == {"a", "b"}
    assert_all_listed(replicas, burst, ["a", "b"])
    assert len(replicas.listed("a")) == BURST
    print(  # the figures for the closing note
        f"\nreplicas: {BURST} orders written (A {served_by['a']}, B {served_by['b']}), "
        f"lost 0, duplicate ids 0"
    )


def test_one_replica_killed_mid_burst_the_other_keeps_serving(replicas: Replicas) -> None:
    """A is killed with SIGKILL while orders are in flight; requests sent to A meanwhile fail
    (the door's 502, as a load balancer answers for a dead upstream), then the door sends
    everything to B, which keeps acknowledging orders; every order acknowledged by A or B is
    listed by B."""
    burst = Burst()
    killed = threading.Event()

    def kill_a_after_some_orders() -> None:
        while len(burst.acknowledged) < BURST // 4:
            time.sleep(0.01)
        workers = replicas.a.workers()
        for pid in workers:
            os.kill(pid, signal.SIGKILL)
        replicas.a.process.kill()
        killed.set()
        # As a load balancer notices a dead replica only after a while, the door keeps
        # sending A its share until one of them has failed; then it steers everything to B.
        deadline = time.monotonic() + 10
        while not burst.statuses[502] and time.monotonic() < deadline:
            time.sleep(0.001)
        replicas.door.steer(only("b"))
        assert wait_gone(workers) == []

    killer = threading.Thread(target=kill_a_after_some_orders)
    killer.start()
    place_orders(replicas, BURST, burst)
    killer.join(timeout=60)
    assert killed.is_set()
    assert burst.statuses[201] >= BURST // 4
    # Only requests sent to A after the kill failed, as the door's 502: never a 500.
    assert burst.statuses[502] >= 1
    assert set(burst.statuses) <= {201, 502}
    after = Burst()
    place_orders(replicas, 50, after)  # B alone, after the kill
    assert after.statuses == Counter({201: 50})
    everything = Burst(acknowledged=burst.acknowledged + after.acknowledged)
    assert_all_listed(replicas, everything, ["b"])
    print(
        f"\nreplica killed: {len(everything.acknowledged)} orders acknowledged "
        f"({burst.statuses[502]} sent to the killed replica answered 502), lost 0, "
        "duplicate ids 0"
    )


def test_postgresql_restarted_under_load_is_503_then_recovers(replicas: Replicas) -> None:
    """Orders keep coming through both replicas while PostgreSQL stops: they are answered 503
    with Retry-After (never 500); once PostgreSQL is back both replicas acknowledge orders
    again without a restart, and no acknowledged order is lost."""
    burst = Burst()
    loader = threading.Thread(target=place_orders, args=(replicas, BURST, burst))
    loader.start()
    while len(burst.acknowledged) < BURST // 8:
        time.sleep(0.01)
    replicas.server.stop()
    down_since = time.monotonic()
    while burst.statuses[503] < 20 and time.monotonic() - down_since < 30:
        time.sleep(0.05)
    replicas.server.start()
    loader.join(timeout=300)
    assert not loader.is_alive()
    assert burst.statuses[503] >= 20, burst.statuses
    assert set(burst.statuses) <= {201, 503}, burst.statuses
    assert burst.retry_after == {"2"}
    after = Burst()
    place_orders(replicas, 50, after)  # no restart of either replica
    assert after.statuses == Counter({201: 50})
    everything = Burst(acknowledged=burst.acknowledged + after.acknowledged)
    assert_all_listed(replicas, everything, ["a", "b"])
    print(
        f"\npostgresql restart: {len(everything.acknowledged)} orders acknowledged, "
        f"{burst.statuses[503]} answered 503 while it was down, lost 0, duplicate ids 0"
    )
