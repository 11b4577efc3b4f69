"""Run the client app: ``python -m client_app --host 127.0.0.1 --port 8000``.

The only place that reads the environment: :func:`service_kit.cli.run` (shared with the
resource API) loads settings once from ``os.environ``, prints a configuration problem as a list
and exits with status 2 (no traceback), then configures JSON logging and has granian serve the
app (``--workers`` above 1 needs ``SESSION_REDIS_URL``: the session locks must be shared).
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from typing import Final

from service_kit import cli

from .app import create_app
from .settings import Settings, load_settings

EXIT_CONFIGURATION_ERROR: Final = cli.EXIT_CONFIGURATION_ERROR
REDACTED_LOG_FIELDS: Final = ("session", "code")
"""Log extras named like these are dropped too (besides ``token``, ``cookie``, ``secret``, …):
session ids and the sign-in callback's authorization ``code`` are credentials here."""


def _workers_problem(settings: Settings, workers: int) -> str | None:
    # Sessions' locks live in the process unless they are in Redis: two workers could then
    # refresh one session at once and lose its rotated refresh token.
    if workers > 1 and settings.session_redis_url is None:
        return "--workers above 1 needs SESSION_REDIS_URL (sessions and their locks in Redis)"
    return None


PROGRAM: Final = cli.Program[Settings](
    name="client_app",
    description="Serve the Logto sample web app. Configuration comes from the environment "
    "(see docs/client-app.md); LOGTO_ENDPOINT, LOGTO_APP_ID, LOGTO_APP_SECRET and "
    "SESSION_SECRET are required.",
    default_port=8000,
    load_settings=load_settings,
    create_app=create_app,
    redact_also=REDACTED_LOG_FIELDS,
    workers_problem=_workers_problem,
)


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    """Parse arguments, load settings, serve; return the process exit status."""
    return cli.run(PROGRAM, argv, environ)


if __name__ == "__main__":
    sys.exit(main())
