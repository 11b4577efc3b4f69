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
deletes a ``-shm`` file no connection has open (and knows it is open by the locks, which is why
:class:`WalChanges` never closes its descriptor before the connection).
"""

from __future__ import annotations

import contextlib
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
    """The wal-index header of a database, read from its ``-shm`` file.

    POSIX locks belong to the process, and closing *any* descriptor of a file drops every lock
    the process holds on it, SQLite's included: SQLite's connection holds a shared lock on the
    ``-shm`` file that tells other processes the wal-index is in use (a process that finds it
    unlocked rebuilds the wal-index under the running connections). So the descriptor and the
    map opened here stay open until :meth:`close`, which must come after the SQLite connection
    that uses the same file has closed.
    """

    def __init__(self, shm: Path) -> None:
        """Open and map ``shm`` (:class:`OSError` if it cannot be opened: nothing is left
        open then). :attr:`usable` says whether it holds a wal-index this code knows; the
        file stays open either way, until :meth:`close`."""
        self._descriptor = os.open(shm, os.O_RDONLY)
        self._map: mmap.mmap | None = None
        with contextlib.suppress(OSError, ValueError):
            if os.fstat(self._descriptor).st_size >= _WAL_INDEX_BYTES:
                self._map = mmap.mmap(self._descriptor, _WAL_INDEX_BYTES, access=mmap.ACCESS_READ)
        self.usable = False
        """Whether :meth:`header` may be relied on (a known, initialised wal-index)."""
        if self._map is not None:
            header = self._map[:HEADER_BYTES]
            (version,) = struct.unpack_from("=I", header)
            self.usable = version == _WAL_INDEX_VERSION and header[_IS_INIT_OFFSET] == 1

    def header(self) -> bytes:
        """The header now: equal to an earlier one when no transaction committed since."""
        if self._map is None:
            return b""
        return self._map[:HEADER_BYTES]

    def close(self) -> None:
        """Unmap and close the file: only once the SQLite connection has closed (see above)."""
        if self._map is not None:
            self._map.close()
            self._map = None
        if self._descriptor >= 0:
            os.close(self._descriptor)
            self._descriptor = -1
