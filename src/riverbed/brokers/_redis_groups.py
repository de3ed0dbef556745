"""Consumer groups on Redis, shared by every process and machine using the server.

Per group (keys hash-tagged `{group}`):

- `state`: the `GroupState` of `_groups` (members, generation, owners, targets),
  msgpack-encoded, changed only by compare-and-set (the GROUP_STORE script stores a new
  state only if the key still holds the bytes it was computed from; else we re-read and
  apply the operation again). Joins, leaves, releases and expiry go through it.
- `hb`: member -> last heartbeat, in the *server's* milliseconds (Redis TIME), so
  machines with skewed clocks agree on who is late. Heartbeats write only here, so
  they never make a state change conflict; the hash also mirrors membership (a
  heartbeat of a non-member writes nothing).
- `owners`: partition -> owning member, rewritten with every state change, so the
  commit scripts check ownership without decoding the state.
- `offsets`: partition -> committed offset. Each commit also moves the native Redis
  consumer group of that partition's stream (same name as the riverbed group) to the
  entry before the committed offset, so `XINFO GROUPS` shows progress and lag.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any, TypeVar

import msgspec

from riverbed.brokers._groups import GroupState
from riverbed.brokers._redis_codec import id_before
from riverbed.brokers._redis_conn import Connection, Keys, owner_field
from riverbed.brokers._redis_scripts import Scripts
from riverbed.brokers.base import Assignment, GroupInfo, TopicPartition
from riverbed.errors import BrokerUnavailable, ConfigError, UnknownTopic

__all__ = ["Groups", "offsets_section"]

T = TypeVar("T")
Counts = Callable[[Iterable[str]], Awaitable[dict[str, int]]]
"""Partition counts of the named topics that exist."""
Op = Callable[[GroupState, int, dict[str, int]], T]

_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(GroupState)
_CAS_ATTEMPTS = 100


def offsets_section(
    keys: Keys, offsets: Mapping[TopicPartition, int], key_list: list[str]
) -> list[Any]:
    """ARGV for the scripts' offsets section; appends the streams to `key_list`."""
    out: list[Any] = [len(offsets)]
    for tp, offset in offsets.items():
        key_list.append(keys.stream(tp.topic, tp.partition))
        out += (owner_field(tp), offset, len(key_list), id_before(offset))
    return out


class _Snapshot(msgspec.Struct):
    now: int
    raw: bytes
    state: GroupState
    heartbeats: dict[str, int]


