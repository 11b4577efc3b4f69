"""``--metrics-port``: one coherent scrape of every worker, on a loopback listener apart from
the public one (issue 10 item 5), and the merge it rests on.

The process tests run ``tests/service_kit/served_program.py`` through ``service_kit.cli.run``,
as both programs run, with real granian workers.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from service_kit.metrics import Registry, render
from service_kit.metrics_export import CONTENT_TYPE
from tests.e2e.harness import free_ports
from tests.served_programs import HOST, REPO, Serve, program_environ, wait_gone

PROGRAM = "tests.service_kit.served_program"


def _values(text: str, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    return {
        tuple(sorted(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name
    }


def test_snapshots_of_several_processes_merge_into_one_exposition() -> None:
    one, two = Registry(), Registry()
    for registry, requests, cache, age in ((one, 3, 10, 5.0), (two, 4, 7, 9.0)):
        latency = registry.histogram("req_seconds", "Latency.", ("route",), buckets=(0.1, 1.0))
        for _ in range(requests):
            latency.histogram_labels("/a/{id}").observe(0.05)
        latency.histogram_labels("/b").observe(2.0)
        registry.counter("hits_total", "Hits.", ("result",)).labels("hit").inc(requests)
        registry.gauge("entries", "Entries.").labels().set(cache)
        registry.gauge("age_seconds", "Age.", merge="max").labels().set(age)
        registry.gauge("usable", "Usable.", merge="min").labels().set(1 if age < 9 else 0)
    snapshots = [one.snapshot(pid=1), two.snapshot(pid=2)]

    text = render(snapshots).decode()
    assert _values(text, "req_seconds_count") == {(("route", "/a/{id}"),): 7, (("route", "/b"),): 2}
    assert _values(text, "req_seconds_bucket")[(("le", "0.1"), ("route", "/a/{id}"))] == 7
    assert _values(text, "req_seconds_bucket")[(("le", "+Inf"), ("route", "/b"))] == 2
    assert _values(text, "req_seconds_sum")[(("route", "/b"),)] == 4.0
    assert _values(text, "hits_total") == {(("result", "hit"),): 7}
    assert _values(text, "entries") == {(): 17}
    assert _values(text, "age_seconds") == {(): 9}
    assert _values(text, "usable") == {(): 0}

    # Process 2 died: what it counted stays counted; its gauges are gone.
    text = render(snapshots, live=lambda pid: pid == 1).decode()
    assert _values(text, "hits_total") == {(("result", "hit"),): 7}
    assert _values(text, "entries") == {(): 10}
    assert _values(text, "age_seconds") == {(): 5}


def test_label_values_are_escaped() -> None:
    registry = Registry()
    registry.counter("odd_total", "Help with \\ and\nnewline.", ("v",)).labels('a"b\\c\nd').inc()
    [family] = text_string_to_metric_families(registry.render().decode())
    assert family.documentation == "Help with \\ and\nnewline."
    assert family.samples[0].labels == {"v": 'a"b\\c\nd'}


def _scrape(url: str) -> httpx.Response:
    answer = httpx.get(url, timeout=5)
    assert answer.status_code == 200
    assert answer.headers["content-type"] == CONTENT_TYPE
    return answer


def test_a_scrape_sums_every_worker_and_stays_off_the_public_listener(serve: Serve) -> None:
    [metrics_port] = free_ports(1)
    served = serve(PROGRAM, "--workers", "2", "--metrics-port", str(metrics_port))
    metrics_url = f"http://{HOST}:{metrics_port}/metrics"
    pids: set[int] = set()
    sent = 0
    while len(pids) < 2 or sent < 40:  # new connections: granian spreads them over workers
        pids.add(httpx.get(served.url + "/whoami", timeout=5).json()["pid"])
        sent += 1
        assert sent < 2000, "one worker took every connection"
    assert len(pids) == 2
    assert pids < set(served.workers())  # the exporter is a child too
    # The public listener has no /metrics (the app's own 404).
    assert httpx.get(served.url + "/metrics", timeout=5).status_code == 404

    key = (("method", "GET"), ("route", "/whoami"), ("status", "200"))
    # GET / (the start-up probe) and GET /metrics on the public listener: one series.
    unmatched = (("method", "GET"), ("route", "unmatched"), ("status", "404"))
    deadline = time.monotonic() + 10
    while True:  # each worker writes its snapshot every second: wait for both
        counts = _values(_scrape(metrics_url).text, "http_request_duration_seconds_count")
        if (counts.get(key), counts.get(unmatched)) == (sent, 2) or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert counts[key] == sent
    assert counts[unmatched] == 2
    assert httpx.get(f"http://{HOST}:{metrics_port}/other", timeout=5).status_code == 404
    assert _listening_address(metrics_port) == HOST
    # SIGTERM stops the workers and the exporter; the exit status is 0.
    children = served.workers()
    assert served.stop() == 0
    assert wait_gone(children) == []
    with pytest.raises(httpx.TransportError):
        httpx.get(metrics_url, timeout=2)


def _listening_address(port: int) -> str:
    """The local address the socket listening on ``port`` is bound to (``/proc/net/tcp``)."""
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        local, state = line.split()[1], line.split()[3]
        address, _, hex_port = local.partition(":")
        if int(hex_port, 16) == port and state == "0A":  # LISTEN
            return ".".join(str(int(address[i : i + 2], 16)) for i in (6, 4, 2, 0))
    raise AssertionError(f"nothing listens on {port}")


def test_a_taken_metrics_port_is_a_start_up_error() -> None:
    [public, taken] = free_ports(2)
    with socket.socket() as holder:
        holder.bind((HOST, taken))
        holder.listen()
        result = subprocess.run(  # noqa: S603 - our own module, fixed arguments
            [sys.executable, "-m", PROGRAM, "--port", str(public), "--metrics-port", str(taken)],
            cwd=REPO,
            env=program_environ(),
            capture_output=True,
            timeout=30,
            check=False,
        )
    assert result.returncode == 2
    assert b"cannot listen for metrics" in result.stderr
    assert b"Traceback" not in result.stderr
