"""The sticky assignor and the group state machine shared by the local backends."""

import random
from collections import Counter
from collections.abc import Mapping
from typing import Any

import msgspec
import pytest

from riverbed.brokers._groups import GroupState, assign_sticky
from riverbed.brokers.base import Assignment, TopicPartition
from riverbed.errors import FencedError

TP = TopicPartition


def subs(**members: str) -> dict[str, frozenset[str]]:
    """subs(a="t1,t2", b="t1") -> member -> subscribed topics."""
    return {m: frozenset(ts.split(",")) for m, ts in members.items()}


def per_topic_counts(result: Mapping[TopicPartition, str], topic: str) -> Counter[str]:
    return Counter(m for tp, m in result.items() if tp.topic == topic)


def assert_balanced(
    result: Mapping[TopicPartition, str],
    partitions: Mapping[str, int],
    subscriptions: Mapping[str, frozenset[str]],
) -> None:
    for topic, n in partitions.items():
        eligible = [m for m, ts in subscriptions.items() if topic in ts]
        owners = [result.get(TP(topic, p)) for p in range(n)]
        if not eligible:
            assert owners == [None] * n
            continue
        assert all(o in eligible for o in owners), f"{topic}: {owners} not all in {eligible}"
        counts = per_topic_counts(result, topic)
        base = n // len(eligible)
        for m in eligible:
            assert base <= counts[m] <= base + 1, f"{topic}: {m} has {counts[m]}"
        assert sum(counts[m] > base for m in eligible) == n % len(eligible)


def min_moves(
    partitions: Mapping[str, int],
    subscriptions: Mapping[str, frozenset[str]],
    previous: Mapping[TopicPartition, str],
) -> int:
    """The fewest partitions any balanced assignment must move away from `previous`.

    Per topic, member m can keep at most its quota of its previous partitions; quotas are
    floor(P/k) for everyone plus one for `P % k` members, best given to members that
    had more than the floor.
    """
    moves = 0
    for topic, n in partitions.items():
        eligible = [m for m, ts in subscriptions.items() if topic in ts]
        if not eligible:
            continue
        base, extra = divmod(n, len(eligible))
        prev = Counter(m for tp, m in previous.items() if tp.topic == topic and m in eligible)
        kept = sum(min(prev[m], base) for m in eligible)
        kept += min(extra, sum(prev[m] > base for m in eligible))
        moves += n - kept
    return moves


def moved(before: Mapping[TopicPartition, str], after: Mapping[TopicPartition, str]) -> int:
    return sum(1 for tp, m in after.items() if before.get(tp) != m)


# -- assign_sticky -----------------------------------------------------------------------------
@pytest.mark.parametrize(("n", "k"), [(1, 1), (1, 3), (4, 2), (5, 2), (7, 3), (12, 5), (3, 7)])
def test_balance_is_floor_or_ceil(n: int, k: int) -> None:
    members = {f"m{i}": frozenset({"t"}) for i in range(k)}
    result = assign_sticky({"t": n}, members, {})
    assert sorted(result) == [TP("t", p) for p in range(n)]
    assert_balanced(result, {"t": n}, members)


def test_single_member_gets_everything() -> None:
    result = assign_sticky({"a": 3, "b": 2}, subs(m="a,b"), {})
    assert set(result.values()) == {"m"}
    assert len(result) == 5


def test_no_subscribers_assigns_nothing() -> None:
    assert assign_sticky({"t": 3}, {}, {}) == {}
    assert assign_sticky({"t": 3, "u": 1}, subs(m="u"), {}) == {TP("u", 0): "m"}


def test_adding_a_member_moves_the_minimum() -> None:
    before = assign_sticky({"t": 6}, subs(a="t", b="t"), {})
    after = assign_sticky({"t": 6}, subs(a="t", b="t", c="t"), before)
    assert moved(before, after) == 2
    assert per_topic_counts(after, "t") == {"a": 2, "b": 2, "c": 2}
    assert all(before[tp] == m for tp, m in after.items() if m != "c")


def test_removing_a_member_moves_only_its_partitions() -> None:
    before = assign_sticky({"t": 12}, subs(a="t", b="t", c="t", d="t"), {})
    after = assign_sticky({"t": 12}, subs(a="t", b="t", c="t"), before)
    assert moved(before, after) == 3
    assert all(after[tp] == m for tp, m in before.items() if m != "d")


def test_unchanged_membership_moves_nothing() -> None:
    members = subs(a="t,u", b="t", c="t,u")
    before = assign_sticky({"t": 7, "u": 4}, members, {})
    assert assign_sticky({"t": 7, "u": 4}, members, before) == before


def test_stickiness_and_balance_hold_over_random_membership_changes() -> None:
    rng = random.Random(7)
    topics = {"a": 5, "b": 8, "c": 1, "d": 3}
    previous: dict[TopicPartition, str] = {}
    for _ in range(300):
        names = rng.sample([f"m{i}" for i in range(8)], rng.randint(1, 6))
        members = {
            m: frozenset(rng.sample(sorted(topics), rng.randint(1, len(topics)))) for m in names
        }
        result = assign_sticky(topics, members, previous)
        assert_balanced(result, topics, members)
        assert moved(previous, result) == min_moves(topics, members, previous)
        previous = result


