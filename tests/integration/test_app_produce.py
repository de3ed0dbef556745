"""Producing through the App: positions, partitioning, envelopes, order to the handler."""

from __future__ import annotations

import asyncio
from typing import Any

from riverbed import Event, Position, Record

from .conftest import Backend, read_topic, wait_for, wait_for_count

# Kafka's UtilsTest vectors: murmur2(key) as a signed Java int.
KAFKA_MURMUR2 = {
    b"21": -973932308,
    b"foobar": -790332482,
    b"a-little-bit-long-string": -985981536,
    b"a-little-bit-longer-string": -1486304829,
    b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8": -58897971,
    b"abc": 479470107,
}


def kafka_partition(key: bytes, partitions: int) -> int:
    """Kafka's default partitioner: toPositive(murmur2(key)) % partitions."""
    return (KAFKA_MURMUR2[key] & 0x7FFFFFFF) % partitions


class Order(Event, type="order.placed"):
    id: str
    qty: int


async def test_publish_returns_the_position_of_each_record(backend: Backend) -> None:
    app = backend.app()
    orders = app.topic("orders", Order)
    async with app:
        first = await orders.publish(Order(id="a", qty=1))
        second = await app.publish("orders", Order(id="b", qty=2))
        many = await orders.publish_many([Order(id=str(i), qty=i) for i in range(5)])
        assert first == Position("orders", 0, 0)
        assert second == Position("orders", 0, 1)
        assert many == [Position("orders", 0, o) for o in range(2, 7)]
        assert await orders.publish_many([]) == []
        stored = await read_topic(app.broker, "orders")
    assert [orders.codec.decode(r.value).id for r in stored] == ["a", "b", "0", "1", "2", "3", "4"]


async def test_record_envelope_carries_cloudevents_attributes(backend: Backend) -> None:
    app = backend.app("billing")
    orders = app.topic("orders", Order)
    async with app:
        pos = await orders.publish(Order(id="a", qty=1), key="k1", headers={"traceparent": "t"})
        [rec] = await read_topic(app.broker, "orders")
    assert (rec.topic, rec.partition, rec.offset) == tuple(pos)
    assert rec.type == "order.placed"
    assert rec.source == "billing"
    assert rec.key == b"k1"
    assert rec.headers == {"traceparent": "t"}
    assert rec.time.tzinfo is not None
    assert len(rec.id) == 36
    assert rec.id[14] == "7"


async def test_keyed_records_land_on_kafka_murmur2_partitions(backend: Backend) -> None:
    app = backend.app()
    topic = app.topic("keyed", bytes, partitions=7)
    async with app:
        for key in KAFKA_MURMUR2:
            pos = await topic.publish(b"v", key=key)
            assert pos.partition == kafka_partition(key, 7), key
        positions = await topic.publish_many(list(KAFKA_MURMUR2), key=lambda k: k)
        assert [p.partition for p in positions] == [kafka_partition(k, 7) for k in KAFKA_MURMUR2]
        # str keys are their UTF-8 bytes
        assert (await topic.publish(b"v", key="foobar")).partition == kafka_partition(b"foobar", 7)
        stored = await read_topic(app.broker, "keyed")
    for rec in stored:
        assert rec.partition == kafka_partition(rec.key or b"", 7)


async def test_key_function_of_the_topic_derives_the_key(backend: Backend) -> None:
    app = backend.app()
    orders = app.topic("orders", Order, partitions=5, key=lambda o: o.id)
    async with app:
        pos = await orders.publish(Order(id="foobar", qty=1))
        [many] = await orders.publish_many([Order(id="abc", qty=1)])
        [rec_a] = [r for r in await read_topic(app.broker, "orders") if r.key == b"foobar"]
    assert pos.partition == kafka_partition(b"foobar", 5) == rec_a.partition
    assert many.partition == kafka_partition(b"abc", 5)


