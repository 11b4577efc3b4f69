"""service_kit.cli, the command line of both programs: the port validator (also the demo's),
the exit status and message of a configuration problem, and each program's ``--help``."""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from dataclasses import dataclass
from types import ModuleType
from typing import TYPE_CHECKING, Any

import pytest
from litestar import Litestar

import client_app.__main__
import demo.__main__
import resource_api.__main__
from service_kit import cli, server
from service_kit.env import SettingsError
from service_kit.metrics import Registry

if TYPE_CHECKING:
    from opentelemetry.trace import TracerProvider


@pytest.mark.parametrize(("value", "port"), [("1", 1), ("8001", 8001), ("65535", 65535)])
def test_a_port_number_is_accepted(value: str, port: int) -> None:
    """Every TCP port from 1 to 65535 is a valid --port."""
    assert cli.port(value) == port


@pytest.mark.parametrize("value", ["0", "-1", "65536", "http", "", "80.5"])
def test_anything_else_is_not_a_port(value: str) -> None:
    """Zero, out-of-range numbers and words are refused with the same message."""
    with pytest.raises(
        argparse.ArgumentTypeError, match=r"^must be a port number between 1 and 65535$"
    ):
        cli.port(value)


def test_the_demo_checks_its_ports_with_the_same_validator(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """``python -m demo --api-port 0`` is refused by argparse with the shared message."""
    with pytest.raises(SystemExit) as caught:
        demo.__main__.main(["--api-port", "0"])
    assert caught.value.code == 2
    assert "argument --api-port: must be a port number between 1 and 65535" in (
        capsys.readouterr().err
    )


@pytest.mark.parametrize(("value", "count"), [("1", 1), ("2", 2), ("64", 64)])
def test_a_number_of_workers_is_accepted(value: str, count: int) -> None:
    """--workers takes 1 to 64 processes."""
    assert cli.workers(value) == count


@pytest.mark.parametrize("value", ["0", "-2", "65", "many", "", "1.5"])
def test_anything_else_is_not_a_number_of_workers(value: str) -> None:
    """Zero, negative, too many and words are refused with one message."""
    with pytest.raises(
        argparse.ArgumentTypeError, match=r"^must be a number of processes between 1 and 64$"
    ):
        cli.workers(value)


@dataclass(frozen=True)
class _Settings:
    log_level: str


def _load(environ: Mapping[str, str]) -> _Settings:
    if "LOG_LEVEL" not in environ:
        raise SettingsError(["LOG_LEVEL is required", "OTHER is wrong"])
    return _Settings(environ["LOG_LEVEL"])


def _no_app(
    settings: _Settings,
    *,
    metrics: Registry | None = None,
    tracer_provider: TracerProvider | None = None,
) -> Litestar:
    raise AssertionError(settings)


PROGRAM = cli.Program[_Settings](
    name="example",
    description="An example.",
    default_port=9,
    load_settings=_load,
    create_app=_no_app,
)


def test_a_settings_error_is_printed_as_a_list_and_exits_2(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The program's name, then every problem; status 2; neither logging nor the server start."""
    started: list[Any] = []
    monkeypatch.setattr(server, "serve", lambda *args, **_: started.append(args))
    monkeypatch.setattr(cli, "configure_logging", lambda *args, **_: started.append(args))
    assert cli.run(PROGRAM, [], {}) == cli.EXIT_CONFIGURATION_ERROR == 2
    assert capsys.readouterr() == (
        "",
        "example: invalid configuration:\n  - LOG_LEVEL is required\n  - OTHER is wrong\n",
    )
    assert started == []


@pytest.mark.parametrize(
    ("module", "port", "required"),
    [
        pytest.param(resource_api.__main__, 8001, "LOGTO_ENDPOINT is required", id="resource_api"),
        pytest.param(client_app.__main__, 8000, "SESSION_SECRET are required", id="client_app"),
    ],
)
def test_each_program_describes_itself_in_help(
    capsys: pytest.CaptureFixture[str], module: ModuleType, port: int, required: str
) -> None:
    """``python -m <program> --help``: its own name, description and default port."""
    with pytest.raises(SystemExit) as caught:
        module.main(["--help"], {})
    assert caught.value.code == 0
    out = " ".join(capsys.readouterr().out.split())
    name = module.__name__.removesuffix(".__main__")
    assert out.startswith(f"usage: python -m {name} [-h] [--host HOST] [--port PORT]")
    assert required in out
    assert f"--port PORT TCP port ({port})" in out
    assert "--host HOST interface to bind (127.0.0.1)" in out
    assert "--workers WORKERS worker processes, each with its own app (1)" in out
    assert "--forwarded-allow-ips IPS comma-separated addresses" in out
