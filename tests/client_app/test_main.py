"""``python -m client_app``: exit 2 on bad configuration, JSON logs without credentials."""

from __future__ import annotations

import io
import json
import logging
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from client_app import __main__ as entry
from service_kit import cli, server
from service_kit.access_log import AccessLogWriter
from service_kit.json_logging import JsonFormatter
from tests.client_app.conftest import SESSION_SECRET, environment
from tests.client_app.fake_logto import CLIENT_SECRET

ROOT = Path(__file__).resolve().parents[2]


def test_bad_configuration_exits_2_listing_every_problem(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Every problem is printed on stderr, no traceback, no value echoed, status 2."""
    status = entry.main([], {"SESSION_SECRET": "short-but-secret", "LOG_LEVEL": "LOUD"})

    assert status == entry.EXIT_CONFIGURATION_ERROR
    err = capsys.readouterr().err
    assert err.startswith("client_app: invalid configuration:")
    for name in ("LOGTO_ENDPOINT", "LOGTO_APP_ID", "LOGTO_APP_SECRET", "SESSION_SECRET"):
        assert name in err
    assert "short-but-secret" not in err
    assert "Traceback" not in err


def test_the_module_runs_and_exits_2(tmp_path: Path) -> None:
    """``python -m client_app`` itself, with an empty environment."""
    result = subprocess.run(
        [sys.executable, "-m", "client_app", "--host", "127.0.0.1", "--port", "8000"],
        cwd=ROOT,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == entry.EXIT_CONFIGURATION_ERROR
    assert "LOGTO_ENDPOINT is required" in result.stderr


@pytest.mark.parametrize("port", ["0", "65536", "http"], ids=["zero", "too-big", "word"])
def test_a_bad_port_is_refused(port: str) -> None:
    """argparse refuses the port before anything starts (its own status 2)."""
    with pytest.raises(SystemExit) as caught:
        entry.main(["--port", port], environment())
    assert caught.value.code == entry.EXIT_CONFIGURATION_ERROR


def test_valid_configuration_serves_with_json_logs(monkeypatch: pytest.MonkeyPatch) -> None:
    """Settings read once, JSON logging configured, the server given the app and the address."""
    served: dict[str, Any] = {}

    def run(build_app: Any, **options: object) -> None:
        served.update(options, app=build_app())

    monkeypatch.setattr(server, "serve", run)
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        status = entry.main(["--host", "127.0.0.1", "--port", "8123"], environment())
        assert isinstance(root.handlers[-1].formatter, JsonFormatter)
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
    assert status == 0
    assert served["host"] == "127.0.0.1"
    assert served["port"] == 8123
    assert served["workers"] == 1
    assert served["app"] is not None


def test_log_lines_hold_no_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    """With the logging ``python -m client_app`` configures, extras named like credentials,
    sessions or codes are dropped; others kept; one JSON object per line."""
    monkeypatch.setattr(server, "serve", lambda *_, **__: None)
    stream = io.StringIO()
    logger = logging.getLogger("tests.client_app.logging")
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        assert entry.main([], environment()) == 0
        handler = root.handlers[-1]
        assert isinstance(handler, logging.StreamHandler)
        handler.setStream(stream)
        logger.info(
            "event",
            extra={
                "event": "sign_in",
                "access_token": "eyJ.secret",
                "refresh_token": "rt",
                "session_id": "sid",
                "set_cookie": "c",
                "client_secret": CLIENT_SECRET,
                "auth_code": "code",
                "path": "/callback",
            },
        )
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
    line = json.loads(stream.getvalue())
    assert line["event"] == "sign_in"
    assert line["path"] == "/callback"
    for secret in ("eyJ.secret", "rt", "sid", CLIENT_SECRET, SESSION_SECRET, "code"):
        assert secret not in json.dumps({k: v for k, v in line.items() if k != "message"})


def test_access_line_drops_the_callback_query() -> None:
    """The access line of the sign-in callback names its path, never ``code`` or ``state``
    (also should a server put the query string in ``raw_path``)."""
    scope = {
        "type": "http",
        "client": ("127.0.0.1", 5000),
        "method": "GET",
        "path": "/callback",
        "raw_path": b"/callback",
        "query_string": b"code=SECRET&state=S",
        "http_version": "1.1",
    }
    stream = io.StringIO()
    writer = AccessLogWriter(stream)
    writer.record(scope, 303)
    writer.record({**scope, "raw_path": b"/callback?code=SECRET&state=S"}, 303)
    writer.flush()
    lines = [json.loads(line)["message"] for line in stream.getvalue().splitlines()]
    assert lines == ['127.0.0.1:5000 - "GET /callback HTTP/1.1" 303'] * 2
    assert "SECRET" not in stream.getvalue()


def test_several_workers_need_redis_sessions(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--workers 2`` without SESSION_REDIS_URL is a configuration error (session locks are
    per process); with it, two workers are served."""
    served: list[int] = []
    monkeypatch.setattr(server, "serve", lambda *_, **options: served.append(options["workers"]))
    monkeypatch.setattr(cli, "configure_logging", lambda *_, **__: None)
    assert entry.main(["--workers", "2"], environment()) == 2
    assert capsys.readouterr().err == (
        "client_app: invalid configuration:\n"
        "  - --workers above 1 needs SESSION_REDIS_URL (sessions and their locks in Redis)\n"
    )
    assert served == []
    redis = {**environment(), "SESSION_REDIS_URL": "redis://127.0.0.1:1/0"}
    assert entry.main(["--workers", "2"], redis) == 0
    assert served == [2]
