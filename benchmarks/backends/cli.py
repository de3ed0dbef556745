"""`python -m benchmarks backends [--events N] [--quick] [--only kafka,redis]`.

Runs the produce and consume workloads on every backend through riverbed and through
the backend's raw client, and writes `benchmarks/results/backends.md`
(`results/backends-quick.md` with `--quick`, or `--output`). Exits 1 only when a raw
baseline or the harness itself failed; a riverbed row that could not run says why in
the table, and a missed target is a FAIL there.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.backends import cleanup, plan, report, servers
from benchmarks.machine import describe
from benchmarks.procs import Outcome
from benchmarks.report import log, median_run, preamble

BACKENDS = ("sqlite", "kafka", "nats", "redis")
RESULTS = Path(__file__).resolve().parent.parent / "results" / "backends.md"
QUICK_RESULTS = RESULTS.with_name("backends-quick.md")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks backends", description=__doc__)
    add = p.add_argument
    add("--events", type=int, help="events per workload (200k; 20k with --quick)")
    add("--quick", action="store_true", help="smoke run: 20k events, results/backends-quick.md")
    add("--batch", type=int, default=1000, help="events per publish batch")
    add("--only", type=_backend_list, help="comma-separated subset of " + ",".join(BACKENDS))
    add("--repeat", type=int, default=1, help="runs per workload; the median run is reported")
    add("--tmpdir", help="where sqlite's temporary directories go")
    add("--timeout", type=float, default=300, help="seconds before a workload is killed")
    add("--output", type=Path, help="the markdown file (default results/backends.md)")
    return p


def _backend_list(text: str) -> list[str]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in BACKENDS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"unknown backend(s) {unknown}; pick from {BACKENDS}")
    return names


def _run_backend(
    backend: str, url: str | servers.Unavailable, s: plan.Settings, repeat: int, run_id: str
) -> tuple[dict[str, plan.Result], dict[str, list[Outcome]]]:
    if isinstance(url, servers.Unavailable):
        return dict.fromkeys(plan.WORKLOADS, f"not run: {url}"), {}
    made = cleanup.Made(run_id)
    rounds = []
    try:
        for rep in range(repeat):
            log(f"{backend}: round {rep + 1} of {repeat} ...")
            if backend == "sqlite":
                rounds.append(plan.sqlite_round(s))
            else:
                rounds.append(plan.one_round(backend, url, s, made, rep))
            for name, r in rounds[-1].items():
                log(f"  {name}: " + (r if isinstance(r, str) else f"{r.result['rate']:,.0f} ev/s"))
    finally:
        if backend != "sqlite":
            log(f"  removed {cleanup.remove(backend, url, made)} streams/keys/topics")
    chosen = {w: median_run([r[w] for r in rounds]) for w in plan.WORKLOADS}
    every = {w: [r[w] for r in rounds if isinstance(r[w], Outcome)] for w in plan.WORKLOADS}
    return chosen, {w: [o for o in runs if isinstance(o, Outcome)] for w, runs in every.items()}


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    backends = args.only or list(BACKENDS)
    s = plan.Settings(
        events=args.events or (20_000 if args.quick else 200_000),
        batch=args.batch,
        timeout=args.timeout,
        tmpdir=args.tmpdir,
    )
    started, run_id = time.time(), os.urandom(4).hex()
    machine = describe(args.tmpdir or tempfile.gettempdir())
    results: dict[str, dict[str, plan.Result]] = {}
    every: dict[str, dict[str, list[Outcome]]] = {}
    with servers.server_urls(backends) as urls:
        for backend in backends:
            url = urls.get(backend, "")
            results[backend], every[backend] = _run_backend(backend, url, s, args.repeat, run_id)
            machine[f"{backend} server"] = str(url) if backend != "sqlite" else "embedded"
    text = _render(args, argv, s, machine, results, every, started)
    output = args.output or (QUICK_RESULTS if args.quick else RESULTS)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(text)
    print(text)
    raw_failed = [
        b for b, r in results.items() if any(isinstance(r[w], str) for w in ("raw_produce",))
    ]
    unavailable = [b for b, u in urls.items() if isinstance(u, servers.Unavailable)]
    return 1 if set(raw_failed) - set(unavailable) else 0


def _render(
    args: argparse.Namespace,
    argv: list[str] | None,
    s: plan.Settings,
    machine: dict[str, str],
    results: dict[str, dict[str, plan.Result]],
    every: dict[str, dict[str, list[Outcome]]],
    started: float,
) -> str:
    cmd = "python -m benchmarks backends " + shlex.join(sys.argv[2:] if argv is None else argv)
    sizes = f"{s.events:,} events per workload, batches of {s.batch}"
    lines = [
        *preamble(
            "riverbed on every backend against the raw clients",
            cmd,
            started,
            sizes,
            args.repeat,
            machine,
        ),
        "Ratio = riverbed's throughput / the raw client's, measured in the same run. Consume "
        "rates count from the first event handled to the last (start-up, i.e. connecting, "
        "joining the group and the first fetch, is shown beside it).",
        "",
        report.table(results),
        *report.how(list(results)),
        *report.details(every),
    ]
    return "\n".join(lines)
