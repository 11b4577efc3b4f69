"""``docker/resource-api-db.sh`` (compose's one-shot ``resource-api-db`` service) run for real:
against the tests' PostgreSQL with Debian's ``psql``, twice, then used by the API's own store.

Compose's image runs the same script with its own ``psql``; here the role and database get
random names so that a shared ``TEST_DATABASE_URL`` server keeps nothing of the test.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Final
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest

from resource_api.postgres_store import PostgresStore
from resource_api.storage import OrderItem
from tests.postgres_support import Databases, server_binaries

SCRIPT: Final = Path(__file__).resolve().parents[1] / "docker" / "resource-api-db.sh"


class Setup:
    """The script's environment for one test: the superuser's connection and fresh names."""

    def __init__(self, superuser_url: str) -> None:
        self.superuser_url = superuser_url
        self.name = f"api_{secrets.token_hex(4)}"
        self.user = f"api_role_{secrets.token_hex(4)}"
        self.password = f"pw-{secrets.token_hex(8)}"

    def run(self, password: str | None = None) -> subprocess.CompletedProcess[str]:
        parts = urlsplit(self.superuser_url)
        binaries = server_binaries()
        path = os.environ.get("PATH", "")
        env = {
            "PATH": f"{binaries}:{path}" if binaries else path,
            "PGHOST": parts.hostname or "127.0.0.1",
            "PGPORT": str(parts.port or 5432),
            "PGUSER": parts.username or "postgres",
            "PGPASSWORD": parts.password or "",
            "RESOURCE_API_DB_NAME": self.name,
            "RESOURCE_API_DB_USER": self.user,
            "RESOURCE_API_DB_PASSWORD": password or self.password,
        }
        return subprocess.run(  # noqa: S603 - our script, fixed arguments
            ["/bin/sh", str(SCRIPT)],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    def api_url(self) -> str:
        parts = urlsplit(self.superuser_url)
        netloc = f"{self.user}:{self.password}@{parts.hostname}:{parts.port or 5432}"
        return urlunsplit(("postgresql", netloc, f"/{self.name}", "", ""))


@pytest.fixture
def setup(postgres_server: Databases) -> Iterator[Setup]:
    made = Setup(postgres_server.url)
    try:
        yield made
    finally:
        with psycopg.connect(postgres_server.url, autocommit=True) as db:
            db.execute(f"DROP DATABASE IF EXISTS {made.name} WITH (FORCE)")
            db.execute(f"DROP ROLE IF EXISTS {made.user}")


def test_the_script_creates_a_role_and_a_database_of_the_api_once(setup: Setup) -> None:
    """Two runs succeed; the role owns the database, is no superuser and cannot create
    databases or roles; the password never appears in the output."""
    for _ in range(2):
        result = setup.run()
        assert result.returncode == 0, result.stderr
        assert setup.password not in result.stdout + result.stderr
    with psycopg.connect(setup.superuser_url) as db:
        role = db.execute(
            "SELECT rolsuper, rolcreatedb, rolcreaterole, rolcanlogin FROM pg_roles"
            " WHERE rolname = %s",
            (setup.user,),
        ).fetchall()
        owner = db.execute(
            "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = %s", (setup.name,)
        ).fetchall()
    assert role == [(False, False, False, True)]
    assert owner == [(setup.user,)]


async def test_the_api_migrates_and_writes_as_that_role(setup: Setup) -> None:
    """The API's store, connected as the role, applies its migrations and keeps an order."""
    assert setup.run().returncode == 0
    store = await PostgresStore.open(setup.api_url(), start_timeout=10)
    try:
        order = await store.create_order("user-1", [OrderItem(sku="sku-1", quantity=2)], None)
        assert await store.list_orders("user-1") == [order]
    finally:
        await store.close()


def scram_matches(stored: str, password: str) -> bool:
    """Whether ``stored`` (pg_authid.rolpassword, ``SCRAM-SHA-256$iter:salt$StoredKey:ServerKey``)
    is a verifier of ``password`` (RFC 5802 §3: StoredKey = H(HMAC(SaltedPassword, "Client Key"))).
    The tests' server trusts loopback logins, so the password is checked here instead."""
    method, _, rest = stored.partition("$")
    iterations_salt, _, keys = rest.partition("$")
    iterations, _, salt = iterations_salt.partition(":")
    stored_key = keys.partition(":")[0]
    assert method == "SCRAM-SHA-256", method
    salted = hashlib.pbkdf2_hmac(
        "sha256", password.encode(), base64.b64decode(salt), int(iterations)
    )
    client_key = hmac.digest(salted, b"Client Key", "sha256")
    return hmac.compare_digest(hashlib.sha256(client_key).digest(), base64.b64decode(stored_key))


def stored_password(setup: Setup) -> str:
    with psycopg.connect(setup.superuser_url) as db:
        row = db.execute(
            "SELECT rolpassword FROM pg_authid WHERE rolname = %s", (setup.user,)
        ).fetchone()
    assert row is not None
    assert isinstance(row[0], str)
    return row[0]


def test_the_role_password_follows_env_at_every_run(setup: Setup) -> None:
    """The role's password is RESOURCE_API_DB_PASSWORD, and a new value in .env replaces it on
    the next run (the API's DATABASE_URL carries the same value)."""
    assert setup.run().returncode == 0
    assert scram_matches(stored_password(setup), setup.password)
    assert setup.run(password="another-password").returncode == 0
    assert scram_matches(stored_password(setup), "another-password")
    assert not scram_matches(stored_password(setup), setup.password)


def test_a_missing_password_is_refused_before_connecting(setup: Setup) -> None:
    """Without RESOURCE_API_DB_PASSWORD the script stops with a message, creating nothing."""
    setup.password = ""
    result = setup.run(password="")
    assert result.returncode != 0
    assert "RESOURCE_API_DB_PASSWORD" in result.stderr
    with psycopg.connect(setup.superuser_url) as db:
        found = db.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (setup.user,)).fetchall()
    assert found == []
