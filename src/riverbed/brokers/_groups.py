"""Consumer-group coordination as a pure state machine, shared by the local backends.

The memory backend keeps a `GroupState` in a dict; the sqlite backend loads it from the
database, applies one operation and writes it back inside one write transaction, so all
processes sharing the file see one coordinator. Time is passed in (`now_ms`), never read.

Ownership is two-step (cooperative rebalancing): `targets` is where a partition should
be, `owners` is who holds it now. A partition moves only when its owner releases it or
is declared dead, so two members never consume one partition at once.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import msgspec

from riverbed.brokers.base import Assignment, MemberInfo, TopicPartition
from riverbed.errors import FencedError, UnknownTopic

__all__ = ["GroupState", "Member", "assign_sticky"]


class Member(msgspec.Struct):
    topics: list[str]
    client: str
    last_seen_ms: int
    session_timeout_ms: int


class GroupState(msgspec.Struct):
    """One group's members, generation, and partition ownership."""

    generation: int = 0
    members: dict[str, Member] = msgspec.field(default_factory=dict)
    owners: dict[str, str] = msgspec.field(default_factory=dict)
    """'topic:partition' -> member id (string keys keep the encoded form simple)."""
    targets: dict[str, str] = msgspec.field(default_factory=dict)

    # -- operations -------------------------------------------------------------------
    def join(
        self,
        member_id: str,
        topics: Iterable[str],
        *,
        client: str,
        now_ms: int,
        session_timeout_ms: int,
        partitions: Mapping[str, int],
    ) -> Assignment:
        topics = sorted(set(topics))
        old = self.members.get(member_id)
        self.members[member_id] = Member(topics, client, now_ms, session_timeout_ms)
        if old is None or old.topics != topics:
            self.rebalance(partitions)
        return self.assignment(member_id)

    def admit(
        self,
        member_id: str,
        topics: Iterable[str],
        *,
        client: str,
        now_ms: int,
        session_timeout_ms: int,
        partitions: Mapping[str, int],
    ) -> Assignment:
        """`join_group` as every backend does it: refuse unknown topics, expire the dead
        (their partitions are free again), then join."""
        topics = list(topics)
        for t in topics:
            if t not in partitions:
                raise UnknownTopic(f"topic {t!r} does not exist")
        self.expire(now_ms, partitions)
        return self.join(
            member_id,
            topics,
            client=client,
            now_ms=now_ms,
            session_timeout_ms=session_timeout_ms,
            partitions=partitions,
        )

    def beat(self, member_id: str, *, now_ms: int, partitions: Mapping[str, int]) -> Assignment:
        """`heartbeat` as every backend does it: expire the dead first, so a late member
        is fenced rather than revived, and a live one sees their partitions move to it."""
        self.expire(now_ms, partitions)
        return self.heartbeat(member_id, now_ms=now_ms)

    def heartbeat(self, member_id: str, *, now_ms: int) -> Assignment:
        member = self.members.get(member_id)
        if member is None:
            raise FencedError(
                f"member {member_id!r} is not in the group (it left or missed its "
                "session timeout); it must rejoin"
            )
        member.last_seen_ms = now_ms
        return self.assignment(member_id)

    def leave(self, member_id: str, partitions: Mapping[str, int]) -> bool:
        if self.members.pop(member_id, None) is None:
            return False
        self._drop_owner(member_id)
        self.rebalance(partitions)
        return True

    def expire(self, now_ms: int, partitions: Mapping[str, int]) -> list[str]:
        """Remove members whose session timed out; returns their ids."""
        dead = [
            mid for mid, m in self.members.items() if now_ms - m.last_seen_ms > m.session_timeout_ms
        ]
        for mid in dead:
            del self.members[mid]
            self._drop_owner(mid)
        if dead:
            self.rebalance(partitions)
        return dead

    def release(self, member_id: str, tps: Iterable[TopicPartition]) -> None:
        for tp in tps:
            k = _key(tp)
            if self.owners.get(k) == member_id and self.targets.get(k) != member_id:
                target = self.targets.get(k)
                if target is None:
                    del self.owners[k]
                else:
                    self.owners[k] = target

    def check_owner(self, member_id: str, tps: Iterable[TopicPartition]) -> None:
        """Raise `FencedError` unless `member_id` owns every partition in `tps`."""
        for tp in tps:
            if self.owners.get(_key(tp)) != member_id:
                raise FencedError(
                    f"member {member_id!r} does not own {tp.topic}[{tp.partition}]; "
                    "commit refused (a rebalance moved it)"
                )

    # -- views ------------------------------------------------------------------------
    def assignment(self, member_id: str) -> Assignment:
        assigned: set[TopicPartition] = set()
        revoking: set[TopicPartition] = set()
        for k, owner in self.owners.items():
            if owner != member_id:
                continue
            (assigned if self.targets.get(k) == member_id else revoking).add(_tp(k))
        return Assignment(self.generation, frozenset(assigned), frozenset(revoking))

    def member_infos(self) -> list[MemberInfo]:
        owned: dict[str, list[TopicPartition]] = {mid: [] for mid in self.members}
        for k, owner in sorted(self.owners.items()):
            if owner in owned:
                owned[owner].append(_tp(k))
        return [
            MemberInfo(mid, m.client, list(m.topics), owned[mid], m.last_seen_ms)
            for mid, m in sorted(self.members.items())
        ]

    # -- internals --------------------------------------------------------------------
    def rebalance(self, partitions: Mapping[str, int]) -> None:
        self.generation += 1
        subs = {mid: frozenset(m.topics) for mid, m in self.members.items()}
        previous = {_tp(k): v for k, v in self.targets.items()}
        targets = assign_sticky(partitions, subs, previous)
        self.targets = {_key(tp): mid for tp, mid in targets.items()}
        for k in list(self.owners):
            if k not in self.targets and self.owners[k] not in self.members:
                del self.owners[k]
        for k, mid in self.targets.items():
            if k not in self.owners:
                self.owners[k] = mid

    def _drop_owner(self, member_id: str) -> None:
        for k in [k for k, v in self.owners.items() if v == member_id]:
            del self.owners[k]


