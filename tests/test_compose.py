"""docker-compose.yml and the Dockerfile agree with what the apps read, serve and import.

Docker does not run here, so every check is static: the compose file is parsed (PyYAML through
``msgspec.yaml``), its ``${VAR}`` references are interpolated the way Compose does it, and the
result is handed to the apps' own settings loaders and factories.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import os
import re
import subprocess
import sys
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from types import ModuleType
from typing import Any, Final
from urllib.parse import urlsplit

import httpx
import msgspec
import pytest
from litestar import Litestar
from litestar.stores.memory import MemoryStore
from litestar.testing import AsyncTestClient

import client_app.app
import client_app.settings
import demo.provision.__main__
import resource_api.app
import resource_api.settings
from demo.launcher import DEFAULT_SEED
from demo.provision.envfile import write_env_file

REPO: Final = Path(__file__).resolve().parents[1]
COMPOSE_FILE: Final = REPO / "docker-compose.yml"
DOCKERFILE: Final = REPO / "Dockerfile"
DOCKERIGNORE: Final = REPO / ".dockerignore"

USER_SUPPLIED: Final = {
    # What docs/docker.md has the user put in .env: the M2M application of the one Console step.
    "LOGTO_M2M_APP_ID": "m2m-app-id-from-the-console",
    "LOGTO_M2M_APP_SECRET": "m2m-app-secret-from-the-console",
}
HANDED_OVER: Final = {
    # What the provision service writes for the client app (its entrypoint sources the file).
    "LOGTO_APP_ID": "app-id-from-provision",
    "LOGTO_APP_SECRET": "app-secret-from-provision",
    "SESSION_SECRET": "a-session-secret-of-at-least-32-characters",
}

# -- Compose interpolation (https://docs.docker.com/reference/compose-file/interpolation/) --------

_REFERENCE: Final = re.compile(
    r"\$(?:(?P<escaped>\$)|\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\})"
)


class MissingVariableError(LookupError):
    """A ``${NAME:?message}`` reference whose variable is unset or empty."""

    def __init__(self, name: str, message: str) -> None:
        self.name = name
        super().__init__(f"required variable {name} is missing a value: {message}")


def interpolate(node: Any, env: Mapping[str, str]) -> Any:
    """``node`` with every ``${NAME}``, ``${NAME:-default}``, ``${NAME-default}``,
    ``${NAME:?err}``, ``${NAME?err}`` and ``$$`` resolved against ``env``, as Compose does."""
    if isinstance(node, dict):
        return {key: interpolate(value, env) for key, value in node.items()}
    if isinstance(node, list):
        return [interpolate(value, env) for value in node]
    if not isinstance(node, str):
        return node

    def resolve(match: re.Match[str]) -> str:
        if match["escaped"]:
            return "$"
        name, op, arg = match["name"], match["op"], match["arg"]
        value = env.get(name)
        unset = value is None or (op is not None and op.startswith(":") and value == "")
        if op in (":?", "?") and unset:
            raise MissingVariableError(name, arg)
        if op in (":-", "-") and unset:
            return str(arg)
        return value or ""

    resolved = _REFERENCE.sub(resolve, node)
    assert "$" not in _REFERENCE.sub("", node), f"unsupported interpolation in {node!r}"
    return resolved


def raw_compose() -> dict[str, Any]:
    """docker-compose.yml as written (anchors resolved, nothing interpolated)."""
    document: dict[str, Any] = msgspec.yaml.decode(COMPOSE_FILE.read_bytes())
    return document


def services(env: Mapping[str, str] = USER_SUPPLIED) -> dict[str, Any]:
    """The compose services after interpolation against ``env``."""
    resolved: dict[str, Any] = interpolate(raw_compose(), env)["services"]
    return resolved


def environment(service: str) -> dict[str, str]:
    """One service's container environment (always written as a mapping here)."""
    env = services()[service]["environment"]
    assert isinstance(env, dict), f"{service}: write environment as a mapping"
    return {name: str(value) for name, value in env.items()}


def app_environment(service: str) -> dict[str, str]:
    """What the program in ``service`` sees: its compose environment, plus, for the client
    app, the values its entrypoint sources from the provision service's file."""
    handed = HANDED_OVER if service == "client-app" else {}
    return {**environment(service), **handed}


def listen_port(service: str) -> int:
    """The container port a Python service binds: its command's ``--port``."""
    command: list[str] = services()[service]["command"]
    return int(command[command.index("--port") + 1])


