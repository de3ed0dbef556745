"""(a) append throughput and (b) end-to-end / consume-only throughput.

Every function runs inside a child process (see `benchmarks.child`) and returns a dict
of measurements. Building the events (user code) is left out of the append timings;
everything riverbed does with them (encode, envelope, ids, partition, store) is in.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from benchmarks.common import BATCH, TOPIC, Stopwatch, Tick, TickPool, make_app, ticks
from riverbed import App, Topic


async def _append_api(p: dict[str, Any]) -> dict[str, Any]:
    n, batch = p["events"], p["batch"]
    app, topic = make_app(p["backend"], p["workdir"])
    await app.connect()
    sw = Stopwatch()
    try:
        for start in range(0, n, batch):
            events = ticks(start, min(batch, n - start))
            with sw:
                await topic.publish_many(events)
        end = (await app.broker.describe_topic(TOPIC)).end_offsets()[0]
    finally:
        await app.aclose_broker()
    assert end == n, (end, n)
    return {"events": n, "seconds": sw.total, "rate": n / sw.total}


async def _append_broker(p: dict[str, Any]) -> dict[str, Any]:
    n, batch = p["events"], p["batch"]
    app, topic = make_app(p["backend"], p["workdir"])
    broker = await app.connect()
    build = app.producer.build
    sw = Stopwatch()
    try:
        for start in range(0, n, batch):
            records = [build(topic, e) for e in ticks(start, min(batch, n - start))]
            with sw:
                await broker.append(TOPIC, records)
        end = (await broker.describe_topic(TOPIC)).end_offsets()[0]
    finally:
        await app.aclose_broker()
    assert end == n, (end, n)
    return {"events": n, "seconds": sw.total, "rate": n / sw.total}


class _Count:
    """What the counting handler shares with the workload."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.count = 0
        self.last = 0.0
        self.done = asyncio.Event()


def _counting_app(
    p: dict[str, Any], n: int, db: str | None = None
) -> tuple[App, Topic[Tick], _Count]:
    """An app whose one consumer (an async handler) counts to n."""
    app, topic = make_app(p["backend"], p["workdir"], db=db)
    state = _Count(n)

    @app.consumer(topic, group="bench.count")
    async def count(event: Tick) -> None:
        state.count += 1
        if state.count == state.n:
            state.last = time.perf_counter()
            state.done.set()

    return app, topic, state


async def _publish_all(topic: Topic[Tick], n: int, batch: int) -> float:
    """Publish n events in batches (built beforehand); returns the first publish time."""
    pool = TickPool(batch)
    first = time.perf_counter()
    for start in range(0, n, batch):
        await topic.publish_many(pool.take(min(batch, n - start)))
    return first


async def _end_to_end(p: dict[str, Any]) -> dict[str, Any]:
    n = p["events"]
    app, topic, state = _counting_app(p, n)
    async with app:
        producer = asyncio.create_task(_publish_all(topic, n, p["batch"]))
        await asyncio.wait_for(state.done.wait(), p["timeout"])
        first = await producer
        produced = time.perf_counter()
    seconds = state.last - first
    return {
        "events": n,
        "seconds": seconds,
        "rate": n / seconds,
        "produce_rate": n / (produced - first),
    }


async def _fill(p: dict[str, Any]) -> dict[str, Any]:
    app, topic = make_app(p["backend"], p["workdir"], db=p.get("db"))
    await app.connect()
    try:
        await _publish_all(topic, p["events"], p["batch"])
    finally:
        await app.aclose_broker()
    return {"events": p["events"]}


async def _consume_only(p: dict[str, Any]) -> dict[str, Any]:
    """The log already holds n events (filled by another process, or here for memory)."""
    n = p["events"]
    app, topic, state = _counting_app(p, n, db=p.get("db"))
    if p["backend"] == "memory":
        await _publish_all(topic, n, p["batch"])
    start = time.perf_counter()
    async with app:
        await asyncio.wait_for(state.done.wait(), p["timeout"])
    seconds = state.last - start
    return {"events": n, "seconds": seconds, "rate": n / seconds}


def append_api(p: dict[str, Any]) -> dict[str, Any]:
    return asyncio.run(_append_api(p))


def append_broker(p: dict[str, Any]) -> dict[str, Any]:
    return asyncio.run(_append_broker(p))


def end_to_end(p: dict[str, Any]) -> dict[str, Any]:
    return asyncio.run(_end_to_end(p))


def fill(p: dict[str, Any]) -> dict[str, Any]:
    return asyncio.run(_fill(p))


def consume_only(p: dict[str, Any]) -> dict[str, Any]:
    return asyncio.run(_consume_only(p))


__all__ = ["BATCH", "append_api", "append_broker", "consume_only", "end_to_end", "fill"]
