"""``python -m demo`` as a person runs it: what it prints, how it stops, and how it fails."""

from __future__ import annotations

import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from demo.launcher import DEFAULT_SEED, ROOT, free_port, port_is_free
from demo.seed import Membership, demo_users, load_seed
from tests.e2e.harness import clean_environ

STARTED_LINE = "Press Ctrl-C to stop all three."
TIMEOUT = 60.0


@dataclass
class Demo:
    """A running ``python -m demo`` and what it has printed so far."""

    process: subprocess.Popen[str]
    ports: tuple[int, int, int]
    output: list[str] = field(default_factory=list)
    lines: queue.Queue[str] = field(default_factory=queue.Queue)

    def __post_init__(self) -> None:
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        """Move stdout lines to the queue ("" at the end): a select() on the pipe would not
        see lines already in the file object's buffer."""
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line)
        self.lines.put("")

    def read_until(self, text: str) -> str:
        """Stdout up to the line containing ``text`` (fails after TIMEOUT seconds)."""
        deadline = time.monotonic() + TIMEOUT
        while (left := deadline - time.monotonic()) > 0:
            try:
                line = self.lines.get(timeout=left)
            except queue.Empty:
                break
            if not line:
                break
            self.output.append(line)
            if text in line:
                return "".join(self.output)
        raise AssertionError(f"{text!r} never printed; got:\n{''.join(self.output)}")

    def finish(self) -> tuple[int, str, str]:
        """Wait for the exit; the status, all of stdout, and stderr."""
        assert self.process.stderr is not None
        self.process.wait(timeout=TIMEOUT)
        while (line := self.lines.get(timeout=TIMEOUT)) != "":
            self.output.append(line)
        return self.process.returncode, "".join(self.output), self.process.stderr.read()


