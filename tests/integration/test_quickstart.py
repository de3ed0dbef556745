"""The README's quickstart is a real file, and it runs."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
QUICKSTART = REPO / "examples" / "quickstart.py"


def run_quickstart(url: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(QUICKSTART)],
        cwd=REPO,
        env=dict(os.environ, RIVERBED_BROKER=url),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_the_readme_shows_the_quickstart_file_verbatim() -> None:
    readme = (REPO / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", readme, flags=re.DOTALL)
    assert QUICKSTART.read_text() in blocks


@pytest.mark.parametrize("scheme", ["sqlite", "memory"])
def test_quickstart_greets(scheme: str, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/quickstart.db" if scheme == "sqlite" else "memory://"
    proc = run_quickstart(url)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout == "hello, world!\n"


def test_quickstart_resumes_where_the_group_left_off(tmp_path: Path) -> None:
    """On the durable log the second run only sees its own greeting: offsets were committed."""
    url = f"sqlite:///{tmp_path}/quickstart.db"
    for _ in range(2):
        proc = run_quickstart(url)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert proc.stdout == "hello, world!\n"
