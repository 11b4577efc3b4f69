"""A cold API (started while the issuer is unreachable) and a flood of made-up kids.

The cold stack's API has never held a key: its start-up fetch was refused. Until it gets keys
it answers the documented 503 with ``Retry-After`` (an issuer outage is not the caller's
fault), at once. Then the issuer answers again, but holds the key fetch: 200 requests arrive on
200 connections and all wait for that one fetch, which, once released, answers them all.

The flood runs on the same API once warm (no background refresh there, so every key-set
fetch the proxy counts was caused by an unknown kid): tokens with kids the issuer never
published cost at most one fetch per cooldown, and valid traffic is untouched. The request
whose kid caused a fetch is a 401 (the issuer answered without it); every other one is the
documented 503 with ``Retry-After``: within the cooldown the API cannot ask the issuer, and a
valid token signed by a key published since would look the same (issue 9 #7).
"""

from __future__ import annotations

import threading
import time

import httpx

from tests.faults.checks import SLACK, assert_unavailable, failures
from tests.faults.issuer_proxy import DISCOVERY_PATH, JWKS_PATH, KEY_PATHS, Hang
from tests.faults.stack import FaultStack, wait_until
from tests.faults.traffic import Sample, Traffic, burst, call

CONCURRENT = 200
SETTLE_SECONDS = 1.0
"""After the last request is written, before the fetch is released: the API reads them."""
FLOOD_SECONDS = 4.0


def test_a_cold_api_answers_503_then_200_concurrent_requests_share_one_fetch(
    cold_stack: FaultStack,
) -> None:
    stack, policy = cold_stack, cold_stack.policy
    assert stack.health()["keys_loaded"] is False
    calls = stack.m2m_calls(4)  # minted around the proxy: the issuer's address is down

    # No key yet, the issuer refuses connections: the documented 503, without delay.
    with httpx.Client(timeout=30) as http:
        refused = [call(http, stack.api_url, calls[i % len(calls)]) for i in range(5)]
    for sample in refused:
        assert_unavailable(sample, policy)
        assert sample.seconds <= SLACK, sample.describe()

    # The issuer is back but holds the key fetch the API starts (its refresh loop retries).
    up_at = time.time()
    stack.proxy.set_fault(Hang(), KEY_PATHS)
    stack.proxy.up()
    wait_until(
        lambda: stack.proxy.api_requests(DISCOVERY_PATH, since=up_at),
        10,
        "the API to try its key fetch again",
    )
    all_sent = threading.Event()
    answers: list[list[Sample]] = []
    requests = [calls[i % len(calls)] for i in range(CONCURRENT)]
    sender = threading.Thread(
        target=lambda: answers.append(list(burst(stack.api_url, requests, all_sent=all_sent))),
        daemon=True,
    )
    sender.start()
    assert all_sent.wait(30), "the burst could not be written"
    time.sleep(SETTLE_SECONDS)
    assert stack.health()["keys_loaded"] is False  # nobody has been answered from keys yet
    released_at = time.time()
    stack.proxy.release()
    sender.join(60)
    samples = [s for batch in answers for s in batch]

    assert len(samples) == CONCURRENT
    assert failures(samples) == []
    assert all(s.done >= released_at for s in samples)
    assert len(stack.proxy.api_requests(DISCOVERY_PATH, since=up_at)) == 1
    assert len(stack.proxy.api_requests(JWKS_PATH, since=up_at)) == 1
    assert stack.health()["keys_loaded"] is True
    print(  # the numbers of the report (pytest -s)
        f"\ncold API: {len(refused)} refused with 503 while down; {CONCURRENT} concurrent "
        f"requests answered 200 by 1 discovery + 1 JWKS fetch"
    )


def test_a_flood_of_made_up_kids_costs_at_most_one_fetch_per_cooldown(
    cold_stack: FaultStack,
) -> None:
    stack, policy = cold_stack, cold_stack.policy
    stack.proxy.reset()
    wait_until(lambda: stack.health()["keys_loaded"], 10, "the API to hold keys")
    valid = stack.m2m_calls(3)
    made_up = [stack.made_up_kid_call() for _ in range(300)]
    time.sleep(policy.cooldown)  # no unknown-kid fetch in the last cooldown
    with Traffic(stack.api_url, valid, workers=2) as traffic:
        start = time.time()
        with Traffic(stack.api_url, made_up, workers=3, pause=0.005) as flood:
            time.sleep(FLOOD_SECONDS)
        end = time.time()
    flooded = flood.samples
    fetches = stack.proxy.api_requests(JWKS_PATH, since=start, until=end)

    assert failures(traffic.samples) == []
    assert len(flooded) >= 100, len(flooded)
    invalid = [s for s in flooded if s.status == 401]
    for sample in invalid:
        assert sample.error == "invalid_token"
        assert sample.challenge is not None
        assert 'error="invalid_token"' in sample.challenge
    for sample in flooded:
        if sample.status != 401:
            assert_unavailable(sample, policy)
    assert 2 <= len(fetches) <= policy.fetch_bound(end - start), len(fetches)
    assert 1 <= len(invalid) <= len(fetches), (len(invalid), len(fetches))
    assert stack.proxy.api_requests(DISCOVERY_PATH, since=start) == []
    print(  # the numbers of the report (pytest -s)
        f"\nkid flood: {len(flooded)} made-up kids in {end - start:.1f}s ({len(invalid)} 401, "
        f"the rest 503) caused {len(fetches)} JWKS fetches "
        f"(bound {policy.fetch_bound(end - start)}); "
        f"{len(traffic.samples)} valid requests, all 200"
    )
