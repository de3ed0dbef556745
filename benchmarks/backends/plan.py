"""One backend's workloads in one repetition: raw and riverbed, produce then consume.

Raw and riverbed alternate (raw produce, riverbed produce, raw consume, riverbed
consume, riverbed append) so that drift of a shared machine hits both sides alike.
Each workload is a child process (`benchmarks.procs`); a consume reads the topic its
side's produce filled. A failure becomes the text of that row ("not run: ...").
"""

from __future__ import annotations

import importlib.util
import os
import tempfile
from dataclasses import dataclass
from typing import Any

from benchmarks.backends.cleanup import Made
from benchmarks.procs import Outcome, WorkloadFailed, run_child

RAW = {
    "kafka": "benchmarks.backends.raw_kafka",
    "nats": "benchmarks.backends.raw_nats",
    "redis": "benchmarks.backends.raw_redis",
}
RIVERBED = "benchmarks.backends.riverbed_side"
WORKLOADS = ("raw_produce", "riverbed_produce", "raw_consume", "riverbed_consume", "append")

Result = Outcome | str  # a measurement, or why there is none


@dataclass(frozen=True)
class Settings:
    events: int
    batch: int
    timeout: float
    tmpdir: str | None


def riverbed_missing(backend: str) -> str | None:
    """Why riverbed cannot run on `backend` yet (its module is not written), or None."""
    if importlib.util.find_spec(f"riverbed.brokers.{backend}") is None:
        return f"not run: riverbed.brokers.{backend} does not exist yet"
    return None


def _try(name: str, params: dict[str, Any], timeout: float) -> Result:
    try:
        return run_child(name, params, timeout)
    except WorkloadFailed as exc:
        lines = [ln for ln in str(exc).splitlines() if ln.strip()]
        return f"not run: {lines[-1] if lines else exc}"[:300]


def _after(first: Result, name: str, params: dict[str, Any], timeout: float) -> Result:
    """A consume runs only if its produce filled the topic."""
    if isinstance(first, str):
        return "not run: its produce workload failed"
    return _try(name, params, timeout)


def one_round(backend: str, url: str, s: Settings, made: Made, rep: int) -> dict[str, Result]:
    """The five workloads on a server backend, on fresh topics and groups."""
    base = {"url": url, "events": s.events, "batch": s.batch, "timeout": s.timeout}
    tag = f"bench-{made.run_id}-{rep}"
    made.raw_topics.append(f"{tag}-raw")
    made.riverbed_topics += [f"{tag}-rb", f"{tag}-append"]
    made.riverbed_groups.append(f"{tag}-rbg")
    raw = {**base, "topic": f"{tag}-raw", "group": f"{tag}-rawg"}
    rb = {**base, "topic": f"{tag}-rb", "group": f"{tag}-rbg"}
    appended = {**base, "topic": f"{tag}-append"}
    out: dict[str, Result] = {}
    out["raw_produce"] = _try(f"{RAW[backend]}:produce", raw, s.timeout)
    missing = riverbed_missing(backend)
    out["riverbed_produce"] = missing or _try(f"{RIVERBED}:produce", rb, s.timeout)
    out["raw_consume"] = _after(out["raw_produce"], f"{RAW[backend]}:consume", raw, s.timeout)
    out["riverbed_consume"] = _after(out["riverbed_produce"], f"{RIVERBED}:consume", rb, s.timeout)
    out["append"] = missing or _try(f"{RIVERBED}:append", appended, s.timeout)
    return out


def sqlite_round(s: Settings) -> dict[str, Result]:
    """The same on the embedded log; raw is `benchmarks.raw` (envelope columns)."""
    base: dict[str, Any] = {"events": s.events, "batch": s.batch, "timeout": s.timeout}
    out: dict[str, Result] = {}
    with tempfile.TemporaryDirectory(prefix="riverbed-bench-", dir=s.tmpdir) as d:
        raw = {**base, "workdir": d, "backend": "sqlite3", "columns": "envelope"}
        url = f"sqlite:///{os.path.join(d, 'bench.db')}"
        rb = {**base, "url": url, "topic": "bench", "group": "bench-count"}
        out["raw_produce"] = _try("raw", raw, s.timeout)
        out["riverbed_produce"] = _try(f"{RIVERBED}:produce", rb, s.timeout)
        consume = "benchmarks.backends.raw_sqlite:consume"
        out["raw_consume"] = _after(out["raw_produce"], consume, raw, s.timeout)
        out["riverbed_consume"] = _after(
            out["riverbed_produce"], f"{RIVERBED}:consume", rb, s.timeout
        )
        rb_append = {**rb, "url": f"sqlite:///{os.path.join(d, 'append.db')}"}
        out["append"] = _try(f"{RIVERBED}:append", rb_append, s.timeout)
    return out