def published(service: str) -> dict[int, tuple[str, int]]:
    """``container port -> (host ip, host port)`` of the service's ``ports`` (of a host port
    range, its first port: the one the first replica gets)."""
    result: dict[int, tuple[str, int]] = {}
    for entry in services()[service].get("ports", []):
        host_ip, host_ports, container_port = str(entry).rsplit(":", 2)
        result[int(container_port)] = (host_ip, int(host_ports.split("-")[0]))
    return result


def aliases(service: str) -> set[str]:
    """The service's network aliases on the default network."""
    networks = services()[service].get("networks", {})
    return set((networks.get("default") or {}).get("aliases", []))


# -- the apps, as their settings loaders see them ---------------------------------------------


@dataclass(frozen=True)
class App:
    """A Python program of this repository and its compose service."""

    service: str
    module: str
    settings: ModuleType

    def known_variables(self) -> set[str]:
        # The settings modules keep their variable table private (`_VARIABLES`) and export no
        # list of names; this is the only place that reads it.
        return {variable.name for variable in self.settings._VARIABLES}

    def required_variables(self) -> set[str]:
        """Derived from the loader itself: what it reports missing from an empty mapping."""
        with pytest.raises(self.settings.SettingsError) as caught:
            self.settings.load_settings({})
        problems: tuple[str, ...] = caught.value.problems
        return {m[1] for p in problems if (m := re.fullmatch(r"(\w+) is required", p))}


RESOURCE_API: Final = App("resource-api", "resource_api", resource_api.settings)
CLIENT_APP: Final = App("client-app", "client_app", client_app.settings)
APPS: Final = [
    pytest.param(RESOURCE_API, id="resource-api"),
    pytest.param(CLIENT_APP, id="client-app"),
]


@pytest.mark.parametrize("app", APPS)
def test_compose_sets_only_variables_the_app_reads(app: App) -> None:
    """A variable the settings loader does not know would be silently ignored (a typo)."""
    assert set(app_environment(app.service)) <= app.known_variables()


@pytest.mark.parametrize("app", APPS)
def test_compose_sets_every_required_variable(app: App) -> None:
    """What the loader reports missing from an empty environment is set by compose."""
    required = app.required_variables()
    assert required, "the loader reports no required variable: the derivation broke"
    assert required <= set(app_environment(app.service))


@pytest.mark.parametrize("app", APPS)
def test_the_compose_environment_loads(app: App) -> None:
    """Every value compose gives the app passes the app's own validation."""
    app.settings.load_settings(app_environment(app.service))


def test_no_variable_is_mandatory_so_logto_starts_before_the_console_step() -> None:
    """Issue 12: `docker compose up -d --wait logto` runs with an empty .env (the M2M app
    cannot exist before Logto does); the provision command, not compose, then names what is
    missing (tests/provision::test_missing_configuration_is_a_usage_error)."""
    text = COMPOSE_FILE.read_text()
    mandatory = {m["name"] for m in _REFERENCE.finditer(text) if m["op"] in (":?", "?")}
    assert mandatory == set()
    assert services({})["provision"]["environment"]["LOGTO_M2M_APP_ID"] == ""


def test_the_console_values_reach_only_the_provision_service() -> None:
    """The M2M credentials (which can change the whole tenant) go to the one-shot service and
    to no long-running app."""
    assert {k: environment("provision")[k] for k in USER_SUPPLIED} == USER_SUPPLIED
    for service, definition in services().items():
        if service != "provision":
            assert not set(definition.get("environment") or {}) & set(USER_SUPPLIED)


