"""Stop programs a benchmark started should the benchmark itself die or overrun.

``python -m bench.reaper --lifetime S --pid PID:START ...`` watches its parent (the benchmark
process). When the parent goes away (even killed with SIGKILL, when its own ``finally`` never
runs) or ``S`` seconds pass, it sends SIGTERM to every listed process that is still the one
listed (``START`` is its start time in clock ticks, field 22 of ``/proc/<pid>/stat``, so a
reused pid is left alone), then SIGKILL to any still running after a grace period, and exits.
The benchmark stops the programs itself on a normal run and then terminates the reaper.

The sign-in benchmark needs it because ``demo.launcher`` starts the dev issuer, the resource
API and the client app in sessions of their own: nothing else would stop them.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterable
from pathlib import Path

from .common import REPO_ROOT, child_env

_POLL_SECONDS = 0.5
_GRACE_SECONDS = 10.0


def start_time(pid: int) -> int | None:
    """The process's start time in clock ticks since boot, or ``None`` if it is gone (or
    there is no ``/proc``)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[19])


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time the process and its running children (a server's worker
    processes) have used so far (``/proc/<pid>/stat``)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])
    seconds = ticks / os.sysconf("SC_CLK_TCK")
    for child in _children(pid):
        seconds += cpu_seconds(child) or 0.0
    return seconds


def _children(pid: int) -> list[int]:
    children: list[int] = []
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            children.extend(int(child) for child in (task / "children").read_text().split())
    except OSError:
        return []
    return children


def _alive(pids: dict[int, int | None]) -> list[int]:
    """The listed processes still running as themselves (without ``/proc``: none)."""
    return [
        pid for pid, started in pids.items() if started is not None and start_time(pid) == started
    ]


def _signal(pids: Iterable[int], signum: int) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signum)


def reap(pids: dict[int, int | None]) -> None:
    """SIGTERM the listed processes still alive, then SIGKILL after the grace period."""
    _signal(_alive(pids), signal.SIGTERM)
    deadline = time.monotonic() + _GRACE_SECONDS
    while _alive(pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    _signal(_alive(pids), signal.SIGKILL)


def start_reaper(pids: Iterable[int], lifetime: float) -> subprocess.Popen[bytes]:
    """Start a reaper (a child of this process) guarding ``pids`` for ``lifetime`` seconds."""
    listed = [f"--pid={pid}:{start_time(pid)}" for pid in pids]
    return subprocess.Popen(  # noqa: S603 - our own interpreter and module, no shell
        [sys.executable, "-m", "bench.reaper", f"--lifetime={lifetime}", *listed],
        cwd=REPO_ROOT,
        env=child_env(),
        stdin=subprocess.DEVNULL,
    )


def stop_reaper(process: subprocess.Popen[bytes]) -> None:
    """The benchmark is done with its programs: end the reaper without it reaping."""
    process.terminate()
    try:
        process.wait(timeout=_GRACE_SECONDS)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=_GRACE_SECONDS)


def _pid(text: str) -> tuple[int, int | None]:
    pid, _, started = text.partition(":")
    return int(pid), (None if started in ("", "None") else int(started))


def main(argv: list[str] | None = None) -> None:
    """Watch the parent; reap the listed processes when it is gone or the lifetime is over."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--lifetime", type=float, required=True, help="seconds")
    parser.add_argument("--pid", type=_pid, action="append", default=[], help="PID:START")
    args = parser.parse_args(argv)
    # A Ctrl-C in the terminal reaches the whole foreground group: the benchmark then stops
    # the programs itself, and the reaper must outlive it in case it cannot.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    pids: dict[int, int | None] = dict(args.pid)
    parent = os.getppid()
    deadline = time.monotonic() + args.lifetime
    while os.getppid() == parent and time.monotonic() < deadline and _alive(pids):
        time.sleep(_POLL_SECONDS)
    reap(pids)


if __name__ == "__main__":
    main()
