"""The client app signing alice in while its session files may hold at most ``limit`` bytes
(``RLIMIT_FSIZE``, what ``prlimit --fsize`` sets): a full disk, as the store sees one.

Run by ``test_session_store_failures.py`` in a subprocess (the limit is per process):
``python -m tests.client_app.full_disk <session directory> <limit>``. Prints one JSON object:
each answer's status, what the pages said, the files left in the directory.
"""

from __future__ import annotations

import asyncio
import json
import resource
import sys
from pathlib import Path
from typing import Any

import httpx
import respx

from client_app.app import create_app
from client_app.settings import load_settings
from tests.client_app.conftest import browser, browser_sign_in, environment
from tests.client_app.fake_logto import FakeLogto


async def sign_in_on_a_full_disk(directory: Path, limit: int) -> dict[str, Any]:
    """Sign alice in, then open home and the JSON page; report what the browser saw."""
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    settings = load_settings(environment(SESSION_DATABASE=str(directory)))
    with respx.mock(assert_all_called=False, assert_all_mocked=True) as router:
        logto = FakeLogto(router)
        async with httpx.AsyncClient() as http_client:
            app = create_app(settings, http_client=http_client)
            async with browser(app) as client:
                callback = await browser_sign_in(client, logto)
                home = await client.get("/")
                me = await client.get("/protected/me.json")
    return {
        "callback": callback.status_code,
        "callback_page": callback.text,
        "retry_after": callback.headers.get("retry-after"),
        "home": home.status_code,
        "home_signed_in": "Alice" in home.text,
        "me": me.status_code,
    }


if __name__ == "__main__":
    directory = Path(sys.argv[1])
    report = asyncio.run(sign_in_on_a_full_disk(directory, int(sys.argv[2])))
    report["files"] = sorted(f"{p.name}:{p.stat().st_size}" for p in directory.iterdir())
    print(json.dumps(report))