# -- ports and URLs ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("left", "right"),
    [
        pytest.param(
            ("resource-api", "LOGTO_ENDPOINT"), ("logto", "ENDPOINT"), id="api-trusts-logto"
        ),
        pytest.param(
            ("client-app", "LOGTO_ENDPOINT"), ("logto", "ENDPOINT"), id="client-signs-in-at-logto"
        ),
        pytest.param(
            ("client-app", "RESOURCE_API_URL"),
            ("resource-api", "RESOURCE_API_URL"),
            id="client-calls-the-api-where-it-says-it-is",
        ),
        pytest.param(
            ("client-app", "SHOPPING_RESOURCE"),
            ("resource-api", "SHOPPING_RESOURCE"),
            id="shopping-audience",
        ),
        pytest.param(
            ("client-app", "STORE_RESOURCE"),
            ("resource-api", "STORE_RESOURCE"),
            id="store-audience",
        ),
        pytest.param(
            ("provision", "LOGTO_ENDPOINT"), ("logto", "ENDPOINT"), id="provision-calls-logto"
        ),
        pytest.param(
            ("provision", "SHOPPING_RESOURCE"),
            ("resource-api", "SHOPPING_RESOURCE"),
            id="provision-shopping-audience",
        ),
        pytest.param(
            ("provision", "STORE_RESOURCE"),
            ("resource-api", "STORE_RESOURCE"),
            id="provision-store-audience",
        ),
        pytest.param(
            ("provision", "CLIENT_APP_BASE_URL"),
            ("client-app", "CLIENT_APP_BASE_URL"),
            id="provision-registers-the-client-redirect-uris",
        ),
    ],
)
def test_shared_values_agree(left: tuple[str, str], right: tuple[str, str]) -> None:
    """One value seen by two services is the same string in both (the issuer comparison and
    the audience comparison are exact)."""
    assert environment(left[0])[left[1]] == environment(right[0])[right[1]]


def test_the_issuer_is_the_one_the_resource_api_expects() -> None:
    """The API accepts iss == <LOGTO_ENDPOINT>/oidc; Logto issues <ENDPOINT>/oidc."""
    settings = resource_api.settings.load_settings(environment("resource-api"))
    verifier_issuer = f"{settings.auth_config().endpoint}/oidc"
    assert verifier_issuer == f"{environment('logto')['ENDPOINT']}/oidc"


@dataclass(frozen=True)
class Url:
    """A URL set in one service's environment that must reach ``target``."""

    service: str
    variable: str
    target: str
    target_port: int | None  # the port the target binds; None: its command's --port
    from_containers: bool  # also used by the apps inside the network, not only the browser


URLS: Final = [
    pytest.param(Url("logto", "ENDPOINT", "logto", 3001, from_containers=True), id="logto"),
    pytest.param(
        Url("provision", "LOGTO_ENDPOINT", "logto", 3001, from_containers=True), id="provision"
    ),
    pytest.param(Url("logto", "ADMIN_ENDPOINT", "logto", 3002, from_containers=False), id="admin"),
    pytest.param(
        Url("resource-api", "RESOURCE_API_URL", "resource-api", None, from_containers=True),
        id="resource-api",
    ),
    pytest.param(
        Url("client-app", "CLIENT_APP_BASE_URL", "client-app", None, from_containers=False),
        id="client-app",
    ),
]


@pytest.mark.parametrize("url", URLS)
def test_url_reaches_its_service_from_the_host(url: Url) -> None:
    """The URL's port is the target's listening port, published unchanged on the host's
    loopback, so the browser reaches the service at exactly this URL."""
    parts = urlsplit(environment(url.service)[url.variable])
    port = url.target_port or listen_port(url.target)
    assert parts.scheme == "http"
    assert parts.port == port
    assert published(url.target).get(port) == ("127.0.0.1", port)
    assert parts.hostname == "localhost" or (parts.hostname or "").endswith(".localhost")


@pytest.mark.parametrize("url", URLS)
def test_url_reaches_its_service_from_containers(url: Url) -> None:
    """A URL the apps call from their containers has a host that is the target's network
    alias (inside the network) and a *.localhost name (loopback on the host)."""
    hostname = urlsplit(environment(url.service)[url.variable]).hostname
    if url.from_containers:
        assert hostname in aliases(url.target)
        assert (hostname or "").endswith(".localhost")
    else:
        assert hostname == "localhost"


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        pytest.param("PORT", "3001", id="core"),
        pytest.param("ADMIN_PORT", "3002", id="admin"),
    ],
)
def test_logto_listens_where_its_urls_point(variable: str, value: str) -> None:
    """Logto's ports are the ones its ENDPOINT and ADMIN_ENDPOINT name."""
    assert environment("logto")[variable] == value


@pytest.mark.parametrize(
    "service",
    ["postgres", "redis", "logto", "resource-api", "client-app", "provision", "resource-api-db"],
)
def test_published_ports_stay_on_loopback(service: str) -> None:
    """A development stack (plain HTTP, default database password) is not reachable from the
    network; the database and the session store are not published at all."""
    ports = published(service)
    assert all(host_ip == "127.0.0.1" for host_ip, _ in ports.values())
    if service in ("postgres", "redis", "provision", "resource-api-db"):
        assert ports == {}


