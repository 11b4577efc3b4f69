"""End-to-end fixtures: the dev issuer, the resource API and the client app as real servers
(started by ``demo.launcher``, as ``python -m demo`` starts them), and browsers on them.

The contract tests (``test_contract.py``) run last, so that they check every request the
client app made during the other scenarios too.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.browser import Browser
from tests.e2e.harness import Harness, start_harness, until_stopped
from tests.e2e.proxy import Exchange

CONTRACT_TESTS = Path(__file__).with_name("test_contract.py")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Move the contract tests after every other end-to-end test."""
    items.sort(key=lambda item: item.path == CONTRACT_TESTS)


@pytest.fixture(scope="session")
def exchanges() -> list[Exchange]:
    """Every request the client app sent to the resource API during the session."""
    return []


@pytest.fixture(scope="session")
def harness(
    tmp_path_factory: pytest.TempPathFactory, exchanges: list[Exchange]
) -> Iterator[Harness]:
    """The three programs with default token lifetimes, for the whole session."""
    yield from until_stopped(start_harness(tmp_path_factory.mktemp("e2e"), exchanges))


@pytest.fixture
def browser(harness: Harness) -> Iterator[Browser]:
    """A fresh browser (its own cookie jar); the test fails if a program died meanwhile."""
    with harness.browser() as opened:
        yield opened
    harness.assert_running()


@pytest.fixture(scope="module")
def bob(harness: Harness) -> Iterator[Browser]:
    """bob, who may write on both APIs, signed in once for the module."""
    with harness.browser() as browser:
        browser.sign_in("bob", harness.password("bob"))
        yield browser


@pytest.fixture
def proxy_faults(harness: Harness) -> Iterator[None]:
    """Faults left unused by a test are dropped after it."""
    yield
    harness.proxy.clear_faults()
