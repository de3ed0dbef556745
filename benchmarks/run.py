"""`python -m benchmarks [--events N] [--quick]`: run the workloads, write the table.

Also runnable as `python benchmarks/run.py`. Writes `benchmarks/results/latest.md`
(`results/quick.md` with `--quick`, or `--output`) and prints it. Exits 1 if a
workload crashed; a missed target is a FAIL in the table, not an exit status.
"""

from __future__ import annotations

import argparse
import importlib.util
import shlex
import sys
import tempfile
import time
from pathlib import Path

if __package__ in (None, ""):  # `python benchmarks/run.py`
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import plan, report
from benchmarks.machine import describe
from benchmarks.procs import Outcome, WorkloadFailed

RESULTS = Path(__file__).resolve().parent / "results" / "latest.md"
QUICK_RESULTS = RESULTS.with_name("quick.md")  # a smoke run never replaces latest.md


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    add = p.add_argument
    add("--events", type=int, help="events per throughput workload (1M; 100k with --quick)")
    add("--quick", action="store_true", help="smoke run: 100k events, 2 s latency runs")
    add("--batch", type=int, default=1000, help="events per publish / insert batch")
    add("--backend", choices=["sqlite", "memory", "all"], help="default: sqlite (else memory)")
    add("--rate", type=float, default=10_000, help="paced rate of the latency workloads")
    add("--latency-seconds", type=float, help="length of each latency run (10 s; 2 s --quick)")
    add("--only", nargs="+", choices=[*plan.WORKLOADS, "raw"], help="run only these workloads")
    add("--tmpdir", help="where the temporary directories go (default: the system's)")
    add("--repeat", type=int, default=1, help="runs per workload; the median run is reported")
    add("--timeout", type=float, default=600, help="seconds before a workload is killed")
    add("--output", type=Path, help="the markdown file (results/latest.md; quick.md if --quick)")
    return p


def _backends(choice: str | None) -> tuple[list[str], str]:
    have_sqlite = importlib.util.find_spec("riverbed.brokers.sqlite") is not None
    if choice == "all":
        return (["sqlite", "memory"] if have_sqlite else ["memory"]), ""
    if choice == "sqlite" and not have_sqlite:
        raise SystemExit("riverbed.brokers.sqlite does not exist yet; use --backend memory")
    if choice:
        return [choice], ""
    if have_sqlite:
        return ["sqlite"], ""
    return ["memory"], "riverbed.brokers.sqlite is missing: ran on the memory backend instead."


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    events = args.events or (100_000 if args.quick else 1_000_000)
    seconds = args.latency_seconds or (2.0 if args.quick else 10.0)
    settings = plan.Settings(
        events=events,
        batch=args.batch,
        rate=args.rate,
        latency_events=max(1, int(args.rate * seconds)),
        timeout=args.timeout,
        tmpdir=args.tmpdir,
    )
    backends, note = _backends(args.backend)
    wanted = args.only or ["raw", *plan.WORKLOADS]
    started = time.time()
    machine = describe(args.tmpdir or tempfile.gettempdir())
    raw: dict[str, Outcome] = {}
    outs: dict[tuple[str, str], Outcome] = {}
    failures: list[str] = []
    if "raw" in wanted:
        for columns in ("envelope", "bare"):
            _log(f"raw sqlite3 executemany, {columns} columns ...")
            runs = [plan.raw(settings, columns) for _ in range(args.repeat)]
            raw[columns] = _median(runs, "rate")
            _log(f"  {[round(r.result['rate']) for r in runs]} rows/s")
    for backend in backends:
        for name, fn in plan.WORKLOADS.items():
            if name not in wanted or (name in plan.MULTI_PROCESS and backend == "memory"):
                continue
            _log(f"{name} on {backend} ...")
            runs = []
            for _ in range(args.repeat):
                try:
                    runs.append(o := fn(settings, backend))
                except WorkloadFailed as exc:
                    failures.append(f"{name} on {backend}: {exc}")
                    _log(f"  FAILED: {exc}")
                    continue
                _log(
                    f"  {report.brief(o.result)}  peak RSS {o.peak_rss_mb:.0f} MB  "
                    f"cpu {o.cpu:.1f}s  wall {o.wall:.1f}s"
                )
            if runs:
                outs[(name, backend)] = _median(runs, "p99_ms" if "latency" in name else "rate")
    text = render(args, argv, settings, machine, backends, raw, outs, failures, note, started)
    output = args.output or (QUICK_RESULTS if args.quick else RESULTS)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(text)
    print(text)
    return 1 if failures else 0


def _median(runs: list[Outcome], key: str) -> Outcome:
    """The run whose `key` is the median (the lower middle one for an even count)."""
    ordered = sorted(runs, key=lambda o: o.result[key])
    chosen = ordered[(len(ordered) - 1) // 2]
    if len(runs) > 1:
        chosen.extra["all runs " + key] = ", ".join(report.fmt(o.result[key]) for o in runs)
    return chosen


def render(
    args: argparse.Namespace,
    argv: list[str] | None,
    s: plan.Settings,
    machine: dict[str, str],
    backends: list[str],
    raw: dict[str, Outcome],
    outs: dict[tuple[str, str], Outcome],
    failures: list[str],
    note: str,
    started: float,
) -> str:
    cmd = "python -m benchmarks " + shlex.join(sys.argv[1:] if argv is None else argv)
    rows = report.rows(outs, raw, s.events)
    for backend in backends:
        if ("end_to_end", backend) in outs:
            rows.append(report.rss_row(outs[("end_to_end", backend)], backend, s.events))
    sizes = (
        f"{s.events:,} events per throughput workload, batches of {s.batch}, "
        f"latency runs of {s.latency_events:,} events at {s.rate:,.0f} ev/s"
    )
    lines = [
        *report.preamble("riverbed benchmark results", cmd, started, sizes, args.repeat, machine),
        report.table(rows),
    ]
    if note:
        lines += [f"Note: {note}", ""]
    lines += _details(outs)
    if failures:
        lines += ["## Failures", "", *[f"```\n{f}\n```" for f in failures], ""]
    return "\n".join(lines)


def _details(outs: dict[tuple[str, str], Outcome]) -> list[str]:
    lines = [
        report.outcome_line(f"`{name}` on {backend}", o) for (name, backend), o in outs.items()
    ]
    return ["## Details", "", *lines, ""]


if __name__ == "__main__":
    raise SystemExit(main())