def test_the_resource_api_keeps_its_data_in_a_database_of_its_own() -> None:
    """DATABASE_URL names the postgres service, with the role, password and database that the
    one-shot resource-api-db service creates: not Logto's database, not the superuser; the API
    waits for that service to finish and keeps no data volume (replicas share the database)."""
    api, setup = environment("resource-api"), environment("resource-api-db")
    url = urlsplit(api["DATABASE_URL"])
    assert (url.scheme, url.hostname, url.port) == ("postgresql", "postgres", 5432)
    assert url.path == f"/{setup['RESOURCE_API_DB_NAME']}"
    assert (url.username, url.password) == (
        setup["RESOURCE_API_DB_USER"],
        setup["RESOURCE_API_DB_PASSWORD"],
    )
    logto_db = urlsplit(environment("logto")["DB_URL"])
    assert url.path != logto_db.path
    assert url.username not in (logto_db.username, environment("postgres")["POSTGRES_USER"])
    assert (setup["PGHOST"], setup["PGUSER"]) == (
        "postgres",
        environment("postgres")["POSTGRES_USER"],
    )
    assert setup["PGPASSWORD"] == environment("postgres")["POSTGRES_PASSWORD"]
    assert "RESOURCE_API_DATABASE" not in api
    assert "volumes" not in services()["resource-api"]
    depends = services()["resource-api"]["depends_on"]
    assert depends["resource-api-db"] == {"condition": "service_completed_successfully"}
    script = services()["resource-api-db"]["volumes"][0].split(":")[0]
    assert (REPO / script).is_file()


def test_the_resource_api_password_follows_env() -> None:
    """One value in .env changes the role's password and the API's URL together."""
    env = {**USER_SUPPLIED, "RESOURCE_API_DB_PASSWORD": "from-dot-env"}
    api, setup = services(env)["resource-api"], services(env)["resource-api-db"]
    assert urlsplit(api["environment"]["DATABASE_URL"]).password == "from-dot-env"
    assert setup["environment"]["RESOURCE_API_DB_PASSWORD"] == "from-dot-env"


def test_the_resource_api_is_ready_for_replicas() -> None:
    """deploy.replicas (RESOURCE_API_REPLICAS, default 1), no container name, and a host port
    range so that each replica publishes one port on the host's loopback."""
    assert services()["resource-api"]["deploy"]["replicas"] == "1"
    scaled = services({**USER_SUPPLIED, "RESOURCE_API_REPLICAS": "3"})["resource-api"]
    assert scaled["deploy"]["replicas"] == "3"
    assert "container_name" not in scaled
    (entry,) = scaled["ports"]
    host_ip, host_ports, container_port = str(entry).rsplit(":", 2)
    first, last = (int(port) for port in host_ports.split("-"))
    assert (host_ip, container_port) == ("127.0.0.1", str(listen_port("resource-api")))
    assert last - first + 1 >= 3


def test_client_sessions_live_in_the_redis_service() -> None:
    """SESSION_REDIS_URL names the redis service on Redis's port, keeps its data on a volume,
    and the client app keeps no session directory of its own."""
    client = environment("client-app")
    parts = urlsplit(client["SESSION_REDIS_URL"])
    assert (parts.scheme, parts.hostname, parts.port or 6379) == ("redis", "redis", 6379)
    assert "SESSION_DATABASE" not in client
    assert any(v.endswith(":/data") for v in services()["redis"]["volumes"])
    assert "--appendonly" in services()["redis"]["command"]


def test_redis_memory_is_bounded_and_never_evicts_a_session() -> None:
    """Issue 9, item 4: Redis has a memory bound, and reaching it refuses new writes (the app
    answers 503 "try again") instead of evicting keys: every session key carries a TTL, so
    any ``volatile-*`` or ``allkeys-*`` policy would silently sign people out."""
    command = services()["redis"]["command"]
    options = dict(zip(command[1::2], command[2::2], strict=False))
    assert re.fullmatch(r"\d+(mb|gb)", options["--maxmemory"])
    assert options["--maxmemory-policy"] == "noeviction"


def test_logto_database_url_points_at_postgres() -> None:
    """DB_URL names the postgres service and the password postgres was created with."""
    parts = urlsplit(environment("logto")["DB_URL"])
    assert (parts.scheme, parts.hostname, parts.port) == ("postgres", "postgres", 5432)
    assert parts.password == environment("postgres")["POSTGRES_PASSWORD"]


# -- health, start order, seeding ------------------------------------------------------------

_HEALTH_URL: Final = re.compile(r"http://127\.0\.0\.1:(?P<port>\d+)(?P<path>/[^'\"\s)]*)")