async def test_keyless_records_spread_round_robin(backend: Backend) -> None:
    app = backend.app()
    topic = app.topic("spread", bytes, partitions=3)
    async with app:
        singles = [await topic.publish(b"x") for _ in range(6)]
        batch = await topic.publish_many([b"y"] * 6)
    counts = [sum(p.partition == i for p in singles + batch) for i in range(3)]
    assert counts == [4, 4, 4]


async def test_concurrent_publishes_all_land_with_distinct_dense_offsets(backend: Backend) -> None:
    app = backend.app()
    topic = app.topic("burst", bytes)
    async with app:
        positions = await asyncio.gather(*(topic.publish(str(i).encode()) for i in range(200)))
        stored = await read_topic(app.broker, "burst")
    assert sorted(p.offset for p in positions) == list(range(200))
    by_offset = {r.offset: r.value for r in stored}
    assert all(by_offset[p.offset] == str(i).encode() for i, p in enumerate(positions))


async def test_handler_sees_each_partition_in_offset_order(backend: Backend) -> None:
    app = backend.app()
    orders = app.topic("orders", Order, partitions=4)
    seen: list[Record[Order]] = []

    @app.consumer(orders)
    async def record_order(record: Record[Order]) -> None:
        seen.append(record)

    keys = [f"customer-{i}" for i in range(10)]
    async with app:
        # Interleave single publishes and batches so the log holds several writes.
        for round_ in range(10):
            await orders.publish_many(
                [Order(id=f"{k}/{round_}", qty=round_) for k in keys], key=lambda o: o.id[:-2]
            )
            await orders.publish(Order(id=f"extra/{round_}", qty=round_), key="extra")
        await wait_for_count(seen, 110)

    per_partition: dict[int, list[int]] = {}
    per_key: dict[bytes | None, list[int]] = {}
    for rec in seen:
        per_partition.setdefault(rec.partition, []).append(rec.offset)
        per_key.setdefault(rec.key, []).append(rec.data.qty)
    for partition, offsets in per_partition.items():
        assert offsets == list(range(len(offsets))), f"partition {partition} out of order"
    assert all(qtys == list(range(10)) for qtys in per_key.values()), per_key
    assert len(per_partition) > 1  # the keys really did spread


async def test_publish_before_start_connects_on_demand(backend: Backend) -> None:
    app = backend.app()
    topic = app.topic("early", bytes)
    got: list[Any] = []

    @app.consumer(topic)
    async def collect(data: bytes) -> None:
        got.append(data)

    assert app.status() == "stopped"
    await topic.publish(b"before")
    assert app.status() == "connected"
    async with app:
        assert app.status() == "running"
        await topic.publish(b"during")
        await wait_for(lambda: got == [b"before", b"during"], what="both records")
    assert app.status() == "stopped"


async def test_records_name_a_payload_format_other_than_json(backend: Backend) -> None:
    """CloudEvents `datacontenttype`: JSON is the default every backend assumes; a
    msgpack topic says so in a `content-type` header (a caller's own value wins)."""
    app = backend.app()
    as_json = app.topic("as-json", Order)
    packed = app.topic("packed", Order, codec="msgpack")
    async with app:
        await as_json.publish(Order(id="a", qty=1))
        await packed.publish(Order(id="b", qty=2), headers={"traceparent": "t"})
        await packed.publish_many([Order(id="c", qty=3)])
        await packed.publish(Order(id="d", qty=4), headers={"content-type": "x/custom"})
        [plain] = await read_topic(app.broker, "as-json")
        stored = await read_topic(app.broker, "packed")
    assert plain.headers == {}
    assert [r.headers for r in stored] == [
        {"traceparent": "t", "content-type": "application/msgpack"},
        {"content-type": "application/msgpack"},
        {"content-type": "x/custom"},
    ]
    assert packed.codec.decode(stored[0].value) == Order(id="b", qty=2)
