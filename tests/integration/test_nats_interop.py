"""Interop with plain nats-py: riverbed's records are CloudEvents any client can read,
and a message published by a client that knows nothing of riverbed is a raw event."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import nats
from nats.aio.client import Client

from riverbed import App, Context, Event

from .conftest import FAST


class Order(Event, type="order.placed"):
    id: str
    qty: int


def _subject(topic: str, partition: int) -> str:
    # The documented mapping: '.' (and any character outside [A-Za-z0-9-]) becomes _XX.
    return f"rb.{topic.replace('.', '_2E')}.{partition}"


async def _drop(nc: Client, topic: str) -> None:
    """The server is shared by test runs: leave no stream behind."""
    await nc.request(f"$JS.API.STREAM.DELETE.RB_{topic.replace('.', '_2E')}", b"")


async def test_plain_nats_reads_riverbed_records_as_cloudevents(nats_url: str) -> None:
    name = f"interop.orders-{uuid.uuid4().hex[:8]}"
    app = App("shop", broker=nats_url, consumer_options=FAST)
    orders = app.topic(name, Order, key=lambda o: o.id)
    async with app:
        position = await orders.publish(Order(id="o-1", qty=3), headers={"traceparent": "00-ab"})

    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream()
        sub = await js.pull_subscribe(_subject(name, position.partition), durable=None)
        [msg] = await sub.fetch(1, timeout=5)
    finally:
        await _drop(nc, name)
        await nc.close()
    h = msg.headers or {}
    assert h["ce-specversion"] == "1.0"
    assert h["ce-type"] == "order.placed"
    assert h["ce-source"] == "shop"
    assert h["ce-id"] == h["Nats-Msg-Id"]
    assert h["ce-time"].endswith("Z")
    assert h["content-type"] == "application/json"
    assert h["ce-partitionkey"] == "o-1"
    assert h["traceparent"] == "00-ab"
    assert json.loads(msg.data) == {"id": "o-1", "qty": 3}
    assert msg.metadata.sequence.stream - 1 == position.offset


async def test_riverbed_consumes_a_plain_nats_message_as_a_raw_event(nats_url: str) -> None:
    name = f"interop.raw-{uuid.uuid4().hex[:8]}"
    app = App("shop", broker=nats_url, consumer_options=FAST)
    raw = app.topic(name, bytes, partitions=2)
    got: list[tuple[bytes, Any]] = []
    done = asyncio.Event()

    @app.consumer(raw, group="raw-readers")
    async def on_raw(payload: bytes, ctx: Context) -> None:
        got.append((payload, ctx.record))
        done.set()

    async with app:
        nc = await nats.connect(nats_url)
        try:
            ack = await nc.jetstream().publish(
                _subject(name, 1), b"from plain nats", headers={"x-origin": "legacy"}
            )
            await asyncio.wait_for(done.wait(), 15)
        finally:
            await _drop(nc, name)
            await nc.close()

    [(payload, record)] = got
    assert payload == b"from plain nats"
    assert record.partition == 1
    assert record.offset == ack.seq - 1
    assert record.key is None
    assert record.type == ""
    assert record.headers == {"x-origin": "legacy"}
    assert record.id == f"RB_{name.replace('.', '_2E')}:{ack.seq}"
