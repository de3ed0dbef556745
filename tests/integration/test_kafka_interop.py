"""Interop with Kafka clients riverbed did not write: both directions, on a real broker."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from aiokafka import AIOKafkaConsumer
from aiokafka import TopicPartition as AioTP
from confluent_kafka import Consumer, Producer
from confluent_kafka import TopicPartition as KafkaTP
from tests.conftest import WaitUntil

from riverbed import App, Context
from riverbed.brokers.base import TopicSpec
from riverbed.brokers.kafka import KafkaBroker
from riverbed.testing.conformance import make_record


def _bootstrap(kafka_url: str) -> str:
    return kafka_url.removeprefix("kafka://")


async def _published_topic(kafka_url: str) -> tuple[str, Any]:
    topic = f"interop-{uuid.uuid4().hex[:10]}"
    broker = KafkaBroker(kafka_url)
    await broker.start()
    try:
        await broker.create_topic(TopicSpec(topic))
        record = make_record(
            key=b"order-1",
            value=b'{"total": 3}',
            timestamp=1_700_000_000_123,
            headers={"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"},
            type="order.placed",
            source="/shop",
        )
        await broker.append(topic, [record])
    finally:
        await broker.aclose()
    return topic, record


def _expected_headers(record: Any) -> dict[str, bytes]:
    return {
        "ce_specversion": b"1.0",
        "ce_id": record.id.encode(),
        "ce_type": b"order.placed",
        "ce_source": b"/shop",
        "ce_time": b"2023-11-14T22:13:20.123Z",
        "content-type": b"application/json",
        "traceparent": record.headers["traceparent"].encode(),
    }


async def test_plain_confluent_consumer_reads_cloudevents_headers(kafka_url: str) -> None:
    topic, record = await _published_topic(kafka_url)
    consumer = Consumer({"bootstrap.servers": _bootstrap(kafka_url), "group.id": "interop"})
    try:
        consumer.assign([KafkaTP(topic, 0, 0)])
        msg = await asyncio.to_thread(consumer.poll, 10.0)
    finally:
        consumer.close()
    assert msg is not None
    assert msg.error() is None
    assert (msg.key(), msg.value()) == (b"order-1", b'{"total": 3}')
    assert msg.timestamp()[1] == 1_700_000_000_123
    headers = dict(msg.headers() or ())
    assert headers == _expected_headers(record)


async def test_plain_aiokafka_consumer_reads_cloudevents_headers(kafka_url: str) -> None:
    topic, record = await _published_topic(kafka_url)
    consumer = AIOKafkaConsumer(bootstrap_servers=_bootstrap(kafka_url))
    await consumer.start()
    try:
        tp = AioTP(topic, 0)
        consumer.assign([tp])
        consumer.seek(tp, 0)
        batches = await consumer.getmany(tp, timeout_ms=10_000)
    finally:
        await consumer.stop()
    [msg] = batches[tp]
    assert (msg.key, msg.value, msg.timestamp) == (b"order-1", b'{"total": 3}', 1_700_000_000_123)
    assert dict(msg.headers) == _expected_headers(record)


async def test_riverbed_consumes_a_plain_clients_record_as_raw_event(
    kafka_url: str, wait_until: WaitUntil
) -> None:
    topic = f"plain-{uuid.uuid4().hex[:10]}"
    app = App("interop", broker=KafkaBroker(kafka_url, session_timeout_ms=1000))
    source = app.topic(topic, bytes)
    got: list[tuple[bytes, str, str, str, dict[str, str]]] = []

    @app.consumer(source, group=f"g-{topic}")
    async def on_raw(value: bytes, ctx: Context) -> None:
        r = ctx.record
        got.append((value, r.id, r.type, r.source, dict(r.headers)))

    async with app:
        producer = Producer({"bootstrap.servers": _bootstrap(kafka_url)})
        producer.produce(topic, b"\x00raw bytes", b"k", headers=[("x-foreign", b"\xff")])
        producer.flush(10)
        await wait_until(lambda: got, timeout=30, message="the plain client's record")
    assert got == [
        (
            b"\x00raw bytes",
            f"kafka:{topic}:0:0",
            "kafka.record",
            f"kafka://{topic}",
            {"x-foreign": "\\xff"},
        )
    ]
