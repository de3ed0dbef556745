"""(c) Publish-to-handler latency at a paced rate, in one process and across two.

The producer stamps `time.time_ns()` into each event just before `publish_many` and
publishes whatever is due every millisecond (10 events per batch at 10k events/s); the
handler takes `time.time_ns()` minus that stamp. Both processes read the same wall
clock, so the cross-process numbers need no clock sync. The first events (warm-up:
connection set-up, first fetch) are left out of the percentiles.
"""

from __future__ import annotations

import asyncio
import sys
import time
from typing import Any

from benchmarks.common import Tick, make_app, percentile, tick
from riverbed import App, Topic


class _Latencies:
    """Publish-to-handler latencies (ns) in arrival order, and when all n arrived."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.lat: list[int] = []
        self.done = asyncio.Event()


def _latency_app(
    p: dict[str, Any], n: int, db: str | None = None
) -> tuple[App, Topic[Tick], _Latencies]:
    app, topic = make_app(p["backend"], p["workdir"], db=db, options=p.get("options"))
    state = _Latencies(n)
    lat = state.lat

    @app.consumer(topic, group="bench.latency")
    async def measure(event: Tick) -> None:
        lat.append(time.time_ns() - event.sent_ns)
        if len(lat) == state.n:
            state.done.set()

    return app, topic, state


async def paced_publish(topic: Topic[Tick], n: int, rate: float, every: float = 0.001) -> float:
    """Publish n events at `rate`/s, whatever is due every `every` s; the achieved rate."""
    t0 = time.perf_counter()
    sent = 0
    while sent < n:
        due = min(n, int((time.perf_counter() - t0) * rate) + 1)
        if due > sent:
            now = time.time_ns()
            await topic.publish_many([tick(i, now) for i in range(sent, due)])
            sent = due
        await asyncio.sleep(every)
    return n / (time.perf_counter() - t0)


def summarize(lat_ns: list[int], warmup: int) -> dict[str, Any]:
    values = sorted(lat_ns[warmup:])
    ms = 1e-6
    return {
        "samples": len(values),
        "p50_ms": percentile(values, 0.50) * ms,
        "p99_ms": percentile(values, 0.99) * ms,
        "p999_ms": percentile(values, 0.999) * ms,
        "max_ms": values[-1] * ms if values else float("nan"),
        "mean_ms": sum(values) / len(values) * ms if values else float("nan"),
    }


def _warmup(n: int) -> int:
    return min(1000, n // 10)


async def _wait_assigned(app: App, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not all(m.assigned for m in app.members):
        if time.monotonic() > deadline:
            raise TimeoutError("the consumer got no partition")
        await asyncio.sleep(0.005)


async def _one_process(p: dict[str, Any]) -> dict[str, Any]:
    n = p["events"]
    app, topic, state = _latency_app(p, n)
    async with app:
        await _wait_assigned(app, 10)
        achieved = await paced_publish(topic, n, p["rate"])
        await asyncio.wait_for(state.done.wait(), p["timeout"])
    return {"rate": achieved, **summarize(state.lat, _warmup(n))}


async def _consumer_process(p: dict[str, Any]) -> dict[str, Any]:
    n = p["events"]
    app, _, state = _latency_app(p, n, db=p["db"])
    async with app:
        await _wait_assigned(app, 10)
        print("READY", flush=True)
        await asyncio.wait_for(state.done.wait(), p["timeout"])
    return summarize(state.lat, _warmup(n))


async def _producer_process(p: dict[str, Any]) -> dict[str, Any]:
    app, topic = make_app(p["backend"], p["workdir"], db=p["db"])
    await app.connect()
    try:
        achieved = await paced_publish(topic, p["events"], p["rate"])
    finally:
        await app.aclose_broker()
    return {"rate": achieved}


def one_process(p: dict[str, Any]) -> dict[str, Any]:
    return asyncio.run(_one_process(p))


def consumer_process(p: dict[str, Any]) -> dict[str, Any]:
    return asyncio.run(_consumer_process(p))


def producer_process(p: dict[str, Any]) -> dict[str, Any]:
    return asyncio.run(_producer_process(p))


if __name__ == "__main__":
    sys.exit("run through `python -m benchmarks`")
