"""Appending: one librdkafka producer per broker handle, and transactions.

`append` hands a whole batch to librdkafka without leaving the event loop (produce()
only queues) and awaits one future per batch; a thread of our own polls the producer
for delivery reports. Delivery reports of one partition arrive in produce order, so a
batch maps them back to its records with one list per partition, not one callback
object per record.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Message, Producer
from confluent_kafka import TopicPartition as KafkaTP

from riverbed.brokers._cetime import TimeText
from riverbed.brokers._kafka_codec import encode_headers
from riverbed.brokers._kafka_config import KafkaConfig
from riverbed.errors import (
    BrokerError,
    BrokerUnavailable,
    FencedError,
    RecordTooLarge,
    UnknownTopic,
)
from riverbed.events import Record

__all__ = ["Appender", "Transactor", "delivery_error"]


def delivery_error(err: KafkaError, topic: str) -> Exception:
    code = err.code()
    if code in (KafkaError.UNKNOWN_TOPIC_OR_PART, KafkaError._UNKNOWN_TOPIC):
        return UnknownTopic(f"topic {topic!r} does not exist ({err.str()})")
    if code == KafkaError.MSG_SIZE_TOO_LARGE:
        return RecordTooLarge(f"a record is too large for topic {topic!r}: {err.str()}")
    if code in (
        KafkaError.PRODUCER_FENCED,
        KafkaError._FENCED,
        KafkaError.ILLEGAL_GENERATION,
        KafkaError.UNKNOWN_MEMBER_ID,
        KafkaError.FENCED_INSTANCE_ID,
    ):
        return FencedError(f"Kafka fenced the write to {topic!r}: {err.str()}")
    if err.retriable() or code in (KafkaError._MSG_TIMED_OUT, KafkaError._TRANSPORT):
        return BrokerUnavailable(f"append to {topic!r} failed: {err.str()}")
    return BrokerError(f"append to {topic!r} failed: {err.str()}")


class _Batch:
    """Collects the delivery reports of one append; resolves its future on the loop."""

    __slots__ = ("error", "future", "loop", "offsets", "remaining", "topic")

    def __init__(self, topic: str, count: int, loop: asyncio.AbstractEventLoop | None) -> None:
        self.topic = topic
        self.remaining = count
        self.offsets: dict[int, list[int]] = {}
        self.error: Exception | None = None
        self.loop = loop
        self.future: asyncio.Future[None] | None = loop.create_future() if loop else None

    def on_delivery(self, err: KafkaError | None, msg: Message) -> None:
        # Runs in the thread that polls the producer.
        if err is not None:
            if self.error is None:
                self.error = delivery_error(err, self.topic)
        else:
            self.offsets.setdefault(msg.partition() or 0, []).append(msg.offset() or 0)
        self.remaining -= 1
        if self.remaining == 0 and self.loop is not None:
            self.loop.call_soon_threadsafe(self._finish)

    def _finish(self) -> None:
        if self.future is not None and not self.future.done():
            self.future.set_result(None)

    def apply(self, records: Sequence[Record[Any]]) -> list[int]:
        """Set topic and offset on the records; their offsets in order."""
        if self.error is not None:
            raise self.error
        cursors = {p: iter(offs) for p, offs in self.offsets.items()}
        out = []
        for r in records:
            r.topic, r.offset = self.topic, next(cursors[r.partition])
            out.append(r.offset)
        return out


def _produce_all(
    producer: Producer, topic: str, records: Sequence[Record[Any]], batch: _Batch
) -> int:
    """Queue records from index 0 on; returns how many fit before the queue was full."""
    produce, callback, times = producer.produce, batch.on_delivery, TimeText()
    for i, r in enumerate(records):
        try:
            produce(
                topic,
                r.value,
                r.key,
                partition=r.partition,
                timestamp=r.timestamp,
                headers=encode_headers(r, times),
                on_delivery=callback,
            )
        except BufferError:
            return i
    return len(records)


class Appender:
    """The broker handle's producer and the thread that serves its delivery reports."""

    def __init__(self, config: KafkaConfig) -> None:
        self._producer = Producer(config.producer())
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="riverbed-kafka-producer")
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            self._producer.poll(0.05)

    async def append(self, topic: str, records: Sequence[Record[Any]]) -> list[int]:
        batch = _Batch(topic, len(records), asyncio.get_running_loop())
        done = 0
        while done < len(records):
            done += _produce_all(self._producer, topic, records[done:], batch)
            if done < len(records):
                await asyncio.sleep(0.005)  # librdkafka's queue is full: let it drain
        assert batch.future is not None
        await batch.future
        return batch.apply(records)

    def close(self, timeout: float) -> None:
        self._producer.flush(timeout)
        self._stop.set()
        self._thread.join(timeout)


class Transactor:
    """A transactional producer: records plus a group's offsets, atomically.

    Blocking; the broker runs one transaction at a time per handle in a worker thread.
    """

    def __init__(self, config: KafkaConfig) -> None:
        self._config = config
        self._producer = Producer(config.transactional_producer())
        self._timeout = config.request_timeout
        self._ready = False

    def run(
        self,
        appends: Sequence[tuple[str, Sequence[Record[Any]]]],
        offsets: list[KafkaTP],
        group_metadata: object,
    ) -> list[list[int]]:
        p = self._producer
        try:
            if not self._ready:
                p.init_transactions(self._timeout)
                self._ready = True
            p.begin_transaction()
            batches = []
            for topic, records in appends:
                batch = _Batch(topic, len(records), None)
                if _produce_all(p, topic, records, batch) < len(records):
                    raise BrokerError("a transaction's records overflow librdkafka's queue")
                batches.append((batch, records))
            if offsets:
                p.send_offsets_to_transaction(offsets, group_metadata, self._timeout)
            p.commit_transaction(self._timeout)
        except KafkaException as exc:
            self._abort()
            err = exc.args[0]
            if isinstance(err, KafkaError):
                raise delivery_error(err, appends[0][0] if appends else "") from exc
            raise BrokerError(f"Kafka transaction failed: {exc}") from exc
        except BaseException:
            self._abort()
            raise
        return [batch.apply(records) for batch, records in batches]

    def _abort(self) -> None:
        try:
            self._producer.abort_transaction(self._timeout)
        except KafkaException:
            # Fatal (or never started): continue with a fresh producer and transactional id.
            self._producer = Producer(self._config.transactional_producer())
            self._ready = False

    def close(self, timeout: float) -> None:
        self._producer.flush(timeout)
