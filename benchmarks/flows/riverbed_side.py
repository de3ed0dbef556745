"""riverbed counting the log: `app.stream(topic).group_by().window(Tumbling(60)).count()`.

One app, one flow (guarantee "exactly_once" or "at_least_once"), started on a log the
fill child wrote. Timed from `async with app:` (connect, join, restore of the empty
changelog) until the group's committed offsets reach the log's end offsets, i.e. every
event's count and offset is durable; the commit loop runs at its default 0.2 s. The sum
of every window's count is checked against N afterwards, outside the timer.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from benchmarks.flows.workload import APP, TOPIC, WINDOW_S, ticks_topic
from riverbed import App, Tumbling
from riverbed.brokers.base import Broker

FLOW = "count"
POLL_S = 0.01
"""How often the committed offsets are read (one small query on the reader thread)."""


async def _wait_committed(broker: Broker, group: str, ends: dict[int, int], timeout: float) -> None:
    deadline = time.perf_counter() + timeout
    while (committed := await broker.committed(group, TOPIC)) != ends:
        if time.perf_counter() > deadline:
            raise TimeoutError(f"flow: committed {committed} of {ends} after {timeout} s")
        await asyncio.sleep(POLL_S)


def _total(windows: dict[str, list[Any]]) -> int:
    return sum(w.value for per_key in windows.values() for w in per_key)


async def _count(p: dict[str, Any]) -> dict[str, Any]:
    n = p["events"]
    app = App(APP, broker=f"sqlite:///{p['db']}")
    topic = ticks_topic(app)
    flow = app.stream(topic, name=FLOW, guarantee=p["guarantee"])
    counts = flow.group_by().window(Tumbling(WINDOW_S)).count()
    group = f"{APP}.{FLOW}"
    t0 = time.perf_counter()
    async with app:
        ends = (await app.broker.describe_topic(TOPIC)).end_offsets()
        await _wait_committed(app.broker, group, ends, p["timeout"])
        seconds = time.perf_counter() - t0
        total = _total(counts.table.snapshot())
        stats = app.statistics()[0]
        changelog = (await app.broker.describe_topic(counts.table.changelog)).end_offsets()
    if total != n or stats.handled != n:
        raise RuntimeError(f"flow: windows sum to {total}, {stats.handled} handled, of {n}")
    return {
        "events": n,
        "seconds": seconds,
        "rate": n / seconds,
        "commits": stats.commits,
        "changelog_records": sum(changelog.values()),
    }


def count(p: dict[str, Any]) -> dict[str, Any]:
    """Child workload: the flow over the log at `db` with `guarantee`."""
    return asyncio.run(_count(p))
