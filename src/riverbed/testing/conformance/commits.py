"""Conformance cases for committed offsets, group listing, and replay from offsets."""

from __future__ import annotations

import uuid

import pytest

from riverbed.brokers.base import Broker, TopicPartition
from riverbed.errors import ConfigError, FencedError, UnknownTopic
from riverbed.testing.conformance._base import (
    ConformanceBase,
    all_partitions,
    make_record,
    now_ms,
    offsets_of,
    unique_name,
)


class CommitCases(ConformanceBase):
    """Committing and resetting offsets, listing groups, and replaying from offsets."""

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
        await broker.join_group(group, "a", [topic], session_timeout=self.short_session)
        with pytest.raises(ConfigError):
            await broker.set_offsets(group, {tp: 1})
        await self.wait_expired()
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
        final = await self.settle(group, [(broker, "a"), (peer, "b")], all_partitions(topic, 3))
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
        offsets = await broker.append(
            topic, [make_record(value=str(i).encode()) for i in range(10)]
        )
        await broker.join_group(group, "first", [topic])
        consumed = await broker.fetch({tp: 0}, max_records=4)
        assert offsets_of(consumed) == offsets[:4]
        await broker.commit(group, "first", {tp: consumed[-1].offset + 1})
        await broker.leave_group(group, "first")

        await peer.join_group(group, "second", [topic])
        position = (await peer.committed(group, topic))[0]
        assert position == offsets[3] + 1
        rest = await peer.fetch({tp: position})
        assert [r.value for r in rest] == [str(i).encode() for i in range(4, 10)]

    async def test_replay_from_time_after_reset(self, broker: Broker, peer: Broker) -> None:
        self.require(broker, "fetch_by_time")
        topic = await self.new_topic(broker)
        tp = TopicPartition(topic, 0)
        group = unique_name("g")
        base = now_ms() - 60_000
        offsets = await broker.append(
            topic, [make_record(timestamp=base + i * 1000) for i in range(10)]
        )
        await broker.join_group(group, "m", [topic])
        await broker.commit(group, "m", {tp: offsets[-1] + 1})
        await broker.leave_group(group, "m")

        rewind_to = await peer.offset_for_time(tp, base + 6500)
        assert rewind_to == offsets[7]
        await peer.set_offsets(group, {tp: rewind_to})
        await broker.join_group(group, "m2", [topic])
        position = (await broker.committed(group, topic))[0]
        replayed = await broker.fetch({tp: position})
        assert offsets_of(replayed) == offsets[7:]
        assert [r.timestamp for r in replayed] == [base + i * 1000 for i in (7, 8, 9)]
        await broker.leave_group(group, "m2")
        await broker.set_offsets(group, {tp: 0})
        assert await broker.committed(group, topic) == {0: 0}
