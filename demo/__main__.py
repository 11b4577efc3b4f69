"""``python -m demo``: the dev issuer, the resource API and the client app, on one machine.

Starts the three (see :mod:`demo.launcher`), prints where to go and who may sign in, then
watches them: Ctrl-C or SIGTERM stops all three (exit 0); if one of them exits, the others are
stopped and the demo says which one died, with its last log lines (exit 1). A port already in
use, or a program that does not become healthy, ends the demo before it prints anything else
(exit 2 and 1).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import FrameType
from typing import Final, TypeAlias

from litestar_logto import KeySetPolicy

from service_kit.cli import port

from .launcher import (
    DEFAULT_DATA_DIR,
    DEFAULT_SEED,
    ROTATE_KEYS_HEADERS,
    LaunchError,
    PortInUse,
    Service,
    Stack,
    StackConfig,
    describe_exit,
    start_stack,
)
from .seed import demo_users, load_seed

EXIT_FAILED: Final = 1
EXIT_USAGE: Final = 2
WATCH_SECONDS: Final = 0.5
_Handler: TypeAlias = Callable[[int, FrameType | None], None] | signal.Handlers
_FLAGS: Final = {"dev issuer": "--issuer-port", "resource API": "--api-port"}


class Interrupted(Exception):
    """SIGINT or SIGTERM arrived."""

    def __init__(self, signum: int) -> None:
        self.signal_name = signal.Signals(signum).name
        super().__init__(self.signal_name)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the demo until interrupted; return the exit status."""
    args = _parser().parse_args(argv)
    config = StackConfig(
        issuer_port=args.issuer_port,
        api_port=args.api_port,
        client_port=args.client_port,
        data_dir=args.data_dir.resolve(),  # the programs run in the repository root
        seed=args.seed,
        access_token_ttl=args.access_token_ttl,
    )
    _on_signals(_interrupt)
    try:
        return _run(config)
    except Interrupted as exc:
        print(f"\ndemo: {exc.signal_name} before everything was up; stopped.", file=sys.stderr)
        return 0


def _run(config: StackConfig) -> int:
    print("Starting the dev issuer, the resource API and the client app ...", flush=True)
    try:
        stack = start_stack(config, os.environ)
    except PortInUse as exc:
        for service, port in exc.taken:
            flag = _FLAGS.get(service, "--client-port")
            print(
                f"demo: port {port} ({service}) is already in use on 127.0.0.1: stop what "
                f"listens there or choose another port with {flag} N",
                file=sys.stderr,
            )
        return EXIT_USAGE
    except LaunchError as exc:
        print(f"demo: {exc}", file=sys.stderr)
        return EXIT_FAILED
    try:
        print(welcome(stack), flush=True)
        dead = _watch(stack)
    except Interrupted as exc:
        print(f"\n{exc.signal_name}: stopping the client app, the resource API and the issuer.")
        return 0
    else:
        print(f"\ndemo: {describe_exit(dead)}\nStopping the others.", file=sys.stderr)
        return EXIT_FAILED
    finally:
        _on_signals(signal.SIG_IGN)  # stopping is bounded (SIGKILL after 10 s each)
        stack.stop()
        print("Stopped.", flush=True)


def _watch(stack: Stack) -> Service:
    while (dead := stack.first_dead()) is None:
        time.sleep(WATCH_SECONDS)
    return dead


def welcome(stack: Stack) -> str:
    """Where to go, what runs where (with its log), and the demo users."""
    config = stack.config
    issuer = stack.ready["issuer"]
    lines = [
        "",
        f"The demo is up. Open {stack.client.url} in your browser.",
        "",
        _service_line(stack.client, stack.client.url),
        _service_line(
            stack.api, f"{stack.api.url}  (OpenAPI: {stack.api.url}/schema/openapi.json)"
        ),
        _service_line(stack.issuer, issuer),
        "",
        f"Data (orders, sessions) is kept in {_shown(config.data_dir)}.",
        "",
        f"Demo users (from {_shown(config.seed)}; development passwords, public):",
    ]
    users = demo_users(load_seed(config.seed), stack.ready.get("users", []))
    width = max((len(f"{u.username} / {u.password}") for u in users), default=0)
    for user in users:
        credentials = f"{user.username} / {user.password}"
        for index, right in enumerate(user.rights()):
            lines.append(f"  {credentials if index == 0 else '':<{width}}   {right}")
    cooldown = os.environ.get("LOGTO_JWKS_COOLDOWN_SECONDS") or f"{KeySetPolicy().cooldown:g}"
    ((name, value),) = ROTATE_KEYS_HEADERS.items()
    rotate_header, rotate_url = f"{name}: {value}", f"{stack.issuer.url}/dev/rotate-keys"
    grant = json.dumps({"add": ["shopping-writer"]})
    lines += [
        "",
        f"Rotate the issuer's signing keys: curl -X POST -H '{rotate_header}' {rotate_url}",
        "  (the resource API fetches the new key on its first token; a second rotation within",
        f"  {cooldown} s waits out its JWKS cooldown, and the pages say so)",
        'Give alice shopping:write, then press "Check my permissions again":',
        f"  curl -X POST -H '{rotate_header}' -H 'Content-Type: application/json' -d '{grant}' \\",
        f"    {stack.issuer.url}/dev/users/alice/roles",
        "Press Ctrl-C to stop all three.",
    ]
    return "\n".join(lines)


def _service_line(service: Service, where: str) -> str:
    log = _shown(service.log_path)
    return f"  {service.label:<13} {where}\n  {'':<13} pid {service.process.pid}, log {log}"


def _shown(path: Path) -> str:
    """``path`` relative to the working directory when it is inside it."""
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _interrupt(signum: int, _frame: FrameType | None) -> None:
    raise Interrupted(signum)


def _on_signals(handler: _Handler) -> None:
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, handler)


def _seconds(value: str) -> int:
    try:
        seconds = int(value)
    except ValueError:
        seconds = 0
    if seconds < 1:
        msg = "must be a whole number of seconds, at least 1"
        raise argparse.ArgumentTypeError(msg)
    return seconds


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m demo",
        description="Start the dev issuer, the resource API and the client app on 127.0.0.1, "
        "print where to go and the demo users, and stop all three on Ctrl-C.",
    )
    parser.add_argument("--client-port", type=port, default=8000, help="client app (8000)")
    parser.add_argument("--api-port", type=port, default=8001, help="resource API (8001)")
    parser.add_argument("--issuer-port", type=port, default=3001, help="dev issuer (3001)")
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=DEFAULT_DATA_DIR,
        help="orders, sessions and logs (data/ at the repository root)",
    )
    parser.add_argument(
        "--seed", type=Path, default=DEFAULT_SEED, help="the issuer's seed (dev_issuer/seed.json)"
    )
    parser.add_argument(
        "--access-token-ttl",
        type=_seconds,
        default=None,
        metavar="SECONDS",
        help="shorten every API access token's lifetime (to watch refreshes)",
    )
    return parser


if __name__ == "__main__":
    sys.exit(main())