def test_assignment_is_deterministic_whatever_the_input_order() -> None:
    topics = {"a": 5, "b": 3, "c": 4}
    members = subs(x="a,b", y="a,b,c", z="c,a")
    previous = {TP("a", 0): "z", TP("a", 1): "z", TP("a", 2): "z", TP("c", 3): "y"}
    expected = assign_sticky(topics, members, previous)
    rng = random.Random(3)
    for _ in range(20):
        t_items, m_items, p_items = (
            list(topics.items()),
            list(members.items()),
            list(previous.items()),
        )
        rng.shuffle(t_items)
        rng.shuffle(m_items)
        rng.shuffle(p_items)
        assert assign_sticky(dict(t_items), dict(m_items), dict(p_items)) == expected


def test_several_single_partition_topics_spread_over_members() -> None:
    topics = {"a": 1, "b": 1, "c": 1}
    result = assign_sticky(topics, subs(x="a,b,c", y="a,b,c", z="a,b,c"), {})
    assert sorted(result.values()) == ["x", "y", "z"]


def test_extra_partitions_go_to_the_least_loaded_member() -> None:
    result = assign_sticky({"a": 3, "b": 3}, subs(x="a,b", y="a,b"), {})
    assert Counter(result.values()) == {"x": 3, "y": 3}
    result = assign_sticky({"a": 5, "b": 1, "c": 1}, subs(x="a,b,c", y="a,b,c"), {})
    assert Counter(result.values()) == {"x": 4, "y": 3} or Counter(result.values()) == {
        "x": 3,
        "y": 4,
    }


def test_members_subscribing_to_different_topics() -> None:
    members = subs(x="a", y="a,b", z="b")
    result = assign_sticky({"a": 4, "b": 2}, members, {})
    assert_balanced(result, {"a": 4, "b": 2}, members)
    assert per_topic_counts(result, "a") == {"x": 2, "y": 2}
    assert per_topic_counts(result, "b") == {"y": 1, "z": 1}


def test_previous_owner_no_longer_subscribed_loses_the_partition() -> None:
    previous = {TP("a", 0): "x", TP("a", 1): "x"}
    result = assign_sticky({"a": 2, "b": 1}, subs(x="b", y="a"), previous)
    assert result == {TP("a", 0): "y", TP("a", 1): "y", TP("b", 0): "x"}


def test_previous_owner_that_left_is_ignored() -> None:
    previous = {TP("a", 0): "gone", TP("a", 1): "x"}
    result = assign_sticky({"a": 2}, subs(x="a"), previous)
    assert result == {TP("a", 0): "x", TP("a", 1): "x"}


# -- GroupState --------------------------------------------------------------------------------
PARTS = {"t": 4, "u": 2}
ALL_T = frozenset(TP("t", p) for p in range(4))


def join(
    state: GroupState, member: str, topics: list[str], now: int = 0, timeout: int = 10_000
) -> Assignment:
    return state.join(
        member,
        topics,
        client=f"client-{member}",
        now_ms=now,
        session_timeout_ms=timeout,
        partitions=PARTS,
    )


def test_first_member_owns_everything_it_subscribes() -> None:
    state = GroupState()
    a = join(state, "a", ["t"])
    assert a == Assignment(1, ALL_T, frozenset())


def test_second_member_waits_for_release() -> None:
    state = GroupState()
    join(state, "a", ["t"])
    b = join(state, "b", ["t"])
    assert b.generation == 2
    assert b.assigned == frozenset()
    assert b.revoking == frozenset()
    a = state.heartbeat("a", now_ms=1)
    assert a.generation == 2
    assert len(a.assigned) == 2
    assert len(a.revoking) == 2
    assert a.assigned | a.revoking == ALL_T

    state.check_owner("a", a.revoking)  # still the owner: may commit
    with pytest.raises(FencedError):
        state.check_owner("b", a.revoking)

    state.release("a", a.revoking)
    b = state.heartbeat("b", now_ms=2)
    assert b.assigned == a.revoking
    assert state.heartbeat("a", now_ms=2) == Assignment(2, a.assigned, frozenset())
    with pytest.raises(FencedError):
        state.check_owner("a", b.assigned)
    state.check_owner("b", b.assigned)


def test_release_of_partitions_not_owned_or_not_revoked_is_ignored() -> None:
    state = GroupState()
    join(state, "a", ["t"])
    join(state, "b", ["t"])
    a = state.heartbeat("a", now_ms=1)
    state.release("b", ALL_T)  # b owns nothing
    state.release("a", a.assigned)  # these stay with a
    assert state.heartbeat("a", now_ms=1) == a
    assert state.heartbeat("b", now_ms=1).assigned == frozenset()


def test_rejoin_with_same_topics_keeps_generation() -> None:
    state = GroupState()
    join(state, "a", ["t", "u"])
    again = join(state, "a", ["u", "t", "t"], now=5)
    assert again.generation == 1
    assert state.members["a"].last_seen_ms == 5