def health_url(test: list[str]) -> tuple[int, str]:
    """The port and path a healthcheck command requests."""
    match = _HEALTH_URL.search(" ".join(test))
    assert match, f"no http://127.0.0.1:<port>/<path> in {test}"
    return int(match["port"]), match["path"]


async def get_without_credentials(app: App, path: str, tmp_path: Path) -> httpx.Response:
    """GET ``path`` from the app built from the compose environment, with no token, no
    session and no network (the issuer answers 503 to anything)."""
    settings = app.settings.load_settings(app_environment(app.service))
    transport = httpx.MockTransport(lambda _: httpx.Response(503))
    async with httpx.AsyncClient(transport=transport) as http:
        litestar_app: Litestar
        if app is RESOURCE_API:
            # The compose PostgreSQL is not here: the embedded store stands in (the database
            # wiring is pinned by the tests below, and a real PostgreSQL by tests/resource_api).
            local = msgspec.structs.replace(
                settings, database=tmp_path / "api.sqlite3", database_url=None
            )
            litestar_app = resource_api.app.create_app(local, http_client=http)
        else:
            litestar_app = client_app.app.create_app(
                settings, http_client=http, session_store=MemoryStore()
            )
        async with AsyncTestClient(litestar_app) as client:
            return await client.get(path, follow_redirects=False)


@pytest.mark.parametrize("app", APPS)
async def test_healthcheck_gets_a_public_route(app: App, tmp_path: Path) -> None:
    """The healthcheck requests the port the app binds and a route that answers 200 with no
    credentials (urllib raises on anything else) and without Logto."""
    port, path = health_url(services()[app.service]["healthcheck"]["test"])
    assert port == listen_port(app.service)
    response = await get_without_credentials(app, path, tmp_path)
    assert response.status_code == 200


def test_logto_healthcheck_asks_its_core_port() -> None:
    """Logto's check requests its status route on the core port."""
    port, path = health_url(services()["logto"]["healthcheck"]["test"])
    assert (port, path) == (int(environment("logto")["PORT"]), "/api/status")


def test_logto_seeds_its_database_at_start() -> None:
    """As Logto's own compose file: seed (skipped once seeded), then start."""
    entrypoint = services()["logto"]["entrypoint"]
    assert entrypoint == ["sh", "-c", "npm run cli db seed -- --swe && npm start"]


@pytest.mark.parametrize(
    ("service", "dependency"),
    [
        pytest.param("logto", "postgres", id="logto-needs-postgres"),
        pytest.param("resource-api", "logto", id="api-needs-logto"),
        pytest.param("resource-api-db", "postgres", id="api-database-needs-postgres"),
        pytest.param("client-app", "logto", id="client-needs-logto"),
        pytest.param("client-app", "resource-api", id="client-needs-api"),
        pytest.param("client-app", "redis", id="client-needs-redis"),
    ],
)
def test_services_start_after_their_dependencies_are_healthy(service: str, dependency: str) -> None:
    """depends_on waits for a passing healthcheck, not just a started container."""
    depends_on = services()[service]["depends_on"]
    assert depends_on[dependency] == {"condition": "service_healthy"}
    assert services()[dependency]["healthcheck"]["test"]


# -- the provision service (issue 12) ---------------------------------------------------------


def mounts(service: str) -> dict[str, tuple[str, bool]]:
    """``container path -> (source, read-only)`` of the service's short-syntax volumes."""
    result: dict[str, tuple[str, bool]] = {}
    for entry in services()[service].get("volumes", []):
        source, target, *options = str(entry).split(":")
        result[target] = (source, "ro" in options)
    return result


def test_provision_runs_after_logto_and_before_the_client_app() -> None:
    """A one-shot: it waits for a healthy Logto, exits, and the client app starts only after
    it exited successfully (so never with missing credentials)."""
    provision = services()["provision"]
    assert provision["depends_on"] == {"logto": {"condition": "service_healthy"}}
    client_depends = services()["client-app"]["depends_on"]
    assert client_depends["provision"] == {"condition": "service_completed_successfully"}
    assert provision["restart"] == "no"
    assert provision["healthcheck"] == {"disable": True}


def test_provision_is_given_only_variables_it_reads() -> None:
    assert set(environment("provision")) <= set(demo.provision.__main__.VARIABLES)


