"""Small SQL helpers shared by the sqlite log's read and write sides (synchronous)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Mapping

import msgspec

from riverbed.brokers._groups import GroupState
from riverbed.brokers.base import PartitionInfo, TopicInfo, TopicPartition, TopicSpec
from riverbed.errors import UnknownTopic

__all__ = [
    "committed_offsets",
    "decode_spec",
    "encode",
    "load_group",
    "load_groups",
    "partition_counts",
    "store_group",
    "topic_info",
    "topic_names",
    "upsert_offsets",
]

encode = msgspec.msgpack.encode
_SPEC = msgspec.msgpack.Decoder(TopicSpec)
_GROUP = msgspec.msgpack.Decoder(GroupState)


def decode_spec(blob: bytes) -> TopicSpec:
    return _SPEC.decode(blob)


def topic_info(conn: sqlite3.Connection, name: str) -> TopicInfo:
    """The topic's spec and offsets; `UnknownTopic` if it does not exist."""
    row = conn.execute("SELECT spec FROM topics WHERE name = ?", (name,)).fetchone()
    if row is None:
        raise UnknownTopic(f"topic {name!r} does not exist")
    parts = conn.execute(
        "SELECT part, start_offset, end_offset FROM partitions WHERE topic = ? ORDER BY part",
        (name,),
    ).fetchall()
    return TopicInfo(decode_spec(row[0]), [PartitionInfo(*p) for p in parts])


def topic_names(conn: sqlite3.Connection) -> list[str]:
    return [name for (name,) in conn.execute("SELECT name FROM topics ORDER BY name")]


def partition_counts(conn: sqlite3.Connection) -> dict[str, int]:
    """Topic -> partition count, what the group state machine balances over."""
    return dict(conn.execute("SELECT name, partitions FROM topics"))


def load_group(conn: sqlite3.Connection, group: str) -> GroupState:
    row = conn.execute("SELECT state FROM groups WHERE name = ?", (group,)).fetchone()
    return GroupState() if row is None else _GROUP.decode(row[0])


def load_groups(conn: sqlite3.Connection) -> dict[str, GroupState]:
    return {
        name: _GROUP.decode(blob) for name, blob in conn.execute("SELECT name, state FROM groups")
    }


def store_group(conn: sqlite3.Connection, group: str, state: GroupState) -> None:
    conn.execute(
        "INSERT INTO groups (name, state) VALUES (?, ?) "
        "ON CONFLICT (name) DO UPDATE SET state = excluded.state",
        (group, encode(state)),
    )


def upsert_offsets(
    conn: sqlite3.Connection, group: str, offsets: Mapping[TopicPartition, int]
) -> None:
    conn.executemany(
        "INSERT INTO group_offsets (grp, topic, part, next_offset) VALUES (?, ?, ?, ?) "
        "ON CONFLICT (grp, topic, part) DO UPDATE SET next_offset = excluded.next_offset",
        [(group, tp.topic, tp.partition, offset) for tp, offset in offsets.items()],
    )


def committed_offsets(conn: sqlite3.Connection, group: str) -> Iterable[tuple[TopicPartition, int]]:
    rows = conn.execute(
        "SELECT topic, part, next_offset FROM group_offsets WHERE grp = ? ORDER BY topic, part",
        (group,),
    )
    return [(TopicPartition(topic, part), offset) for topic, part, offset in rows]
