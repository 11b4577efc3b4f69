"""The session store failing (issue 9, item 3): a write that fails or is cut short is a 503
page, never a sign-in that stored nothing; an unreadable session document is no session and is
removed; nothing is a 500. Real files, a real file-size limit, truncated files written on disk.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from litestar.stores.base import StorageObject

from client_app.app import create_app
from client_app.sessions import COOKIE_NAME, SessionStore, new_session_id
from client_app.settings import Settings
from tests.client_app.conftest import browser, browser_sign_in
from tests.client_app.fake_logto import FakeLogto

REPO = Path(__file__).resolve().parents[2]
FULL_DISK_LIMIT = 450
"""Bytes a session file may reach in the full-disk run (the review used ``prlimit --fsize=1000``
against real Logto tokens; the fake issuer's are shorter: a signed-in document is ~600 bytes)."""


def session_files(directory: Path) -> list[Path]:
    """The files of the session directory."""
    return sorted(directory.iterdir()) if directory.exists() else []


def truncate(path: Path) -> None:
    """Cut ``path`` to half its length, as an interrupted write would leave it."""
    content = path.read_bytes()
    path.write_bytes(content[: len(content) // 2])


def not_a_document(path: Path) -> None:
    """Replace ``path`` by a well-stored entry whose document is not a JSON object."""
    path.write_bytes(StorageObject.new(data=b"\xff not json", expires_in=3600).to_bytes())


def zero_bytes(path: Path) -> None:
    """Empty ``path`` (a crash after the rename, before the data reached the disk)."""
    path.write_bytes(b"")


@pytest.mark.parametrize(
    "damage",
    [
        pytest.param(truncate, id="truncated"),
        pytest.param(zero_bytes, id="empty"),
        pytest.param(not_a_document, id="not-a-document"),
    ],
)
async def test_an_unreadable_session_file_is_no_session_and_is_removed(
    settings: Settings, http_client: httpx.AsyncClient, logto: FakeLogto, damage: object
) -> None:
    """Alice's session file damaged on disk: every page answers as for a signed-out browser
    (home 200, the JSON page 401, sign-in 303, never a 500), the file is gone, and alice can
    sign in again."""
    app = create_app(settings, http_client=http_client)
    async with browser(app) as client:
        await browser_sign_in(client, logto)
        (document,) = session_files(settings.session_database)
        assert callable(damage)
        damage(document)

        home = await client.get("/")
        assert (home.status_code, "Alice" in home.text) == (200, False)
        assert not document.exists()
        assert (await client.get("/protected/me.json")).status_code == 401
        assert (await client.get("/sign-in", follow_redirects=False)).status_code == 303
        assert (await browser_sign_in(client, logto)).status_code == 303
        assert "Alice" in (await client.get("/")).text


async def test_the_sweep_removes_unreadable_files_and_keeps_the_rest(
    settings: Settings, http_client: httpx.AsyncClient, logto: FakeLogto
) -> None:
    """The hourly sweep meets a truncated file: it removes it and carries on (the file store's
    own sweep raised on it, and the sweeper task died silently)."""
    app = create_app(settings, http_client=http_client)
    async with browser(app) as client:
        await browser_sign_in(client, logto)
        client.cookies.clear()
        await browser_sign_in(client, logto, "bob")
    damaged, intact = session_files(settings.session_database)
    truncate(damaged)
    store = app.state.context.gateway.sessions.store

    await store.delete_expired()

    assert session_files(settings.session_database) == [intact]


async def test_a_garbled_document_in_any_store_is_removed(settings: Settings) -> None:
    """What the store holds but is no session document is dropped from the store too."""
    app = create_app(settings)
    sessions: SessionStore = app.state.context.gateway.sessions
    settings.session_database.mkdir(mode=0o700, parents=True)
    session_id = new_session_id()
    await sessions.store.set(sessions.storage_key(session_id), b'{"idToken": 1}', expires_in=60)

    assert (await sessions.load(session_id)).keys() == frozenset()
    assert not await sessions.store.exists(sessions.storage_key(session_id))


def test_a_full_disk_is_a_503_page_not_a_sign_in(tmp_path: Path) -> None:
    """Issue 9, item 3, as reproduced: the app runs with a file-size limit and alice
    signs in. Her session document does not fit: the callback answers 503 "try again" (not a
    sign-in that stored nothing or half a file), home and the JSON page answer as signed out
    (never 500), and no partial file is left behind."""
    directory = tmp_path / "sessions"
    environment = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONDONTWRITEBYTECODE": "1"}
    run = subprocess.run(  # noqa: S603 - this interpreter, a module of the test suite
        [sys.executable, "-m", "tests.client_app.full_disk", str(directory), str(FULL_DISK_LIMIT)],
        cwd=REPO,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    report = json.loads(run.stdout.strip().splitlines()[-1])

    assert report["callback"] == 503, report
    assert "Sessions temporarily unavailable" in report["callback_page"]
    assert report["retry_after"] is not None
    assert (report["home"], report["home_signed_in"]) == (200, False)
    assert report["me"] == 401
    assert report["files"] == []
    assert "Traceback" not in run.stderr
    assert "server_error" not in run.stderr


async def test_an_unwritable_store_directory_is_a_503_page(
    settings: Settings, http_client: httpx.AsyncClient, logto: FakeLogto
) -> None:
    """The session directory replaced by a file (the store cannot create anything in it): the
    callback is a 503 page, not a 500 and not a sign-in."""
    app = create_app(settings, http_client=http_client)
    async with browser(app) as client:
        settings.session_database.rmdir()
        settings.session_database.write_bytes(b"")
        done = await browser_sign_in(client, logto)
        assert done.status_code == 503
        assert "Sessions temporarily unavailable" in done.text
        assert COOKIE_NAME not in client.cookies
        assert (await client.get("/")).status_code == 200
