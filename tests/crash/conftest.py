"""Harness for the crash tests: worker processes, the handled log, producer and observer.

A test gets a `CrashEnv` (fixture `crash_env`) holding one sqlite log in `tmp_path`, the
file where every worker writes one line per handled record (see
`tests/crash/workers/counting.py`), a producer app and an observer broker in the test
process. Workers are real subprocesses; they are killed at teardown if still running,
and when a test fails, every worker's exit code and the tail of its output is printed.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import inspect
import itertools
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

REPO = Path(__file__).resolve().parents[2]
TARGET = "tests.crash.workers.counting:app"
RUN_SCRIPT = Path(__file__).resolve().parent / "workers" / "run.py"
TOPIC = "events"
GROUP = "crash"


# -- worker processes -------------------------------------------------------------------
class Worker:
    """One subprocess started by a test; its output goes to `<name>.out` in tmp."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], logdir: Path) -> None:
        self.name = name
        self.argv = argv
        self.out_path = logdir / f"{name}.out"
        self._out = open(self.out_path, "wb")  # noqa: SIM115 - closed in close()
        self.proc = subprocess.Popen(
            argv, cwd=REPO, env=env, stdout=self._out, stderr=subprocess.STDOUT
        )
        self.started_at = time.monotonic()
        self.signals: list[str] = []

    def __repr__(self) -> str:
        return f"Worker({self.name}, pid={self.pid}, rc={self.poll()})"

    @property
    def pid(self) -> int:
        return self.proc.pid

    def poll(self) -> int | None:
        return self.proc.poll()

    def alive(self) -> bool:
        return self.proc.poll() is None

    def send(self, sig: signal.Signals) -> None:
        if self.alive():
            self.signals.append(sig.name)
            self.proc.send_signal(sig)

    def kill(self) -> None:
        self.send(signal.SIGKILL)

    def term(self) -> None:
        self.send(signal.SIGTERM)

    def wait(self, timeout: float) -> int | None:
        """The exit code, or None if still running after `timeout` seconds."""
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    async def wait_async(self, timeout: float) -> int | None:
        """`wait` without blocking the test's event loop (producer, observers)."""
        return await asyncio.to_thread(self.wait, timeout)

    def tail(self, lines: int = 40) -> str:
        self._out.flush()
        try:
            text = self.out_path.read_bytes().decode("utf-8", "replace")
        except OSError as exc:
            return f"<cannot read {self.out_path}: {exc}>"
        return "\n".join(text.splitlines()[-lines:])

    def describe(self, lines: int = 40) -> str:
        rc = self.poll()
        state = "running" if rc is None else f"exit code {rc}"
        if rc is not None and rc < 0:
            with contextlib.suppress(ValueError):
                state += f" ({signal.Signals(-rc).name})"
        sent = ", ".join(self.signals) or "none"
        tail = self.tail(lines) or "<no output>"
        return (
            f"--- {self.name} pid={self.pid} {state}, signals sent: {sent}\n"
            f"    argv: {' '.join(self.argv)}\n{tail}"
        )

    def close(self) -> None:
        if self.alive():
            self.proc.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(10)
        self._out.close()


# -- the handled log ------------------------------------------------------------------
_LINE = re.compile(rb"(?:([DS]) +(\d+) +(\d+)|(V) +(\S+)) +(\d+) *$")


