"""A local SQLite copy of tables' state, so that a restart replays only a changelog's tail.

On the server backends the changelog topic is the state's source of truth, and it is
not compacted there (Tansu does not compact; NATS and Redis refuse it): restoring from
offset 0 would grow with the table's whole history. So after each commit a worker also
writes the changed entries of each (changelog, partition) to a SQLite file on its own
disk (`<state_dir>/<app>.db`), with the offset and id of the last changelog record they
include. A restore loads that copy and replays the changelog after it.

The copy is only ever a prefix of the changelog: it is written after the broker took
the commit, and it is used only if the changelog still holds, at the recorded offset,
the record with the recorded id (the topic was not recreated meanwhile). A copy from
an older ownership of the partition is therefore fine: the replay brings it up to date.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Checkpoint", "Checkpoints"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS state (
    changelog TEXT NOT NULL, part INTEGER NOT NULL, key BLOB NOT NULL, value BLOB NOT NULL,
    PRIMARY KEY (changelog, part, key)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS marks (
    changelog TEXT NOT NULL, part INTEGER NOT NULL, last_offset INTEGER NOT NULL,
    last_id TEXT NOT NULL,
    PRIMARY KEY (changelog, part)
) WITHOUT ROWID;
"""


@dataclass(frozen=True)
class Checkpoint:
    """The saved entries of one changelog partition, up to and including one record."""

    entries: list[tuple[bytes, bytes]]
    last_offset: int
    last_id: str


class Checkpoints:
    """The local state file of one app (thread-safe: saves run in worker threads)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._db: sqlite3.Connection | None = None

    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")  # a lost tail only means a longer replay
            db.executescript(_SCHEMA)
            self._db = db
        return self._db

    def load(self, changelog: str, partition: int) -> Checkpoint | None:
        """The saved copy of one changelog partition, or None."""
        with self._lock:
            db = self._conn()
            mark = db.execute(
                "SELECT last_offset, last_id FROM marks WHERE changelog = ? AND part = ?",
                (changelog, partition),
            ).fetchone()
            if mark is None:
                return None
            rows = db.execute(
                "SELECT key, value FROM state WHERE changelog = ? AND part = ?",
                (changelog, partition),
            ).fetchall()
        return Checkpoint([(bytes(k), bytes(v)) for k, v in rows], mark[0], mark[1])

    def save(
        self,
        changelog: str,
        partition: int,
        changes: Sequence[tuple[bytes, bytes | None]],
        last_offset: int,
        last_id: str,
    ) -> None:
        """Apply `changes` (None: delete) and move the mark, in one transaction."""
        with self._lock:
            db = self._conn()
            db.execute("BEGIN IMMEDIATE")
            try:
                for key, value in changes:
                    if value is None:
                        db.execute(
                            "DELETE FROM state WHERE changelog = ? AND part = ? AND key = ?",
                            (changelog, partition, key),
                        )
                    else:
                        db.execute(
                            "INSERT OR REPLACE INTO state VALUES (?, ?, ?, ?)",
                            (changelog, partition, key, value),
                        )
                db.execute(
                    "INSERT OR REPLACE INTO marks VALUES (?, ?, ?, ?)",
                    (changelog, partition, last_offset, last_id),
                )
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")

    def forget(self, changelog: str, partition: int) -> None:
        """Drop a copy that no longer matches its changelog."""
        with self._lock:
            db = self._conn()
            db.execute("BEGIN IMMEDIATE")
            db.execute("DELETE FROM state WHERE changelog = ? AND part = ?", (changelog, partition))
            db.execute("DELETE FROM marks WHERE changelog = ? AND part = ?", (changelog, partition))
            db.execute("COMMIT")

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None
