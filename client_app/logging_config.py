"""JSON logs, one object per line, with nothing that could hold a credential.

* a record's ``extra`` fields are kept only if their name does not look like a credential
  (``authorization``, ``token``, ``cookie``, ``secret``, ``password``, ``session``, ``code``);
* uvicorn's access lines lose their query string: the sign-in callback carries the
  authorization ``code`` and ``state`` there;
* the app itself logs event names, methods, paths and exception types, never headers, cookies,
  bodies or tokens.
"""

from __future__ import annotations

import logging
import re
import sys
from datetime import UTC, datetime
from typing import Any, Final, TextIO

import msgspec

_SENSITIVE_KEY: Final = re.compile(
    r"authorization|token|cookie|secret|password|credential|session|code", re.IGNORECASE
)
_RECORD_ATTRIBUTES: Final = frozenset(
    logging.LogRecord("", 0, "", 0, "", (), None).__dict__.keys()
    | {"message", "asctime", "color_message"}
)
_UVICORN_ACCESS_ARGS: Final = 5  # client address, method, path with query, HTTP version, status


class JsonFormatter(logging.Formatter):
    """Format a record as one JSON object: time, level, logger, message, safe extras."""

    def format(self, record: logging.LogRecord) -> str:
        """Render ``record``; an attached exception becomes its traceback text."""
        payload: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, tz=UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        payload.update(
            (key, value)
            for key, value in record.__dict__.items()
            if key not in _RECORD_ATTRIBUTES and not _SENSITIVE_KEY.search(key)
        )
        if record.exc_info:
            payload["exception"] = self.formatException(record.exc_info)
        return msgspec.json.encode(payload, enc_hook=repr).decode()


class StripQueryString(logging.Filter):
    """Drop the query string from uvicorn's access-log request path."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Rewrite the record in place; never suppress it."""
        args = record.args
        if isinstance(args, tuple) and len(args) == _UVICORN_ACCESS_ARGS:
            path = args[2]
            if isinstance(path, str) and "?" in path:
                record.args = (*args[:2], path.partition("?")[0], *args[3:])
        return True


def configure_logging(level: str = "INFO", *, stream: TextIO | None = None) -> None:
    """Send every log record to ``stream`` (stderr) as JSON lines at ``level``."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    for previous in root.handlers[:]:
        root.removeHandler(previous)
    root.addHandler(handler)
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        uvicorn_logger = logging.getLogger(name)
        uvicorn_logger.handlers.clear()
        uvicorn_logger.propagate = True
    access = logging.getLogger("uvicorn.access")
    if not any(isinstance(f, StripQueryString) for f in access.filters):
        access.addFilter(StripQueryString())
