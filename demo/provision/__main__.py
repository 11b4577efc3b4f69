"""``python -m demo.provision``: provision the demo tenant in a real Logto, then print the
``.env`` lines of the two apps.

Configuration comes from the environment (read once, here): ``LOGTO_ENDPOINT`` (Logto's core
URL; ``--endpoint`` overrides it), ``LOGTO_M2M_APP_ID`` and ``LOGTO_M2M_APP_SECRET`` (a
machine-to-machine application holding the "Logto Management API access" role; never on the
command line, where ``ps`` shows it), and optionally ``CLIENT_APP_BASE_URL``,
``SHOPPING_RESOURCE``, ``STORE_RESOURCE``, ``SESSION_SECRET`` and
``PROVISION_DISABLE_PWNED_PASSWORD_CHECK``.

Progress goes to stderr, the ``.env`` lines to stdout. With ``--env-file`` the client app's
credentials and session secret are written to that file instead of being printed (compose's
hand-off). Without M2M credentials but with ``LOGTO_APP_ID`` and ``LOGTO_APP_SECRET`` (the
Console fallback of docs/docker.md), ``--env-file`` only hands those over.

Exit status: 0 done (or nothing to do), 1 Logto or the file refused (the message says why),
2 the configuration is incomplete. Never a traceback, never the M2M secret.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final, TextIO
from urllib.parse import urlsplit

import httpx

from demo.launcher import DEFAULT_SEED
from demo.seed import SeedError, api_indicators, demo_users, load_seed

from .envfile import session_secret, write_env_file
from .management import ManagementApi, ProvisionError
from .plan import plan_from_seed
from .provisioner import Credentials, Provisioner

EXIT_FAILED: Final = 1
EXIT_USAGE: Final = 2
DEFAULT_CLIENT_BASE_URL: Final = "http://localhost:8000"
DEFAULT_APP_NAME: Final = "Client app"
TIMEOUT_SECONDS: Final = 15.0
_PWNED_VARIABLE: Final = "PROVISION_DISABLE_PWNED_PASSWORD_CHECK"
VARIABLES: Final = (
    "LOGTO_ENDPOINT",
    "LOGTO_M2M_APP_ID",
    "LOGTO_M2M_APP_SECRET",
    "LOGTO_APP_ID",
    "LOGTO_APP_SECRET",
    "SESSION_SECRET",
    "CLIENT_APP_BASE_URL",
    "SHOPPING_RESOURCE",
    "STORE_RESOURCE",
    _PWNED_VARIABLE,
)
"""Every environment variable the command reads."""
HANDED_OVER: Final = ("LOGTO_APP_ID", "LOGTO_APP_SECRET", "SESSION_SECRET")
"""What ``--env-file`` writes: the client app's settings it cannot have from compose."""
_YES: Final = {"1", "true", "yes", "on"}
_NO: Final = {"", "0", "false", "no", "off"}


class UsageError(Exception):
    """The configuration is incomplete or malformed."""


