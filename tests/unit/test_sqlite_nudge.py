"""The inotify nudge fires when another connection writes the WAL, and only then."""

from __future__ import annotations

import select
import sqlite3
import sys
from pathlib import Path

import pytest

from riverbed.brokers._sqlite_nudge import WalNudge

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="inotify is Linux-only; other systems poll"
)


def _readable(fd: int, timeout: float) -> bool:
    return bool(select.select([fd], [], [], timeout)[0])


def test_a_write_to_the_wal_makes_the_nudge_readable(tmp_path: Path) -> None:
    db = tmp_path / "log.db"
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("CREATE TABLE t (x)")
    nudge = WalNudge.open(str(db))
    assert nudge is not None
    try:
        nudge.drain()  # forget the set-up writes
        assert not _readable(nudge.fd, 0.05)
        conn.execute("INSERT INTO t VALUES (1)")
        assert _readable(nudge.fd, 2.0)
        assert nudge.drain() is True
        assert not _readable(nudge.fd, 0.05)
    finally:
        nudge.close()
        conn.close()


def test_writes_to_other_files_in_the_directory_are_not_a_nudge(tmp_path: Path) -> None:
    db = tmp_path / "log.db"
    sqlite3.connect(db).close()
    nudge = WalNudge.open(str(db))
    assert nudge is not None
    try:
        (tmp_path / "other.db-wal").write_bytes(b"x")
        assert _readable(nudge.fd, 2.0)
        assert nudge.drain() is False
    finally:
        nudge.close()
