"""Conformance cases for deleting old records: retention by age or size, compaction."""

from __future__ import annotations

from riverbed.brokers.base import Broker, TopicPartition, TopicSpec
from riverbed.testing.conformance._base import ConformanceBase, make_record, now_ms, offsets_of


class RetentionCases(ConformanceBase):
    """What `maintain()` deletes under retention and compaction settings."""

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