def test_rejoin_with_other_topics_rebalances_and_revokes_dropped_topics() -> None:
    state = GroupState()
    join(state, "a", ["t", "u"])
    a = join(state, "a", ["u"])
    assert a.generation == 2
    assert a.assigned == {TP("u", 0), TP("u", 1)}
    assert a.revoking == ALL_T
    state.release("a", ALL_T)
    assert state.heartbeat("a", now_ms=1).revoking == frozenset()
    assert not any(k.endswith(":t") for k in state.owners)


def test_leave_gives_partitions_to_the_rest_at_once() -> None:
    state = GroupState()
    join(state, "a", ["t"])
    join(state, "b", ["t"])
    state.release("a", state.heartbeat("a", now_ms=1).revoking)
    assert state.leave("a", PARTS) is True
    assert state.leave("a", PARTS) is False
    b = state.heartbeat("b", now_ms=2)
    assert b == Assignment(3, ALL_T, frozenset())
    with pytest.raises(FencedError):
        state.heartbeat("a", now_ms=2)


def test_leave_of_the_new_member_before_release_returns_everything() -> None:
    state = GroupState()
    join(state, "a", ["t"])
    join(state, "b", ["t"])
    state.leave("b", PARTS)
    assert state.heartbeat("a", now_ms=1) == Assignment(3, ALL_T, frozenset())


def test_expire_removes_silent_members_and_reassigns() -> None:
    state = GroupState()
    join(state, "a", ["t"], now=0, timeout=100)
    join(state, "b", ["t"], now=0, timeout=10_000)
    assert state.expire(100, PARTS) == []  # exactly at the timeout: still alive
    assert state.expire(101, PARTS) == ["a"]
    assert state.heartbeat("b", now_ms=101) == Assignment(3, ALL_T, frozenset())
    with pytest.raises(FencedError):
        state.heartbeat("a", now_ms=102)
    with pytest.raises(FencedError):
        state.check_owner("a", [TP("t", 0)])
    assert state.expire(200, PARTS) == []


def test_heartbeat_keeps_a_member_alive() -> None:
    state = GroupState()
    join(state, "a", ["t"], now=0, timeout=100)
    state.heartbeat("a", now_ms=90)
    assert state.expire(180, PARTS) == []
    assert state.expire(191, PARTS) == ["a"]
    assert state.owners == {}
    assert state.members == {}


def test_check_owner_refuses_unknown_members_and_partitions() -> None:
    state = GroupState()
    join(state, "a", ["t"])
    state.check_owner("a", [])
    state.check_owner("a", sorted(ALL_T))
    with pytest.raises(FencedError, match=r"u\[0\]"):
        state.check_owner("a", [TP("t", 0), TP("u", 0)])
    with pytest.raises(FencedError):
        state.check_owner("zed", [TP("t", 0)])


def test_no_partition_is_ever_owned_twice_over_random_operations() -> None:
    rng = random.Random(11)
    state = GroupState()
    now = 0
    for _ in range(2000):
        now += rng.randint(0, 30)
        member = f"m{rng.randint(0, 4)}"
        op = rng.random()
        if op < 0.3:
            join(state, member, rng.sample(["t", "u"], rng.randint(1, 2)), now=now, timeout=200)
        elif op < 0.6 and member in state.members:
            a = state.heartbeat(member, now_ms=now)
            if a.revoking and rng.random() < 0.7:
                state.release(member, a.revoking)
        elif op < 0.7:
            state.leave(member, PARTS)
        else:
            state.expire(now, PARTS)
        views = {m: state.assignment(m) for m in state.members}
        seen: Counter[TopicPartition] = Counter()
        for a in views.values():
            seen.update(a.assigned | a.revoking)
        assert all(c == 1 for c in seen.values()), seen
        assert set(state.owners.values()) <= set(state.members)
        wanted = {k.split(":", 1)[1] for k in state.targets}
        for topic in wanted:  # every subscribed partition has an owner
            for p in range(PARTS[topic]):
                assert f"{p}:{topic}" in state.owners


def test_member_infos_list_owned_partitions() -> None:
    state = GroupState()
    join(state, "b", ["t"], now=7)
    join(state, "a", ["u"], now=9)
    infos = state.member_infos()
    assert [(i.member_id, i.client, i.topics, i.last_heartbeat_ms) for i in infos] == [
        ("a", "client-a", ["u"], 9),
        ("b", "client-b", ["t"], 7),
    ]
    assert infos[0].partitions == [TP("u", 0), TP("u", 1)]
    assert sorted(infos[1].partitions) == sorted(ALL_T)


@pytest.mark.parametrize("fmt", [msgspec.json, msgspec.msgpack])
def test_state_round_trips_through_its_stored_form(fmt: Any) -> None:
    state = GroupState()
    join(state, "a", ["t", "u"], now=3)
    join(state, "b", ["t"], now=4)
    back = fmt.decode(fmt.encode(state), type=GroupState)
    assert back == state
    assert back.heartbeat("a", now_ms=5) == state.heartbeat("a", now_ms=5)
