"""`memory://`: a complete in-process broker for tests and notebooks.

A real implementation of the `Broker` protocol (ordering, groups, retention,
compaction, transactions), not a mock: it passes the same conformance suite as the
durable backends. Nothing survives the process.
"""

from __future__ import annotations

import asyncio
import bisect
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import msgspec

from riverbed.brokers._groups import GroupState
from riverbed.brokers.base import (
    Assignment,
    Capabilities,
    GroupInfo,
    PartitionInfo,
    TopicInfo,
    TopicPartition,
    TopicSpec,
)
from riverbed.errors import ClosedError, ConfigError, TopicConflict, UnknownTopic
from riverbed.events import Record

__all__ = ["MemoryBroker"]


class _Partition:
    __slots__ = ("end", "records")

    def __init__(self) -> None:
        self.records: list[Record[Any]] = []
        self.end = 0

    @property
    def start(self) -> int:
        return self.records[0].offset if self.records else self.end

    def read(self, offset: int, limit: int) -> list[Record[Any]]:
        i = bisect.bisect_left(self.records, offset, key=lambda r: r.offset)
        return [_copy(r) for r in self.records[i : i + limit]]


def _copy(r: Record[Any]) -> Record[Any]:
    """An independent record (own headers, no decoded data), as a durable log returns."""
    return msgspec.structs.replace(r, headers=dict(r.headers), data=None)


