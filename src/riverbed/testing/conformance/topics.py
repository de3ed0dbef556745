"""Conformance cases for topics: create, describe, list, and append."""

from __future__ import annotations

import uuid

import pytest

from riverbed.brokers.base import Broker, TopicPartition, TopicSpec
from riverbed.errors import RiverbedError, TopicConflict, UnknownTopic
from riverbed.testing.conformance._base import (
    ConformanceBase,
    assert_partition_ends,
    by_partition,
    is_increasing,
    make_record,
    offsets_of,
    unique_name,
)


class TopicCases(ConformanceBase):
    """Creating and describing topics, and appending records to them."""

    async def test_create_topic_returns_info(self, broker: Broker) -> None:
        spec = TopicSpec(unique_name("t"), 3, retention_ms=60_000)
        info = await broker.create_topic(spec)
        assert info.spec == spec
        assert info.name == spec.name
        assert [p.partition for p in info.partitions] == [0, 1, 2]
        assert all(p.start_offset == p.end_offset for p in info.partitions), (
            "a new topic holds records"
        )
        if self.dense(broker):
            assert [(p.start_offset, p.end_offset) for p in info.partitions] == [(0, 0)] * 3

    async def test_create_topic_is_idempotent_and_keeps_records(self, broker: Broker) -> None:
        topic = await self.new_topic(broker, 2)
        offsets = await broker.append(topic, [make_record(0), make_record(0), make_record(1)])
        info = await broker.create_topic(TopicSpec(topic, 2))
        assert info == await broker.describe_topic(topic)
        await assert_partition_ends(broker, topic, {0: offsets[:2], 1: offsets[2:]})

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
        offsets = await broker.append(first, [make_record(3), make_record(3)])
        info = await broker.describe_topic(first)
        assert info.spec == TopicSpec(first, 4)
        assert [p.partition for p in info.partitions] == [0, 1, 2, 3]
        await assert_partition_ends(broker, first, {0: [], 1: [], 2: [], 3: offsets})
        assert info.partitions[3].start_offset <= offsets[0]
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
    async def test_append_returns_increasing_offsets_per_partition(self, broker: Broker) -> None:
        topic = await self.new_topic(broker, 3)
        parts1, parts2 = (0, 1, 0, 2, 0), (2, 0, 1)
        first = await broker.append(topic, [make_record(p) for p in parts1])
        second = await broker.append(topic, [make_record(p) for p in parts2])
        assert await broker.append(topic, []) == []
        per_partition = by_partition(parts1 + parts2, first + second, 3)
        for p, offsets in per_partition.items():
            assert is_increasing(offsets), f"partition {p}: offsets {offsets} do not increase"
        if self.dense(broker):
            assert first == [0, 0, 1, 0, 2]
            assert second == [1, 3, 1]
        await assert_partition_ends(broker, topic, per_partition)

    async def test_append_sets_topic_and_offset_on_records(self, broker: Broker) -> None:
        topic = await self.new_topic(broker, 2)
        records = [make_record(1), make_record(0), make_record(1)]
        offsets = await broker.append(topic, records)
        assert [(r.topic, r.partition) for r in records] == [(topic, 1), (topic, 0), (topic, 1)]
        assert offsets == [r.offset for r in records]
        assert offsets[0] < offsets[2]
        if self.dense(broker):
            assert offsets == [0, 0, 1]

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
            assert is_increasing(offsets_of(got))
            if self.dense(broker):
                assert offsets_of(got) == list(range(len(sent[p])))

    async def test_append_out_of_range_partition_appends_nothing(self, broker: Broker) -> None:
        topic = await self.new_topic(broker, 2)
        for bad in (2, -1):
            with pytest.raises(RiverbedError):
                await broker.append(topic, [make_record(0), make_record(bad), make_record(1)])
        await assert_partition_ends(broker, topic, {0: [], 1: []})
