"""The raw confluent-kafka client doing the produce and consume workloads.

Produce: `Producer.produce` per event (value, partition 0, the CloudEvents binary-mode
headers riverbed writes, the event time as the message timestamp) and one `flush()`
per batch, so each batch is acknowledged before the next one starts, as `publish_many`
returns only once its batch is stored. acks=all and idempotence on (as riverbed's
producer), batches up to 10k messages, delivery reports only for errors (no
per-message Python callback). Consume: a consumer in a fresh group (`subscribe`, earliest), the
`consume(1000)` loop, each message's headers read and its value decoded into a `Tick`;
offsets auto-committed in the background.
"""

from __future__ import annotations

import time
from typing import Any

from confluent_kafka import Consumer, KafkaError, Message, Producer
from confluent_kafka.admin import (  # type: ignore[attr-defined]  # not in its __all__
    AdminClient,
    NewTopic,
)

from benchmarks.backends import measure, wire
from benchmarks.common import Stopwatch, TickPool


def bootstrap(url: str) -> str:
    """`kafka://h1:p1,h2:p2` -> `h1:p1,h2:p2`."""
    return url.split("://", 1)[1].rstrip("/")


def create_topic(servers: str, name: str) -> None:
    admin = AdminClient({"bootstrap.servers": servers})
    futures = admin.create_topics([NewTopic(name, num_partitions=1, replication_factor=1)])
    futures[name].result(30)


def produce(p: dict[str, Any]) -> dict[str, Any]:
    n, batch, topic = p["events"], p["batch"], p["topic"]
    servers = bootstrap(p["url"])
    create_topic(servers, topic)
    errors: list[KafkaError] = []

    def report(err: KafkaError | None, _msg: Message) -> None:
        if err is not None:
            errors.append(err)

    producer = Producer(
        {
            "bootstrap.servers": servers,
            "acks": "all",
            "enable.idempotence": True,
            "linger.ms": 5,
            "batch.num.messages": 10_000,
            "queue.buffering.max.messages": 1_000_000,
            "delivery.report.only.error": True,
            "on_delivery": report,
        }
    )
    pool, ids, encode, send = TickPool(batch), wire.Ids(), wire.encode, producer.produce
    etype, source, ctype = wire.EVENT_TYPE, wire.SOURCE, wire.CONTENT_TYPE
    sw = Stopwatch()
    for start in range(0, n, batch):
        events = pool.take(min(batch, n - start))
        with sw:
            ms = wire.now_ms()
            ce_time = wire.rfc3339(ms)
            for event, eid in zip(events, ids.take(len(events)), strict=True):
                headers: list[tuple[str, str | bytes | None]] = [
                    ("ce_specversion", b"1.0"),
                    ("ce_id", eid.encode()),
                    ("ce_type", etype.encode()),
                    ("ce_source", source.encode()),
                    ("ce_time", ce_time.encode()),
                    ("content-type", ctype.encode()),
                ]
                send(topic, encode(event), partition=0, timestamp=ms, headers=headers)
            left = producer.flush(60)
        if left or errors:
            raise RuntimeError(f"raw kafka produce: {left} unsent, errors {errors[:3]}")
    return measure.produce_result(n, sw.total)


def consume(p: dict[str, Any]) -> dict[str, Any]:
    n, topic = p["events"], p["topic"]
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap(p["url"]),
            "group.id": p["group"],
            "auto.offset.reset": "earliest",
            "enable.auto.commit": True,
            "session.timeout.ms": 6000,
        }
    )
    decode = wire.decoder().decode
    count, first = 0, 0.0
    t0 = time.perf_counter()
    deadline = t0 + p["timeout"]
    consumer.subscribe([topic])
    try:
        while count < n:
            if time.perf_counter() > deadline:
                raise TimeoutError(f"raw kafka consume: {count} of {n} after {p['timeout']} s")
            msgs = consumer.consume(1000, 1.0)
            if msgs and count == 0:
                first = time.perf_counter()
            for msg in msgs:
                if msg.error() is not None:
                    raise RuntimeError(f"raw kafka consume: {msg.error()}")
                msg.headers()
                decode(msg.value() or b"")
            count += len(msgs)
        last = time.perf_counter()
    finally:
        consumer.close()
    return measure.consume_result(n, t0, first, last)
