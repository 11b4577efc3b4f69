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
import uvicorn

from client_app import __main__ as entry
from service_kit.json_logging import JsonFormatter, StripQueryString
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
    """Settings read once, JSON logging configured, uvicorn given the app and the address."""
    served: dict[str, Any] = {}

    def run(app: object, **options: object) -> None:
        served.update(options, app=app)

    monkeypatch.setattr(uvicorn, "run", run)
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
    assert served["log_config"] is None
    assert served["app"] is not None


def test_log_lines_hold_no_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    """With the logging ``python -m client_app`` configures, extras named like credentials,
    sessions or codes are dropped; others kept; one JSON object per line."""
    monkeypatch.setattr(uvicorn, "run", lambda *_, **__: None)
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


def test_access_log_drops_the_callback_query() -> None:
    """uvicorn's access line for the callback loses ``code`` and ``state``."""
    record = logging.LogRecord(
        "uvicorn.access",
        logging.INFO,
        __file__,
        1,
        '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:5000", "GET", "/callback?code=SECRET&state=S", "1.1", 303),
        None,
    )
    StripQueryString().filter(record)
    assert "SECRET" not in record.getMessage()
    assert "/callback" in record.getMessage()
