"""Asking again for a missing permission ("step-up"), framework-free.

Logto computes an access token's scopes from the user's roles *when it issues the token*
(``logto-tokens.md`` §3): a role given to the user after the current token was issued shows up
in the next one, and the next one can be had with the refresh token, without signing in again.
When the API refuses with ``insufficient_scope`` (its 403 names the missing permission), the
page offers "Check my permissions again" (:class:`RecheckOffer`, a POST form with the CSRF
token). Its handler drops that one cached token and gets a new one
(:meth:`client_app.gateway.LogtoGateway.recheck_token`), then sends the browser back to the page
with ``?checked=<permissions>&target=<token>``; the page tells, from the token it holds now,
whether each permission is granted (:func:`permission_notice`). A forged link can only make a
page report the truth about the visitor's own token.

Bounded: a session checks a given token at most once per :data:`CHECK_INTERVAL_SECONDS`
(:func:`claim_check`, recorded in the session document under the session's lock, so replicas
sharing sessions share the limit too); sooner is a 429 (:class:`~client_app.errors.CheckTooSoon`).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final
from urllib.parse import urlencode

from .errors import CheckTooSoon
from .logto_client import API_SCOPES
from .sessions import SessionData

CHECK_INTERVAL_SECONDS: Final = 5.0
"""At most one check per session and token this often (the issuer is not to be hammered)."""
CHECKS_KEY: Final = "permissionChecks"
"""Where a session's recent checks are kept: ``{token cache key: unix time}`` as JSON."""
MAX_CHECKED_SCOPES: Final = len(API_SCOPES)
KNOWN_SCOPES: Final = frozenset(API_SCOPES)
"""The permissions a check may name: those this app's pages use (nothing else is echoed)."""


def known_scopes(value: str | None) -> tuple[str, ...] | None:
    """The permissions of a space-separated ``value``, each one this app uses, in order and
    without repeats; ``None`` when empty, too long or naming anything else."""
    names = tuple(dict.fromkeys((value or "").split()))
    if not 0 < len(names) <= MAX_CHECKED_SCOPES or not KNOWN_SCOPES.issuperset(names):
        return None
    return names


@dataclass(frozen=True, slots=True)
class RecheckOffer:
    """The "Check my permissions again" form: which token, which permissions, where back."""

    resource: str
    """The API resource indicator, or ``""`` for an organization token."""
    organization_id: str
    """The organization, or ``""`` for a global API token."""
    scopes: tuple[str, ...]
    return_to: str

    @property
    def scope(self) -> str:
        """The permissions as the form sends them."""
        return " ".join(self.scopes)


def recheck_offer(
    missing_scopes: Iterable[str],
    *,
    resource: str | None,
    organization_id: str | None = None,
    return_to: str,
) -> RecheckOffer | None:
    """The offer for a refusal naming ``missing_scopes`` (none: nothing to offer)."""
    scopes = known_scopes(" ".join(missing_scopes))
    if scopes is None:
        return None
    return RecheckOffer(resource or "", organization_id or "", scopes, return_to)


def checked_location(return_to: str, scopes: Iterable[str], cache_key: str) -> str:
    """Where a finished check sends the browser: its page, told what was checked."""
    separator = "&" if "?" in return_to else "?"
    return f"{return_to}{separator}{urlencode({'checked': ' '.join(scopes), 'target': cache_key})}"


@dataclass(frozen=True, slots=True)
class PermissionNotice:
    """What the page says after a check: which permissions the current token grants now."""

    granted: tuple[str, ...]
    missing: tuple[str, ...]
    organization_id: str | None = None

    @property
    def kind(self) -> str:
        """The alert's kind: success once nothing is missing."""
        return "warning" if self.missing else "success"

    @property
    def message(self) -> str:
        """The sentence shown: granted, or what is missing and who can grant it."""
        if not self.missing:
            return f"{_permissions(self.granted)} now granted. You can try again."
        missing = " ".join(self.missing)
        if self.organization_id is None:
            who = (
                "An administrator can grant it in Logto's Console: User management → your user "
                f"→ Roles, assign a role that includes {missing}."
            )
        else:
            who = (
                f"An administrator of organization {self.organization_id} can grant it in "
                f"Logto's Console: Organizations → {self.organization_id} → Members, give you "
                f"a role that includes {missing}."
            )
        still = f"{_permissions(self.missing)} still missing from your new access token."
        granted = f" ({_permissions(self.granted)} granted.)" if self.granted else ""
        return f"{still}{granted} {who} Then check again."


def _permissions(names: tuple[str, ...]) -> str:
    if len(names) == 1:
        return f"Permission {names[0]} is"
    return f"Permissions {', '.join(names)} are"


def permission_notice(
    checked: str | None,
    target: str | None,
    *,
    cache_key: str,
    token_scopes: Iterable[str],
    organization_id: str | None = None,
) -> PermissionNotice | None:
    """The notice for a page whose token (``cache_key``) grants ``token_scopes``, when the
    query says a check of that token's ``checked`` permissions just happened."""
    names = known_scopes(checked)
    if names is None or target != cache_key:
        return None
    held = set(token_scopes)
    return PermissionNotice(
        tuple(n for n in names if n in held),
        tuple(n for n in names if n not in held),
        organization_id,
    )


def claim_check(
    data: SessionData,
    cache_key: str,
    now: float,
    interval: float = CHECK_INTERVAL_SECONDS,
) -> None:
    """Record a check of ``cache_key`` at ``now`` in the session, or raise
    :class:`~client_app.errors.CheckTooSoon` if the last one is less than ``interval`` ago.
    Checks older than ``interval`` are forgotten (the record stays small)."""
    checks = _recent_checks(data)
    last = checks.get(cache_key)
    if last is not None and 0 <= now - last < interval:
        raise CheckTooSoon(math.ceil(interval - (now - last)))
    kept = {key: at for key, at in checks.items() if 0 <= now - at < interval}
    kept[cache_key] = now
    data.set(CHECKS_KEY, json.dumps(kept, separators=(",", ":")))


def _recent_checks(data: SessionData) -> dict[str, float]:
    """The recorded checks (an unreadable record counts as none)."""
    try:
        raw = json.loads(data.get(CHECKS_KEY) or "{}")
    except ValueError:
        return {}
    if not isinstance(raw, dict):
        return {}
    return {
        key: float(at)
        for key, at in raw.items()
        if isinstance(at, int | float) and not isinstance(at, bool)
    }
