"""Start the dev issuer, the resource API and the client app as subprocesses, wired together;
wait until each is healthy; stop them.

``python -m demo`` and the end-to-end tests (``tests/e2e``) share this module, so the tests run
exactly the commands and configuration the demo runs:

* the dev issuer, ``node dev_issuer/src/main.js --development``: healthy once it has printed
  its JSON ready line (issuer, web application credentials, users);
* the resource API, ``python -m resource_api``, pointed at that issuer with the seed's API
  indicators, its data in ``<data>/resource_api.sqlite3``: healthy once ``/health`` says it
  holds the issuer's signing keys;
* the client app, ``python -m client_app``, with the issuer's web application, the
  ``SESSION_SECRET`` of the environment or a generated one, its sessions in
  ``<data>/client_sessions``: healthy once ``/health`` answers.

Every program binds 127.0.0.1 and writes stdout and stderr to ``<data>/logs/<name>.log``. Each
runs in a session of its own, so a Ctrl-C in the terminal reaches the demo only, which then
stops them in order: client app, resource API, issuer.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, TypeVar

import httpx

from .seed import SeedError, api_indicators, load_seed

ROOT: Final = Path(__file__).resolve().parent.parent
HOST: Final = "127.0.0.1"
ISSUER_MAIN: Final = ROOT / "dev_issuer" / "src" / "main.js"
DEFAULT_SEED: Final = ROOT / "dev_issuer" / "seed.json"
DEFAULT_DATA_DIR: Final = ROOT / "data"
POLL_SECONDS: Final = 0.1
STOP_TIMEOUT_SECONDS: Final = 10.0
TAIL_LINES: Final = 20
ROTATE_KEYS_HEADERS: Final[Mapping[str, str]] = {"X-Dev-Issuer": "rotate"}
"""What ``POST /dev/rotate-keys`` of the dev issuer requires (without it, or with a foreign
``Origin``, it answers 403: no web page can rotate the keys)."""
T = TypeVar("T")


class LaunchError(RuntimeError):
    """A program could not be started or did not become healthy; the message says why."""


class PortInUse(LaunchError):
    """Ports of the configuration are already taken on 127.0.0.1 (``taken``: service, port)."""

    def __init__(self, taken: list[tuple[str, int]]) -> None:
        self.taken = tuple(taken)
        listed = ", ".join(f"{port} ({service})" for service, port in taken)
        super().__init__(f"already in use on {HOST}: port {listed}")


@dataclass(frozen=True, kw_only=True)
class StackConfig:
    """Ports, folders and options of one run of the three programs."""

    issuer_port: int = 3001
    """The issuer's port; 0 lets the system choose (read back from the ready line)."""
    api_port: int = 8001
    client_port: int = 8000
    data_dir: Path = DEFAULT_DATA_DIR
    """Holds the API's SQLite file, the client's sessions and ``logs/``."""
    seed: Path = DEFAULT_SEED
    access_token_ttl: int | None = None
    """Every API resource's access-token lifetime in seconds (the seed's if ``None``)."""
    client_api_url: str | None = None
    """Where the client app reaches the resource API (its own URL if ``None``; a recording
    proxy in the contract tests)."""
    api_environ: Mapping[str, str] = field(default_factory=dict)
    """Extra environment of the resource API (wins over everything else)."""
    client_environ: Mapping[str, str] = field(default_factory=dict)
    """Extra environment of the client app (wins over everything else)."""
    start_timeout: float = 30.0
    """Longest each program may take to become healthy."""
    issuer_base_url: str | None = None
    """The issuer's public base URL (``--base-url``; issuer ``<base>/oidc``) when something
    stands in front of it, such as the fault-injecting proxy of ``tests/faults``; the issuer
    itself still listens on ``issuer_port``."""
    issuer_args: tuple[str, ...] = ()
    """Extra command-line options of the dev issuer."""
    wait_for_api_keys: bool = True
    """Wait until the API's ``/health`` says it holds the issuer's keys (``False``: until it
    answers at all, for tests that start the API while the issuer is unreachable)."""


