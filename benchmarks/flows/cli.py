"""`python -m benchmarks flows [--events N] [--repeat K] [--quick] [--output F]`.

Counts one log per key and tumbling minute with a riverbed flow (exactly-once, then
at-least-once) and with a hand-written loop over the same `SqliteBroker`, each in its
own child process, and writes `benchmarks/results/flows.md` (`results/flows-quick.md`
with `--quick`, or `--output`). Exits 1 only when a workload crashed; a missed target
is a FAIL in the table.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.flows import plan, report
from benchmarks.flows.workload import KEYS, PARTITIONS, STEP_MS, WINDOW_S
from benchmarks.machine import describe
from benchmarks.procs import Outcome, WorkloadFailed
from benchmarks.report import log, median_run, preamble

RESULTS = Path(__file__).resolve().parent.parent / "results" / "flows.md"
QUICK_RESULTS = RESULTS.with_name("flows-quick.md")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks flows", description=__doc__)
    add = p.add_argument
    add("--events", type=_positive, help="events in the log (1M; 20k with --quick)")
    add("--quick", action="store_true", help="smoke run: 20k events, results/flows-quick.md")
    add("--batch", type=int, default=1000, help="events per append while filling the log")
    add("--repeat", type=_positive, default=1, help="runs per workload; the median run is reported")
    add("--tmpdir", help="where the logs' temporary directories go")
    add("--timeout", type=float, default=300, help="seconds before a workload gives up")
    add("--output", type=Path, help="the markdown file (default results/flows.md)")
    return p


def _positive(text: str) -> int:
    n = int(text)
    if n < 1:
        raise argparse.ArgumentTypeError(f"{n}: give a number >= 1")
    return n


def _median(runs: list[plan.Result]) -> plan.Result:
    """`median_run`, noting every run's rate on the chosen one."""
    chosen = median_run(runs)
    done = sorted(o.result["rate"] for o in runs if isinstance(o, Outcome))
    if isinstance(chosen, Outcome) and len(runs) > 1:
        chosen.extra["all runs rate"] = ", ".join(f"{rate:,.0f}" for rate in done)
    return chosen


def _failures(rounds: list[dict[str, plan.Result]]) -> list[str]:
    return [
        f"round {i}, `{name}`: {r}"
        for i, per in enumerate(rounds, 1)
        for name, r in per.items()
        if isinstance(r, str)
    ]


def _outcomes(rounds: list[dict[str, plan.Result]], workload: str) -> list[Outcome]:
    return [o for r in rounds if isinstance(o := r[workload], Outcome)]


def _rounds(template: Path, s: plan.Settings, repeat: int) -> list[dict[str, plan.Result]]:
    rounds = []
    for rep in range(repeat):
        log(f"round {rep + 1} of {repeat} ...")
        rounds.append(plan.one_round(template, s, rep))
        for name, r in rounds[-1].items():
            text = r if isinstance(r, str) else f"{r.result['rate']:,.0f} ev/s"
            log(f"  {name}: {text}")
    return rounds


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    s = plan.Settings(
        events=args.events or (20_000 if args.quick else 1_000_000),
        batch=args.batch,
        timeout=args.timeout,
        tmpdir=args.tmpdir,
    )
    started = time.time()
    machine = describe(args.tmpdir or tempfile.gettempdir())
    log(f"filling a log with {s.events:,} events ...")
    try:
        with plan.filled_log(s) as (template, fill):
            rounds = _rounds(template, s, args.repeat)
    except WorkloadFailed as exc:
        log(f"the fill failed, nothing measured: {exc}")
        return 1
    chosen = {w: _median([r[w] for r in rounds]) for w in plan.WORKLOADS}
    text = _render(args, argv, s, machine, fill, rounds, chosen, started)
    output = args.output or (QUICK_RESULTS if args.quick else RESULTS)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(text)
    print(text)
    return 1 if _failures(rounds) else 0


def _render(
    args: argparse.Namespace,
    argv: list[str] | None,
    s: plan.Settings,
    machine: dict[str, str],
    fill: Outcome,
    rounds: list[dict[str, plan.Result]],
    chosen: dict[str, plan.Result],
    started: float,
) -> str:
    cmd = "python -m benchmarks flows " + shlex.join(sys.argv[2:] if argv is None else argv)
    sizes = (
        f"{s.events:,} events on {PARTITIONS} partitions, {len(KEYS)} keys, event times "
        f"{STEP_MS} ms apart, counted per key in `Tumbling({WINDOW_S:g})` windows"
    )
    title = "riverbed flows: a keyed tumbling-window count"
    lines = [
        *preamble(title, cmd, started, sizes, args.repeat, machine),
        "Every rate counts from start-up (opening the log, joining the group) until the "
        "committed offsets reach the log's end, i.e. every count is durable. Ratios are "
        "between runs of this invocation.",
        "",
        report.render(chosen),
        *report.per_round(rounds),
        *report.how(),
        *report.details(fill, {w: _outcomes(rounds, w) for w in plan.WORKLOADS}),
    ]
    if failures := _failures(rounds):
        lines += ["## Failures", "", *[f"- {f}" for f in failures], ""]
    return "\n".join(lines)
