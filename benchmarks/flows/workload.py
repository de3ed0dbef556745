"""The log both sides count, and the child that fills it (outside every timer).

N `Tick` events on one topic of 4 partitions, keyed by 1000 keys in turn (the key of
event i is `KEYS[i % 1000]`, placed by riverbed's partitioner), with event times 1 ms
apart from a minute boundary: as if 1000 sources each sent one event a second. A
tumbling minute then holds 60 events of each key, and with 1M events ~17 windows per
key close as event time moves on.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from benchmarks.common import Tick, TickPool
from riverbed import App, Topic

APP = "bench"
TOPIC = "ticks"
PARTITIONS = 4
KEYS = [f"key-{i:04d}" for i in range(1000)]
T0 = 1_700_000_040_000
"""Event time of the first event: a minute boundary (ms)."""
STEP_MS = 1
"""Event time between consecutive events."""
WINDOW_S = 60.0
DB = "log.db"


def ticks_topic(app: App) -> Topic[Tick]:
    """The input topic as both sides declare it."""
    return app.topic(TOPIC, Tick, partitions=PARTITIONS)


async def _fill(p: dict[str, Any]) -> dict[str, Any]:
    n, batch = p["events"], p["batch"]
    app = App(APP, broker=f"sqlite:///{p['db']}")
    topic = ticks_topic(app)
    broker = await app.connect()
    pool = TickPool(batch)
    started = time.perf_counter()
    try:
        for first in range(0, n, batch):
            events = pool.take(min(batch, n - first))
            keys = iter(KEYS[(first + i) % len(KEYS)] for i in range(len(events)))
            records = app.producer.build_many(topic, events, key=lambda _e: next(keys))
            for i, rec in enumerate(records):
                rec.timestamp = T0 + (first + i) * STEP_MS
            await broker.append(TOPIC, records)
        ends = (await broker.describe_topic(TOPIC)).end_offsets()
    finally:
        await app.aclose_broker()
    if sum(ends.values()) != n:
        raise RuntimeError(f"fill: the log holds {sum(ends.values())} events, not {n}")
    seconds = time.perf_counter() - started
    return {"events": n, "seconds": seconds, "per_partition": [ends[q] for q in sorted(ends)]}


def fill(p: dict[str, Any]) -> dict[str, Any]:
    """Child workload: append `events` keyed, time-stamped events to the log at `db`."""
    return asyncio.run(_fill(p))
