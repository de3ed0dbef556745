"""The backend conformance suite: every case of the `Broker` protocol, as a test class.

A backend's test module subclasses `BrokerConformance` and provides a `broker` fixture
that yields a started broker (and closes it afterwards)::

    import pytest_asyncio
    from riverbed.testing.conformance import BrokerConformance

    class TestMyBroker(BrokerConformance):
        @pytest_asyncio.fixture
        async def broker(self, tmp_path):
            b = MyBroker(f"my://{tmp_path}")
            await b.start()
            yield b
            await b.aclose()

A backend whose store can be opened twice (a file shared by processes, a server)
overrides `open_peer` to return a second, started handle on the same store; the group,
visibility and wake-up cases then run across the two handles. Cases that need a
capability the backend declares it lacks (`Capabilities`) are skipped with the reason;
nothing else is ever skipped. Add `pytest.register_assert_rewrite("riverbed.testing")`
to the conftest that imports this module to get pytest's detailed assertion messages.

Every case uses fresh topic and group names, so a backend on a shared server passes too.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from typing import Any

import pytest
import pytest_asyncio

from riverbed.brokers.base import Assignment, Broker, TopicPartition, TopicSpec
from riverbed.errors import (
    ClosedError,
    ConfigError,
    FencedError,
    RiverbedError,
    TopicConflict,
    UnknownTopic,
    UnsupportedCapability,
)
from riverbed.events import IdGenerator, Record

__all__ = ["BrokerConformance", "make_record", "unique_name"]

_ids = IdGenerator()
_NONE: frozenset[TopicPartition] = frozenset()


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


class BrokerConformance:
    """The conformance cases; subclass it in a backend's test module (see module doc)."""

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

    # -- lifecycle ------------------------------------------------------------------------
    async def test_start_is_idempotent(self, broker: Broker) -> None:
        await broker.start()
        topic = await self.new_topic(broker)
        await broker.start()
        assert (await broker.describe_topic(topic)).name == topic

    async def test_every_call_after_aclose_raises_closed(self, broker: Broker) -> None:
        topic = await self.new_topic(broker)
        tp = TopicPartition(topic, 0)
        g, g2 = unique_name("g"), unique_name("g")
        await broker.join_group(g, "m", [topic])
        await broker.aclose()
        await broker.aclose()  # idempotent
        calls: dict[str, Callable[[], Awaitable[object]]] = {
            "start": lambda: broker.start(),
            "maintain": lambda: broker.maintain(),
            "create_topic": lambda: broker.create_topic(TopicSpec(unique_name("t"))),
            "describe_topic": lambda: broker.describe_topic(topic),
            "list_topics": lambda: broker.list_topics(),
            "append": lambda: broker.append(topic, [make_record()]),
            "fetch": lambda: broker.fetch({tp: 0}),
            "fetch(timeout)": lambda: broker.fetch({tp: 0}, timeout=0.2),
            "offset_for_time": lambda: broker.offset_for_time(tp, 0),
            "join_group": lambda: broker.join_group(g, "m2", [topic]),
            "heartbeat": lambda: broker.heartbeat(g, "m"),
            "release": lambda: broker.release(g, "m", [tp]),
            "leave_group": lambda: broker.leave_group(g, "m"),
            "commit": lambda: broker.commit(g, "m", {tp: 0}),
            "committed": lambda: broker.committed(g, topic),
            "set_offsets": lambda: broker.set_offsets(g2, {tp: 0}),
            "list_groups": lambda: broker.list_groups(),
            "describe_group": lambda: broker.describe_group(g),
            "append_and_commit": lambda: broker.append_and_commit(
                [(topic, [make_record()])], g, "m", {tp: 1}
            ),
        }
        failures = []
        for name, call in calls.items():
            try:
                await call()
            except ClosedError:
                continue
            except Exception as exc:
                failures.append(f"{name} raised {exc!r}")
            else:
                failures.append(f"{name} returned normally")
        assert not failures, "after aclose() every call must raise ClosedError: " + "; ".join(
            failures
        )

    async def test_aclose_ends_a_pending_fetch(self, broker: Broker) -> None:
        topic = await self.new_topic(broker)
        task = asyncio.create_task(broker.fetch({TopicPartition(topic, 0): 0}, timeout=10.0))
        await asyncio.sleep(0.05)
        await broker.aclose()
        done, _ = await asyncio.wait({task}, timeout=2.0)
        if not done:
            task.cancel()
            pytest.fail("a fetch waiting when aclose() was called still waited 2 s later")
        exc = task.exception()
        assert exc is None or isinstance(exc, ClosedError), f"pending fetch raised {exc!r}"
        if exc is None:
            assert task.result() == []

    # -- topics -----------------------------------------------------------------------------
    async def test_create_topic_returns_info(self, broker: Broker) -> None:
        spec = TopicSpec(unique_name("t"), 3, retention_ms=60_000)
        info = await broker.create_topic(spec)
        assert info.spec == spec
        assert info.name == spec.name
        assert [(p.partition, p.start_offset, p.end_offset) for p in info.partitions] == [
            (0, 0, 0),
            (1, 0, 0),
            (2, 0, 0),
        ]

    async def test_create_topic_is_idempotent_and_keeps_records(self, broker: Broker) -> None:
        topic = await self.new_topic(broker, 2)
        await broker.append(topic, [make_record(0), make_record(0), make_record(1)])
        info = await broker.create_topic(TopicSpec(topic, 2))
        assert info.end_offsets() == {0: 2, 1: 1}
        got = await broker.fetch({TopicPartition(topic, 0): 0})
        assert offsets_of(got) == [0, 1]

    async def test_create_topic_updates_retention_settings(self, broker: Broker) -> None:
        topic = await self.new_topic(broker, 2)
        updated = TopicSpec(topic, 2, retention_ms=5_000, retention_bytes=1 << 20)
        assert (await broker.create_topic(updated)).spec == updated
        assert (await broker.describe_topic(topic)).spec == updated

    async def test_create_topic_with_other_partition_count_conflicts(self, broker: Broker) -> None:
        topic = await self.new_topic(broker, 2)
        with pytest.raises(TopicConflict):
            await broker.create_topic(TopicSpec(topic, 3))
        assert len((await broker.describe_topic(topic)).partitions) == 2

    async def test_describe_and_list_topics(self, broker: Broker) -> None:
        suffix = uuid.uuid4().hex[:12]
        second, first = f"zz-{suffix}", f"aa-{suffix}"
        await broker.create_topic(TopicSpec(second, 1))
        await broker.create_topic(TopicSpec(first, 4))
        await broker.append(first, [make_record(3), make_record(3)])
        info = await broker.describe_topic(first)
        assert info.spec == TopicSpec(first, 4)
        assert [p.partition for p in info.partitions] == [0, 1, 2, 3]
        assert info.end_offsets() == {0: 0, 1: 0, 2: 0, 3: 2}
        assert info.partitions[3].start_offset == 0
        listed = await broker.list_topics()
        names = [t.name for t in listed]
        assert names == sorted(names)
        assert first in names
        assert second in names
        assert listed[names.index(first)] == info

    async def test_unknown_topic_raises(self, broker: Broker) -> None:
        missing = unique_name("missing")
        tp = TopicPartition(missing, 0)
        with pytest.raises(UnknownTopic):
            await broker.describe_topic(missing)
        with pytest.raises(UnknownTopic):
            await broker.append(missing, [make_record()])
        with pytest.raises(UnknownTopic):
            await broker.fetch({tp: 0})
        with pytest.raises(UnknownTopic):
            await broker.fetch({tp: 0}, timeout=0.1)
        with pytest.raises(UnknownTopic):
            await broker.offset_for_time(tp, 0)
        with pytest.raises(UnknownTopic):
            await broker.join_group(unique_name("g"), "m", [missing])
        assert missing not in [t.name for t in await broker.list_topics()]

    # -- append -----------------------------------------------------------------------------
    async def test_append_returns_dense_offsets_per_partition(self, broker: Broker) -> None:
        topic = await self.new_topic(broker, 3)
        first = await broker.append(topic, [make_record(p) for p in (0, 1, 0, 2, 0)])
        assert first == [0, 0, 1, 0, 2]
        second = await broker.append(topic, [make_record(p) for p in (2, 0, 1)])
        assert second == [1, 3, 1]
        assert await broker.append(topic, []) == []
        assert (await broker.describe_topic(topic)).end_offsets() == {0: 4, 1: 2, 2: 2}

    async def test_append_sets_topic_and_offset_on_records(self, broker: Broker) -> None:
        topic = await self.new_topic(broker, 2)
        records = [make_record(1), make_record(0), make_record(1)]
        offsets = await broker.append(topic, records)
        assert [(r.topic, r.partition, r.offset) for r in records] == [
            (topic, 1, 0),
            (topic, 0, 0),
            (topic, 1, 1),
        ]
        assert offsets == [r.offset for r in records]

    async def test_append_keeps_order_per_partition_across_batches(self, broker: Broker) -> None:
        topic = await self.new_topic(broker, 2)
        sent: dict[int, list[str]] = {0: [], 1: []}
        for batch in range(5):
            records = [make_record(i % 2, value=f"{batch}-{i}".encode()) for i in range(7)]
            for r in records:
                sent[r.partition].append(r.id)
            await broker.append(topic, records)
        for p in (0, 1):
            got = await broker.fetch({TopicPartition(topic, p): 0})
            assert [r.id for r in got] == sent[p]
            assert offsets_of(got) == list(range(len(sent[p])))

    async def test_append_out_of_range_partition_appends_nothing(self, broker: Broker) -> None:
        topic = await self.new_topic(broker, 2)
        for bad in (2, -1):
            with pytest.raises(RiverbedError):
                await broker.append(topic, [make_record(0), make_record(bad), make_record(1)])
        assert (await broker.describe_topic(topic)).end_offsets() == {0: 0, 1: 0}

    # -- fetch ------------------------------------------------------------------------------
    async def test_fetch_from_offset(self, broker: Broker) -> None:
        topic = await self.new_topic(broker)
        tp = TopicPartition(topic, 0)
        records = [make_record(value=str(i).encode()) for i in range(6)]
        await broker.append(topic, records)
        got = await broker.fetch({tp: 4})
        assert offsets_of(got) == [4, 5]
        assert [r.value for r in got] == [b"4", b"5"]
        assert [r.id for r in got] == [r.id for r in records[4:]]
        assert all(r.topic == topic and r.partition == 0 for r in got)

    async def test_fetch_respects_max_records(self, broker: Broker) -> None:
        topic = await self.new_topic(broker, 2)
        await broker.append(topic, [make_record(p) for p in (0, 1) * 5])
        tp0, tp1 = TopicPartition(topic, 0), TopicPartition(topic, 1)
        assert offsets_of(await broker.fetch({tp0: 0}, max_records=3)) == [0, 1, 2]
        assert offsets_of(await broker.fetch({tp0: 3}, max_records=3)) == [3, 4]
        both = await broker.fetch({tp0: 1, tp1: 2}, max_records=4)
        assert 1 <= len(both) <= 4
        assert_prefix_from(both, 0, 1)
        assert_prefix_from(both, 1, 2)
        one = await broker.fetch({tp0: 0, tp1: 0}, max_records=1)
        assert len(one) == 1

    async def test_fetch_reads_several_partitions(self, broker: Broker) -> None:
        topic = await self.new_topic(broker, 3)
        await broker.append(topic, [make_record(p) for p in (0, 1, 2, 0, 1, 0)])
        positions = {TopicPartition(topic, p): 0 for p in range(3)}
        got = await broker.fetch(positions)
        assert len(got) == 6
        assert offsets_of(got, 0) == [0, 1, 2]
        assert offsets_of(got, 1) == [0, 1]
        assert offsets_of(got, 2) == [0]
        later = await broker.fetch({TopicPartition(topic, 0): 2, TopicPartition(topic, 1): 2})
        assert [(r.partition, r.offset) for r in later] == [(0, 2)]

    async def test_fetch_beyond_end_returns_empty_after_timeout(self, broker: Broker) -> None:
        topic = await self.new_topic(broker)
        tp = TopicPartition(topic, 0)
        await broker.append(topic, [make_record(), make_record()])
        started = time.monotonic()
        assert await broker.fetch({tp: 2}) == []
        assert await broker.fetch({tp: 7}) == []
        assert time.monotonic() - started < 0.5, "fetch with timeout=0 must not wait"
        started = time.monotonic()
        assert await broker.fetch({tp: 2}, timeout=0.3) == []
        waited = time.monotonic() - started
        assert 0.25 <= waited < 2.0, f"fetch(timeout=0.3) returned after {waited:.3f} s"

    async def test_fetch_wakes_promptly_on_append(self, broker: Broker) -> None:
        await self._check_wake(broker, broker)

    async def test_fetch_wakes_on_append_through_peer(self, broker: Broker, peer: Broker) -> None:
        await self._check_wake(broker, peer, limit=1.0)

    async def _check_wake(self, reader: Broker, writer: Broker, limit: float = 0.5) -> None:
        topic = await self.new_topic(reader, 2)
        appended_at = 0.0

        async def append_later() -> None:
            nonlocal appended_at
            await asyncio.sleep(0.1)
            appended_at = time.monotonic()
            await writer.append(topic, [make_record(1, value=b"wake")])

        writer_task = asyncio.create_task(append_later())
        positions = {TopicPartition(topic, 0): 0, TopicPartition(topic, 1): 0}
        got = await reader.fetch(positions, timeout=10.0)
        woke = time.monotonic() - appended_at
        await writer_task
        assert [(r.partition, r.value) for r in got] == [(1, b"wake")]
        assert woke < limit, f"fetch woke {woke:.3f} s after the append (timeout was 10 s)"

    async def test_fetch_waits_out_timeout_despite_unrelated_appends(self, broker: Broker) -> None:
        watched = await self.new_topic(broker)
        busy = await self.new_topic(broker, 2)
        stop = asyncio.Event()

        async def append_elsewhere() -> None:
            while not stop.is_set():
                await broker.append(busy, [make_record(1)])
                await asyncio.sleep(0.02)

        noise = asyncio.create_task(append_elsewhere())
        try:
            started = time.monotonic()
            got = await broker.fetch({TopicPartition(watched, 0): 0}, timeout=0.4)
            waited = time.monotonic() - started
        finally:
            stop.set()
            await noise
        assert got == []
        assert waited >= 0.35, (
            f"fetch(timeout=0.4) on an idle partition returned [] after {waited:.3f} s "
            "because another topic was appended to; it must wait for its own records"
        )

    async def test_appends_through_peer_are_visible(self, broker: Broker, peer: Broker) -> None:
        topic = await self.new_topic(broker, 2)
        await peer.append(topic, [make_record(1, value=b"from-peer")])
        got = await broker.fetch({TopicPartition(topic, 1): 0})
        assert [r.value for r in got] == [b"from-peer"]
        assert (await broker.describe_topic(topic)).end_offsets() == {0: 0, 1: 1}
        assert (await peer.append(topic, [make_record(1)])) == [1]

    async def test_payload_round_trip(self, broker: Broker, peer: Broker) -> None:
        topic = await self.new_topic(broker, 2)
        records = [
            make_record(0, key=None, value=b"", timestamp=0),
            make_record(
                1,
                key=b"order-17",
                value=bytes(range(256)),
                timestamp=1_700_000_000_123,
                headers={
                    "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
                    "ünïcode ✓": "værdi — ✓",
                    "empty": "",
                },
                type="order.placed",
                source="/shop/orders",
            ),
            make_record(0, key=b"", value=b"\x00" * 1000, timestamp=253_402_300_799_999),
            make_record(1, key=b"\xff\x00\xfe", value=b"\xab" * 300_000, type="ünï.type"),
        ]
        sent = [(r.id, r.type, r.source, r.timestamp, r.key, r.value, r.headers) for r in records]
        offsets = await broker.append(topic, records)
        positions = {TopicPartition(topic, 0): 0, TopicPartition(topic, 1): 0}
        for reader in (broker, peer):
            got = await reader.fetch(positions)
            by_position = {(r.partition, r.offset): r for r in got}
            assert len(by_position) == len(records)
            for i, r in enumerate(records):
                back = by_position[(r.partition, offsets[i])]
                assert (
                    back.id,
                    back.type,
                    back.source,
                    back.timestamp,
                    back.key,
                    back.value,
                    back.headers,
                ) == sent[i]
                assert back.topic == topic
                assert back.data is None

    async def test_fetched_records_are_independent_of_the_log(self, broker: Broker) -> None:
        topic = await self.new_topic(broker)
        tp = TopicPartition(topic, 0)
        record = make_record(headers={"a": "1"})
        await broker.append(topic, [record])
        record.headers["a"] = "changed by the producer"
        record.data = {"set": "by the producer"}
        first = (await broker.fetch({tp: 0}))[0]
        assert first.headers == {"a": "1"}, "the log changed when the appended record did"
        assert first.data is None
        first.headers["b"] = "added by a consumer"
        first.data = {"decoded": "by a consumer"}
        again = (await broker.fetch({tp: 0}))[0]
        assert again.headers == {"a": "1"}, "the log changed when a fetched record did"
        assert again.data is None, "fetch must return undecoded records"

    # -- offset_for_time --------------------------------------------------------------------
    async def test_offset_for_time(self, broker: Broker) -> None:
        self.require(broker, "fetch_by_time")
        topic = await self.new_topic(broker, 2)
        tp = TopicPartition(topic, 0)
        assert await broker.offset_for_time(tp, 0) == 0
        base = 1_700_000_000_000
        await broker.append(topic, [make_record(0, timestamp=base + i * 1000) for i in range(5)])
        await broker.append(topic, [make_record(1, timestamp=base + 10_000)])
        assert await broker.offset_for_time(tp, 0) == 0
        assert await broker.offset_for_time(tp, base) == 0
        assert await broker.offset_for_time(tp, base + 1) == 1
        assert await broker.offset_for_time(tp, base + 3000) == 3
        assert await broker.offset_for_time(tp, base + 3500) == 4
        assert await broker.offset_for_time(tp, base + 4000) == 4
        assert await broker.offset_for_time(tp, base + 4001) == 5  # past all: end offset
        assert await broker.offset_for_time(tp, base + 10**9) == 5
        assert await broker.offset_for_time(TopicPartition(topic, 1), base + 5000) == 0

    async def test_offset_for_time_with_unordered_timestamps(self, broker: Broker) -> None:
        self.require(broker, "fetch_by_time")
        topic = await self.new_topic(broker)
        tp = TopicPartition(topic, 0)
        stamps = [1000, 3000, 2000, 5000, 4000]
        for ts in stamps:  # separate batches as well as one batch
            await broker.append(topic, [make_record(timestamp=ts)])
        await broker.append(topic, [make_record(timestamp=ts) for ts in stamps])
        for ts in (0, 1000, 1500, 2000, 2500, 3500, 4500, 5000, 5001):
            expected = next((i for i, s in enumerate(stamps * 2) if s >= ts), 10)
            got = await broker.offset_for_time(tp, ts)
            assert got == expected, f"offset_for_time({ts}) = {got}, expected {expected}"

    # -- consumer groups --------------------------------------------------------------------
    async def test_single_member_gets_every_partition(self, broker: Broker) -> None:
        t1, t2 = await self.new_topic(broker, 3), await self.new_topic(broker, 2)
        group = unique_name("g")
        a = await broker.join_group(group, "a", [t1, t2])
        assert a.assigned == all_partitions(t1, 3) | all_partitions(t2, 2)
        assert a.revoking == _NONE
        again = await broker.heartbeat(group, "a")
        assert again.assigned == a.assigned
        assert again.generation == a.generation

    async def test_rejoin_with_same_topics_keeps_assignment(self, broker: Broker) -> None:
        topic = await self.new_topic(broker, 4)
        group = unique_name("g")
        await broker.join_group(group, "a", [topic])
        await broker.join_group(group, "b", [topic])
        before = await settle(group, [(broker, "a"), (broker, "b")])
        a = await broker.join_group(group, "a", [topic])
        assert a.assigned == before["a"].assigned
        assert a.revoking == _NONE
        after = await settle(group, [(broker, "a"), (broker, "b")])
        assert {m: x.assigned for m, x in after.items()} == {
            m: x.assigned for m, x in before.items()
        }

    async def test_second_member_triggers_cooperative_rebalance(
        self, broker: Broker, peer: Broker
    ) -> None:
        topic = await self.new_topic(broker, 4)
        everything = all_partitions(topic, 4)
        group = unique_name("g")
        a = await broker.join_group(group, "a", [topic], client="client-a")
        assert a.assigned == everything

        b = await peer.join_group(group, "b", [topic], client="client-b")
        assert b.generation > a.generation
        assert owned(b) == _NONE, "the new member got partitions before their owner released"
        a2 = await broker.heartbeat(group, "a")
        assert a2.generation == b.generation
        assert owned(a2) == everything, "the old owner must keep everything until it releases"
        assert len(a2.revoking) == 2
        assert len(a2.assigned) == 2
        assert_exclusive({"a": a2, "b": await peer.heartbeat(group, "b")})

        # Still the owner while revoking: may commit, then releases.
        await broker.commit(group, "a", dict.fromkeys(a2.revoking, 1))
        await broker.release(group, "a", sorted(a2.revoking))
        b2 = await peer.heartbeat(group, "b")
        a3 = await broker.heartbeat(group, "a")
        assert b2.assigned == a2.revoking
        assert a3.assigned == a2.assigned
        assert a3.revoking == _NONE
        assert b2.revoking == _NONE
        assert_exclusive({"a": a3, "b": b2})

        moved = sorted(b2.assigned)[0]
        with pytest.raises(FencedError):
            await broker.commit(group, "a", {moved: 2})
        assert (await broker.committed(group, topic))[moved.partition] == 1
        await peer.commit(group, "b", {moved: 3})
        assert (await broker.committed(group, topic))[moved.partition] == 3

    async def test_members_settle_balanced_and_exclusive(
        self, broker: Broker, peer: Broker
    ) -> None:
        t1, t2 = await self.new_topic(broker, 5), await self.new_topic(broker, 2)
        everything = all_partitions(t1, 5) | all_partitions(t2, 2)
        group = unique_name("g")
        members = [(broker, "a"), (peer, "b"), (broker, "c")]
        for handle, mid in members:
            await handle.join_group(group, mid, [t1, t2])
            await settle(group, [m for m in members if m[1] <= mid])
        final = await settle(group, members)
        assert _NONE.union(*(a.assigned for a in final.values())) == everything
        for topic, n in ((t1, 5), (t2, 2)):
            counts = sorted(sum(tp.topic == topic for tp in a.assigned) for a in final.values())
            assert counts[0] == n // 3, f"{topic}: unbalanced {counts}"
            assert counts[-1] <= -(-n // 3), f"{topic}: unbalanced {counts}"

        await broker.leave_group(group, "c")
        rest = await settle(group, members[:2])
        assert _NONE.union(*(a.assigned for a in rest.values())) == everything

    async def test_members_with_different_topics(self, broker: Broker, peer: Broker) -> None:
        t1, t2 = await self.new_topic(broker, 2), await self.new_topic(broker, 3)
        group = unique_name("g")
        await broker.join_group(group, "a", [t1])
        await peer.join_group(group, "b", [t1, t2])
        final = await settle(group, [(broker, "a"), (peer, "b")])
        assert all(tp.topic == t1 for tp in final["a"].assigned)
        assert len(final["a"].assigned) == 1
        assert final["b"].assigned == all_partitions(t2, 3) | (
            all_partitions(t1, 2) - final["a"].assigned
        )

    async def test_leave_hands_partitions_to_remaining_member(
        self, broker: Broker, peer: Broker
    ) -> None:
        topic = await self.new_topic(broker, 4)
        group = unique_name("g")
        await broker.join_group(group, "a", [topic])
        await peer.join_group(group, "b", [topic])
        settled = await settle(group, [(broker, "a"), (peer, "b")])
        await peer.leave_group(group, "b")
        await peer.leave_group(group, "b")  # idempotent
        await peer.leave_group(unique_name("never-existed"), "b")
        a = await broker.heartbeat(group, "a")
        assert a.assigned == all_partitions(topic, 4)
        assert a.revoking == _NONE
        assert a.generation > settled["a"].generation
        with pytest.raises(FencedError):
            await peer.heartbeat(group, "b")
        with pytest.raises(FencedError):
            await peer.commit(group, "b", {TopicPartition(topic, 0): 1})
        assert [m.member_id for m in (await broker.describe_group(group)).members] == ["a"]

    async def test_leave_while_revoking_returns_partitions(self, broker: Broker) -> None:
        topic = await self.new_topic(broker, 4)
        group = unique_name("g")
        await broker.join_group(group, "a", [topic])
        await broker.join_group(group, "b", [topic])
        assert len((await broker.heartbeat(group, "a")).revoking) == 2
        await broker.leave_group(group, "b")
        a = await broker.heartbeat(group, "a")
        assert a.assigned == all_partitions(topic, 4)
        assert a.revoking == _NONE

    async def test_release_by_non_owner_changes_nothing(self, broker: Broker) -> None:
        topic = await self.new_topic(broker, 2)
        group = unique_name("g")
        await broker.join_group(group, "a", [topic])
        await broker.join_group(group, "b", [topic])
        await broker.release(group, "b", sorted(all_partitions(topic, 2)))
        a, b = await broker.heartbeat(group, "a"), await broker.heartbeat(group, "b")
        assert owned(a) == all_partitions(topic, 2)
        assert owned(b) == _NONE

    async def test_heartbeat_of_unknown_member_is_fenced(self, broker: Broker) -> None:
        topic = await self.new_topic(broker)
        group = unique_name("g")
        with pytest.raises(FencedError):
            await broker.heartbeat(group, "nobody")
        await broker.join_group(group, "a", [topic])
        with pytest.raises(FencedError):
            await broker.heartbeat(group, "nobody")

    async def test_dead_member_is_expired_by_heartbeat_of_another(
        self, broker: Broker, peer: Broker
    ) -> None:
        topic = await self.new_topic(broker, 4)
        group = unique_name("g")
        a = await broker.join_group(group, "a", [topic], session_timeout=0.5)
        await peer.join_group(group, "b", [topic], session_timeout=30.0)
        assert owned(await peer.heartbeat(group, "b")) == _NONE
        await asyncio.sleep(0.8)  # "a" stops heartbeating and never releases
        b = await peer.heartbeat(group, "b")
        assert b.assigned == all_partitions(topic, 4)
        assert b.generation > a.generation
        with pytest.raises(FencedError):
            await broker.commit(group, "a", {TopicPartition(topic, 0): 1})
        with pytest.raises(FencedError):
            await broker.heartbeat(group, "a")
        assert await broker.committed(group, topic) == {}
        assert [m.member_id for m in (await broker.describe_group(group)).members] == ["b"]

    async def test_dead_member_is_expired_by_maintain(self, broker: Broker, peer: Broker) -> None:
        topic = await self.new_topic(broker, 3)
        group = unique_name("g")
        await broker.join_group(group, "a", [topic], session_timeout=0.3)
        await asyncio.sleep(0.5)
        await peer.maintain()
        assert (await broker.describe_group(group)).members == []
        b = await peer.join_group(group, "b", [topic])
        assert b.assigned == all_partitions(topic, 3), "a dead member's partitions stayed held"
        with pytest.raises(FencedError):
            await broker.heartbeat(group, "a")
        with pytest.raises(FencedError):
            await broker.commit(group, "a", {TopicPartition(topic, 0): 1})

    # -- commits ----------------------------------------------------------------------------
    async def test_committed_returns_what_was_committed(self, broker: Broker, peer: Broker) -> None:
        topic, other = await self.new_topic(broker, 3), await self.new_topic(broker)
        group = unique_name("g")
        assert await broker.committed(group, topic) == {}
        await broker.join_group(group, "a", [topic, other])
        tp0, tp2 = TopicPartition(topic, 0), TopicPartition(topic, 2)
        await broker.commit(group, "a", {tp0: 5, tp2: 7})
        assert await broker.committed(group, topic) == {0: 5, 2: 7}
        assert await peer.committed(group, topic) == {0: 5, 2: 7}
        assert await broker.committed(group, other) == {}
        assert await broker.committed(unique_name("g"), topic) == {}
        await broker.commit(group, "a", {tp0: 6})
        await broker.commit(group, "a", {})
        assert await broker.committed(group, topic) == {0: 6, 2: 7}

    async def test_commit_of_unowned_partition_is_fenced_and_stores_nothing(
        self, broker: Broker
    ) -> None:
        mine, theirs = await self.new_topic(broker, 2), await self.new_topic(broker)
        group = unique_name("g")
        await broker.join_group(group, "a", [mine])
        await broker.join_group(group, "b", [theirs])
        own, foreign = TopicPartition(mine, 0), TopicPartition(theirs, 0)
        with pytest.raises(FencedError):
            await broker.commit(group, "a", {own: 3, foreign: 4})
        with pytest.raises(FencedError):
            await broker.commit(group, "a", {TopicPartition(mine, 7): 1})
        with pytest.raises(FencedError):
            await broker.commit(group, "stranger", {own: 1})
        assert await broker.committed(group, mine) == {}
        assert await broker.committed(group, theirs) == {}

    async def test_set_offsets_refused_while_members_live(self, broker: Broker) -> None:
        topic = await self.new_topic(broker, 2)
        group = unique_name("g")
        tp = TopicPartition(topic, 1)
        await broker.join_group(group, "a", [topic])
        await broker.commit(group, "a", {tp: 9})
        with pytest.raises(ConfigError):
            await broker.set_offsets(group, {tp: 2})
        assert await broker.committed(group, topic) == {1: 9}
        await broker.leave_group(group, "a")
        await broker.set_offsets(group, {tp: 2, TopicPartition(topic, 0): 0})
        assert await broker.committed(group, topic) == {0: 0, 1: 2}
        fresh = unique_name("g")
        await broker.set_offsets(fresh, {tp: 4})
        assert await broker.committed(fresh, topic) == {1: 4}
        with pytest.raises(UnknownTopic):
            await broker.set_offsets(fresh, {TopicPartition(unique_name("missing"), 0): 1})

    async def test_set_offsets_accepted_after_session_expiry(self, broker: Broker) -> None:
        topic = await self.new_topic(broker)
        group = unique_name("g")
        tp = TopicPartition(topic, 0)
        await broker.join_group(group, "a", [topic], session_timeout=0.3)
        with pytest.raises(ConfigError):
            await broker.set_offsets(group, {tp: 1})
        await asyncio.sleep(0.5)
        await broker.set_offsets(group, {tp: 1})
        assert await broker.committed(group, topic) == {0: 1}

    async def test_list_groups(self, broker: Broker, peer: Broker) -> None:
        topic = await self.new_topic(broker)
        tp = TopicPartition(topic, 0)
        suffix = uuid.uuid4().hex[:12]
        with_member, with_offsets, left = f"b-{suffix}", f"a-{suffix}", f"c-{suffix}"
        await broker.join_group(with_member, "m", [topic])
        await peer.set_offsets(with_offsets, {tp: 3})
        await broker.join_group(left, "m", [topic])
        await broker.leave_group(left, "m")
        for handle in (broker, peer):
            groups = await handle.list_groups()
            assert groups == sorted(groups)
            assert with_member in groups
            assert with_offsets in groups
            assert left not in groups, "a group with no members and no offsets was listed"

    async def test_describe_group(self, broker: Broker, peer: Broker) -> None:
        topic = await self.new_topic(broker, 3)
        group = unique_name("g")
        before = now_ms()
        await broker.join_group(group, "a", [topic], client="svc-a")
        await peer.join_group(group, "b", [topic], client="svc-b")
        final = await settle(group, [(broker, "a"), (peer, "b")])
        a_tp = sorted(final["a"].assigned)[0]
        await broker.commit(group, "a", {a_tp: 11})
        for handle in (broker, peer):
            info = await handle.describe_group(group)
            assert info.name == group
            assert info.generation == final["a"].generation
            members = {m.member_id: m for m in info.members}
            assert sorted(members) == ["a", "b"]
            assert members["a"].client == "svc-a"
            assert members["b"].client == "svc-b"
            assert members["a"].topics == [topic]
            for mid in ("a", "b"):
                assert frozenset(members[mid].partitions) == final[mid].assigned
                assert before - 1000 <= members[mid].last_heartbeat_ms <= now_ms() + 1000
            assert info.committed == {a_tp: 11}
        empty = await broker.describe_group(unique_name("g"))
        assert empty.members == []
        assert empty.committed == {}

    # -- replay -----------------------------------------------------------------------------
    async def test_replay_from_committed_offset(self, broker: Broker, peer: Broker) -> None:
        topic = await self.new_topic(broker)
        tp = TopicPartition(topic, 0)
        group = unique_name("g")
        await broker.append(topic, [make_record(value=str(i).encode()) for i in range(10)])
        await broker.join_group(group, "first", [topic])
        consumed = await broker.fetch({tp: 0}, max_records=4)
        await broker.commit(group, "first", {tp: consumed[-1].offset + 1})
        await broker.leave_group(group, "first")

        await peer.join_group(group, "second", [topic])
        position = (await peer.committed(group, topic))[0]
        assert position == 4
        rest = await peer.fetch({tp: position})
        assert [r.value for r in rest] == [str(i).encode() for i in range(4, 10)]

    async def test_replay_from_time_after_reset(self, broker: Broker, peer: Broker) -> None:
        self.require(broker, "fetch_by_time")
        topic = await self.new_topic(broker)
        tp = TopicPartition(topic, 0)
        group = unique_name("g")
        base = now_ms() - 60_000
        await broker.append(topic, [make_record(timestamp=base + i * 1000) for i in range(10)])
        await broker.join_group(group, "m", [topic])
        await broker.commit(group, "m", {tp: 10})
        await broker.leave_group(group, "m")

        rewind_to = await peer.offset_for_time(tp, base + 6500)
        assert rewind_to == 7
        await peer.set_offsets(group, {tp: rewind_to})
        await broker.join_group(group, "m2", [topic])
        position = (await broker.committed(group, topic))[0]
        replayed = await broker.fetch({tp: position})
        assert offsets_of(replayed) == [7, 8, 9]
        assert [r.timestamp for r in replayed] == [base + i * 1000 for i in (7, 8, 9)]
        await broker.leave_group(group, "m2")
        await broker.set_offsets(group, {tp: 0})
        assert await broker.committed(group, topic) == {0: 0}

    # -- retention and compaction -------------------------------------------------------------
    async def test_retention_by_age(self, broker: Broker) -> None:
        self.require(broker, "retention")
        topic = await self.new_topic(broker, 2)
        tp = TopicPartition(topic, 0)
        old = now_ms() - 3_600_000
        await broker.append(topic, [make_record(0, timestamp=old + i) for i in range(3)])
        await broker.append(topic, [make_record(1, timestamp=old)])
        await broker.append(topic, [make_record(0, value=b"new"), make_record(0, value=b"new")])
        await broker.maintain()
        assert (await broker.describe_topic(topic)).partitions[0].start_offset == 0, (
            "records were deleted from a topic without retention"
        )

        await broker.create_topic(TopicSpec(topic, 2, retention_ms=60_000))
        await broker.maintain()
        info = await broker.describe_topic(topic)
        assert [(p.start_offset, p.end_offset) for p in info.partitions] == [(3, 5), (1, 1)]
        got = await broker.fetch({tp: 0})  # below the start: reads from the start
        assert offsets_of(got) == [3, 4]
        assert [r.value for r in got] == [b"new", b"new"]
        assert await broker.fetch({TopicPartition(topic, 1): 0}) == []
        if broker.capabilities.fetch_by_time:
            assert await broker.offset_for_time(tp, 0) == 3
        assert await broker.append(topic, [make_record(0), make_record(1)]) == [5, 1]

    async def test_retention_by_size(self, broker: Broker) -> None:
        self.require(broker, "retention")
        topic = await self.new_topic(broker, 2, retention_bytes=1000)
        values = [bytes([i]) * 100 for i in range(20)]
        for v in values:  # one batch each, so a whole-batch deleter can act too
            await broker.append(topic, [make_record(0, value=v)])
        for i in range(3):
            await broker.append(topic, [make_record(1, value=values[i])])
        await broker.maintain()
        info = await broker.describe_topic(topic)
        p0, p1 = info.partitions
        assert p0.end_offset == 20
        kept = p0.end_offset - p0.start_offset
        assert 1 <= kept <= 10, f"kept {kept} records of 100 bytes under a 1000-byte limit"
        got = await broker.fetch({TopicPartition(topic, 0): 0})
        assert offsets_of(got) == list(range(p0.start_offset, 20))
        assert [r.value for r in got] == values[p0.start_offset :]
        assert (p1.start_offset, p1.end_offset) == (0, 3), "a partition under the limit lost data"

    async def test_compaction_keeps_latest_per_key(self, broker: Broker) -> None:
        self.require(broker, "compaction")
        topic = await self.new_topic(broker, compact=True)
        plain = await self.new_topic(broker)
        tp = TopicPartition(topic, 0)
        batches: list[list[tuple[bytes | None, bytes]]] = [
            [(b"k1", b"k1-v1"), (b"k2", b"k2-v1"), (None, b"keyless-1")],
            [(b"k1", b"k1-v2")],
            [(b"k3", b"k3-v1"), (b"k2", b"k2-v2"), (None, b"keyless-2"), (b"k1", b"k1-v3")],
        ]
        for batch in batches:
            for name in (topic, plain):
                await broker.append(name, [make_record(key=k, value=v) for k, v in batch])
        await broker.maintain()
        got = await broker.fetch({tp: 0})
        assert [(r.offset, r.key, r.value) for r in got] == [
            (2, None, b"keyless-1"),
            (4, b"k3", b"k3-v1"),
            (5, b"k2", b"k2-v2"),
            (6, None, b"keyless-2"),
            (7, b"k1", b"k1-v3"),
        ]
        info = await broker.describe_topic(topic)
        assert (info.partitions[0].start_offset, info.partitions[0].end_offset) == (2, 8)
        assert await broker.append(topic, [make_record(key=b"k3")]) == [8]
        untouched = await broker.fetch({TopicPartition(plain, 0): 0})
        assert offsets_of(untouched) == list(range(8)), "a topic without compact was compacted"

    # -- transactions ------------------------------------------------------------------------
    async def _transactions_or_unsupported(self, broker: Broker, topic: str) -> bool:
        """True if the backend has transactions; else checks it says so and appends nothing."""
        if broker.capabilities.transactions:
            return True
        group = unique_name("g")
        await broker.join_group(group, "m", [topic])
        with pytest.raises(UnsupportedCapability):
            await broker.append_and_commit(
                [(topic, [make_record()])], group, "m", {TopicPartition(topic, 0): 1}
            )
        assert (await broker.describe_topic(topic)).end_offsets() == {0: 0}
        return False

    async def test_append_and_commit_stores_records_and_offsets(
        self, broker: Broker, peer: Broker
    ) -> None:
        source, out1 = await self.new_topic(broker, 2), await self.new_topic(broker)
        out2 = await self.new_topic(broker, 2)
        if not await self._transactions_or_unsupported(broker, out1):
            return
        group = unique_name("g")
        await broker.join_group(group, "m", [source])
        in0 = TopicPartition(source, 0)
        result = await broker.append_and_commit(
            [(out1, [make_record(0), make_record(0)]), (out2, [make_record(1)])],
            group,
            "m",
            {in0: 3},
        )
        assert result == [[0, 1], [0]]
        assert await peer.committed(group, source) == {0: 3}
        assert offsets_of(await peer.fetch({TopicPartition(out1, 0): 0})) == [0, 1]
        assert offsets_of(await peer.fetch({TopicPartition(out2, 1): 0})) == [0]
        again = await broker.append_and_commit(
            [(out1, [make_record(0)])], group, "m", {in0: 5, TopicPartition(source, 1): 1}
        )
        assert again == [[2]]
        assert await broker.committed(group, source) == {0: 5, 1: 1}

    async def test_append_and_commit_fenced_appends_nothing(self, broker: Broker) -> None:
        source, out1 = await self.new_topic(broker, 2), await self.new_topic(broker)
        out2 = await self.new_topic(broker)
        if not await self._transactions_or_unsupported(broker, out1):
            return
        group = unique_name("g")
        await broker.join_group(group, "a", [source])
        await broker.join_group(group, "b", [source])
        final = await settle(group, [(broker, "a"), (broker, "b")])
        mine, theirs = sorted(final["a"].assigned)[0], sorted(final["b"].assigned)[0]
        for member, offsets in (("a", {mine: 1, theirs: 1}), ("stranger", {mine: 1})):
            with pytest.raises(FencedError):
                await broker.append_and_commit(
                    [(out1, [make_record()]), (out2, [make_record(), make_record()])],
                    group,
                    member,
                    offsets,
                )
        for out in (out1, out2):
            assert (await broker.describe_topic(out)).end_offsets() == {0: 0}
        assert await broker.committed(group, source) == {}

    async def test_append_and_commit_unknown_topic_appends_nothing(self, broker: Broker) -> None:
        source, out = await self.new_topic(broker), await self.new_topic(broker, 2)
        if not await self._transactions_or_unsupported(broker, out):
            return
        group = unique_name("g")
        await broker.join_group(group, "m", [source])
        in0 = TopicPartition(source, 0)
        with pytest.raises(UnknownTopic):
            await broker.append_and_commit(
                [(out, [make_record(1)]), (unique_name("missing"), [make_record()])],
                group,
                "m",
                {in0: 1},
            )
        with pytest.raises(RiverbedError):  # partition out of range in the second append
            await broker.append_and_commit(
                [(out, [make_record(1)]), (out, [make_record(5)])], group, "m", {in0: 1}
            )
        assert (await broker.describe_topic(out)).end_offsets() == {0: 0, 1: 0}
        assert await broker.committed(group, source) == {}
