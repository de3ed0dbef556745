"""NATS killed mid-stream: clients reconnect, and nothing acknowledged is lost.

A private nats-server (its own port and store) is SIGKILLed while a producer appends
and a consumer fetches, then restarted on the same port with the same store.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from typing import Any

import pytest
from tests import servers

from riverbed.brokers.base import TopicPartition, TopicSpec
from riverbed.brokers.nats import NatsBroker
from riverbed.errors import BrokerUnavailable
from riverbed.events import Record
from riverbed.testing.conformance import make_record, unique_name

PARTITIONS = 2


@pytest.fixture
def nats_server() -> Iterator[servers.ServerProcess]:
    with servers.running(servers.nats_process) as server:
        yield server


async def _produce(broker: NatsBroker, topic: str, acked: list[str], stop: asyncio.Event) -> None:
    """Append batches until stopped; an append that raised is retried with the same records."""
    i = 0
    while not stop.is_set():
        batch = [make_record(i % PARTITIONS, value=f"{i}-{j}".encode()) for j in range(20)]
        i += 1
        while True:
            try:
                await broker.append(topic, batch)
                break
            except BrokerUnavailable:
                await asyncio.sleep(0.1)  # the server is away: the same records again
        acked.extend(r.id for r in batch)
        await asyncio.sleep(0.005)


async def _consume(broker: NatsBroker, topic: str, got: list[Record[Any]]) -> None:
    positions = {TopicPartition(topic, p): 0 for p in range(PARTITIONS)}
    while True:
        try:
            records = await broker.fetch(positions, timeout=0.5)
        except BrokerUnavailable:
            await asyncio.sleep(0.1)
            continue
        for r in records:
            positions[TopicPartition(r.topic, r.partition)] = r.offset + 1
        got.extend(records)


async def test_kill_and_restart_loses_nothing_acknowledged(
    nats_server: servers.ServerProcess,
) -> None:
    url = f"nats://127.0.0.1:{nats_server.port}?timeout=2&append_timeout=3"
    producer, consumer = NatsBroker(url), NatsBroker(url)
    await producer.start()
    await consumer.start()
    topic = unique_name("t")
    await producer.create_topic(TopicSpec(topic, PARTITIONS))
    acked: list[str] = []
    got: list[Record[Any]] = []
    stop = asyncio.Event()
    produce = asyncio.create_task(_produce(producer, topic, acked, stop))
    consume = asyncio.create_task(_consume(consumer, topic, got))
    try:
        await asyncio.sleep(0.5)
        before = len(acked)
        assert before > 0, "nothing was appended before the kill"
        nats_server.kill()
        await asyncio.sleep(0.5)
        await asyncio.to_thread(nats_server.start)
        await asyncio.sleep(1.5)
        stop.set()
        await asyncio.wait_for(produce, 30)
        assert len(acked) > before, "the producer did not recover after the restart"
        wanted = set(acked)
        for _ in range(300):
            if wanted <= {r.id for r in got}:
                break
            await asyncio.sleep(0.05)
    finally:
        stop.set()
        consume.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await consume
        if not produce.done():
            produce.cancel()
        await producer.aclose()
        await consumer.aclose()
    ids = [r.id for r in got]
    missing = wanted - set(ids)
    assert not missing, f"{len(missing)} of {len(wanted)} acknowledged records were never fetched"
    assert len(ids) == len(set(ids)), "a record was stored (or fetched) twice"
    for p in range(PARTITIONS):
        offsets = [r.offset for r in got if r.partition == p]
        assert offsets == sorted(offsets), f"partition {p} was fetched out of order"


async def test_groups_survive_a_restart(nats_server: servers.ServerProcess) -> None:
    url = f"nats://127.0.0.1:{nats_server.port}?timeout=2"
    broker = NatsBroker(url)
    await broker.start()
    try:
        topic, group = unique_name("t"), unique_name("g")
        await broker.create_topic(TopicSpec(topic, PARTITIONS))
        await broker.join_group(group, "m", [topic], session_timeout=30)
        await broker.commit(group, "m", {TopicPartition(topic, 1): 7})
        nats_server.kill()
        with pytest.raises(BrokerUnavailable):
            await broker.heartbeat(group, "m")
        await asyncio.to_thread(nats_server.start)
        for _ in range(100):  # until the client has reconnected
            try:
                a = await broker.heartbeat(group, "m")
                break
            except BrokerUnavailable:
                await asyncio.sleep(0.1)
        assert len(a.assigned) == PARTITIONS
        assert await broker.committed(group, topic) == {1: 7}
        await broker.commit(group, "m", {TopicPartition(topic, 0): 3})
        assert await broker.committed(group, topic) == {0: 3, 1: 7}
    finally:
        await broker.aclose()
