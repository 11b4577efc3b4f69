"""Access-token verification: JWS structure, header rules, signature, claims, audience.

The JWS compact serialisation is parsed here (strict base64url, JSON with a nesting limit)
rather than by a general JWT library, so every rule of RFC 8725 and RFC 9068 is ours to pin
and no foreign exception can escape; PyJWT's algorithm objects check the signature itself.

Verified tokens are cached by their SHA-256 digest (bounded, first-in first-out), so a token
presented again costs a dictionary lookup and a lifetime check instead of an ECDSA
verification. A cached token is dropped when its key leaves the issuer's key set (or the kid
is republished with other key material).

Refusals are cached too, separately (so a flood of forged tokens cannot evict verified ones):
a well-formed token whose signature, claims or lifetime failed once its key was obtained is
remembered by the same digest for a short while (bounded, first-in first-out), so replaying a
forged, expired or foreign token costs a dictionary lookup instead of a signature check, and
gets the same description and ``reason``. Only decisions nothing but time can change are kept,
and never past the moment they could stop being true: an entry is tied to the key it was
checked against (dropped when the kid's key changes or leaves the key set), expires after
``refusal_cache_seconds``, and a token refused as not yet valid is checked again as soon as it
could pass. Unknown kids and unavailable keys are never remembered: a key refresh or the end
of an outage changes them.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, TypeAlias

import msgspec

from .claims import AccessToken, check_lifetime, parse_claims
from .errors import InvalidToken, KeysUnavailable
from .jwks import RemoteKeySet
from .keys import VerificationKey
from .signature_threads import SignatureThreads

_JWS_COMPACT = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+")
# RFC 9068 §2.1 / §4: "at+jwt"; the full media type is accepted too (RFC 7515 §4.1.9).
_ACCESS_TOKEN_TYPES = frozenset({"at+jwt", "application/at+jwt"})
_MAX_KID_LENGTH = 256
_Outcome: TypeAlias = "AccessToken | InvalidToken | KeysUnavailable"
"""What a verification under way tells the requests that wait for it."""
_TIMED_REFUSALS: Final = frozenset({"unknown_kid"})
"""Refusals that depend on when the request came (what the issuer had answered by then), not
only on the token: not shared with requests that waited for the verification."""


@dataclass(frozen=True, slots=True)
class VerifierPolicy:
    """Token rules that are configuration rather than protocol."""

    leeway: float = 30.0
    """Seconds of clock skew tolerated on ``exp``, ``nbf`` and ``iat``."""
    max_token_bytes: int = 8 * 1024
    """Longer tokens are refused before any parsing."""
    cache_size: int = 10_000
    """Verified tokens remembered; 0 disables the cache."""
    refusal_cache_size: int = 10_000
    """Refused well-formed tokens remembered (bad signature, algorithm/key mismatch, any claim
    or lifetime failure), first-in first-out; 0 disables the refusal cache."""
    refusal_cache_seconds: float = 60.0
    """How long a refusal is remembered at most (0 disables the refusal cache). A token refused
    as not yet valid is remembered only until it could pass (``nbf``/``iat`` minus ``leeway``);
    any refusal is forgotten as soon as its kid's key changes or leaves the key set."""
    signature_threads: int = 1
    """Threads that check signatures off the event loop: cryptography releases the GIL while it
    verifies, so a full verification neither holds up the requests behind it nor is limited to
    the event loop's core. 0 checks signatures on the calling thread."""


@dataclass(slots=True)
class VerifierStats:
    """Counters for observability (metrics read them when scraped) and tests."""

    cache_hits: int = 0
    """Tokens answered from the verified-token cache."""
    cache_misses: int = 0
    """Tokens not in that cache (verified, or refused, or answered from the refusal cache)."""
    refusal_hits: int = 0
    """Tokens refused again from the refusal cache, without a signature check."""


@dataclass(frozen=True, slots=True)
class _Refusal:
    """A remembered refusal: what to answer, the key it was decided against, until when."""

    description: str
    reason: str
    kid: str
    key: VerificationKey
    until: float


