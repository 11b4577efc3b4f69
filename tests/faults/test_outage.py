"""An issuer outage after warm-up (its address refuses connections), then its return.

One outage is run for the module (``outage``) and observed from every side; each test below
is one verdict on it:

* the API answers valid requests from its last-known-good keys for the configured window
  (``LOGTO_JWKS_MAX_STALE_SECONDS`` after the last good key set), then the documented 503 with
  ``Retry-After``, and recovers on its own once the issuer is back;
* a signed-in user's pages that need only the API keep working inside the window, fail
  politely after it, and work again afterwards;
* a new sign-in during the outage (once the client app's few seconds of trusting its last
  check are over) gets a friendly "temporarily unavailable" page instead of being sent to a
  dead issuer, and works again once the issuer is back.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import httpx
import pytest

from client_app.gateway import REACHABILITY_TTL_SECONDS
from tests.e2e.browser import Browser
from tests.e2e.pages import Page
from tests.faults.checks import SLACK, assert_window, last_good_before
from tests.faults.stack import FaultStack
from tests.faults.traffic import Sample, Traffic

UNAVAILABLE_TITLE = "Sign-in is temporarily unavailable"


@dataclass(frozen=True)
class Seen:
    """What a browser got for one page: the answer, or the transport error it ran into."""

    path: str
    at: float
    response: httpx.Response | None
    page: Page | None
    error: str | None = None

    def describe(self) -> str:
        if self.response is None:
            return f"{self.path}: no page ({self.error})"
        return f"{self.path}: {self.response.status_code} {self.page.title if self.page else ''}"


@dataclass
class Outage:
    """Everything observed during one outage."""

    samples: list[Sample] = field(default_factory=list)
    last_good: float = 0.0
    down_at: float = 0.0
    up_at: float = 0.0
    bob_inside: list[Seen] = field(default_factory=list)
    newcomer_inside: Seen | None = None
    bob_after_window: Seen | None = None
    bob_back: Seen | None = None
    newcomer_back: Page | None = None


def visit(browser: Browser, path: str) -> Seen:
    at = time.time()
    try:
        response = browser.http.get(f"{browser.base_url}{path}")
    except httpx.HTTPError as exc:
        return Seen(path, at, None, None, type(exc).__name__)
    return Seen(path, at, response, Page.of(response))


@pytest.fixture(scope="module")
def outage(warm_stack: FaultStack) -> Iterator[Outage]:
    """Valid traffic; the issuer goes down; bob (signed in) and a newcomer use the client app
    inside the window, bob again after it; the issuer comes back; both try again."""
    stack, policy, seen = warm_stack, warm_stack.policy, Outage()
    stack.settle()
    calls = stack.m2m_calls(3)
    try:
        with stack.browser() as bob, stack.browser() as newcomer:
            calls += stack.user_calls(bob, "bob")  # his session now holds his API tokens
            with stack.browser() as alice:
                calls += stack.user_calls(alice, "alice")
            with Traffic(stack.api_url, calls) as traffic:
                time.sleep(0.5)
                seen.down_at = time.time()
                stack.proxy.down()
                seen.bob_inside = [visit(bob, path) for path in ("/shopping", "/store", "/")]
                # Alice's sign-in found Logto up: the client app trusts that for a few seconds.
                time.sleep(max(0.0, seen.down_at + REACHABILITY_TTL_SECONDS - time.time()))
                seen.newcomer_inside = visit(newcomer, "/sign-in")
                seen.last_good = last_good_before(stack.proxy.good_key_sets(), seen.down_at)
                time.sleep(max(0.0, seen.last_good + policy.max_stale + SLACK - time.time()))
                seen.bob_after_window = visit(bob, "/shopping")
                time.sleep(1.0)
                seen.up_at = time.time()
                stack.proxy.up()
                time.sleep(policy.timeout + policy.cooldown + 2 * SLACK)
                seen.bob_back = visit(bob, "/shopping")
            seen.samples = traffic.samples
            seen.newcomer_back = newcomer.sign_in("alice", stack.password("alice"))
        yield seen
    finally:
        stack.proxy.reset()
    stack.assert_running()


def assert_friendly(seen: Seen | None, *, status: int, title: str) -> Page:
    """An HTML page of ours: the status, the title, a way home, nothing raw."""
    assert seen is not None
    assert seen.response is not None, seen.describe()
    assert seen.page is not None
    assert seen.response.status_code == status, seen.page.text
    assert seen.response.headers["content-type"].startswith("text/html")
    assert seen.page.title == title, seen.page.text
    for raw in ("Traceback", "Exception", "Error:", '{"', "httpx", "ConnectError"):
        assert raw not in seen.response.text, raw
    assert any(a.attrs.get("href") == "/" for a in seen.page.root.find_all("a"))
    return seen.page


def test_valid_requests_are_served_for_the_window_then_refused_then_recover(
    outage: Outage, warm_stack: FaultStack
) -> None:
    window = assert_window(
        outage.samples,
        last_good=outage.last_good,
        fault_start=outage.down_at,
        fault_end=outage.up_at,
        policy=warm_stack.policy,
    )
    print(  # the numbers of the report (pytest -s)
        f"\noutage: {len(outage.samples)} valid requests, {window}; the window ended "
        f"{outage.last_good + warm_stack.policy.max_stale - outage.down_at:.2f}s after the "
        "issuer went down"
    )


def test_a_signed_in_users_pages_work_inside_the_window_and_after(
    outage: Outage, warm_stack: FaultStack
) -> None:
    window_end = outage.last_good + warm_stack.policy.max_stale
    for seen, heading in zip(outage.bob_inside, ("Shopping", "Store", "Welcome"), strict=True):
        assert seen.response is not None, seen.describe()
        assert seen.page is not None
        assert seen.response.status_code == 200, seen.page.text
        assert seen.page.title.startswith(heading), seen.page.text
        assert seen.page.alerts("error") == [], seen.page.text
        assert seen.at < window_end
    # After it the API answers 503: the page still renders and says so in words.
    after = assert_friendly(outage.bob_after_window, status=200, title="Shopping")
    assert after.alerts("error") == [
        "The API is temporarily unavailable. Please try again in a moment."
    ], after.text
    assert outage.bob_back is not None
    assert outage.bob_back.response is not None, outage.bob_back.describe()
    assert outage.bob_back.response.status_code == 200


def test_a_new_sign_in_during_the_outage_gets_a_friendly_page(outage: Outage) -> None:
    page = assert_friendly(outage.newcomer_inside, status=503, title=UNAVAILABLE_TITLE)
    links = {a.attrs.get("href"): a.text() for a in page.root.find_all("a")}
    assert links.get("/sign-in") == "Try again", links
    assert "try again" in page.text.lower()


def test_sign_in_works_again_once_the_issuer_is_back(outage: Outage) -> None:
    assert outage.newcomer_back is not None
    assert outage.newcomer_back.title == "Welcome, Alice Example", outage.newcomer_back.text