def _key(tp: TopicPartition) -> str:
    return f"{tp.partition}:{tp.topic}"


def _tp(key: str) -> TopicPartition:
    p, _, topic = key.partition(":")
    return TopicPartition(topic, int(p))


def assign_sticky(
    partitions: Mapping[str, int],
    subscriptions: Mapping[str, frozenset[str]],
    previous: Mapping[TopicPartition, str],
) -> dict[TopicPartition, str]:
    """Balance each topic's partitions over its subscribers, moving as few as possible.

    Every subscriber of a topic gets floor(P/k) or ceil(P/k) of its P partitions; a
    partition stays with its previous member when that keeps the balance. Extra
    partitions go to the members with the least total load, so several topics spread
    evenly. Deterministic for a given input.
    """
    load = dict.fromkeys(subscriptions, 0)
    result: dict[TopicPartition, str] = {}
    for topic in sorted(partitions):
        eligible = sorted(m for m, ts in subscriptions.items() if topic in ts)
        if eligible:
            _assign_topic(topic, partitions[topic], eligible, previous, load, result)
    return result


def _assign_topic(
    topic: str,
    n: int,
    eligible: list[str],
    previous: Mapping[TopicPartition, str],
    load: dict[str, int],
    result: dict[TopicPartition, str],
) -> None:
    base, extra = divmod(n, len(eligible))
    count = dict.fromkeys(eligible, 0)
    free: list[int] = []
    for p in range(n):
        m = previous.get(TopicPartition(topic, p))
        if m in count and count[m] < base:
            count[m] += 1
            result[TopicPartition(topic, p)] = m
        else:
            free.append(p)
    still_free: list[int] = []
    for p in free:
        m = previous.get(TopicPartition(topic, p))
        if m in count and count[m] == base and extra > 0:
            count[m] += 1
            extra -= 1
            result[TopicPartition(topic, p)] = m
        else:
            still_free.append(p)
    for p in still_free:
        candidates = [m for m in eligible if count[m] < base or (count[m] == base and extra > 0)]
        m = min(candidates, key=lambda c: (count[c], load[c], c))
        if count[m] == base:
            extra -= 1
        count[m] += 1
        result[TopicPartition(topic, p)] = m
    for m, c in count.items():
        load[m] += c
