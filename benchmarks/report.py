"""Turning outcomes into the markdown table: result, target, ratio, pass/fail."""

from __future__ import annotations

import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass

from benchmarks.procs import Outcome

E2E_TARGET = 200_000
P99_TARGET_MS = 5.0
RSS_TARGET_MB = 200.0
ISSUE_RAW = 370_000


@dataclass
class Row:
    workload: str
    backend: str
    result: str
    target: str
    ratio: str
    rss: str
    verdict: str


def log(msg: str) -> None:
    """Progress for the person waiting: on stderr, so stdout stays the report."""
    print(msg, file=sys.stderr, flush=True)


def median_run(runs: list[Outcome | str]) -> Outcome | str:
    """The run with the median rate (the lower middle one), or the last failure."""
    done = sorted((r for r in runs if isinstance(r, Outcome)), key=lambda o: o.result["rate"])
    if not done:
        return runs[-1]
    return done[(len(done) - 1) // 2]


def _k(rate: float) -> str:
    return f"{rate / 1000:,.0f}k ev/s"


def _mb(out: Outcome) -> str:
    return f"{out.peak_rss_mb:,.0f} MB"


def _verdict(ok: bool) -> str:
    return "PASS" if ok else "**FAIL**"


_RAW_LABELS = {
    "envelope": "(d) raw sqlite3 executemany, 1 row/event, payload + envelope columns",
    "bare": "(d) raw sqlite3 executemany, 1 row/event, payload column only",
}


def rows(outs: dict[tuple[str, str], Outcome], raw: dict[str, Outcome], n: int) -> list[Row]:
    out: list[Row] = []
    for columns, o in raw.items():
        rate = o.result["rate"]
        out.append(
            Row(
                _RAW_LABELS[columns],
                "sqlite3",
                f"{rate / 1000:,.0f}k rows/s",
                f"reference (issue: ~{ISSUE_RAW // 1000}k)",
                f"{rate / ISSUE_RAW:.2f}× issue's figure",
                _mb(o),
                "—",
            )
        )
    rates = {c: o.result["rate"] for c, o in raw.items()}
    for (name, backend), o in outs.items():
        out.append(_row(name, backend, o, rates, n))
    return out


def _append_row(label: str, backend: str, o: Outcome, raw: dict[str, float]) -> Row:
    """Pass/fail against the like-for-like raw run (envelope columns); the ratio to the
    bare one is shown beside it."""
    rate = o.result["rate"]
    target = "≥ 1.0× raw, aim 2.0×"
    if "envelope" not in raw:
        return Row(label, backend, _k(rate), target, "n/a (raw not run)", _mb(o), "—")
    ratio = rate / raw["envelope"]
    text = f"{ratio:.2f}× raw"
    if "bare" in raw:
        text += f" ({rate / raw['bare']:.2f}× bare raw)"
    verdict = _verdict(ratio >= 1.0)
    if 1.0 <= ratio < 2.0:
        verdict += " (aim 2.0× not reached)"
    return Row(label, backend, _k(rate), target, text, _mb(o), verdict)


def _latency_row(label: str, backend: str, o: Outcome) -> Row:
    r = o.result
    res = (
        f"p50 {r['p50_ms']:.2f} / p99 {r['p99_ms']:.2f} / p999 {r['p999_ms']:.2f} ms "
        f"(max {r['max_ms']:.1f}; {r['rate'] / 1000:.1f}k ev/s achieved)"
    )
    ratio = f"p99 = {r['p99_ms'] / P99_TARGET_MS:.2f}× limit"
    return Row(
        label,
        backend,
        res,
        f"p99 ≤ {P99_TARGET_MS:g} ms",
        ratio,
        _mb(o),
        _verdict(r["p99_ms"] <= P99_TARGET_MS),
    )


def _row(name: str, backend: str, o: Outcome, raw_rate: dict[str, float], n: int) -> Row:
    r = o.result
    if name == "append_api":
        return _append_row("(a) append via `topic.publish_many`", backend, o, raw_rate)
    if name == "append_broker":
        label = "(a) append via `broker.append` (pre-built Records)"
        return _append_row(label, backend, o, raw_rate)
    if name == "end_to_end":
        rate = r["rate"]
        return Row(
            "(b) produce + consume end to end, one process",
            backend,
            f"{_k(rate)} (producer alone {_k(r['produce_rate'])})",
            f"≥ {E2E_TARGET // 1000}k ev/s",
            f"{rate / E2E_TARGET:.2f}× target",
            _mb(o),
            _verdict(rate >= E2E_TARGET),
        )
    if name == "consume_only":
        return Row(
            "(b) consume only (log full before start)",
            backend,
            _k(r["rate"]),
            "— (info)",
            f"{r['rate'] / E2E_TARGET:.2f}× the e2e target",
            _mb(o),
            "—",
        )
    if name == "latency_one":
        return _latency_row("(c1) latency publish→handler, one process, 10k ev/s", backend, o)
    if name == "latency_two":
        return _latency_row("(c2) latency publish→handler, two processes, 10k ev/s", backend, o)
    raise KeyError(name)


def rss_row(o: Outcome, backend: str, n: int) -> Row:
    mb = o.peak_rss_mb
    return Row(
        f"(e) peak RSS streaming {n:,} events (the (b) e2e process)",
        backend,
        f"{mb:,.0f} MB",
        f"≤ {RSS_TARGET_MB:g} MB",
        f"{mb / RSS_TARGET_MB:.2f}× limit",
        f"{mb:,.0f} MB",
        _verdict(mb <= RSS_TARGET_MB),
    )


def table(rs: list[Row]) -> str:
    head = "| workload | backend | result | target | ratio | peak RSS | pass/fail |\n"
    head += "|---|---|---|---|---|---|---|\n"
    cells = [(r.workload, r.backend, r.result, r.target, r.ratio, r.rss, r.verdict) for r in rs]
    return head + "".join("| " + " | ".join(c) + " |\n" for c in cells)


# -- shared by every results file -------------------------------------------------------------
def fmt(v: object) -> str:
    """A measured value for the details list: floats grouped, small ones with 3 decimals."""
    if isinstance(v, float):
        return f"{v:,.3f}" if v < 100 else f"{v:,.0f}"
    return str(v)


def brief(values: Mapping[str, object]) -> str:
    return ", ".join(f"{k}={fmt(v)}" for k, v in values.items())


def outcome_line(label: str, o: Outcome) -> str:
    """One workload run in a results file's details: what it measured and what it cost."""
    extra = "".join(f", {k}={fmt(v)}" for k, v in o.extra.items())
    return (
        f"- {label}: {brief(o.result)}{extra}; child wall {o.wall:.1f} s, "
        f"CPU {o.cpu:.1f} s, peak RSS {o.peak_rss_mb:.0f} MB"
    )


def preamble(
    title: str, cmd: str, started: float, sizes: str, repeat: int, machine: Mapping[str, str]
) -> list[str]:
    """A results file's head: the command, when and how long, the sizes, the machine."""
    return [
        f"# {title}",
        "",
        f"Command: `{cmd.strip()}`  ",
        f"Run at {time.strftime('%Y-%m-%d %H:%M:%S %Z', time.localtime(started))}, "
        f"took {time.time() - started:.0f} s. {sizes}"
        + (f"; each workload run {repeat}×, median run shown." if repeat > 1 else "."),
        "",
        "## Machine",
        "",
        "| | |",
        "|---|---|",
        *[f"| {k} | {v} |" for k, v in machine.items()],
        "",
        "## Results",
        "",
    ]
