"""One ``Idempotency-Key`` per rendered form.

Each rendering of a form that creates something (an order, a product) carries a fresh random
key in a hidden field; the POST handler sends it to the resource API as ``Idempotency-Key``.
Submitting the same rendered form again (a double click, the browser's resubmit, a retry after
the API's answer was lost) sends the same key, and the API answers with the first result instead
of creating a second one. A re-rendered form (after an error) keeps its key, except when the API
says the key went with other values: then the page gets a fresh one.
"""

from __future__ import annotations

import re
import secrets
from typing import Final

FIELD: Final = "idempotency_key"
_KEY: Final = re.compile(r"[A-Za-z0-9_-]{32,64}")


def new_form_key() -> str:
    """A fresh key: 256 random bits, URL-safe base64 (43 characters)."""
    return secrets.token_urlsafe(32)


def submitted_key(value: str) -> str | None:
    """The key a form came back with, if it is one this app renders (anything else, e.g. a
    form posted by a script without the field, is sent without a key)."""
    return value if _KEY.fullmatch(value) else None
