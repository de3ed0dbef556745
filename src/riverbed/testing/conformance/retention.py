"""Conformance cases for deleting old records: retention by age or size, compaction."""

from __future__ import annotations

from riverbed.brokers.base import Broker, TopicPartition, TopicSpec
from riverbed.testing.conformance._base import (
    ConformanceBase,
    assert_partition_ends,
    make_record,
    now_ms,
    offsets_of,
    stored_offsets,
)


class RetentionCases(ConformanceBase):
    """What `maintain()` deletes under retention and compaction settings."""

    async def test_retention_by_age(self, broker: Broker) -> None:
        self.require(broker, "retention")
        topic = await self.new_topic(broker, 2)
        tp = TopicPartition(topic, 0)
        old = now_ms() - 3_600_000
        olds = await broker.append(topic, [make_record(0, timestamp=old + i) for i in range(3)])
        old1 = await broker.append(topic, [make_record(1, timestamp=old)])
        news = await broker.append(
            topic, [make_record(0, value=b"new"), make_record(0, value=b"new")]
        )
        await broker.maintain()
        assert (await broker.describe_topic(topic)).partitions[0].start_offset <= olds[0], (
            "records were deleted from a topic without retention"
        )
        await assert_partition_ends(broker, topic, {0: olds + news, 1: old1})

        await broker.create_topic(TopicSpec(topic, 2, retention_ms=60_000))
        await broker.maintain()
        info = await broker.describe_topic(topic)
        p0, p1 = info.partitions
        assert olds[-1] < p0.start_offset <= news[0], f"partition 0 starts at {p0.start_offset}"
        assert p1.start_offset == p1.end_offset > old1[0], "partition 1 kept an expired record"
        if self.dense(broker):
            assert [(p.start_offset, p.end_offset) for p in info.partitions] == [(3, 5), (1, 1)]
        got = await broker.fetch({tp: 0})  # below the start: reads from the start
        assert offsets_of(got) == news
        assert [r.value for r in got] == [b"new", b"new"]
        assert await broker.fetch({TopicPartition(topic, 1): 0}) == []
        if broker.capabilities.fetch_by_time:
            assert await broker.offset_for_time(tp, 0) == news[0]
        later = await broker.append(topic, [make_record(0), make_record(1)])
        assert later[0] > news[-1]
        assert later[1] > old1[0]
        if self.dense(broker):
            assert later == [5, 1]

    async def test_retention_by_size(self, broker: Broker) -> None:
        self.require(broker, "retention")
        topic = await self.new_topic(broker, 2, retention_bytes=1000)
        values = [bytes([i]) * 100 for i in range(20)]
        in0: list[int] = []
        for v in values:  # one batch each, so a whole-batch deleter can act too
            in0 += await broker.append(topic, [make_record(0, value=v)])
        in1: list[int] = []
        for i in range(3):
            in1 += await broker.append(topic, [make_record(1, value=values[i])])
        await broker.maintain()
        p0, p1 = (await broker.describe_topic(topic)).partitions
        kept = await stored_offsets(broker, TopicPartition(topic, 0))
        assert 1 <= len(kept) <= 10, f"kept {len(kept)} records of 100 bytes under 1000 bytes"
        assert kept == in0[-len(kept) :], "retention kept other than the newest records"
        assert p0.start_offset == kept[0]
        assert p0.end_offset > in0[-1]
        got = await broker.fetch({TopicPartition(topic, 0): 0})
        assert [r.value for r in got] == values[-len(kept) :]
        assert await stored_offsets(broker, TopicPartition(topic, 1)) == in1, (
            "a partition under the limit lost data"
        )
        assert p1.start_offset <= in1[0]

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
        at: list[int] = []
        plain_at: list[int] = []
        for batch in batches:
            at += await broker.append(topic, [make_record(key=k, value=v) for k, v in batch])
            plain_at += await broker.append(plain, [make_record(key=k, value=v) for k, v in batch])
        await broker.maintain()
        got = await broker.fetch({tp: 0})
        assert [(r.offset, r.key, r.value) for r in got] == [
            (at[2], None, b"keyless-1"),
            (at[4], b"k3", b"k3-v1"),
            (at[5], b"k2", b"k2-v2"),
            (at[6], None, b"keyless-2"),
            (at[7], b"k1", b"k1-v3"),
        ]
        p0 = (await broker.describe_topic(topic)).partitions[0]
        assert at[0] < p0.start_offset <= at[2]
        assert p0.end_offset > at[7]
        later = await broker.append(topic, [make_record(key=b"k3")])
        assert later[0] > at[7]
        if self.dense(broker):
            assert (p0.start_offset, p0.end_offset, later) == (2, 8, [8])
        untouched = await stored_offsets(broker, TopicPartition(plain, 0))
        assert untouched == plain_at, "a topic without compact was compacted"
