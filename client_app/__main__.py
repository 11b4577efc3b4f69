"""Run the client app: ``python -m client_app --host 127.0.0.1 --port 8000``.

The only place that reads the environment: settings are loaded once from ``os.environ``; a
configuration problem is printed as a list and exits with status 2 (no traceback); then JSON
logging is configured and uvicorn serves the app.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping, Sequence

import uvicorn

from .app import create_app
from .logging_config import configure_logging
from .settings import SettingsError, load_settings

EXIT_CONFIGURATION_ERROR = 2
MAX_PORT = 65535


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    """Parse arguments, load settings, serve; return the process exit status."""
    args = _parser().parse_args(argv)
    try:
        settings = load_settings(os.environ if environ is None else environ)
    except SettingsError as exc:
        print(f"client_app: {exc}", file=sys.stderr)  # logging is not configured yet
        return EXIT_CONFIGURATION_ERROR
    configure_logging(settings.log_level)
    uvicorn.run(
        create_app(settings),
        host=args.host,
        port=args.port,
        log_config=None,  # keep the JSON logging configured above
        log_level=settings.log_level.lower(),
        server_header=False,
    )
    return 0


def _port(value: str) -> int:
    try:
        port = int(value)
    except ValueError:
        port = -1
    if not 0 < port <= MAX_PORT:
        msg = f"must be a port number between 1 and {MAX_PORT}"
        raise argparse.ArgumentTypeError(msg)
    return port


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m client_app",
        description="Serve the Logto sample web app. Configuration comes from the environment "
        "(see docs/client-app.md); LOGTO_ENDPOINT, LOGTO_APP_ID, LOGTO_APP_SECRET and "
        "SESSION_SECRET are required.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="interface to bind (127.0.0.1)")
    parser.add_argument("--port", type=_port, default=8000, help="TCP port (8000)")
    return parser


if __name__ == "__main__":
    sys.exit(main())
