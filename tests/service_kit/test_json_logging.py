"""service_kit.json_logging, the logging of both programs: one JSON object per record, extras
kept unless they look like credentials (plus the names a program adds), uvicorn access lines
without query strings."""

from __future__ import annotations

import io
import json
import logging
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from service_kit.json_logging import (
    CREDENTIAL_NAMES,
    JsonFormatter,
    configure_logging,
    credential_pattern,
)


def _record(msg: str = "request refused", args: Any = (), **extra: Any) -> logging.LogRecord:
    record = logging.LogRecord("litestar_logto", logging.INFO, __file__, 1, msg, args, None)
    record.__dict__.update(extra)
    return record


def test_a_record_becomes_one_json_object() -> None:
    """Time, level, logger, message and extras are fields of one JSON line."""
    line = JsonFormatter().format(_record(event="auth_refused", status=401, path="/orders"))
    fields = json.loads(line)
    assert "\n" not in line
    assert {key: fields[key] for key in ("level", "logger", "message", "event", "status")} == {
        "level": "INFO",
        "logger": "litestar_logto",
        "message": "request refused",
        "event": "auth_refused",
        "status": 401,
    }
    assert fields["time"].endswith("+00:00")


@pytest.mark.parametrize(
    "key",
    [
        pytest.param("authorization", id="authorization"),
        pytest.param("Authorization", id="authorization-capitalised"),
        pytest.param("access_token", id="access-token"),
        pytest.param("refresh_token", id="refresh-token"),
        pytest.param("cookie", id="cookie"),
        pytest.param("client_secret", id="secret"),
        pytest.param("password", id="password"),
        pytest.param("credentials", id="credentials"),
    ],
)
def test_extras_that_look_like_credentials_are_dropped(key: str) -> None:
    """An extra field named like a credential never reaches the output."""
    line = JsonFormatter().format(_record(**{key: "Bearer eyJ-sensitive", "event": "x"}))
    assert "eyJ-sensitive" not in line
    assert json.loads(line)["event"] == "x"


@pytest.mark.parametrize(
    "key",
    [
        pytest.param("session_id", id="session"),
        pytest.param("Session", id="session-capitalised"),
        pytest.param("auth_code", id="code"),
        pytest.param("access_token", id="base-names-still-apply"),
    ],
)
def test_a_program_may_redact_more_names(key: str) -> None:
    """``redact_also`` adds names to the credential names; it never removes any."""
    line = JsonFormatter(redact_also=("session", "code")).format(
        _record(**{key: "sid-sensitive", "event": "x"})
    )
    assert "sid-sensitive" not in line
    assert json.loads(line)["event"] == "x"


def test_without_extra_names_only_the_credential_names_are_dropped() -> None:
    """A field named ``session_id`` is kept when the program does not redact sessions."""
    fields = json.loads(JsonFormatter().format(_record(session_id="s1", auth_code="c1")))
    assert (fields["session_id"], fields["auth_code"]) == ("s1", "c1")


def test_the_credential_pattern_is_the_alternation_of_the_names() -> None:
    """The names are matched as plain substrings, in any case."""
    assert CREDENTIAL_NAMES == (
        "authorization",
        "token",
        "cookie",
        "secret",
        "password",
        "credential",
    )
    pattern = credential_pattern(("session", "code"))
    assert pattern.pattern == "authorization|token|cookie|secret|password|credential|session|code"
    assert credential_pattern(("a.b",)).search("axb") is None


def test_an_exception_is_rendered_as_its_traceback() -> None:
    """exc_info becomes an 'exception' field holding the traceback text."""
    try:
        raise ValueError("boom")  # noqa: TRY301 - a real traceback to render
    except ValueError:
        record = logging.LogRecord(
            "resource_api.errors", logging.ERROR, __file__, 1, "unexpected", (), sys.exc_info()
        )
    fields = json.loads(JsonFormatter().format(record))
    assert fields["exception"].startswith("Traceback (most recent call last):")
    assert fields["exception"].endswith("ValueError: boom")


def test_a_value_json_cannot_encode_is_rendered_with_repr() -> None:
    """An extra of an arbitrary type does not break logging."""
    fields = json.loads(JsonFormatter().format(_record(kids={"k1"}, where=object)))
    assert (fields["kids"], fields["where"]) == (["k1"], "<class 'object'>")


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """Put the root logger back as it was after configure_logging ran."""
    names = ("",)
    saved = {
        name: (
            logger.handlers[:],
            logger.filters[:],
            logger.level,
            logger.propagate,
        )
        for name in names
        for logger in [logging.getLogger(name)]
    }
    yield
    for name, (handlers, filters, level, propagate) in saved.items():
        logger = logging.getLogger(name)
        logger.handlers[:] = handlers
        logger.filters[:] = filters
        logger.setLevel(level)
        logger.propagate = propagate


def test_configure_logging_sends_json_lines_to_the_stream(restore_logging: None) -> None:
    """After configure_logging, application and server (granian) records come out as JSON
    lines."""
    stream = io.StringIO()
    configure_logging("INFO", stream=stream)
    logging.getLogger("resource_api.test").info("hello", extra={"event": "greeting"})
    logging.getLogger("_granian").info("Listening at: http://127.0.0.1:1")
    logging.getLogger("resource_api.test").debug("below the level")
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [(line["logger"], line["message"]) for line in lines] == [
        ("resource_api.test", "hello"),
        ("_granian", "Listening at: http://127.0.0.1:1"),
    ]


def test_configure_logging_drops_the_extra_names(restore_logging: None) -> None:
    """The names given to configure_logging reach the formatter it installs."""
    stream = io.StringIO()
    configure_logging("INFO", stream=stream, redact_also=("session",))
    logging.getLogger("client_app.test").info("hi", extra={"session_id": "sid", "event": "e"})
    fields = json.loads(stream.getvalue())
    assert "session_id" not in fields
    assert fields["event"] == "e"
