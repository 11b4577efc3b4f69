"""The issuer's key set, fetched and cached as a policy (the only network I/O of the core).

Policy, each rule pinned by a test:

* discovery (``<endpoint>/oidc/.well-known/openid-configuration``) names the issuer and the
  ``jwks_uri``; the issuer must be exactly ``<endpoint>/oidc`` and the JWKS must live on its
  origin;
* every fetch is asynchronous, bounded by ``timeout`` as a whole (not per socket read), refuses
  bodies over ``max_body_bytes``, non-200 answers and documents that are not a key set;
* one fetch at a time (single flight): concurrent callers share it;
* no fetch starts less than ``cooldown`` after the previous one started, and unknown kids have
  a cooldown of their own: a flood of made-up ``kid`` values costs at most one fetch per
  cooldown, while a routine fetch just before a rotation does not delay the new key;
* keys older than ``refresh_interval`` are revalidated in the background (``If-None-Match``
  when the issuer sent an ``ETag``) while the current ones keep serving;
* when a fetch fails, the last-known-good keys keep serving for ``max_stale`` after their last
  successful fetch; only with no usable keys does a caller get :class:`KeysUnavailable`;
* a kid the issuer does not publish is an invalid token only when the issuer said so, in an
  answer to a fetch that started once the request had arrived (or when the issuer published
  that kid before and has since dropped it). Otherwise the token may be valid, signed by a key
  published after our latest answer, and the caller gets :class:`KeysUnavailable` (503, retry)
  rather than a 401: when the fetch failed or is still hanging, and when the unknown-kid
  cooldown holds back a fetch (anyone can spend the refetch with a made-up kid just before a
  rotation; ``Retry-After`` then says when the next one may start). The decision rests on the
  issuer's answers only (fetches are numbered as they start; no clock comparison), never on
  the token's unverified claims.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import httpx
import msgspec

from .errors import InvalidToken, KeySetError, KeysUnavailable
from .keys import VerificationKey, parse_key_set

if TYPE_CHECKING:
    from opentelemetry.trace import Tracer

logger = logging.getLogger("litestar_logto.jwks")

Clock = Callable[[], float]
USER_AGENT = "logto-resource-api-keys"
"""Sent with every discovery and JWKS request, so the issuer's logs (and a proxy in front of
it) tell this key source apart from other clients of the same endpoints."""
# identity: the size cap counts the bytes on the wire, so no compression bomb gets past it.
_REQUEST_HEADERS = {
    "Accept": "application/json",
    "Accept-Encoding": "identity",
    "User-Agent": USER_AGENT,
}
_DEFAULT_PORTS = {"http": 80, "https": 443}
MAX_RETIRED_KIDS = 256
"""Kids the issuer published and then dropped, remembered (first in, first out) so that a token
signed by a retired key is an invalid token at once, not an outage until the cooldown ends."""


@dataclass(frozen=True, slots=True)
class KeySetPolicy:
    """How the key set is fetched and cached."""

    timeout: float = 5.0
    """Seconds a whole fetch (discovery + JWKS) may take; also the longest a request waits."""
    max_body_bytes: int = 1_000_000
    """Larger discovery or JWKS bodies are refused."""
    cooldown: float = 30.0
    """Minimum seconds between two fetches caused by unknown kids, and between any two others."""
    refresh_interval: float = 300.0
    """Keys older than this are revalidated in the background."""
    max_stale: float = 6 * 3600.0
    """How long last-known-good keys keep serving when the issuer cannot be reached."""


@dataclass(frozen=True, slots=True)
class _Snapshot:
    keys: dict[str, VerificationKey]
    fetched_at: float
    etag: str | None = None
    fetch_number: int = 0
    """Which fetch got this answer (fetches are numbered as they start): an answer to a fetch
    that started after a request arrived is at least as new as the request."""


@dataclass(slots=True)
class FetchStats:
    """Counters for observability and tests."""

    attempts: int = 0
    failures: int = 0
    """Failed fetches, timeouts included."""
    timeouts: int = 0
    """Failed fetches that ran out of time."""
    ok: int = 0
    """Fetches that got a key set (a 200 answer)."""
    not_modified: int = 0
    last_failure: str | None = field(default=None)


class RemoteKeySet:
    """The signing keys of one Logto issuer."""

    def __init__(
        self,
        endpoint: str,
        *,
        http_client: httpx.AsyncClient,
        algorithms: frozenset[str],
        policy: KeySetPolicy | None = None,
        clock: Clock = time.time,
        tracer: Tracer | None = None,
    ) -> None:
        self.endpoint = endpoint.rstrip("/")
        self.issuer = f"{self.endpoint}/oidc"
        self.discovery_url = f"{self.issuer}/.well-known/openid-configuration"
        self.policy = policy or KeySetPolicy()
        self.stats = FetchStats()
        self._http = http_client
        self._algorithms = algorithms
        self._clock = clock
        self._tracer = tracer
        self._jwks_uri: str | None = None
        self._snapshot: _Snapshot | None = None
        self._last_attempt: float = -math.inf
        self._last_unknown_kid_fetch: float = -math.inf
        self._inflight: asyncio.Task[bool] | None = None
        self._fetches_started = 0
        self._retired: dict[str, None] = {}
        """Kids that left the key set (insertion-ordered, bounded by MAX_RETIRED_KIDS)."""
        self._last_fetch_failed = False
        """Whether the latest finished fetch failed (an unknown kid is then an outage)."""

    # -- reading keys -------------------------------------------------------------------------

    async def get_key(self, kid: str) -> VerificationKey:
        """Return the key named ``kid``, fetching at most as the policy allows.

        Raises :class:`InvalidToken` for a ``kid`` the issuer does not publish and
        :class:`KeysUnavailable` when no usable key set can be had, or when the issuer cannot
        be asked about ``kid`` now (outage, or the unknown-kid cooldown).
        """
        fetches_before = self._fetches_started
        snapshot = self._usable_snapshot()
        if snapshot is None:
            await self._fetch_and_wait()
            snapshot = self._usable_snapshot()
            if snapshot is None:
                raise KeysUnavailable(retry_after=self._retry_after())
        key = snapshot.keys.get(kid)
        if key is not None:
            if self._clock() - snapshot.fetched_at >= self.policy.refresh_interval:
                self._start_fetch()  # stale-while-revalidate: this request does not wait
            return key
        if kid in self._retired:  # the issuer published it, then dropped it: gone for good
            raise InvalidToken(
                "The access token is signed with an unknown key.", reason="unknown_kid"
            )
        # Unknown kid: normal right after a rotation; refetch once per cooldown at most.
        if self._start_fetch(for_unknown_kid=True):
            await self._fetch_and_wait()
            snapshot = self._usable_snapshot() or snapshot
            key = snapshot.keys.get(kid)
            if key is not None:
                return key
        if snapshot.fetch_number > fetches_before:
            # The issuer answered, after this request arrived, without this kid.
            raise InvalidToken(
                "The access token is signed with an unknown key.", reason="unknown_kid"
            )
        if self._inflight is not None or self._last_fetch_failed:
            # The issuer could not say whether it publishes this kid (down, hung, or answering
            # garbage): a token signed right after a rotation may be perfectly valid. That is
            # an outage to retry, not the caller's invalid token.
            raise KeysUnavailable(retry_after=self._retry_after())
        # The cooldown holds back the fetch (someone, maybe with a made-up kid, spent it) and
        # our latest answer predates this request: the token may be signed by a key published
        # since. Retry once the next unknown-kid fetch may start.
        raise KeysUnavailable(
            "The access token is signed with a key the API cannot look up yet; try again shortly.",
            retry_after=self._unknown_kid_retry_after(),
            reason="unknown_kid_cooldown",
            outage=False,
        )

    def current(self, kid: str) -> VerificationKey | None:
        """The usable key named ``kid`` right now, without fetching (cache revalidation)."""
        snapshot = self._usable_snapshot()
        return snapshot.keys.get(kid) if snapshot is not None else None

    def kids(self) -> tuple[str, ...]:
        """The kids of the usable key set now, sorted, without fetching (``explain``)."""
        snapshot = self._usable_snapshot()
        return tuple(sorted(snapshot.keys)) if snapshot is not None else ()

    def knows(self, kid: str) -> bool:
        """Whether ``kid`` is in the current usable key set."""
        return self.current(kid) is not None

    @property
    def fetched_at(self) -> float | None:
        """When the issuer last answered a fetch (with keys or "not modified"), if ever."""
        snapshot = self._snapshot
        return snapshot.fetched_at if snapshot is not None else None

    @property
    def has_keys(self) -> bool:
        """Whether a usable key set is held right now."""
        return self._usable_snapshot() is not None

    def _usable_snapshot(self) -> _Snapshot | None:
        snapshot = self._snapshot
        if snapshot is None or self._clock() - snapshot.fetched_at > self.policy.max_stale:
            return None
        return snapshot

    def _retry_after(self) -> int:
        remaining = self._last_attempt + self.policy.cooldown - self._clock()
        return max(1, math.ceil(remaining))

    def _unknown_kid_retry_after(self) -> int:
        remaining = self._last_unknown_kid_fetch + self.policy.cooldown - self._clock()
        return max(1, math.ceil(remaining))

    # -- fetching -----------------------------------------------------------------------------

    def warm_up(self) -> None:
        """Start a fetch in the background (at start-up) without waiting for it."""
        self._start_fetch()

    async def refresh(self) -> bool:
        """Fetch now if the cooldown allows (background loop, warm-up); True if keys changed
        or were revalidated."""
        if self._inflight is None and not self._start_fetch():
            return False
        task = self._inflight
        return bool(task is not None and await asyncio.shield(task))

    async def run_refresh_loop(
        self, sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
    ) -> None:
        """Refresh before keys go stale, forever (cancel to stop)."""
        while True:
            snapshot = self._snapshot
            age = self._clock() - snapshot.fetched_at if snapshot else math.inf
            await sleep(max(self.policy.cooldown, self.policy.refresh_interval - age))
            await self.refresh()

    def _start_fetch(self, *, for_unknown_kid: bool = False) -> bool:
        """Start a fetch unless one is running or the cooldown forbids; True if one runs.

        Unknown kids have a cooldown of their own, counted from the last fetch they caused:
        a routine background or start-up fetch a few seconds before a rotation must not make
        the first tokens signed with the new key wait out a cooldown.
        """
        if self._inflight is not None:
            return True
        now = self._clock()
        last = self._last_unknown_kid_fetch if for_unknown_kid else self._last_attempt
        if now - last < self.policy.cooldown:
            return False
        self._last_attempt = now
        if for_unknown_kid:
            self._last_unknown_kid_fetch = now
        self._fetches_started += 1
        fetch: Coroutine[Any, Any, bool] = self._fetch(number=self._fetches_started)
        if self._tracer is not None:
            from .tracing import traced_fetch  # noqa: PLC0415 - only when tracing

            fetch = traced_fetch(self._tracer, fetch, self.stats)
        self._inflight = asyncio.get_running_loop().create_task(fetch)
        return True

    async def _fetch_and_wait(self) -> None:
        if not self._start_fetch():
            return
        task = self._inflight
        if task is None:  # pragma: no cover - _start_fetch just set it
            return
        try:
            # shield: a caller that gives up must not cancel the fetch others share.
            await asyncio.wait_for(asyncio.shield(task), timeout=self.policy.timeout)
        except TimeoutError:
            logger.warning(
                "jwks fetch still running; request not held longer",
                extra={"event": "jwks_wait_timeout"},
            )

    async def _fetch(self, *, number: int) -> bool:
        self.stats.attempts += 1
        try:
            async with asyncio.timeout(self.policy.timeout):
                snapshot = await self._download(number)
        except (KeySetError, TimeoutError) as exc:
            reason = exc.reason if isinstance(exc, KeySetError) else "timeout"
            self._record_failure(reason)
            return False
        except Exception:  # a bug here must not take authentication down: log it, keep keys
            logger.exception("jwks fetch crashed", extra={"event": "jwks_fetch_crashed"})
            self._record_failure("unexpected_error")
            return False
        finally:
            self._inflight = None
        self._retire(self._snapshot, snapshot)
        self._snapshot = snapshot
        self._last_fetch_failed = False
        return True

    def _retire(self, previous: _Snapshot | None, current: _Snapshot) -> None:
        """Remember the kids ``current`` no longer publishes; forget those it publishes."""
        retired = self._retired
        for kid in current.keys:
            retired.pop(kid, None)
        if previous is None:
            return
        for kid in previous.keys.keys() - current.keys.keys():
            retired.pop(kid, None)
            retired[kid] = None
            while len(retired) > MAX_RETIRED_KIDS:
                del retired[next(iter(retired))]  # first in, first out

    def _record_failure(self, reason: str) -> None:
        self._last_fetch_failed = True
        self.stats.failures += 1
        if reason == "timeout":
            self.stats.timeouts += 1
        self.stats.last_failure = reason
        logger.warning(
            "jwks fetch failed; keeping last-known-good keys",
            extra={
                "event": "jwks_fetch_failed",
                "reason": reason,
                "has_keys": self._snapshot is not None,
            },
        )

    async def _download(self, number: int) -> _Snapshot:
        jwks_uri = self._jwks_uri or await self._discover()
        previous = self._snapshot
        headers = dict(_REQUEST_HEADERS)
        if previous is not None and previous.etag:
            headers["If-None-Match"] = previous.etag
        status, body, etag = await self._get(jwks_uri, headers)
        now = self._clock()
        if status == httpx.codes.NOT_MODIFIED and previous is not None:
            self.stats.not_modified += 1
            return _Snapshot(previous.keys, now, previous.etag, number)
        if status != httpx.codes.OK:
            raise KeySetError(f"jwks_status_{status}")
        try:
            keys = parse_key_set(_decode_json(body), self._algorithms)
        except ValueError as exc:
            raise KeySetError("jwks_not_a_key_set") from exc
        if not keys:
            raise KeySetError("jwks_without_usable_keys")
        if previous is not None:  # keep unchanged keys identical: cached verifications stay valid
            keys = {kid: _same_or_new(previous.keys.get(kid), key) for kid, key in keys.items()}
        logger.info("jwks fetched", extra={"event": "jwks_fetched", "kids": sorted(keys)})
        self.stats.ok += 1
        return _Snapshot(keys, now, etag, number)

    async def _discover(self) -> str:
        status, body, _ = await self._get(self.discovery_url, _REQUEST_HEADERS)
        if status != httpx.codes.OK:
            raise KeySetError(f"discovery_status_{status}")
        metadata = _decode_json(body)
        if not isinstance(metadata, dict) or metadata.get("issuer") != self.issuer:
            raise KeySetError("discovery_issuer_mismatch")
        jwks_uri = metadata.get("jwks_uri")
        if not isinstance(jwks_uri, str) or _origin(jwks_uri) != _origin(self.issuer):
            raise KeySetError("discovery_jwks_uri_foreign")
        self._jwks_uri = jwks_uri
        return jwks_uri

    async def _get(self, url: str, headers: Mapping[str, str]) -> tuple[int, bytes, str | None]:
        limit = self.policy.max_body_bytes
        try:
            async with self._http.stream(
                "GET", url, headers=headers, timeout=self.policy.timeout
            ) as response:
                declared = response.headers.get("content-length", "")
                if declared.isdigit() and int(declared) > limit:
                    raise KeySetError("body_too_large")
                chunks: list[bytes] = []
                size = 0
                async for chunk in response.aiter_raw():
                    size += len(chunk)
                    if size > limit:
                        raise KeySetError("body_too_large")
                    chunks.append(chunk)
                etag = response.headers.get("etag")
                return response.status_code, _decoded(response, b"".join(chunks)), etag
        except httpx.TimeoutException as exc:
            raise KeySetError("timeout") from exc
        except httpx.InvalidURL as exc:  # not an HTTPError: a jwks_uri httpx cannot request
            raise KeySetError("bad_url") from exc
        except httpx.HTTPError as exc:
            raise KeySetError(f"http_error_{type(exc).__name__}") from exc


def _same_or_new(old: VerificationKey | None, new: VerificationKey) -> VerificationKey:
    return old if old is not None and old == new else new


def _decoded(response: httpx.Response, raw: bytes) -> bytes:
    if response.headers.get("content-encoding", "identity").lower() in ("", "identity"):
        return raw
    raise KeySetError("compressed_body")


def _decode_json(body: bytes) -> object:
    try:
        return msgspec.json.decode(body)
    # UnicodeDecodeError: invalid UTF-8 inside a string; RecursionError: nesting too deep.
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise KeySetError("not_json") from exc


def _origin(url: str) -> tuple[str, str, int | None]:
    try:
        parts = urlsplit(url)
        return parts.scheme, parts.hostname or "", parts.port or _DEFAULT_PORTS.get(parts.scheme)
    except ValueError as exc:
        raise KeySetError("bad_url") from exc