class HandledLog:
    """Incremental reader of the handled-log file the workers append to.

    `D p o pid` marks record (p, o) handled by process pid; `S p o pid` marks a handler
    start. Per partition a bitmap of handled offsets and its frontier (the first offset
    not handled) are kept, so checking a committed offset against it costs nothing.
    """

    def __init__(self, path: Path, positions: dict[bytes, tuple[int, int]]) -> None:
        self.path = path
        self.positions = positions
        """Event payload -> (partition, offset), for `V <payload> <pid>` lines."""
        self._pos = 0
        self._rest = b""
        self._unresolved: list[bytes] = []
        """Lines naming a payload whose position is not known yet (see CrashEnv)."""
        self._bits: dict[int, bytearray] = {}
        self._frontier: dict[int, int] = {}
        self.done_lines = 0
        self.done_by_pid: Counter[int] = Counter()
        self.starts: Counter[tuple[int, int, int]] = Counter()
        self.finishes: Counter[tuple[int, int, int]] = Counter()
        self.malformed: list[bytes] = []
        self._running: dict[tuple[int, int], set[int]] = {}
        self.overlaps: list[str] = []
        """Records whose handler started in one process while another ran it."""
        self.handlers: dict[tuple[int, int], list[int]] = {}
        """(p, o) -> pids that handled it, in order; kept only when `track_pids`."""
        self.track_pids = False

    def refresh(self) -> int:
        """Read what was appended since the last call; returns the new D lines."""
        try:
            with open(self.path, "rb") as f:
                f.seek(self._pos)
                data = f.read()
        except FileNotFoundError:
            return 0
        self._pos += len(data)
        data = self._rest + data
        cut = data.rfind(b"\n") + 1
        self._rest = data[cut:]  # a line still being written (never, with os.write)
        before = self.done_lines
        waiting, self._unresolved = self._unresolved, []
        for line in [*waiting, *data[:cut].splitlines()]:
            self._parse(line)
        return self.done_lines - before

    def _parse(self, line: bytes) -> None:
        m = _LINE.search(line)
        if m is None or m.start() != 0:
            # Half a line torn by SIGKILL, glued to the next one: that handler never
            # returned (the workers write whole, page-aligned lines, so this is rare).
            self.malformed.append(line)
            if m is None:
                return
        pid = int(m[6])
        if m[4]:  # a handler that got only the event: its payload names the record
            if m[5] not in self.positions:  # its append has not returned yet
                self._unresolved.append(line)
                return
            kind, (p, o) = b"D", self.positions[m[5]]
        else:
            kind, p, o = m[1], int(m[2]), int(m[3])
        running = self._running.setdefault((p, o), set())
        if kind == b"S":
            self.starts[(p, o, pid)] += 1
            if running - {pid}:
                self.overlaps.append(
                    f"record {p}@{o}: started in pid {pid} while pid(s) {sorted(running)} "
                    "still ran its handler"
                )
            running.add(pid)
            return
        running.discard(pid)
        self.finishes[(p, o, pid)] += 1
        self.done_lines += 1
        self.done_by_pid[pid] += 1
        if self.track_pids:
            self.handlers.setdefault((p, o), []).append(pid)
        bits = self._bits.setdefault(p, bytearray())
        if o >= len(bits):
            bits.extend(bytes(max(o + 1 - len(bits), len(bits))))
        bits[o] = 1
        f = self._frontier.get(p, 0)
        while f < len(bits) and bits[f]:
            f += 1
        self._frontier[p] = f

    def handled(self, p: int, o: int) -> bool:
        bits = self._bits.get(p)
        return bits is not None and o < len(bits) and bits[o] == 1

    def frontier(self, p: int) -> int:
        """First offset of partition p not handled yet."""
        return self._frontier.get(p, 0)

    def unique(self) -> int:
        return sum(sum(b) for b in self._bits.values())

    def duplicates(self) -> int:
        return self.done_lines - self.unique()

    def missing(self, p: int, end: int, limit: int = 20) -> list[tuple[int, int]]:
        """Ranges [a, b) of offsets below `end` of partition p never handled."""
        bits = self._bits.get(p, bytearray())
        ranges: list[tuple[int, int]] = []
        o = self.frontier(p)
        while o < end and len(ranges) < limit:
            if o < len(bits) and bits[o]:
                o += 1
                continue
            a = o
            while o < end and not (o < len(bits) and bits[o]):
                o += 1
            ranges.append((a, o))
        return ranges

    def in_flight(self) -> list[tuple[int, int, int]]:
        """Handlers that wrote a start line and no finish line (p, o, pid)."""
        return sorted(k for k, n in self.starts.items() if self.finishes.get(k, 0) < n)


