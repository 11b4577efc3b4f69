"""A key rotation under continuous traffic: not one valid request fails.

Traffic carries tokens signed by the old key from start to end and, from the moment the
rotation returns, tokens minted afterwards (signed by the new key, whose kid the API has never
seen): the first of those makes the API fetch the key set at once (the unknown-kid cooldown is
its own), concurrent ones share that fetch, and the old key stays published as "previous".
"""

from __future__ import annotations

import time

import jwt

from tests.faults.checks import SLACK, failures
from tests.faults.issuer_proxy import JWKS_PATH, Slow
from tests.faults.stack import FaultStack
from tests.faults.traffic import Call, Sample, Traffic

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
