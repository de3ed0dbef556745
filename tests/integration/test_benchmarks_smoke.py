"""The benchmark harness runs end to end (a smoke run; speed is judged in benchmarks/)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_quick_benchmark_run_writes_every_workload_row(tmp_path: Path) -> None:
    out = tmp_path / "quick.md"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks",
            "--quick",
            "--events",
            "20000",
            "--latency-seconds",
            "1",
            "--output",
            str(out),
            "--tmpdir",
            str(tmp_path),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    table = out.read_text()
    for row in (
        "(d) raw sqlite3",
        "(a) append via `topic.publish_many`",
        "(b) produce + consume",
        "(c1) latency",
        "(c2) latency",
        "(e) peak RSS",
    ):
        assert row in table, f"missing row {row!r} in:\n{table}"
    assert "| CPU |" in table


def test_quick_backends_run_compares_riverbed_with_the_raw_client(
    tmp_path: Path, redis_url: str
) -> None:
    """`python -m benchmarks backends --quick` on sqlite and Redis (a server CI has):
    every row is measured, with a ratio, and the run cleans up after itself."""
    out = tmp_path / "backends.md"
    env = {**os.environ, "RIVERBED_BENCH_REDIS": redis_url}
    result = subprocess.run(
        [
            sys.executable, "-m", "benchmarks", "backends", "--quick",
            "--events", "5000", "--only", "sqlite,redis",
            "--output", str(out), "--tmpdir", str(tmp_path),
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    table = out.read_text()
    for backend in ("sqlite", "redis"):
        lines = table.splitlines()
        start = lines.index(f"| **{backend}** | | | | | | |") + 1
        rows = lines[start : start + 3]
        section = "\n".join(rows)
        assert [r.split(" | ")[0] for r in rows] == [
            "| produce",
            "| consume",
            "| `broker.append`, records pre-built",
        ], section
        assert "not run" not in section, section
        assert all("×" in r.split(" | ")[3] for r in rows), section
    assert "removed" in result.stderr, result.stderr[-2000:]
