"""``Idempotency-Key`` on ``POST /shopping/orders`` and ``POST /store/products`` (IETF
draft-ietf-httpapi-idempotency-key-header): a request sent twice creates once.

Through the app (real ES384 tokens, the SQLite store on a file): same key and body -> the first
answer again, marked; another body -> 422; a key still being processed (claimed by another
process on the same file) -> 409; keys per subject and per route, kept 24 h then purged;
malformed keys -> 400 with a clear message that never echoes the key. Through the store, for
both implementations (SQLite, PostgreSQL): the answer is recorded in the write's transaction, so
neither can exist without the other; a key is given to one claimant only, even by two replicas.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import msgspec
import psycopg
import pytest

from resource_api.idempotency import (
    CLAIM_SECONDS,
    RETENTION_SECONDS,
    Claimed,
    ClaimLost,
    IdempotentRequest,
    InFlight,
    InvalidIdempotencyKey,
    KeyReused,
    Replay,
    fingerprint,
    parse_idempotency_key,
)
from resource_api.routes.shopping import NewOrder
from resource_api.storage import PURGE_INTERVAL_SECONDS, OrderItem, SqliteStore, Store
from tests.resource_api.conftest import Client, OpenStore
from tests.resource_api.helpers import SHOPPING_WRITE, STORE_WRITE
from tests.support import FakeClock

Auth = Callable[..., dict[str, str]]
ORDER = {"items": [{"sku": "tea", "quantity": 2}], "note": "by the door"}
PRODUCT = {"name": "Green tea", "price_cents": 450}
ALICE_WRITE = {**SHOPPING_WRITE, "scope": "shopping:read shopping:write", "sub": "user-alice"}


async def _orders(store: Store, owner: str = "user-alice") -> list[int]:
    return [order.id for order in await store.list_orders(owner)]


async def _post_order(
    client: Client, auth: Auth, key: str | None, body: dict[str, Any] = ORDER, /, **claims: Any
) -> httpx.Response:
    headers = auth(**{**ALICE_WRITE, **claims})
    if key is not None:
        headers["Idempotency-Key"] = key
    return await client.post("/shopping/orders", json=body, headers=headers)


# -- same key, same body: one order, the first answer again ------------------------------------


@pytest.mark.parametrize(
    ("first", "second"),
    [
        pytest.param('"order-form-1"', '"order-form-1"', id="sf-string"),
        pytest.param("order-form-1", "order-form-1", id="bare"),
        pytest.param('"order-form-1"', "order-form-1", id="quoted-then-bare"),
    ],
)
async def test_a_request_sent_twice_creates_one_order(
    client: Client, auth: Auth, store: SqliteStore, first: str, second: str
) -> None:
    """The second copy gets the first answer (status and body) marked as a replay, and the
    caller has one new order."""
    before = await _orders(store)
    one = await _post_order(client, auth, first)
    two = await _post_order(client, auth, second)
    assert (one.status_code, two.status_code) == (201, 201)
    assert two.content == one.content
    assert two.headers.get("idempotent-replayed") == "true"
    assert "idempotent-replayed" not in one.headers
    assert (await _orders(store)) == [*before, one.json()["id"]]


async def test_the_same_document_with_other_spacing_is_the_same_request(
    client: Client, auth: Auth, store: SqliteStore
) -> None:
    """The body's identity is its content, not its bytes (key order, spacing, an explicit
    ``"note": null`` against none)."""
    headers = {**auth(**ALICE_WRITE), "Idempotency-Key": "k", "Content-Type": "application/json"}
    one = await client.post(
        "/shopping/orders", content=b'{"items":[{"sku":"tea","quantity":2}]}', headers=headers
    )
    two = await client.post(
        "/shopping/orders",
        content=b'{ "note": null, "items": [ {"quantity": 2, "sku": "tea"} ] }',
        headers=headers,
    )
    assert (one.status_code, two.status_code, two.content) == (201, 201, one.content)
    assert len(await _orders(store)) == 2  # the seeded order and this one


async def test_a_product_sent_twice_is_added_once(
    client: Client, auth: Auth, store: SqliteStore
) -> None:
    """The same holds for ``POST /store/products``."""
    headers = {**auth(**STORE_WRITE), "Idempotency-Key": '"product-form-1"'}
    one = await client.post("/store/products", json=PRODUCT, headers=headers)
    two = await client.post("/store/products", json=PRODUCT, headers=headers)
    assert (one.status_code, two.status_code, two.content) == (201, 201, one.content)
    assert two.headers.get("idempotent-replayed") == "true"
    assert [p.name for p in await store.list_products(None)] == ["Global tea", "Green tea"]


async def test_without_a_key_every_request_creates(
    client: Client, auth: Auth, store: SqliteStore
) -> None:
    """The header is optional: without it, each POST creates (as before)."""
    one = await _post_order(client, auth, None)
    two = await _post_order(client, auth, None)
    assert one.json()["id"] != two.json()["id"]
    assert len(await _orders(store)) == 3


# -- same key, other body: 422; in flight: 409 ---------------------------------------------------


async def test_a_key_reused_with_another_body_is_422(
    client: Client, auth: Auth, store: SqliteStore
) -> None:
    """A different body under a used key is refused, and creates nothing."""
    await _post_order(client, auth, "k")
    other = {"items": [{"sku": "tea", "quantity": 3}]}
    response = await _post_order(client, auth, "k", other)
    assert response.status_code == 422
    assert response.json() == {
        "error": "idempotency_key_reused",
        "error_description": "This Idempotency-Key was already used with a different request "
        "body; send a new key for a new request.",
    }
    assert len(await _orders(store)) == 2


async def test_a_key_still_being_processed_is_409(
    client: Client, auth: Auth, store: SqliteStore, database: Path, clock: FakeClock
) -> None:
    """Another process on the same database (a second worker) holds the key for a request it
    has not answered yet: 409 with Retry-After, nothing created; once that claim is abandoned
    (older than CLAIM_SECONDS, its process died), the key is taken over."""
    other_worker = SqliteStore(database, clock=clock)
    try:
        first = await _post_order(client, auth, "k")  # to learn the fingerprint's request
        assert first.status_code == 201
        claim = await other_worker.claim_idempotency_key(
            IdempotentRequest("user-alice", "createOrder", "busy", _fingerprint_of(ORDER))
        )
        assert isinstance(claim, Claimed)
        response = await _post_order(client, auth, "busy")
        assert (response.status_code, response.json()["error"]) == (409, "idempotency_key_in_use")
        assert response.headers["retry-after"] == "1"
        assert len(await _orders(store)) == 2
        clock.advance(CLAIM_SECONDS + 1)
        taken_over = await _post_order(client, auth, "busy")
        assert taken_over.status_code == 201
        assert "idempotent-replayed" not in taken_over.headers
        with pytest.raises(ClaimLost):  # the first claimant's write would come too late
            await other_worker.create_order(
                "user-alice", [OrderItem("tea", 2)], None, idempotency=claim
            )
        assert len(await _orders(store)) == 3
    finally:
        await other_worker.close()


def _fingerprint_of(body: dict[str, Any]) -> str:
    return fingerprint(msgspec.convert(body, NewOrder))


# -- scope: per subject, per route; 24 h ----------------------------------------------------------


async def test_keys_are_per_subject(client: Client, auth: Auth, store: SqliteStore) -> None:
    """bob sending alice's key places his own order: he never sees hers."""
    alice = await _post_order(client, auth, "shared-key")
    bob = await _post_order(client, auth, "shared-key", sub="user-bob")
    assert bob.status_code == 201
    assert "idempotent-replayed" not in bob.headers
    assert bob.json()["id"] != alice.json()["id"]
    assert (await _orders(store, "user-bob")) == [bob.json()["id"]]


