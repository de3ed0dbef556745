"""The flows table: events/s of each workload, exactly-once / at-least-once, riverbed / raw."""

from __future__ import annotations

import importlib
from collections.abc import Mapping, Sequence

from benchmarks.flows.plan import FILL, RAW, RIVERBED, Result
from benchmarks.procs import Outcome
from benchmarks.report import Row, outcome_line, table

TARGET = 150_000  # the issue: >= 150k events/s exactly-once on the 2-core machine
BACKEND = "sqlite"
_LABELS = {
    "exactly_once": 'riverbed flow, `guarantee="exactly_once"`',
    "at_least_once": 'riverbed flow, `guarantee="at_least_once"`',
    "raw": "raw loop over `SqliteBroker` (same durable work)",
}


def _rate(o: Outcome) -> float:
    rate: float = o.result["rate"]
    return rate


def _k(rate: float) -> str:
    return f"{rate / 1000:,.1f}k ev/s"


def _mb(r: Result) -> str:
    return f"{r.peak_rss_mb:,.0f} MB" if isinstance(r, Outcome) else "—"


def _cell(r: Result) -> str:
    """The rate, and the child's CPU per event (all threads, start-up included): on a
    shared machine the CPU moves less than the wall clock."""
    if not isinstance(r, Outcome):
        return r.replace("|", "\\|")
    return f"{_k(_rate(r))} ({r.cpu / r.result['events'] * 1e6:.1f} µs CPU/event)"


def _vs_raw(r: Result, raw: Result) -> str:
    if isinstance(r, Outcome) and isinstance(raw, Outcome):
        return f"{_rate(r) / _rate(raw):.2f}× raw"
    return "n/a (raw not run)"


def _eos_row(r: Result, raw: Result) -> Row:
    target = f"≥ {TARGET // 1000}k ev/s"
    if not isinstance(r, Outcome):
        return Row(_LABELS["exactly_once"], BACKEND, _cell(r), target, "—", "—", "**FAIL**")
    ratio = f"{_rate(r) / TARGET:.2f}× target; {_vs_raw(r, raw)}"
    verdict = "PASS" if _rate(r) >= TARGET else "**FAIL**"
    return Row(_LABELS["exactly_once"], BACKEND, _cell(r), target, ratio, _mb(r), verdict)


def _cost_row(eos: Result, alo: Result) -> Row:
    """The cost of exactly-once, as the ratio of the two guarantees' rates."""
    label = "exactly-once / at-least-once"
    if not (isinstance(eos, Outcome) and isinstance(alo, Outcome)):
        return Row(label, BACKEND, "—", "(info)", "—", "—", "—")
    ratio = _rate(eos) / _rate(alo)
    result = f"{ratio:.2f}× the events/s ({1 / ratio:.2f}× the time per event)"
    return Row(label, BACKEND, result, "(info)", f"{ratio:.2f}×", "—", "—")


def rows(results: Mapping[str, Result]) -> list[Row]:
    eos, alo, raw = results["exactly_once"], results["at_least_once"], results["raw"]
    alo_ratio = _vs_raw(alo, raw) if isinstance(alo, Outcome) else "—"
    return [
        _eos_row(eos, raw),
        Row(_LABELS["at_least_once"], BACKEND, _cell(alo), "(info)", alo_ratio, _mb(alo), "—"),
        _cost_row(eos, alo),
        Row(_LABELS["raw"], BACKEND, _cell(raw), "reference", _vs_raw(raw, raw), _mb(raw), "—"),
    ]


def render(results: Mapping[str, Result]) -> str:
    return table(rows(results))


def how() -> list[str]:
    """What each side does, from the workload modules' own docstrings."""
    lines = ["## What each row runs", ""]
    for label, name in (("the log", FILL), ("riverbed", RIVERBED), ("raw", RAW)):
        module = name.partition(":")[0]
        doc = (importlib.import_module(module).__doc__ or "").strip()
        lines += [f"- **{label}** (`{module}`): " + " ".join(doc.split()), ""]
    return lines


def details(fill: Outcome, runs: Mapping[str, list[Outcome]]) -> list[str]:
    lines = [outcome_line("fill (outside every timer)", fill)]
    lines += [outcome_line(f"`{name}`", o) for name, outs in runs.items() for o in outs]
    return ["## Details", "", *lines, ""]


def _ratio(a: Result, b: Result) -> str:
    if isinstance(a, Outcome) and isinstance(b, Outcome):
        return f"{_rate(a) / _rate(b):.2f}×"
    return "—"


def per_round(rounds: Sequence[Mapping[str, Result]]) -> list[str]:
    """The ratios within each round (its runs ran back to back on the same machine)."""
    if len(rounds) < 2:
        return []
    lines = ["Ratios within each round:", ""]
    for i, r in enumerate(rounds, 1):
        eos, alo, raw = r["exactly_once"], r["at_least_once"], r["raw"]
        lines.append(
            f"- round {i}: exactly-once / at-least-once {_ratio(eos, alo)}, "
            f"exactly-once / raw {_ratio(eos, raw)}, at-least-once / raw {_ratio(alo, raw)}"
        )
    return [*lines, ""]
