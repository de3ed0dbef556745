"""The conformance suite on Redis Streams, plus what only the Redis backend shows."""

from __future__ import annotations

import random
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import pytest_asyncio
import redis.asyncio as aioredis

from riverbed.brokers.base import Broker, TopicPartition, TopicSpec
from riverbed.brokers.redis import RedisBroker
from riverbed.errors import UnsupportedCapability
from riverbed.events import Record
from riverbed.testing.conformance import BrokerConformance, make_record, unique_name
from riverbed.testing.conformance._base import now_ms


@pytest.fixture(scope="module")
def redis_prefix_url(redis_url: str) -> Iterator[str]:
    """The shared server, with a key prefix of this module's own, removed afterwards."""
    prefix = f"rbtest-{uuid.uuid4().hex[:8]}"
    yield f"{redis_url}?prefix={prefix}"
    import redis

    client = redis.Redis.from_url(redis_url)
    try:
        keys = list(client.scan_iter(match=f"{prefix}:*", count=1000))
        for i in range(0, len(keys), 1000):
            client.delete(*keys[i : i + 1000])
    finally:
        client.close()


class TestRedisBroker(BrokerConformance):
    @pytest_asyncio.fixture
    async def broker(self, redis_prefix_url: str) -> AsyncIterator[RedisBroker]:
        b = RedisBroker(redis_prefix_url)
        await b.start()
        yield b
        await b.aclose()

    async def open_peer(self, broker: Broker) -> Broker:
        other = RedisBroker(broker.url)
        await other.start()
        return other

    # -- beyond the protocol ---------------------------------------------------------------
    async def test_declares_what_redis_guarantees(self, broker: Broker) -> None:
        caps = broker.capabilities
        assert caps.multi_machine
        assert caps.multi_process
        assert caps.transactions
        assert not caps.compaction
        assert not caps.dense_offsets

    async def test_compaction_is_refused_with_a_reason(self, broker: Broker) -> None:
        with pytest.raises(UnsupportedCapability, match="cannot compact"):
            await broker.create_topic(TopicSpec(unique_name("t"), compact=True))

    async def test_offsets_are_entry_ids(self, broker: RedisBroker, redis_url: str) -> None:
        topic = unique_name("t")
        await broker.create_topic(TopicSpec(topic))
        offsets = await broker.append(topic, [make_record(), make_record()])
        client = aioredis.Redis.from_url(redis_url)
        try:
            key = f"{broker.config.prefix}:{{{topic}}}:0"
            ids = [eid.decode() for eid, _ in await client.xrange(key)]
        finally:
            await client.aclose()
        assert [(o >> 20, o & 0xFFFFF) for o in offsets] == [
            tuple(int(x) for x in i.split("-")) for i in ids
        ]
        got = await broker.fetch({TopicPartition(topic, 0): offsets[1]})
        assert [r.offset for r in got] == offsets[1:]

    async def _plain_entries(
        self, broker: RedisBroker, redis_url: str, topic: str, ids: list[str]
    ) -> None:
        """Entries with chosen ids (times), as another client could add them."""
        client = aioredis.Redis.from_url(redis_url)
        try:
            for entry_id in ids:
                await client.xadd(self._stream(broker, topic), {"data": entry_id}, id=entry_id)
        finally:
            await client.aclose()

    def _stream(self, broker: RedisBroker, topic: str, partition: int = 0) -> str:
        return f"{broker.config.prefix}:{{{topic}}}:{partition}"

    async def test_entry_ids_carry_record_time_as_a_running_maximum(
        self, broker: RedisBroker, redis_url: str
    ) -> None:
        """An entry id's milliseconds are the record's own time, raised to the stream's
        last id (ids must grow) and capped at the server's clock (a future timestamp
        must not push the stream ahead of every later writer)."""
        topic = unique_name("t")
        await broker.create_topic(TopicSpec(topic))
        tp = TopicPartition(topic, 0)
        base = 1_700_000_000_000
        await self._plain_entries(
            broker, redis_url, topic, [f"{base}-0", f"{base}-1", f"{base + 1000}-0"]
        )
        late = await broker.append(topic, [make_record(timestamp=0)])
        on_time = await broker.append(topic, [make_record(timestamp=base + 5000)])
        future = await broker.append(topic, [make_record(timestamp=now_ms() + 86_400_000)])
        offsets = [r.offset for r in await broker.fetch({tp: 0})]
        assert offsets[:5] == [
            base << 20,
            base << 20 | 1,
            (base + 1000) << 20,
            (base + 1000) << 20 | 1,  # timestamp 0: after the last id, in its millisecond
            (base + 5000) << 20,
        ]
        assert offsets == [*offsets[:3], late[0], on_time[0], future[0]]
        assert (future[0] >> 20) <= now_ms() + 1000, "a future timestamp ran ahead of the clock"
        assert await broker.offset_for_time(tp, base + 1) == offsets[2]
        assert await broker.offset_for_time(tp, base + 1001) == offsets[4]
        end = (await broker.describe_topic(topic)).end_offsets()[0]
        assert end == offsets[-1] + 1
        assert await broker.offset_for_time(tp, now_ms() + 3_600_000) == end

    async def test_retention_by_age_trims_by_entry_id(
        self, broker: RedisBroker, redis_url: str
    ) -> None:
        topic = unique_name("t")
        await broker.create_topic(TopicSpec(topic, 2))
        old = 1_700_000_000_000
        await self._plain_entries(broker, redis_url, topic, [f"{old}-0", f"{old + 1}-0"])
        fresh = await broker.append(topic, [make_record(0, value=b"new"), make_record(1)])
        await broker.maintain()
        assert (await broker.describe_topic(topic)).partitions[0].start_offset == old << 20

        await broker.create_topic(TopicSpec(topic, 2, retention_ms=60_000))
        await broker.maintain()
        p0, p1 = (await broker.describe_topic(topic)).partitions
        assert (p0.start_offset, p0.end_offset) == (fresh[0], fresh[0] + 1)
        assert (p1.start_offset, p1.end_offset) == (fresh[1], fresh[1] + 1)
        got = await broker.fetch({TopicPartition(topic, 0): 0})
        assert [(r.offset, r.value) for r in got] == [(fresh[0], b"new")]

    @pytest.mark.parametrize("heap_chunk", [None, 40])
    async def test_retried_append_finds_the_batch_that_landed(
        self, broker: RedisBroker, heap_chunk: int | None, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """What a retry after a lost reply does: the script finds the stored batch by its
        records' ce_ids and returns its ids instead of appending it again."""
        from riverbed.brokers import _redis_append
        from riverbed.brokers._redis_append import Batch, expand

        if heap_chunk is not None:  # strings spread over many script arguments
            monkeypatch.setattr(_redis_append, "HEAP_CHUNK", heap_chunk)

        topic = unique_name("t")
        await broker.create_topic(TopicSpec(topic, 2))
        records = [make_record(p) for p in (0, 1, 0, 0)]
        batch = Batch(broker._keys, [], broker._times)
        batch.add(topic, records)
        client = broker._conn.client

        async def attempt(since: str, batch: Batch = batch) -> list[int]:
            runs = await broker._scripts.call(client, "append", batch.keys, [since, *batch.args()])
            return expand(runs)

        first = await attempt("")
        await broker.append(topic, [make_record(0), make_record(1)])  # others append after
        assert await attempt("0-0") == first
        assert [len(await broker.fetch({TopicPartition(topic, p): 0})) for p in (0, 1)] == [4, 2]
        assert [r.offset for r in await broker.fetch({TopicPartition(topic, 0): 0})][:3] == [
            first[0],
            *first[2:],
        ]
        other = Batch(broker._keys, [], broker._times)
        other.add(topic, [make_record(0)])
        assert len(await attempt("0-0", other)) == 1, "a batch that never landed is appended"
        assert len(await broker.fetch({TopicPartition(topic, 0): 0})) == 5

    @pytest.mark.parametrize("heap_chunk", [None, 100])
    async def test_a_mixed_batch_round_trips(
        self, broker: RedisBroker, heap_chunk: int | None, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """The append script gets only what changes from one record to the next (see
        `_redis_append`): every combination still reads back exactly, in one batch and
        in `append_and_commit` over two topics."""
        from riverbed.brokers import _redis_append

        if heap_chunk is not None:
            monkeypatch.setattr(_redis_append, "HEAP_CHUNK", heap_chunk)
        rng = random.Random(7)
        times = [now_ms(), now_ms(), 0, -5, 253_402_300_800_000, 2**70, -(2**70)]
        headers: list[dict[str, str]] = [
            {},
            {"a": "b"},
            {"content-type": "text/plain"},
            {"x\udcff": "v\udc80", "content-type": "application/json"},
        ]

        def record() -> Record[Any]:
            return make_record(
                rng.randrange(3),
                key=rng.choice([None, b"", b"k\xff", b"cust-7"]),
                value=rng.choice([b"{}", b"", b"\x00\xff" * 50, b"x" * 300]),
                timestamp=rng.choice(times),
                headers=rng.choice(headers),
                type=rng.choice(["t.a", "t.b", ""]),
                source=rng.choice(["src", "other", "s\u00e9"]),
            )

        def fields(r: Record[Any]) -> tuple[Any, ...]:
            return (r.id, r.type, r.source, r.timestamp, r.key, r.value, r.headers)

        topics = [unique_name("t"), unique_name("t")]
        for t in topics:
            await broker.create_topic(TopicSpec(t, 3))
        sent = {t: [record() for _ in range(60)] for t in topics}
        await broker.append(topics[0], sent[topics[0]][:30])
        member = "m"
        await broker.join_group("g", member, topics)
        await broker.append_and_commit(
            [(topics[0], sent[topics[0]][30:]), (topics[1], sent[topics[1]])], "g", member, {}
        )
        for t in topics:
            got = [
                r
                for p in range(3)
                for r in await broker.fetch({TopicPartition(t, p): 0}, max_records=100)
            ]
            want = {r.id: r for r in sent[t]}
            assert len(got) == len(want)
            for r in got:
                w = want[r.id]
                assert fields(r) == fields(w)
                assert (r.partition, r.offset) == (w.partition, w.offset)
