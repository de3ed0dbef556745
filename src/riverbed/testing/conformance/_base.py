"""What every conformance case shares: helpers to build records and check groups, and
the base class holding the `broker` and `peer` fixtures."""

from __future__ import annotations

import asyncio
import itertools
import time
import uuid
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
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


async def settle(
    group: str,
    members: Sequence[tuple[Broker, str]],
    *,
    covers: frozenset[TopicPartition] | None = None,
    timeout: float = 10.0,
) -> dict[str, Assignment]:
    """Heartbeat every member and release what it is revoking, until nothing moves.

    Settled means: nothing is revoking, every member saw the same generation, and (when
    `covers` is given) the members together own exactly those partitions. Local backends
    settle in a round or two; a server that rebalances in the background (Kafka) takes
    longer, hence the time bound rather than a round count. Ownership is checked to be
    exclusive at every round.
    """
    deadline = time.monotonic() + timeout
    while True:
        current = {mid: await b.heartbeat(group, mid) for b, mid in members}
        assert_exclusive(current)
        moving = [(b, mid, current[mid].revoking) for b, mid in members if current[mid].revoking]
        for b, mid, tps in moving:
            await b.release(group, mid, sorted(tps))
        together = frozenset().union(*(a.assigned for a in current.values()))
        generations = {a.generation for a in current.values()}
        if not moving and len(generations) == 1 and covers in (None, together):
            return current
        if time.monotonic() > deadline:
            raise AssertionError(f"group {group!r} did not settle within {timeout:g} s: {current}")
        await asyncio.sleep(0.02 if len(generations) == 1 and not moving else 0.05)


async def heartbeat_until(
    broker: Broker,
    group: str,
    member_id: str,
    done: Callable[[Assignment], bool],
    *,
    timeout: float = 10.0,
) -> Assignment:
    """Heartbeat until the assignment satisfies `done` (a rebalance may be under way)."""
    deadline = time.monotonic() + timeout
    while True:
        a = await broker.heartbeat(group, member_id)
        if done(a):
            return a
        if time.monotonic() > deadline:
            raise AssertionError(f"{member_id!r} in {group!r} still has {a} after {timeout:g} s")
        await asyncio.sleep(0.02)


async def stored_offsets(broker: Broker, tp: TopicPartition, start: int = 0) -> list[int]:
    """Every offset stored in a partition from `start`, read to the end."""
    found: list[int] = []
    while batch := await broker.fetch({tp: start}, max_records=1000):
        found += offsets_of(batch)
        start = found[-1] + 1
    return found


def is_increasing(offsets: Sequence[int]) -> bool:
    return all(a < b for a, b in itertools.pairwise(offsets))


def by_partition(
    partitions: Sequence[int], offsets: Sequence[int], count: int
) -> dict[int, list[int]]:
    """Split what one `append` returned by the partitions its records went to."""
    split: dict[int, list[int]] = {p: [] for p in range(count)}
    for p, offset in zip(partitions, offsets, strict=True):
        split[p].append(offset)
    return split


async def assert_partition_ends(
    broker: Broker, topic: str, appended: Mapping[int, Sequence[int]]
) -> None:
    """Each partition's end offset fits what was appended to it (and nothing else was).

    `appended` maps every partition to the offsets appended to it since the topic was
    created. Dense backends end at exactly the count; others just past the last offset.
    """
    info = await broker.describe_topic(topic)
    ends = info.end_offsets()
    assert sorted(ends) == sorted(appended), f"partitions {sorted(ends)} != {sorted(appended)}"
    for p, offsets in appended.items():
        if broker.capabilities.dense_offsets:
            assert ends[p] == len(offsets), f"partition {p}: end {ends[p]}, expected {len(offsets)}"
        elif offsets:
            assert ends[p] > offsets[-1], f"partition {p}: end {ends[p]} <= last {offsets[-1]}"
        tp = TopicPartition(topic, p)
        assert await stored_offsets(broker, tp) == list(offsets), f"partition {p} holds others"


def offsets_of(records: Sequence[Record[Any]], partition: int | None = None) -> list[int]:
    return [r.offset for r in records if partition is None or r.partition == partition]


def assert_prefix_of(records: Sequence[Record[Any]], partition: int, stored: list[int]) -> None:
    """A partition's fetched records are the first of `stored`, in order, none skipped."""
    got = offsets_of(records, partition)
    assert got == stored[: len(got)], (
        f"partition {partition}: expected a prefix of {stored}, got {got}"
    )


class ConformanceBase:
    """The fixtures and hooks every group of cases uses; see the package doc."""

    pytestmark = pytest.mark.asyncio

    short_session: float = 0.5
    """Session timeout (s) of a member the expiry cases let die; a server with a minimum
    session timeout (Kafka's group.min.session.timeout.ms) raises it."""
    settle_timeout: float = 10.0
    """How long a group may take to settle after a join or leave (`settle`)."""
    balance: str = "topic"
    """How the backend's assignor balances: "topic" (each topic's partitions spread
    evenly over its subscribers, riverbed's own assignor) or "member" (each member's total
    count, Kafka's cooperative-sticky assignor)."""
    revocation_completes: bool = False
    """True where a revocation, once handed to a member, must complete (Kafka's
    cooperative protocol): the member releases and gets the partitions back in the next
    generation, instead of keeping them when the rebalance is undone."""

    def dense(self, broker: Broker) -> bool:
        return broker.capabilities.dense_offsets

    async def settle(
        self,
        group: str,
        members: Sequence[tuple[Broker, str]],
        covers: frozenset[TopicPartition] | None = None,
    ) -> dict[str, Assignment]:
        return await settle(group, members, covers=covers, timeout=self.settle_timeout)

    async def heartbeat_until(
        self, broker: Broker, group: str, member_id: str, done: Callable[[Assignment], bool]
    ) -> Assignment:
        return await heartbeat_until(broker, group, member_id, done, timeout=self.settle_timeout)

    async def wait_expired(self) -> None:
        """Sleep until a member with `short_session` that stopped heartbeating is dead."""
        await asyncio.sleep(self.short_session * 1.6)

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
