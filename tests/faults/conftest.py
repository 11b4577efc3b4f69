"""Fault-injection fixtures: the three real programs behind the issuer fault proxy.

Two stacks, each started once for this package (and stopped after its last test):

* ``warm_stack``: key settings in seconds (fetch timeout 1.5 s, cooldown 1 s, background
  refresh every second, last-known-good keys kept 5 s), shared by the rotation, malformed
  JWKS, hung issuer and outage scenarios; each test starts from a settled stack (no fault, a
  fresh key set, the unknown-kid cooldown passed) and leaves the proxy as it found it;
* ``cold_stack``: started while the issuer is unreachable, with no background refresh (300 s)
  and a long fetch timeout (20 s) so that one held fetch can gather 200 waiting requests.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.e2e.harness import until_stopped
from tests.faults.stack import FaultStack, KeyPolicy, start_fault_stack
from tests.faults.traffic import Call

WARM = KeyPolicy(timeout=1.5, cooldown=1.0, refresh=1.0, max_stale=5.0)
COLD = KeyPolicy(timeout=20.0, cooldown=1.0, refresh=300.0, max_stale=600.0)


@pytest.fixture(scope="package")
def warm_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FaultStack]:
    yield from until_stopped(start_fault_stack(tmp_path_factory.mktemp("faults-warm"), WARM))


@pytest.fixture
def stack(warm_stack: FaultStack) -> Iterator[FaultStack]:
    """The warm stack, settled; the proxy is reset afterwards whatever the test did."""
    warm_stack.settle()
    try:
        yield warm_stack
    finally:
        warm_stack.proxy.reset()
    warm_stack.assert_running()


@pytest.fixture
def valid_calls(stack: FaultStack) -> list[Call]:
    """Valid requests signed with the current key: three machine-to-machine tokens, bob's
    shopping and store tokens and alice's shopping token, each from a fresh sign-in."""
    calls = stack.m2m_calls(3)
    for username in ("bob", "alice"):
        with stack.browser() as browser:
            calls += stack.user_calls(browser, username)
    return calls


@pytest.fixture(scope="package")
def cold_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FaultStack]:
    """Started with the issuer proxy down: the API's start-up key fetch is refused."""
    yield from until_stopped(
        start_fault_stack(
            tmp_path_factory.mktemp("faults-cold"),
            COLD,
            prepare=lambda proxy: proxy.down(),
            wait_for_api_keys=False,
        )
    )
