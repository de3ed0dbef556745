"""Running one workload in a child process and reading its result and peak RSS."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent


class WorkloadFailed(RuntimeError):
    pass


@dataclass
class Outcome:
    name: str
    result: dict[str, Any]
    peak_rss_mb: float
    wall: float
    cpu: float
    """User + system CPU seconds of the child (all its threads)."""
    extra: dict[str, Any] = field(default_factory=dict)


class Child:
    """One `python -m benchmarks.child` process."""

    def __init__(self, name: str, params: dict[str, Any], timeout: float) -> None:
        self.name = name
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
        env.pop("RIVERBED_BROKER", None)  # the workload picks its own broker
        self._t0 = time.perf_counter()
        # stderr goes to a file, not a pipe nobody reads while we read stdout: a chatty
        # child cannot block on it, and a failure's traceback ends up in its row.
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115 - closed in finish()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.child", name, json.dumps(params)],
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            text=True,
            cwd=REPO,
            env=env,
        )
        self._timer = threading.Timer(timeout, self.proc.kill)
        self._timer.daemon = True
        self._timer.start()
        self._lines: list[str] = []

    def wait_for(self, word: str) -> None:
        """Read lines until one equals `word` (the child says it is ready)."""
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if line.strip() == word:
                return
            self._lines.append(line)
        self.finish()  # died before it was ready: raises with its exit status
        raise WorkloadFailed(f"{self.name}: ended without saying {word}")

    def finish(self) -> Outcome:
        assert self.proc.stdout is not None
        self._lines.extend(self.proc.stdout)
        _, status, usage = os.wait4(self.proc.pid, 0)
        self.proc.returncode = os.waitstatus_to_exitcode(status)
        self._timer.cancel()
        wall = time.perf_counter() - self._t0
        self._stderr.seek(0)
        errors = self._stderr.read().decode(errors="replace")
        self._stderr.close()
        sys.stderr.write(errors)
        results = [ln for ln in self._lines if ln.startswith("RESULT ")]
        if self.proc.returncode != 0 or not results:
            tail = "".join(self._lines[-20:]) + "\n".join(errors.splitlines()[-20:])
            raise WorkloadFailed(
                f"{self.name}: exit status {self.proc.returncode} after {wall:.1f}s\n{tail}"
            )
        result = json.loads(results[-1][len("RESULT ") :])
        cpu = usage.ru_utime + usage.ru_stime
        return Outcome(self.name, result, usage.ru_maxrss / 1024, wall, cpu)


def run_child(name: str, params: dict[str, Any], timeout: float) -> Outcome:
    return Child(name, params, timeout).finish()
