"""The backends table: per backend, riverbed against its raw client, with ratios."""

from __future__ import annotations

import importlib
from collections.abc import Mapping

from benchmarks.backends.plan import RAW, RIVERBED, Result
from benchmarks.procs import Outcome
from benchmarks.report import outcome_line

TARGET = 0.70  # issue 3: riverbed >= 70% of its raw client's throughput


def _rate(o: Outcome) -> str:
    return f"{o.result['rate'] / 1000:,.1f}k ev/s"


def _cell(r: Result, startup: bool = False) -> str:
    if isinstance(r, str):
        return r.replace("|", "\\|")
    text = _rate(r)
    if startup:
        text += f" (start-up {r.result['startup_s']:.2f} s)"
    return text


def _rss(*rs: Result) -> str:
    return " / ".join(f"{r.peak_rss_mb:,.0f}" if isinstance(r, Outcome) else "—" for r in rs)


def _compare(label: str, rb: Result, raw: Result, *, info: bool = False) -> str:
    startup = "consume" in label
    ratio, verdict = "—", "—"
    if isinstance(rb, Outcome) and isinstance(raw, Outcome):
        value = rb.result["rate"] / raw.result["rate"]
        ratio = f"{value:.2f}×"
        if not info:
            verdict = "PASS" if value >= TARGET else "**FAIL**"
    target = "(info)" if info else f"≥ {TARGET:.2f}× raw"
    cells = [label, _cell(rb, startup), _cell(raw, startup), ratio, target, verdict]
    return "| " + " | ".join([*cells, _rss(rb, raw) + " MB"]) + " |"


def table(results: Mapping[str, Mapping[str, Result]]) -> str:
    head = [
        "| backend / workload | riverbed | raw client | riverbed / raw | target | result "
        "| peak RSS riverbed / raw |",
        "|---|---|---|---|---|---|---|",
    ]
    rows = []
    for backend, r in results.items():
        rows.append(f"| **{backend}** | | | | | | |")
        rows.append(_compare("produce", r["riverbed_produce"], r["raw_produce"]))
        rows.append(_compare("consume", r["riverbed_consume"], r["raw_consume"]))
        rows.append(
            _compare("`broker.append`, records pre-built", r["append"], r["raw_produce"], info=True)
        )
    return "\n".join([*head, *rows, ""])


def how(backends: list[str]) -> list[str]:
    """What each side does, from the workload modules' own docstrings."""
    lines = ["## What each row runs", ""]
    modules = {"riverbed": RIVERBED}
    for b in backends:
        modules[f"raw {b}"] = RAW.get(b, "benchmarks.backends.raw_sqlite")
    for label, name in modules.items():
        doc = (importlib.import_module(name).__doc__ or "").strip()
        lines += [f"- **{label}** (`{name}`): " + " ".join(doc.split()), ""]
    if "sqlite" in backends:
        lines += [
            "- **raw sqlite produce** (`benchmarks.raw`, envelope columns): one row per event "
            "via `executemany`, one transaction per batch, rows built outside the timer.",
            "",
        ]
    return lines


def details(results: Mapping[str, Mapping[str, list[Outcome]]]) -> list[str]:
    lines = [
        outcome_line(f"{backend} `{name}`", o)
        for backend, per in results.items()
        for name, runs in per.items()
        for o in runs
    ]
    return ["## Details", "", *lines, ""]
