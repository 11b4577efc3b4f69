"""Debian's Chromium, driven by Playwright, through the demo as a person uses it: bob signs in
on the issuer's page, places an order and sees it listed, signs out; alice signs in, is refused
the order with the page naming the missing ``shopping:write``, signs out.

Every step leaves a screenshot in ``artifacts/browser/`` (``01-…png``, ``02-…png``, … in step
order), for CI to keep. Without ``/usr/bin/chromium`` (``apt-get install chromium``) or the
``playwright`` package the module is skipped, unless ``CI`` is set: there it fails, so CI never
passes without having run the browser. Playwright's own browser downloads are never used.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import re
from collections.abc import Iterator
from http import HTTPStatus
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from demo.launcher import ROOT
from tests.e2e.harness import Harness

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = ROOT / "artifacts" / "browser"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
"""Headless in a container, and none of Chromium's own traffic (updates, sync, QUIC probes)."""
TIMEOUT_MS = 10_000
"""Longest wait for any one page or element: a failure shows quickly, well within the budget."""

CI = bool(os.environ.get("CI"))
"""On CI a missing browser fails (the test, or without playwright the collection): CI never
passes without having run it. Elsewhere the module is skipped."""
MISSING_CHROMIUM = (
    None if CHROMIUM.is_file() else f"{CHROMIUM} is missing (Debian: apt-get install chromium)"
)

if MISSING_CHROMIUM and not CI:
    pytest.skip(MISSING_CHROMIUM, allow_module_level=True)
if importlib.util.find_spec("playwright") is None:
    reason = "the playwright package is missing (pip install playwright)"
    if CI:
        pytest.fail(f"{reason}; CI must run the browser test", pytrace=False)
    pytest.skip(reason, allow_module_level=True)

from playwright.sync_api import (  # noqa: E402 - only once playwright is known to be there
    Browser,
    Error,
    Page,
    Response,
    expect,
    sync_playwright,
)


class Steps:
    """The browser's page, and a numbered screenshot per step."""

    def __init__(self, page: Page, folder: Path) -> None:
        self.page = page
        self.folder = folder
        self.taken: list[Path] = []
        self.failed: list[str] = []
        """Every answer of 400 or more the pages got (documents, styles, images)."""
        page.on("response", self._record)

    def _record(self, response: Response) -> None:
        if response.status >= HTTPStatus.BAD_REQUEST:
            path = urlsplit(response.url).path
            self.failed.append(f"{response.status} {response.request.method} {path}")

    def shot(self, name: str) -> None:
        """Save the whole page as ``NN-name.png``."""
        path = self.folder / f"{len(self.taken) + 1:02d}-{name}.png"
        self.page.screenshot(path=path, full_page=True)
        self.taken.append(path)

    def __enter__(self) -> Steps:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *_: object) -> None:
        """On failure, a last screenshot of the page as it was (``NN-failed.png``)."""
        if exc_type is not None and not self.page.is_closed():
            with contextlib.suppress(Error):  # never hide the failure behind a dead page
                self.shot("failed")


@pytest.fixture(scope="module")
def chromium() -> Iterator[Browser]:
    """Debian's Chromium, headless, through Playwright."""
    if MISSING_CHROMIUM:  # only on CI: elsewhere the module was skipped
        pytest.fail(f"{MISSING_CHROMIUM}; CI must run the browser test", pytrace=False)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def steps(chromium: Browser, harness: Harness) -> Iterator[Steps]:
    """A fresh context (no cookies) on the client app; screenshots in a cleared
    ``artifacts/browser/``."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for old in ARTIFACTS.glob("*.png"):
        old.unlink(missing_ok=True)  # another run of the suite may clear it too
    context = chromium.new_context(
        base_url=harness.client_url, viewport={"width": 1280, "height": 800}
    )
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    recorded = Steps(page, ARTIFACTS)
    try:
        yield recorded
    finally:
        context.close()
    harness.assert_running()


def sign_in(steps: Steps, harness: Harness, username: str, display_name: str) -> None:
    """From the signed-out home page: "Sign in", the issuer's form, back home greeted."""
    page = steps.page
    page.get_by_role("main").get_by_role("link", name="Sign in").click()
    expect(page).to_have_url(re.compile(rf"^{re.escape(harness.issuer_url)}/interaction/"))
    expect(page.get_by_role("heading", level=1)).to_have_text("Sign in")
    page.fill("input[name=identifier]", username)
    page.fill("input[name=password]", harness.password(username))
    steps.shot(f"issuer-sign-in-{username}")
    page.click("button[type=submit]")
    expect(page).to_have_url(f"{harness.client_url}/")
    expect(page.get_by_role("heading", level=1)).to_have_text(f"Welcome, {display_name}")
    expect(page.get_by_role("banner")).to_contain_text(display_name)
    steps.shot(f"home-{username}")