async def test_keys_are_per_route(client: Client, auth: Auth, store: SqliteStore) -> None:
    """One key on the orders route and on the products route: two creations."""
    order = await _post_order(client, auth, "form", sub="user-bob")
    headers = {**auth(**STORE_WRITE, sub="user-bob"), "Idempotency-Key": "form"}
    product = await client.post("/store/products", json=PRODUCT, headers=headers)
    assert (order.status_code, product.status_code) == (201, 201)
    assert "idempotent-replayed" not in product.headers


async def test_keys_are_kept_24_hours_then_purged(
    client: Client, auth: Auth, store: SqliteStore, clock: FakeClock, database: Path
) -> None:
    """Just under 24 h the answer is replayed; after, the key is free again, and expired keys
    are deleted from the database (by a claim, at most every PURGE_INTERVAL_SECONDS)."""

    def fresh() -> dict[str, int]:  # a token issued now, for the advanced clock
        return {"iat": int(clock.now), "exp": int(clock.now) + 3600}

    first = await _post_order(client, auth, "daily")
    clock.advance(RETENTION_SECONDS - 1)
    replay = await _post_order(client, auth, "daily", **fresh())
    assert replay.headers.get("idempotent-replayed") == "true"
    clock.advance(2)
    again = await _post_order(client, auth, "daily", **fresh())
    assert again.json()["id"] != first.json()["id"]
    assert "idempotent-replayed" not in again.headers
    assert _stored_keys(database) == ["daily"]
    clock.advance(RETENTION_SECONDS + PURGE_INTERVAL_SECONDS)
    await _post_order(client, auth, "another", **fresh())  # claims purge expired keys
    assert _stored_keys(database) == ["another"]


