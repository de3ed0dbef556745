"""The raw nats-py client doing the produce and consume workloads on JetStream.

JetStream's own helpers (`js.publish_async`, `pull_subscribe().fetch`) cost a future,
a semaphore and a per-call inbox each and measured ~40k ev/s here, so the raw side uses
the core client the way a throughput-minded NATS user does:

Produce: a file-storage stream with one subject. Per batch, every event is published
at once with `nc.publish(subject, data, reply=<inbox>.<i>, headers)` (nats-py buffers
them into a few socket writes) and one wildcard subscription counts the acks; the batch
ends when all have arrived, as `publish_many` returns only once its batch is stored.
Headers are the ones riverbed writes: `Nats-Msg-Id` = the event id (the server does the
same duplicate tracking) and the CloudEvents NATS binding's `ce-*` attributes and
`content-type`; the data is the JSON payload.

Consume: a durable pull consumer with AckAll; pull requests (`CONSUMER.MSG.NEXT`,
batch 1000) answered on one inbox subscription, the next pull sent as soon as a batch
has arrived (one batch of read-ahead); each message's headers read and its data decoded
into a `Tick`; one ack (of the batch's last message) per batch.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import nats
from nats.aio.msg import Msg
from nats.js.api import AckPolicy, ConsumerConfig, StorageType

from benchmarks.backends import measure, wire
from benchmarks.common import Stopwatch, TickPool


def stream_name(topic: str) -> str:
    return topic.replace(".", "_")


class _Acks:
    def __init__(self) -> None:
        self.want = 0
        self.got = 0
        self.errors: list[bytes] = []
        self.done = asyncio.Event()

    async def on_ack(self, msg: Msg) -> None:
        if b'"error"' in msg.data or not msg.data:
            self.errors.append(msg.data or str(msg.headers).encode())
        self.got += 1
        if self.got == self.want:
            self.done.set()


async def _produce(p: dict[str, Any]) -> dict[str, Any]:
    n, batch, subject = p["events"], p["batch"], p["topic"]
    nc = await nats.connect(p["url"])
    try:
        js = nc.jetstream()
        await js.add_stream(name=stream_name(subject), subjects=[subject], storage=StorageType.FILE)
        acks, inbox = _Acks(), nc.new_inbox()
        await nc.subscribe(inbox + ".*", cb=acks.on_ack)
        pool, ids, encode, publish = TickPool(batch), wire.Ids(), wire.encode, nc.publish
        etype, source, ctype = wire.EVENT_TYPE, wire.SOURCE, wire.CONTENT_TYPE
        sw = Stopwatch()
        for start in range(0, n, batch):
            events = pool.take(min(batch, n - start))
            with sw:
                acks.want, acks.got = len(events), 0
                acks.done.clear()
                ce_time = wire.rfc3339(wire.now_ms())
                for i, (event, eid) in enumerate(zip(events, ids.take(len(events)), strict=True)):
                    headers = {
                        "Nats-Msg-Id": eid,
                        "ce-specversion": "1.0",
                        "ce-id": eid,
                        "ce-type": etype,
                        "ce-source": source,
                        "ce-time": ce_time,
                        "content-type": ctype,
                    }
                    await publish(subject, encode(event), f"{inbox}.{i}", headers)
                await asyncio.wait_for(acks.done.wait(), p["timeout"])
            if acks.errors:
                raise RuntimeError(f"raw nats produce: {acks.errors[:3]}")
    finally:
        await nc.close()
    return measure.produce_result(n, sw.total)


class _Pulls:
    """Deliveries of the outstanding pull; `ready` when a whole batch is in."""

    def __init__(self) -> None:
        self.msgs: list[Msg] = []
        self.want = 0
        self.ready = asyncio.Event()

    async def on_msg(self, msg: Msg) -> None:
        if not msg.reply:  # a status message (408: the pull expired): ask again
            self.ready.set()
            return
        self.msgs.append(msg)
        if len(self.msgs) >= self.want:
            self.ready.set()


async def _consume(p: dict[str, Any]) -> dict[str, Any]:
    n, subject, group = p["events"], p["topic"], p["group"]
    stream = stream_name(subject)
    nc = await nats.connect(p["url"])
    decode = wire.decoder().decode
    count, first = 0, 0.0
    try:
        t0 = time.perf_counter()
        js = nc.jetstream()
        config = ConsumerConfig(durable_name=group, ack_policy=AckPolicy.ALL, max_ack_pending=-1)
        await js.add_consumer(stream, config)
        pulls, inbox = _Pulls(), nc.new_inbox()
        await nc.subscribe(inbox, cb=pulls.on_msg)
        next_api = f"$JS.API.CONSUMER.MSG.NEXT.{stream}.{group}"

        async def pull(want: int) -> None:
            pulls.want = want
            body = {"batch": want, "expires": 1_000_000_000}
            await nc.publish(next_api, json.dumps(body).encode(), reply=inbox)

        deadline = t0 + p["timeout"]
        await pull(min(1000, n))
        while count < n:
            remaining = deadline - time.perf_counter()
            await asyncio.wait_for(pulls.ready.wait(), max(remaining, 0.001))
            msgs, pulls.msgs = pulls.msgs, []
            pulls.ready.clear()
            left = n - count - len(msgs)
            if left > 0:  # read-ahead: the next batch travels while this one is handled
                await pull(min(1000, left))
            if not msgs:
                continue
            if count == 0:
                first = time.perf_counter()
            for msg in msgs:
                msg.headers  # noqa: B018 - reading the envelope is part of the work
                decode(msg.data)
            count += len(msgs)
            await nc.publish(msgs[-1].reply)  # AckAll: one ack for the batch
        last = time.perf_counter()
    finally:
        await nc.close()
    return measure.consume_result(n, t0, first, last)


def produce(p: dict[str, Any]) -> dict[str, Any]:
    return asyncio.run(_produce(p))


def consume(p: dict[str, Any]) -> dict[str, Any]:
    return asyncio.run(_consume(p))
