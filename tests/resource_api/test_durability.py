"""What a ``201 Created`` promises: the order is committed to the database file before the
answer leaves, so a crash of the API right after cannot lose it.

The real program (``python -m resource_api``, granian and its worker process) runs against a
loopback issuer with real ES384 tokens; a burst of concurrent ``POST /shopping/orders`` is cut
short by SIGKILL to the worker and the main process (no shutdown, no checkpoint: the orders
are still in the WAL file), then the API restarts on the same database file and lists every
order it acknowledged.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from bench.common import LoopbackIssuer, loopback_issuer
from resource_api.idempotency import Claimed, IdempotentRequest
from resource_api.storage import SqliteStore
from tests.served_programs import Serve, program_environ, wait_gone

CLIENTS = 8
ACKNOWLEDGED_BEFORE_THE_KILL = 120


@pytest.fixture
def issuer() -> Iterator[LoopbackIssuer]:
    """An issuer on 127.0.0.1 publishing one ES384 key."""
    with loopback_issuer() as running:
        yield running


def test_every_acknowledged_order_survives_a_sigkill(
    serve: Serve, issuer: LoopbackIssuer, tmp_path: Path
) -> None:
    """Concurrent clients place orders until the API has acknowledged a burst of them; the
    API is then killed (SIGKILL, requests still in flight), restarted on the same file, and
    lists every acknowledged order with the items it was acknowledged with; each order's
    Idempotency-Key survived with it, so retries after the restart create nothing twice."""
    database = tmp_path / "api.sqlite3"
    environ = program_environ(
        LOGTO_ENDPOINT=issuer.endpoint, RESOURCE_API_DATABASE=str(database), LOG_LEVEL="WARNING"
    )
    served = serve("resource_api", environ=environ)
    subjects = [f"user-{n}" for n in range(CLIENTS)]
    tokens = {subject: issuer.token(subject=subject) for subject in subjects}
    acknowledged: dict[str, list[dict[str, object]]] = {subject: [] for subject in subjects}
    unanswered: dict[str, int] = {}  # the order each client had in flight at the kill
    lock = threading.Lock()
    enough = threading.Event()
    count = 0

    def place_orders(subject: str) -> None:
        nonlocal count
        headers = {"Authorization": f"Bearer {tokens[subject]}"}
        with httpx.Client(base_url=served.url, headers=headers, timeout=5) as client:
            for index in range(10 * ACKNOWLEDGED_BEFORE_THE_KILL):
                try:
                    response = client.post(
                        "/shopping/orders", json=_order(subject, index), headers=_key(index)
                    )
                except httpx.TransportError:
                    unanswered[subject] = index  # in flight at the kill: not acknowledged
                    return
                if response.status_code != 201:
                    return
                with lock:
                    acknowledged[subject].append(response.json())
                    count += 1
                    if count >= ACKNOWLEDGED_BEFORE_THE_KILL:
                        enough.set()

    workers = served.workers()
    with ThreadPoolExecutor(max_workers=CLIENTS) as pool:
        running = [pool.submit(place_orders, subject) for subject in subjects]
        assert enough.wait(timeout=60), "the burst was not acknowledged in time"
        for pid in workers:  # the worker holds the database connection: kill it first
            os.kill(pid, signal.SIGKILL)
        served.process.kill()
        for future in running:
            future.result(timeout=30)
    served.process.wait(timeout=10)
    assert wait_gone(workers) == []
    # A crash, not a shutdown: the orders are still in the write-ahead log, not yet in the
    # database file itself (a clean close checkpoints and removes the log).
    assert Path(f"{database}-wal").stat().st_size > 0

    restarted = serve("resource_api", environ=environ)
    total = sum(len(orders) for orders in acknowledged.values())
    assert total >= ACKNOWLEDGED_BEFORE_THE_KILL
    for subject, orders in acknowledged.items():
        listed = httpx.get(
            f"{restarted.url}/shopping/orders",
            headers={"Authorization": f"Bearer {tokens[subject]}"},
            timeout=5,
        ).json()["orders"]
        by_id = {order["id"]: order for order in listed}
        missing = [order["id"] for order in orders if by_id.get(order["id"]) != order]
        assert missing == [], f"{subject}: acknowledged orders lost after the crash"
    # Each order's Idempotency-Key was committed with it: retrying the last acknowledged
    # order replays it, and retrying the one in flight at the kill creates it at most once.
    for subject, orders in acknowledged.items():
        _retry(restarted.url, subject, tokens[subject], orders, unanswered.get(subject))


def _retry(
    url: str, subject: str, token: str, orders: list[dict[str, object]], in_flight: int | None
) -> None:
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=url, headers=headers, timeout=5) as client:
        last = len(orders) - 1
        replay = client.post("/shopping/orders", json=_order(subject, last), headers=_key(last))
        assert (replay.status_code, replay.json()) == (201, orders[-1])
        assert replay.headers["idempotent-replayed"] == "true"
        held = False
        if in_flight is not None:
            retries = [
                client.post(
                    "/shopping/orders", json=_order(subject, in_flight), headers=_key(in_flight)
                )
                for _ in range(2)
            ]
            answers = [
                (retry.status_code, retry.headers.get("retry-after"), retry.json().get("error"))
                for retry in retries
            ]
            # Killed between the key's claim and the order's commit: the claim holds the key,
            # as for a request still being processed, until it is CLAIM_SECONDS old (the
            # README's contract; tests/resource_api/test_idempotency.py advances a clock past
            # it), and nothing was created. Otherwise: created once, then replayed.
            held = answers == [(409, "1", "idempotency_key_in_use")] * 2
            assert held or [status for status, _, _ in answers] == [201, 201], answers
        listed = client.get("/shopping/orders").json()["orders"]
    skus = [order["items"][0]["sku"] for order in listed]
    assert len(skus) == len(set(skus)), f"{subject}: an order was created twice"
    if held:
        assert f"{subject}-{in_flight}" not in skus, f"{subject}: created under a held key"


def _order(subject: str, index: int) -> dict[str, object]:
    return {"items": [{"sku": f"{subject}-{index}", "quantity": 1}]}


def _key(index: int) -> dict[str, str]:
    return {"Idempotency-Key": f'"order-{index}"'}


async def test_a_201_waits_for_the_disk(tmp_path: Path) -> None:
    """The store syncs the write-ahead log at every commit (``synchronous = FULL``), so an
    acknowledged write survives a power loss or an operating-system crash too, not only a
    crash of the process (``NORMAL`` syncs only at checkpoints)."""
    store = SqliteStore(tmp_path / "api.sqlite3")
    try:
        # A connection's own setting (not stored in the file): asked of the store's connection.
        (level,) = store._db.execute("PRAGMA synchronous").fetchone()
    finally:
        await store.close()
    assert level == 2  # 0 OFF, 1 NORMAL, 2 FULL, 3 EXTRA


async def test_a_claim_does_not_leave_the_connection_unsynced(tmp_path: Path) -> None:
    """Claiming an idempotency key commits without an fsync (a claim lost to a power cut left
    nothing behind), and the connection is back to FULL for the write that follows."""
    store = SqliteStore(tmp_path / "api.sqlite3")
    try:
        claim = await store.claim_idempotency_key(
            IdempotentRequest("user-a", "createOrder", "k", "f")
        )
        assert isinstance(claim, Claimed)
        await store.release_idempotency_key(claim)
        (level,) = store._db.execute("PRAGMA synchronous").fetchone()
    finally:
        await store.close()
    assert level == 2
