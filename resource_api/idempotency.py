"""``Idempotency-Key`` (IETF httpapi draft ``draft-ietf-httpapi-idempotency-key-header``): the
framework-free part.

A client that may send a ``POST`` twice (a double click, a retry after a timeout) sends the same
key with each copy; the API creates once and answers every copy with the first answer:

* same key, same body (same route, same subject) -> the first answer again (``201`` and its
  body, marked ``Idempotent-Replayed: true``);
* same key, another body -> ``422``;
* same key while the first request is still being processed -> ``409``;
* keys are kept :data:`RETENTION_SECONDS` (24 h), scoped per subject and per route, then purged.

This module parses the header and describes an attempt; the :class:`~resource_api.storage.Store`
claims keys and records the answer in the same transaction as the write it answers.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Final

import msgspec

MAX_KEY_LENGTH: Final = 255
RETENTION_SECONDS: Final = 24 * 3600
"""How long a key and its answer are kept (the draft asks for a documented expiry)."""
CLAIM_SECONDS: Final = 60.0
"""How long a claim holds a key without an answer: a claim older than this was abandoned (its
process crashed between the claim and the write) and the next request with the key takes over."""

# RFC 8941 sf-string: printable ASCII in double quotes, with \" and \\ as the only escapes.
_SF_STRING: Final = re.compile(r'"((?:[\x20\x21\x23-\x5b\x5d-\x7e]|\\["\\])*)"')
_SF_ESCAPE: Final = re.compile(r"\\([\"\\])")
# A bare key (as many APIs accept): printable ASCII without quotes or commas (a comma is
# where a second Idempotency-Key header line would have been joined), no outer spaces.
_BARE_KEY: Final = re.compile(
    r"[\x21\x23-\x2b\x2d-\x7e](?:[\x20\x21\x23-\x2b\x2d-\x7e]*[\x21\x23-\x2b\x2d-\x7e])?"
)
_PRINTABLE: Final = re.compile(r"[\x20-\x7e]*")

OPENAPI_PATTERN: Final = (
    r'^(?:"(?:[\x20\x21\x23-\x5b\x5d-\x7e]|\\["\\]){1,255}"'
    r"|[\x21\x23-\x2b\x2d-\x7e](?:[\x20\x21\x23-\x2b\x2d-\x7e]{0,253}[\x21\x23-\x2b\x2d-\x7e])?)$"
)
"""The header's grammar as an OpenAPI ``pattern``: a quoted sf-string or a bare key."""


class InvalidIdempotencyKey(ValueError):
    """The header is not a usable key; the message is safe to show (it never quotes the key)."""


def parse_idempotency_key(value: str) -> str:
    """The key carried by an ``Idempotency-Key`` header value.

    The draft defines the value as a Structured Field String (``"8e03978e-..."``); a bare value
    (``8e03978e-...``) is accepted too. The key is 1 to 255 printable ASCII characters. Two
    header lines (joined with a comma) are refused.
    """
    value = value.strip(" \t")
    if not value:
        raise InvalidIdempotencyKey("The Idempotency-Key header is empty; send a unique key.")
    if not _PRINTABLE.fullmatch(value):
        raise InvalidIdempotencyKey(
            "The Idempotency-Key header must be printable ASCII (no control characters)."
        )
    if value.startswith('"'):
        quoted = _SF_STRING.fullmatch(value)
        if quoted is None:
            raise InvalidIdempotencyKey(
                "The Idempotency-Key header must be one quoted string (send the header once)."
            )
        key = _SF_ESCAPE.sub(r"\1", quoted.group(1))
    elif _BARE_KEY.fullmatch(value):
        key = value
    else:
        raise InvalidIdempotencyKey(
            "The Idempotency-Key header must be one key: quote it if it contains a comma or a "
            "quote (send the header once)."
        )
    if not key:
        raise InvalidIdempotencyKey("The Idempotency-Key header is empty; send a unique key.")
    if len(key) > MAX_KEY_LENGTH:
        raise InvalidIdempotencyKey(
            f"The Idempotency-Key is too long: at most {MAX_KEY_LENGTH} characters."
        )
    return key


def fingerprint(body: msgspec.Struct) -> str:
    """The identity of a request body: SHA-256 of its canonical JSON (the decoded body encoded
    again), so the same document sent with other spacing or key order is the same request."""
    return hashlib.sha256(msgspec.json.encode(body, order="deterministic")).hexdigest()


@dataclass(frozen=True)
class IdempotentRequest:
    """One request carrying a key: whose, to which route, with which body."""

    subject: str
    route: str
    key: str
    fingerprint: str


@dataclass(frozen=True)
class Claimed:
    """The key is ours: do the write (passing this to the store so it records the answer in
    the same transaction), or release the key if the write fails."""

    request: IdempotentRequest
    token: str
    """Identifies this claim: the answer is recorded only while the key is still ours."""


@dataclass(frozen=True)
class Replay:
    """The key was answered before, for the same body: answer ``body`` again."""

    body: bytes


@dataclass(frozen=True)
class KeyReused:
    """The key was used with another body (422)."""


@dataclass(frozen=True)
class InFlight:
    """Another request with the key is still being processed (409)."""


Claim = Claimed | Replay | KeyReused | InFlight


class ClaimLost(Exception):
    """The write's key was taken over before the write (its claim outlived
    :data:`CLAIM_SECONDS`): the write was rolled back."""
