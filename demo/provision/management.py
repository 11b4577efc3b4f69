"""A small client of Logto's Management API: the M2M token, JSON calls, every page of a list,
and each failure turned into one plain sentence (:class:`ProvisionError`).

The token (Logto OSS): ``POST <endpoint>/oidc/token`` with ``grant_type=client_credentials``,
``resource=https://default.logto.app/api``, ``scope=all``, the M2M app authenticating with
HTTP Basic (RFC 6749 section 2.3.1: id and secret form-urlencoded first). Lists are paged
(``page`` from 1, ``page_size`` at most 100, the total in the ``Total-Number`` header; Logto's
``middleware/koa-pagination.ts``).

The M2M secret goes into the token request's Authorization header and nowhere else: no message
of this module contains it (nor a request header or body).
"""

from __future__ import annotations

import base64
from http import HTTPStatus
from typing import Final, TypeVar
from urllib.parse import quote

import httpx
import msgspec

MANAGEMENT_API: Final = "https://default.logto.app/api"
MANAGEMENT_ROLE: Final = "Logto Management API access"
PAGE_SIZE: Final = 100
T = TypeVar("T")


class ProvisionError(Exception):
    """Provisioning cannot go on; the message says why and what to do, and holds no secret."""


class _LogtoError(msgspec.Struct):
    """Logto's error body (``errors/RequestError``)."""

    code: str = ""
    message: str = ""


class _OAuthError(msgspec.Struct):
    """oidc-provider's error body."""

    error: str = ""
    error_description: str = ""


class _Token(msgspec.Struct):
    access_token: str


def _reason(response: httpx.Response) -> str:
    """``" (code: message)"`` from a Logto or OAuth error body, else ``""``."""
    try:
        logto = msgspec.json.decode(response.content, type=_LogtoError)
    except msgspec.MsgspecError:
        logto = _LogtoError()
    try:
        oauth = msgspec.json.decode(response.content, type=_OAuthError)
    except msgspec.MsgspecError:
        oauth = _OAuthError()
    code = logto.code or oauth.error
    message = (logto.message or oauth.error_description)[:200]
    if not code and not message:
        return ""
    return f" ({': '.join(part for part in (code, message) if part)})"


