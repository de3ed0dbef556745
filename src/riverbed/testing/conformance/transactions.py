"""Conformance cases for `append_and_commit`: records and offsets in one transaction."""

from __future__ import annotations

import pytest

from riverbed.brokers.base import Broker, TopicPartition
from riverbed.errors import FencedError, RiverbedError, UnknownTopic, UnsupportedCapability
from riverbed.testing.conformance._base import (
    ConformanceBase,
    all_partitions,
    assert_partition_ends,
    make_record,
    offsets_of,
    unique_name,
)


class TransactionCases(ConformanceBase):
    """`append_and_commit` stores records and offsets all together or not at all."""

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
        info = await broker.describe_topic(topic)
        await assert_partition_ends(broker, topic, {p.partition: [] for p in info.partitions})
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
        if self.dense(broker):
            assert result == [[0, 1], [0]]
        assert await peer.committed(group, source) == {0: 3}
        assert offsets_of(await peer.fetch({TopicPartition(out1, 0): 0})) == result[0]
        assert offsets_of(await peer.fetch({TopicPartition(out2, 1): 0})) == result[1]
        again = await broker.append_and_commit(
            [(out1, [make_record(0)])], group, "m", {in0: 5, TopicPartition(source, 1): 1}
        )
        assert again[0][0] > result[0][1]
        if self.dense(broker):
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
        final = await self.settle(group, [(broker, "a"), (broker, "b")], all_partitions(source, 2))
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
            await assert_partition_ends(broker, out, {0: []})
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
        await assert_partition_ends(broker, out, {0: [], 1: []})
        assert await broker.committed(group, source) == {}
