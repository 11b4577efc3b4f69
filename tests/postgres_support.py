"""A real PostgreSQL for the tests: ``TEST_DATABASE_URL`` if set (CI may give one), else Debian's
server binaries (``initdb`` + ``postgres``) started here on a free port of 127.0.0.1 in a
temporary directory, without durability (``fsync=off``: nothing outlives the run), else a skip,
or a failure when ``CI`` is set (a missing PostgreSQL must not turn CI green by skipping).

``initdb`` and ``postgres`` refuse to run as root: as root, they run as the ``postgres`` user
(which Debian's package creates) or else ``nobody``, with the temporary directory given to
that user.

Each test gets a database of its own, created from an empty template (``CREATE DATABASE ...
TEMPLATE``, a file copy: a few milliseconds). ``tests/conftest.py`` imports the session fixture
``postgres_server`` once for every test directory (like ``redis_url``)::

    from tests.postgres_support import postgres_server_fixture  # noqa: F401
"""

from __future__ import annotations

import contextlib
import os
import pwd
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest

from demo.launcher import free_port
from tests.support import missing_on_this_machine

START_TIMEOUT_SECONDS = 20.0
START_ATTEMPTS = 3
"""A free port can be taken between choosing it and binding it: try another."""
SUPERUSER = "postgres"
TEMPLATE = "store_template"
"""An empty database the per-test databases are copied from."""


def server_binaries() -> Path | None:
    """The directory holding ``initdb`` and ``postgres``: on PATH, or Debian's
    ``/usr/lib/postgresql/<version>/bin`` (the newest), which is not on PATH."""
    on_path = shutil.which("initdb")
    if on_path is not None and shutil.which("postgres") is not None:
        return Path(on_path).resolve().parent
    found = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/initdb"),
        key=lambda path: int(path.parent.parent.name.split(".")[0]),
    )
    return found[-1].parent if found else None


def _run_as() -> str | None:
    """The user the server runs as: ourselves unless we are root."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            pwd.getpwnam(name)
            return name
    raise RuntimeError("running as root and neither a postgres nor a nobody user exists")


@dataclass
class PostgresServer:
    """A ``postgres`` process this test run started (its data directory survives a stop, so
    :meth:`start` serves the same databases again, on the same port)."""

    directory: Path
    port: int
    user: str | None
    binaries: Path
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        """The superuser's URL of the ``postgres`` database."""
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/postgres"

    @property
    def log_path(self) -> Path:
        """Where the server logs."""
        return self.directory / "postgres.log"

    def start(self) -> None:
        """Start ``postgres`` on the data directory; return once it accepts connections."""
        log = self.log_path.open("ab")
        try:
            self.process = subprocess.Popen(  # noqa: S603 - a fixed command line
                [
                    str(self.binaries / "postgres"),
                    "-D",
                    str(self.directory / "data"),
                    "-p",
                    str(self.port),
                    "-c",
                    "listen_addresses=127.0.0.1",
                    "-c",
                    f"unix_socket_directories={self.directory}",
                    "-c",
                    "fsync=off",  # tests need no durability; commits stay synchronous
                    "-c",
                    "full_page_writes=off",
                    "-c",
                    "max_connections=200",
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                user=self.user,
                start_new_session=True,  # a Ctrl-C of pytest is for pytest; the fixture stops it
            )
        finally:
            log.close()
        self._wait_until_ready()

    def stop(self) -> None:
        """Fast shutdown (SIGINT: sessions are ended), then SIGKILL if it lingers."""
        process = self.process
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGINT)
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)

    def remove(self) -> None:
        """Stop, and delete the data directory."""
        self.stop()
        shutil.rmtree(self.directory, ignore_errors=True)

    def log(self) -> str:
        """What the server wrote (for failure messages)."""
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")[-4000:]
        except OSError:
            return ""

    def _wait_until_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while True:
            if self.process is None or self.process.poll() is not None:
                raise RuntimeError(f"postgres exited: {self.log()}")
            try:
                with psycopg.connect(self.url, connect_timeout=1):
                    return
            except psycopg.OperationalError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"postgres did not accept connections: {self.log()}")
            time.sleep(0.05)