# -- the environment of one test -------------------------------------------------------
class CrashEnv:
    """One sqlite log, its handled log, the workers, a producer and an observer."""

    def __init__(
        self,
        tmp: Path,
        partitions: int,
        url: str | None = None,
        topic: str = TOPIC,
        group: str = GROUP,
    ) -> None:
        self.tmp = tmp
        self.db = tmp / "crash.db"
        self.log_path = tmp / "handled.log"
        self.url = url or f"sqlite:///{self.db}"
        self.topic = topic
        self.group = group
        self.partitions = partitions
        # The test is the only producer, so it knows where each event lands: on a log
        # with dense offsets before the append (checked against the positions the append
        # returns). Elsewhere (Redis, NATS) offsets have gaps, so the handled log counts
        # in ordinals, a record's index in its partition, and `native` maps them back.
        self.dense = self.url.startswith(("sqlite:", "memory:"))
        self.positions: dict[bytes, tuple[int, int]] = {}
        self.native: list[list[int]] = [[] for _ in range(partitions)]
        self._next_offset = [0] * partitions
        self.handled = HandledLog(self.log_path, self.positions)
        self.workers: list[Worker] = []
        self.settings: dict[str, str] = {
            "RB_CRASH_DB": str(self.db),
            "RB_CRASH_BROKER": self.url,
            "RB_CRASH_TOPIC": topic,
            "RB_CRASH_LOG": str(self.log_path),
            "RB_CRASH_PARTITIONS": str(partitions),
            "RB_CRASH_GROUP": group,
        }
        from riverbed.partitioner import Partitioner

        self._partitioner = Partitioner(partitions)
        self._producer_app: Any = None
        self._topic: Any = None
        self._observer: Any = None
        self.produced = 0

    # processes
    def env(self, **overrides: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("RB_CRASH_", "RIVERBED_"))}
        env.update(self.settings)
        env.update(overrides)
        env["PYTHONUNBUFFERED"] = "1"
        return env

    def spawn(self, name: str, **overrides: str) -> Worker:
        """A consumer process: `run_app(load_app(TARGET))`, as `riverbed run` does."""
        if not self.dense and overrides.get("RB_CRASH_HANDLER") != "value":
            raise ValueError("on a log with gaps in its offsets, run the 'value' handler")
        argv = [sys.executable, str(RUN_SCRIPT), TARGET]
        return self._start(Worker(name, argv, self.env(**overrides), self.tmp))

    def spawn_cli(self, name: str, *args: str, **overrides: str) -> Worker:
        """`riverbed run TARGET *args` through the CLI (`python -m riverbed`)."""
        argv = [sys.executable, "-m", "riverbed", "run", TARGET, *args]
        return self._start(Worker(name, argv, self.env(**overrides), self.tmp))

    def _start(self, w: Worker) -> Worker:
        self.workers.append(w)
        return w

    def report(self, lines: int = 30) -> str:
        """Every worker's state and output tail, and where the handled log stands."""
        self.handled.refresh()
        parts = [w.describe(lines) for w in self.workers]
        fronts = {p: self.handled.frontier(p) for p in range(self.partitions)}
        parts.append(
            f"--- handled log: {self.handled.done_lines} lines, {self.handled.unique()} "
            f"unique, {len(self.handled.malformed)} torn, frontier per partition {fronts}, "
            f"produced {self.produced}"
        )
        return "\n".join(parts)

    def assert_alive(self, *workers: Worker) -> None:
        dead = [w for w in workers if not w.alive()]
        if dead:
            raise AssertionError(
                "worker(s) exited unexpectedly: "
                + ", ".join(repr(w) for w in dead)
                + "\n"
                + "\n".join(w.describe() for w in dead)
            )

    # producing and observing from the test process
    async def observer(self) -> Any:
        """A separate `SqliteBroker` handle on the log, for group and offset queries."""
        if self._observer is None:
            from riverbed.brokers import broker_from_url

            self._observer = broker_from_url(self.url)
            await self._observer.start()
        return self._observer

    async def publish(self, count: int, batch: int = 1000, partition: int | None = None) -> None:
        """Append `count` keyed events (payload = its sequence number) in batches; with
        `partition`, only events whose key lands there (murmur2, as the producer does)."""
        if self._topic is None:
            from riverbed import App

            self._producer_app = App("crash-producer", broker=self.url)
            self._topic = self._producer_app.topic(self.topic, partitions=self.partitions)
            await self._producer_app.connect()
        if partition is not None:
            keys = (b"k%d" % i for i in itertools.count())
            values = list(
                itertools.islice((k for k in keys if self._partitioner(k) == partition), count)
            )
            await self._publish(values)
            return
        end = self.produced + count
        while self.produced < end:
            n = min(batch, end - self.produced)
            await self._publish([b"%d" % i for i in range(self.produced, self.produced + n)])

    async def _publish(self, values: list[bytes]) -> None:
        """Publish keyed by the payload; record where each lands (before it can be read,
        where offsets are dense; the handled log waits for the others)."""
        expected = []
        for v in values:
            p = self._partitioner(v)
            expected.append((p, self._next_offset[p]))
            self._next_offset[p] += 1
            if self.dense:
                self.positions[v] = expected[-1]
        got = await self._topic.publish_many(values, key=lambda v: v)
        assert [pos.partition for pos in got] == [p for p, _ in expected]
        if self.dense:
            assert [(pos.partition, pos.offset) for pos in got] == expected
        for v, pos, (p, ordinal) in zip(values, got, expected, strict=True):
            assert not self.native[p] or pos.offset > self.native[p][-1], "offsets went back"
            self.native[p].append(pos.offset)
            self.positions[v] = (p, ordinal)
        self.produced += len(values)

    def ordinal(self, p: int, offset: int) -> int:
        """How many of partition p's records lie below `offset`."""
        return offset if self.dense else bisect.bisect_left(self.native[p], offset)

    async def end_offsets(self) -> dict[int, int]:
        """The consumed topic's end offsets, as ordinals (see `ordinal`)."""
        info = await (await self.observer()).describe_topic(self.topic)
        return {p: self.ordinal(p, end) for p, end in info.end_offsets().items()}

    async def count_records(self, topic: str) -> int:
        """Records stored in `topic` (0 if it does not exist)."""
        from riverbed.brokers.counting import partition_counts
        from riverbed.errors import UnknownTopic

        observer = await self.observer()
        try:
            info = await observer.describe_topic(topic)
        except UnknownTopic:
            return 0
        return sum((await partition_counts(observer, info)).values())

    async def committed(self) -> dict[int, int]:
        """The group's committed offsets on the consumed topic, as ordinals."""
        got = await (await self.observer()).committed(self.group, self.topic)
        return {p: self.ordinal(p, c) for p, c in got.items()}

    async def ownership(self) -> dict[int, set[int]]:
        """Live group members as worker pid -> partitions of `events` it owns."""
        info = await (await self.observer()).describe_group(self.group)
        owned: dict[int, set[int]] = {}
        for m in info.members:
            pid = int(m.client.rpartition("/")[2])
            owned[pid] = {tp.partition for tp in m.partitions if tp.topic == self.topic}
        return owned

    async def wait_until(
        self,
        cond: Callable[[], Any],
        timeout: float,
        what: str,
        diagnostics: Callable[[], str] | None = None,
        interval: float = 0.05,
    ) -> Any:
        """Poll `cond` until truthy; on timeout fail naming `what`, with diagnostics
        (by default every worker's state and output, see `report`)."""
        return await wait_until(cond, timeout, what, diagnostics or self.report, interval)

    def all_handled(self, ends: dict[int, int]) -> bool:
        self.handled.refresh()
        return all(self.handled.frontier(p) >= end for p, end in ends.items())

    def coverage_problems(self, ends: dict[int, int]) -> list[str]:
        """Partitions whose offsets below the end were not all handled, with the gaps."""
        self.handled.refresh()
        return [
            f"partition {p}: end {end}, frontier {self.handled.frontier(p)}, "
            f"never handled: {self.handled.missing(p, end)}"
            for p, end in sorted(ends.items())
            if self.handled.frontier(p) < end
        ]

    def commit_watch(self) -> CommitWatch:
        return CommitWatch(self)

    async def aclose(self) -> None:
        for w in self.workers:
            w.close()
        if self._producer_app is not None:
            await self._producer_app.stop()
        if self._observer is not None:
            await self._observer.aclose()


