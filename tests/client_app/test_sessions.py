"""Server-side sessions: HMAC-keyed documents, a restart-proof file store, per-session locks,
and the cookie that carries nothing but the id."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from litestar.stores.file import FileStore
from litestar.stores.memory import MemoryStore

from client_app.sessions import (
    SessionData,
    SessionLocks,
    SessionStore,
    expired_session_cookie,
    is_session_id,
    new_session_id,
    session_cookie,
    session_id_from_cookies,
)
from client_app.settings import Secret, load_settings
from tests.client_app.conftest import environment

SECRET = Secret("k" * 32)


def file_sessions(path: Path) -> SessionStore:
    """Sessions in files under ``path``."""
    return SessionStore(FileStore(path), secret=SECRET, max_age_seconds=3600)


def files_in(directory: Path) -> list[Path]:
    """The files of the store's directory."""
    return list(directory.iterdir())


async def test_a_session_survives_a_restart(tmp_path: Path) -> None:
    """What one process saved, a new store on the same directory reads."""
    session_id = new_session_id()
    async with file_sessions(tmp_path).open(session_id) as data:
        data.set("refreshToken", "rt-1")

    assert (await file_sessions(tmp_path).load(session_id)).get("refreshToken") == "rt-1"


async def test_the_store_never_holds_the_session_id(tmp_path: Path) -> None:
    """Keys are HMACs of the id: reading the store's files reveals no cookie value."""
    store = file_sessions(tmp_path)
    session_id = new_session_id()
    async with store.open(session_id) as data:
        data.set("idToken", "x")

    files = files_in(tmp_path)
    assert len(files) == 1
    assert session_id not in files[0].name
    assert session_id.encode() not in files[0].read_bytes()
    assert store.storage_key(session_id) != session_id
    other_secret = SessionStore(FileStore(tmp_path), secret=Secret("o" * 32), max_age_seconds=1)
    assert (await other_secret.load(session_id)).keys() == frozenset()


async def test_an_emptied_session_is_deleted(tmp_path: Path) -> None:
    """Clearing every key removes the document."""
    store = file_sessions(tmp_path)
    session_id = new_session_id()
    async with store.open(session_id) as data:
        data.set("idToken", "x")
    async with store.open(session_id) as data:
        data.clear()
    assert files_in(tmp_path) == []


@pytest.mark.parametrize(
    ("keys", "lifetime"),
    [
        pytest.param({"signInSession": "{}"}, 3600, id="sign-in-attempt"),
        pytest.param({"idToken": "x", "accessTokenMap": "{}"}, 86400, id="signed-in"),
        pytest.param({"refreshToken": "x"}, 86400, id="refresh-token"),
    ],
)
async def test_only_signed_in_sessions_live_long(keys: dict[str, str], lifetime: int) -> None:
    """A session holding only a sign-in attempt expires after an hour, a signed-in one after
    the configured lifetime."""
    memory = MemoryStore()
    store = SessionStore(memory, secret=SECRET, max_age_seconds=86400)
    session_id = new_session_id()
    async with store.open(session_id) as data:
        for key, value in keys.items():
            data.set(key, value)
    assert await memory.expires_in(store.storage_key(session_id)) in (lifetime - 1, lifetime)


async def test_expired_and_unreadable_documents_read_as_empty() -> None:
    """An expired entry or one that is not a JSON object of strings is an empty session."""
    memory = MemoryStore()
    store = SessionStore(memory, secret=SECRET, max_age_seconds=3600)
    expired, garbled = new_session_id(), new_session_id()
    await memory.set(store.storage_key(expired), b'{"idToken":"x"}', expires_in=-1)
    await memory.set(store.storage_key(garbled), b'{"idToken": 1}')

    assert (await store.load(expired)).keys() == frozenset()
    assert (await store.load(garbled)).keys() == frozenset()


async def test_changes_are_saved_even_when_the_block_fails() -> None:
    """A rotated refresh token stored before a failure is kept."""
    store = SessionStore(MemoryStore(), secret=SECRET, max_age_seconds=3600)
    session_id = new_session_id()

    async def rotate_then_fail() -> None:
        async with store.open(session_id) as data:
            data.set("refreshToken", "rotated")
            raise RuntimeError

    with pytest.raises(RuntimeError):
        await rotate_then_fail()
    assert (await store.load(session_id)).get("refreshToken") == "rotated"


async def test_one_session_is_opened_by_one_request_at_a_time() -> None:
    """Blocks on the same session run one after the other, each seeing the last write;
    blocks on different sessions overlap."""
    store = SessionStore(MemoryStore(), secret=SECRET, max_age_seconds=3600)
    first, second = new_session_id(), new_session_id()
    order: list[str] = []

    async def increment(session_id: str, label: str) -> None:
        async with store.open(session_id) as data:
            count = int(data.get("count") or "0")
            order.append(f"{label}:start")
            await asyncio.sleep(0.01)
            data.set("count", str(count + 1))
            order.append(f"{label}:end")

    await asyncio.gather(increment(first, "a"), increment(first, "b"), increment(second, "c"))

    assert (await store.load(first)).get("count") == "2"
    assert order.index("a:end") < order.index("b:start")
    assert order.index("c:start") < order.index("a:end")


async def test_locks_are_dropped_when_unused() -> None:
    """The lock table does not grow with every session ever seen."""
    locks = SessionLocks()
    async with locks.lock("a"), locks.lock("b"):
        assert len(locks) == 2
    assert len(locks) == 0


def test_session_data_is_the_sdk_storage() -> None:
    """``set(None)`` deletes; only real changes mark the document changed."""
    unchanged, deleted = SessionData({"idToken": "x"}), SessionData({"idToken": "x"})
    unchanged.set("idToken", "x")
    deleted.set("idToken", None)
    assert (unchanged.changed, deleted.changed) == (False, True)
    assert deleted.get("idToken") is None


@pytest.mark.parametrize(
    ("value", "valid"),
    [
        pytest.param(new_session_id(), True, id="ours"),
        pytest.param(None, False, id="none"),
        pytest.param("", False, id="empty"),
        pytest.param("null", False, id="null"),
        pytest.param("a" * 42, False, id="short"),
        pytest.param("a" * 44, False, id="long"),
        pytest.param("a" * 42 + "/", False, id="bad-character"),
    ],
)
def test_only_ids_of_our_shape_are_read(value: str | None, valid: bool) -> None:
    """A cookie that is not one of our ids counts as no session."""
    assert is_session_id(value) is valid


def test_the_cookie_is_httponly_and_lax_over_http() -> None:
    """Over http: HttpOnly, SameSite=Lax, path /, no Secure (browsers would drop it)."""
    settings = load_settings(environment())
    header = session_cookie(settings, "id").to_header(header="")
    assert header.startswith("client_app_session=id;")
    assert "HttpOnly" in header
    assert "SameSite=lax" in header
    assert "Path=/" in header
    assert "Secure" not in header


def test_the_cookie_is_secure_and_host_prefixed_over_https() -> None:
    """Over https the cookie is ``__Host-`` prefixed and Secure (no sibling can set it)."""
    settings = load_settings(environment(CLIENT_APP_BASE_URL="https://app.example.com"))
    header = session_cookie(settings, "id").to_header(header="")
    assert header.startswith("__Host-client_app_session=id;")
    assert "Secure" in header
    assert "Domain" not in header
    assert "Max-Age=0" in expired_session_cookie(settings).to_header(header="")
    session_id = new_session_id()
    assert session_id_from_cookies({"client_app_session": session_id}, settings) is None
    assert session_id_from_cookies({"__Host-client_app_session": session_id}, settings) == (
        session_id
    )
