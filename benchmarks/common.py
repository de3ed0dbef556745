"""What every workload shares: the ~100-byte event, app construction, small stats."""

from __future__ import annotations

import math
import os
import time
from collections.abc import Sequence
from typing import Any

from riverbed import App, ConsumerOptions, Event, Topic

TOPIC = "bench"
BATCH = 1000


class Tick(Event, type="bench.tick"):
    """The benchmark event: its JSON is about 100 bytes."""

    seq: int
    sent_ns: int
    account: str
    sku: str
    qty: int
    price: float


# Field values come from small tables so that building an event (user code, and part
# of the timed region of the end-to-end and latency workloads) costs well under 1 µs
# and does not blur riverbed's own costs.
_ACCOUNTS = [f"acct-{i * 7919 % 1_000_000:06d}" for i in range(1009)]
_SKUS = [f"SKU-{i * 104_729 % 100_000:05d}-XL" for i in range(1013)]
_PRICES = [round(1 + i * 37 % 10_000 / 100, 2) for i in range(1019)]
_BASE_NS = 1_700_000_000_000_000_000


def tick(seq: int, sent_ns: int = 0) -> Tick:
    return Tick(
        seq=seq,
        sent_ns=sent_ns or _BASE_NS + seq,
        account=_ACCOUNTS[seq % 1009],
        sku=_SKUS[seq % 1013],
        qty=seq % 7 + 1,
        price=_PRICES[seq % 1019],
    )


def ticks(start: int, n: int) -> list[Tick]:
    return [tick(i) for i in range(start, start + n)]


class TickPool:
    """Pre-built batches handed out in turn, so a workload's timed loop builds nothing.

    Events are immutable to riverbed (it encodes them), so reusing them is safe; 16
    distinct batches keep the payloads varied without holding 1M objects.
    """

    def __init__(self, batch: int, batches: int = 16) -> None:
        self._batches = [ticks(i * batch, batch) for i in range(batches)]
        self._i = 0

    def take(self, n: int) -> list[Tick]:
        b = self._batches[self._i % len(self._batches)]
        self._i += 1
        return b if n == len(b) else b[:n]


def broker_url(backend: str, workdir: str, name: str = "bench") -> str:
    if backend == "memory":
        return "memory://"
    return f"sqlite:///{os.path.join(workdir, name + '.db')}"


def make_app(
    backend: str, workdir: str, *, db: str | None = None, options: dict[str, Any] | None = None
) -> tuple[App, Topic[Tick]]:
    """The benchmark app and its topic; `options` are `ConsumerOptions` fields (for
    experiments: the workloads themselves run with the defaults)."""
    url = f"sqlite:///{db}" if db else broker_url(backend, workdir)
    app = App("bench", broker=url, consumer_options=ConsumerOptions(**(options or {})))
    topic = app.topic(TOPIC, Tick)
    return app, topic


def percentile(sorted_values: Sequence[int], q: float) -> float:
    """Nearest-rank percentile of an ascending sequence."""
    if not sorted_values:
        return math.nan
    k = max(0, min(len(sorted_values) - 1, math.ceil(q * len(sorted_values)) - 1))
    return float(sorted_values[k])


class Stopwatch:
    """Sums the time spent inside `with sw:` blocks (so setup work is left out)."""

    def __init__(self) -> None:
        self.total = 0.0
        self._t = 0.0

    def __enter__(self) -> Stopwatch:
        self._t = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.total += time.perf_counter() - self._t