def test_the_pwned_password_check_is_turned_off_only_when_asked() -> None:
    """The flag reaches the command only from an explicit value in .env."""
    assert environment("provision")["PROVISION_DISABLE_PWNED_PASSWORD_CHECK"] == "false"
    asked = services({**USER_SUPPLIED, "PROVISION_DISABLE_PWNED_PASSWORD_CHECK": "true"})
    assert asked["provision"]["environment"]["PROVISION_DISABLE_PWNED_PASSWORD_CHECK"] == "true"


def test_provision_reads_the_seed_of_dev_demo() -> None:
    """The image installs only the two apps: ``demo/`` and the dev issuer's seed are mounted
    read-only where they sit relative to the working directory in the repository, so the
    command reads demo.launcher's DEFAULT_SEED, the very file ``./dev demo`` serves."""
    provision = services()["provision"]
    workdir = PurePosixPath(provision["working_dir"])
    found = mounts("provision")
    for path in (REPO / "demo", DEFAULT_SEED):
        source, read_only = found[str(workdir / path.relative_to(REPO).as_posix())]
        assert (REPO / source).resolve() == path.resolve()
        assert read_only
    assert provision["build"] == services()["client-app"]["build"]


def handoff() -> tuple[PurePosixPath, PurePosixPath]:
    """The file the provision command writes and the path the client app sources it from."""
    command: list[str] = services()["provision"]["command"]
    written = PurePosixPath(command[command.index("--env-file") + 1])
    ((volume, directory),) = [
        (source, PurePosixPath(target))
        for target, (source, read_only) in mounts("provision").items()
        if written.is_relative_to(target) and not read_only
    ]
    assert volume in raw_compose()["volumes"]
    ((target, read_only),) = [
        (target, read_only)
        for target, (source, read_only) in mounts("client-app").items()
        if source == volume
    ]
    assert read_only
    return written, PurePosixPath(target) / written.relative_to(directory)


def test_the_client_app_sources_the_file_provision_writes() -> None:
    """Same volume on both sides; the entrypoint exports what the file sets, then execs the
    unchanged command (``python -m client_app``)."""
    _, sourced = handoff()
    entrypoint: list[str] = services()["client-app"]["entrypoint"]
    assert entrypoint[:2] == ["sh", "-c"]
    assert f"set -a && . {sourced} && set +a" in entrypoint[2]
    assert entrypoint[2].endswith('exec "$@"')
    assert python_module(services()["client-app"]["command"]) == "client_app"


def test_the_handed_over_values_are_what_compose_leaves_out() -> None:
    """What the client app requires and compose does not set is exactly what the file holds."""
    assert set(HANDED_OVER) == set(demo.provision.__main__.HANDED_OVER)
    required = CLIENT_APP.required_variables()
    assert required - set(environment("client-app")) == set(HANDED_OVER)


def test_the_entrypoint_reads_back_awkward_values(tmp_path: Path) -> None:
    """The client app's entrypoint, run by a real ``sh`` on a file written by the provision
    command's writer: a value with spaces, quotes and ``$`` arrives verbatim, not executed."""
    _, sourced = handoff()
    values = {
        "LOGTO_APP_ID": "app",
        "LOGTO_APP_SECRET": 'it\'s $HOME `id` \\ "x"',
        "SESSION_SECRET": "a b  c $(touch pwned) ; exit 3",
    }
    env_file = tmp_path / "client-app.env"
    write_env_file(env_file, values)
    script = services()["client-app"]["entrypoint"][2].replace(str(sourced), str(env_file))
    printer = (
        f"import json, os; print(json.dumps({{k: os.environ[k] for k in {sorted(values)!r}}}))"
    )
    result = subprocess.run(  # noqa: S603 - fixed argv
        ["sh", "-c", script, "client-app", sys.executable, "-c", printer],  # noqa: S607
        capture_output=True,
        text=True,
        cwd=tmp_path,
        check=True,
        env={"PATH": os.environ["PATH"]},
    )
    assert json.loads(result.stdout) == values
    assert not (tmp_path / "pwned").exists()


@pytest.mark.parametrize(
    ("service", "pattern"),
    [
        pytest.param("postgres", r"postgres:\d+\.\d+-alpine", id="postgres"),
        pytest.param("logto", r"svhd/logto:\d+\.\d+\.\d+", id="logto"),
        pytest.param("redis", r"redis:\d+\.\d+\.\d+-alpine", id="redis"),
        pytest.param("resource-api-db", r"postgres:\d+\.\d+-alpine", id="resource-api-db"),
    ],
)
def test_images_are_pinned(service: str, pattern: str) -> None:
    """Third-party images carry an exact version, never a moving tag such as latest."""
    assert re.fullmatch(pattern, services()[service]["image"])


