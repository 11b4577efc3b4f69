"""Without ``OTEL_EXPORTER_OTLP_ENDPOINT`` the programs start as they did before traces existed:
no tracer provider, no exporter thread, no tracing middleware; not even the SDK's tracing or an
exporter imported. (Litestar imports the OpenTelemetry API and its own plugin module, and
redis some of the SDK's metrics, whenever they are installed, traces or not.)"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from service_kit import cli
from tests.served_programs import REPO

BUILD_BOTH_APPS = """
import sys, threading
from pathlib import Path
from resource_api.__main__ import PROGRAM as API
from client_app.__main__ import PROGRAM as CLIENT
from service_kit import cli, server

built = []
server.serve = lambda build_app, **_: built.append(build_app())
environ = {
    "LOGTO_ENDPOINT": "http://127.0.0.1:9",
    "LOGTO_APP_ID": "app",
    "LOGTO_APP_SECRET": "app-secret",
    "SESSION_SECRET": "s" * 40,
    "RESOURCE_API_DATABASE": sys.argv[1] + "/api.sqlite3",
    "SESSION_DATABASE": sys.argv[1] + "/sessions",
    "LOG_LEVEL": "WARNING",
}
assert cli.run(API, [], environ) == 0
assert cli.run(CLIENT, [], environ) == 0
assert len(built) == 2
from opentelemetry import trace
print(sorted(m for m in sys.modules if m.startswith(
    ("opentelemetry.sdk.trace", "opentelemetry.exporter", "service_kit.tracing",
     "litestar_logto.tracing")
)))
print(type(trace.get_tracer_provider()).__name__)
print(threading.active_count())
print([type(p).__name__ for app in built for p in app.plugins])
"""


def test_both_programs_build_their_apps_without_opentelemetry(tmp_path: Path) -> None:
    done = subprocess.run(  # noqa: S603 - our own code
        [sys.executable, "-c", BUILD_BOTH_APPS, str(tmp_path)],
        cwd=REPO,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    modules, provider, threads, plugins = done.stdout.splitlines()
    assert modules == "[]"
    assert provider == "ProxyTracerProvider"  # the API's default: no provider was set
    assert threads == "1"
    assert "OpenTelemetryPlugin" not in plugins


@pytest.mark.parametrize(
    ("environ", "requested"),
    [
        ({}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": ""}, False),
        ({"OTEL_SERVICE_NAME": "api"}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}, True),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://127.0.0.1:4318/v1/traces"}, True),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_SDK_DISABLED": "true"}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_TRACES_EXPORTER": "none"}, False),
    ],
)
def test_traces_are_on_only_with_an_otlp_endpoint(
    environ: Mapping[str, str], requested: bool
) -> None:
    assert cli.tracing_requested(environ) is requested


@pytest.mark.parametrize(
    ("environ", "problem"),
    [
        ({"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}, "OTEL_EXPORTER_OTLP_PROTOCOL must be"),
        ({"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/json"}, "_TRACES_PROTOCOL must be"),
        ({"OTEL_TRACES_EXPORTER": "console"}, "OTEL_TRACES_EXPORTER must be otlp or none"),
        ({"OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf"}, None),
    ],
)
def test_an_exporter_we_do_not_ship_is_a_configuration_problem(
    environ: dict[str, Any], problem: str | None
) -> None:
    found = cli.tracing_problem({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", **environ})
    assert (found is None) if problem is None else (problem in str(found))
    assert cli.tracing_problem(environ) is None  # traces off: nothing to check
