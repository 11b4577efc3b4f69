"""Prometheus metrics, cheap on the request path and cheap to scrape.

A :class:`Registry` holds metric families (:meth:`~Registry.counter`, :meth:`~Registry.gauge`,
:meth:`~Registry.histogram`), each with fixed label names; a series is bound once per label
values (``family.labels("GET", "/health", "200")``) and updated with a plain attribute
increment. Collectors (:meth:`~Registry.collect_with`) copy statistics the program keeps anyway
(cache sizes, fetch counters) into gauges and counters when a snapshot is taken, so they cost
nothing per request.

A :class:`Snapshot` is a registry's values at one instant, self-describing (names, help,
types, label names, buckets) and serialisable: each worker process writes its own
(:mod:`service_kit.metrics_export`), and :func:`render` merges any number of them into one
exposition in the Prometheus text format 0.0.4 (counters and histograms summed over the
processes; gauges summed, or their maximum or minimum, as each declares).

Why not Litestar's ``litestar.plugins.prometheus`` (read in litestar 2.25): its middleware
labels requests with the raw path unless ``group_path=True``; it runs as app middleware, after
routing, so the router's 404s and 405s (a scanner's requests) are never counted; it builds a
``Request`` and a label dictionary and updates an in-progress gauge on every request; and its
metrics live in a class-level dictionary registered in prometheus-client's global registry,
shared by every app of a process. Why not ``prometheus-client`` alone: measured here, its
``generate_latest`` costs about 7 µs per exposed line (label-name validation and escaping of
every sample), 2-4 ms for 20-30 latency series, and its multiprocess mode more (a JSON key
decoded per sample; custom collectors not supported); the budget of a scrape is 2 ms. Here a
scrape formats each series with plain f-strings (0.13 ms for the API's 6 KB after a benchmark
run). The tests parse every exposition with ``prometheus-client``'s own parser.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable, Iterable, Sequence
from typing import Final, Literal

import msgspec

Kind = Literal["counter", "gauge", "histogram"]
GaugeMerge = Literal["sum", "max", "min"]
LATENCY_BUCKETS: Final = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0)
"""Seconds; a request of this API takes 0.2-5 ms on its own, more when queued."""


class FamilySnapshot(msgspec.Struct, array_like=True):
    """One family's values at one instant: label values -> value (histograms: per-bucket
    counts, not cumulative, then the +Inf bucket's own count, then the sum)."""

    name: str
    kind: Kind
    help: str
    labels: tuple[str, ...]
    merge: GaugeMerge
    buckets: tuple[float, ...]
    series: list[tuple[tuple[str, ...], list[float]]]


class Snapshot(msgspec.Struct):
    """A registry's values at one instant, as a worker writes them for the exporter."""

    pid: int
    families: list[FamilySnapshot]


class Series:
    """One counter or gauge series: ``value`` is the number."""

    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0.0

    def inc(self, amount: float = 1.0) -> None:
        """Add ``amount`` (a counter only ever goes up)."""
        self.value += amount

    def set(self, value: float) -> None:
        """Set a gauge (or a counter copied from statistics kept elsewhere)."""
        self.value = value


class HistogramSeries:
    """One histogram series: an observation lands in its bucket (cumulated when rendered)."""

    __slots__ = ("_bounds", "counts", "sum")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self._bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.sum = 0.0

    def observe(self, value: float) -> None:
        """Count one observation of ``value``."""
        self.counts[bisect.bisect_left(self._bounds, value)] += 1
        self.sum += value


class Family:
    """A metric family: a name, a help text, label names and the series bound so far."""

    def __init__(
        self,
        name: str,
        kind: Kind,
        help_text: str,
        labels: tuple[str, ...],
        *,
        merge: GaugeMerge = "sum",
        buckets: tuple[float, ...] = (),
    ) -> None:
        self.name = name
        self.kind = kind
        self.help = help_text
        self.label_names = labels
        self.merge = merge
        self.buckets = buckets
        self._series: dict[tuple[str, ...], Series | HistogramSeries] = {}

    def labels(self, *values: str) -> Series:
        """The counter or gauge series of these label values (created at first use)."""
        series = self._series.get(values)
        if series is None:
            series = self._series[values] = self._new(values)
        if not isinstance(series, Series):  # pragma: no cover - a programming error
            raise TypeError(f"{self.name} is a histogram: use histogram_labels()")
        return series

    def histogram_labels(self, *values: str) -> HistogramSeries:
        """The histogram series of these label values (created at first use)."""
        series = self._series.get(values)
        if series is None:
            series = self._series[values] = self._new(values)
        if not isinstance(series, HistogramSeries):  # pragma: no cover - a programming error
            raise TypeError(f"{self.name} is not a histogram")
        return series

    def _new(self, values: tuple[str, ...]) -> Series | HistogramSeries:
        if len(values) != len(self.label_names):
            raise ValueError(f"{self.name} takes labels {self.label_names}")
        return HistogramSeries(self.buckets) if self.kind == "histogram" else Series()

    def snapshot(self) -> FamilySnapshot:
        """The family's values now."""
        series: list[tuple[tuple[str, ...], list[float]]] = []
        for values, one in list(self._series.items()):
            if isinstance(one, HistogramSeries):
                series.append((values, [*one.counts, one.sum]))
            else:
                series.append((values, [one.value]))
        return FamilySnapshot(
            self.name, self.kind, self.help, self.label_names, self.merge, self.buckets, series
        )


