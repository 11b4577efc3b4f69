"""``python -m resource_api``: reads the environment once, exits 2 with a clear message on bad
configuration, and otherwise hands uvicorn the app with JSON logging kept."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from litestar import Litestar

from resource_api import __main__ as entry
from service_kit import cli, server
from tests.support import ENDPOINT

REPO = Path(__file__).resolve().parents[2]


def test_a_missing_endpoint_exits_2_with_a_clear_message() -> None:
    """The real command without LOGTO_ENDPOINT prints the problem, no traceback, status 2."""
    environ = {"PATH": os.environ.get("PATH", ""), "LOGTO_LEEWAY_SECONDS": "soon"}
    result = subprocess.run(
        [sys.executable, "-m", "resource_api"],
        cwd=REPO,
        env=environ,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert result.stderr == (
        "resource_api: invalid configuration:\n"
        "  - LOGTO_ENDPOINT is required\n"
        "  - LOGTO_LEEWAY_SECONDS must be a number of seconds\n"
    )
    assert result.stdout == ""


class Recorder:
    """Stands in for server.serve and configure_logging, remembering how they were called."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = []

    def run(self, *args: Any, **kwargs: Any) -> None:
        self.calls.append(("run", args, kwargs))

    def configure_logging(self, *args: Any, **kwargs: Any) -> None:
        self.calls.append(("configure_logging", args, kwargs))


@pytest.fixture
def recorder(monkeypatch: pytest.MonkeyPatch) -> Recorder:
    """server.serve and configure_logging replaced: no socket, no change to global logging."""
    recorder = Recorder()
    monkeypatch.setattr(server, "serve", recorder.run)
    monkeypatch.setattr(cli, "configure_logging", recorder.configure_logging)
    return recorder


@pytest.mark.parametrize(
    ("argv", "host", "port"),
    [
        pytest.param([], "127.0.0.1", 8001, id="defaults"),
        pytest.param(["--host", "0.0.0.0", "--port", "9000"], "0.0.0.0", 9000, id="explicit"),  # noqa: S104
    ],
)
def test_the_app_is_served_with_json_logging(
    recorder: Recorder, tmp_path: Path, argv: list[str], host: str, port: int
) -> None:
    """Logging is configured at LOG_LEVEL first, then granian serves the app built from those
    settings on host:port, one worker, forwarded headers ignored."""
    environ = {
        "LOGTO_ENDPOINT": ENDPOINT,
        "LOG_LEVEL": "warning",
        "RESOURCE_API_DATABASE": str(tmp_path / "api.sqlite3"),
    }
    assert entry.main(argv, environ) == 0
    [(first, log_args, log_kwargs), (second, run_args, run_kwargs)] = recorder.calls
    assert (first, log_args, second) == ("configure_logging", ("WARNING",), "run")
    assert log_kwargs == {"redact_also": ()}  # the shared credential names, nothing more
    assert isinstance(run_args[0](), Litestar)
    assert run_kwargs == {
        "name": "resource_api",
        "host": host,
        "port": port,
        "workers": 1,
        "log_level": "WARNING",
        "forwarded_allow_ips": None,
        "metrics_dir": None,  # no --metrics-port: no metrics
    }


def test_configuration_errors_are_reported_before_anything_starts(
    recorder: Recorder, capsys: pytest.CaptureFixture[str]
) -> None:
    """main() with a bad mapping returns 2, prints every problem, and never starts the server."""
    status = entry.main([], {"LOGTO_ENDPOINT": "https://t.logto.app/oidc", "LOG_LEVEL": "x"})
    assert status == 2
    assert recorder.calls == []
    assert capsys.readouterr().err == (
        "resource_api: invalid configuration:\n"
        "  - LOGTO_ENDPOINT must be the tenant URL without /oidc (e.g. https://tenant.logto.app)\n"
        "  - LOG_LEVEL must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL\n"
    )


@pytest.mark.parametrize(
    "port",
    [
        pytest.param("0", id="zero"),
        pytest.param("65536", id="too-large"),
        pytest.param("http", id="not-a-number"),
    ],
)
def test_an_invalid_port_is_a_usage_error(
    recorder: Recorder, capsys: pytest.CaptureFixture[str], port: str
) -> None:
    """argparse refuses the port with status 2 before settings are even read."""
    with pytest.raises(SystemExit) as caught:
        entry.main(["--port", port], {"LOGTO_ENDPOINT": ENDPOINT})
    assert caught.value.code == 2
    assert "must be a port number between 1 and 65535" in capsys.readouterr().err
    assert recorder.calls == []
