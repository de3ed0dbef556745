"""The runs of one invocation: fill a log once, then each workload on its own copy.

The fill child writes the log into a template directory outside every timer; each
workload run gets a fresh temporary directory with a copy of that file and its own
child process (`benchmarks.procs`), so its peak RSS and CPU are its own. A round runs
the three workloads in an order rotated by the round's number, so a shared machine's
drift does not always hit the same one. A failure becomes the text of its row.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.flows.workload import DB
from benchmarks.procs import Outcome, WorkloadFailed, run_child

RIVERBED = "benchmarks.flows.riverbed_side:count"
RAW = "benchmarks.flows.raw_side:count"
FILL = "benchmarks.flows.workload:fill"
WORKLOADS = ("exactly_once", "at_least_once", "raw")

Result = Outcome | str  # a measurement, or why there is none


@dataclass(frozen=True)
class Settings:
    events: int
    batch: int
    timeout: float
    tmpdir: str | None


@contextmanager
def filled_log(s: Settings) -> Iterator[tuple[Path, Outcome]]:
    """A template directory holding a freshly filled log, for the block."""
    with tempfile.TemporaryDirectory(prefix="riverbed-flows-fill-", dir=s.tmpdir) as d:
        db = Path(d) / DB
        params = {"events": s.events, "batch": s.batch, "db": str(db)}
        yield db, run_child(FILL, params, s.timeout + 30)


def _copy(template: Path, into: str) -> Path:
    """The log and any WAL/shm files beside it (a clean close leaves none)."""
    for f in template.parent.glob(template.name + "*"):
        shutil.copyfile(f, Path(into) / f.name)
    return Path(into) / template.name


def _run(name: str, template: Path, s: Settings) -> Result:
    with tempfile.TemporaryDirectory(prefix=f"riverbed-flows-{name}-", dir=s.tmpdir) as d:
        params: dict[str, Any] = {
            "events": s.events,
            "db": str(_copy(template, d)),
            "timeout": s.timeout,
        }
        try:
            if name == "raw":
                return run_child(RAW, params, s.timeout + 30)
            return run_child(RIVERBED, {**params, "guarantee": name}, s.timeout + 30)
        except WorkloadFailed as exc:
            lines = [ln for ln in str(exc).splitlines() if ln.strip()]
            return f"not run: {lines[-1] if lines else exc}"[:300]


def one_round(template: Path, s: Settings, rep: int) -> dict[str, Result]:
    """Every workload once, on its own copy of the log."""
    order = WORKLOADS[rep % len(WORKLOADS) :] + WORKLOADS[: rep % len(WORKLOADS)]
    return {name: _run(name, template, s) for name in order}
