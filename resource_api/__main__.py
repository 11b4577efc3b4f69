"""Run the resource API: ``python -m resource_api --host 127.0.0.1 --port 8001``.

The only place that reads the environment: :func:`service_kit.cli.run` (shared with the client
app) loads settings once from ``os.environ``, prints a configuration problem as a list and
exits with status 2 (no traceback), then configures structured logging and has granian serve
the app with ``--workers`` processes, each with its own key set and verified-token cache.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from typing import Final

from service_kit import cli

from .app import create_app
from .settings import Settings, load_settings

EXIT_CONFIGURATION_ERROR: Final = cli.EXIT_CONFIGURATION_ERROR
PROGRAM: Final = cli.Program[Settings](
    name="resource_api",
    description="Serve the Logto-protected resource API. Configuration comes from the "
    "environment (see .env.example); LOGTO_ENDPOINT is required.",
    default_port=8001,
    load_settings=load_settings,
    create_app=create_app,
)


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    """Parse arguments, load settings, serve; return the process exit status."""
    return cli.run(PROGRAM, argv, environ)


if __name__ == "__main__":
    sys.exit(main())
