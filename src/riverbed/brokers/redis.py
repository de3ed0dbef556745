"""`redis://host:port/db`: topics as Redis Streams, shared by processes on many machines.

Layout (every key under a prefix, `rb` by default; see docs/backends/redis.md):

- `rb:{<topic>}:meta`: hash with the topic's `partitions` and its `spec` (JSON);
  `rb:topics`: the set of topic names.
- `rb:{<topic>}:<partition>`: one stream per partition; an entry holds a record as
  CloudEvents attributes (`_redis_codec`). The offset of an entry is its id encoded
  as `ms << 20 | seq`: increasing, not dense (`capabilities.dense_offsets=False`).
- `rb:g:{<group>}:state|hb|owners|offsets` and `rb:groups`: consumer groups
  (`_redis_groups`).

Appends are one Lua script per batch (atomic, one round trip; how a batch travels and
what the script replies is in `_redis_append`); a fetch is one XREAD over all
requested partitions, with BLOCK when it may wait, so it wakes as soon as any
connection appends. `append_and_commit` checks ownership, appends and
stores offsets in one script: atomic on a single Redis primary (a failover to a replica
that had not received the script's effects loses them, as Redis replication is
asynchronous). Retention: `retention_ms` trims by entry id (XTRIM MINID, server time),
`retention_bytes` by length (`_redis_scripts.TRIM_BYTES`), both in `maintain`.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Awaitable, Iterable, Mapping, Sequence
from typing import Any, TypeVar

import msgspec

from riverbed.brokers._cetime import TimeText
from riverbed.brokers._redis_append import Batch, assign, expand
from riverbed.brokers._redis_codec import EntryDecoder, id_before, offset_of
from riverbed.brokers._redis_conn import Connection, Keys, RedisConfig, parse_url
from riverbed.brokers._redis_groups import Groups, offsets_section
from riverbed.brokers._redis_scripts import Scripts
from riverbed.brokers.base import (
    Assignment,
    Capabilities,
    GroupInfo,
    PartitionInfo,
    TopicInfo,
    TopicPartition,
    TopicSpec,
)
from riverbed.errors import ClosedError, TopicConflict, UnknownTopic, UnsupportedCapability
from riverbed.events import Record

__all__ = ["RedisBroker", "RedisConfig"]

T = TypeVar("T")
_spec_json = msgspec.json.Encoder()
_spec_decoder = msgspec.json.Decoder(TopicSpec)


class RedisBroker:
    """The Redis Streams `Broker` (see the module docstring).

    `url` is `redis://host:port/db`; options (keyword or URL query parameters) are the
    fields of `RedisConfig`: `prefix`, `retry_timeout`, `socket_timeout`, `dedup_window`.
    """

    capabilities = Capabilities(
        transactions=True,
        compaction=False,
        retention=True,
        fetch_by_time=True,
        multi_process=True,
        multi_machine=True,
        dense_offsets=False,
    )

    def __init__(self, url: str = "redis://127.0.0.1:6379/0", **options: Any) -> None:
        self.url = url
        redis_url, self.config = parse_url(url, options)
        self._conn = Connection(redis_url, self.config)
        self._keys = Keys(self.config.prefix)
        self._scripts = Scripts()
        self._groups = Groups(self._conn, self._keys, self._scripts, self._partition_counts)
        self._partitions: dict[str, int] = {}  # never changes once a topic exists
        self._times = TimeText()
        self._entries = EntryDecoder()
        self._closing = asyncio.Event()

    # -- lifecycle --------------------------------------------------------------------
    async def start(self) -> None:
        self._conn.check_open()
        await self._run(self._conn.client.ping)

    async def aclose(self) -> None:
        if self._conn.closed:
            return
        self._closing.set()  # waiting fetches end with ClosedError
        await self._conn.aclose()

    async def maintain(self) -> None:
        client = self._conn.client
        for group in await self._run(lambda: client.smembers(self._keys.groups)):
            await self._groups.expire(group.decode())
        now = int((await self._run(client.time))[0]) * 1000
        for info in await self.list_topics():
            spec = info.spec
            if spec.retention_ms is None and spec.retention_bytes is None:
                continue
            for p in range(spec.partitions):
                await self._trim(self._keys.stream(spec.name, p), spec, now)

    async def _trim(self, key: str, spec: TopicSpec, now_ms: int) -> None:
        client = self._conn.client
        if spec.retention_ms is not None:
            minid = f"{max(0, now_ms - spec.retention_ms)}-0"
            await self._run(lambda: client.xtrim(key, minid=minid, approximate=False))
        if spec.retention_bytes is not None:
            limit = spec.retention_bytes
            await self._run(lambda: self._scripts.call(client, "trim_bytes", [key], [limit]))

    # -- topics -----------------------------------------------------------------------
    async def create_topic(self, spec: TopicSpec) -> TopicInfo:
        if spec.compact:
            raise UnsupportedCapability(
                f"topic {spec.name!r} asks for compaction: Redis Streams cannot compact "
                "(keep the latest record per key); drop compact=True or use sqlite/kafka"
            )
        keys = [self._keys.meta(spec.name), self._keys.topics]
        args = [spec.name, spec.partitions, _spec_json.encode(spec)]
        try:
            await self._script("create_topic", keys, args)
        except TopicConflict as exc:
            raise TopicConflict(
                f"topic {spec.name!r} exists with other partitions than {spec.partitions} ({exc})"
            ) from exc
        self._partitions[spec.name] = spec.partitions
        return await self.describe_topic(spec.name)

    async def describe_topic(self, name: str) -> TopicInfo:
        n = (await self._partition_counts([name], strict=True))[name]
        reply = await self._script("topic_info", self._info_keys(name, n), [])
        return _topic_info(name, reply)

    async def list_topics(self) -> list[TopicInfo]:
        self._conn.check_open()
        client = self._conn.client
        found: set[Any] = await self._run(lambda: client.smembers(self._keys.topics))
        counts = await self._partition_counts(sorted(n.decode() for n in found))
        names = sorted(counts)
        calls: list[tuple[list[str], list[Any]]] = [
            (self._info_keys(n, counts[n]), []) for n in names
        ]
        replies = await self._run(lambda: self._scripts.call_many(client, "topic_info", calls))
        return [_topic_info(n, r) for n, r in zip(names, replies, strict=True)]

    def _info_keys(self, name: str, partitions: int) -> list[str]:
        return [self._keys.meta(name), *(self._keys.stream(name, p) for p in range(partitions))]

    async def _partition_counts(
        self, topics: Iterable[str], *, strict: bool = False
    ) -> dict[str, int]:
        """Partition counts of the topics that exist (all of them, or `UnknownTopic`)."""
        self._conn.check_open()
        topics = list(topics)
        missing = [t for t in topics if t not in self._partitions]
        if missing:
            client = self._conn.client

            async def lookup() -> list[Any]:
                async with client.pipeline(transaction=False) as pipe:
                    for t in missing:
                        pipe.hget(self._keys.meta(t), "partitions")
                    return await pipe.execute()

            for t, n in zip(missing, await self._run(lookup), strict=True):
                if n is not None:
                    self._partitions[t] = int(n)
        if strict:
            for t in topics:
                if t not in self._partitions:
                    raise UnknownTopic(f"topic {t!r} does not exist")
        return {t: self._partitions[t] for t in topics if t in self._partitions}

    # -- produce / fetch --------------------------------------------------------------
    async def append(self, topic: str, records: Sequence[Record[Any]]) -> list[int]:
        self._conn.check_open()
        if not records:
            await self._partition_counts([topic], strict=True)
            return []
        batch = Batch(self._keys, [], self._times)
        batch.add(topic, records)
        offsets = await self._append("append", batch.keys, [], batch.args())
        return assign(topic, records, offsets)

    async def _append(
        self, script: str, keys: list[str], head: list[Any], tail: list[Any]
    ) -> list[int]:
        """Run an append script; after a lost reply, the retry looks for the first try.
        Returns the records' offsets."""
        client = self._conn.client
        since = [""]
        started_ms = time.time_ns() // 1_000_000
        window_ms = int(self.config.dedup_window * 1000)

        def on_retry() -> None:
            since[0] = f"{max(0, started_ms - window_ms)}-0"

        def call() -> Awaitable[Any]:
            return self._scripts.call(client, script, keys, [*head, since[0], *tail])

        return expand(await self._run(call, on_retry=on_retry))

    async def fetch(
        self,
        positions: Mapping[TopicPartition, int],
        *,
        max_records: int = 1000,
        timeout: float = 0.0,
    ) -> list[Record[Any]]:
        self._conn.check_open()
        if not positions or max_records <= 0:
            return []
        counts = await self._partition_counts({tp.topic for tp in positions}, strict=True)
        streams: dict[bytes, tuple[str, TopicPartition]] = {}
        ids = []
        for tp, offset in positions.items():
            if not 0 <= tp.partition < counts[tp.topic]:
                raise UnknownTopic(f"no partition {tp.partition} in topic {tp.topic!r}")
            key = self._keys.stream(tp.topic, tp.partition)
            streams[key.encode()] = (key, tp)
            ids.append(id_before(offset))
        # Each stream may give its share; XREAD's COUNT is per stream.
        per = -(-max_records // len(positions))
        head: list[Any] = ["XREAD", "COUNT", per]
        tail = ["STREAMS", *(k for k, _ in streams.values()), *ids]
        if timeout <= 0:
            reply = await self._run(lambda: self._xread(head, tail))
        else:
            reply = await self._wait(head, tail, timeout)
        return self._decode(reply, streams, max_records)

    async def _wait(self, head: list[Any], tail: list[Any], timeout: float) -> Any:
        """XREAD BLOCK in slices shorter than the socket timeout, ended by `aclose`."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            remaining = deadline - loop.time()
            block = max(1, int(min(remaining, self.config.socket_timeout / 2) * 1000))
            blocking = [*head, "BLOCK", block]
            read = asyncio.ensure_future(self._run(functools.partial(self._xread, blocking, tail)))
            # Abandoned on close or cancellation: its error (the dropped connection)
            # is expected, so mark it retrieved rather than logged as never retrieved.
            read.add_done_callback(_retrieve)
            closing = asyncio.ensure_future(self._closing.wait())
            try:
                await asyncio.wait({read, closing}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                closing.cancel()
                if not read.done():
                    read.cancel()  # redis-py drops the connection of a cancelled read
            if not read.done() or read.cancelled():
                raise ClosedError("the redis broker was closed while a fetch waited")
            reply = read.result()
            if reply or loop.time() >= deadline:
                return reply

    def _xread(self, head: list[Any], tail: list[Any]) -> Awaitable[Any]:
        client = self._conn.client
        return client.execute_command(*head, *tail)  # type: ignore[no-untyped-call]

    def _decode(
        self, reply: Any, streams: dict[bytes, tuple[str, TopicPartition]], limit: int
    ) -> list[Record[Any]]:
        out: list[Record[Any]] = []
        if not reply:
            return out
        for key, entries in reply:
            name, (topic, partition) = streams[key]
            self._entries.extend(out, name, entries, topic, partition)
        return out[:limit] if len(out) > limit else out

    async def offset_for_time(self, tp: TopicPartition, timestamp_ms: int) -> int:
        """The first entry whose id (the record time, as a running maximum) is >= `timestamp_ms`."""
        info = await self.describe_topic(tp.topic)
        if not 0 <= tp.partition < len(info.partitions):
            raise UnknownTopic(f"no partition {tp.partition} in topic {tp.topic!r}")
        key = self._keys.stream(tp.topic, tp.partition)
        start = f"{max(0, timestamp_ms)}-0"
        client = self._conn.client
        found = await self._run(lambda: client.xrange(key, start, "+", count=1))
        return offset_of(found[0][0]) if found else info.partitions[tp.partition].end_offset

    # -- groups -----------------------------------------------------------------------
    async def join_group(
        self,
        group: str,
        member_id: str,
        topics: Sequence[str],
        *,
        session_timeout: float = 10.0,
        client: str = "",
    ) -> Assignment:
        self._conn.check_open()
        return await self._groups.join(
            group, member_id, list(topics), client, int(session_timeout * 1000)
        )

    async def heartbeat(self, group: str, member_id: str) -> Assignment:
        self._conn.check_open()
        return await self._groups.heartbeat(group, member_id)

    async def release(
        self, group: str, member_id: str, partitions: Sequence[TopicPartition]
    ) -> None:
        self._conn.check_open()
        await self._groups.release(group, member_id, list(partitions))

    async def leave_group(self, group: str, member_id: str) -> None:
        self._conn.check_open()
        await self._groups.leave(group, member_id)

    async def commit(
        self, group: str, member_id: str, offsets: Mapping[TopicPartition, int]
    ) -> None:
        self._conn.check_open()
        if offsets:
            await self._groups.commit(group, member_id, dict(offsets))

    async def committed(self, group: str, topic: str) -> dict[int, int]:
        self._conn.check_open()
        got = await self._groups.committed(group, topic)
        return {tp.partition: offset for tp, offset in got.items()}

    async def set_offsets(self, group: str, offsets: Mapping[TopicPartition, int]) -> None:
        self._conn.check_open()
        await self._groups.set_offsets(group, dict(offsets))

    async def list_groups(self) -> list[str]:
        self._conn.check_open()
        return await self._groups.names()

    async def describe_group(self, group: str) -> GroupInfo:
        self._conn.check_open()
        return await self._groups.describe(group)

    async def append_and_commit(
        self,
        appends: Sequence[tuple[str, Sequence[Record[Any]]]],
        group: str,
        member_id: str,
        offsets: Mapping[TopicPartition, int],
    ) -> list[list[int]]:
        self._conn.check_open()
        k = self._keys
        keys = [k.group(group, "owners"), k.group(group, "offsets"), k.groups]
        head = [group, member_id]
        section = offsets_section(k, dict(offsets), keys)
        batch = Batch(k, keys, self._times)
        for topic, records in appends:
            batch.add(topic, records)
        tail = [*section, *batch.args()]
        appended = await self._append("append_and_commit", batch.keys, head, tail)
        out, at = [], 0
        for topic, records in appends:
            out.append(assign(topic, records, appended[at : at + len(records)]))
            at += len(records)
        return out

    # -- internals --------------------------------------------------------------------
    async def _run(self, call: Any, **kwargs: Any) -> Any:
        return await self._conn.run(call, **kwargs)

    async def _script(self, name: str, keys: list[str], args: list[Any]) -> Any:
        client = self._conn.client
        return await self._run(lambda: self._scripts.call(client, name, keys, args))


def _retrieve(task: asyncio.Future[Any]) -> None:
    if not task.cancelled():
        task.exception()


def _topic_info(name: str, reply: Any) -> TopicInfo:
    raw_spec, streams = reply
    if not raw_spec:
        raise UnknownTopic(f"topic {name!r} does not exist")
    spec = _spec_decoder.decode(raw_spec)
    parts = []
    for p, (last, first, length) in enumerate(streams):
        end = offset_of(last) + 1
        start = offset_of(first) if int(length) else end
        parts.append(PartitionInfo(p, start, end))
    return TopicInfo(spec, parts)
