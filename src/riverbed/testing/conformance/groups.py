"""Conformance cases for consumer-group membership and cooperative rebalancing."""

from __future__ import annotations

import pytest

from riverbed.brokers.base import Broker, TopicPartition
from riverbed.errors import FencedError
from riverbed.testing.conformance._base import (
    ConformanceBase,
    all_partitions,
    assert_exclusive,
    owned,
    unique_name,
)

_NONE: frozenset[TopicPartition] = frozenset()


class GroupCases(ConformanceBase):
    """Joining, rebalancing, releasing, leaving and expiring group members."""

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
        everything = all_partitions(topic, 4)
        before = await self.settle(group, [(broker, "a"), (broker, "b")], everything)
        a = await broker.join_group(group, "a", [topic])
        assert a.assigned == before["a"].assigned
        assert a.revoking == _NONE
        after = await self.settle(group, [(broker, "a"), (broker, "b")], everything)
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
        a2 = await self.heartbeat_until(broker, group, "a", lambda x: bool(x.revoking))
        assert a2.generation == b.generation
        assert owned(a2) == everything, "the old owner must keep everything until it releases"
        assert len(a2.revoking) == 2
        assert len(a2.assigned) == 2
        assert_exclusive({"a": a2, "b": await peer.heartbeat(group, "b")})

        # Still the owner while revoking: may commit, then releases.
        await broker.commit(group, "a", dict.fromkeys(a2.revoking, 1))
        await broker.release(group, "a", sorted(a2.revoking))
        b2 = await self.heartbeat_until(peer, group, "b", lambda x: bool(x.assigned))
        a3 = await self.heartbeat_until(broker, group, "a", lambda x: not x.revoking)
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
            await self.settle(group, [m for m in members if m[1] <= mid], everything)
        final = await self.settle(group, members, everything)
        assert _NONE.union(*(a.assigned for a in final.values())) == everything
        if self.balance == "member":
            totals = sorted(len(a.assigned) for a in final.values())
            assert totals[-1] - totals[0] <= 1, f"unbalanced members: {totals}"
        for topic, n in ((t1, 5), (t2, 2)) if self.balance == "topic" else ():
            counts = sorted(sum(tp.topic == topic for tp in a.assigned) for a in final.values())
            assert counts[0] == n // 3, f"{topic}: unbalanced {counts}"
            assert counts[-1] <= -(-n // 3), f"{topic}: unbalanced {counts}"

        await broker.leave_group(group, "c")
        rest = await self.settle(group, members[:2], everything)
        assert _NONE.union(*(a.assigned for a in rest.values())) == everything

    async def test_members_with_different_topics(self, broker: Broker, peer: Broker) -> None:
        t1, t2 = await self.new_topic(broker, 2), await self.new_topic(broker, 3)
        group = unique_name("g")
        await broker.join_group(group, "a", [t1])
        await peer.join_group(group, "b", [t1, t2])
        everything = all_partitions(t1, 2) | all_partitions(t2, 3)
        final = await self.settle(group, [(broker, "a"), (peer, "b")], everything)
        assert all(tp.topic == t1 for tp in final["a"].assigned)
        # Per topic, t1 splits 1/1; per member totals, "a" (t1 only) takes both of t1.
        assert len(final["a"].assigned) == (1 if self.balance == "topic" else 2)
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
        everything = all_partitions(topic, 4)
        settled = await self.settle(group, [(broker, "a"), (peer, "b")], everything)
        await peer.leave_group(group, "b")
        await peer.leave_group(group, "b")  # idempotent
        await peer.leave_group(unique_name("never-existed"), "b")
        a = await self.heartbeat_until(broker, group, "a", lambda x: len(x.assigned) == 4)
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
        revoking = await self.heartbeat_until(broker, group, "a", lambda x: bool(x.revoking))
        assert len(revoking.revoking) == 2
        await broker.leave_group(group, "b")
        if self.revocation_completes:
            await broker.release(group, "a", sorted(revoking.revoking))
        a = await self.heartbeat_until(
            broker, group, "a", lambda x: not x.revoking and len(x.assigned) == 4
        )
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
        a = await broker.join_group(group, "a", [topic], session_timeout=self.short_session)
        await peer.join_group(group, "b", [topic], session_timeout=30.0)
        assert owned(await peer.heartbeat(group, "b")) == _NONE
        await self.wait_expired()  # "a" stops heartbeating and never releases
        b = await self.heartbeat_until(peer, group, "b", lambda x: len(x.assigned) == 4)
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
        await broker.join_group(group, "a", [topic], session_timeout=self.short_session)
        await self.wait_expired()
        await peer.maintain()
        assert (await broker.describe_group(group)).members == []
        b = await peer.join_group(group, "b", [topic])
        assert b.assigned == all_partitions(topic, 3), "a dead member's partitions stayed held"
        with pytest.raises(FencedError):
            await broker.heartbeat(group, "a")
        with pytest.raises(FencedError):
            await broker.commit(group, "a", {TopicPartition(topic, 0): 1})
