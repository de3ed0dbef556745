"""Conformance cases for reading the log: `fetch` and `offset_for_time`."""

from __future__ import annotations

import asyncio
import time

from riverbed.brokers.base import Broker, TopicPartition
from riverbed.testing.conformance._base import (
    ConformanceBase,
    assert_partition_ends,
    assert_prefix_of,
    by_partition,
    is_increasing,
    make_record,
    offsets_of,
)


class FetchCases(ConformanceBase):
    """Fetching from offsets, waiting and waking, payloads, and lookup by time."""

    async def test_fetch_from_offset(self, broker: Broker) -> None:
        topic = await self.new_topic(broker)
        tp = TopicPartition(topic, 0)
        records = [make_record(value=str(i).encode()) for i in range(6)]
        offsets = await broker.append(topic, records)
        assert is_increasing(offsets)
        got = await broker.fetch({tp: offsets[4]})
        assert offsets_of(got) == offsets[4:]
        assert [r.value for r in got] == [b"4", b"5"]
        assert [r.id for r in got] == [r.id for r in records[4:]]
        assert all(r.topic == topic and r.partition == 0 for r in got)

    async def test_fetch_respects_max_records(self, broker: Broker) -> None:
        topic = await self.new_topic(broker, 2)
        offsets = await broker.append(topic, [make_record(p) for p in (0, 1) * 5])
        in0, in1 = offsets[0::2], offsets[1::2]
        tp0, tp1 = TopicPartition(topic, 0), TopicPartition(topic, 1)
        assert offsets_of(await broker.fetch({tp0: 0}, max_records=3)) == in0[:3]
        assert offsets_of(await broker.fetch({tp0: in0[3]}, max_records=3)) == in0[3:]
        both = await broker.fetch({tp0: in0[1], tp1: in1[2]}, max_records=4)
        assert 1 <= len(both) <= 4
        assert_prefix_of(both, 0, in0[1:])
        assert_prefix_of(both, 1, in1[2:])
        one = await broker.fetch({tp0: 0, tp1: 0}, max_records=1)
        assert len(one) == 1

    async def test_fetch_reads_several_partitions(self, broker: Broker) -> None:
        topic = await self.new_topic(broker, 3)
        partitions = (0, 1, 2, 0, 1, 0)
        offsets = await broker.append(topic, [make_record(p) for p in partitions])
        split = by_partition(partitions, offsets, 3)
        positions = {TopicPartition(topic, p): 0 for p in range(3)}
        got = await broker.fetch(positions)
        assert len(got) == 6
        for p in range(3):
            assert offsets_of(got, p) == split[p]
        later = await broker.fetch(
            {
                TopicPartition(topic, 0): split[0][2],
                TopicPartition(topic, 1): split[1][-1] + 1,
            }
        )
        assert [(r.partition, r.offset) for r in later] == [(0, split[0][2])]

    async def test_fetch_beyond_end_returns_empty_after_timeout(self, broker: Broker) -> None:
        topic = await self.new_topic(broker)
        tp = TopicPartition(topic, 0)
        last = (await broker.append(topic, [make_record(), make_record()]))[-1]
        started = time.monotonic()
        assert await broker.fetch({tp: last + 1}) == []
        assert await broker.fetch({tp: last + 7}) == []
        assert time.monotonic() - started < 0.5, "fetch with timeout=0 must not wait"
        started = time.monotonic()
        assert await broker.fetch({tp: last + 1}, timeout=0.3) == []
        waited = time.monotonic() - started
        assert 0.25 <= waited < 2.0, f"fetch(timeout=0.3) returned after {waited:.3f} s"

    async def test_fetch_wakes_promptly_on_append(self, broker: Broker) -> None:
        await self._check_wake(broker, broker)

    async def test_fetch_wakes_on_append_through_peer(self, broker: Broker, peer: Broker) -> None:
        await self._check_wake(broker, peer, limit=1.0)

    async def _check_wake(self, reader: Broker, writer: Broker, limit: float = 0.5) -> None:
        topic = await self.new_topic(reader, 2)
        appended_at = 0.0

        async def append_later() -> None:
            nonlocal appended_at
            await asyncio.sleep(0.1)
            appended_at = time.monotonic()
            await writer.append(topic, [make_record(1, value=b"wake")])

        writer_task = asyncio.create_task(append_later())
        positions = {TopicPartition(topic, 0): 0, TopicPartition(topic, 1): 0}
        got = await reader.fetch(positions, timeout=10.0)
        woke = time.monotonic() - appended_at
        await writer_task
        assert [(r.partition, r.value) for r in got] == [(1, b"wake")]
        assert woke < limit, f"fetch woke {woke:.3f} s after the append (timeout was 10 s)"

    async def test_fetch_waits_out_timeout_despite_unrelated_appends(self, broker: Broker) -> None:
        watched = await self.new_topic(broker)
        busy = await self.new_topic(broker, 2)
        stop = asyncio.Event()

        async def append_elsewhere() -> None:
            while not stop.is_set():
                await broker.append(busy, [make_record(1)])
                await asyncio.sleep(0.02)

        noise = asyncio.create_task(append_elsewhere())
        try:
            started = time.monotonic()
            got = await broker.fetch({TopicPartition(watched, 0): 0}, timeout=0.4)
            waited = time.monotonic() - started
        finally:
            stop.set()
            await noise
        assert got == []
        assert waited >= 0.35, (
            f"fetch(timeout=0.4) on an idle partition returned [] after {waited:.3f} s "
            "because another topic was appended to; it must wait for its own records"
        )

    async def test_appends_through_peer_are_visible(self, broker: Broker, peer: Broker) -> None:
        topic = await self.new_topic(broker, 2)
        first = await peer.append(topic, [make_record(1, value=b"from-peer")])
        got = await broker.fetch({TopicPartition(topic, 1): 0})
        assert [r.value for r in got] == [b"from-peer"]
        await assert_partition_ends(broker, topic, {0: [], 1: first})
        second = await peer.append(topic, [make_record(1)])
        assert second[0] > first[0]
        if self.dense(broker):
            assert second == [1]

    async def test_payload_round_trip(self, broker: Broker, peer: Broker) -> None:
        topic = await self.new_topic(broker, 2)
        records = [
            make_record(0, key=None, value=b"", timestamp=0),
            make_record(
                1,
                key=b"order-17",
                value=bytes(range(256)),
                timestamp=1_700_000_000_123,
                headers={
                    "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
                    "ünïcode ✓": "værdi — ✓",
                    "empty": "",
                },
                type="order.placed",
                source="/shop/orders",
            ),
            make_record(0, key=b"", value=b"\x00" * 1000, timestamp=253_402_300_799_999),
            make_record(1, key=b"\xff\x00\xfe", value=b"\xab" * 300_000, type="ünï.type"),
        ]
        sent = [(r.id, r.type, r.source, r.timestamp, r.key, r.value, r.headers) for r in records]
        offsets = await broker.append(topic, records)
        positions = {TopicPartition(topic, 0): 0, TopicPartition(topic, 1): 0}
        for reader in (broker, peer):
            got = await reader.fetch(positions)
            by_position = {(r.partition, r.offset): r for r in got}
            assert len(by_position) == len(records)
            for i, r in enumerate(records):
                back = by_position[(r.partition, offsets[i])]
                assert (
                    back.id,
                    back.type,
                    back.source,
                    back.timestamp,
                    back.key,
                    back.value,
                    back.headers,
                ) == sent[i]
                assert back.topic == topic
                assert back.data is None

    async def test_fetched_records_are_independent_of_the_log(self, broker: Broker) -> None:
        topic = await self.new_topic(broker)
        tp = TopicPartition(topic, 0)
        record = make_record(headers={"a": "1"})
        await broker.append(topic, [record])
        record.headers["a"] = "changed by the producer"
        record.data = {"set": "by the producer"}
        first = (await broker.fetch({tp: 0}))[0]
        assert first.headers == {"a": "1"}, "the log changed when the appended record did"
        assert first.data is None
        first.headers["b"] = "added by a consumer"
        first.data = {"decoded": "by a consumer"}
        again = (await broker.fetch({tp: 0}))[0]
        assert again.headers == {"a": "1"}, "the log changed when a fetched record did"
        assert again.data is None, "fetch must return undecoded records"

    # -- offset_for_time --------------------------------------------------------------------
    async def test_offset_for_time(self, broker: Broker) -> None:
        self.require(broker, "fetch_by_time")
        topic = await self.new_topic(broker, 2)
        tp = TopicPartition(topic, 0)
        empty_end = (await broker.describe_topic(topic)).end_offsets()[0]
        assert await broker.offset_for_time(tp, 0) == empty_end
        base = 1_700_000_000_000
        stamps = [base + i * 1000 for i in range(5)]
        o = await broker.append(topic, [make_record(0, timestamp=ts) for ts in stamps])
        first_of_1 = await broker.append(topic, [make_record(1, timestamp=base + 10_000)])
        end = (await broker.describe_topic(topic)).end_offsets()[0]
        assert await broker.offset_for_time(tp, 0) == o[0]
        assert await broker.offset_for_time(tp, base) == o[0]
        assert await broker.offset_for_time(tp, base + 1) == o[1]
        assert await broker.offset_for_time(tp, base + 3000) == o[3]
        assert await broker.offset_for_time(tp, base + 3500) == o[4]
        assert await broker.offset_for_time(tp, base + 4000) == o[4]
        assert await broker.offset_for_time(tp, base + 4001) == end  # past all: end offset
        assert await broker.offset_for_time(tp, base + 10**9) == end
        assert await broker.offset_for_time(TopicPartition(topic, 1), base + 5000) == first_of_1[0]

    async def test_offset_for_time_with_unordered_timestamps(self, broker: Broker) -> None:
        self.require(broker, "fetch_by_time")
        topic = await self.new_topic(broker)
        tp = TopicPartition(topic, 0)
        stamps = [1000, 3000, 2000, 5000, 4000]
        offsets: list[int] = []
        for ts in stamps:  # separate batches as well as one batch
            offsets += await broker.append(topic, [make_record(timestamp=ts)])
        offsets += await broker.append(topic, [make_record(timestamp=ts) for ts in stamps])
        end = (await broker.describe_topic(topic)).end_offsets()[0]
        for ts in (0, 1000, 1500, 2000, 2500, 3500, 4500, 5000, 5001):
            expected = next((offsets[i] for i, s in enumerate(stamps * 2) if s >= ts), end)
            got = await broker.offset_for_time(tp, ts)
            assert got == expected, f"offset_for_time({ts}) = {got}, expected {expected}"