@dataclass(frozen=True, slots=True)
class Config:
    """One run's settings (from the command line and the environment)."""

    endpoint: str
    m2m: tuple[str, str] | None
    manual: tuple[str, str] | None
    client_base_url: str
    indicators: dict[str, str]
    seed: Path
    app_name: str
    env_file: Path | None
    session_secret: str | None
    disable_pwned_check: bool


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    """Run once; return the exit status."""
    args = _parser().parse_args(argv)
    env = dict(os.environ if environ is None else environ)
    try:
        config = _config(args, env)
        return _run(config, sys.stdout, sys.stderr)
    except UsageError as exc:
        print(f"provision: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except SeedError as exc:
        print(f"provision: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except ProvisionError as exc:
        print(f"provision: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print("provision: interrupted; run it again to finish (it resumes)", file=sys.stderr)
        return EXIT_FAILED


def _run(config: Config, out: TextIO, err: TextIO) -> int:
    seed = load_seed(config.seed)
    if config.m2m is None:
        assert config.manual is not None  # noqa: S101 - _config guarantees one of the two
        assert config.env_file is not None  # noqa: S101
        app_id, app_secret = config.manual
        print(
            "No LOGTO_M2M_APP_ID / LOGTO_M2M_APP_SECRET: manual configuration, Logto is not "
            "called; LOGTO_APP_ID and LOGTO_APP_SECRET come from the environment.",
            file=err,
        )
        _hand_over(config, Credentials(app_id, app_secret), out, err)
        return 0
    plan = plan_from_seed(
        seed,
        indicators=config.indicators,
        client_base_url=config.client_base_url,
        app_name=config.app_name,
    )
    print(
        f"Provisioning the demo tenant ({config.seed}) in Logto at {config.endpoint} ...", file=err
    )
    with httpx.Client(timeout=TIMEOUT_SECONDS) as http:
        api = ManagementApi(config.endpoint, http)
        api.authenticate(*config.m2m)
        provisioner = Provisioner(api, plan, lambda line: print(line, file=err, flush=True))
        credentials = provisioner.run(disable_pwned_check=config.disable_pwned_check)
    if provisioner.changes:
        print(f"Done: {provisioner.changes} change(s).", file=err)
    else:
        print("Nothing to change: Logto already holds the demo tenant.", file=err)
    print("", file=err)
    print("Demo users (passwords from the seed, as ./dev demo; development only):", file=err)
    users = demo_users(seed, seed.get("users", []))
    width = max((len(f"{u.username} / {u.password}") for u in users), default=0)
    for user in users:
        for index, right in enumerate(user.rights()):
            shown = f"{user.username} / {user.password}" if index == 0 else ""
            print(f"  {shown:<{width}}   {right}", file=err)
    print("", file=err)
    _hand_over(config, credentials, out, err)
    return 0


def _hand_over(config: Config, credentials: Credentials, out: TextIO, err: TextIO) -> None:
    """The ``.env`` lines on stdout, or the hand-off file (secrets only in the file)."""
    shared = {
        "LOGTO_ENDPOINT": config.endpoint,
        "LOGTO_APP_ID": credentials.app_id,
    }
    resources = {
        "SHOPPING_RESOURCE": config.indicators["shopping"],
        "STORE_RESOURCE": config.indicators["store"],
    }
    if config.env_file is None:
        print("# .env lines of the resource API and the client app:", file=out)
        lines = {**shared, "LOGTO_APP_SECRET": credentials.app_secret, **resources}
        for key, value in lines.items():
            print(f"{key}={value}", file=out)
        return
    secret = session_secret(config.session_secret, config.env_file)
    values = (credentials.app_id, credentials.app_secret, secret)
    write_env_file(config.env_file, dict(zip(HANDED_OVER, values, strict=True)))
    print(f"Wrote {', '.join(HANDED_OVER)} to {config.env_file}.", file=err)
    for key, value in {**shared, **resources}.items():
        print(f"{key}={value}", file=out)
    print(f"# LOGTO_APP_SECRET, SESSION_SECRET: in {config.env_file}", file=out)


def _config(args: argparse.Namespace, env: Mapping[str, str]) -> Config:
    endpoint = (args.endpoint or env.get("LOGTO_ENDPOINT") or "").strip().rstrip("/")
    if not endpoint:
        msg = (
            "LOGTO_ENDPOINT (or --endpoint) is required: Logto's core URL, "
            "e.g. http://logto.localhost:3001"
        )
        raise UsageError(msg)
    parts = urlsplit(endpoint)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.query:
        msg = (
            "LOGTO_ENDPOINT must be an http(s) URL such as http://logto.localhost:3001, "
            f"not {endpoint!r}"
        )
        raise UsageError(msg)
    if parts.path.endswith("/oidc"):
        msg = (
            "LOGTO_ENDPOINT is Logto's core URL, without /oidc "
            "(the issuer is <LOGTO_ENDPOINT>/oidc)"
        )
        raise UsageError(msg)
    m2m_id, m2m_secret = env.get("LOGTO_M2M_APP_ID", ""), env.get("LOGTO_M2M_APP_SECRET", "")
    app_id, app_secret = env.get("LOGTO_APP_ID", ""), env.get("LOGTO_APP_SECRET", "")
    m2m = manual = None
    if m2m_id and m2m_secret:
        m2m = (m2m_id, m2m_secret)
    elif not m2m_id and not m2m_secret and app_id and app_secret and args.env_file:
        manual = (app_id, app_secret)
    else:
        missing = [
            n
            for n, v in (("LOGTO_M2M_APP_ID", m2m_id), ("LOGTO_M2M_APP_SECRET", m2m_secret))
            if not v
        ]
        msg = (
            f"{' and '.join(missing)} must be set: the App ID and an App secret of a "
            "machine-to-machine application holding the role 'Logto Management API access' "
            "(docs/docker.md, the one Console step)"
        )
        raise UsageError(msg)
    pwned = env.get(_PWNED_VARIABLE, "").strip().lower()
    if pwned not in _YES | _NO:
        msg = f"{_PWNED_VARIABLE} must be true or false, not {pwned!r}"
        raise UsageError(msg)
    seed = load_seed(args.seed)
    seed_indicators = api_indicators(seed)
    shopping = env.get("SHOPPING_RESOURCE") or seed_indicators.shopping
    store = env.get("STORE_RESOURCE") or seed_indicators.store
    base = (env.get("CLIENT_APP_BASE_URL") or DEFAULT_CLIENT_BASE_URL).rstrip("/")
    return Config(
        endpoint=endpoint,
        m2m=m2m,
        manual=manual,
        client_base_url=base,
        indicators={
            seed_indicators.shopping: shopping,
            seed_indicators.store: store,
            "shopping": shopping,
            "store": store,
        },
        seed=args.seed,
        app_name=args.app_name,
        env_file=args.env_file,
        session_secret=env.get("SESSION_SECRET") or None,
        disable_pwned_check=args.disable_pwned_password_check or pwned in _YES,
    )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m demo.provision",
        description="Create or update, idempotently, the demo tenant of ./dev demo (users, "
        "passwords, roles, API resources, organizations, the client app's application) in a "
        "real Logto through its Management API, and print the .env lines of the two apps. "
        "Credentials come from LOGTO_M2M_APP_ID and LOGTO_M2M_APP_SECRET (environment only).",
    )
    parser.add_argument("--endpoint", help="Logto's core URL (default: $LOGTO_ENDPOINT)")
    parser.add_argument(
        "--seed",
        type=Path,
        default=DEFAULT_SEED,
        help="the seed to provision (dev_issuer/seed.json)",
    )
    parser.add_argument(
        "--app-name",
        default=DEFAULT_APP_NAME,
        help=f"name of the client app's Traditional web application ({DEFAULT_APP_NAME!r})",
    )
    parser.add_argument(
        "--env-file",
        type=Path,
        default=None,
        help="write LOGTO_APP_ID, LOGTO_APP_SECRET and SESSION_SECRET to this file (mode 0600) "
        "instead of printing the secret (compose's hand-off to the client app)",
    )
    parser.add_argument(
        "--disable-pwned-password-check",
        action="store_true",
        help="turn off the sign-in experience's 'pwned password' check (for a Logto without "
        f"internet access); also {_PWNED_VARIABLE}=true. Never done otherwise",
    )
    return parser


if __name__ == "__main__":
    sys.exit(main())
