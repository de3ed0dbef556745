"""Redis interop: plain redis-py reads what riverbed wrote, and riverbed consumes what
plain redis-py wrote (as raw events)."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
import redis.asyncio as aioredis

from riverbed import App, ConsumerOptions, Event, Record

FAST = ConsumerOptions(
    commit_interval=0.05,
    heartbeat_interval=0.1,
    session_timeout=2.0,
    fetch_wait=0.2,
    shutdown_timeout=2.0,
)


class Order(Event, type="order.placed"):
    id: str
    qty: int


@pytest_asyncio.fixture
async def plain(redis_url: str) -> AsyncIterator[tuple[aioredis.Redis, str]]:
    """A plain redis-py client and a key prefix of this test's own (removed afterwards)."""
    prefix = f"rbinterop-{uuid.uuid4().hex[:8]}"
    client = aioredis.Redis.from_url(redis_url)
    yield client, prefix
    keys = [k async for k in client.scan_iter(match=f"{prefix}:*", count=1000)]
    if keys:
        await client.delete(*keys)
    await client.aclose()


def app_on(redis_url: str, prefix: str) -> App:
    return App("interop", broker=f"{redis_url}?prefix={prefix}", consumer_options=FAST)


async def test_plain_client_reads_cloudevents_fields(
    redis_url: str, plain: tuple[aioredis.Redis, str]
) -> None:
    client, prefix = plain
    app = app_on(redis_url, prefix)
    orders = app.topic("orders", Order)
    async with app:
        await orders.publish(Order(id="o-1", qty=3), key="cust-7", headers={"tenant": "acme"})
    key = f"{prefix}:{{orders}}:0"
    entries = await client.xrange(key)
    assert len(entries) == 1
    _, fields = entries[0]
    f = {k.decode(): v for k, v in fields.items()}
    assert f["ce_specversion"] == b"1.0"
    assert f["ce_type"] == b"order.placed"
    assert f["ce_source"]
    assert len(f["ce_id"]) == 36  # riverbed's UUIDv7
    assert f["ce_time"].endswith(b"Z")
    assert f["content-type"] == b"application/json"
    assert f["key"] == b"cust-7"
    assert json.loads(f["data"]) == {"id": "o-1", "qty": 3}
    assert f["h:tenant"] == b"acme"
    # XREAD (what a plain consumer blocks on) sees the same entry.
    streams = await client.xread({key: "0-0"}, count=10)
    assert streams[0][1][0][1] == fields


async def test_riverbed_consumes_entries_added_by_a_plain_client(
    redis_url: str, plain: tuple[aioredis.Redis, str]
) -> None:
    client, prefix = plain
    app = app_on(redis_url, prefix)
    things = app.topic("things", dict)
    got: list[Record[Any]] = []
    both = asyncio.Event()

    @app.consumer(things, group="readers")
    async def on_thing(record: Record[dict[str, Any]]) -> None:
        got.append(record)
        if len(got) == 2:
            both.set()

    async with app:
        key = f"{prefix}:{{things}}:0"
        with_data = await client.xadd(key, {"data": json.dumps({"n": 1}), "source": "legacy"})
        without = await client.xadd(key, {"user": "ann", "action": "login"})
        await asyncio.wait_for(both.wait(), 10)
    first, second = got
    assert first.type == second.type == ""
    assert first.id == f"{key}/{with_data.decode()}"
    assert first.data == {"n": 1}
    assert first.headers == {"source": "legacy"}
    assert first.timestamp == int(with_data.split(b"-")[0])
    assert second.data == {"user": "ann", "action": "login"}
    assert second.key is None
    # The group's progress shows in Redis' own view of the stream.
    groups = await client.xinfo_groups(key)
    assert [g["name"] for g in groups] == [b"readers"]
    assert groups[0]["last-delivered-id"] == without


@pytest.mark.parametrize("value", [b"\xff\xfe not utf-8", b""])
async def test_undecodable_plain_entries_are_delivered(
    redis_url: str, plain: tuple[aioredis.Redis, str], value: bytes
) -> None:
    client, prefix = plain
    app = app_on(redis_url, prefix)
    raw = app.topic("raw", bytes)
    got: list[Record[bytes]] = []
    arrived = asyncio.Event()

    @app.consumer(raw, group="raw-readers")
    async def on_raw(record: Record[bytes]) -> None:
        got.append(record)
        arrived.set()

    async with app:
        key = f"{prefix}:{{raw}}:0"
        await client.xadd(key, {"data": value, b"\xffname": b"\xfevalue", "ce_id": b"\xff"})
        await asyncio.wait_for(arrived.wait(), 10)
    assert got[0].value == value
    assert got[0].type == ""
