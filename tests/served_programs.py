"""Our programs as real processes on 127.0.0.1: ``python -m <module> --host --port ...``
started with a clean environment, waited for until they answer, and always stopped.

Used by the server tests (``tests/service_kit/test_server.py``) and the resource API's crash
test (``tests/resource_api/test_durability.py``).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.e2e.harness import PROGRAM_VARIABLES, free_ports

REPO = Path(__file__).resolve().parents[1]
HOST = "127.0.0.1"


@dataclass
class Served:
    """One ``python -m <module>`` process and where it logs."""

    process: subprocess.Popen[bytes]
    url: str
    stdout: Path
    stderr: Path

    def workers(self) -> list[int]:
        """The pids of the main process's children (granian's workers)."""
        children: list[int] = []
        for task in Path(f"/proc/{self.process.pid}/task").iterdir():
            text = (task / "children").read_text()
            children.extend(int(pid) for pid in text.split())
        return children

    def stop(self, sig: signal.Signals = signal.SIGTERM, timeout: float = 15) -> int:
        """Send ``sig`` and wait for the exit status."""
        if self.process.poll() is None:
            self.process.send_signal(sig)
        return self.process.wait(timeout=timeout)

    def log_lines(self) -> list[dict[str, object]]:
        """Every JSON line written to stderr."""
        return [json.loads(line) for line in self.stderr.read_text().splitlines() if line]


Serve = Callable[..., Served]


def program_environ(**extra: str) -> dict[str, str]:
    """This process's environment without the programs' configuration variables, plus
    ``extra``."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith(PROGRAM_VARIABLES)}
    environ.update(extra)
    return environ


@pytest.fixture(name="serve")
def serve_fixture(tmp_path: Path) -> Iterator[Serve]:
    """Start a program as a process: ``serve(module, *args, environ=...)``; every program
    started is stopped (SIGKILL if it lingers, its workers too) at the end. Its output goes to
    ``tmp_path``."""
    log_dir = tmp_path
    started: list[Served] = []
    workers: dict[int, list[int]] = {}

    def start(module: str, *args: str, environ: dict[str, str] | None = None) -> Served:
        [port] = free_ports(1)
        index = len(started)
        stdout, stderr = log_dir / f"out-{index}.log", log_dir / f"err-{index}.log"
        with stdout.open("wb") as out, stderr.open("wb") as err:
            process = subprocess.Popen(  # noqa: S603 - our own module, fixed arguments
                [sys.executable, "-m", module, "--host", HOST, "--port", str(port), *args],
                cwd=REPO,
                env=environ or program_environ(),
                stdout=out,
                stderr=err,
            )
        served = Served(process, f"http://{HOST}:{port}", stdout, stderr)
        started.append(served)
        _wait_until_up(served)
        workers[process.pid] = served.workers()
        return served

    yield start
    for served in started:
        if served.process.poll() is None:
            served.process.kill()
            served.process.wait(timeout=10)
        for pid in alive_pids(workers.get(served.process.pid, ())):
            os.kill(pid, signal.SIGKILL)


def _wait_until_up(served: Served, path: str = "/") -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if served.process.poll() is not None:
            pytest.fail(f"exited {served.process.returncode}: {served.stderr.read_text()[-2000:]}")
        try:
            httpx.get(served.url + path, timeout=1)
        except httpx.TransportError:
            time.sleep(0.05)
            continue
        return
    pytest.fail("the server did not start within 30 s")


def alive_pids(pids: Sequence[int]) -> list[int]:
    """The processes still running: a zombie (dead, not yet reaped by whoever inherited it
    from a killed parent) is not running."""
    alive = []
    for pid in pids:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
        except (FileNotFoundError, ProcessLookupError):
            continue
        if state not in {"Z", "X"}:
            alive.append(pid)
    return alive


def wait_gone(pids: Sequence[int], timeout: float = 10) -> list[int]:
    """Wait until none of ``pids`` runs; the ones still running after ``timeout``."""
    deadline = time.monotonic() + timeout
    while (alive := alive_pids(pids)) and time.monotonic() < deadline:
        time.sleep(0.05)
    return alive