def database_url(url: str, name: str) -> str:
    """``url`` naming the database ``name`` instead."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


def start_postgres_server(port: int | None = None) -> PostgresServer:
    """``initdb`` a temporary cluster and start it on 127.0.0.1 (``port``, or a free one)."""
    binaries = server_binaries()
    if binaries is None:
        raise RuntimeError("PostgreSQL's server is not installed (apt-get install postgresql)")
    user = _run_as()
    directory = Path(tempfile.mkdtemp(prefix="test-postgres-"))
    try:
        if user is not None:
            entry = pwd.getpwnam(user)
            os.chown(directory, entry.pw_uid, entry.pw_gid)
        subprocess.run(  # noqa: S603 - a fixed command line
            [
                str(binaries / "initdb"),
                "-D",
                str(directory / "data"),
                "-U",
                SUPERUSER,
                "-A",
                "trust",  # loopback only, a throw-away cluster
                "-E",
                "UTF8",
                "--no-sync",
                "--no-instructions",
            ],
            check=True,
            capture_output=True,
            user=user,
            cwd=directory,
        )
    except BaseException:
        shutil.rmtree(directory, ignore_errors=True)
        raise
    problems: list[str] = []
    for _ in range(1 if port is not None else START_ATTEMPTS):
        server = PostgresServer(directory, port or free_port(), user, binaries)
        try:
            server.start()
        except RuntimeError as exc:
            server.stop()
            problems.append(str(exc))
            continue
        return server
    shutil.rmtree(directory, ignore_errors=True)
    raise RuntimeError("postgres did not start:\n" + "\n".join(problems))


def require_postgres_server(why: str = "") -> None:
    """Skip the test when PostgreSQL's server is missing; fail it instead when ``CI`` is set."""
    if server_binaries() is not None:
        return
    reason = " ".join(("PostgreSQL's server is not installed (apt-get install postgresql)", why))
    missing_on_this_machine(reason.strip(), tests="the PostgreSQL tests")


@dataclass
class Databases:
    """Creates fresh, empty databases on one server (the superuser's ``url``)."""

    url: str

    def __post_init__(self) -> None:
        with psycopg.connect(self.url, autocommit=True) as db:
            db.execute(f"DROP DATABASE IF EXISTS {TEMPLATE}")
            db.execute(f"CREATE DATABASE {TEMPLATE} TEMPLATE template0")

    def create(self) -> str:
        """The URL of a new, empty database."""
        name = f"test_{secrets.token_hex(6)}"
        with psycopg.connect(self.url, autocommit=True) as db:
            db.execute(f"CREATE DATABASE {name} TEMPLATE {TEMPLATE}")
        return database_url(self.url, name)

    def drop(self, url: str) -> None:
        """Drop a database :meth:`create` made (ending its sessions)."""
        name = urlsplit(url).path.lstrip("/")
        with psycopg.connect(self.url, autocommit=True) as db:
            db.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture(scope="session", name="postgres_server")
def postgres_server_fixture() -> Iterator[Databases]:
    """A real PostgreSQL for this test session: ``TEST_DATABASE_URL`` (a superuser's URL; the
    tests create and drop databases there), or a server started here."""
    given = os.environ.get("TEST_DATABASE_URL", "").strip()
    if given:
        yield Databases(given)
        return
    require_postgres_server("nor TEST_DATABASE_URL set")
    server = start_postgres_server()
    try:
        yield Databases(server.url)
    finally:
        server.remove()


@pytest.fixture
def postgres_url(postgres_server: Databases) -> Iterator[str]:
    """The URL of an empty database of its own for this test."""
    url = postgres_server.create()
    try:
        yield url
    finally:
        postgres_server.drop(url)