def _stored_keys(database: Path) -> list[str]:
    with sqlite3.connect(database) as db:
        rows = db.execute("SELECT key FROM idempotency_keys ORDER BY key").fetchall()
    db.close()
    return [key for (key,) in rows]


# -- malformed keys: 400 ----------------------------------------------------------------------

EMPTY = "The Idempotency-Key header is empty; send a unique key."
TOO_LONG = "The Idempotency-Key is too long: at most 255 characters."


@pytest.mark.parametrize(
    ("value", "description"),
    [
        pytest.param("", EMPTY, id="empty"),
        pytest.param('""', EMPTY, id="empty-sf"),
        pytest.param("k" * 256, TOO_LONG, id="256"),
        pytest.param(f'"{"k" * 256}"', TOO_LONG, id="256-sf"),
        pytest.param(
            "secret\x01key",
            "The Idempotency-Key header must be printable ASCII (no control characters).",
            id="control",
        ),
        pytest.param(
            "secr\xe9t",
            "The Idempotency-Key header must be printable ASCII (no control characters).",
            id="latin-1",
        ),
        pytest.param(
            '"secret',
            "The Idempotency-Key header must be one quoted string (send the header once).",
            id="unterminated",
        ),
        pytest.param(
            '"secret", "other"',
            "The Idempotency-Key header must be one quoted string (send the header once).",
            id="two-sf",
        ),
        pytest.param(
            "secret, other",
            "The Idempotency-Key header must be one key: quote it if it contains a comma or a "
            "quote (send the header once).",
            id="two-bare",
        ),
    ],
)  # fmt: skip
async def test_a_malformed_key_is_400_and_never_echoed(
    client: Client, auth: Auth, store: SqliteStore, value: str, description: str
) -> None:
    """400 invalid_idempotency_key naming what is wrong with the key; the key is not in the answer;
    nothing is created."""
    headers = [
        *((name.encode(), token.encode()) for name, token in auth(**ALICE_WRITE).items()),
        (b"Idempotency-Key", value.encode("latin-1")),
    ]
    response = await client.post("/shopping/orders", json=ORDER, headers=headers)
    assert (response.status_code, response.json()) == (
        400,
        {"error": "invalid_idempotency_key", "error_description": description},
    )
    assert "secret" not in response.text
    assert len(await _orders(store)) == 1