class TokenVerifier:
    """Verify Logto access tokens of one issuer."""

    def __init__(
        self,
        keys: RemoteKeySet,
        *,
        algorithms: frozenset[str],
        policy: VerifierPolicy | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.keys = keys
        self.issuer = keys.issuer
        self.algorithms = algorithms
        self.policy = policy or VerifierPolicy()
        self._clock = clock
        self._cache: dict[bytes, tuple[AccessToken, str, VerificationKey]] = {}
        self._refusals: dict[bytes, _Refusal] = {}
        self._executor: SignatureThreads | None = None
        # Verifications under way, by token digest, and their outcome (see verify_signed).
        self._verifying: dict[bytes, asyncio.Future[_Outcome | None]] = {}
        self.stats = VerifierStats()

    async def verify(self, token: str, *, audience: str) -> AccessToken:
        """Return the token's claims if it is valid for ``audience``; raise ``InvalidToken``
        (or ``KeysUnavailable`` when the issuer's keys cannot be had)."""
        access_token = await self.verify_signed(token)
        if audience not in access_token.audiences:
            raise InvalidToken(
                "The access token is not meant for this API.", reason="wrong_audience"
            )
        return access_token

    async def verify_signed(self, token: str) -> AccessToken:
        """Check everything but the audience: structure, header, signature, claims, lifetime."""
        if len(token) > self.policy.max_token_bytes:
            raise InvalidToken("The access token is too large.", reason="oversized")
        if not token.isascii():
            raise InvalidToken("The access token is not a signed JWT.", reason="malformed")
        digest = hashlib.sha256(token.encode()).digest()
        remembered = self._from_caches(digest, count_miss=True)
        # A token presented again while its verification runs (a client firing parallel calls
        # with a new token, or a flood of one forged token) waits for that verification and
        # gets its outcome: one signature check, and the copies of a refused token are replays
        # (counted and logged as such), however many arrive at once, caches on or off. The
        # issuer's keys being unavailable is shared too (the waiters came during the same
        # fetch; verifying again would wait for another). An unknown kid is not: whether the
        # issuer answered after the request came decides 401 or 503, so the waiter verifies
        # the token itself (at once: the fetch it would wait for has just answered).
        while remembered is None and (under_way := self._verifying.get(digest)) is not None:
            # Shielded: a waiter that goes away leaves the verification to the others.
            outcome = await asyncio.shield(under_way)
            if isinstance(outcome, InvalidToken):
                self.stats.refusal_hits += 1
                raise InvalidToken(outcome.description, reason=outcome.reason, replayed=True)
            if isinstance(outcome, KeysUnavailable):
                raise KeysUnavailable(
                    outcome.description,
                    retry_after=outcome.retry_after,
                    reason=outcome.reason,
                    outage=outcome.outage,
                )
            if outcome is not None:
                self.stats.cache_hits += 1
                return outcome
            remembered = self._from_caches(digest, count_miss=False)
        if remembered is not None:
            return remembered
        done = self._verifying[digest] = asyncio.get_running_loop().create_future()
        shared: _Outcome | None = None
        try:
            access_token, kid, key = await self._verify_uncached(token, digest, self._clock())
            self._remember(digest, (access_token, kid, key))
            shared = access_token
        except InvalidToken as refused:
            if refused.reason not in _TIMED_REFUSALS:
                shared = refused
            raise
        except KeysUnavailable as unavailable:
            shared = unavailable
            raise
        finally:
            del self._verifying[digest]
            done.set_result(shared)
        return access_token

    def _from_caches(self, digest: bytes, *, count_miss: bool) -> AccessToken | None:
        """The remembered answer for ``digest``: its claims (a cache hit), or its refusal
        raised again (a replay); ``None`` when neither cache holds one that still stands."""
        now = self._clock()
        cached = self._cache.get(digest)
        if cached is not None:
            access_token, kid, key = cached
            if self.keys.current(kid) is key:
                self.stats.cache_hits += 1
                check_lifetime(access_token, now=now, leeway=self.policy.leeway)
                return access_token
            del self._cache[digest]  # its key changed or left the key set: verify again
        if count_miss:
            self.stats.cache_misses += 1
        # Only on a miss of the verified cache, so a valid token pays nothing for this lookup.
        refusal = self._refusals.get(digest)
        if refusal is not None:
            if now < refusal.until and self.keys.current(refusal.kid) is refusal.key:
                self.stats.refusal_hits += 1
                # A new exception each time: re-raising one instance would grow its traceback.
                raise InvalidToken(refusal.description, reason=refusal.reason, replayed=True)
            del self._refusals[digest]
        return None

    def remembered(self, token: str, *, audience: str) -> AccessToken | None:
        """``token``'s claims if this verifier verified it before and that still holds now
        (its kid's current key is the one it was checked against, its lifetime holds) and it
        is meant for ``audience``; ``None`` for anything else, which :meth:`verify` then
        decides (refusals included). No parsing, no I/O, no coroutine: the LogtoAuth
        middleware's way to answer the common request, a token it has seen, without the full
        check's cost. Not counted in :attr:`stats`: a caller that uses the answer counts the
        cache hit (one that then calls :meth:`verify` for the same request must not)."""
        cached = self._cache.get(hashlib.sha256(token.encode()).digest())
        if cached is None:
            return None
        access_token, kid, key = cached
        if self.keys.current(kid) is not key:
            return None
        try:
            check_lifetime(access_token, now=self._clock(), leeway=self.policy.leeway)
        except InvalidToken:  # verify_signed reports it
            return None
        return access_token if audience in access_token.audiences else None

    async def _verify_uncached(
        self, token: str, digest: bytes, now: float
    ) -> tuple[AccessToken, str, VerificationKey]:
        # Structural refusals (oversized, malformed, bad base64 or JSON, header rules) are not
        # remembered: they cost less than the refusal-cache bookkeeping would.
        if _JWS_COMPACT.fullmatch(token) is None:
            raise InvalidToken("The access token is not a signed JWT.", reason="malformed")
        header_part, payload_part, signature_part = token.split(".")
        # The whole structure (three base64url parts, header and payload JSON) is checked before
        # any header rule, so a refusal names the first check in the order ``explain`` lists.
        header = _decode_json_segment(header_part)
        payload = _decode_json_segment(payload_part)
        signature = _b64url_decode(signature_part)
        alg, kid = self._check_header(header)
        # Not remembered when it raises: an unknown kid or an outage (KeysUnavailable) is
        # changed by the next key refresh, not by the token.
        key = await self.keys.get_key(kid)
        refusal_deadline = now + self.policy.refusal_cache_seconds
        try:
            await self._check_signature(
                key, alg, f"{header_part}.{payload_part}".encode(), signature
            )
            access_token = parse_claims(payload, issuer=self.issuer)
        except InvalidToken as refused:  # fixed by the token and this key
            self._remember_refusal(digest, refused, kid, key, refusal_deadline)
            raise
        leeway = self.policy.leeway
        now = self._clock()  # the check may have waited for its thread
        try:
            check_lifetime(access_token, now=now, leeway=leeway)
        except InvalidToken as refused:
            if now < access_token.expires_at + leeway:  # not expired: not valid *yet*
                refusal_deadline = min(refusal_deadline, _valid_from(access_token, leeway))
            self._remember_refusal(digest, refused, kid, key, refusal_deadline)
            raise
        return access_token, kid, key

    async def _check_signature(
        self, key: VerificationKey, alg: str, signing_input: bytes, signature: bytes
    ) -> None:
        """Check the signature on a signature thread (here with ``signature_threads=0``)."""
        if alg not in key.algorithms:  # the key's type and curve fix the algorithm
            raise InvalidToken(
                "The access token's algorithm does not match its key.",
                reason="algorithm_key_mismatch",
            )
        if self.policy.signature_threads <= 0:
            valid = key.verify(alg, signing_input, signature)
        else:
            if self._executor is None:  # made on first use: in the process that serves
                self._executor = SignatureThreads(self.policy.signature_threads)
            # Not shielded: when the only caller goes away (its client disconnected, its task
            # cancelled), a check that has not started yet is dropped.
            valid = await self._executor.check(key, alg, signing_input, signature)
        if not valid:
            raise InvalidToken("The access token signature is invalid.", reason="bad_signature")

    def close(self) -> None:
        """Let the signature threads end once the checks under way are done."""
        if self._executor is not None:
            self._executor.close()
            self._executor = None

    def _check_header(self, header: object) -> tuple[str, str]:
        if not isinstance(header, dict):
            raise InvalidToken(
                "The access token header is not a JSON object.", reason="malformed_header"
            )
        alg = header.get("alg")
        # The allow-list comes from configuration, never from the token (RFC 8725 §3.1);
        # it cannot hold "none" or an HMAC algorithm (keys.validate_algorithms).
        if not isinstance(alg, str) or alg not in self.algorithms:
            raise InvalidToken(
                "The access token is signed with a refused algorithm.", reason="algorithm_refused"
            )
        typ = header.get("typ")
        if not isinstance(typ, str) or typ.lower() not in _ACCESS_TOKEN_TYPES:
            raise InvalidToken(
                "The token is not an access token (typ must be at+jwt).", reason="wrong_typ"
            )
        if "crit" in header:  # RFC 7515 §4.1.11: we understand no extension
            raise InvalidToken(
                "The access token uses an unsupported critical extension.", reason="crit_header"
            )
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid or len(kid) > _MAX_KID_LENGTH:
            raise InvalidToken("The access token header has no valid key id.", reason="bad_kid")
        # jku, x5u, jwk and x5c are deliberately ignored: keys come only from the issuer's JWKS.
        return alg, kid

    def _remember(self, digest: bytes, entry: tuple[AccessToken, str, VerificationKey]) -> None:
        limit = self.policy.cache_size
        if limit <= 0:
            return
        cache = self._cache
        if digest in cache:  # verified again (its key changed): replaced in place
            cache[digest] = entry
            return
        while len(cache) >= limit:
            del cache[next(iter(cache))]  # first in, first out
        cache[digest] = entry

    def _remember_refusal(
        self, digest: bytes, refused: InvalidToken, kid: str, key: VerificationKey, until: float
    ) -> None:
        limit = self.policy.refusal_cache_size
        if limit <= 0 or self.policy.refusal_cache_seconds <= 0:
            return
        refusals = self._refusals
        while len(refusals) >= limit:
            # first in, first out; expired entries are dropped lazily, when looked up
            del refusals[next(iter(refusals))]
        refusals[digest] = _Refusal(refused.description, refused.reason, kid, key, until)

    @property
    def cache_len(self) -> int:
        """How many verified tokens are remembered."""
        return len(self._cache)

    @property
    def refusal_cache_len(self) -> int:
        """How many refused tokens are remembered (expired entries included until looked up
        or evicted)."""
        return len(self._refusals)


def _valid_from(token: AccessToken, leeway: float) -> float:
    """The first instant ``check_lifetime`` can stop refusing ``token`` as not yet valid."""
    starts = token.issued_at
    if token.not_before is not None:
        starts = max(starts, token.not_before)
    return starts - leeway


def _b64url_decode(segment: str) -> bytes:
    if len(segment) % 4 == 1:
        raise InvalidToken("The access token is not valid base64url.", reason="bad_base64")
    try:
        raw = base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
    except (binascii.Error, ValueError) as exc:
        raise InvalidToken("The access token is not valid base64url.", reason="bad_base64") from exc
    # Canonical encoding only (RFC 4648 §3.5): non-zero unused bits in the last character
    # would give one signature several spellings, i.e. several tokens for one signature.
    if base64.urlsafe_b64encode(raw).rstrip(b"=") != segment.encode():
        raise InvalidToken("The access token is not valid base64url.", reason="bad_base64")
    return raw


def _decode_json_segment(segment: str) -> object:
    raw = _b64url_decode(segment)
    try:
        return msgspec.json.decode(raw)
    # msgspec raises UnicodeDecodeError for invalid UTF-8 inside a string, and bounds nesting
    # only by the interpreter's recursion limit (RecursionError past it; a few KB of "[[[["
    # is enough): both are a malformed token, not a crash.
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise InvalidToken("The access token is not valid JSON.", reason="bad_json") from exc