@pytest.mark.parametrize("app", APPS)
def test_apps_are_built_from_the_dockerfile(app: App) -> None:
    """Both apps run the one image built from this repository's Dockerfile."""
    build = services()[app.service]["build"]
    assert (REPO / build["context"] / build["dockerfile"]).resolve() == DOCKERFILE
    assert "image" not in services()[app.service]


# -- the Dockerfile ----------------------------------------------------------------------------


def dockerfile_instructions() -> list[tuple[str, str]]:
    """``(INSTRUCTION, arguments)`` pairs, continuation lines joined, comments dropped."""
    logical: list[str] = []
    pending = ""
    for line in DOCKERFILE.read_text().splitlines():
        stripped = line.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        logical.append(pending + stripped)
        pending = ""
    return [(text.split(None, 1)[0].upper(), text.split(None, 1)[1]) for text in logical]


def instruction_arguments(name: str) -> list[str]:
    """The arguments of every ``name`` instruction, in order."""
    return [
        arguments for instruction, arguments in dockerfile_instructions() if instruction == name
    ]


def test_dockerfile_bases_are_pinned_python_311_slim() -> None:
    """Every stage starts from the python:3.11-slim tag (pinned minor, no latest)."""
    bases = [arguments.split()[0] for arguments in instruction_arguments("FROM")]
    assert bases
    assert set(bases) == {"python:3.11-slim"}


def test_dockerfile_runs_as_a_non_root_user() -> None:
    """The last USER is neither root nor uid 0."""
    user = instruction_arguments("USER")[-1].split(":")[0]
    assert user not in {"root", "0"}


def uv_version_of_dev() -> str:
    """The uv version ./dev pins (``UV_VERSION=...``): the image installs with the same uv."""
    match = re.search(r'^UV_VERSION="([0-9.]+)"$', (REPO / "dev").read_text(), re.MULTILINE)
    assert match is not None, "./dev no longer pins uv"
    return match.group(1)


def test_dockerfile_installs_the_locked_runtime_packages() -> None:
    """The image installs exactly uv.lock's runtime packages (the project, the litestar-logto
    core and their dependencies) with ./dev's uv: ``uv sync --locked --no-editable``, no dev
    extra, no editable link back to /src; pip installs only that uv."""
    runs = instruction_arguments("RUN")
    pip = [run for run in runs if "pip install" in run]
    assert pip == [f"pip install uv=={uv_version_of_dev()}"]
    syncs = [run for run in runs if "uv sync" in run]
    assert len(syncs) == 1
    flags = syncs[0].split()
    assert {"--locked", "--no-editable"} <= set(flags)
    assert not {"--extra", "--all-extras", "--frozen", "--no-install-workspace"} & set(flags)
    assert "UV_PROJECT_ENVIRONMENT=/opt/venv" in " ".join(instruction_arguments("ENV"))


def test_dockerfile_bakes_no_secret() -> None:
    """No ENV or ARG carries a credential; configuration arrives at run time."""
    declared = " ".join(instruction_arguments("ENV") + instruction_arguments("ARG"))
    assert not re.search(r"SECRET|PASSWORD|TOKEN|LOGTO_", declared)


def python_module(command: list[str]) -> str:
    """The module of a ``python -m <module> …`` command."""
    assert command[:2] == ["python", "-m"], command
    return command[2]


COMMANDS: Final = [
    pytest.param("Dockerfile CMD", "resource_api", id="dockerfile-cmd"),
    pytest.param("resource-api", "resource_api", id="resource-api"),
    pytest.param("client-app", "client_app", id="client-app"),
    pytest.param("provision", "demo.provision", id="provision"),
]


@pytest.mark.parametrize(("source", "module"), COMMANDS)
def test_commands_run_modules_that_exist(source: str, module: str) -> None:
    """Each command is `python -m <package>` and the package has a __main__ module."""
    if source == "Dockerfile CMD":
        command: list[str] = json.loads(instruction_arguments("CMD")[-1])
    else:
        command = services()[source]["command"]
    assert python_module(command) == module
    assert importlib.util.find_spec(f"{module}.__main__") is not None


def test_dockerfile_healthcheck_matches_its_default_command() -> None:
    """The image's own HEALTHCHECK asks the default command's port for /health."""
    healthcheck = instruction_arguments("HEALTHCHECK")[-1]
    command: list[str] = json.loads(instruction_arguments("CMD")[-1])
    port, path = health_url(json.loads(healthcheck.split("CMD", 1)[1]))
    assert port == int(command[command.index("--port") + 1])
    assert path == "/health"


