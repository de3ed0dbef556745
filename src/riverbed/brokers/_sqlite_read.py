"""The read side of the sqlite log: fetches, descriptions, change detection.

`ReadStore` owns a broker's read connection and is only called from the broker's
reader thread. In WAL mode a reader never waits for a writer: each statement reads a
consistent snapshot. Statements that must agree with each other run in one deferred
read transaction; everything else stays in autocommit so no snapshot is held open
(an open snapshot would stop checkpoints from recycling the WAL).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from riverbed.brokers import _sqlite_queries as q
from riverbed.brokers._sqlite_batch import Codec
from riverbed.brokers._sqlite_schema import (
    OwnedConnection,
    SqliteConfig,
    connect_reader,
    transaction,
)
from riverbed.brokers.base import GroupInfo, TopicInfo, TopicPartition
from riverbed.errors import UnknownTopic
from riverbed.events import Record

__all__ = ["ReadStore"]

_MAX_TAILS = 64


class ReadStore(OwnedConnection):
    """Synchronous reads; one instance per broker, used by one thread at a time."""

    def __init__(self, config: SqliteConfig) -> None:
        super().__init__(config, connect_reader, "reader")
        self._codec = Codec()
        # Partition row ids never change once created (topics are never deleted and
        # their partition count is fixed), so they are cached for the broker's life.
        self._pids: dict[TopicPartition, int] = {}
        self._tails = _Tails()

    def data_version(self) -> int:
        """Changes whenever another connection (any process) committed to the file."""
        value: int = self.conn.execute("PRAGMA data_version").fetchone()[0]
        return value

    # -- records ----------------------------------------------------------------------
    def fetch(
        self, positions: Mapping[TopicPartition, int], limit: int
    ) -> tuple[int, list[Record[Any]]]:
        """The data version seen *before* reading, and the records read.

        Taking the version first means a commit racing with the read is never missed:
        either the read saw it, or the version the caller waits on has moved since.
        """
        version = self.data_version()
        out: list[Record[Any]] = []
        for tp, position in positions.items():
            if len(out) >= limit:
                break
            out.extend(self._read_partition(tp, position, limit - len(out)))
        return version, out

    def _read_partition(self, tp: TopicPartition, position: int, limit: int) -> list[Record[Any]]:
        pid = self._pid(tp)
        # Rows ending at or after the position, in offset order: the first may start
        # before it (sliced), or after it when retention or compaction left a gap.
        cur = self.conn.execute(
            "SELECT id, n_records, base_offset, sparse_offsets, payload FROM batches"
            " WHERE pid = ? AND last_offset >= ? ORDER BY last_offset",
            (pid, position),
        )
        out: list[Record[Any]] = []
        try:
            for row_id, count, base, sparse, payload in cur:
                key = (row_id, base, count)
                records = self._tails.take(pid, key, position) or self._codec.decode_row(
                    (base, sparse, payload), position, tp
                )
                need = limit - len(out)
                if len(records) > need:
                    self._tails.put(pid, key, records[need:])
                    records = records[:need]
                out.extend(records)
                if len(out) >= limit:
                    break
        finally:
            cur.close()  # ends the statement's snapshot even when we stopped early
        return out

    def offset_for_time(self, tp: TopicPartition, timestamp_ms: int) -> int:
        pid = self._pid(tp)
        # The end offset is read first: a record appended after it is at or after the
        # returned offset, so it is never skipped.
        (end,) = self.conn.execute(
            "SELECT end_offset FROM partitions WHERE id = ?", (pid,)
        ).fetchone()
        # Timestamps need not grow with offsets, so the row holding the answer is the
        # first (in offset order) whose newest record is recent enough.
        row = self.conn.execute(
            "SELECT base_offset, n_records, min_ts, sparse_offsets, payload FROM batches"
            " WHERE pid = ? AND max_ts >= ? ORDER BY last_offset LIMIT 1",
            (pid, timestamp_ms),
        ).fetchone()
        if row is None:
            return int(end)
        base, count, min_ts, sparse, payload = row
        if min_ts >= timestamp_ms:
            return int(base)
        offsets = self._codec.row_offsets(base, count, sparse)
        for record, offset in zip(self._codec.records.decode(payload), offsets, strict=True):
            if record.timestamp >= timestamp_ms:
                return offset
        return int(end)  # unreachable while max_ts is right; safe if it is not

    def _pid(self, tp: TopicPartition) -> int:
        pid = self._pids.get(tp)
        if pid is None:
            row = self.conn.execute(
                "SELECT id FROM partitions WHERE topic = ? AND part = ?", tuple(tp)
            ).fetchone()
            if row is None:
                raise UnknownTopic(f"no partition {tp.partition} in topic {tp.topic!r}")
            pid = self._pids[tp] = int(row[0])
        return pid

    # -- topics and groups ------------------------------------------------------------
    def describe_topic(self, name: str) -> TopicInfo:
        with transaction(self.conn, "DEFERRED"):
            return q.topic_info(self.conn, name)

    def list_topics(self) -> list[TopicInfo]:
        with transaction(self.conn, "DEFERRED"):
            return [q.topic_info(self.conn, n) for n in q.topic_names(self.conn)]

    def committed(self, group: str, topic: str) -> dict[int, int]:
        rows = self.conn.execute(
            "SELECT part, next_offset FROM group_offsets WHERE grp = ? AND topic = ?",
            (group, topic),
        )
        return dict(rows)

    def list_groups(self) -> list[str]:
        with transaction(self.conn, "DEFERRED"):
            names = {g for g, s in q.load_groups(self.conn).items() if s.members}
            names.update(g for (g,) in self.conn.execute("SELECT DISTINCT grp FROM group_offsets"))
        return sorted(names)

    def describe_group(self, group: str) -> GroupInfo:
        with transaction(self.conn, "DEFERRED"):
            state = q.load_group(self.conn, group)
            committed = dict(q.committed_offsets(self.conn, group))
        return GroupInfo(group, state.generation, state.member_infos(), committed)


class _Tails:
    """The decoded but not yet returned end of the last row read, per partition.

    A consumer whose `max_records` does not line up with the producer's batches reads
    half a row per fetch; keeping the other half (fresh objects, never handed out)
    means each row is decoded once, not twice. An entry is used only for the same row
    unchanged (id, base offset and count: compaction always changes the count, a
    reused row id comes with a new base offset) at exactly the next position, and it
    is handed out once.
    """

    def __init__(self) -> None:
        self._tails: dict[int, tuple[tuple[int, int, int], list[Record[Any]]]] = {}

    def put(self, pid: int, key: tuple[int, int, int], records: list[Record[Any]]) -> None:
        self._tails.pop(pid, None)
        if len(self._tails) >= _MAX_TAILS:  # bound the memory: drop the oldest entry
            del self._tails[next(iter(self._tails))]
        self._tails[pid] = (key, records)

    def take(self, pid: int, key: tuple[int, int, int], position: int) -> list[Record[Any]]:
        entry = self._tails.get(pid)
        if entry is None or entry[0] != key or entry[1][0].offset != position:
            return []
        del self._tails[pid]
        return entry[1]
