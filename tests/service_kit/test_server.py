"""The HTTP server both programs run (``service_kit.server``: granian), as real processes on
127.0.0.1: graceful shutdown, worker processes, orphans, the Server header, forwarded headers,
access lines.

Most tests run ``tests/service_kit/served_program.py`` (a small program served through the same
``service_kit.cli.run``); the workers test runs ``python -m resource_api --workers 2`` against a
loopback issuer with real ES384 tokens.
"""

from __future__ import annotations

import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from bench.common import loopback_issuer
from tests.served_programs import (
    HOST,
    Serve,
    program_environ,
    wait_gone,
)


def _cpu_ticks(pid: int) -> int:
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return int(fields[11]) + int(fields[12])  # utime + stime


PROGRAM = "tests.service_kit.served_program"


def test_sigterm_finishes_in_flight_requests_and_runs_the_lifespan_shutdown(serve: Serve) -> None:
    """A request in flight when SIGTERM arrives is answered in full; new connections are then
    refused; the lifespan's shutdown runs; the process exits 0."""
    served = serve(PROGRAM)
    answers: list[httpx.Response] = []
    request = threading.Thread(
        target=lambda: answers.append(httpx.get(served.url + "/slow?seconds=1.5", timeout=10))
    )
    request.start()
    time.sleep(0.5)  # the request is in the handler's sleep
    workers = served.workers()
    served.process.send_signal(signal.SIGTERM)
    time.sleep(0.3)
    with pytest.raises(httpx.TransportError):
        httpx.get(served.url + "/whoami", timeout=2)
    request.join(timeout=10)
    assert [(a.status_code, a.json()) for a in answers] == [(200, {"slept": 1.5})]
    assert served.process.wait(timeout=15) == 0
    assert wait_gone(workers) == []
    out = served.stdout.read_text().split("\n")
    [worker] = workers
    assert f"lifespan started {worker}" in out
    assert f"lifespan stopped {worker}" in out
    assert out.index(f"lifespan stopped {worker}") > out.index(f"lifespan started {worker}")


def test_workers_stop_when_the_main_process_is_killed(serve: Serve) -> None:
    """SIGKILL to the main process leaves no worker holding the port."""
    served = serve(PROGRAM, "--workers", "2")
    workers = served.workers()
    assert len(workers) == 2
    served.process.kill()
    served.process.wait(timeout=5)
    assert wait_gone(workers) == []
    with pytest.raises(httpx.TransportError):
        httpx.get(served.url + "/whoami", timeout=2)


def test_no_server_software_is_named(serve: Serve) -> None:
    """granian always sends a Server header; ours carries no product name, on success, on a
    404 and on an app error."""
    served = serve(PROGRAM)
    for path, status in (("/whoami", 200), ("/nowhere", 404), ("/boom", 500)):
        response = httpx.get(served.url + path, timeout=5)
        assert response.status_code == status
        assert response.headers.get_list("server") == [""], path


@pytest.mark.parametrize(
    ("args", "client", "scheme"),
    [
        pytest.param((), HOST, "http", id="ignored-by-default"),
        pytest.param(("--forwarded-allow-ips", "10.9.9.9"), HOST, "http", id="untrusted-peer"),
        pytest.param(("--forwarded-allow-ips", HOST), "203.0.113.7", "https", id="trusted"),
    ],
)
def test_forwarded_headers_count_only_from_configured_proxies(
    serve: Serve,
    args: tuple[str, ...],
    client: str,
    scheme: str,
) -> None:
    """X-Forwarded-For/-Proto change the client the app sees only when the peer is listed in
    --forwarded-allow-ips."""
    served = serve(PROGRAM, *args)
    response = httpx.get(
        served.url + "/whoami",
        headers={"X-Forwarded-For": "203.0.113.7", "X-Forwarded-Proto": "https"},
        timeout=5,
    )
    assert (response.json()["client"], response.json()["scheme"]) == (client, scheme)


def test_access_lines_are_json_without_the_query_string(serve: Serve) -> None:
    """One JSON access line per request, in the shape of every other line, with the path and
    status but never the query string; they reach the stream by shutdown at the latest."""
    served = serve(PROGRAM)
    for index in range(3):
        httpx.get(served.url + f"/whoami?access_token=SECRET{index}&code=C", timeout=5)
    httpx.get(served.url + "/nowhere", timeout=5)
    assert served.stop() == 0
    lines = served.log_lines()
    access = [line for line in lines if line["logger"] == "access"]
    assert [str(line["message"]).split(" - ", 1)[1] for line in access[-4:]] == [
        '"GET /whoami HTTP/1.1" 200',
        '"GET /whoami HTTP/1.1" 200',
        '"GET /whoami HTTP/1.1" 200',
        '"GET /nowhere HTTP/1.1" 404',
    ]
    assert all(set(line) == {"time", "level", "logger", "message"} for line in access)
    assert "SECRET" not in served.stderr.read_text()


def test_access_lines_follow_the_log_level(serve: Serve) -> None:
    """LOG_LEVEL=WARNING silences access lines (INFO)."""
    served = serve(PROGRAM, environ=program_environ(LOG_LEVEL="WARNING"))
    httpx.get(served.url + "/whoami", timeout=5)
    assert served.stop() == 0
    assert [line for line in served.log_lines() if line["logger"] == "access"] == []


def test_two_resource_api_workers_each_verify_tokens_and_all_stop_on_sigterm(
    serve: Serve,
    tmp_path: Path,
) -> None:
    """``python -m resource_api --workers 2``: two worker processes, each with its own key set
    (each fetches the issuer's JWKS), both serving verified requests; SIGTERM stops them all."""
    with loopback_issuer() as issuer:
        environ = program_environ(
            LOGTO_ENDPOINT=issuer.endpoint,
            RESOURCE_API_DATABASE=str(tmp_path / "api.sqlite3"),
            LOG_LEVEL="WARNING",
        )
        served = serve("resource_api", "--workers", "2", environ=environ)
        workers = served.workers()
        assert len(workers) == 2
        before = {pid: _cpu_ticks(pid) for pid in workers}
        tokens = [issuer.token(subject=f"user-{n}") for n in range(40)]

        def client_session(token: str) -> list[int]:
            # A new connection per session: the kernel hands connections to either worker.
            with httpx.Client(base_url=served.url, timeout=10) as client:
                headers = {"Authorization": f"Bearer {token}"}
                return [
                    client.get("/shopping/orders", headers=headers).status_code for _ in range(30)
                ]

        with ThreadPoolExecutor(max_workers=8) as pool:
            statuses = [s for session in pool.map(client_session, tokens) for s in session]
        used = {pid: _cpu_ticks(pid) - before[pid] for pid in workers}
        jwks_fetches = issuer.hits.get("/oidc/jwks", 0)
        assert statuses == [200] * len(statuses)
        assert len(statuses) == 1200
        # Both workers did a share of the work (CPU time: a worker that served nothing uses
        # next to none), and each fetched its own key set.
        assert min(used.values()) >= 0.1 * sum(used.values()), used
        assert jwks_fetches >= 2
        assert served.stop() == 0
        assert wait_gone(workers) == []