def workspace_members() -> list[str]:
    """The uv workspace members of pyproject.toml (the litestar-logto core)."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    members: list[str] = project["tool"]["uv"]["workspace"]["members"]
    return members


def test_build_context_is_an_allow_list_of_the_packages() -> None:
    """.dockerignore excludes everything, then admits only what `uv sync` needs: the packages
    pyproject.toml installs, the workspace members (the core), pyproject.toml, its readme and
    uv.lock. Secrets (.env), .git, .venv and node_modules therefore never enter the context."""
    lines = [line.strip() for line in DOCKERIGNORE.read_text().splitlines()]
    patterns = [line for line in lines if line and not line.startswith("#")]
    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    includes = project["tool"]["setuptools"]["packages"]["find"]["include"]
    packages = {f"!{include.rstrip('*')}/" for include in includes}
    members = {f"!{member}/" for member in workspace_members()}
    assert patterns[0] == "*"
    admitted = {pattern for pattern in patterns if pattern.startswith("!")}
    assert admitted == {
        "!pyproject.toml",
        "!uv.lock",
        f"!{project['project']['readme']}",
        *packages,
        *members,
    }
    assert "**/.env" in patterns


def test_the_dockerfile_copies_the_lock_and_the_workspace_members() -> None:
    """uv.lock and each workspace member reach the build stage's source tree: without them
    `uv sync --locked` fails, or the project's dependency on litestar-logto cannot be met."""
    copies = {tuple(arguments.split()) for arguments in instruction_arguments("COPY")}
    assert any("uv.lock" in copy[:-1] for copy in copies)
    assert workspace_members() == ["packages/litestar-logto"]
    for member in workspace_members():
        assert (member, f"./{member}") in copies


def installed_packages() -> list[str]:
    """The top-level packages `pip install .` installs (pyproject.toml's packages.find)."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    includes = project["tool"]["setuptools"]["packages"]["find"]["include"]
    return [include.rstrip("*") for include in includes]


PACKAGES: Final = installed_packages()


def test_the_installed_packages_are_the_programs_and_their_shared_code() -> None:
    """Both programs and the service_kit package they import; a new package must join the
    list (and so the Dockerfile and .dockerignore checks below)."""
    assert set(PACKAGES) == {"resource_api", "client_app", "service_kit"}


def test_the_installed_packages_import_no_other_package_of_the_repository() -> None:
    """What the installed packages import from this repository is installed too (service_kit
    by both programs); a program importing, say, ``demo`` would fail in the image."""
    local = {path.parent.name for path in REPO.glob("*/__init__.py")}
    imported: set[str] = set()
    for package in PACKAGES:
        for source in (REPO / package).rglob("*.py"):
            for node in ast.walk(ast.parse(source.read_text(), str(source))):
                if isinstance(node, ast.Import):
                    imported |= {alias.name.split(".")[0] for alias in node.names}
                elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                    imported.add(node.module.split(".")[0])
    assert "service_kit" in imported
    assert imported & local <= set(PACKAGES)


def test_the_dockerfile_copies_every_installed_package() -> None:
    """The build stage COPYs each package into the source tree `pip install .` reads: a
    package left out would be missing from the image (an ImportError at start)."""
    copies = {tuple(arguments.split()) for arguments in instruction_arguments("COPY")}
    for package in PACKAGES:
        assert (package, f"./{package}") in copies


def package_data_files() -> set[Path]:
    """The non-Python files pyproject.toml's package-data ships inside the packages."""
    setuptools = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    shipped: set[Path] = set()
    for package, patterns in setuptools.get("package-data", {}).items():
        roots = [REPO / name for name in PACKAGES] if package == "*" else [REPO / package]
        shipped |= {path for root in roots for pattern in patterns for path in root.glob(pattern)}
    return shipped


@pytest.mark.parametrize("package", [pytest.param(name, id=name) for name in PACKAGES])
def test_the_image_gets_every_file_the_package_reads(package: str) -> None:
    """`pip install .` puts only Python files in the wheel unless pyproject.toml declares
    package-data: templates or static files missing from it would be missing in the image."""
    data = {
        path
        for path in (REPO / package).rglob("*")
        if path.is_file() and path.suffix not in {".py", ".pyc"} and "__pycache__" not in path.parts
    }
    assert data <= package_data_files()
