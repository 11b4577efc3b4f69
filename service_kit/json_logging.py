"""Structured JSON logs, one object per line, with nothing that could hold a credential.

Both programs use it: :func:`service_kit.cli.run` calls :func:`configure_logging`, which installs
one handler on the root logger; granian's loggers propagate to it (:mod:`service_kit.server`), and
the access lines of :mod:`service_kit.access_log` have the same shape. What keeps secrets out:

* a record's ``extra`` fields are copied only if their name does not look like a credential:
  :data:`CREDENTIAL_NAMES` (``authorization``, ``token``, ``cookie``, ``secret``, ``password``,
  ``credential``) plus the names a program adds (the client app adds ``session`` and ``code``);
* access lines carry the path without its query string, where a misbehaving client may have put
  an ``access_token`` and where the sign-in callback carries the authorization ``code``;
* the programs themselves never log headers, cookies, bodies or tokens.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any, Final, TextIO

import msgspec

CREDENTIAL_NAMES: Final = ("authorization", "token", "cookie", "secret", "password", "credential")
"""Parts of an ``extra`` field's name (any case) that keep the field out of every log line."""
# Attributes every LogRecord has (anything else came from ``extra=``), and the ANSI-coloured
# duplicate of its message some libraries add.
_RECORD_ATTRIBUTES: Final = frozenset(
    logging.LogRecord("", 0, "", 0, "", (), None).__dict__.keys()
    | {"message", "asctime", "color_message"}
)


def credential_pattern(redact_also: Iterable[str] = ()) -> re.Pattern[str]:
    """A case-insensitive pattern matching a field name that contains one of
    :data:`CREDENTIAL_NAMES` or of ``redact_also``."""
    names = (*CREDENTIAL_NAMES, *redact_also)
    return re.compile("|".join(re.escape(name) for name in names), re.IGNORECASE)


class JsonFormatter(logging.Formatter):
    """Format a record as one JSON object: time, level, logger, message, safe extras."""

    def __init__(self, *, redact_also: Iterable[str] = ()) -> None:
        """Drop extras named like :data:`CREDENTIAL_NAMES` and like ``redact_also``."""
        super().__init__()
        self._credential = credential_pattern(redact_also)

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
            if key not in _RECORD_ATTRIBUTES and not self._credential.search(key)
        )
        if record.exc_info:
            payload["exception"] = self.formatException(record.exc_info)
        return msgspec.json.encode(payload, enc_hook=repr).decode()


def configure_logging(
    level: str = "INFO", *, stream: TextIO | None = None, redact_also: Iterable[str] = ()
) -> None:
    """Send every log record to ``stream`` (stderr) as JSON lines at ``level``; extras named
    like a credential (or like one of ``redact_also``) are dropped."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter(redact_also=redact_also))
    root = logging.getLogger()
    for previous in root.handlers[:]:
        root.removeHandler(previous)
    root.addHandler(handler)
    root.setLevel(level)
