"""Position-based reads: group-less librdkafka consumers, assigned and polled on demand.

A reader is assigned exactly the positions a `fetch` asks for. When the next fetch asks
for the positions where the last one ended, the reader is reused as it is, so the
records librdkafka prefetched meanwhile are served without a round trip; anything else
re-assigns it. Each reader serves one fetch at a time (it runs in a worker thread), so
the broker keeps a small pool.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from confluent_kafka import OFFSET_END, Consumer, KafkaError, Message
from confluent_kafka import TopicPartition as KafkaTP

from riverbed.brokers._kafka_codec import decode
from riverbed.brokers._kafka_config import KafkaConfig
from riverbed.brokers.base import TopicPartition
from riverbed.errors import BrokerError, BrokerUnavailable, UnknownTopic
from riverbed.events import Record

__all__ = ["Reader", "ReaderPool"]

_SLICE = 0.05  # longest a wait goes without checking whether the broker was closed
_GATHER = 0.02  # after the first record, how long to collect what other partitions have


class Reader:
    """One group-less consumer and what it was last assigned."""

    def __init__(self, config: KafkaConfig) -> None:
        self._consumer = Consumer(config.reader())
        self._request_timeout = config.request_timeout
        self.next: dict[TopicPartition, int] | None = None
        self._floor: dict[TopicPartition, int] = {}
        self._eof: set[TopicPartition] = set()
        self._assigned_at = 0.0
        # Time for a fetch response after an assign: ~the server's wait plus a round trip.
        self._settle = 3 * config.fetch_wait_ms / 1000 + 0.02

    def close(self) -> None:
        self._consumer.close()

    def fetch(
        self,
        positions: Mapping[TopicPartition, int],
        max_records: int,
        timeout: float,
        closed: Callable[[], bool],
    ) -> list[Record[Any]]:
        """Records at or after each position: waits up to `timeout` for the first one.

        With `timeout=0` it still waits for what the server has now: until a record
        arrives or every partition reported its end (librdkafka's partition EOF).
        """
        if self.next != dict(positions):
            self._assign(positions)
        out: list[Record[Any]] = []
        start = time.monotonic()
        safety = start + max(timeout, self._request_timeout)
        deadline = start + timeout
        got_first = 0.0
        while not closed() and len(out) < max_records:
            now = time.monotonic()
            at_end = self._at_end()
            if out and (at_end or now - got_first > _GATHER):
                break  # what every partition had, or what came in one short gathering
            if (at_end and now >= deadline) or now >= safety:
                break
            wait = _GATHER / 5 if out else _SLICE
            if at_end and not out:
                wait = min(_SLICE, max(deadline - now, 0.0))
            first = self._consumer.poll(wait)
            if first is None:
                continue
            # One wake-up, then whatever else is already here: never more than asked for,
            # so nothing fetched is dropped and the next fetch continues where this ended.
            batch = [first]
            room = max_records - len(out) - 1
            if room > 0:
                batch += self._consumer.consume(room, 0)
            had = len(out)
            self._take(batch, out)
            if out and not had:
                got_first = time.monotonic()
        self.next = dict(self._floor)
        return out

    def _at_end(self) -> bool:
        """True when every assigned partition has been read up to its high watermark."""
        if len(self._eof) == len(self._floor):
            return True
        if time.monotonic() - self._assigned_at < self._settle:
            return False  # cached watermarks may still be those of an earlier assignment
        for tp, position in self._floor.items():
            if tp in self._eof:
                continue
            # A position past the end gets no EOF event; the last fetch's watermark tells.
            _, high = self._consumer.get_watermark_offsets(
                KafkaTP(tp.topic, tp.partition), cached=True
            )
            if high < 0 or position < high:
                return False
            self._eof.add(tp)
        return True

    def end_offsets(self, tps: list[TopicPartition]) -> dict[TopicPartition, int]:
        """Each partition's end, from the high watermark of a fetch at the end.

        A fetch response's high watermark is right on every Kafka-wire broker we know;
        ListOffsets(latest) is not on all of them (see docs/backends/kafka.md).
        """
        self.next = None
        self._eof.clear()
        self._floor = {}
        self._consumer.assign([KafkaTP(tp.topic, tp.partition, OFFSET_END) for tp in tps])
        # Where ListOffsets(latest) answers short (Tansu after multi-record batches), the
        # reader starts before the end and gets records first: a partition is done only
        # at its end-of-partition event, whose offset is the fetch's high watermark.
        ends: dict[TopicPartition, int] = {}
        done: set[TopicPartition] = set()
        deadline = time.monotonic() + self._request_timeout
        while len(done) < len(tps):
            if time.monotonic() > deadline:
                raise BrokerUnavailable("Kafka did not report the end of every partition")
            m = self._consumer.poll(_SLICE)
            if m is None:
                continue
            err = m.error()
            tp = TopicPartition(m.topic() or "", m.partition() or 0)
            if err is None or err.code() == KafkaError._PARTITION_EOF:
                offset = m.offset() or 0
                ends[tp] = max(ends.get(tp, 0), offset + (1 if err is None else 0))
                if err is not None:
                    done.add(tp)
            else:
                self._raise(err)
        return ends

    # -- internals ----------------------------------------------------------------------
    def _assign(self, positions: Mapping[TopicPartition, int]) -> None:
        self._floor = dict(positions)
        self._eof.clear()
        self._assigned_at = time.monotonic()
        self._consumer.assign(
            [KafkaTP(tp.topic, tp.partition, max(off, 0)) for tp, off in positions.items()]
        )

    def _take(self, messages: list[Message], out: list[Record[Any]]) -> None:
        floor, eof = self._floor, self._eof
        tp = TopicPartition("", -1)
        for i, m in enumerate(messages):
            # Drop each message once read: a batch of live librdkafka messages, tracked by
            # the cyclic GC, would otherwise survive collections and trigger full ones.
            messages[i] = None  # type: ignore[call-overload]
            err = m.error()
            topic, partition = m.topic() or "", m.partition() or 0
            # Messages come in runs of one partition: build the key only when it changes.
            if partition != tp.partition or topic != tp.topic:
                tp = TopicPartition(topic, partition)
            if err is not None:
                self._on_error(err, tp, m)
                continue
            offset = m.offset() or 0
            if tp not in floor or offset < floor[tp]:
                continue  # below the position asked for (after a seek to an end)
            eof.discard(tp)
            out.append(decode(m, topic, partition, offset))
            floor[tp] = offset + 1

    def _on_error(self, err: KafkaError, tp: TopicPartition, m: Message) -> None:
        code = err.code()
        if code == KafkaError._PARTITION_EOF:
            if tp in self._floor:
                self._eof.add(tp)
            return
        if code in (KafkaError._AUTO_OFFSET_RESET, KafkaError.OFFSET_OUT_OF_RANGE):
            self._out_of_range(tp)
            return
        self._raise(err)

    def _out_of_range(self, tp: TopicPartition) -> None:
        # Below the start (retention deleted it): read from the start. Beyond the end:
        # wait at the end, dropping anything below the position asked for.
        low, high = self._consumer.get_watermark_offsets(
            KafkaTP(tp.topic, tp.partition), timeout=self._request_timeout, cached=False
        )
        position = self._floor[tp]
        if position < low:
            self._floor[tp] = low
            self._consumer.seek(KafkaTP(tp.topic, tp.partition, low))
        else:
            self._eof.add(tp)
            self._consumer.seek(KafkaTP(tp.topic, tp.partition, min(high, position)))

    @staticmethod
    def _raise(err: KafkaError) -> None:
        if err.code() in (KafkaError.UNKNOWN_TOPIC_OR_PART, KafkaError._UNKNOWN_PARTITION):
            raise UnknownTopic(f"Kafka: {err.str()}")
        if err.retriable() or err.code() in (KafkaError._TRANSPORT, KafkaError._ALL_BROKERS_DOWN):
            raise BrokerUnavailable(f"Kafka fetch failed: {err.str()}")
        raise BrokerError(f"Kafka fetch failed: {err.str()}")


class ReaderPool:
    """Idle readers, preferring the one whose last fetch ended where the next begins."""

    def __init__(self, config: KafkaConfig) -> None:
        self._config = config
        self._idle: list[Reader] = []
        self._busy = 0
        self._lock = threading.Lock()

    def acquire(self, positions: Mapping[TopicPartition, int]) -> Reader:
        wanted = dict(positions)
        with self._lock:
            self._busy += 1
            for i, reader in enumerate(self._idle):
                if reader.next == wanted:
                    return self._idle.pop(i)
            if self._idle:
                return self._idle.pop()
        return Reader(self._config)

    def give_back(self, reader: Reader) -> None:
        with self._lock:
            self._busy -= 1
            self._idle.append(reader)

    def busy(self) -> int:
        with self._lock:
            return self._busy

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for reader in idle:
            reader.close()