async def test_two_key_headers_are_400(client: Client, auth: Auth, store: SqliteStore) -> None:
    """Two header lines (one key each) are one malformed field, not two keys."""
    headers = [*auth(**ALICE_WRITE).items(), ("Idempotency-Key", "a"), ("Idempotency-Key", "b")]
    response = await client.post("/shopping/orders", json=ORDER, headers=headers)
    assert response.status_code == 400
    assert len(await _orders(store)) == 1


@pytest.mark.parametrize(
    ("value", "key"),
    [
        ('"8e03978e-40d5-43e8-bc93-6894a57f9324"', "8e03978e-40d5-43e8-bc93-6894a57f9324"),
        ("8e03978e-40d5-43e8-bc93-6894a57f9324", "8e03978e-40d5-43e8-bc93-6894a57f9324"),
        ('"a \\"quoted\\" \\\\ key, with a comma"', 'a "quoted" \\ key, with a comma'),
        ("  spaced  ", "spaced"),
        (f'"{"k" * 255}"', "k" * 255),
    ],
)
def test_keys_are_read_as_sf_strings_or_bare(value: str, key: str) -> None:
    """The draft's Structured Field string, unescaped, or a bare key."""
    assert parse_idempotency_key(value) == key


def test_an_invalid_key_is_a_value_error() -> None:
    """InvalidIdempotencyKey is what the adapter turns into the 400."""
    with pytest.raises(InvalidIdempotencyKey):
        parse_idempotency_key("\x7f")


# -- the store: claim, answer in the write's transaction, release (both implementations) ------


@pytest.fixture
async def keyed_store(open_store: OpenStore) -> Store:
    """An empty store of each implementation."""
    return await open_store()


REQUEST = IdempotentRequest("user-alice", "createOrder", "k", "fingerprint-1")


async def test_a_claim_is_answered_by_the_write_and_replayed(keyed_store: Store) -> None:
    """claim -> Claimed; again before the write -> InFlight (another body: KeyReused); the
    write records the answer; then Replay with the order's JSON, and KeyReused for another
    body."""
    claim = await keyed_store.claim_idempotency_key(REQUEST)
    assert isinstance(claim, Claimed)
    assert await keyed_store.claim_idempotency_key(REQUEST) == InFlight()
    other = IdempotentRequest("user-alice", "createOrder", "k", "fingerprint-2")
    assert await keyed_store.claim_idempotency_key(other) == KeyReused()
    order = await keyed_store.create_order(
        "user-alice", [OrderItem("tea", 1)], None, idempotency=claim
    )
    replay = await keyed_store.claim_idempotency_key(REQUEST)
    assert isinstance(replay, Replay)
    assert replay.body.startswith(f'{{"id":{order.id},'.encode())
    assert await keyed_store.claim_idempotency_key(other) == KeyReused()


async def test_a_released_claim_frees_the_key(keyed_store: Store) -> None:
    """A write that failed releases its claim: the retry proceeds."""
    claim = await keyed_store.claim_idempotency_key(REQUEST)
    assert isinstance(claim, Claimed)
    await keyed_store.release_idempotency_key(claim)
    assert isinstance(await keyed_store.claim_idempotency_key(REQUEST), Claimed)


