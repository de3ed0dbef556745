"""The benchmark harness runs end to end (a smoke run; speed is judged in benchmarks/)."""

from __future__ import annotations

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
