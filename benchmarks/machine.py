"""The machine a result was measured on: CPU, cores, RAM, disk, versions, commit."""

from __future__ import annotations

import os
import platform
import sqlite3
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _ram() -> str:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    except OSError:
        pass
    return "unknown"


def _git(*args: str) -> str:
    try:
        out = subprocess.run(
            ["git", *args], cwd=REPO, capture_output=True, text=True, timeout=10, check=True
        )
    except (OSError, subprocess.SubprocessError):
        return ""
    return out.stdout.strip()


def _commit() -> str:
    sha = _git("rev-parse", "--short=12", "HEAD") or "unknown"
    dirty = _git("status", "--porcelain", "--untracked-files=no", "--", "src")
    untracked = _git("status", "--porcelain", "--", "src")
    if dirty or untracked:
        return f"{sha} + uncommitted changes in src/"
    return sha


def _filesystem(path: str) -> str:
    try:
        out = (
            subprocess.run(
                ["df", "-T", path], capture_output=True, text=True, timeout=10, check=True
            )
            .stdout.splitlines()[-1]
            .split()
        )
        return f"{out[1]} ({out[0]})"
    except (OSError, subprocess.SubprocessError, IndexError):
        return "unknown"


def _load() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3]) + " (1/5/15 min)"
    except OSError:
        return "unknown"


def describe(tmpdir: str) -> dict[str, str]:
    return {
        "CPU": _cpu_model(),
        "cores": f"{os.cpu_count()} logical",
        "RAM": _ram(),
        "OS": f"{platform.system()} {platform.release()}",
        "Python": f"{platform.python_implementation()} {sys.version.split()[0]}",
        "SQLite": sqlite3.sqlite_version,
        "msgspec": version("msgspec"),
        "riverbed commit": _commit(),
        "temp dir": f"{tmpdir} on {_filesystem(tmpdir)}",
        "load average at start": _load(),
    }
