"""The verification core as its own distribution: built, installed alone, used like a user would.

``uv build`` makes the wheel and the sdist of ``packages/litestar-logto`` (its uv_build backend
runs inside uv: nothing to download). A new, empty virtual environment receives the core's
dependencies exactly as uv.lock resolves them (``uv sync --package litestar-logto``, offline: from
uv's cache, which ``./dev setup`` filled from the same lock), then the wheel itself. That
environment must hold the four declared dependencies and what they need, nothing else (no
package of this repository, no dependency of the apps), and the README's "Use it in your own
service" example must run there against the real dev issuer, with tokens from the real SDK.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from dataclasses import dataclass
from email.parser import Parser
from importlib import metadata
from pathlib import Path

import httpx
import pytest
from logto import LogtoClient
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.dev_issuer.conftest import sdk_config, sign_in
from tests.dev_issuer.support import SHOPPING, STORE, DevIssuer, DictStorage
from tests.support import missing_on_this_machine
from tests.test_readme_example import _first_example

REPO = Path(__file__).resolve().parents[2]
CORE = REPO / "packages" / "litestar-logto"
DECLARED = {"litestar", "pyjwt", "httpx", "msgspec"}
LOCAL_PACKAGES = ("resource_api", "client_app", "service_kit", "demo", "bench", "tests")
README_RUNNER = Path(__file__).with_name("readme_in_core_venv.py")


def find_uv() -> str:
    """The uv that ./dev installs (.venv-tools), else ``$UV`` or uv on PATH; skipped without
    one, failed under CI (./dev setup always installs it there)."""
    for candidate in (os.environ.get("UV"), str(REPO / ".venv-tools" / "bin" / "uv")):
        if candidate and Path(candidate).is_file():
            return candidate
    found = shutil.which("uv")
    if found is None:
        missing_on_this_machine(
            "uv is missing: ./dev setup installs it into .venv-tools", tests="the packaging test"
        )
    return found


def uv_environ() -> dict[str, str]:
    """Our environment without what would point Python or uv at another environment."""
    environ = dict(os.environ)
    for name in ("PYTHONPATH", "VIRTUAL_ENV", "UV_PROJECT_ENVIRONMENT", "PYTHONHOME"):
        environ.pop(name, None)
    return environ


def run(*args: str, cwd: Path = REPO, **extra: str) -> str:
    """Run a command; on failure, fail the test with its output."""
    completed = subprocess.run(  # noqa: S603 - our own tools and arguments
        args, cwd=cwd, env=uv_environ() | extra, capture_output=True, text=True, check=False
    )
    if completed.returncode != 0:
        pytest.fail(f"{' '.join(args)} exited {completed.returncode}:\n{completed.stderr}")
    return completed.stdout


@dataclass(frozen=True)
class Built:
    wheel: Path
    sdist: Path


@pytest.fixture(scope="module")
def uv() -> str:
    return find_uv()


@pytest.fixture(scope="module")
def built(uv: str, tmp_path_factory: pytest.TempPathFactory) -> Built:
    """The wheel and the sdist of packages/litestar-logto, built offline by uv."""
    out = tmp_path_factory.mktemp("dist")
    run(uv, "build", "--offline", "--quiet", "--out-dir", str(out), str(CORE))
    wheels, sdists = list(out.glob("*.whl")), list(out.glob("*.tar.gz"))
    assert (len(wheels), len(sdists)) == (1, 1), sorted(out.iterdir())
    return Built(wheels[0], sdists[0])


@dataclass(frozen=True)
class CoreVenv:
    root: Path
    python: Path
    site_packages: Path


@pytest.fixture(scope="module")
def core_venv(uv: str, built: Built, tmp_path_factory: pytest.TempPathFactory) -> CoreVenv:
    """An empty virtual environment, then the core's locked dependencies, then the wheel."""
    root = tmp_path_factory.mktemp("core") / "venv"
    run(uv, "venv", "--quiet", "--python", sys.executable, str(root))
    python = root / "bin" / "python"
    # the dependencies of the workspace member litestar-logto alone, as uv.lock resolves them
    run(
        uv, "sync", "--locked", "--offline", "--quiet", "--package", "litestar-logto",
        "--no-install-workspace", UV_PROJECT_ENVIRONMENT=str(root),
    )  # fmt: skip
    run(uv, "pip", "install", "--offline", "--quiet", "--no-deps", "--python", str(python),
        str(built.wheel))  # fmt: skip
    purelib = run(str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))")
    return CoreVenv(root, python, Path(purelib.strip()))


def wheel_metadata(wheel: Path) -> dict[str, list[str]]:
    """The wheel's METADATA headers (multi-valued ones as lists)."""
    with zipfile.ZipFile(wheel) as archive:
        name = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
        message = Parser().parsestr(archive.read(name).decode("utf-8"))
    return {key: message.get_all(key) or [] for key in set(message.keys())}


def test_the_wheel_holds_the_package_typed_and_nothing_else(built: Built) -> None:
    """The wheel ships litestar_logto with py.typed, and no other top-level package."""
    with zipfile.ZipFile(built.wheel) as archive:
        names = archive.namelist()
    top = {name.split("/", 1)[0] for name in names}
    assert top == {"litestar_logto", "litestar_logto-0.1.0.dist-info"}
    assert "litestar_logto/py.typed" in names
    assert not any("__pycache__" in name or name.endswith(".pyc") for name in names)