class MemoryBroker:
    """In-memory `Broker`. `clock` returns milliseconds (injectable for tests)."""

    capabilities = Capabilities(
        transactions=True, compaction=True, retention=True, fetch_by_time=True
    )

    def __init__(self, url: str = "memory://", *, clock: Callable[[], int] | None = None) -> None:
        self.url = url
        self._clock = clock or (lambda: time.time_ns() // 1_000_000)
        self._specs: dict[str, TopicSpec] = {}
        self._logs: dict[TopicPartition, _Partition] = {}
        self._groups: dict[str, GroupState] = {}
        self._offsets: dict[str, dict[TopicPartition, int]] = {}
        self._appended: asyncio.Event | None = None
        self._closed = False

    # -- lifecycle --------------------------------------------------------------------
    async def start(self) -> None:
        self._check_open()

    async def aclose(self) -> None:
        self._closed = True
        if self._appended is not None:
            self._appended.set()

    async def maintain(self) -> None:
        self._check_open()
        now = self._clock()
        for state in self._groups.values():
            state.expire(now, self._partition_counts())
        for name, spec in self._specs.items():
            for p in range(spec.partitions):
                self._apply_retention(spec, self._logs[TopicPartition(name, p)], now)

    # -- topics -----------------------------------------------------------------------
    async def create_topic(self, spec: TopicSpec) -> TopicInfo:
        self._check_open()
        existing = self._specs.get(spec.name)
        if existing is not None and existing.partitions != spec.partitions:
            raise TopicConflict(
                f"topic {spec.name!r} exists with {existing.partitions} partitions, "
                f"not {spec.partitions}"
            )
        self._specs[spec.name] = spec
        for p in range(spec.partitions):
            self._logs.setdefault(TopicPartition(spec.name, p), _Partition())
        return self._info(spec.name)

    async def describe_topic(self, name: str) -> TopicInfo:
        self._check_open()
        return self._info(name)

    async def list_topics(self) -> list[TopicInfo]:
        self._check_open()
        return [self._info(n) for n in sorted(self._specs)]

    # -- produce / fetch --------------------------------------------------------------
    async def append(self, topic: str, records: Sequence[Record[Any]]) -> list[int]:
        self._check_open()
        return self._append(topic, records)

    def _append(self, topic: str, records: Sequence[Record[Any]]) -> list[int]:
        spec = self._spec(topic)
        for r in records:
            if not 0 <= r.partition < spec.partitions:
                raise ConfigError(
                    f"partition {r.partition} out of range for topic {topic!r} "
                    f"({spec.partitions} partitions)"
                )
        offsets = []
        for r in records:
            log = self._logs[TopicPartition(topic, r.partition)]
            r.topic, r.offset = topic, log.end
            # Store a copy: the log must not change when the caller mutates its record.
            log.records.append(_copy(r))
            log.end += 1
            offsets.append(r.offset)
        self._wake()
        return offsets

    async def fetch(
        self,
        positions: Mapping[TopicPartition, int],
        *,
        max_records: int = 1000,
        timeout: float = 0.0,
    ) -> list[Record[Any]]:
        self._check_open()
        out = self._read(positions, max_records)
        if out or timeout <= 0:
            return out
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not out:
            # Appends to other partitions wake us too: wait again for what is left.
            remaining = deadline - loop.time()
            if remaining <= 0:
                return []
            try:
                async with asyncio.timeout(remaining):
                    await self._waiter().wait()
            except TimeoutError:
                return []
            self._check_open()
            out = self._read(positions, max_records)
        return out

    def _read(self, positions: Mapping[TopicPartition, int], limit: int) -> list[Record[Any]]:
        out: list[Record[Any]] = []
        for tp, offset in positions.items():
            if len(out) >= limit:
                break
            log = self._logs.get(tp)
            if log is None:
                raise UnknownTopic(f"no partition {tp.partition} in topic {tp.topic!r}")
            out.extend(log.read(max(offset, log.start), limit - len(out)))
        return out

    async def offset_for_time(self, tp: TopicPartition, timestamp_ms: int) -> int:
        self._check_open()
        log = self._logs.get(tp)
        if log is None:
            raise UnknownTopic(f"no partition {tp.partition} in topic {tp.topic!r}")
        for r in log.records:
            if r.timestamp >= timestamp_ms:
                return r.offset
        return log.end

    # -- groups -----------------------------------------------------------------------
    async def join_group(
        self,
        group: str,
        member_id: str,
        topics: Sequence[str],
        *,
        session_timeout: float = 10.0,
        client: str = "",
    ) -> Assignment:
        self._check_open()
        for t in topics:
            self._spec(t)
        return self._groups.setdefault(group, GroupState()).admit(
            member_id,
            topics,
            client=client,
            now_ms=self._clock(),
            session_timeout_ms=int(session_timeout * 1000),
            partitions=self._partition_counts(),
        )

    async def heartbeat(self, group: str, member_id: str) -> Assignment:
        self._check_open()
        state = self._groups.setdefault(group, GroupState())
        return state.beat(member_id, now_ms=self._clock(), partitions=self._partition_counts())

    async def release(
        self, group: str, member_id: str, partitions: Sequence[TopicPartition]
    ) -> None:
        self._check_open()
        if group in self._groups:
            self._groups[group].release(member_id, partitions)

    async def leave_group(self, group: str, member_id: str) -> None:
        self._check_open()
        if group in self._groups:
            self._groups[group].leave(member_id, self._partition_counts())

    async def commit(
        self, group: str, member_id: str, offsets: Mapping[TopicPartition, int]
    ) -> None:
        self._check_open()
        self._commit(group, member_id, offsets)

    def _commit(self, group: str, member_id: str, offsets: Mapping[TopicPartition, int]) -> None:
        self._groups.setdefault(group, GroupState()).check_owner(member_id, offsets)
        self._offsets.setdefault(group, {}).update(offsets)

    async def committed(self, group: str, topic: str) -> dict[int, int]:
        self._check_open()
        return {
            tp.partition: off
            for tp, off in self._offsets.get(group, {}).items()
            if tp.topic == topic
        }

    async def set_offsets(self, group: str, offsets: Mapping[TopicPartition, int]) -> None:
        self._check_open()
        state = self._groups.get(group)
        if state is not None:
            state.expire(self._clock(), self._partition_counts())
            if state.members:
                raise ConfigError(
                    f"group {group!r} has {len(state.members)} live member(s); stop its "
                    "consumers before resetting offsets"
                )
        for tp in offsets:
            self._spec(tp.topic)
        self._offsets.setdefault(group, {}).update(offsets)

    async def list_groups(self) -> list[str]:
        self._check_open()
        names = {g for g, s in self._groups.items() if s.members} | {
            g for g, o in self._offsets.items() if o
        }
        return sorted(names)

    async def describe_group(self, group: str) -> GroupInfo:
        self._check_open()
        state = self._groups.get(group, GroupState())
        return GroupInfo(
            group, state.generation, state.member_infos(), dict(self._offsets.get(group, {}))
        )

    async def append_and_commit(
        self,
        appends: Sequence[tuple[str, Sequence[Record[Any]]]],
        group: str,
        member_id: str,
        offsets: Mapping[TopicPartition, int],
    ) -> list[list[int]]:
        self._check_open()
        # Validate everything first: one event loop turn, nothing awaits, so nothing
        # can interleave, and a failure leaves no partial state.
        self._groups.setdefault(group, GroupState()).check_owner(member_id, offsets)
        for topic, records in appends:
            spec = self._spec(topic)
            for r in records:
                if not 0 <= r.partition < spec.partitions:
                    raise ConfigError(f"partition {r.partition} out of range for {topic!r}")
        result = [self._append(topic, records) for topic, records in appends]
        self._commit(group, member_id, offsets)
        return result

    # -- internals --------------------------------------------------------------------
    def _check_open(self) -> None:
        if self._closed:
            raise ClosedError("the memory broker is closed")

    def _spec(self, topic: str) -> TopicSpec:
        try:
            return self._specs[topic]
        except KeyError:
            raise UnknownTopic(f"topic {topic!r} does not exist") from None

    def _info(self, name: str) -> TopicInfo:
        spec = self._spec(name)
        parts = []
        for p in range(spec.partitions):
            log = self._logs[TopicPartition(name, p)]
            parts.append(PartitionInfo(p, log.start, log.end))
        return TopicInfo(spec, parts)

    def _partition_counts(self) -> dict[str, int]:
        return {n: s.partitions for n, s in self._specs.items()}

    def _waiter(self) -> asyncio.Event:
        if self._appended is None:
            self._appended = asyncio.Event()
        return self._appended

    def _wake(self) -> None:
        if self._appended is not None:
            self._appended.set()
            self._appended = None

    @staticmethod
    def _apply_retention(spec: TopicSpec, log: _Partition, now: int) -> None:
        recs = log.records
        if spec.compact:
            latest = {r.key: r.offset for r in recs if r.key is not None}
            recs = [r for r in recs if r.key is None or latest[r.key] == r.offset]
        if spec.retention_ms is not None:
            recs = [r for r in recs if now - r.timestamp <= spec.retention_ms]
        if spec.retention_bytes is not None:
            size = sum(len(r.value) + len(r.key or b"") for r in recs)
            drop = 0
            while drop < len(recs) and size > spec.retention_bytes:
                size -= len(recs[drop].value) + len(recs[drop].key or b"")
                drop += 1
            recs = recs[drop:]
        log.records = recs
