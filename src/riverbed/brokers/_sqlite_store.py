"""The write side of the sqlite log: every statement that changes the file.

`WriteStore` owns the one writer connection of a broker and is only ever called from
the broker's single writer thread, so its methods run one at a time. Across processes,
each write is one `BEGIN IMMEDIATE` transaction: sqlite's write lock serializes them,
and reading the end offsets or the group state inside that transaction makes
read-modify-write safe without any lock of our own.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

from riverbed.brokers import _sqlite_queries as q
from riverbed.brokers._groups import GroupState
from riverbed.brokers._sqlite_batch import Chunk, Codec
from riverbed.brokers._sqlite_maintain import maintain_partition
from riverbed.brokers._sqlite_schema import (
    OwnedConnection,
    SqliteConfig,
    connect_writer,
    transaction,
)
from riverbed.brokers.base import Assignment, TopicInfo, TopicPartition, TopicSpec
from riverbed.errors import ConfigError, TopicConflict, UnknownTopic
from riverbed.events import Record

__all__ = ["Packed", "WriteStore"]

T = TypeVar("T")
Packed = tuple[str, Sequence[Record[Any]], list[Chunk]]
"""A topic, the records to append to it, and those records packed into rows."""


class WriteStore(OwnedConnection):
    """Synchronous writes; one instance per broker, used by one thread at a time."""

    def __init__(self, config: SqliteConfig) -> None:
        super().__init__(config, connect_writer, "writer")
        self._codec = Codec()

    # -- diagnostics ------------------------------------------------------------------
    def pragmas(self) -> dict[str, Any]:
        """The writer's effective settings, for diagnostics and tests."""
        names = ("journal_mode", "synchronous", "busy_timeout", "page_size", "wal_autocheckpoint")
        return {n: self.conn.execute(f"PRAGMA {n}").fetchone()[0] for n in names}

    # -- topics -----------------------------------------------------------------------
    def create_topic(self, spec: TopicSpec) -> TopicInfo:
        conn = self.conn
        with transaction(conn):
            row = conn.execute(
                "SELECT partitions FROM topics WHERE name = ?", (spec.name,)
            ).fetchone()
            if row is not None and row[0] != spec.partitions:
                raise TopicConflict(
                    f"topic {spec.name!r} exists with {row[0]} partitions, not {spec.partitions}"
                )
            conn.execute(
                "INSERT INTO topics (name, partitions, spec) VALUES (?, ?, ?) "
                "ON CONFLICT (name) DO UPDATE SET spec = excluded.spec",
                (spec.name, spec.partitions, q.encode(spec)),
            )
            conn.executemany(
                "INSERT OR IGNORE INTO partitions (topic, part) VALUES (?, ?)",
                [(spec.name, p) for p in range(spec.partitions)],
            )
            return q.topic_info(conn, spec.name)

    # -- appends ----------------------------------------------------------------------
    def append(self, topic: str, records: Sequence[Record[Any]], chunks: list[Chunk]) -> list[int]:
        """Store `records`, already packed into `chunks` (by the caller, off the lock)."""
        if not records:
            q.topic_info(self.conn, topic)  # still `UnknownTopic` for a missing topic
            return []
        with transaction(self.conn):
            bases = self._insert(topic, chunks)
        return _assign(topic, records, chunks, bases)

    def append_and_commit(
        self,
        appends: Sequence[Packed],
        group: str,
        member_id: str,
        offsets: Mapping[TopicPartition, int],
    ) -> list[list[int]]:
        with transaction(self.conn):
            q.load_group(self.conn, group).check_owner(member_id, offsets)
            bases = [self._insert(topic, chunks) for topic, _, chunks in appends]
            q.upsert_offsets(self.conn, group, offsets)
        return [
            _assign(topic, records, chunks, b)
            for (topic, records, chunks), b in zip(appends, bases, strict=True)
        ]

    def _insert(self, topic: str, chunks: list[Chunk]) -> list[int]:
        """Insert the rows of one topic (inside a write transaction); their base offsets."""
        parts = self._partitions(topic)
        for chunk in chunks:
            if chunk.partition not in parts:
                raise ConfigError(
                    f"partition {chunk.partition} out of range for topic {topic!r} "
                    f"({len(parts)} partitions)"
                )
        ends = {p: end for p, (_, end) in parts.items()}
        grown = dict.fromkeys(ends, 0)
        rows, bases = [], []
        for c in chunks:
            base, n = ends[c.partition], len(c.records)
            bases.append(base)
            ends[c.partition] += n
            grown[c.partition] += c.size_bytes
            pid = parts[c.partition][0]
            rows.append((pid, base, base + n - 1, n, c.min_ts, c.max_ts, c.size_bytes, c.payload))
        self.conn.executemany(
            "INSERT INTO batches (pid, base_offset, last_offset, n_records, min_ts, max_ts,"
            " size_bytes, payload) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            rows,
        )
        # One row per partition keeps the next offset: no append ever scans the log.
        self.conn.executemany(
            "UPDATE partitions SET end_offset = ?, size_bytes = size_bytes + ? WHERE id = ?",
            [(ends[p], grown[p], parts[p][0]) for p in {c.partition for c in chunks}],
        )
        return bases

    def _partitions(self, topic: str) -> dict[int, tuple[int, int]]:
        """Partition -> (row id, end offset), read inside the caller's transaction."""
        rows = self.conn.execute(
            "SELECT part, id, end_offset FROM partitions WHERE topic = ?", (topic,)
        ).fetchall()
        if not rows:
            raise UnknownTopic(f"topic {topic!r} does not exist")
        return {part: (pid, end) for part, pid, end in rows}

    # -- groups -----------------------------------------------------------------------
    def group_op(self, group: str, op: Callable[[GroupState, dict[str, int]], T]) -> T:
        """Load the group's state, apply `op`, store it: one transaction, so every
        process sharing the file sees one coordinator."""
        conn = self.conn
        with transaction(conn):
            state = q.load_group(conn, group)
            before = q.encode(state)
            result = op(state, q.partition_counts(conn))
            if q.encode(state) != before:  # e.g. leaving an unknown group stores nothing
                q.store_group(conn, group, state)
        return result

    def join(
        self,
        group: str,
        member_id: str,
        topics: Sequence[str],
        *,
        client: str,
        now_ms: int,
        session_timeout_ms: int,
    ) -> Assignment:
        def op(state: GroupState, counts: dict[str, int]) -> Assignment:
            return state.admit(
                member_id,
                topics,
                client=client,
                now_ms=now_ms,
                session_timeout_ms=session_timeout_ms,
                partitions=counts,
            )

        return self.group_op(group, op)

    def heartbeat(self, group: str, member_id: str, now_ms: int) -> Assignment:
        return self.group_op(
            group, lambda state, counts: state.beat(member_id, now_ms=now_ms, partitions=counts)
        )

    def release(self, group: str, member_id: str, partitions: Sequence[TopicPartition]) -> None:
        self.group_op(group, lambda state, _: state.release(member_id, partitions))

    def leave(self, group: str, member_id: str) -> None:
        self.group_op(group, lambda state, counts: state.leave(member_id, counts))

    def commit(self, group: str, member_id: str, offsets: Mapping[TopicPartition, int]) -> None:
        conn = self.conn
        with transaction(conn):
            q.load_group(conn, group).check_owner(member_id, offsets)
            q.upsert_offsets(conn, group, offsets)

    def set_offsets(self, group: str, offsets: Mapping[TopicPartition, int], now_ms: int) -> None:
        conn = self.conn
        with transaction(conn):
            state = q.load_group(conn, group)
            state.expire(now_ms, q.partition_counts(conn))
            if state.members:
                raise ConfigError(
                    f"group {group!r} has {len(state.members)} live member(s); stop its "
                    "consumers before resetting offsets"
                )
            for tp in offsets:
                self._partitions(tp.topic)
            q.upsert_offsets(conn, group, offsets)

    # -- housekeeping -----------------------------------------------------------------
    def maintain(self, now_ms: int) -> None:
        """Expire dead members, then retention and compaction one partition at a time,
        each in its own transaction so other writers are never held up for long."""
        conn = self.conn
        with transaction(conn):
            counts = q.partition_counts(conn)
            for name, state in q.load_groups(conn).items():
                if state.expire(now_ms, counts):
                    q.store_group(conn, name, state)
        for spec, pid in self._partitions_to_maintain():
            with transaction(conn):
                maintain_partition(conn, self._codec, pid, spec, now_ms)

    def _partitions_to_maintain(self) -> list[tuple[TopicSpec, int]]:
        out = []
        rows = self.conn.execute(
            "SELECT t.spec, p.id FROM topics t JOIN partitions p ON p.topic = t.name"
        ).fetchall()
        for blob, pid in rows:
            spec = q.decode_spec(blob)
            if spec.compact or spec.retention_ms is not None or spec.retention_bytes is not None:
                out.append((spec, pid))
        return out


def _assign(
    topic: str, records: Sequence[Record[Any]], chunks: list[Chunk], bases: list[int]
) -> list[int]:
    """Set topic/offset on the caller's records (after commit) and list the offsets."""
    for chunk, base in zip(chunks, bases, strict=True):
        chunk.assign(topic, base)
    if len({c.partition for c in chunks}) == 1:
        return list(range(bases[0], bases[0] + len(records)))
    return [r.offset for r in records]