class ManagementApi:
    """Calls to one Logto's Management API with one M2M application's token."""

    def __init__(self, endpoint: str, http: httpx.Client) -> None:
        self.endpoint = endpoint.rstrip("/")
        self._http = http
        self._token: str | None = None

    # -- the token ---------------------------------------------------------------------------

    def authenticate(self, client_id: str, client_secret: str) -> None:
        """Get the Management API token (``POST /oidc/token``)."""
        url = f"{self.endpoint}/oidc/token"
        basic = base64.b64encode(
            f"{quote(client_id, safe='')}:{quote(client_secret, safe='')}".encode()
        ).decode()
        response = self._send(
            "POST",
            url,
            headers={"Authorization": f"Basic {basic}"},
            data={"grant_type": "client_credentials", "resource": MANAGEMENT_API, "scope": "all"},
        )
        reason = _reason(response)
        if response.status_code == HTTPStatus.UNAUTHORIZED or "invalid_client" in reason:
            raise ProvisionError(
                f"Logto refused the M2M application's credentials{reason}: LOGTO_M2M_APP_ID and "
                "LOGTO_M2M_APP_SECRET must be the App ID and an App secret of a "
                "machine-to-machine application of this Logto (Console → Applications)"
            )
        if response.status_code == HTTPStatus.BAD_REQUEST and (
            "invalid_scope" in reason or "invalid_target" in reason
        ):
            raise ProvisionError(
                f"Logto will not give this M2M application a Management API token{reason}: "
                f"assign it the role '{MANAGEMENT_ROLE}' (Console → Applications → the app → Roles)"
            )
        if response.status_code != HTTPStatus.OK:
            raise ProvisionError(
                f"{url} answered {response.status_code}{reason} instead of a token: is "
                f"LOGTO_ENDPOINT ({self.endpoint}) Logto's core URL (the issuer without /oidc)?"
            )
        try:
            self._token = msgspec.json.decode(response.content, type=_Token).access_token
        except msgspec.MsgspecError:
            raise ProvisionError(
                f"{url} answered without an access token: is LOGTO_ENDPOINT ({self.endpoint}) "
                "Logto's core URL?"
            ) from None

    # -- calls -------------------------------------------------------------------------------

    def get(self, path: str, kind: type[T]) -> T:
        return self._decode(self.call("GET", path), kind, f"GET {path}")

    def post(self, path: str, body: object, kind: type[T]) -> T:
        return self._decode(self.call("POST", path, body), kind, f"POST {path}")

    def patch(self, path: str, body: object) -> None:
        self.call("PATCH", path, body)

    def put(self, path: str, body: object) -> None:
        self.call("PUT", path, body)

    def delete(self, path: str) -> None:
        self.call("DELETE", path)

    def list(self, path: str, kind: type[T]) -> list[T]:
        """Every item of a paged list, page by page until ``Total-Number`` are read."""
        items: list[T] = []
        page = 1
        while True:
            params = {"page": str(page), "page_size": str(PAGE_SIZE)}
            response = self.call("GET", path, params=params)
            chunk = self._decode(response, list[kind], f"GET {path}")  # type: ignore[valid-type]
            items.extend(chunk)
            try:
                total = int(response.headers["Total-Number"])
            except (KeyError, ValueError):
                return items  # not paged: everything came at once
            if not chunk or len(items) >= total:
                return items
            page += 1

    def call(
        self,
        method: str,
        path: str,
        body: object = None,
        *,
        params: dict[str, str] | None = None,
        accept: tuple[int, ...] = (),
    ) -> httpx.Response:
        """One authenticated call; a status outside 2xx (and ``accept``) is an error."""
        if self._token is None:
            msg = "authenticate() first"
            raise RuntimeError(msg)
        response = self._send(
            method,
            f"{self.endpoint}{path}",
            headers={"Authorization": f"Bearer {self._token}"},
            params=params,
            content=None if body is None else msgspec.json.encode(body),
            json_body=body is not None,
        )
        status = response.status_code
        if HTTPStatus.OK <= status < HTTPStatus.MULTIPLE_CHOICES or status in accept:
            return response
        call, reason = f"{method} {path}", _reason(response)
        if status == HTTPStatus.UNAUTHORIZED:
            raise ProvisionError(f"Logto refused the Management API token for {call} (401){reason}")
        if status == HTTPStatus.FORBIDDEN:
            raise ProvisionError(
                f"Logto answered 403{reason} to {call}: the M2M application may not use the "
                f"Management API. Assign it the role '{MANAGEMENT_ROLE}' (Console → "
                "Applications → the app → Roles), then run this again"
            )
        if status >= HTTPStatus.INTERNAL_SERVER_ERROR:
            raise ProvisionError(f"Logto answered {status}{reason} to {call}; see Logto's log")
        raise ProvisionError(f"Logto refused {call}: {status}{reason}")

    def _send(
        self,
        method: str,
        url: str,
        *,
        headers: dict[str, str],
        params: dict[str, str] | None = None,
        data: dict[str, str] | None = None,
        content: bytes | None = None,
        json_body: bool = False,
    ) -> httpx.Response:
        if json_body:
            headers = {**headers, "Content-Type": "application/json"}
        try:
            return self._http.request(
                method, url, headers=headers, params=params, data=data, content=content
            )
        except httpx.TransportError as exc:
            raise ProvisionError(
                f"cannot reach Logto at {self.endpoint}: {type(exc).__name__}"
                f"{f' ({exc})' if str(exc) else ''}"
            ) from None

    @staticmethod
    def _decode(response: httpx.Response, kind: type[T], call: str) -> T:
        try:
            return msgspec.json.decode(response.content, type=kind)
        except msgspec.MsgspecError as exc:
            raise ProvisionError(
                f"Logto's answer to {call} is not what it should be: {exc}"
            ) from None
