"""Verdicts on the samples of a scenario: what the API must have answered, and when.

Times compare across processes because the test, the proxy (in the test process) and the API
read the same wall clock. The one margin, :data:`SLACK`, is what a loaded 2-core machine may
add between two events (a process not scheduled at once); it widens each bound in the
direction that tolerates delay, never the direction that would hide a wrong answer.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

from tests.faults.issuer_proxy import Served
from tests.faults.stack import KeyPolicy
from tests.faults.traffic import Sample

SLACK: Final = 1.0
"""Seconds of scheduling delay tolerated (a correctness margin, not a performance target)."""
MIN_SAMPLES: Final = 3
"""Each phase a verdict speaks about must have seen at least this many requests."""


def last_good_before(served: Iterable[Served], moment: float) -> float:
    """When the last good key set the API received before ``moment`` was handed to it."""
    times = [s.answered_at for s in served if s.answered_at is not None and s.received_at < moment]
    assert times, "the API never received a good key set before the fault"
    return max(times)


def failures(samples: Iterable[Sample]) -> list[str]:
    """Every sample that is not a 200, described (empty when all succeeded)."""
    return [s.describe() for s in samples if s.status != 200]


def assert_unavailable(sample: Sample, policy: KeyPolicy) -> None:
    """The documented answer without usable keys: 503, ``Retry-After`` within the cooldown,
    ``temporarily_unavailable``."""
    assert sample.status == 503, sample.describe()
    assert sample.error == "temporarily_unavailable", sample.describe()
    assert sample.retry_after is not None, sample.describe()
    assert sample.retry_after.isdigit(), sample.retry_after
    assert 1 <= int(sample.retry_after) <= max(1, math.ceil(policy.cooldown)), sample.retry_after


@dataclass(frozen=True)
class Window:
    """How the valid requests of an issuer fault fared, phase by phase."""

    served_stale: int
    """Answered 200 on last-known-good keys during the fault, inside the window."""
    refused: int
    """Answered 503 after the window, while the fault lasted."""
    recovered: int
    """Answered 200 after the issuer came back."""
    longest: float
    """The longest request of the whole scenario, in seconds."""


def assert_window(
    samples: list[Sample],
    *,
    last_good: float,
    fault_start: float,
    fault_end: float,
    policy: KeyPolicy,
) -> Window:
    """Valid requests during an issuer fault that outlasts ``max_stale``:

    * every answer is 200 or the documented 503 (never a 401, a 500 or no answer);
    * every request answered before ``last_good + max_stale`` is a 200 (the API holds its keys
      at least that long: it received them no earlier than the proxy handed them over);
    * every request sent after the window (plus :data:`SLACK`) and answered before the issuer
      returned is a 503: last-known-good keys do not serve forever;
    * every request sent once the issuer is back for a fetch timeout plus a cooldown (plus
      :data:`SLACK`) is a 200: recovery needs no restart.
    """
    window_end = last_good + policy.max_stale
    recovery = fault_end + policy.timeout + policy.cooldown + SLACK
    stale = refused = recovered = 0
    for sample in samples:
        assert sample.status in (200, 503), sample.describe()
        if sample.status == 503:
            assert_unavailable(sample, policy)
        if sample.done <= window_end:
            assert sample.status == 200, f"{sample.describe()} inside the window"
            stale += sample.sent >= fault_start
        elif sample.sent >= window_end + SLACK and sample.done <= fault_end:
            assert sample.status == 503, f"{sample.describe()} after the window"
            refused += 1
        elif sample.sent >= recovery:
            assert sample.status == 200, f"{sample.describe()} after recovery"
            recovered += 1
    assert stale >= MIN_SAMPLES, f"only {stale} requests inside the window"
    assert refused >= MIN_SAMPLES, f"only {refused} requests after the window"
    assert recovered >= MIN_SAMPLES, f"only {recovered} requests after recovery"
    return Window(stale, refused, recovered, max(s.seconds for s in samples))
