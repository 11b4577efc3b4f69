"""A malformed or empty key set never replaces the good one.

After warm-up the proxy answers the JWKS path with one broken document at a time, to the API's
background refresh and to the fetch a made-up kid causes. Valid traffic runs throughout: had
any broken document replaced the keys, the next valid request would have been a 401. Between
two documents the issuer answers normally again (a good key set resets the staleness clock);
at the end a rotation still works, so key fetching itself was not left broken.
"""

from __future__ import annotations

import json
import time
from functools import partial

import httpx
import pytest
from litestar_logto.keys import LOGTO_ALGORITHMS, parse_key_set

from tests.faults.checks import assert_unavailable, failures
from tests.faults.issuer_proxy import JWKS_PATH, Pass, Replace
from tests.faults.stack import FaultStack, wait_until
from tests.faults.traffic import Call, Traffic, call


def broken_key_sets(kids: list[str]) -> list[Replace]:
    """Documents a broken issuer or a misbehaving cache in front of it could serve with 200."""
    garbage = [
        # the real kids, with key material that is not a point on the curve
        *({"kty": "EC", "crv": "P-384", "alg": "ES384", "use": "sig", "kid": kid,
           "x": "AAAA", "y": "AAAA"} for kid in kids),
        {"kty": "oct", "k": "c2VjcmV0", "kid": "symmetric"},  # an HMAC key: never accepted
        {"kty": "RSA", "kid": "no-modulus", "e": "AQAB"},
        {"kid": ""},
        42,
        "key",
    ]  # fmt: skip
    return [
        Replace(b"<html><body>502 Bad Gateway</body></html>", "html", content_type="text/html"),
        Replace(b"", "empty body"),
        Replace(b'{"keys": [{"kty": "EC", "crv"', "truncated json"),
        Replace(b"[]", "json array"),
        Replace(b'{"error": "server_error"}', "no keys member"),
        Replace(b'{"keys": []}', "empty key list"),
        Replace(json.dumps({"keys": garbage}).encode(), "garbage keys"),
    ]


def served_to_api(stack: FaultStack, label: str, since: float) -> bool:
    """Whether the API was handed the ``label`` key set (``good``: the issuer's) since then."""
    if label == "good":
        return any(s.received_at > since for s in stack.proxy.good_key_sets())
    served = stack.proxy.api_requests(JWKS_PATH, since=since)
    return any(s.fault == label and s.delivered for s in served)


def test_a_malformed_key_set_never_replaces_a_good_one(
    stack: FaultStack, valid_calls: list[Call]
) -> None:
    published = httpx.get(f"{stack.issuer_direct}{JWKS_PATH}", timeout=10).json()
    kids = [str(key["kid"]) for key in published["keys"]]
    variants = broken_key_sets(kids)
    with Traffic(stack.api_url, valid_calls) as traffic, httpx.Client(timeout=30) as http:
        made_up_at = 0.0
        for variant in variants:
            since = time.time()
            stack.proxy.set_fault(variant, [JWKS_PATH])
            # A made-up kid makes the API fetch at once, once its cooldown has passed.
            time.sleep(max(0.0, made_up_at + stack.policy.cooldown + 0.05 - since))
            made_up_at = time.time()
            made_up = call(http, stack.api_url, stack.made_up_kid_call())
            # The issuer answered garbage: whether it publishes that kid is unknown (503).
            assert_unavailable(made_up, stack.policy)
            wait_until(
                partial(served_to_api, stack, variant.label, since),
                10,
                f"the API to fetch the {variant.label} key set",
            )
            assert stack.health()["keys_loaded"] is True, variant.label
            stack.proxy.set_fault(Pass(), [JWKS_PATH])
            passed_at = time.time()
            wait_until(partial(served_to_api, stack, "good", passed_at), 10, "a good key set")
        time.sleep(stack.policy.cooldown)  # the made-up kids' cooldown
        stack.rotate_keys()
        after_rotation = stack.m2m_calls(2)
        traffic.set_calls(valid_calls + after_rotation)
        for new in after_rotation:
            assert call(http, stack.api_url, new).status == 200
        time.sleep(0.5)
    samples = traffic.samples

    assert failures(samples) == []
    assert len(samples) >= 100, len(samples)
    served = {s.fault for s in stack.proxy.api_requests(JWKS_PATH)}
    assert {v.label for v in variants} <= served


@pytest.mark.parametrize("variant", broken_key_sets(["kid"]), ids=lambda v: v.label)
def test_each_broken_document_is_refused_by_the_key_source(variant: Replace) -> None:
    """The documents above are each unusable on their own (so the scenario tests refusal, not
    a document the API could have taken): ``parse_key_set`` or JSON decoding rejects them."""
    try:
        document = json.loads(variant.body)
    except ValueError:
        return  # not JSON at all
    try:
        keys = parse_key_set(document, LOGTO_ALGORITHMS)
    except ValueError:
        return  # not a key set
    assert keys == {}
