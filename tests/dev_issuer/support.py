"""Drive the dev issuer from Python: start it as a subprocess, submit its HTML forms with httpx.

The issuer is started with ``--port 0`` so the operating system picks a free port; the port,
issuer URL and seeded users come from the one JSON line it prints on stdout when ready.
"""

from __future__ import annotations

import json
import selectors
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import IO, Any
from urllib.parse import urljoin

import httpx
import pytest
from logto import Storage

ROOT = Path(__file__).resolve().parents[2]
ISSUER_DIR = ROOT / "dev_issuer"
MAIN = ISSUER_DIR / "src" / "main.js"
SHOPPING = "https://shopping.your-app.com/api"
STORE = "https://store.your-app.com/api"
CLIENT_ID = "dev-traditional-web"
CLIENT_SECRET = "dev-traditional-web-secret"
READY_TIMEOUT = 30.0


class DevIssuerError(RuntimeError):
    """The dev issuer could not be started or answered something unexpected."""


@dataclass
class DevIssuer:
    """A running dev issuer subprocess and what its ready line said."""

    process: subprocess.Popen[str]
    stderr: IO[str]
    ready: dict[str, Any]
    client_port: int

    @property
    def endpoint(self) -> str:
        """The tenant endpoint the SDK is configured with (issuer without ``/oidc``)."""
        return str(self.ready["endpoint"])

    @property
    def issuer(self) -> str:
        return str(self.ready["issuer"])

    @property
    def redirect_uri(self) -> str:
        return f"http://127.0.0.1:{self.client_port}/callback"

    @property
    def post_logout_redirect_uri(self) -> str:
        return f"http://127.0.0.1:{self.client_port}/"

    def user_id(self, username: str) -> str:
        """The seeded id of a user."""
        return next(str(u["id"]) for u in self.ready["users"] if u["username"] == username)

    def password(self, username: str) -> str:
        """The documented password of a seeded user."""
        return next(str(u["password"]) for u in self.ready["users"] if u["username"] == username)

    def stop(self) -> None:
        """Terminate the subprocess (kill it if it does not stop) and close its pipes."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        if self.process.stdout is not None:
            self.process.stdout.close()
        self.stderr.close()


def _read_ready_line(process: subprocess.Popen[str], stderr: IO[str]) -> dict[str, Any]:
    assert process.stdout is not None
    deadline = time.monotonic() + READY_TIMEOUT
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        while time.monotonic() < deadline:
            if selector.select(timeout=0.2):
                line = process.stdout.readline()
                if line:
                    ready: dict[str, Any] = json.loads(line)
                    if ready.get("event") == "ready":
                        return ready
            if process.poll() is not None:
                break
    stderr.seek(0)
    raise DevIssuerError(f"the dev issuer did not get ready:\n{stderr.read()}")


def start_dev_issuer(*extra_args: str, client_port: int = 8765) -> DevIssuer:
    """Start ``node dev_issuer/src/main.js`` on a free port and wait for its ready line."""
    node = shutil.which("node")
    if node is None:
        raise DevIssuerError("Node.js is not on PATH; the dev issuer needs Node 20 or newer")
    if not (ISSUER_DIR / "node_modules" / "oidc-provider").is_dir():
        raise DevIssuerError("dev_issuer's packages are missing: run `cd dev_issuer && npm ci`")
    stderr = tempfile.TemporaryFile(mode="w+", encoding="utf-8")  # noqa: SIM115 - closed in stop()
    args = [node, str(MAIN), "--port", "0", "--client-port", str(client_port), *extra_args]
    process = subprocess.Popen(  # noqa: S603 - fixed program and arguments
        args, stdout=subprocess.PIPE, stderr=stderr, stdin=subprocess.DEVNULL, text=True
    )
    try:
        ready = _read_ready_line(process, stderr)
    except BaseException:
        DevIssuer(process, stderr, {}, client_port).stop()
        raise
    return DevIssuer(process, stderr, ready, client_port)


class DictStorage(Storage):  # type: ignore[misc]  # the SDK ships no type information
    """The SDK's Storage interface over a plain dict: one instance per signed-in user."""

    def __init__(self) -> None:
        self.data: dict[str, str | None] = {}

    def get(self, key: str) -> str | None:
        return self.data.get(key)

    def set(self, key: str, value: str | None) -> None:
        self.data[key] = value

    def delete(self, key: str) -> None:
        self.data.pop(key, None)


@dataclass
class Form:
    """The first <form> of a page: where it posts and its input fields."""

    action: str
    fields: dict[str, str] = field(default_factory=dict)


class _FormParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.form: Form | None = None
        self._inside = False
        self._done = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {name: value or "" for name, value in attrs}
        if tag == "form" and not self._done:
            self.form = Form(action=values.get("action", ""))
            self._inside = True
        elif tag == "input" and self._inside and self.form is not None and "name" in values:
            self.form.fields[values["name"]] = values.get("value", "")

    def handle_endtag(self, tag: str) -> None:
        if tag == "form" and self._inside:
            self._inside = False
            self._done = True


def parse_form(html: str, page_url: str) -> Form:
    """The first form of ``html`` with its action made absolute."""
    parser = _FormParser()
    parser.feed(html)
    if parser.form is None:
        raise DevIssuerError(f"no form on {page_url}")
    return Form(action=urljoin(page_url, parser.form.action), fields=parser.form.fields)


@dataclass
class Landing:
    """Where following redirects stopped: a page, or a redirect to ``stop_at``."""

    response: httpx.Response
    redirected_to: str | None = None


async def follow(
    http: httpx.AsyncClient, response: httpx.Response, *, stop_at: str, max_hops: int = 20
) -> Landing:
    """Follow redirects by hand until a page, or until one leaves for ``stop_at``."""
    for _ in range(max_hops):
        if not response.is_redirect:
            return Landing(response)
        location = urljoin(str(response.url), response.headers["location"])
        if location.startswith(stop_at):
            return Landing(response, location)
        response = await http.get(location)
    raise DevIssuerError("too many redirects")


async def submit_sign_in(
    http: httpx.AsyncClient, sign_in_url: str, *, stop_at: str, form_values: dict[str, str]
) -> str:
    """Open the sign-in URL, fill in the (sign-in or registration) form, return the callback URL."""
    landing = await follow(http, await http.get(sign_in_url), stop_at=stop_at)
    if landing.redirected_to is None:
        form = parse_form(landing.response.text, str(landing.response.url))
        posted = await http.post(form.action, data={**form.fields, **form_values})
        landing = await follow(http, posted, stop_at=stop_at)
    if landing.redirected_to is None:
        status = landing.response.status_code
        raise DevIssuerError(
            f"sign-in did not return to the app ({status}): {landing.response.text}"
        )
    return landing.redirected_to


@pytest.fixture(scope="module", name="dev_issuer")
def dev_issuer_fixture() -> Iterator[DevIssuer]:
    """A dev issuer on a free port, in development mode, stopped after the module."""
    issuer = start_dev_issuer("--development")
    try:
        yield issuer
    finally:
        issuer.stop()
