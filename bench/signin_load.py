"""Sign-in load: N simulated users sign in through the client app and call both APIs.

The dev issuer, the resource API and the client app are started by ``demo.launcher`` exactly
as ``python -m demo`` and the end-to-end tests start them (free ports on 127.0.0.1, a temporary
data directory, an environment without the programs' configuration variables), with a
:mod:`bench.reaper` stopping them should this process die. Each simulated user is one
:class:`tests.e2e.browser.Browser` (httpx, its own cookie jar) going through:

1. **sign-in** — "Sign in" on the client app, the issuer's sign-in page, the credentials
   posted, the redirects back through ``/callback`` to the greeting;
2. **shopping** — the shopping page: the client app gets a shopping access token from the
   issuer and calls ``GET /shopping/orders`` on the resource API with it;
3. **store** — the store page: likewise with a store token and ``GET /store/products``;
4. **sign-out** — "Sign out", confirmed on the issuer's page, back on the signed-out home.

The sign-ins go to the seed's users in turn (alice, bob, carol, dave; passwords from the
issuer's ready line), ``concurrency`` at a time. Some users may not read a catalog (alice has
no store permission): their page then says which permission the token lacks (the resource API
verified the token and answered 403), which is their expected outcome. One warm-up journey per
user, before the clock, records each user's outcome; every timed journey must reach the same.
An error is any step that fails, answers other than 200, lands elsewhere, shows another error,
or reaches another outcome; any error fails the run.

The client app logs every call it makes (``httpx`` lines in its log file): the calls of the
timed journeys are counted from there (token endpoint, revocation, each API route and status).
CPU seconds of each program and of this process over the timed journeys show which one bounds
the rate.
"""

from __future__ import annotations

import os
import re
import ssl
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

from demo.launcher import Stack, StackConfig, free_port, start_stack
from tests.e2e.browser import Browser
from tests.e2e.harness import clean_environ
from tests.e2e.pages import Page

from .common import header, percentile
from .reaper import cpu_seconds, start_reaper, stop_reaper

STEPS = ("sign-in", "shopping", "store", "sign-out")
PAGE_SCOPES = {"shopping": "shopping:read", "store": "store:read"}
SIGNED_OUT_TITLE = "You are not signed in"
_START_TIMEOUT = 60.0
_STOP_MARGIN = 120.0
_HTTPX_LINE = re.compile(r'"message":"HTTP Request: (\w+) (\S+) \\"HTTP/[\d.]+ (\d+)')


def _refused(scope: str) -> str:
    return f"Your access token lacks the permission {scope} needed for this."


class JourneyError(Exception):
    """A step did not end as it should; the message names the step and what was seen (never a
    URL or a page's text, which could hold a code or a token)."""


@dataclass(slots=True)
class Journey:
    """One simulated user's visit: step timings (seconds), page outcomes, the first error."""

    username: str
    step: str = STEPS[0]
    """The step under way (the failing one, after an error)."""
    seconds: dict[str, float] = field(default_factory=dict)
    outcomes: dict[str, str] = field(default_factory=dict)
    error: str | None = None


def _outcome(page: Page, step: str) -> str:
    if page.status != httpx.codes.OK:
        raise JourneyError(f"{step}: the page answered {page.status}")
    alerts = page.alerts("error")
    if not alerts:
        return "granted"
    if alerts == [_refused(PAGE_SCOPES[step])]:
        return "403"
    raise JourneyError(f"{step}: the page shows {len(alerts)} unexpected error(s)")


