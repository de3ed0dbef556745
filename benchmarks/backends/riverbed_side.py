"""riverbed doing the produce and consume workloads on any backend, named by its URL.

Produce: `await topic.publish_many(batch)` in batches of pre-built `Tick` events; the
time inside `publish_many` is timed (encoding, ids, envelope, the backend's append).
Append (info): `await broker.append(topic, records)` with the records built by the
producer outside the timer: the backend's own cost, without the producer's.
Consume: an app with one consumer group whose async handler counts, started on a topic
that the produce workload filled; times as in `measure.consume_result`.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from benchmarks.backends import measure
from benchmarks.common import Stopwatch, Tick, TickPool
from riverbed import App, Topic

APP = "bench"  # the records' source attribute, as the raw side's `wire.SOURCE`


def _app(p: dict[str, Any]) -> tuple[App, Topic[Tick]]:
    app = App(APP, broker=p["url"])
    return app, app.topic(p["topic"], Tick)


async def _produce(p: dict[str, Any]) -> dict[str, Any]:
    n, batch = p["events"], p["batch"]
    app, topic = _app(p)
    await app.connect()
    pool, sw = TickPool(batch), Stopwatch()
    try:
        for start in range(0, n, batch):
            events = pool.take(min(batch, n - start))
            with sw:
                await topic.publish_many(events)
    finally:
        await app.aclose_broker()
    return measure.produce_result(n, sw.total)


async def _append(p: dict[str, Any]) -> dict[str, Any]:
    n, batch = p["events"], p["batch"]
    app, topic = _app(p)
    broker = await app.connect()
    pool, sw, build = TickPool(batch), Stopwatch(), app.producer.build_many
    try:
        for start in range(0, n, batch):
            records = build(topic, pool.take(min(batch, n - start)))
            with sw:
                await broker.append(topic.name, records)
    finally:
        await app.aclose_broker()
    return measure.produce_result(n, sw.total)


class _Count:
    def __init__(self, n: int) -> None:
        self.n = n
        self.count = 0
        self.first = self.last = 0.0
        self.done = asyncio.Event()


async def _consume(p: dict[str, Any]) -> dict[str, Any]:
    n = p["events"]
    app, topic = _app(p)
    state = _Count(n)

    @app.consumer(topic, group=p["group"])
    async def count(event: Tick) -> None:
        state.count += 1
        if state.count == 1:
            state.first = time.perf_counter()
        if state.count == state.n:
            state.last = time.perf_counter()
            state.done.set()

    t0 = time.perf_counter()
    async with app:
        try:
            await asyncio.wait_for(state.done.wait(), p["timeout"])
        except TimeoutError:
            raise TimeoutError(f"riverbed consume: {state.count} of {n} handled") from None
    return measure.consume_result(n, t0, state.first, state.last)


def produce(p: dict[str, Any]) -> dict[str, Any]:
    return asyncio.run(_produce(p))


def append(p: dict[str, Any]) -> dict[str, Any]:
    return asyncio.run(_append(p))


def consume(p: dict[str, Any]) -> dict[str, Any]:
    return asyncio.run(_consume(p))
