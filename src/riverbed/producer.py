"""The producer: builds records (envelope, key, partition, size check) and appends them.

Concurrent `publish` calls are coalesced into one broker append per topic ("group
commit"): the first caller appends at once; callers arriving while that append is in
flight wait and go together in the next one. A lone publisher pays no added latency and
many concurrent ones share one write.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable, Mapping
from itertools import repeat
from typing import TYPE_CHECKING, Any

from riverbed.codecs import CONTENT_TYPES
from riverbed.errors import EncodeError, RecordTooLarge
from riverbed.events import IdGenerator, Record
from riverbed.partitioner import Partitioner
from riverbed.topics import Position

if TYPE_CHECKING:
    from riverbed.app import App
    from riverbed.topics import Topic

__all__ = ["Producer"]


def to_key_bytes(key: object) -> bytes | None:
    if key is None or isinstance(key, bytes):
        return key
    if isinstance(key, str):
        return key.encode("utf-8", "surrogateescape")
    if isinstance(key, int) and not isinstance(key, bool):
        return str(key).encode()
    raise EncodeError(f"a key must be str, bytes or int, got {type(key).__name__}")


def with_content_type(
    topic: Topic[Any], headers: Mapping[str, str] | None
) -> Mapping[str, str] | None:
    """Name the payload's format (CloudEvents `datacontenttype`) when it is not JSON.

    JSON is the default every backend assumes (and writes as `content-type` where the
    server has headers), so only other codecs spend bytes on saying so.
    """
    content_type = topic.codec.content_type
    if content_type == CONTENT_TYPES["json"] or (headers and "content-type" in headers):
        return headers
    return {**(headers or {}), "content-type": content_type}


def checked_headers(headers: Mapping[str, str] | None) -> tuple[dict[str, str], int]:
    """A copy of `headers` and its size in bytes; refuses anything but str -> str.

    Stored, a header of another type cannot be read back as a record (on the sqlite
    log it makes its whole batch unreadable), so it is refused here, at the edge.
    """
    if not headers:
        return {}, 0
    out = dict(headers)
    size = 0
    for name, value in out.items():
        if not isinstance(name, str) or not isinstance(value, str):
            raise EncodeError(
                f"header {name!r}: header names and values must be str, got "
                f"{type(name).__name__} -> {type(value).__name__}; convert them with str()"
            )
        size += len(name.encode("utf-8", "surrogatepass"))
        size += len(value.encode("utf-8", "surrogatepass"))
    return out, size


class _Batcher:
    """Group commit for one topic: whoever holds the lock appends everything queued."""

    def __init__(self, producer: Producer, topic: str) -> None:
        self._producer = producer
        self._topic = topic
        self._pending: list[tuple[list[Record[Any]], asyncio.Future[list[int]]]] = []
        self._lock = asyncio.Lock()
        self.loop = asyncio.get_running_loop()

    async def send(self, records: list[Record[Any]]) -> list[int]:
        fut: asyncio.Future[list[int]] = asyncio.get_running_loop().create_future()
        self._pending.append((records, fut))
        async with self._lock:
            # An earlier lock holder may already have appended our records with its own.
            if not fut.done():
                await self._flush()
        return fut.result()

    async def _flush(self) -> None:
        batch, self._pending = self._pending, []
        flat = [r for records, _ in batch for r in records]
        try:
            offsets = await self._producer.append(self._topic, flat)
        except Exception as exc:
            for _, fut in batch:
                fut.set_exception(exc)
            return
        except BaseException:
            # Cancelled mid-append: the outcome is unknown, so nobody gets a position.
            for _, fut in batch:
                fut.cancel()
            raise
        i = 0
        for records, fut in batch:
            fut.set_result(offsets[i : i + len(records)])
            i += len(records)


class Producer:
    """Builds and sends records for one app."""

    def __init__(self, app: App, *, max_record_bytes: int) -> None:
        self._app = app
        self.max_record_bytes = max_record_bytes
        self._ids = IdGenerator()
        self._partitioners: dict[str, Partitioner] = {}
        self._batchers: dict[str, _Batcher] = {}

    def build(
        self,
        topic: Topic[Any],
        event: Any,
        *,
        key: str | bytes | None = None,
        headers: Mapping[str, str] | None = None,
        type: str | None = None,
    ) -> Record[Any]:
        """Encode `event` for `topic` and wrap it in a record with its partition chosen."""
        if key is None and topic.key_func is not None:
            key = topic.key_func(event)
        key_bytes = to_key_bytes(key)
        value = topic.codec.encode(event)
        hdrs, headers_size = checked_headers(with_content_type(topic, headers))
        self._check_size(topic, value, key_bytes, headers_size)
        return Record(
            self._ids.new(),
            type or topic.event_type,
            self._app.name,
            time.time_ns() // 1_000_000,
            key_bytes,
            value,
            hdrs,
            partition=self._partitioner(topic)(key_bytes),
        )

    def build_many(
        self,
        topic: Topic[Any],
        events: Iterable[Any],
        *,
        key: Callable[[Any], str | bytes | None] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> list[Record[Any]]:
        """`build` for a batch, with the per-topic lookups hoisted out of the loop."""
        key = key or topic.key_func
        encode, part = topic.codec.encode, self._partitioner(topic)
        etype, source, limit = topic.event_type, self._app.name, self.max_record_bytes
        ts = time.time_ns() // 1_000_000
        checked, headers_size = checked_headers(with_content_type(topic, headers))
        events = events if isinstance(events, list | tuple) else list(events)
        new_id = iter(self._ids.new_many(len(events))).__next__
        out: list[Record[Any]] = []
        for event in events:
            k = None if key is None else to_key_bytes(key(event))
            v = encode(event)
            if len(v) + (len(k) if k else 0) + headers_size > limit:
                self._check_size(topic, v, k, headers_size)
            hdrs = dict(checked) if checked else {}
            out.append(Record(new_id(), etype, source, ts, k, v, hdrs, partition=part(k)))
        return out

    def _check_size(
        self, topic: Topic[Any], value: bytes, key: bytes | None, headers_size: int = 0
    ) -> None:
        size = len(value) + (len(key) if key else 0) + headers_size
        if size > self.max_record_bytes:
            raise RecordTooLarge(
                f"record for topic {topic.name!r} is {size} bytes, over the limit of "
                f"{self.max_record_bytes}; raise App(max_record_bytes=...) or send a "
                "reference to the data instead of the data"
            )

    def _partitioner(self, topic: Topic[Any]) -> Partitioner:
        part = self._partitioners.get(topic.name)
        if part is None or part.partitions != topic.partitions:
            part = self._partitioners[topic.name] = Partitioner(topic.partitions)
        return part

    async def send(self, topic: Topic[Any], record: Record[Any]) -> Position:
        offsets = await self._batcher(topic.name).send([record])
        return Position(topic.name, record.partition, offsets[0])

    async def send_many(self, topic: Topic[Any], records: list[Record[Any]]) -> list[Position]:
        if not records:
            return []
        offsets = await self._batcher(topic.name).send(records)
        # tuple.__new__ over zip builds the NamedTuples in C: no Python frame per record.
        parts = [r.partition for r in records]
        return list(map(tuple.__new__, repeat(Position), zip(repeat(topic.name), parts, offsets)))

    async def append(self, topic: str, records: list[Record[Any]]) -> list[int]:
        broker = await self._app.connect()
        return await broker.append(topic, records)

    def _batcher(self, topic: str) -> _Batcher:
        # One batcher per loop: its lock belongs to the loop that first waits on it, and
        # an app may publish from its own loop and from the sync portal's.
        loop = asyncio.get_running_loop()
        b = self._batchers.get(topic)
        if b is None or b.loop is not loop:
            b = self._batchers[topic] = _Batcher(self, topic)
        return b
