"""What every conformance case shares: helpers to build records and check groups, and
the base class holding the `broker` and `peer` fixtures."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

import pytest
import pytest_asyncio

from riverbed.brokers.base import Assignment, Broker, TopicPartition, TopicSpec
from riverbed.events import IdGenerator, Record

_ids = IdGenerator()


# -- helpers ------------------------------------------------------------------------------
def unique_name(prefix: str) -> str:
    """A topic or group name no other test uses."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def make_record(
    partition: int = 0,
    *,
    key: bytes | None = None,
    value: bytes = b"v",
    timestamp: int | None = None,
    headers: Mapping[str, str] | None = None,
    type: str = "riverbed.test",
    source: str = "riverbed.testing",
) -> Record[Any]:
    """A record ready to append (fresh id, time now unless given)."""
    return Record(
        id=_ids.new(),
        type=type,
        source=source,
        timestamp=now_ms() if timestamp is None else timestamp,
        key=key,
        value=value,
        headers=dict(headers or {}),
        partition=partition,
    )


def all_partitions(topic: str, n: int) -> frozenset[TopicPartition]:
    return frozenset(TopicPartition(topic, p) for p in range(n))


def owned(a: Assignment) -> frozenset[TopicPartition]:
    """Everything a member holds: assigned plus still-revoking partitions."""
    return a.assigned | a.revoking


def assert_exclusive(assignments: Mapping[str, Assignment]) -> None:
    """No partition is held by two members at once."""
    holders: dict[TopicPartition, list[str]] = {}
    for member, a in assignments.items():
        assert not (a.assigned & a.revoking), f"{member} has partitions both assigned and revoking"
        for tp in owned(a):
            holders.setdefault(tp, []).append(member)
    shared = {tp: ms for tp, ms in holders.items() if len(ms) > 1}
    assert not shared, f"partitions held by several members at once: {shared}"


async def settle(group: str, members: Sequence[tuple[Broker, str]]) -> dict[str, Assignment]:
    """Heartbeat every member and release what it is revoking, until nothing moves."""
    for _ in range(10):
        current = {mid: await b.heartbeat(group, mid) for b, mid in members}
        assert_exclusive(current)
        moving = [(b, mid, current[mid].revoking) for b, mid in members if current[mid].revoking]
        if not moving:
            return current
        for b, mid, tps in moving:
            await b.release(group, mid, sorted(tps))
    raise AssertionError(f"group {group!r} did not settle after 10 heartbeat/release rounds")


def offsets_of(records: Sequence[Record[Any]], partition: int | None = None) -> list[int]:
    return [r.offset for r in records if partition is None or r.partition == partition]


def assert_prefix_from(records: Sequence[Record[Any]], partition: int, start: int) -> None:
    """A partition's fetched records are consecutive offsets beginning at `start`."""
    got = offsets_of(records, partition)
    assert got == list(range(start, start + len(got))), (
        f"partition {partition}: expected consecutive offsets from {start}, got {got}"
    )


class ConformanceBase:
    """The fixtures and hooks every group of cases uses; see the package doc."""

    pytestmark = pytest.mark.asyncio

    @pytest.fixture
    def broker(self) -> Broker:
        raise NotImplementedError(
            "a BrokerConformance subclass must define a `broker` fixture yielding a started broker"
        )

    async def open_peer(self, broker: Broker) -> Broker | None:
        """A second started handle on `broker`'s store, or None to share `broker` itself.

        Override for backends that several handles (processes) can share.
        """
        return None

    @pytest_asyncio.fixture
    async def peer(self, broker: Broker) -> AsyncIterator[Broker]:
        other = await self.open_peer(broker)
        if other is None:
            yield broker
            return
        try:
            yield other
        finally:
            await other.aclose()

    async def new_topic(self, broker: Broker, partitions: int = 1, **spec: Any) -> str:
        name = unique_name("t")
        await broker.create_topic(TopicSpec(name, partitions, **spec))
        return name

    def require(self, broker: Broker, capability: str) -> None:
        if not getattr(broker.capabilities, capability):
            pytest.skip(f"{type(broker).__name__} declares capabilities.{capability}=False")