def _walk(browser: Browser, result: Journey, password: str) -> None:
    """The four steps, timed into ``result``; raises at the first one that goes wrong
    (``result.step`` names it)."""
    clock = time.perf_counter
    started = clock()
    home = browser.sign_in(result.username, password)
    result.seconds["sign-in"] = clock() - started
    if home.status != httpx.codes.OK or not home.title.startswith("Welcome, "):
        raise JourneyError(f"sign-in: no greeting after signing in ({home.status})")
    page = home
    for step in ("shopping", "store"):
        result.step = step
        started = clock()
        page = browser.get(f"/{step}")
        result.seconds[step] = clock() - started
        result.outcomes[step] = _outcome(page, step)
    result.step = "sign-out"
    started = clock()
    landed = browser.sign_out(page)
    result.seconds["sign-out"] = clock() - started
    if landed.url != f"{browser.base_url}/" or landed.title != SIGNED_OUT_TITLE:
        raise JourneyError(f"sign-out: not back on the signed-out home ({landed.status})")


@cache
def _tls() -> ssl.SSLContext:
    """The TLS context every simulated user shares: ``httpx.Client()`` loads the CA bundle each
    time (~18 ms of CPU, half of what a whole journey costs this process), for connections
    that are plain HTTP on 127.0.0.1. A real browser loads its roots once too."""
    return ssl.create_default_context()


def journey(base_url: str, username: str, password: str) -> Journey:
    """Sign ``username`` in, open both API pages, sign out, in a new browser; time each step.
    Errors are recorded in the result, never raised."""
    result = Journey(username)
    try:
        with Browser(base_url, verify=_tls()) as browser:
            _walk(browser, result, password)
    except JourneyError as exc:
        result.error = str(exc)
    except (httpx.HTTPError, AssertionError, ValueError) as exc:
        result.error = f"{result.step}: {type(exc).__name__}"
    return result


