"""The `Broker` protocol: the one seam between riverbed's core and a log backend.

Every backend (memory, sqlite, later Kafka, NATS JetStream, Redis Streams) implements
this protocol and passes the conformance suite in `riverbed.testing`. Core code never
reaches a backend any other way.

Vocabulary, as in Kafka:
- a topic has `partitions`; each partition is an ordered log of `Record`s with
  increasing offsets (dense from 0 where `capabilities.dense_offsets`; a backend that
  maps a native position, such as a Redis entry id, to the offset may leave gaps, so
  core code only ever continues at `record.offset + 1`);
- `start_offset` is the first offset still stored (retention and compaction move it),
  `end_offset` is the offset the next appended record will get;
- a consumer group splits the partitions of its topics among its live members; each
  partition has at most one owner at a time, and only the owner may commit it.

Group protocol (cooperative, as Kafka's KIP-429): `join_group` and `heartbeat` return an
`Assignment`. Partitions in `assigned` are the member's to consume. Partitions in
`revoking` are still the member's but have been given to someone else: the member stops
fetching them, lets in-flight handlers finish, commits, then calls `release`. Only then
does the new owner receive them, so no partition is ever consumed by two members at once
(unless a member is declared dead after `session_timeout` without a heartbeat, in which
case its partitions are reassigned and its later commits are refused with `FencedError`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple, Protocol, runtime_checkable

import msgspec

from riverbed.events import Record

__all__ = [
    "Assignment",
    "Broker",
    "Capabilities",
    "GroupInfo",
    "MemberInfo",
    "PartitionInfo",
    "TopicInfo",
    "TopicPartition",
    "TopicSpec",
]


class TopicPartition(NamedTuple):
    """One partition of one topic."""

    topic: str
    partition: int


class TopicSpec(msgspec.Struct, frozen=True):
    """What a topic is: its name, partition count, retention and compaction."""

    name: str
    partitions: int = 1
    retention_ms: int | None = None
    """Delete records older than this, by record timestamp (Kafka's CreateTime); None: never."""
    retention_bytes: int | None = None
    """Per partition: delete the oldest records while the partition is larger."""
    compact: bool = False
    """Keep only the latest record per key (keyless records are kept)."""


class PartitionInfo(msgspec.Struct, frozen=True):
    """Offsets of one partition: `[start_offset, end_offset)` are stored."""

    partition: int
    start_offset: int
    end_offset: int


class TopicInfo(msgspec.Struct, frozen=True):
    """A topic's spec and its partitions' offsets."""

    spec: TopicSpec
    partitions: list[PartitionInfo]

    @property
    def name(self) -> str:
        return self.spec.name

    def end_offsets(self) -> dict[int, int]:
        """Partition -> offset the next record will get."""
        return {p.partition: p.end_offset for p in self.partitions}


class Assignment(msgspec.Struct, frozen=True):
    """What a group member owns after a join or heartbeat."""

    generation: int
    assigned: frozenset[TopicPartition]
    """Owned: consume these."""
    revoking: frozenset[TopicPartition] = frozenset()
    """Owned but moving to another member: drain, commit, then `release` them."""


class MemberInfo(msgspec.Struct, frozen=True):
    """One live member of a consumer group."""

    member_id: str
    client: str
    topics: list[str]
    partitions: list[TopicPartition]
    last_heartbeat_ms: int


class GroupInfo(msgspec.Struct, frozen=True):
    """A consumer group's generation, members and committed offsets."""

    name: str
    generation: int
    members: list[MemberInfo]
    committed: dict[TopicPartition, int]


class Capabilities(msgspec.Struct, frozen=True):
    """What a backend can guarantee; the app checks these at start-up."""

    transactions: bool = False
    """`append_and_commit` is atomic (exactly-once processing is possible)."""
    compaction: bool = False
    retention: bool = True
    fetch_by_time: bool = True
    multi_process: bool = False
    """Several processes can share the log (and a consumer group) on one machine."""
    multi_machine: bool = False
    """Processes on several machines can share the log and a consumer group."""
    dense_offsets: bool = True
    """Offsets are consecutive (0, 1, 2, ...). When False they only increase: the backend
    maps a native position (a Redis entry id, a JetStream stream sequence) to the offset,
    and `end_offset` is a bound the next record's offset will reach or pass."""


@runtime_checkable
class Broker(Protocol):
    """A durable, partitioned, ordered log with consumer groups.

    All methods are coroutines safe to call from one event loop; a backend that needs
    threads hides them. Errors: `UnknownTopic` for a missing topic, `FencedError` for a
    member that no longer owns what it commits, `BrokerUnavailable` (retriable) when the
    backend cannot be reached, `ClosedError` after `aclose()`.
    """

    url: str
    capabilities: Capabilities

    async def start(self) -> None:
        """Connect / open storage. Idempotent."""

    async def aclose(self) -> None:
        """Release every resource. Idempotent; later calls raise `ClosedError`."""

    async def maintain(self) -> None:
        """Periodic housekeeping: retention, compaction, expiring dead group members.

        The app's runtime calls it every few seconds. A no-op where the server does it.
        """

    # -- topics -------------------------------------------------------------------
    async def create_topic(self, spec: TopicSpec) -> TopicInfo:
        """Create a topic; idempotent when it exists with the same partition count.

        Raises `TopicConflict` if it exists with a different partition count. Retention
        and compaction settings of an existing topic are updated to `spec`'s.
        """

    async def describe_topic(self, name: str) -> TopicInfo:
        """The topic's spec and offsets; `UnknownTopic` if it does not exist."""

    async def list_topics(self) -> list[TopicInfo]:
        """Every topic, sorted by name."""

    # -- producing and fetching -----------------------------------------------------
    async def append(self, topic: str, records: Sequence[Record[Any]]) -> list[int]:
        """Append records atomically (all or none) and return their offsets.

        Each record's `partition` must be set (0 <= partition < partitions). Order is
        kept per partition: records appear in the order given. The broker sets `topic`
        and `offset` on the records it was given.
        """

    async def fetch(
        self,
        positions: Mapping[TopicPartition, int],
        *,
        max_records: int = 1000,
        timeout: float = 0.0,
    ) -> list[Record[Any]]:
        """Records at or after each partition's position, in offset order per partition.

        Waits up to `timeout` seconds for at least one record when none is available,
        waking promptly (a few ms) after an append, also from another process on
        backends with `multi_process`. A position below the partition's start offset
        reads from the start offset (the records in between were deleted by retention).
        Returns at most `max_records` records in total; `data` is not decoded.
        """

    async def offset_for_time(self, tp: TopicPartition, timestamp_ms: int) -> int:
        """The first offset whose record time is >= `timestamp_ms`, else the end offset."""

    # -- consumer groups ------------------------------------------------------------
    async def join_group(
        self,
        group: str,
        member_id: str,
        topics: Sequence[str],
        *,
        session_timeout: float = 10.0,
        client: str = "",
    ) -> Assignment:
        """Add a member (or refresh it) and rebalance; the topics must exist."""

    async def heartbeat(self, group: str, member_id: str) -> Assignment:
        """Keep the member alive and return its current assignment.

        Raises `FencedError` when the member is unknown (it left or was declared dead):
        it must drop every partition without committing and join again.
        """

    async def release(
        self, group: str, member_id: str, partitions: Sequence[TopicPartition]
    ) -> None:
        """Give up revoked partitions (after committing them) so their new owner gets them."""

    async def leave_group(self, group: str, member_id: str) -> None:
        """Remove the member and rebalance its partitions to the others. Idempotent."""

    async def commit(
        self, group: str, member_id: str, offsets: Mapping[TopicPartition, int]
    ) -> None:
        """Store each partition's next offset to consume, atomically.

        Raises `FencedError` (and stores nothing) if the member does not own every
        partition named.
        """

    async def committed(self, group: str, topic: str) -> dict[int, int]:
        """Partition -> committed offset; partitions never committed are absent."""

    async def set_offsets(self, group: str, offsets: Mapping[TopicPartition, int]) -> None:
        """Administrative reset of committed offsets.

        Refused with `ConfigError` while the group has live members (as Kafka does):
        stop the consumers first.
        """

    async def list_groups(self) -> list[str]:
        """Names of the groups that have members or committed offsets, sorted."""

    async def describe_group(self, group: str) -> GroupInfo:
        """Members, generation and committed offsets of a group (empty if unknown)."""

    # -- transactions ------------------------------------------------------------------
    async def append_and_commit(
        self,
        appends: Sequence[tuple[str, Sequence[Record[Any]]]],
        group: str,
        member_id: str,
        offsets: Mapping[TopicPartition, int],
    ) -> list[list[int]]:
        """Append to several topics and commit the group's offsets in one atomic step.

        Either every record is stored and every offset committed, or nothing is (a
        `FencedError` from the ownership check included). Backends without
        `capabilities.transactions` raise `UnsupportedCapability`.
        """