class Registry:
    """The metric families of one process, and the collectors that refresh some of them."""

    def __init__(self) -> None:
        self._families: dict[str, Family] = {}
        self._collectors: list[Callable[[], None]] = []

    def counter(self, name: str, help_text: str, labels: Sequence[str] = ()) -> Family:
        """A counter family (``name`` ends in ``_total``)."""
        return self._add(Family(name, "counter", help_text, tuple(labels)))

    def gauge(
        self, name: str, help_text: str, labels: Sequence[str] = (), *, merge: GaugeMerge = "sum"
    ) -> Family:
        """A gauge family; ``merge`` says how the values of several processes combine."""
        return self._add(Family(name, "gauge", help_text, tuple(labels), merge=merge))

    def histogram(
        self,
        name: str,
        help_text: str,
        labels: Sequence[str] = (),
        *,
        buckets: Sequence[float] = LATENCY_BUCKETS,
    ) -> Family:
        """A histogram family with these upper bounds (``+Inf`` is added)."""
        bounds = tuple(sorted(buckets))
        return self._add(Family(name, "histogram", help_text, tuple(labels), buckets=bounds))

    def collect_with(self, collector: Callable[[], None]) -> None:
        """Call ``collector`` before each snapshot, to copy statistics into series."""
        self._collectors.append(collector)

    def snapshot(self, pid: int = 0) -> Snapshot:
        """Every family's values now (the collectors run first)."""
        for collector in self._collectors:
            collector()
        return Snapshot(pid, [family.snapshot() for family in self._families.values()])

    def render(self) -> bytes:
        """This registry alone, in the text format."""
        return render([self.snapshot()])

    def _add(self, family: Family) -> Family:
        if family.name in self._families:
            raise ValueError(f"metric {family.name} is already registered")
        self._families[family.name] = family
        return family


def render(snapshots: Iterable[Snapshot], *, live: Callable[[int], bool] | None = None) -> bytes:
    """One exposition (text format 0.0.4) of several processes' snapshots: counters and
    histograms are summed; gauges are combined as their family declares, over the processes
    ``live`` says are running (all when ``live`` is ``None``): a dead worker's cache is gone,
    while what it counted stays counted."""
    merged: dict[str, tuple[FamilySnapshot, dict[tuple[str, ...], list[float]]]] = {}
    for snapshot in snapshots:
        alive = live is None or live(snapshot.pid)
        for family in snapshot.families:
            entry = merged.get(family.name)
            if entry is None:
                entry = merged[family.name] = (family, {})
            if family.kind == "gauge" and not alive:
                continue
            _merge_into(entry[1], family)
    lines: list[str] = []
    for family, series in merged.values():
        _render_family(lines, family, series)
    return "".join(lines).encode()


def _merge_into(target: dict[tuple[str, ...], list[float]], family: FamilySnapshot) -> None:
    combine: Callable[[float, float], float] = (
        max if family.merge == "max" else min if family.merge == "min" else _add
    )
    if family.kind != "gauge":
        combine = _add
    for values, numbers in family.series:
        key = tuple(values)
        current = target.get(key)
        if current is None:
            target[key] = list(numbers)
        else:
            target[key] = [combine(a, b) for a, b in zip(current, numbers, strict=True)]


def _add(a: float, b: float) -> float:
    return a + b


def _render_family(
    lines: list[str], family: FamilySnapshot, series: dict[tuple[str, ...], list[float]]
) -> None:
    name = family.name
    lines.append(f"# HELP {name} {_escape_help(family.help)}\n# TYPE {name} {family.kind}\n")
    names = family.labels
    for values, numbers in sorted(series.items()):
        pairs = [
            f'{label}="{_escape_value(value)}"' for label, value in zip(names, values, strict=True)
        ]
        if family.kind != "histogram":
            labels = "{" + ",".join(pairs) + "}" if pairs else ""
            lines.append(f"{name}{labels} {_number(numbers[0])}\n")
            continue
        prefix = ",".join(pairs) + "," if pairs else ""
        cumulative = 0.0
        for bound, count in zip(family.buckets, numbers, strict=False):
            cumulative += count
            lines.append(f'{name}_bucket{{{prefix}le="{_number(bound)}"}} {_number(cumulative)}\n')
        cumulative += numbers[len(family.buckets)]
        labels = "{" + ",".join(pairs) + "}" if pairs else ""
        lines.append(f'{name}_bucket{{{prefix}le="+Inf"}} {_number(cumulative)}\n')
        lines.append(f"{name}_sum{labels} {_number(numbers[-1])}\n")
        lines.append(f"{name}_count{labels} {_number(cumulative)}\n")


def _number(value: float) -> str:
    if not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("+Inf" if value > 0 else "-Inf")
    if value == int(value):
        return str(int(value))
    return repr(float(value))


def _escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def _escape_value(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')
