"""The `riverbed` command as real processes: pipes, signals, worker processes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

RIVERBED = [sys.executable, "-m", "riverbed"]


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    """Where the commands run (app modules are imported from here)."""
    return tmp_path


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return {**os.environ, "RIVERBED_BROKER": f"sqlite:///{tmp_path}/log.db", "COLUMNS": "200"}


def riverbed(
    *args: str, env: dict[str, str], cwd: Path, input: str | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*RIVERBED, *args],
        env=env,
        cwd=cwd,
        input=input,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_console_script_and_module_show_help(env: dict[str, str], workdir: Path) -> None:
    result = riverbed("--help", env=env, cwd=workdir)
    assert result.returncode == 0
    for command in ("run", "produce", "tail", "topics", "groups", "dlq"):
        assert command in result.stdout
    script = Path(sys.executable).parent / "riverbed"
    if script.exists():  # installed into the venv by the package's [project.scripts]
        out = subprocess.run([str(script), "topics", "--help"], capture_output=True, text=True)
        assert out.returncode == 0
        assert "create" in out.stdout


def test_errors_are_one_line_without_traceback(env: dict[str, str], workdir: Path) -> None:
    result = riverbed("tail", "missing", env=env, cwd=workdir)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [result.stderr.strip()]  # exactly one line
    assert "missing" in result.stderr
    assert "Traceback" not in result.stderr
    bad = riverbed("topics", "list", "--broker", "nope://x", env=env, cwd=workdir)
    assert bad.returncode == 1
    assert "Traceback" not in bad.stderr


def test_stdin_pipe_and_a_closed_stdout_pipe(env: dict[str, str], workdir: Path) -> None:
    assert riverbed("topics", "create", "t", env=env, cwd=workdir).returncode == 0
    lines = "".join(json.dumps({"n": i}) + "\n" for i in range(3000))
    assert riverbed("produce", "t", env=env, cwd=workdir, input=lines).returncode == 0
    shell = f"{' '.join(RIVERBED)} tail t | head -n 1"
    out = subprocess.run(
        shell, shell=True, env=env, cwd=workdir, capture_output=True, text=True, timeout=60
    )
    assert json.loads(out.stdout)["data"] == {"n": 0}
    assert "Traceback" not in out.stderr
    assert "BrokenPipe" not in out.stderr


def _read_line(proc: subprocess.Popen[str], timeout: float = 30) -> str:
    assert proc.stdout is not None
    os.set_blocking(proc.stdout.fileno(), False)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if line:
            return line
        time.sleep(0.05)
    raise AssertionError("no line in time")


def test_tail_follow_prints_new_records_until_interrupted(
    env: dict[str, str], workdir: Path
) -> None:
    assert riverbed("topics", "create", "live", "-p", "2", env=env, cwd=workdir).returncode == 0
    follower = subprocess.Popen(
        [*RIVERBED, "tail", "live", "--follow"],
        env=env,
        cwd=workdir,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        time.sleep(1.0)
        for n in (1, 2):
            produced = riverbed("produce", "live", json.dumps({"n": n}), env=env, cwd=workdir)
            assert produced.returncode == 0
            assert json.loads(_read_line(follower))["data"] == {"n": n}
        follower.send_signal(signal.SIGINT)
        _, err = follower.communicate(timeout=30)
        assert follower.returncode == 130
        assert "Traceback" not in err
    finally:
        if follower.poll() is None:
            follower.kill()
            follower.communicate()


APP = """
import pathlib
from riverbed import App

app = App("svc", broker={url!r})
jobs = app.topic("jobs", dict, partitions=4)

@app.consumer(jobs)
def work(job: dict) -> None:
    with open(pathlib.Path(__file__).with_name("done.txt"), "a") as f:
        f.write(f"{{job['n']}}\\n")
"""


@pytest.fixture
def svc(workdir: Path, env: dict[str, str]) -> Path:
    """An app module whose consumer notes each job in done.txt; returns that file."""
    (workdir / "svcapp.py").write_text(textwrap.dedent(APP.format(url=env["RIVERBED_BROKER"])))
    return workdir / "done.txt"


def _wait_for(path: Path, count: int, timeout: float = 60) -> list[int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done = path.read_text().split() if path.exists() else []
        if len(done) >= count:
            return sorted(int(n) for n in done)
        time.sleep(0.1)
    raise AssertionError(f"only {path.read_text() if path.exists() else ''!r} were handled")


@pytest.mark.parametrize("workers", [1, 2])
def test_run_serves_the_app_until_sigterm(
    workers: int, svc: Path, env: dict[str, str], workdir: Path
) -> None:
    proc = subprocess.Popen(
        [*RIVERBED, "run", "svcapp:app", "--workers", str(workers)],
        env=env,
        cwd=workdir,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        lines = "".join(json.dumps({"n": i}) + "\n" for i in range(20))
        deadline = time.monotonic() + 30
        while True:  # the app creates its topics as it starts
            produced = riverbed("produce", "jobs", env=env, cwd=workdir, input=lines)
            if produced.returncode == 0 or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert produced.returncode == 0, produced.stderr
        assert _wait_for(svc, 20) == list(range(20))
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        assert "running on" in err  # the rich log handler, configured by the command
        assert "Traceback" not in err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


def test_run_with_a_bad_target_fails_fast(env: dict[str, str], workdir: Path) -> None:
    result = riverbed("run", "nowhere_at_all:app", "--workers", "3", env=env, cwd=workdir)
    assert result.returncode == 1
    assert "cannot import" in result.stderr


@pytest.mark.parametrize("workers", ["1", "2"])
def test_run_with_a_bad_broker_url_fails_fast(
    workers: str, svc: Path, env: dict[str, str], workdir: Path
) -> None:
    result = riverbed("run", "svcapp:app", "-w", workers, "-b", "nope://x", env=env, cwd=workdir)
    assert result.returncode == 1
    assert "unknown broker scheme 'nope'" in result.stderr
    assert "Traceback" not in result.stderr