def open_shopping(steps: Steps, username: str) -> None:
    """Follow "Shopping" in the menu; the shopping API answered (no error on the page)."""
    page = steps.page
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Shopping").click()
    expect(page).to_have_url(re.compile(r"/shopping$"))
    expect(page.get_by_role("heading", level=1)).to_have_text("Shopping")
    expect(page.get_by_role("alert")).to_have_count(0)
    steps.shot(f"shopping-{username}")


def place_order(steps: Steps, sku: str, quantity: str, note: str) -> int:
    """Fill in "Place an order" and press "Place order"; the HTTP status of the answer."""
    page = steps.page
    page.fill("input[name=sku]", sku)
    page.fill("input[name=quantity]", quantity)
    page.fill("input[name=note]", note)
    with page.expect_response(
        lambda r: r.request.method == "POST" and r.url.endswith("/shopping/orders")
    ) as posted:
        page.get_by_role("button", name="Place order").click()
    page.wait_for_load_state()
    return posted.value.status


def sign_out(steps: Steps, harness: Harness, username: str) -> None:
    """Press "Sign out" in the header: through the issuer's sign-out page, back home signed out."""
    page = steps.page
    page.get_by_role("banner").get_by_role("button", name="Sign out").click()
    expect(page).to_have_url(f"{harness.client_url}/")
    expect(page.get_by_role("heading", level=1)).to_have_text("You are not signed in")
    expect(page.get_by_role("banner")).to_contain_text("Sign in")
    steps.shot(f"signed-out-{username}")


def test_bob_orders_alice_is_refused(steps: Steps, harness: Harness) -> None:
    """Bob places an order and sees it; alice's order is refused for want of shopping:write."""
    page = steps.page
    with steps:
        page.goto("/")
        expect(page.get_by_role("heading", level=1)).to_have_text("You are not signed in")
        steps.shot("home-signed-out")

        sign_in(steps, harness, "bob", "Bob Example")
        open_shopping(steps, "bob")
        status = place_order(steps, "BOB-CHROMIUM-1", "3", "gift wrap")
        assert status == 303  # placed, then redirected to the list
        expect(page).to_have_url(re.compile(r"/shopping\?created=\d+$"))
        order_id = page.url.rsplit("=", 1)[1]
        expect(page.get_by_role("status")).to_have_text(f"Order #{order_id} was placed.")
        row = page.get_by_role("row").filter(has_text="BOB-CHROMIUM-1")
        expect(row.get_by_role("cell")).to_contain_text(
            [order_id, "3 \N{MULTIPLICATION SIGN} BOB-CHROMIUM-1", "gift wrap"]
        )
        steps.shot("order-listed-bob")
        sign_out(steps, harness, "bob")

        sign_in(steps, harness, "alice", "Alice Example")
        open_shopping(steps, "alice")
        expect(page.get_by_text("No orders yet.")).to_be_visible()  # bob's order is his
        expect(page.get_by_text("Your token does not grant shopping:write")).to_be_visible()
        status = place_order(steps, "ALICE-CHROMIUM-1", "2", "please")
        assert status == 403
        expect(page.get_by_role("alert")).to_have_text(
            "Your access token lacks the permission shopping:write needed for this."
        )
        expect(page.locator("input[name=sku]")).to_have_value("ALICE-CHROMIUM-1")  # kept
        steps.shot("order-refused-alice")
        sign_out(steps, harness, "alice")

    assert [path.name for path in steps.taken] == [
        "01-home-signed-out.png",
        "02-issuer-sign-in-bob.png",
        "03-home-bob.png",
        "04-shopping-bob.png",
        "05-order-listed-bob.png",
        "06-signed-out-bob.png",
        "07-issuer-sign-in-alice.png",
        "08-home-alice.png",
        "09-shopping-alice.png",
        "10-order-refused-alice.png",
        "11-signed-out-alice.png",
    ]
    assert steps.failed == ["403 POST /shopping/orders"]  # no missing style sheet or page
