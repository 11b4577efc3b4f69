"""The e2e stack for the real-browser tests: issuer, resource API and client app started by
``demo.launcher`` on free ports (through ``tests.e2e.harness``, as the e2e tests start them),
once for the module.

Whether the module runs at all (Chromium and Playwright present) is for ``test_chromium.py``
to decide: a fixture is only set up for a test that runs, so a skipped module starts nothing.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.e2e.harness import Harness, start_harness


@pytest.fixture(scope="module")
def harness(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Harness]:
    """The three programs with default token lifetimes."""
    running = start_harness(tmp_path_factory.mktemp("browser"), [])
    try:
        yield running
    finally:
        running.stop()
