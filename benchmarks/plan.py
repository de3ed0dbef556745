"""The workloads of one run, each in a fresh temporary directory and its own process."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from benchmarks.procs import Child, Outcome, run_child


@dataclass(frozen=True)
class Settings:
    events: int
    batch: int
    rate: float
    latency_events: int
    timeout: float
    tmpdir: str | None


@contextmanager
def _fresh_dir(tmpdir: str | None) -> Iterator[str]:
    with tempfile.TemporaryDirectory(prefix="riverbed-bench-", dir=tmpdir) as d:
        yield d


def _params(s: Settings, backend: str, workdir: str, **over: Any) -> dict[str, Any]:
    p = {
        "backend": backend,
        "workdir": workdir,
        "events": s.events,
        "batch": s.batch,
        "timeout": s.timeout,
    }
    p.update(over)
    return p


def raw(s: Settings, columns: str) -> Outcome:
    """(d) One row per event; `columns` is "envelope" (like for like) or "bare"."""
    with _fresh_dir(s.tmpdir) as d:
        return run_child("raw", _params(s, "sqlite3", d, columns=columns), s.timeout)


def simple(name: str) -> Callable[[Settings, str], Outcome]:
    def run(s: Settings, backend: str) -> Outcome:
        with _fresh_dir(s.tmpdir) as d:
            return run_child(name, _params(s, backend, d), s.timeout)

    run.__name__ = name
    return run


def consume_only(s: Settings, backend: str) -> Outcome:
    with _fresh_dir(s.tmpdir) as d:
        if backend == "memory":  # nothing to share: the child fills its own log first
            return run_child("consume_only", _params(s, backend, d), s.timeout)
        db = os.path.join(d, "bench.db")
        run_child("fill", _params(s, backend, d, db=db), s.timeout)
        return run_child("consume_only", _params(s, backend, d, db=db), s.timeout)


def latency_one(s: Settings, backend: str) -> Outcome:
    with _fresh_dir(s.tmpdir) as d:
        p = _params(s, backend, d, events=s.latency_events, rate=s.rate)
        return run_child("latency_one", p, s.timeout)


def latency_two(s: Settings, backend: str) -> Outcome:
    """Consumer process first (joins, says READY), then the producer process."""
    with _fresh_dir(s.tmpdir) as d:
        p = _params(
            s, backend, d, events=s.latency_events, rate=s.rate, db=os.path.join(d, "bench.db")
        )
        consumer = Child("latency_consumer", p, s.timeout)
        consumer.wait_for("READY")
        producer = run_child("latency_producer", p, s.timeout)
        out = consumer.finish()
        out.result["rate"] = producer.result["rate"]
        out.extra["producer_rss_mb"] = producer.peak_rss_mb
        return out


WORKLOADS: dict[str, Callable[[Settings, str], Outcome]] = {
    "append_api": simple("append_api"),
    "append_broker": simple("append_broker"),
    "end_to_end": simple("end_to_end"),
    "consume_only": consume_only,
    "latency_one": latency_one,
    "latency_two": latency_two,
}
MULTI_PROCESS = {"latency_two"}
