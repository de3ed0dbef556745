"""A private redis-server (AOF, appendfsync always) is SIGKILLed mid-stream and restarted
on the same port: producers and consumers reconnect, nothing acknowledged is lost."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest
from tests import servers

from riverbed.brokers.base import TopicPartition, TopicSpec
from riverbed.brokers.redis import RedisBroker
from riverbed.errors import BrokerUnavailable
from riverbed.testing.conformance import make_record


@pytest.fixture
def server() -> Iterator[servers.ServerProcess]:
    with servers.running(servers.redis_process) as s:
        yield s


def url_of(server: servers.ServerProcess) -> str:
    return f"redis://127.0.0.1:{server.port}/0"


async def test_kill_and_restart_mid_stream_loses_nothing(server: servers.ServerProcess) -> None:
    producer = RedisBroker(url_of(server), retry_timeout=30)
    consumer = RedisBroker(url_of(server), retry_timeout=30)
    await producer.create_topic(TopicSpec("events", 2))
    acked: list[bytes] = []
    consumed: list[bytes] = []
    stop = asyncio.Event()

    async def produce() -> None:
        n = 0
        while not stop.is_set():
            batch = [make_record(i % 2, value=str(n + i).encode()) for i in range(20)]
            await producer.append("events", batch)
            acked.extend(r.value for r in batch)
            n += len(batch)
            await asyncio.sleep(0.005)

    async def consume() -> None:
        positions = {TopicPartition("events", p): 0 for p in range(2)}
        # Done only once the producer has returned and every acknowledged record was
        # read: comparing counts alone could end half-way through the last batch,
        # whose records are consumed before its append returns and acknowledges them.
        while not (producing.done() and set(acked) <= set(consumed)):
            got = await consumer.fetch(positions, max_records=500, timeout=0.2)
            for r in got:
                consumed.append(r.value)
                positions[TopicPartition("events", r.partition)] = r.offset + 1

    producing = asyncio.create_task(produce())
    tasks = [producing, asyncio.create_task(consume())]
    try:
        await asyncio.sleep(0.5)
        before = len(acked)
        server.kill()
        await asyncio.sleep(0.5)  # both clients now retry against a dead port
        server.start()
        await asyncio.sleep(0.8)
        assert len(acked) > before, "the producer did not resume after the restart"
        stop.set()
        async with asyncio.timeout(30):
            await asyncio.gather(*tasks)
    finally:
        for t in tasks:
            t.cancel()
        await producer.aclose()
        await consumer.aclose()
    missing = set(acked) - set(consumed)
    assert not missing, f"{len(missing)} acknowledged records were lost"
    assert len(consumed) == len(set(consumed)), "records were duplicated"


async def test_group_and_commits_survive_a_restart(server: servers.ServerProcess) -> None:
    broker = RedisBroker(url_of(server), retry_timeout=30)
    try:
        await broker.create_topic(TopicSpec("orders"))
        tp = TopicPartition("orders", 0)
        offsets = await broker.append("orders", [make_record() for _ in range(3)])
        await broker.join_group("g", "m", ["orders"], session_timeout=30)
        await broker.commit("g", "m", {tp: offsets[1] + 1})
        server.kill()
        server.start()
        assert (await broker.heartbeat("g", "m")).assigned == frozenset({tp})
        assert await broker.committed("g", "orders") == {0: offsets[1] + 1}
        got = await broker.fetch({tp: offsets[1] + 1})
        assert [r.offset for r in got] == [offsets[2]]
        # Scripts were forgotten by the restarted server: appends load them again.
        assert len(await broker.append("orders", [make_record()])) == 1
    finally:
        await broker.aclose()


async def test_unreachable_server_surfaces_broker_unavailable(
    server: servers.ServerProcess,
) -> None:
    broker = RedisBroker(url_of(server), retry_timeout=0.5)
    try:
        await broker.create_topic(TopicSpec("t"))
        server.kill()
        started = time.monotonic()
        with pytest.raises(BrokerUnavailable) as caught:
            await broker.append("t", [make_record()])
        assert caught.value.retriable
        assert time.monotonic() - started < 5
    finally:
        await broker.aclose()