def test_the_sdist_holds_the_sources_readme_and_changelog(built: Built) -> None:
    """The sdist rebuilds the same package: pyproject, sources, README and CHANGELOG."""
    with tarfile.open(built.sdist) as archive:
        names = {name.split("/", 1)[1] for name in archive.getnames() if "/" in name}
    assert {
        "pyproject.toml",
        "README.md",
        "CHANGELOG.md",
        "src/litestar_logto/__init__.py",
        "src/litestar_logto/py.typed",
    } <= names


def test_the_wheel_declares_only_the_four_dependencies(built: Built) -> None:
    """Requires-Dist: litestar, pyjwt[crypto], httpx and msgspec; OpenTelemetry only under the
    ``tracing`` extra."""
    headers = wheel_metadata(built.wheel)
    requirements = [Requirement(text) for text in headers["Requires-Dist"]]
    always: dict[str, Requirement] = {
        canonicalize_name(r.name): r for r in requirements if r.marker is None
    }
    optional = {canonicalize_name(r.name) for r in requirements if r.marker is not None}
    assert set(always) == DECLARED
    assert always["pyjwt"].extras == {"crypto"}
    assert optional == {"opentelemetry-api"}
    assert headers["Provides-Extra"] == ["tracing"]
    assert headers["Name"] == ["litestar-logto"]


def installed(venv: CoreVenv) -> dict[str, metadata.Distribution]:
    """The distributions of the venv, by canonical name."""
    return {
        canonicalize_name(dist.metadata["Name"]): dist
        for dist in metadata.distributions(path=[str(venv.site_packages)])
    }


def needed(dists: dict[str, metadata.Distribution], name: str, extras: set[str]) -> set[str]:
    """``name`` and, recursively, what its requirements (with ``extras``) need on this Python."""
    visited: set[tuple[str, frozenset[str]]] = set()
    pending = [(canonicalize_name(name), frozenset(extras))]
    while pending:
        current, wanted = pending.pop()
        if (current, wanted) in visited:
            continue
        visited.add((current, wanted))
        for text in dists[current].requires or []:
            requirement = Requirement(text)
            environments = [{"extra": extra} for extra in wanted] or [{"extra": ""}]
            if requirement.marker is None or any(
                requirement.marker.evaluate(env) for env in environments
            ):
                pending.append((canonicalize_name(requirement.name), frozenset(requirement.extras)))
    return {current for current, _ in visited}


def test_the_core_installs_alone(core_venv: CoreVenv) -> None:
    """Exactly litestar-logto and what its four dependencies need: no unused distribution, and
    every requirement satisfied (uv pip check)."""
    dists = installed(core_venv)
    assert set(dists) == needed(dists, "litestar-logto", set())
    assert set(dists) > DECLARED
    run(find_uv(), "pip", "check", "--quiet", "--python", str(core_venv.python))


def test_no_package_of_the_repository_comes_with_it(core_venv: CoreVenv, tmp_path: Path) -> None:
    """From a folder outside the repository, the venv imports litestar_logto from its own
    site-packages and none of the repository's packages (nor the apps' dependencies)."""
    probe = (
        "import importlib.util, json, litestar_logto; print(json.dumps({"
        "'core': litestar_logto.__file__, 'found': [name for name in "
        f"{[*LOCAL_PACKAGES, 'logto', 'granian', 'jinja2', 'redis', 'asyncpg']!r}"
        " if importlib.util.find_spec(name)]}))"
    )
    answer = json.loads(run(str(core_venv.python), "-c", probe, cwd=tmp_path))
    assert Path(answer["core"]).is_relative_to(core_venv.site_packages)
    assert answer["found"] == []


async def bob_tokens(issuer: DevIssuer) -> dict[str, str]:
    """bob signs in through the issuer's form with the real SDK; his shopping and store tokens."""
    client = LogtoClient(sdk_config(issuer), storage=DictStorage())
    async with httpx.AsyncClient(follow_redirects=False, timeout=10) as browser:
        await sign_in(client, browser, issuer, "bob")
    return {
        "shopping": await client.getAccessToken(SHOPPING),
        "store": await client.getAccessToken(STORE),
    }


def test_the_readme_example_runs_in_the_core_venv(
    core_venv: CoreVenv, dev_issuer: DevIssuer, tmp_path: Path
) -> None:
    """The README's example, its endpoint set to the dev issuer, run by the core-only venv:
    bob's shopping token reaches the handler, his store token (another audience) is refused,
    no token gets the Bearer challenge, the public route answers."""
    example = tmp_path / "readme_example.py"
    example.write_text(
        _first_example().replace("https://your-tenant.logto.app", dev_issuer.endpoint),
        encoding="utf-8",
    )
    tokens = asyncio.run(bob_tokens(dev_issuer))
    completed = subprocess.run(  # noqa: S603 - the venv's Python on our own script
        [str(core_venv.python), str(README_RUNNER), str(example)],
        input=json.dumps(tokens),
        cwd=tmp_path,
        env=uv_environ(),
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert completed.returncode == 0, completed.stderr
    result = json.loads(completed.stdout)
    answers = result["answers"]
    assert Path(result["litestar_logto"]).is_relative_to(core_venv.site_packages)
    assert answers["shopping"] == [200, {"user": dev_issuer.user_id("bob")}]
    assert (answers["store"][0], answers["store"][1]["error"]) == (401, "invalid_token")
    assert answers["none"][0] == 401
    assert answers["none"][1].startswith("Bearer")
    assert answers["ping"] == [200, "pong"]
    for token in tokens.values():
        assert token not in completed.stdout + completed.stderr
