"""Talking to the issuer: JSON over the injected httpx client, and what can go wrong.

Every call is bounded by a timeout as a whole (``logto-tokens.md`` §6.11: the SDK has none) and
authenticates the client with ``client_secret_basic`` (RFC 6749 §2.3.1; the SDK posts
``client_secret`` in the body, and the literal ``None`` without a secret: §6.6). Failures are
:class:`~logto.LogtoException` subclasses, so the SDK's own flow passes them through unchanged;
``client_app.translation`` turns them into what the user reads::

    LogtoException (the SDK's)
    ├── IssuerUnreachable     transport failure or timeout (``reason``)
    ├── OAuthError            an RFC 6749 §5.2 error answer (``status``, ``error``, ``description``)
    ├── UnexpectedAnswer      not the document the protocol defines
    ├── InvalidIdToken        an ID token failed verification
    └── MissingClientSecret   nothing is sent without a secret
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Mapping
from typing import Any, Final
from urllib.parse import quote_plus

import httpx
from logto import LogtoException

_JSON: Final = {"Accept": "application/json"}


class IssuerUnreachable(LogtoException):  # type: ignore[misc]  # the SDK ships no type information
    """The issuer could not be reached or did not answer in time."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(f"the issuer could not be reached ({reason})")


class OAuthError(LogtoException):  # type: ignore[misc]
    """The issuer answered an OAuth error (RFC 6749 §5.2): status, code and description."""

    def __init__(self, status: int, error: str, description: str) -> None:
        self.status = status
        self.error = error
        self.description = description
        super().__init__(f"{error}: {description}" if description else error)


class UnexpectedAnswer(LogtoException):  # type: ignore[misc]
    """The issuer answered something that is not the document the protocol defines."""

    def __init__(self, what: str) -> None:
        self.what = what
        super().__init__(f"unexpected answer from the issuer: {what}")


class InvalidIdToken(LogtoException):  # type: ignore[misc]
    """An ID token failed verification (signature, issuer, audience or lifetime)."""


class MissingClientSecret(LogtoException):  # type: ignore[misc]
    """No client secret: a traditional web app must authenticate at the token endpoint."""


def basic_authorization(client_id: str, client_secret: str | None) -> str:
    """``Authorization: Basic`` for RFC 6749 §2.3.1: both parts form-urlencoded first."""
    if not client_secret:
        raise MissingClientSecret("the client secret is required")
    credentials = f"{quote_plus(client_id)}:{quote_plus(client_secret)}"
    return "Basic " + base64.b64encode(credentials.encode()).decode("ascii")


class IssuerHttp:
    """JSON over the injected client, each call bounded by ``timeout`` seconds in total."""

    def __init__(self, http_client: httpx.AsyncClient, timeout: float) -> None:
        self.http = http_client
        self.timeout = timeout

    async def request(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        form: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        """Send one request; transport failures and timeouts become :class:`IssuerUnreachable`."""
        try:
            async with asyncio.timeout(self.timeout):
                return await self.http.request(
                    method, url, headers={**_JSON, **(headers or {})}, data=form,
                    timeout=self.timeout,
                )  # fmt: skip
        except (TimeoutError, httpx.TimeoutException) as exc:
            raise IssuerUnreachable("timeout") from exc
        except httpx.HTTPError as exc:
            raise IssuerUnreachable(type(exc).__name__) from exc

    async def json(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        form: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        """The JSON object of a 200 answer; an error answer raises :class:`OAuthError`."""
        response = await self.request(method, url, headers=headers, form=form)
        if response.status_code != httpx.codes.OK:
            raise oauth_error(response)
        return _json_object(response, url)


def _json_object(response: httpx.Response, what: str) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError as exc:
        raise UnexpectedAnswer(f"{what} is not JSON") from exc
    if not isinstance(body, dict):
        raise UnexpectedAnswer(f"{what} is not a JSON object")
    return body


def oauth_error(response: httpx.Response) -> OAuthError:
    """The :class:`OAuthError` of an error answer (``http_<status>`` if it has no code)."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("error"), str):
        description = body.get("error_description")
        return OAuthError(
            response.status_code, body["error"], description if isinstance(description, str) else ""
        )
    return OAuthError(response.status_code, f"http_{response.status_code}", "")