class Groups:
    """The group half of `RedisBroker` (see the module docstring)."""

    def __init__(self, conn: Connection, keys: Keys, scripts: Scripts, counts: Counts) -> None:
        self._conn = conn
        self._keys = keys
        self._scripts = scripts
        self._counts = counts

    # -- reading ------------------------------------------------------------------------
    async def _read(self, group: str, member: str = "") -> _Snapshot:
        k = self._keys
        keys = [k.group(group, "state"), k.group(group, "hb")]
        now, raw, flat = await self._conn.run(
            lambda: self._scripts.call(self._conn.client, "group_read", keys, [member])
        )
        state = _decoder.decode(raw) if raw else GroupState()
        it = iter(flat)
        beats = {m.decode(): int(v.partition(b":")[0]) for m, v in zip(it, it, strict=False)}
        now = int(now)
        for mid, m in state.members.items():
            m.last_seen_ms = beats.get(mid, now)
        return _Snapshot(now, raw, state, beats)

    async def _partition_counts(self, state: GroupState, extra: Iterable[str]) -> dict[str, int]:
        topics = {t for m in state.members.values() for t in m.topics} | set(extra)
        return await self._counts(topics)

    # -- compare-and-set ------------------------------------------------------------------
    async def op(
        self,
        group: str,
        fn: Op[T],
        *,
        topics: Iterable[str] = (),
        touch: Sequence[str] = (),
        offsets: Mapping[TopicPartition, int] | None = None,
    ) -> T:
        """Apply `fn(state, now_ms, partition_counts)` to the group's state, atomically.

        `touch`: members whose heartbeat is set to now; `offsets`: committed in the same
        step. Retries when another process changed the state in between.
        """
        topics = list(topics)
        for _ in range(_CAS_ATTEMPTS):
            snap = await self._read(group)
            counts = await self._partition_counts(snap.state, topics)
            before = _encode(snap.state)
            result = fn(snap.state, snap.now, counts)
            after = _encode(snap.state)
            if after == before and not touch and not offsets:
                return result
            if await self._store(group, snap, after, touch, offsets or {}):
                return result
            await asyncio.sleep(random.random() * 0.01)  # contention: let the winner finish
        raise BrokerUnavailable(f"group {group!r}: too much contention on its state")

    async def _store(
        self,
        group: str,
        snap: _Snapshot,
        new: bytes,
        touch: Sequence[str],
        offsets: Mapping[TopicPartition, int],
    ) -> bool:
        k = self._keys
        state = snap.state
        keys = [
            k.group(group, "state"),
            k.group(group, "hb"),
            k.group(group, "owners"),
            k.group(group, "offsets"),
            k.groups,
        ]
        joined = state.members.keys() - snap.heartbeats.keys()
        alive = sorted(m for m in set(touch) | joined if m in state.members)
        gone = sorted(snap.heartbeats.keys() - state.members.keys())
        args: list[Any] = [group, snap.raw, new, len(alive)]
        for mid in alive:
            args += (mid, f"{snap.now}:{state.members[mid].session_timeout_ms}")
        args += (len(gone), *gone)
        args.append(len(state.owners))
        for field, member in state.owners.items():
            args += (field, member)
        args += offsets_section(k, offsets, keys)
        stored = await self._conn.run(
            lambda: self._scripts.call(self._conn.client, "group_store", keys, args)
        )
        return bool(stored)

    # -- the protocol ---------------------------------------------------------------------
    async def join(
        self, group: str, member_id: str, topics: Sequence[str], client: str, timeout_ms: int
    ) -> Assignment:
        def fn(state: GroupState, now: int, counts: dict[str, int]) -> Assignment:
            return state.admit(
                member_id,
                topics,
                client=client,
                now_ms=now,
                session_timeout_ms=timeout_ms,
                partitions=counts,
            )

        return await self.op(group, fn, topics=topics, touch=[member_id])

    async def heartbeat(self, group: str, member_id: str) -> Assignment:
        snap = await self._read(group, member_id)
        state = snap.state
        if member_id in state.members and not _expired(state, snap.now):
            return state.heartbeat(member_id, now_ms=snap.now)

        def fn(state: GroupState, now: int, counts: dict[str, int]) -> Assignment:
            return state.beat(member_id, now_ms=now, partitions=counts)

        # Someone is late (maybe us): expire under compare-and-set, then answer.
        return await self.op(group, fn, touch=[member_id] if member_id in state.members else [])

    async def release(self, group: str, member_id: str, tps: Sequence[TopicPartition]) -> None:
        await self.op(group, lambda state, _now, _counts: state.release(member_id, tps))

    async def leave(self, group: str, member_id: str) -> None:
        await self.op(group, lambda state, _now, counts: state.leave(member_id, counts))

    async def commit(
        self, group: str, member_id: str, offsets: Mapping[TopicPartition, int]
    ) -> None:
        k = self._keys
        keys = [k.group(group, "owners"), k.group(group, "offsets"), k.groups]
        args = [group, member_id, *offsets_section(k, offsets, keys)]
        await self._conn.run(lambda: self._scripts.call(self._conn.client, "commit", keys, args))

    async def set_offsets(self, group: str, offsets: Mapping[TopicPartition, int]) -> None:
        wanted = {tp.topic for tp in offsets}

        def fn(state: GroupState, now: int, counts: dict[str, int]) -> None:
            for t in wanted:
                if t not in counts:
                    raise UnknownTopic(f"topic {t!r} does not exist")
            state.expire(now, counts)
            if state.members:
                raise ConfigError(
                    f"group {group!r} has {len(state.members)} live member(s); stop its "
                    "consumers before resetting offsets"
                )

        await self.op(group, fn, topics=wanted, offsets=offsets)

    async def expire(self, group: str) -> None:
        """Remove members past their session timeout (for `maintain`)."""
        snap = await self._read(group)
        if _expired(snap.state, snap.now):
            await self.op(group, lambda state, now, counts: state.expire(now, counts))

    # -- views ----------------------------------------------------------------------------
    async def committed(self, group: str, topic: str | None = None) -> dict[TopicPartition, int]:
        key = self._keys.group(group, "offsets")
        flat: dict[Any, Any] = await self._conn.run(lambda: self._conn.client.hgetall(key))
        out: dict[TopicPartition, int] = {}
        for field, value in flat.items():
            p, _, t = field.decode().partition(":")
            if topic is None or t == topic:
                out[TopicPartition(t, int(p))] = int(value)
        return out

    async def describe(self, group: str) -> GroupInfo:
        snap = await self._read(group)
        committed = await self.committed(group)
        return GroupInfo(group, snap.state.generation, snap.state.member_infos(), committed)

    async def names(self) -> list[str]:
        """Groups with members or committed offsets, sorted."""
        k = self._keys
        client = self._conn.client
        found: set[Any] = await self._conn.run(lambda: client.smembers(k.groups))
        members = sorted(m.decode() for m in found)

        async def probe() -> list[Any]:
            async with client.pipeline(transaction=False) as pipe:
                for g in members:
                    pipe.hlen(k.group(g, "hb"))
                    pipe.exists(k.group(g, "offsets"))
                return await pipe.execute()

        flags = await self._conn.run(probe)
        return [g for i, g in enumerate(members) if flags[2 * i] or flags[2 * i + 1]]


def _expired(state: GroupState, now: int) -> bool:
    return any(now - m.last_seen_ms > m.session_timeout_ms for m in state.members.values())


def _encode(state: GroupState) -> bytes:
    """The stored form: heartbeat times live in their own hash, so they are zeroed here
    (else every heartbeat would change the state and conflict with everything)."""
    seen = {mid: m.last_seen_ms for mid, m in state.members.items()}
    for m in state.members.values():
        m.last_seen_ms = 0
    try:
        return _encoder.encode(state)
    finally:
        for mid, m in state.members.items():
            m.last_seen_ms = seen[mid]