@dataclass
class Service:
    """One running program: its names, where it answers, its process and its log file."""

    key: str
    """Short name, also the log file's: ``dev_issuer``, ``resource_api``, ``client_app``."""
    label: str
    """What the user reads: ``dev issuer``, ``resource API``, ``client app``."""
    url: str
    process: subprocess.Popen[bytes]
    log_path: Path

    @classmethod
    def spawn(
        cls,
        key: str,
        label: str,
        url: str,
        args: list[str],
        *,
        env: Mapping[str, str],
        log_dir: Path,
    ) -> Service:
        """Start ``args`` in its own session, stdout and stderr to ``<log_dir>/<key>.log``."""
        log_path = log_dir / f"{key}.log"
        with log_path.open("wb") as log:  # the child keeps its own descriptor
            process = subprocess.Popen(  # noqa: S603 - our own programs, fixed arguments
                args,
                cwd=ROOT,
                env=dict(env),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return cls(key, label, url, process, log_path)

    @property
    def exit_code(self) -> int | None:
        """``None`` while the program runs."""
        return self.process.poll()

    def tail(self, lines: int = TAIL_LINES) -> list[str]:
        """The last ``lines`` lines of the log."""
        try:
            with self.log_path.open("rb") as log:
                log.seek(0, 2)
                log.seek(max(0, log.tell() - 64 * 1024))
                text = log.read().decode("utf-8", errors="replace")
        except OSError:
            return []
        return text.splitlines()[-lines:]

    def stop(self, timeout: float = STOP_TIMEOUT_SECONDS) -> None:
        """SIGTERM, then SIGKILL if it has not exited after ``timeout`` seconds."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout)


@dataclass
class Stack:
    """The three running programs and what the issuer announced."""

    issuer: Service
    api: Service
    client: Service
    ready: dict[str, Any]
    """The issuer's ready line (issuer, clients, users)."""
    config: StackConfig

    @property
    def services(self) -> tuple[Service, Service, Service]:
        """In start order."""
        return (self.issuer, self.api, self.client)

    def first_dead(self) -> Service | None:
        """A program that has exited, if any."""
        return next((s for s in self.services if s.exit_code is not None), None)

    def stop(self) -> None:
        """Stop the three, last started first."""
        for service in reversed(self.services):
            service.stop()


def port_is_free(port: int) -> bool:
    """Whether a server could listen on ``127.0.0.1:port`` now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn and node do
        try:
            sock.bind((HOST, port))
        except OSError:
            return False
    return True


def free_port() -> int:
    """A port nothing listens on right now (the tests' servers)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def start_stack(config: StackConfig, environ: Mapping[str, str]) -> Stack:
    """Start the issuer, then the resource API and the client app; return once all three are
    healthy. On any failure (or interruption) the programs already started are stopped."""
    node = _node()
    try:
        seed = load_seed(config.seed)
        indicators = api_indicators(seed)
    except SeedError as exc:
        raise LaunchError(str(exc)) from exc
    _check_ports(config)
    log_dir = config.data_dir / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    started: list[Service] = []
    deadline = time.monotonic() + config.start_timeout
    try:
        issuer = Service.spawn(
            "dev_issuer", "dev issuer", "", _issuer_args(node, config), env=environ, log_dir=log_dir
        )
        started.append(issuer)
        ready = _wait(issuer, lambda: _ready_line(issuer), deadline, "print its ready line")
        issuer.url = str(ready["endpoint"])
        api_url = f"http://{HOST}:{config.api_port}"
        shared = {
            **environ,
            "PYTHONUNBUFFERED": "1",  # log lines reach the file as they are written
            "LOGTO_ENDPOINT": issuer.url,
            "SHOPPING_RESOURCE": indicators.shopping,
            "STORE_RESOURCE": indicators.store,
        }
        # The demo's store is its SQLite file: a DATABASE_URL of the shell is not inherited
        # (both set would be refused); api_environ may still choose PostgreSQL.
        sqlite_file = {"RESOURCE_API_DATABASE": str(config.data_dir / "resource_api.sqlite3")}
        api_env = {
            **{k: v for k, v in shared.items() if k != "DATABASE_URL"},
            "RESOURCE_API_URL": api_url,
            **({} if "DATABASE_URL" in config.api_environ else sqlite_file),
            **config.api_environ,
        }
        api = _spawn_python("resource_api", "resource API", config.api_port, api_env, log_dir)
        started.append(api)
        client_env = {
            **shared,
            **_client_credentials(ready),
            "SESSION_SECRET": environ.get("SESSION_SECRET", "").strip()
            or secrets.token_urlsafe(32),
            "RESOURCE_API_URL": config.client_api_url or api_url,
            "CLIENT_APP_BASE_URL": f"http://{HOST}:{config.client_port}",
            "SESSION_DATABASE": str(config.data_dir / "client_sessions"),
            **config.client_environ,
        }
        client = _spawn_python("client_app", "client app", config.client_port, client_env, log_dir)
        started.append(client)
        with httpx.Client(timeout=2.0) as http:
            if config.wait_for_api_keys:
                probe, what = _api_healthy, "obtain the issuer's keys"
            else:
                probe, what = _healthy_any, "answer /health"
            _wait(api, lambda: probe(http, api.url), deadline, what)
            _wait(client, lambda: _healthy(http, client.url), deadline, "answer /health")
    except BaseException:
        for service in reversed(started):
            service.stop()
        raise
    return Stack(issuer, api, client, ready, config)


def _node() -> str:
    node = shutil.which("node")
    if node is None:
        raise LaunchError("Node.js is not on PATH: the dev issuer needs Node 20 or newer")
    if not (ROOT / "dev_issuer" / "node_modules" / "oidc-provider").is_dir():
        raise LaunchError(
            "the dev issuer's npm packages are missing: run ./dev setup "
            "(or: cd dev_issuer && npm ci)"
        )
    return node


def _check_ports(config: StackConfig) -> None:
    named = [
        ("dev issuer", config.issuer_port),
        ("resource API", config.api_port),
        ("client app", config.client_port),
    ]
    ports = [port for _, port in named if port]
    if len(set(ports)) != len(ports):
        raise LaunchError("the dev issuer, the resource API and the client app need three ports")
    taken = [(name, port) for name, port in named if port and not port_is_free(port)]
    if taken:
        raise PortInUse(taken)


def _issuer_args(node: str, config: StackConfig) -> list[str]:
    args = [node, str(ISSUER_MAIN), "--port", str(config.issuer_port), "--seed", str(config.seed)]
    args += ["--client-port", str(config.client_port), "--development"]
    if config.access_token_ttl is not None:
        args += ["--access-token-ttl", str(config.access_token_ttl)]
    if config.issuer_base_url is not None:
        args += ["--base-url", config.issuer_base_url]
    return [*args, *config.issuer_args]


def _spawn_python(
    key: str, label: str, port: int, env: Mapping[str, str], log_dir: Path
) -> Service:
    args = [sys.executable, "-m", key, "--host", HOST, "--port", str(port)]
    return Service.spawn(key, label, f"http://{HOST}:{port}", args, env=env, log_dir=log_dir)


def _client_credentials(ready: Mapping[str, Any]) -> dict[str, str]:
    """The issuer's traditional web application (the ready line lists its clients)."""
    for client in ready.get("clients", []):
        if client.get("type") == "Traditional":
            return {"LOGTO_APP_ID": str(client["id"]), "LOGTO_APP_SECRET": str(client["secret"])}
    raise LaunchError("the issuer's seed has no traditional web application")


def _wait(service: Service, probe: Callable[[], T | None], deadline: float, what: str) -> T:
    """Poll ``probe`` until it gives a value; fail if the program exits or time runs out."""
    while True:
        code = service.exit_code
        if code is not None:
            raise LaunchError(_died(service, code))
        result = probe()
        if result is not None:
            return result
        if time.monotonic() > deadline:
            raise LaunchError(
                f"the {service.label} did not {what} in time; last lines of "
                f"{service.log_path}:\n" + _indent(service.tail())
            )
        time.sleep(POLL_SECONDS)


def _died(service: Service, code: int) -> str:
    how = f"exited with status {code}"
    if code < 0:
        with contextlib.suppress(ValueError):
            how = f"was killed by {signal.Signals(-code).name}"
    return f"the {service.label} {how}; last lines of {service.log_path}:\n" + _indent(
        service.tail()
    )


def describe_exit(service: Service) -> str:
    """Which program died, with what status, and its last log lines."""
    return _died(service, service.exit_code if service.exit_code is not None else -1)


def _indent(lines: list[str]) -> str:
    return "\n".join(f"    {line}" for line in lines) or "    (the log is empty)"


def _ready_line(service: Service) -> dict[str, Any] | None:
    try:
        text = service.log_path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith('{"event":"ready"'):
            with contextlib.suppress(ValueError):
                ready: dict[str, Any] = json.loads(line)
                return ready
    return None


def _healthy(http: httpx.Client, url: str) -> bool | None:
    try:
        return True if http.get(f"{url}/health").status_code == httpx.codes.OK else None
    except httpx.HTTPError:
        return None


def _healthy_any(http: httpx.Client, url: str) -> bool | None:
    """Answers ``/health`` at all (200, or 503 while it has no keys)."""
    try:
        http.get(f"{url}/health")
    except httpx.HTTPError:
        return None
    return True


def _api_healthy(http: httpx.Client, url: str) -> bool | None:
    try:
        response = http.get(f"{url}/health")
        body = response.json() if response.status_code == httpx.codes.OK else {}
    except (httpx.HTTPError, ValueError):
        return None
    return True if isinstance(body, dict) and body.get("keys_loaded") is True else None
