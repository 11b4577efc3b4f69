"""The resource API's own metrics: authentication decisions, the token caches, the key set.

Nothing here runs per request. :class:`~litestar_logto.LogtoAuth` and its verifier and key
set keep plain counters anyway (``auth.decisions``, ``verifier.stats``, ``keys.stats``); the
collector registered by :func:`register` copies them into the registry's series each time a
snapshot is taken. Every label value comes from a fixed set: a reason the code does not list in
:data:`AUTH_REASONS` is counted as ``other``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from litestar_logto import LogtoAuth

from service_kit.metrics import Registry

ACCEPTED: Final = "accepted"
NO_REASON: Final = "none"
OTHER_REASON: Final = "other"
AUTH_STATUSES: Final = frozenset({ACCEPTED, "400", "401", "403", "503"})
AUTH_REASONS: Final = frozenset(
    {
        NO_REASON,
        OTHER_REASON,
        # bearer.py: the Authorization header
        "no_credentials", "other_scheme", "duplicate_authorization", "token_in_query",
        "token_in_body", "empty_credentials", "malformed_credentials", "oversized",
        # verifier.py: structure and header
        "malformed", "bad_base64", "bad_json", "malformed_header", "algorithm_refused",
        "wrong_typ", "crit_header", "bad_kid", "algorithm_key_mismatch", "bad_signature",
        "wrong_audience",
        # claims.py
        "malformed_payload", "wrong_issuer", "expired", "not_yet_valid", "issued_in_future",
        "bad_sub", "bad_client_id", "bad_aud", "bad_scope", "bad_exp", "bad_iat", "bad_nbf",
        "bad_organization_id", "bad_jti", "no_exp", "no_iat",
        # jwks.py: keys
        "unknown_kid", "keys_unavailable", "unknown_kid_cooldown",
        # requirements.py: authorization
        "missing_scope", "no_organization", "wrong_organization", "organization_token",
        "undeclared_route",
    }
)  # fmt: skip
"""Every ``reason`` the auth package raises (a test reads them from its source)."""
FETCH_OUTCOMES: Final = ("ok", "not_modified", "error", "timeout")


def register(registry: Registry, auth: LogtoAuth, *, clock: Callable[[], float]) -> None:
    """Add the resource API's families to ``registry``, filled from ``auth`` when scraped."""
    decisions = registry.counter(
        "resource_api_auth_decisions_total",
        "Authentication decisions on protected routes: status is accepted or the refusal's "
        "HTTP status (503: the issuer's keys could not be had), reason its failure class.",
        ("status", "reason"),
    )
    lookups = registry.counter(
        "resource_api_token_cache_lookups_total",
        "Verified-token cache lookups by result (hit: no signature check).",
        ("result",),
    )
    refusal_hits = registry.counter(
        "resource_api_refusal_cache_hits_total",
        "Tokens refused again from the refusal cache, without a signature check.",
    ).labels()
    entries = registry.gauge(
        "resource_api_token_cache_entries",
        "Tokens remembered, by cache (verified, refused), summed over the workers.",
        ("cache",),
    )
    fetches = registry.counter(
        "resource_api_key_set_fetches_total",
        "Fetches of the issuer's key set by outcome (ok, not_modified, error, timeout).",
        ("outcome",),
    )
    age = registry.gauge(
        "resource_api_key_set_age_seconds",
        "Seconds since the issuer last answered a key-set fetch (the oldest of the workers).",
        merge="max",
    )
    usable = registry.gauge(
        "resource_api_key_set_usable",
        "1 when every worker holds a usable key set, else 0 (requests get 503).",
        merge="min",
    )
    accepted = decisions.labels(ACCEPTED, NO_REASON)
    hits, misses = lookups.labels("hit"), lookups.labels("miss")
    verified_entries, refused_entries = entries.labels("verified"), entries.labels("refused")
    outcomes = {outcome: fetches.labels(outcome) for outcome in FETCH_OUTCOMES}
    verifier, keys = auth.verifier, auth.keys

    def collect() -> None:
        accepted.set(auth.decisions.accepted)
        refused: dict[tuple[str, str], float] = {}
        for (status, reason), count in list(auth.decisions.refusals.items()):
            key = (_status(status), reason if reason in AUTH_REASONS else OTHER_REASON)
            refused[key] = refused.get(key, 0.0) + count
        for (status_label, reason_label), total in refused.items():
            decisions.labels(status_label, reason_label).set(total)
        hits.set(verifier.stats.cache_hits)
        misses.set(verifier.stats.cache_misses)
        refusal_hits.set(verifier.stats.refusal_hits)
        verified_entries.set(verifier.cache_len)
        refused_entries.set(verifier.refusal_cache_len)
        stats = keys.stats
        outcomes["ok"].set(stats.ok)
        outcomes["not_modified"].set(stats.not_modified)
        outcomes["timeout"].set(stats.timeouts)
        outcomes["error"].set(stats.failures - stats.timeouts)
        fetched_at = keys.fetched_at
        if fetched_at is not None:
            age.labels().set(max(0.0, clock() - fetched_at))
        usable.labels().set(1 if keys.has_keys else 0)

    registry.collect_with(collect)


def _status(status: int) -> str:
    label = str(status)
    return label if label in AUTH_STATUSES else OTHER_REASON
