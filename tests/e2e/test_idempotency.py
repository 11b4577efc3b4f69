"""A form submitted twice creates once: the client app renders one Idempotency-Key per form
and sends it with the POST, so a double click, or a retry after the API's answer was lost,
gives the first order (or product) again instead of a second one. Through the real client
app, API and issuer; the recording proxy loses the answer for the timeout case."""

from __future__ import annotations

import re
import uuid

import pytest

from tests.e2e.browser import Browser
from tests.e2e.harness import Harness
from tests.e2e.pages import Page
from tests.e2e.proxy import Fault

UNREACHABLE = "The API cannot be reached right now."


def _skus(page: Page) -> list[str]:
    return [row[1].split("\u00d7 ", 1)[1] for row in page.table_rows(page.section("Your orders"))]


def _created(page: Page) -> int:
    found = re.search(r"[?&]created=(\d+)$", page.url)
    assert found is not None, (page.url, page.alerts("error"))
    return int(found.group(1))


def test_each_rendered_form_carries_its_own_key(bob: Browser) -> None:
    """Two renderings of the order form carry two different random keys."""
    first = bob.get("/shopping").form("/shopping/orders").fields["idempotency_key"]
    second = bob.get("/shopping").form("/shopping/orders").fields["idempotency_key"]
    assert len(first) >= 32
    assert first != second


def test_an_order_form_submitted_twice_places_one_order(harness: Harness, bob: Browser) -> None:
    """The same rendered form posted twice (a double click): both land on the same order,
    the second was a replay, and the list holds the SKU once."""
    sku = f"TWICE-{uuid.uuid4().hex[:8]}"
    form_page = bob.get("/shopping")
    since = len(harness.exchanges)

    first = bob.submit(form_page, "/shopping/orders", sku=sku, quantity="1")
    second = bob.submit(form_page, "/shopping/orders", sku=sku, quantity="1")

    assert _created(first) == _created(second)
    assert _skus(second).count(sku) == 1
    posts = [e for e in harness.exchanges[since:] if e.method == "POST"]
    keys = {e.request_headers.get("idempotency-key") for e in posts}
    assert len(posts) == 2
    assert len(keys) == 1
    assert None not in keys
    assert posts[1].response_headers.get("idempotent-replayed") == "true"


@pytest.mark.usefixtures("proxy_faults")
def test_a_retry_after_a_lost_answer_places_one_order(harness: Harness, bob: Browser) -> None:
    """The API places the order but its answer is lost (a timeout): the page says the API could
    not be reached and keeps the form with its key; submitting it again shows the one order."""
    sku = f"RETRY-{uuid.uuid4().hex[:8]}"
    harness.proxy.inject(Fault("POST", "/shopping/orders", None, forward=True))

    lost = bob.submit(bob.get("/shopping"), "/shopping/orders", sku=sku, quantity="2")

    assert harness.proxy.clear_faults() == []
    assert UNREACHABLE in " ".join(lost.alerts("error"))
    assert _skus(lost).count(sku) == 1  # it was placed all the same
    retried = bob.submit(lost, "/shopping/orders")
    assert retried.alerts("error") == []
    assert _skus(retried).count(sku) == 1


def test_a_product_form_submitted_twice_adds_one_product(harness: Harness, bob: Browser) -> None:
    """The same holds for the store's product form."""
    name = f"Twice {uuid.uuid4().hex[:8]}"
    form_page = bob.get("/store")

    first = bob.submit(form_page, "/store/products", name=name, price="1.50")
    second = bob.submit(form_page, "/store/products", name=name, price="1.50")

    assert _created(first) == _created(second)
    names = [row[1] for row in second.table_rows(second.section("Catalog"))]
    assert names.count(name) == 1


def test_a_changed_form_after_a_lost_answer_gets_a_fresh_key(
    harness: Harness, bob: Browser
) -> None:
    """Resubmitting the kept form with other values is another order: the API refuses the
    reused key (422), the page says so and renders a fresh key, with which the order goes
    through."""
    sku = f"CHANGED-{uuid.uuid4().hex[:8]}"
    form_page = bob.get("/shopping")
    bob.submit(form_page, "/shopping/orders", sku=sku, quantity="1")

    refused = bob.submit(form_page, "/shopping/orders", sku=sku, quantity="5")

    assert refused.status == 422
    [message] = refused.alerts("error")
    assert "already submitted" in message
    fresh_key = refused.form("/shopping/orders").fields["idempotency_key"]
    assert fresh_key != form_page.form("/shopping/orders").fields["idempotency_key"]
    placed = bob.submit(refused, "/shopping/orders")
    assert _created(placed)
    assert _skus(placed).count(sku) == 2
