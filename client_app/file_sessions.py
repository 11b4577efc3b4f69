"""The embedded session store: one file per session document in ``SESSION_DATABASE``.

Litestar's :class:`~litestar.stores.file.FileStore` ignores a short ``os.write`` and swallows
every ``OSError``: on a full disk a sign-in "succeeds" while nothing (or half a file) was stored,
a rotated refresh token is lost, and a truncated file then fails every read of that browser
with a decoding error (a 500 on every page). :class:`SessionFileStore` keeps its file format
(a msgpack :class:`~litestar.stores.base.StorageObject` in a file named by the BLAKE2 hash of
the key, so existing session files stay readable) and changes what failure means:

* a write loops until every byte is written, then atomically replaces the document
  (temporary file in the same directory, ``os.replace``); any ``OSError`` (``ENOSPC``,
  ``EFBIG``, ``EDQUOT``, a directory that is not one) removes the temporary file and raises
  :class:`~client_app.errors.SessionsUnavailable`: the user sees a 503 "try again" page and the
  caller never carries on as if the write had happened;
* a document that cannot be decoded (truncated, empty, garbage) is no session: it is removed
  and read as missing. A read the system refuses (``EIO``, ``EACCES``) is
  :class:`~client_app.errors.SessionsUnavailable`;
* :meth:`SessionFileStore.delete_expired` (the hourly sweep) removes expired and undecodable
  documents and temporary files left by a crash, and never stops at one bad file.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Final

import msgspec
from litestar.stores.base import StorageObject, Store

from .errors import SessionsUnavailable

logger = logging.getLogger("client_app.sessions")

TEMPORARY_MARKER: Final = ".tmp"
STALE_TEMPORARY_SECONDS: Final = 3600.0
"""A temporary file older than this was left by a crash mid-write (a write takes milliseconds);
the sweep removes it."""


class SessionFileStore(Store):
    """Session documents as files; failures are loud (:class:`SessionsUnavailable`)."""

    __slots__ = ("path",)

    def __init__(self, path: Path) -> None:
        self.path = path

    def _file(self, key: str) -> Path:
        return self.path / hashlib.blake2s(key.encode()).hexdigest()

    async def set(
        self, key: str, value: str | bytes, expires_in: int | timedelta | None = None
    ) -> None:
        """Store ``value`` under ``key`` completely, or raise :class:`SessionsUnavailable`."""
        data = value.encode() if isinstance(value, str) else value
        content = StorageObject.new(data=data, expires_in=expires_in).to_bytes()
        await asyncio.to_thread(self._write, self._file(key), content)

    async def get(self, key: str, renew_for: int | timedelta | None = None) -> bytes | None:
        """The value under ``key``; ``None`` if missing, expired or unreadable (then removed).
        ``renew_for`` is not supported (sessions are rewritten when they change)."""
        if renew_for is not None:
            raise NotImplementedError("SessionFileStore does not renew on read")
        entry = await asyncio.to_thread(self._read, self._file(key))
        return entry.data if entry is not None else None

    async def delete(self, key: str) -> None:
        """Forget ``key`` (a no-op if it is not there)."""
        await asyncio.to_thread(self._remove, self._file(key), "delete")

    async def delete_all(self) -> None:
        """Remove every document."""
        await asyncio.to_thread(self._sweep, everything=True)

    async def delete_expired(self) -> None:
        """Remove expired and unreadable documents and stale temporary files."""
        await asyncio.to_thread(self._sweep, everything=False)

    async def exists(self, key: str) -> bool:
        """Whether a live document is stored under ``key``."""
        return await self.get(key) is not None

    async def expires_in(self, key: str) -> int | None:
        """Seconds until ``key`` expires; ``None`` if it is missing or never expires."""
        entry = await asyncio.to_thread(self._read, self._file(key))
        if entry is None or entry.expires_at is None:
            return None
        return entry.expires_in

    # -- the file system, in a worker thread ------------------------------------------------

    def _write(self, target: Path, content: bytes) -> None:
        temporary: Path | None = None
        try:
            self.path.mkdir(mode=0o700, parents=True, exist_ok=True)
            descriptor, name = tempfile.mkstemp(
                dir=self.path, prefix=f"{target.name}{TEMPORARY_MARKER}"
            )
            temporary = Path(name)
            try:
                remaining = memoryview(content)
                while remaining:  # os.write may write less than asked (a full disk)
                    remaining = remaining[os.write(descriptor, remaining) :]
            finally:
                os.close(descriptor)
            temporary.replace(target)
            temporary = None
        except OSError as exc:
            raise SessionsUnavailable.logged(exc, "write") from exc
        finally:
            if temporary is not None:
                with contextlib.suppress(OSError):
                    temporary.unlink()

    def _read(self, path: Path) -> StorageObject | None:
        try:
            content = path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise SessionsUnavailable.logged(exc, "read") from exc
        try:
            entry = StorageObject.from_bytes(content)
        except (msgspec.DecodeError, msgspec.ValidationError):
            logger.warning("unreadable session file removed", extra={"event": "bad_session_file"})
            self._remove(path, "delete")
            return None
        if entry.expired:
            self._remove(path, "delete")
            return None
        return entry

    def _remove(self, path: Path, operation: str) -> None:
        try:
            path.unlink(missing_ok=True)
        except OSError as exc:
            raise SessionsUnavailable.logged(exc, operation) from exc

    def _sweep(self, *, everything: bool) -> None:
        try:
            paths = list(self.path.iterdir())
        except FileNotFoundError:
            return
        except OSError as exc:
            raise SessionsUnavailable.logged(exc, "sweep") from exc
        for path in paths:
            try:
                if everything:
                    path.unlink(missing_ok=True)
                elif TEMPORARY_MARKER in path.name:  # another write may be filling it now
                    if time.time() - path.stat().st_mtime > STALE_TEMPORARY_SECONDS:
                        path.unlink(missing_ok=True)
                else:
                    self._read(path)  # removes it if expired or unreadable
            except (OSError, SessionsUnavailable):
                continue  # one file the sweep cannot handle does not stop it
