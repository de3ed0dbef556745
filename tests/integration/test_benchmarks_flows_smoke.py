"""`python -m benchmarks flows --quick` runs end to end (speed is judged in benchmarks/)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
EOS = 'riverbed flow, `guarantee="exactly_once"`'
ALO = 'riverbed flow, `guarantee="at_least_once"`'
COST = "exactly-once / at-least-once"
RAW = "raw loop over `SqliteBroker` (same durable work)"
RATE = re.compile(r"^[\d,.]+k ev/s \([\d.]+ µs CPU/event\)$")


def test_quick_flows_run_writes_every_row_with_a_measured_rate(tmp_path: Path) -> None:
    out = tmp_path / "flows.md"
    result = subprocess.run(
        [
            sys.executable, "-m", "benchmarks", "flows", "--quick", "--events", "5000",
            "--output", str(out), "--tmpdir", str(tmp_path),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=20,
        check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    text = out.read_text()
    rows = _rows(text)
    assert list(rows) == [EOS, ALO, COST, RAW], text
    for label in (EOS, ALO, RAW):
        assert rows[label][0] == "sqlite", rows[label]
        assert RATE.match(rows[label][1]), rows[label]  # measured, not "not run: ..."
    assert re.fullmatch(r"[\d.]+× target; [\d.]+× raw", rows[EOS][3]), rows[EOS]
    assert rows[EOS][5] in ("PASS", "**FAIL**"), rows[EOS]
    assert re.match(r"[\d.]+× the events/s", rows[COST][1]), rows[COST]
    assert "| CPU |" in text
    assert text.count("events=5000") == 4, text  # the fill and the three workloads
    # every workload ran in its own temporary directory, removed afterwards
    assert [p.name for p in tmp_path.iterdir()] == ["flows.md"]


def _rows(text: str) -> dict[str, list[str]]:
    """The results table: first cell -> the other cells."""
    table = text.split("| workload | backend |", 1)[1].split("\n\n", 1)[0]
    cells = [ln.strip("| ").split(" | ") for ln in table.splitlines()[2:]]
    return {c[0]: c[1:] for c in cells}