@pytest.fixture
def run_demo(tmp_path: Path) -> Iterator[Callable[..., Demo]]:
    """Start ``python -m demo`` on free ports; it is stopped (SIGTERM) after the test."""
    started: list[Demo] = []

    def start(*ports: int) -> Demo:
        issuer, api, client = ports or (free_port(), free_port(), free_port())
        args = [sys.executable, "-m", "demo", "--issuer-port", str(issuer)]
        args += ["--api-port", str(api), "--client-port", str(client)]
        args += ["--data-dir", str(tmp_path / "data")]
        process = subprocess.Popen(  # noqa: S603 - our own program
            args,
            cwd=ROOT,
            env=clean_environ(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        demo = Demo(process, (issuer, api, client))
        started.append(demo)
        return demo

    yield start
    for demo in started:
        if demo.process.poll() is None:
            demo.process.send_signal(signal.SIGTERM)
        demo.process.wait(timeout=TIMEOUT)
        for stream in (demo.process.stdout, demo.process.stderr):
            if stream is not None:
                stream.close()


def test_the_demo_starts_everything_prints_the_users_and_stops_on_sigterm(
    run_demo: Callable[..., Demo],
) -> None:
    """The welcome text gives the URL, the logs and every user's rights; SIGTERM stops all."""
    demo = run_demo()
    issuer, api, client = demo.ports

    welcome = demo.read_until(STARTED_LINE)

    assert f"Open http://127.0.0.1:{client} in your browser." in welcome
    assert f"http://127.0.0.1:{issuer}/oidc" in welcome
    assert f"http://127.0.0.1:{api}/schema/openapi.json" in welcome
    assert re.search(r"alice / alice-password\s+roles: shopping:read\n", welcome)
    assert "organization acme (member): read:members" in welcome
    assert re.search(r"carol / carol-password\s+no role\n\s+no organization", welcome)
    assert httpx.get(f"http://127.0.0.1:{client}/health").json() == {"status": "ok"}
    assert httpx.get(f"http://127.0.0.1:{api}/health").json()["keys_loaded"] is True
    for log in ("dev_issuer", "resource_api", "client_app"):
        assert f"{log}.log" in welcome
    # The printed rotation command works; what a web page could send does not (issue 9 #11).
    command = re.search(r"curl -X POST -H '([^:']+): ([^']+)' (\S+/dev/rotate-keys)", welcome)
    assert command is not None, welcome
    name, value, url = command.groups()
    page = {"Content-Type": "application/x-www-form-urlencoded", "Origin": "http://evil.test"}
    assert httpx.post(url, headers=page, content=b"x=1").status_code == 403
    assert httpx.post(url, headers={name: value, "Origin": "http://evil.test"}).status_code == 403
    assert httpx.post(url, headers={name: value}).status_code == 200
    # So does the printed role change (issue 11 #4), and only with the header.
    roles = re.search(r"-d '(\{[^']*\})' \\\s+(\S+/dev/users/alice/roles)", welcome)
    assert roles is not None, welcome
    body, roles_url = roles.groups()
    json_type = {"Content-Type": "application/json"}
    assert httpx.post(roles_url, headers=json_type, content=body).status_code == 403
    granted = httpx.post(roles_url, headers={name: value, **json_type}, content=body)
    assert granted.json()["roles"] == ["shopping-reader", "shopping-writer"]
    demo.process.send_signal(signal.SIGTERM)
    code, stdout, _ = demo.finish()
    assert code == 0
    assert stdout.rstrip().endswith("Stopped.")
    assert all(port_is_free(port) for port in demo.ports)


def test_the_demo_names_a_port_in_use_and_the_flag_to_change_it(
    run_demo: Callable[..., Demo],
) -> None:
    """A taken port ends the demo at once (exit 2) with the service and the flag to use."""
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        taken = busy.getsockname()[1]
        demo = run_demo(free_port(), free_port(), taken)

        code, _, stderr = demo.finish()

    assert code == 2
    assert f"port {taken} (client app) is already in use on 127.0.0.1" in stderr
    assert "--client-port N" in stderr


def test_when_one_program_dies_the_demo_says_which_and_stops_the_others(
    run_demo: Callable[..., Demo],
) -> None:
    """The resource API killed: the demo names it, shows its last log lines, stops the issuer
    and the client app, and exits 1."""
    demo = run_demo()
    welcome = demo.read_until(STARTED_LINE)
    found = re.search(r"resource API .*\n\s+pid (\d+)", welcome)
    assert found is not None, welcome

    os.kill(int(found.group(1)), signal.SIGKILL)  # a process this test started (via the demo)

    code, stdout, stderr = demo.finish()
    assert code == 1
    assert "the resource API was killed by SIGKILL; last lines of" in stderr
    assert "resource_api.log" in stderr
    assert '"logger":"_granian' in stderr  # the server's own lines, from the log file
    assert stdout.rstrip().endswith("Stopped.")
    assert all(port_is_free(port) for port in demo.ports)


@pytest.mark.parametrize(
    ("username", "api_scopes", "memberships"),
    [
        pytest.param(
            "alice",
            ("shopping:read",),
            (Membership("acme", ("member",), ("read:members",), ()),),
            id="alice",
        ),
        pytest.param("carol", (), (), id="carol"),
        pytest.param(
            "dave",
            (),
            (
                Membership(
                    "globex",
                    ("admin",),
                    ("read:members", "invite:member", "remove:member"),
                    ("store:read", "store:write"),
                ),
            ),
            id="dave",
        ),
    ],
)
def test_each_users_rights_come_from_the_seed(
    username: str, api_scopes: tuple[str, ...], memberships: tuple[Membership, ...]
) -> None:
    """Global permissions from the roles, organization rights from the template's roles."""
    seed = load_seed(DEFAULT_SEED)
    ready = [
        {"id": u["id"], "username": u["username"], "password": u["password"]} for u in seed["users"]
    ]

    user = next(u for u in demo_users(seed, ready) if u.username == username)

    assert user.api_scopes == api_scopes
    assert user.memberships == memberships