@dataclass
class CommitWatch:
    """Samples committed offsets and checks them against the handled log."""

    env: Any
    samples: int = 0
    violations: list[str] = field(default_factory=list)
    regressions: list[str] = field(default_factory=list)
    last: dict[int, int] = field(default_factory=dict)

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await self.sample()
            await asyncio.sleep(0.02)

    async def sample(self) -> None:
        """Read the commits, then the handled log, and check the first against it."""
        committed = await self.env.committed()
        log = self.env.handled
        log.refresh()  # strictly after reading the commits
        self.samples += 1
        for p, c in committed.items():
            if c > log.frontier(p) and len(self.violations) < 50:
                self.violations.append(
                    f"sample {self.samples}: partition {p} committed {c} but offsets "
                    f"{log.missing(p, c, 5)} were not handled (frontier {log.frontier(p)})"
                )
            if c < self.last.get(p, 0) and len(self.regressions) < 50:
                self.regressions.append(
                    f"sample {self.samples}: partition {p} committed offset went back "
                    f"from {self.last[p]} to {c}"
                )
            self.last[p] = max(c, self.last.get(p, 0))


async def wait_until(
    cond: Callable[[], Any],
    timeout: float,
    what: str,
    diagnostics: Callable[[], str] = lambda: "",
    interval: float = 0.05,
) -> Any:
    """Poll `cond` (sync or async) until truthy; fail with `what` and diagnostics."""
    deadline = time.monotonic() + timeout
    while True:
        value = cond()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(
                f"timed out after {timeout:.1f}s waiting for {what}\n{diagnostics()}"
            )
        await asyncio.sleep(interval)


# -- fixtures -------------------------------------------------------------------------
@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[Any]:
    report = yield
    if report.when == "call":
        item.stash[_FAILED] = report.failed
    return report


_FAILED = pytest.StashKey[bool]()


@pytest_asyncio.fixture
async def crash_env(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[CrashEnv]:
    param = getattr(request, "param", 4)
    if isinstance(param, int):  # the partition count of a sqlite log
        env = CrashEnv(tmp_path, partitions=param)
    else:  # a server backend's name: its URL, and names no other run uses
        url = request.getfixturevalue(f"{param}_url")
        name = f"crash-{uuid.uuid4().hex[:10]}"
        env = CrashEnv(tmp_path, 4, url=url, topic=name, group=name)
    try:
        yield env
    finally:
        if request.node.stash.get(_FAILED, False):
            print("\n==== crash test diagnostics ====\n" + env.report(60))
        await env.aclose()
