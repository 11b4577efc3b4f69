"""A browser made of httpx: one cookie jar, redirects followed, forms submitted as they are.

Forms are posted with every field the page put in them (the client app's CSRF token, the
issuer's ``xsrf``) plus the values a person would type, and with the ``Origin`` header a
browser sends. The issuer's sign-in page is read with ``tests/dev_issuer/support.parse_form``.
"""

from __future__ import annotations

import ssl
from collections.abc import Mapping
from types import TracebackType
from urllib.parse import urlsplit

import httpx

from tests.dev_issuer.support import parse_form
from tests.e2e.pages import Page

MAX_REDIRECTS = 20


class Browser:
    """One person's browser on the client app at ``base_url``."""

    def __init__(self, base_url: str, *, verify: ssl.SSLContext | bool = True) -> None:
        self.base_url = base_url.rstrip("/")
        self.http = httpx.Client(
            follow_redirects=True, max_redirects=MAX_REDIRECTS, timeout=20.0, verify=verify
        )

    def __enter__(self) -> Browser:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.http.close()

    def get(self, path_or_url: str) -> Page:
        """Open a page (a path of the client app, or any URL)."""
        return Page.of(self.http.get(self._absolute(path_or_url)))

    def submit(self, page: Page, action: str | None = None, **values: str) -> Page:
        """Fill in the form of ``page`` posting to ``action`` and send it."""
        form = page.form(action)
        return self.post(form.action, {**form.fields, **values})

    def post(self, url: str, data: Mapping[str, str]) -> Page:
        """POST a form as a browser does (with ``Origin``)."""
        origin = "{0.scheme}://{0.netloc}".format(urlsplit(url))
        response = self.http.post(url, data=dict(data), headers={"Origin": origin})
        return Page.of(response)

    def sign_in(self, username: str, password: str, *, path: str = "/sign-in") -> Page:
        """Click "Sign in", fill in the issuer's form, land back on the client app."""
        response = self.http.get(self._absolute(path))
        if str(response.url).startswith(self.base_url):
            raise AssertionError(f"the issuer asked for no credentials: landed on {response.url}")
        form = parse_form(response.text, str(response.url))
        landed = self.post(
            form.action, {**form.fields, "identifier": username, "password": password}
        )
        if not landed.url.startswith(self.base_url):
            raise AssertionError(f"sign-in did not return to the app: {landed.url} {landed.text}")
        return landed

    def sign_out(self, page: Page) -> Page:
        """Press "Sign out" on ``page``, then confirm on the issuer's sign-out page."""
        issuer_page = self.submit(page, "/sign-out")
        if issuer_page.url.startswith(self.base_url):
            return issuer_page  # nothing to end at the issuer
        return self.submit(issuer_page)

    def cookie(self, name: str) -> str | None:
        """The value of a cookie the client app set."""
        return self.http.cookies.get(name)

    def _absolute(self, path_or_url: str) -> str:
        return path_or_url if "://" in path_or_url else f"{self.base_url}{path_or_url}"
