"""The command itself, as a user runs it: ``python -m litestar_logto explain``."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.dev_issuer.support import ROOT, STORE
from tests.explain.conftest import Tokens, parts

COMMAND = [sys.executable, "-m", "litestar_logto", "explain"]


def _run(
    *args: str, stdin: str = "", env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    environment = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(ROOT), **(env or {})}
    return subprocess.run(  # noqa: S603 - our own module
        [*COMMAND, *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=environment,
        cwd=ROOT,
        timeout=60,
        check=False,
    )


def _never_shows(token: str, *outputs: str) -> None:
    for output in outputs:
        assert token not in output
        for part in parts(token)[1:]:
            assert part not in output


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_token_as_argument_and_route(tokens: Tokens) -> None:
    done = _run(
        tokens.m2m,
        "GET",
        "/store/products",
        "--scope",
        "store:read",
        env={"LOGTO_ENDPOINT": tokens.issuer.endpoint, "STORE_RESOURCE": STORE},
    )
    assert (done.returncode, done.stderr) == (0, "")
    assert "Route: GET /store/products needs scope store:read" in done.stdout
    assert "ACCEPTED (200)" in done.stdout
    _never_shows(tokens.m2m, done.stdout, done.stderr)


@pytest.mark.parametrize("dash", [True, False])
def test_token_on_stdin_with_a_bearer_prefix(tokens: Tokens, dash: bool) -> None:
    args = ["-"] if dash else []
    done = _run(
        *args,
        "--scope",
        "store:write",
        stdin=f"Authorization: Bearer {tokens.m2m}\n",
        env={"LOGTO_ENDPOINT": tokens.issuer.endpoint, "STORE_RESOURCE": STORE},
    )
    assert done.returncode == 1, done.stderr
    assert "FAIL  scopes" in done.stdout
    assert "scope store:write missing" in " ".join(done.stdout.split())
    _never_shows(tokens.m2m, done.stdout, done.stderr)


def test_json_output(tokens: Tokens) -> None:
    done = _run(
        "--json",
        "--endpoint",
        tokens.issuer.endpoint,
        "--audience",
        STORE,
        stdin=tokens.organization,
    )
    assert done.returncode == 1
    explanation = json.loads(done.stdout)
    assert (explanation["accepted"], explanation["status"]) == (False, 401)
    assert explanation["reason"] == "wrong_audience"
    assert [c["name"] for c in explanation["checks"]][:3] == ["structure", "alg", "typ"]
    _never_shows(tokens.organization, done.stdout, done.stderr)


def test_offline_with_a_jwks_file_and_no_network(tokens: Tokens, tmp_path: Path) -> None:
    """Offline: the endpoint only names the issuer; no socket is opened."""
    endpoint = f"http://127.0.0.1:{_closed_port()}"
    done = _run(
        "--jwks",
        str(tokens.jwks_file),
        "--endpoint",
        endpoint,
        "--audience",
        STORE,
        stdin=tokens.m2m,
    )
    assert done.returncode == 1
    assert "FAIL  iss" in done.stdout
    assert f"API expects {endpoint}/oidc" in done.stdout
    missing = _run(
        "--jwks",
        str(tmp_path / "none.json"),
        "--endpoint",
        endpoint,
        "--audience",
        STORE,
        stdin=tokens.m2m,
    )
    assert missing.returncode == 2
    assert "cannot read the JWKS file" in missing.stderr


def test_unreachable_issuer_exits_3(tokens: Tokens) -> None:
    done = _run(
        "--endpoint",
        f"http://127.0.0.1:{_closed_port()}",
        "--audience",
        STORE,
        "--timeout",
        "3",
        stdin=tokens.m2m,
    )
    assert done.returncode == 3
    assert "cannot get the issuer's keys" in done.stderr
    assert "Traceback" not in done.stderr
    _never_shows(tokens.m2m, done.stdout, done.stderr)


def test_no_usable_key_for_the_allowed_algorithms_exits_3(tokens: Tokens) -> None:
    done = _run(
        "--endpoint",
        tokens.issuer.endpoint,
        "--audience",
        STORE,
        "--algorithms",
        "RS256",
        stdin=tokens.m2m,
    )
    assert done.returncode == 3
    assert "holds no key the API can use" in done.stderr


@pytest.mark.parametrize(
    ("args", "env", "says"),
    [
        ([], {"STORE_RESOURCE": STORE}, "no issuer"),
        (["--endpoint", "http://127.0.0.1:1/oidc"], {"STORE_RESOURCE": STORE}, "without /oidc"),
        (["--endpoint", "http://127.0.0.1:1"], {}, "no API resource indicator"),
        (
            ["--endpoint", "http://127.0.0.1:1", "--audience", STORE, "--leeway", "x"],
            {},
            "leeway must be a number",
        ),
        (
            ["--endpoint", "http://127.0.0.1:1", "--audience", STORE, "--algorithms", "HS256"],
            {},
            "allowed algorithms",
        ),
        (
            ["--endpoint", "http://127.0.0.1:1", "--audience", STORE, "GET"],
            {},
            "expected [TOKEN|-] [METHOD PATH]",
        ),
    ],
)
def test_usage_errors_exit_2_without_echoing_the_token(
    tokens: Tokens, args: list[str], env: dict[str, str], says: str
) -> None:
    done = _run(*args, stdin=tokens.m2m, env=env)
    assert done.returncode == 2
    assert says in done.stderr
    assert "Traceback" not in done.stderr
    _never_shows(tokens.m2m, done.stdout, done.stderr)


def test_no_token_exits_2() -> None:
    done = _run("--endpoint", "http://127.0.0.1:1", "--audience", STORE, stdin="\n")
    assert (done.returncode, done.stdout) == (2, "")
    assert "no token given" in done.stderr
