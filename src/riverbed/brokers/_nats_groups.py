"""Consumer groups on a JetStream key-value bucket, shared by every client of the server.

Bucket `RB_GROUPS` (history 1) holds, per group:

- `g.<group>`: the group's document, msgpack: the `GroupState` of `_groups` (members,
  generation, owners, targets) and the committed offsets. Every change (join, release,
  leave, expiry, commit, offset reset) is read-modify-write with compare-and-set on the
  key's revision (`Nats-Expected-Last-Subject-Sequence`), retried on conflict, so all
  machines see one coordinator, as the sqlite backend's write transaction gives.
  A commit checks ownership and stores the offsets in that one CAS: a member that lost
  a partition can never store an offset for it (`FencedError`).
- `m.<group>.<member>`: the member's last heartbeat (ms). Heartbeats only write this
  key, so they never make a commit's CAS conflict. A member's liveness is the later of
  this and the `last_seen_ms` in the document; an operation that expires members
  (join, heartbeat, set_offsets, maintain) reads every member's key first.

Session expiry compares the heartbeat times written by each member's clock with the
reader's clock: the machines' clocks must agree to well within the session timeout
(NTP does), as with any lease kept by wall-clock time.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TypeVar

import msgspec
import nats.js.errors
from nats.js import JetStreamContext
from nats.js.api import KeyValueConfig, StorageType
from nats.js.kv import KeyValue

from riverbed.brokers._groups import GroupState
from riverbed.brokers._nats_api import translated
from riverbed.brokers._nats_codec import decode_name, encode_name
from riverbed.brokers.base import Assignment, GroupInfo, TopicPartition
from riverbed.errors import BrokerUnavailable, ConfigError, FencedError

__all__ = ["GroupDoc", "GroupStore"]

BUCKET = "RB_GROUPS"
_CAS_ATTEMPTS = 50
T = TypeVar("T")
Counts = Callable[[Sequence[str]], Awaitable[dict[str, int]]]
"""Partition counts of the given topics (raises `UnknownTopic`)."""


class GroupDoc(msgspec.Struct):
    state: GroupState = msgspec.field(default_factory=GroupState)
    offsets: dict[str, int] = msgspec.field(default_factory=dict)
    """'partition:topic' -> next offset, keyed like `GroupState.owners`."""


_encode = msgspec.msgpack.Encoder().encode
_decode_doc = msgspec.msgpack.Decoder(GroupDoc).decode


def _key(tp: TopicPartition) -> str:
    return f"{tp.partition}:{tp.topic}"


def _tp(key: str) -> TopicPartition:
    p, _, topic = key.partition(":")
    return TopicPartition(topic, int(p))


def _doc_key(group: str) -> str:
    return f"g.{encode_name(group)}"


def _live_key(group: str, member: str) -> str:
    return f"m.{encode_name(group)}.{encode_name(member)}"


class GroupStore:
    """Group operations over the bucket; `clock` gives milliseconds."""

    def __init__(
        self, js: JetStreamContext, counts: Counts, clock: Callable[[], int], replicas: int
    ) -> None:
        self._js = js
        self._counts = counts
        self._clock = clock
        self._replicas = replicas
        self._kv: KeyValue | None = None
        self._lock = asyncio.Lock()

    async def _bucket(self) -> KeyValue:
        if self._kv is None:
            async with self._lock:
                if self._kv is None:
                    with translated("key-value bucket"):
                        try:
                            self._kv = await self._js.key_value(BUCKET)
                        except nats.js.errors.BucketNotFoundError:
                            config = KeyValueConfig(
                                bucket=BUCKET,
                                history=1,
                                storage=StorageType.FILE,
                                replicas=self._replicas,
                            )
                            self._kv = await self._js.create_key_value(config)
        return self._kv

    # -- storage ------------------------------------------------------------------------
    async def _get(self, key: str) -> tuple[bytes, int] | None:
        kv = await self._bucket()
        with translated("key-value get"):
            try:
                entry = await kv.get(key)
            except (nats.js.errors.KeyNotFoundError, nats.js.errors.KeyDeletedError):
                return None
        return entry.value or b"", entry.revision or 0

    async def _load(self, group: str) -> tuple[GroupDoc, int]:
        got = await self._get(_doc_key(group))
        if got is None:
            return GroupDoc(), 0
        return _decode_doc(got[0]), got[1]

    async def _store(self, group: str, doc: GroupDoc, revision: int) -> bool:
        kv = await self._bucket()
        with translated("key-value update"):
            try:
                await kv.update(_doc_key(group), _encode(doc), last=revision)
            except nats.js.errors.KeyWrongLastSequenceError:
                return False
        return True

    async def _beat(self, group: str, member: str, now: int) -> None:
        kv = await self._bucket()
        with translated("key-value put"):
            await kv.put(_live_key(group, member), str(now).encode())

    async def _forget_members(self, group: str, members: Sequence[str]) -> None:
        kv = await self._bucket()
        with translated("key-value purge"):
            await asyncio.gather(*(kv.purge(_live_key(group, m)) for m in members))

    async def _merge_liveness(self, group: str, state: GroupState) -> None:
        ids = list(state.members)
        beats = await asyncio.gather(*(self._get(_live_key(group, m)) for m in ids))
        for mid, got in zip(ids, beats, strict=True):
            if got is not None:
                try:
                    seen = int(got[0])
                except ValueError:
                    continue  # not a heartbeat of ours: ignore it
                member = state.members[mid]
                member.last_seen_ms = max(member.last_seen_ms, seen)

    async def _mutate(
        self,
        group: str,
        change: Callable[[GroupDoc, dict[str, int]], tuple[T, bool]],
        *,
        expire: bool,
        topics: Sequence[str] = (),
    ) -> T:
        """Apply `change(doc, partition_counts)` -> (result, changed) with CAS, retrying.

        With `expire`, members whose session ran out are removed first (and stored even
        when `change` changes nothing).
        """
        for _ in range(_CAS_ATTEMPTS):
            doc, revision = await self._load(group)
            counts = await self._counts(sorted(set(_topics_of(doc.state)) | set(topics)))
            dead: list[str] = []
            if expire and doc.state.members:
                await self._merge_liveness(group, doc.state)
                dead = doc.state.expire(self._clock(), counts)
            try:
                result, changed = change(doc, counts)
            except Exception:
                # Every change checks before it modifies, so `doc` holds only the expiry,
                # which is worth keeping.
                if dead and await self._store(group, doc, revision):
                    await self._forget_members(group, dead)
                raise
            if not (changed or dead):
                return result
            if await self._store(group, doc, revision):
                if dead:
                    await self._forget_members(group, dead)
                return result
        raise BrokerUnavailable(
            f"group {group!r}: {_CAS_ATTEMPTS} conflicting updates in a row; retry later"
        )

    # -- the protocol ---------------------------------------------------------------------
    async def join(
        self, group: str, member: str, topics: Sequence[str], session_ms: int, client: str
    ) -> Assignment:
        await self._counts(list(topics))  # UnknownTopic before anything is written
        now = self._clock()

        def join(doc: GroupDoc, counts: dict[str, int]) -> tuple[Assignment, bool]:
            a = doc.state.join(
                member,
                topics,
                client=client,
                now_ms=now,
                session_timeout_ms=session_ms,
                partitions=counts,
            )
            return a, True

        a = await self._mutate(group, join, expire=True, topics=topics)
        await self._beat(group, member, now)
        return a

    async def heartbeat(self, group: str, member: str) -> Assignment:
        now = self._clock()
        await self._beat(group, member, now)

        def beat(doc: GroupDoc, counts: dict[str, int]) -> tuple[Assignment, bool]:
            # Raises FencedError for an unknown member; the doc is not written for it.
            return doc.state.heartbeat(member, now_ms=now), False

        try:
            return await self._mutate(group, beat, expire=True)
        except FencedError:
            await self._forget_members(group, [member])
            raise

    async def release(self, group: str, member: str, tps: Sequence[TopicPartition]) -> None:
        def release(doc: GroupDoc, counts: dict[str, int]) -> tuple[None, bool]:
            before = dict(doc.state.owners)
            doc.state.release(member, tps)
            return None, doc.state.owners != before

        await self._mutate(group, release, expire=False)

    async def leave(self, group: str, member: str) -> None:
        def leave(doc: GroupDoc, counts: dict[str, int]) -> tuple[None, bool]:
            return None, doc.state.leave(member, counts)

        await self._mutate(group, leave, expire=False)
        await self._forget_members(group, [member])

    async def commit(self, group: str, member: str, offsets: Mapping[TopicPartition, int]) -> None:
        def commit(doc: GroupDoc, counts: dict[str, int]) -> tuple[None, bool]:
            doc.state.check_owner(member, offsets)  # FencedError: nothing is stored
            changed = False
            for tp, off in offsets.items():
                k = _key(tp)
                if doc.offsets.get(k) != off:
                    doc.offsets[k] = off
                    changed = True
            return None, changed

        await self._mutate(group, commit, expire=False)

    async def committed(self, group: str, topic: str) -> dict[int, int]:
        doc, _ = await self._load(group)
        return {
            tp.partition: off for k, off in doc.offsets.items() if (tp := _tp(k)).topic == topic
        }

    async def set_offsets(self, group: str, offsets: Mapping[TopicPartition, int]) -> None:
        await self._counts(sorted({tp.topic for tp in offsets}))  # UnknownTopic first

        def reset(doc: GroupDoc, counts: dict[str, int]) -> tuple[None, bool]:
            if doc.state.members:
                raise ConfigError(
                    f"group {group!r} has {len(doc.state.members)} live member(s); stop its "
                    "consumers before resetting offsets"
                )
            doc.offsets.update({_key(tp): off for tp, off in offsets.items()})
            return None, bool(offsets)

        await self._mutate(group, reset, expire=True)

    async def names(self) -> list[str]:
        """Every group with a document in the bucket (members or offsets or neither)."""
        await self._bucket()
        with translated("key-value keys"):
            info = await self._js.stream_info(f"KV_{BUCKET}", subjects_filter=f"$KV.{BUCKET}.g.*")
        subjects = info.state.subjects or {}
        prefix = f"$KV.{BUCKET}.g."
        return sorted(decode_name(s[len(prefix) :]) for s in subjects if s.startswith(prefix))

    async def list_all(self) -> list[str]:
        names = await self.names()
        docs = await asyncio.gather(*(self._load(g) for g in names))
        return [
            g for g, (doc, _) in zip(names, docs, strict=True) if doc.state.members or doc.offsets
        ]

    async def describe(self, group: str) -> GroupInfo:
        doc, _ = await self._load(group)
        if doc.state.members:
            await self._merge_liveness(group, doc.state)
        committed = {_tp(k): off for k, off in doc.offsets.items()}
        return GroupInfo(group, doc.state.generation, doc.state.member_infos(), committed)

    async def expire_all(self) -> None:
        """Expire dead members of every group (what `maintain` does for groups)."""

        def nothing(doc: GroupDoc, counts: dict[str, int]) -> tuple[None, bool]:
            return None, False

        for group in await self.names():
            await self._mutate(group, nothing, expire=True)


def _topics_of(state: GroupState) -> list[str]:
    return sorted({t for m in state.members.values() for t in m.topics})
