"""Read the ``Bearer`` challenge of a ``WWW-Authenticate`` header (RFC 9110 §11.6.1,
RFC 6750 §3).

The header may hold several challenges (``Basic realm="x", Bearer error="..."``); commas
separate both challenges and their parameters, so the header is scanned token by token: a
token followed by ``=`` is a parameter of the current challenge, any other token starts a new
challenge. Quoted strings are unescaped (RFC 9110 §5.6.4). Anything unparsable ends the scan
with what was read so far: a hostile header can make this return less, never raise.
"""

from __future__ import annotations

import re
from typing import Final

_TCHARS: Final = r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
_QUOTED: Final = r'"(?:[^"\\]|\\.)*"'
_SCHEME: Final = re.compile(rf"[\s,]*({_TCHARS})(?=\s|,|$)")
_PARAM: Final = re.compile(rf"[\s,]*({_TCHARS})[ \t]*=[ \t]*({_TCHARS}|{_QUOTED})[ \t]*(?=,|$)")
_TOKEN68: Final = re.compile(r"[ \t]+[A-Za-z0-9\-._~+/]+=*[ \t]*(?=,|$)")
_ESCAPE: Final = re.compile(r"\\(.)")
MAX_HEADER_LENGTH: Final = 8192


def parse_challenges(header: str) -> list[tuple[str, dict[str, str]]]:
    """Every challenge of ``header`` as ``(scheme in lower case, {parameter: value})``."""
    challenges: list[tuple[str, dict[str, str]]] = []
    text = header[:MAX_HEADER_LENGTH]
    position = 0
    while (scheme := _SCHEME.match(text, position)) is not None:
        params: dict[str, str] = {}
        position = scheme.end()
        if token68 := _TOKEN68.match(text, position):
            position = token68.end()
        while (param := _PARAM.match(text, position)) is not None:
            value = param.group(2)
            if value.startswith('"'):
                value = _ESCAPE.sub(r"\1", value[1:-1])
            params.setdefault(param.group(1).lower(), value)
            position = param.end()
        challenges.append((scheme.group(1).lower(), params))
    return challenges


def bearer_params(header: str | None) -> dict[str, str]:
    """The parameters of the first ``Bearer`` challenge (empty if there is none)."""
    for scheme, params in parse_challenges(header or ""):
        if scheme == "bearer":
            return params
    return {}


def missing_scopes(header: str | None) -> tuple[str, ...]:
    """The scopes an ``insufficient_scope`` challenge says are needed (RFC 6750 §3)."""
    return tuple(bearer_params(header).get("scope", "").split())
