"""Retention and compaction of one partition of the sqlite log (synchronous).

Granularity is the batch row, as Kafka's is the segment:
- age: a row is deleted when its newest record (`max_ts`) is older than
  `retention_ms`, so a row holding one recent record keeps its older ones;
- size: walking from the newest row back, a row is deleted once the rows newer than
  it already hold `retention_bytes` (stored payload bytes, as Kafka counts segment
  bytes), so a partition keeps at least `retention_bytes` when it has them, and at
  most one row more;
- compaction rewrites each row that holds a superseded record (a later record has the
  same key) with its surviving records and their original offsets, and deletes rows
  left empty. Keyless records always survive.
Offsets are never renumbered; `start_offset` moves to the first stored offset.

Compaction reads every key of the partition (decoding only the keys, not the values)
and only runs when records were appended since the last pass, so it suits what
compacted topics hold: tables, changelogs, latest-state streams.
"""

from __future__ import annotations

import sqlite3

from riverbed.brokers._sqlite_batch import Codec
from riverbed.brokers.base import TopicSpec

__all__ = ["maintain_partition"]

_Latest = dict[bytes, tuple[int, int]]
"""key -> (batch row id, offset) of the key's latest record."""


def maintain_partition(
    conn: sqlite3.Connection, codec: Codec, pid: int, spec: TopicSpec, now_ms: int
) -> None:
    """Apply compaction then retention to one partition (inside a write transaction)."""
    changed = False
    if spec.compact:
        changed |= _compact(conn, codec, pid)
    if spec.retention_ms is not None:
        cur = conn.execute(
            "DELETE FROM batches WHERE pid = ? AND max_ts < ?", (pid, now_ms - spec.retention_ms)
        )
        changed |= cur.rowcount > 0
    if spec.retention_bytes is not None:
        changed |= _trim_to_size(conn, pid, spec.retention_bytes)
    if changed:
        _refresh(conn, pid)


def _compact(conn: sqlite3.Connection, codec: Codec, pid: int) -> bool:
    end, upto = conn.execute(
        "SELECT end_offset, compacted_upto FROM partitions WHERE id = ?", (pid,)
    ).fetchone()
    if upto >= end:
        return False  # nothing appended since the last pass: nothing new superseded
    latest, dirty = _scan_keys(conn, codec, pid)
    for row_id in sorted(dirty):
        _rewrite(conn, codec, row_id, latest)
    conn.execute("UPDATE partitions SET compacted_upto = ? WHERE id = ?", (end, pid))
    return bool(dirty)


def _scan_keys(conn: sqlite3.Connection, codec: Codec, pid: int) -> tuple[_Latest, set[int]]:
    """Each key's latest record, and the rows holding a record some later one replaced."""
    latest: _Latest = {}
    dirty: set[int] = set()
    rows = conn.execute(
        "SELECT id, base_offset, n_records, sparse_offsets, payload FROM batches "
        "WHERE pid = ? ORDER BY last_offset",
        (pid,),
    )
    # Iterated lazily so only one row's payload is in memory at a time.
    for row_id, base, count, sparse, payload in rows:
        offsets = codec.row_offsets(base, count, sparse)
        for view, offset in zip(codec.keys.decode(payload), offsets, strict=True):
            if view.key is None:
                continue
            previous = latest.get(view.key)
            if previous is not None:
                dirty.add(previous[0])
            latest[view.key] = (row_id, offset)
    return latest, dirty


def _rewrite(conn: sqlite3.Connection, codec: Codec, row_id: int, latest: _Latest) -> None:
    base, count, sparse, payload = conn.execute(
        "SELECT base_offset, n_records, sparse_offsets, payload FROM batches WHERE id = ?",
        (row_id,),
    ).fetchone()
    pairs = zip(codec.records.decode(payload), codec.row_offsets(base, count, sparse), strict=True)
    keep = [(r, o) for r, o in pairs if r.key is None or latest[r.key][1] == o]
    if not keep:
        conn.execute("DELETE FROM batches WHERE id = ?", (row_id,))
        return
    records = [r for r, _ in keep]
    offsets = [o for _, o in keep]
    dense = offsets[-1] - offsets[0] + 1 == len(offsets)
    stamps = [r.timestamp for r in records]
    payload = codec.encode_records(records)
    conn.execute(
        "UPDATE batches SET base_offset = ?, last_offset = ?, n_records = ?, min_ts = ?,"
        " max_ts = ?, size_bytes = ?, sparse_offsets = ?, payload = ? WHERE id = ?",
        (
            offsets[0],
            offsets[-1],
            len(records),
            min(stamps),
            max(stamps),
            len(payload),
            None if dense else codec.encoder.encode(offsets),
            payload,
            row_id,
        ),
    )


def _trim_to_size(conn: sqlite3.Connection, pid: int, limit: int) -> bool:
    rows = conn.execute(
        "SELECT last_offset, size_bytes FROM batches WHERE pid = ? ORDER BY last_offset DESC",
        (pid,),
    ).fetchall()
    newer = 0
    for last_offset, size in rows:
        if newer >= limit:
            conn.execute(
                "DELETE FROM batches WHERE pid = ? AND last_offset <= ?", (pid, last_offset)
            )
            return True
        newer += size
    return False


def _refresh(conn: sqlite3.Connection, pid: int) -> None:
    """Recompute the partition's start offset and size after rows went or shrank."""
    conn.execute(
        "UPDATE partitions SET"
        " start_offset = COALESCE((SELECT base_offset FROM batches WHERE pid = ?1"
        " ORDER BY last_offset LIMIT 1), end_offset),"
        " size_bytes = (SELECT COALESCE(SUM(size_bytes), 0) FROM batches WHERE pid = ?1)"
        " WHERE id = ?1",
        (pid,),
    )
