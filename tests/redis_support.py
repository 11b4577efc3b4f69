"""A real Redis for the tests: ``TEST_REDIS_URL`` if set (CI starts one), else a
``redis-server`` started here on a free port of 127.0.0.1 without persistence, else a skip,
or a failure when ``CI`` is set (a missing Redis must not turn CI green by skipping).

``tests/conftest.py`` imports the session-scoped fixture ``redis_url`` once for every test
directory (imported into two ``conftest.py`` files it would be two fixtures, and a run without
``TEST_REDIS_URL`` would start two servers)::

    from tests.redis_support import redis_url_fixture  # noqa: F401 - the fixture redis_url
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis

from demo.launcher import free_port
from tests.support import missing_on_this_machine

START_TIMEOUT_SECONDS = 10.0
START_ATTEMPTS = 3
"""A free port can be taken between choosing it and binding it: try another."""


@dataclass
class RedisServer:
    """A ``redis-server`` process this test run started."""

    url: str
    port: int
    process: subprocess.Popen[bytes]
    log_path: Path

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if it lingers."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)

    def log(self) -> str:
        """What the server wrote (for failure messages)."""
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""


def redis_server_binary() -> str | None:
    """Debian's ``redis-server``, if installed."""
    return shutil.which("redis-server")


def start_redis_server(directory: Path, port: int | None = None) -> RedisServer:
    """Start ``redis-server`` on 127.0.0.1 (``port``, or a free one) with no persistence;
    return once it answers ``PING``."""
    binary = redis_server_binary()
    if binary is None:
        raise RuntimeError("redis-server is not installed (apt-get install redis-server)")
    problems: list[str] = []
    for _ in range(1 if port is not None else START_ATTEMPTS):
        chosen = port if port is not None else free_port()
        server = _spawn(binary, directory, chosen)
        try:
            _wait_until_ready(server)
        except RuntimeError as exc:
            server.stop()
            problems.append(str(exc))
            continue
        return server
    raise RuntimeError("redis-server did not start:\n" + "\n".join(problems))


def _spawn(binary: str, directory: Path, port: int) -> RedisServer:
    directory.mkdir(parents=True, exist_ok=True)
    log_path = directory / f"redis-{port}.log"
    args = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly"]
    args += ["no", "--dir", str(directory), "--logfile", str(log_path), "--daemonize", "no"]
    process = subprocess.Popen(  # noqa: S603 - a fixed command line
        args,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # a Ctrl-C of pytest is for pytest; the fixture stops it
    )
    return RedisServer(f"redis://127.0.0.1:{port}/0", port, process, log_path)


def _wait_until_ready(server: RedisServer) -> None:
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    with redis.Redis.from_url(server.url, socket_timeout=1, socket_connect_timeout=1) as client:
        while True:
            if server.process.poll() is not None:
                raise RuntimeError(f"exited with {server.process.returncode}: {server.log()}")
            try:
                if client.ping():
                    return
            except redis.RedisError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"no answer to PING within {START_TIMEOUT_SECONDS:g} s")
            time.sleep(0.05)


def require_redis_server(why: str = "") -> None:
    """Skip the test when ``redis-server`` is missing; fail it instead when ``CI`` is set."""
    if redis_server_binary() is not None:
        return
    reason = " ".join(("redis-server is not installed (apt-get install redis-server)", why))
    missing_on_this_machine(reason.strip(), tests="the Redis tests")


@pytest.fixture(scope="session", name="redis_url")
def redis_url_fixture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The URL of a real Redis for this test session."""
    given = os.environ.get("TEST_REDIS_URL", "").strip()
    if given:
        yield given
        return
    require_redis_server("nor TEST_REDIS_URL set")
    server = start_redis_server(tmp_path_factory.mktemp("redis"))
    try:
        yield server.url
    finally:
        server.stop()