async def test_an_abandoned_claim_is_taken_over_and_its_late_write_refused(
    open_store: OpenStore, clock: FakeClock
) -> None:
    """Two replicas: one claims and stalls past CLAIM_SECONDS; the other takes the key over
    and answers it; the first one's late write is refused (ClaimLost) and writes nothing."""
    one, two = await open_store(), await open_store()
    stalled = await one.claim_idempotency_key(REQUEST)
    assert isinstance(stalled, Claimed)
    assert await two.claim_idempotency_key(REQUEST) == InFlight()
    clock.advance(CLAIM_SECONDS + 1)
    taken = await two.claim_idempotency_key(REQUEST)
    assert isinstance(taken, Claimed)
    order = await two.create_order("user-alice", [OrderItem("tea", 1)], None, idempotency=taken)
    with pytest.raises(ClaimLost):
        await one.create_order("user-alice", [OrderItem("tea", 1)], None, idempotency=stalled)
    assert [each.id for each in await one.list_orders("user-alice")] == [order.id]


async def test_keys_expire_after_24_hours(keyed_store: Store, clock: FakeClock) -> None:
    """An answered key is replayed until RETENTION_SECONDS, then free again."""
    claim = await keyed_store.claim_idempotency_key(REQUEST)
    assert isinstance(claim, Claimed)
    await keyed_store.create_order("user-alice", [OrderItem("tea", 1)], None, idempotency=claim)
    clock.advance(RETENTION_SECONDS - 1)
    assert isinstance(await keyed_store.claim_idempotency_key(REQUEST), Replay)
    clock.advance(2)
    assert isinstance(await keyed_store.claim_idempotency_key(REQUEST), Claimed)


async def test_concurrent_claims_of_one_key_give_it_to_one(open_store: OpenStore) -> None:
    """Twenty claims of one key at once, through two stores: exactly one is Claimed."""
    one, two = await open_store(), await open_store()
    claims = await asyncio.gather(
        *(store.claim_idempotency_key(REQUEST) for store in [one, two] * 10)
    )
    assert sum(isinstance(claim, Claimed) for claim in claims) == 1
    assert all(isinstance(claim, Claimed | InFlight) for claim in claims)


async def test_no_order_without_its_answer(
    keyed_store: Store, store_kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """If recording the key's answer fails (here a trigger stands for a full disk), the order
    insert is rolled back with it: one transaction, all or nothing."""
    claim = await keyed_store.claim_idempotency_key(REQUEST)
    assert isinstance(claim, Claimed)
    if store_kind == "sqlite":
        with sqlite3.connect(tmp_path / "store" / "api.sqlite3") as db:
            db.execute(
                "CREATE TRIGGER fail_answer BEFORE UPDATE ON idempotency_keys"
                " BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END"
            )
        db.close()
        failure: type[Exception] = sqlite3.IntegrityError
    else:
        with psycopg.connect(request.getfixturevalue("postgres_url"), autocommit=True) as pg:
            pg.execute(
                "CREATE FUNCTION fail_answer() RETURNS trigger LANGUAGE plpgsql AS"
                " $$ BEGIN RAISE EXCEPTION 'database or disk is full'; END $$"
            )
            pg.execute(
                "CREATE TRIGGER fail_answer BEFORE UPDATE ON idempotency_keys"
                " FOR EACH ROW EXECUTE FUNCTION fail_answer()"
            )
        failure = asyncpg.RaiseError
    with pytest.raises(failure, match="disk is full"):
        await keyed_store.create_order("user-alice", [OrderItem("tea", 1)], None, idempotency=claim)
    assert await keyed_store.list_orders("user-alice") == []
    assert await keyed_store.claim_idempotency_key(REQUEST) == InFlight()  # still unanswered


async def test_a_failed_write_releases_the_key(
    client: Client, auth: Auth, store: SqliteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The store fails during the write: 500, the key is released, and the retry with the
    same key creates the order."""
    original = store.create_order

    async def failing(*args: Any, **kwargs: Any) -> Any:
        del args, kwargs
        raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr(store, "create_order", failing)
    assert (await _post_order(client, auth, "retry-me")).status_code == 500
    monkeypatch.setattr(store, "create_order", original)
    retried = await _post_order(client, auth, "retry-me")
    assert retried.status_code == 201
    assert "idempotent-replayed" not in retried.headers
