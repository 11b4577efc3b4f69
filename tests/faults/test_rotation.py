"""A key rotation under continuous traffic: not one valid request fails.

Traffic carries tokens signed by the old key from start to end and, from the moment the
rotation returns, tokens minted afterwards (signed by the new key, whose kid the API has never
seen): the first of those makes the API fetch the key set at once (the unknown-kid cooldown is
its own), concurrent ones share that fetch, and the old key stays published as "previous".

Then the same rotation right after a made-up kid spent that refetch (issue 9 #7), on a stack of
its own with a 10 s cooldown: the new key's tokens are told to retry (503), never to sign in
again (401), until the cooldown lets the API fetch the new key.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import jwt
import pytest

from tests.e2e.harness import until_stopped
from tests.faults.checks import SLACK, assert_unavailable, failures
from tests.faults.issuer_proxy import JWKS_PATH, Slow
from tests.faults.stack import FaultStack, KeyPolicy, start_fault_stack
from tests.faults.traffic import Call, Sample, Traffic, call

STEADY_SECONDS = 1.0
AFTER_SECONDS = 2.5


def kid_of(call: Call) -> str:
    return str(jwt.get_unverified_header(call.token)["kid"])


def rotate_under_traffic(stack: FaultStack, calls: list[Call]) -> tuple[list[Sample], set[str]]:
    """Rotate while ``calls`` run; add calls signed by the new key (machine-to-machine tokens
    and bob's, from a sign-in through the client app) as soon as they exist."""
    with Traffic(stack.api_url, calls) as traffic:
        time.sleep(STEADY_SECONDS)
        summary = stack.rotate_keys()
        fresh = stack.m2m_calls(2)
        traffic.set_calls(calls + fresh)
        with stack.browser() as browser:
            fresh += stack.user_calls(browser, "bob")  # the client app's calls must work too
        traffic.set_calls(calls + fresh)
        time.sleep(AFTER_SECONDS)
    new_kid = summary["current"]["kid"]
    assert summary["previous"]["kid"] in {kid_of(c) for c in calls}
    assert {kid_of(c) for c in fresh} == {new_kid}
    new_labels = {c.label for c in fresh}
    return traffic.samples, new_labels


def test_zero_failed_requests_through_a_key_rotation(
    stack: FaultStack, valid_calls: list[Call]
) -> None:
    samples, new_labels = rotate_under_traffic(stack, valid_calls)

    assert failures(samples) == []
    signed_by_new_key = [s for s in samples if s.label in new_labels]
    assert len(signed_by_new_key) >= 20, len(signed_by_new_key)
    assert len(samples) - len(signed_by_new_key) >= 50


def test_zero_failed_requests_through_a_rotation_while_the_issuer_is_slow(
    stack: FaultStack, valid_calls: list[Call]
) -> None:
    """Every key-set fetch takes 0.5 s (a third of the fetch timeout): the first requests
    with the new key wait for it, none fails and none waits longer than the timeout."""
    stack.proxy.set_fault(Slow(0.5), [JWKS_PATH])

    samples, new_labels = rotate_under_traffic(stack, valid_calls)

    assert failures(samples) == []
    assert len([s for s in samples if s.label in new_labels]) >= 20
    assert max(s.seconds for s in samples) <= stack.policy.timeout + SLACK
    slowed = [s for s in stack.proxy.good_key_sets() if s.fault == "slow"]
    assert slowed, "no key set was fetched through the slow issuer"


SPENT_COOLDOWN = KeyPolicy(timeout=1.5, cooldown=10.0, refresh=300.0, max_stale=600.0)
"""A refetch cooldown long enough that a sign-in fits inside it; no background refresh."""
UNAVAILABLE = "The API is temporarily unavailable. Please try again in a moment."
SIGN_IN_AGAIN = "Please sign in again."


@pytest.fixture(scope="module")
def spent_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FaultStack]:
    yield from until_stopped(
        start_fault_stack(tmp_path_factory.mktemp("faults-spent"), SPENT_COOLDOWN)
    )


def test_a_made_up_kid_cannot_turn_a_rotation_into_401s(spent_stack: FaultStack) -> None:
    """Issue 9 #7 on the real programs: a made-up kid spends the API's unknown-kid refetch,
    then the issuer rotates (``POST /dev/rotate-keys``). Within the cooldown a valid token of
    the new key gets 503 + Retry-After (never 401) and bob's page says "try again", not "sign
    in again"; no fetch happens meanwhile; after Retry-After the same token is a 200 and bob's
    page works."""
    stack, policy = spent_stack, spent_stack.policy
    with httpx.Client(timeout=30) as http:
        junk = call(http, stack.api_url, stack.made_up_kid_call())
        rotated_kid = stack.rotate_keys()["current"]["kid"]
        (fresh,) = stack.m2m_calls(1)
        during = call(http, stack.api_url, fresh)
        with stack.browser() as browser:
            home = browser.sign_in("bob", stack.password("bob"))
            assert home.title.startswith("Welcome, "), home.text
            page = browser.get("/shopping")
            fetches_during = stack.proxy.api_requests(JWKS_PATH, since=junk.done)
            # The scenario's premise (not a performance bound): all of it inside the cooldown.
            assert time.time() < junk.sent + policy.cooldown, "the machine outran the cooldown"
            assert during.retry_after is not None, during.describe()
            time.sleep(int(during.retry_after))
            after = call(http, stack.api_url, fresh)
            page_after = browser.get("/shopping")

    assert (junk.status, junk.error) == (401, "invalid_token"), junk.describe()
    assert kid_of(fresh) == rotated_kid
    assert_unavailable(during, policy)
    assert fetches_during == []
    assert UNAVAILABLE in page.text, page.text
    assert SIGN_IN_AGAIN not in page.text
    assert after.status == 200, after.describe()
    assert page_after.alerts("error") == [], page_after.text
