"""Kernel nudges: learn from Linux inotify that another process wrote the log.

A commit by another process first shows as writes to the `-wal` file. Watching the
database's directory for IN_MODIFY on that file lets a waiting fetch wake within
microseconds instead of at its next `PRAGMA data_version` poll, so polls can be rare
when nothing happens. A nudge is only a hint: the final WAL write can precede the
wal-index update that makes the commit visible, so a woken reader that finds nothing
polls again at once (`ChangeWatch` resets its backoff on a nudge), and polling stays
as the safety net (and the only source where inotify does not exist).

The directory is watched, not the file: SQLite deletes and recreates the `-wal` file,
which would end a watch on the file itself.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import struct
import sys

__all__ = ["WalNudge"]

_IN_MODIFY = 0x00000002
_IN_NONBLOCK = 0o4000
_IN_CLOEXEC = 0o2000000
_EVENT = struct.Struct("iIII")  # wd, mask, cookie, len; then `len` bytes of name


class WalNudge:
    """An inotify descriptor that becomes readable when the `-wal` file is written."""

    def __init__(self, fd: int, wal_name: bytes) -> None:
        self.fd = fd
        self._wal_name = wal_name

    @classmethod
    def open(cls, db_path: str) -> WalNudge | None:
        """Watch `db_path`'s WAL; None where inotify is unavailable (then only polls)."""
        if not sys.platform.startswith("linux"):
            return None
        try:
            libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
            fd = libc.inotify_init1(_IN_NONBLOCK | _IN_CLOEXEC)
        except (OSError, AttributeError):
            return None
        if fd < 0:
            return None
        directory = os.path.dirname(os.path.abspath(db_path)).encode()
        if libc.inotify_add_watch(fd, directory, _IN_MODIFY) < 0:
            os.close(fd)
            return None
        return cls(fd, os.path.basename(db_path).encode() + b"-wal")

    def drain(self) -> bool:
        """Read every pending event; True if one was a write to our WAL file."""
        hit = False
        while True:
            try:
                data = os.read(self.fd, 65536)
            except (BlockingIOError, InterruptedError):
                return hit
            except OSError:
                return True  # descriptor trouble: wake readers, polling takes over
            if not data:
                return hit
            hit = self._scan(data) or hit

    def _scan(self, data: bytes) -> bool:
        pos = 0
        while pos + _EVENT.size <= len(data):
            _, _, _, size = _EVENT.unpack_from(data, pos)
            name = data[pos + _EVENT.size : pos + _EVENT.size + size].rstrip(b"\0")
            pos += _EVENT.size + size
            if name == self._wal_name:
                return True
        return False

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
