"""Position-based fetching from JetStream through cached pull consumers.

`Broker.fetch` asks for records at given positions; JetStream hands out messages through
consumers. Each partition a broker handle reads gets a `_Reader`: an ephemeral pull
consumer (no acks, in-memory state, filtered to the partition's subject) starting at
the asked position, and a buffer. While the caller keeps asking for the position right
after the last record it was given (what a consumer loop does), the reader is reused
and each fetch costs at most one pull request per partition: a pull of up to
`max_records` messages, answered by one burst of deliveries. A fetch elsewhere (a
rewind, a seek) replaces the consumer.

Pull requests go out with the reply subject `<inbox>.<consumer name>`, and one wildcard
subscription receives every delivery (a delivery names its consumer in its reply
subject, a status message in its subject), so there is no per-partition subscription. Each
reader has at most one pull outstanding; it ends when its batch is full or with a
status message (408 when it expired or, for a `no_wait` pull, when the stream had no
more; 409/503 when the consumer is gone, which makes the reader recreate it). A waiting
fetch sends long polls (`expires` = the time it has left): the server delivers an
append the moment it is stored, so the fetch wakes within a network round trip of an
append from any connection. A long poll outlives a fetch that returned early: its later
deliveries wait in the buffer for the next fetch, a bounded read-ahead.

After a reconnect every reader recreates its consumer at its position (ephemeral
consumers live in the server's memory and a restarted server has none).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from riverbed.brokers._nats_api import JsApi, translated
from riverbed.brokers._nats_codec import HeaderCodec, parse_ack_reply
from riverbed.brokers.base import TopicPartition
from riverbed.errors import BrokerUnavailable, ClosedError
from riverbed.events import Record

__all__ = ["Fetcher"]

Locate = Callable[[TopicPartition], Awaitable[tuple[str, str]]]
"""(stream, subject) of a partition; raises `UnknownTopic`."""

# The server deletes a consumer nobody pulled from for this long (our crash, say);
# we drop readers idle for a third of it, so a live reader's consumer never expires.
_INACTIVE_S = 60.0
_READER_IDLE_S = 20.0
# A pull whose end we never saw (lost in a disconnect) is forgotten after this margin.
_PULL_GRACE_S = 5.0


class _Reader:
    __slots__ = ("buf", "busy", "consumer", "next", "outstanding", "partition", "pull_ends",
                 "stream", "subject", "topic", "used")  # fmt: skip

    def __init__(self, tp: TopicPartition, stream: str, subject: str) -> None:
        self.topic, self.partition = tp
        self.stream, self.subject = stream, subject
        self.consumer = ""  # "" until created (or after it was lost)
        self.next = 0  # the position the next fetch is expected to ask for
        self.buf: deque[Record[Any]] = deque()
        self.outstanding = 0  # messages the open pull may still deliver
        self.pull_ends = 0.0
        self.used = 0.0
        self.busy = False  # a fetch is using it: no other fetch may move it

    def continues_at(self, position: int) -> bool:
        """Can this reader serve `position` without a new consumer?"""
        if not self.consumer:
            return False
        if position == self.next:
            return True
        buf = self.buf
        return bool(buf) and buf[0].offset <= position <= buf[-1].offset + 1

    def skip_to(self, position: int) -> None:
        while self.buf and self.buf[0].offset < position:
            self.buf.popleft()
        self.next = max(self.next, position)


class Fetcher:
    """The readers of one broker handle, and the subscription that feeds them."""

    def __init__(self, nc: Client, api: JsApi, codec: HeaderCodec, locate: Locate) -> None:
        self._nc = nc
        self._api = api
        self._codec = codec
        self._locate = locate
        self._prefix = ""
        self._sub: Subscription | None = None
        # Several per partition when several callers read one partition at different
        # positions through this handle (a consumer and a live view, say).
        self._readers: dict[TopicPartition, list[_Reader]] = {}
        self._by_consumer: dict[str, _Reader] = {}
        self._changed = asyncio.Event()
        self._closed = False
        self._swept = 0.0

    async def start(self) -> None:
        self._prefix = self._nc.new_inbox()
        self._sub = await self._nc.subscribe(f"{self._prefix}.*", cb=self._on_msg)

    async def stop(self) -> None:
        """Wake pending fetches and delete our consumers (best effort: the server would)."""
        self._closed = True
        self._wake()
        readers = [r for rs in self._readers.values() for r in rs]
        self._readers.clear()
        if self._nc.is_connected:
            with contextlib.suppress(Exception):
                for r in readers:
                    await self._drop_consumer(r)
                assert self._sub is not None
                await self._sub.unsubscribe()
        self._by_consumer.clear()

    def reset(self) -> None:
        """After a reconnect: every consumer may be gone; recreate them on next use."""
        for rs in self._readers.values():
            for r in rs:
                r.consumer, r.outstanding = "", 0
                r.buf.clear()
        self._by_consumer.clear()
        self._wake()

    # -- fetch ------------------------------------------------------------------------
    async def fetch(
        self, positions: Mapping[TopicPartition, int], max_records: int, timeout: float
    ) -> list[Record[Any]]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        await self._sweep(loop.time())
        readers = await self._claim(positions, loop.time())
        try:
            while True:
                lost = [r for r in readers if not r.consumer]
                if lost:  # never created, or gone (reconnect, deleted): at its position
                    await asyncio.gather(*(self._create(r, r.next) for r in lost))
                    self._check_open()
                out = self._take(readers, max_records)
                if out:
                    return out
                remaining = deadline - loop.time()
                if remaining <= 0:
                    return await self._fetch_now(readers, max_records)
                changed = self._changed
                await self._pull(readers, max_records, remaining)
                try:
                    async with asyncio.timeout(remaining):
                        await changed.wait()
                except TimeoutError:
                    return []
                self._check_open()
        finally:
            for r in readers:
                r.busy = False

    async def _fetch_now(self, readers: list[_Reader], max_records: int) -> list[Record[Any]]:
        """A non-waiting fetch: a `no_wait` pull per idle reader, answered in one round trip.

        A reader whose long poll (from an earlier fetch) is still open gets what the
        server delivers to it meanwhile, which the next fetch returns.
        """
        loop = asyncio.get_running_loop()
        pulled = await self._pull(readers, max_records, 0.0)
        give_up = loop.time() + self._api.timeout
        # Each no_wait pull ends with its last message or a 408 status: wait for the ends,
        # so the fetch returns everything that was stored when it asked.
        while any(r.outstanding and len(r.buf) < max_records for r in pulled):
            changed = self._changed
            remaining = give_up - loop.time()
            if remaining <= 0:
                raise BrokerUnavailable("JetStream did not answer a pull request; retry later")
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(remaining):
                    await changed.wait()
            self._check_open()
        return self._take(readers, max_records)

    async def _claim(self, positions: Mapping[TopicPartition, int], now: float) -> list[_Reader]:
        """A reader per partition for this fetch alone, at the asked position.

        Prefers an idle reader that continues at the position (no new consumer needed);
        else repositions an idle one, or adds one. A reader marked `consumer == ""` gets
        its consumer made by the fetch loop.
        """
        readers: list[_Reader] = []
        try:
            for tp, position in positions.items():
                r = await self._reader_for(tp, position)
                r.busy, r.used = True, now
                readers.append(r)
        except BaseException:
            for r in readers:
                r.busy = False
            raise
        return readers

    async def _reader_for(self, tp: TopicPartition, position: int) -> _Reader:
        pool = self._readers.get(tp)
        if pool is None:
            stream, subj = await self._locate(tp)
            pool = self._readers.setdefault(tp, [])
            pool.append(_Reader(tp, stream, subj))
        idle = [r for r in pool if not r.busy]
        for r in idle:
            if r.continues_at(position):
                r.skip_to(position)
                return r
        if idle:
            r = min(idle, key=lambda x: x.used)
        else:
            r = _Reader(tp, pool[0].stream, pool[0].subject)
            pool.append(r)
        await self._drop_consumer(r)
        r.next, r.outstanding = max(position, 0), 0
        r.buf.clear()
        return r

    async def _create(self, r: _Reader, position: int) -> None:
        await self._drop_consumer(r)
        config: dict[str, Any] = {
            "ack_policy": "none",
            "filter_subject": r.subject,
            "inactive_threshold": int(_INACTIVE_S * 1e9),
            "mem_storage": True,
            "num_replicas": 1,
        }
        if position > 0:
            config.update(deliver_policy="by_start_sequence", opt_start_seq=position + 1)
        else:
            config["deliver_policy"] = "all"
        reply = await self._api.call(
            f"CONSUMER.CREATE.{r.stream}", {"stream_name": r.stream, "config": config}
        )
        r.consumer, r.next, r.outstanding = reply["name"], max(position, 0), 0
        r.buf.clear()
        self._by_consumer[r.consumer] = r

    async def _drop_consumer(self, r: _Reader) -> None:
        if not r.consumer:
            return
        self._by_consumer.pop(r.consumer, None)
        if self._nc.is_connected:
            # No reply wanted: the server's inactivity threshold is the backstop.
            with translated("delete consumer"):
                await self._nc.publish(f"$JS.API.CONSUMER.DELETE.{r.stream}.{r.consumer}")
        r.consumer = ""

    async def _pull(self, readers: list[_Reader], batch: int, wait: float) -> list[_Reader]:
        """Send a pull for each reader without one open; returns those readers."""
        now = asyncio.get_running_loop().time()
        pulled: list[_Reader] = []
        for r in readers:
            if r.outstanding and now > r.pull_ends:
                r.outstanding = 0  # its end was lost (a disconnect): pull again
            if r.outstanding or not r.consumer or len(r.buf) >= batch:
                continue
            if wait > 0:
                body = b'{"batch":%d,"expires":%d}' % (batch, int(wait * 1e9))
            else:
                body = b'{"batch":%d,"no_wait":true}' % batch
            r.outstanding = batch
            r.pull_ends = now + wait + _PULL_GRACE_S
            with translated("pull"):
                await self._nc.publish(
                    f"$JS.API.CONSUMER.MSG.NEXT.{r.stream}.{r.consumer}",
                    body,
                    reply=f"{self._prefix}.{r.consumer}",
                )
            pulled.append(r)
        return pulled

    @staticmethod
    def _take(readers: list[_Reader], limit: int) -> list[Record[Any]]:
        out: list[Record[Any]] = []
        for r in readers:
            buf = r.buf
            if not buf:
                continue
            n = min(len(buf), limit - len(out))
            out.extend(buf.popleft() for _ in range(n))
            r.next = out[-1].offset + 1
            if len(out) >= limit:
                break
        return out

    # -- deliveries -------------------------------------------------------------------
    async def _on_msg(self, msg: Msg) -> None:
        if not msg.reply:  # a status message, sent to <inbox>.<consumer>
            r = self._by_consumer.get(msg.subject[len(self._prefix) + 1 :])
            if r is not None:
                self._on_status(r, msg.headers.get("Status", "") if msg.headers else "")
            return
        consumer, seq, ts = parse_ack_reply(msg.reply)
        r = self._by_consumer.get(consumer)
        if r is None:
            return  # for a consumer we replaced or dropped
        r.outstanding = max(0, r.outstanding - 1)
        position = r.buf[-1].offset + 1 if r.buf else r.next
        if seq - 1 >= position:
            r.buf.append(
                self._codec.record(
                    r.stream, r.topic, r.partition, seq, ts, msg.subject, msg.headers, msg.data
                )
            )
        self._wake()

    def _on_status(self, r: _Reader, status: str) -> None:
        if status == "100":
            return  # an idle heartbeat
        r.outstanding = 0
        if status in ("409", "503"):
            # The consumer is gone (deleted, inactive, server restarted) or refused the
            # pull: make a new one at the reader's position on the next fetch.
            self._by_consumer.pop(r.consumer, None)
            r.consumer = ""
        self._wake()

    def _wake(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    async def _sweep(self, now: float) -> None:
        if now - self._swept < _READER_IDLE_S / 4:
            return
        self._swept = now
        for tp, pool in list(self._readers.items()):
            for r in [r for r in pool if not r.busy and now - r.used > _READER_IDLE_S]:
                pool.remove(r)
                await self._drop_consumer(r)
            if not pool:
                del self._readers[tp]

    def _check_open(self) -> None:
        if self._closed:
            raise ClosedError("the NATS broker is closed")
