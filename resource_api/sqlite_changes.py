"""Whether a WAL-mode SQLite database changed, told without calling SQLite.

Every read through Python's ``sqlite3`` releases the GIL around each step of the statement. Under
load, another thread (the HTTP server's, which needs the GIL to hand over each request) takes
it at each release, and the event loop waits for it back: on this machine a ``GET
/shopping/orders`` that queried its three orders served about half of what ``/health`` served,
and 0.6 of it when the same orders came from memory (``bench/README.md``). So
:class:`~resource_api.storage.SqliteStore` keeps the answers of its read queries, for as long
as the database has not changed; this module tells it whether it has.

A WAL-mode database keeps its *wal-index* in the ``-shm`` file beside it, which every connection
to the database maps into memory, in every process using it. The wal-index starts with a
48-byte header (two copies, then the checkpoint information) holding the size of the WAL in
frames, their checksum and the WAL's salts: a commit, from any connection in any process, writes
a new header before the transaction is visible to any reader and before the writer's commit
returns (the second copy, a barrier, then the first). A reader starting a transaction reads this
header to know what it may see; so does :class:`WalChanges`, with a plain memory read of the
first copy (no system call, no GIL released). The layout is SQLite's unix and windows VFS's, the
same for every SQLite version since 3.7.0 (processes of different versions share it), described
at https://sqlite.org/walformat.html ("The WAL-Index Format").

Equal bytes mean no transaction committed in between: a commit adds frames (a new ``mxFrame``
and frame checksum), a WAL restarted after a checkpoint gets new salts. A header read while a
writer rewrites it may mix old and new bytes; if it equals the old header, the read happened,
in effect, before the commit, which is what a reader starting its transaction then would have
seen. The map stays valid while the store's own connection is open: SQLite only truncates or
deletes a ``-shm`` file no connection has open.
"""

from __future__ import annotations

import mmap
import os
import struct
from pathlib import Path
from typing import Final

HEADER_BYTES: Final = 48
"""The first copy of the wal-index header (``WalIndexHdr``)."""
_WAL_INDEX_BYTES: Final = 136  # both header copies and the checkpoint information
_WAL_INDEX_VERSION: Final = 3007000  # iVersion, unchanged since SQLite 3.7.0
_IS_INIT_OFFSET: Final = 12


class WalChanges:
    """The wal-index header of the database at ``database``, read from its ``-shm`` file."""

    def __init__(self, database: Path) -> None:
        """Map the header; :class:`ValueError` (or :class:`OSError`) when the database has no
        usable wal-index: not in WAL mode, in exclusive locking mode (the index then lives in
        the connection's heap), or not a wal-index this code knows."""
        descriptor = os.open(f"{database}-shm", os.O_RDONLY)
        try:
            if os.fstat(descriptor).st_size < _WAL_INDEX_BYTES:
                msg = "the wal-index is not initialised"
                raise ValueError(msg)
            self._map = mmap.mmap(descriptor, _WAL_INDEX_BYTES, access=mmap.ACCESS_READ)
        finally:
            os.close(descriptor)  # the map keeps the file
        header = self.header()
        (version,) = struct.unpack_from("=I", header)
        if version != _WAL_INDEX_VERSION or header[_IS_INIT_OFFSET] != 1:
            self._map.close()
            msg = f"unknown wal-index (version {version})"
            raise ValueError(msg)

    def header(self) -> bytes:
        """The header now: equal to an earlier one when no transaction committed since."""
        return self._map[:HEADER_BYTES]

    def close(self) -> None:
        """Unmap the header (before the connection that keeps the ``-shm`` file closes)."""
        self._map.close()