@dataclass(frozen=True, slots=True)
class SigninResult:
    """Figures of one sign-in run."""

    users: int
    concurrency: int
    usernames: list[str]
    expected: dict[str, dict[str, str]]
    """Each user's page outcomes, from the warm-up journey."""
    elapsed: float
    journeys: list[Journey]
    calls: dict[str, int]
    """Calls the client app made during the timed journeys (from its log)."""
    cpu_seconds: dict[str, float]
    start_seconds: float
    problems: list[str]
    """What went wrong outside the timed journeys (warm-up, calls, a program that exited)."""

    @property
    def completed(self) -> int:
        """Journeys that ended without an error."""
        return sum(1 for j in self.journeys if j.error is None)

    @property
    def errors(self) -> int:
        """Journeys with an error, and the ones never run (out of time)."""
        return self.users - self.completed

    @property
    def failures(self) -> list[str]:
        """Every breach: the problems, and the journeys that failed (any fails the run)."""
        failed = [f"{self.errors} of {self.users} journeys failed"] if self.errors else []
        return [*self.problems, *failed]

    @property
    def signins_per_second(self) -> float:
        """Error-free journeys per second of the timed run."""
        return self.completed / self.elapsed if self.elapsed else 0.0

    def cpu_ms_per_signin(self) -> dict[str, float]:
        """CPU time each program (and the simulated users) spent per journey, in ms."""
        journeys = max(1, len(self.journeys))
        return {name: 1000 * seconds / journeys for name, seconds in self.cpu_seconds.items()}

    def step_latencies(self) -> dict[str, dict[str, float]]:
        """p50/p90/p99/max (ms) of each step, and of whole journeys, over error-free journeys."""
        done = [j for j in self.journeys if j.error is None]
        figures: dict[str, dict[str, float]] = {}
        for step in (*STEPS, "journey"):
            values = sorted(
                (sum(j.seconds.values()) if step == "journey" else j.seconds[step]) * 1000
                for j in done
            )
            figures[step] = {
                "p50_ms": percentile(values, 0.50),
                "p90_ms": percentile(values, 0.90),
                "p99_ms": percentile(values, 0.99),
                "max_ms": values[-1] if values else float("nan"),
            }
        return figures

    def error_counts(self) -> dict[str, int]:
        """How often each error happened."""
        counts = Counter(j.error for j in self.journeys if j.error is not None)
        if len(self.journeys) < self.users:
            counts["not run: out of time"] = self.users - len(self.journeys)
        return dict(counts)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready figures."""
        return {
            "users": self.users,
            "concurrency": self.concurrency,
            "usernames": self.usernames,
            "expected": self.expected,
            "elapsed": self.elapsed,
            "completed": self.completed,
            "errors": self.errors,
            "error_counts": self.error_counts(),
            "signins_per_second": self.signins_per_second,
            "steps": self.step_latencies(),
            "calls": self.calls,
            "cpu_seconds": self.cpu_seconds,
            "cpu_ms_per_signin": self.cpu_ms_per_signin(),
            "start_seconds": self.start_seconds,
            "failures": self.failures,
        }

    def report(self) -> None:
        """Print the result."""
        header(f"signin: {self.users} users sign in, open shopping and store, sign out")
        outcomes = "; ".join(
            f"{name}: shopping {pages.get('shopping', '?')}, store {pages.get('store', '?')}"
            for name, pages in self.expected.items()
        )
        print(
            f"  the real stack (demo.launcher, started in {self.start_seconds:.1f} s),"
            f" {self.concurrency} users at a time, each in its own cookie jar"
        )
        print(f"  users in turn: {outcomes}")
        print(
            f"  sign-ins/s {self.signins_per_second:8.1f}   ({self.completed} error-free"
            f" journeys in {self.elapsed:.2f} s; errors: {self.errors})"
        )
        print(f"  {'step':12}{'p50 ms':>9}{'p90 ms':>9}{'p99 ms':>9}{'max ms':>9}")
        for step, figures in self.step_latencies().items():
            print(
                f"  {step:12}{figures['p50_ms']:9.1f}{figures['p90_ms']:9.1f}"
                f"{figures['p99_ms']:9.1f}{figures['max_ms']:9.1f}"
            )
        per = max(1, len(self.journeys))
        print(
            "  calls by the client app: "
            + ", ".join(
                f"{name} {count} ({count / per:.2f}/user)" for name, count in self.calls.items()
            )
        )
        print(
            "  CPU seconds during the run: "
            + ", ".join(f"{name} {seconds:.1f}" for name, seconds in self.cpu_seconds.items())
            + f" (wall {self.elapsed:.1f} s, {os.cpu_count()} CPUs)"
        )
        print(
            "  CPU ms per sign-in: "
            + ", ".join(f"{name} {ms:.1f}" for name, ms in self.cpu_ms_per_signin().items())
        )
        for error, count in self.error_counts().items():
            print(f"  ERROR ×{count}: {error}")  # noqa: RUF001 - the multiplication sign is meant
        for failure in self.failures:
            print(f"  FAILED: {failure}")


# -- the stack ----------------------------------------------------------------------------------


@contextmanager
def running_stack(data_dir: Path, lifetime: float) -> Iterator[Stack]:
    """The three programs on free ports, guarded by a reaper for ``lifetime`` seconds."""
    api_port = free_port()
    client_port = next(port for port in iter(free_port, None) if port != api_port)
    config = StackConfig(
        issuer_port=0,
        api_port=api_port,
        client_port=client_port,
        data_dir=data_dir,
        start_timeout=_START_TIMEOUT,
    )
    stack = start_stack(config, clean_environ())
    try:
        reaper = start_reaper((s.process.pid for s in stack.services), lifetime)
    except BaseException:
        stack.stop()
        raise
    try:
        yield stack
    finally:
        try:
            stack.stop()
        finally:
            stop_reaper(reaper)


def count_calls(log: Path, offset: int, stack: Stack) -> dict[str, int]:
    """The client app's outgoing calls logged after ``offset``: token endpoint, revocation,
    each API route and status, anything else at the issuer."""
    with log.open("rb") as file:
        file.seek(offset)
        text = file.read().decode("utf-8", errors="replace")
    calls: Counter[str] = Counter()
    issuer = urlsplit(stack.issuer.url).netloc
    api = urlsplit(stack.api.url).netloc
    for match in _HTTPX_LINE.finditer(text):
        method, url, status = match.groups()
        parts = urlsplit(url)
        if parts.netloc == issuer:
            name = {
                "/oidc/token": "token endpoint",
                "/oidc/token/revocation": "revocation",
            }.get(parts.path, f"issuer {method} {parts.path}")
            calls[name if status == "200" else f"{name} {status}"] += 1
        elif parts.netloc == api:
            calls[f"API {method} {parts.path} {status}"] += 1
        else:
            calls[f"{method} {parts.netloc}{parts.path} {status}"] += 1
    return dict(sorted(calls.items()))


def _cpu(stack: Stack) -> dict[str, float]:
    figures = {s.key: cpu_seconds(s.process.pid) or 0.0 for s in stack.services}
    times = os.times()
    figures["benchmark (the users)"] = times.user + times.system
    return figures


def _check_calls(calls: dict[str, int]) -> list[str]:
    """The API may answer 200 or (a permission the user lacks) 403; anything else is wrong,
    and so is an issuer call that failed."""
    allowed = re.compile(r"^(token endpoint|revocation|API \w+ \S+ (200|403)|issuer GET \S+)$")
    return [
        f"the client app made {count} call(s): {name}"
        for name, count in calls.items()
        if not allowed.match(name)
    ]


def run_signin(*, users: int, concurrency: int, timeout: float = 600.0) -> SigninResult:
    """Start the stack, warm up one journey per seeded user, then run ``users`` journeys
    ``concurrency`` at a time (journeys not started within ``timeout`` seconds count as
    errors)."""
    lifetime = _START_TIMEOUT + timeout + _STOP_MARGIN
    with tempfile.TemporaryDirectory(prefix="bench-signin-") as tmp:
        started = time.perf_counter()
        with running_stack(Path(tmp), lifetime) as stack:
            start_seconds = time.perf_counter() - started
            base_url = stack.client.url
            passwords = {str(u["username"]): str(u["password"]) for u in stack.ready["users"]}
            usernames = list(passwords)
            problems: list[str] = []
            expected: dict[str, dict[str, str]] = {}
            for username in usernames:  # warm-up: one journey each, outcomes recorded
                warm = journey(base_url, username, passwords[username])
                if warm.error is not None:
                    problems.append(f"warm-up journey of {username}: {warm.error}")
                expected[username] = warm.outcomes
            log = stack.client.log_path
            offset = log.stat().st_size
            cpu_before = _cpu(stack)
            deadline = time.monotonic() + timeout
            lock = threading.Lock()
            journeys: list[Journey] = []

            def one(index: int) -> None:
                if time.monotonic() >= deadline:
                    return
                username = usernames[index % len(usernames)]
                done = journey(base_url, username, passwords[username])
                if done.error is None and done.outcomes != expected[username]:
                    done.error = (
                        f"outcomes {done.outcomes} differ from the warm-up's {expected[username]}"
                    )
                with lock:
                    journeys.append(done)

            began = time.perf_counter()
            with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="user") as pool:
                for future in [pool.submit(one, index) for index in range(users)]:
                    future.result()
            elapsed = time.perf_counter() - began
            cpu_after = _cpu(stack)
            calls = count_calls(log, offset, stack)
            problems += _check_calls(calls)
            dead = stack.first_dead()
            if dead is not None:
                problems.append(f"the {dead.label} exited during the run")
    return SigninResult(
        users=users,
        concurrency=concurrency,
        usernames=usernames,
        expected=expected,
        elapsed=elapsed,
        journeys=journeys,
        calls=calls,
        cpu_seconds={name: cpu_after[name] - cpu_before[name] for name in cpu_before},
        start_seconds=start_seconds,
        problems=problems,
    )
