"""A windowed flow through SIGKILLs and handovers: the final table is exact.

The worker (`workers/windowed.py`) sums purchase amounts per customer in tumbling
one-minute windows, on the sqlite log, where each commit stores the changelog of the
state, and the input offsets it reaches, in one transaction. The test process produces
the events, so it knows the reference table: per (customer, window) the sum of the
amounts. After the chaos it restores the table from the changelog in an App of its own
(the same flow declared on the same log) and compares every key, window and value: an
event lost or counted twice shows as a window whose sum is off by its amount.

Event times are `base + 10 ms * i`, increasing in every partition, so no record comes
late by event time. Windows of an idle partition also close by wall-clock time (their
watermark moves on while no record comes): the grace of ten minutes is more than any
pause of the producer, so that never makes a record late either.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import signal
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import pytest_asyncio

from riverbed import App, TopicPartition, WindowValue
from riverbed.testing import MockClock

from .conftest import RUN_SCRIPT, CrashEnv, Worker
from .workers import windowed
from .workers.windowed import Purchase

TARGET = "tests.crash.workers.windowed:app"
CUSTOMERS = 200
STEP_MS = 10
"""Event time between consecutive events."""
GRACE_MS = round(windowed.GRACE * 1000)
WINDOW_MS = round(windowed.WINDOW * 1000)
ALL = set(range(windowed.PARTITIONS))


class Feed:
    """Produces purchases from the test process and keeps the reference table."""

    def __init__(self, app: App, seed: int) -> None:
        self.app = app
        self.topic, self.sums = windowed.declare(app)
        self.rng = random.Random(seed)
        # A minute boundary: the first window is a whole one.
        self.base = time.time_ns() // 1_000_000 // WINDOW_MS * WINDOW_MS
        self.produced = 0
        self.reference: Counter[tuple[str, int]] = Counter()
        self.last_ts: dict[int, int] = {}
        """Partition -> the event time of its last event."""
        self.partition_of: dict[str, int] = {}
        """Customer -> its partition, as the producer chose it."""

    async def publish(self, count: int) -> None:
        """Append `count` purchases in one batch, their event times chosen here."""
        rng, first = self.rng, self.produced
        events = [
            Purchase(customer=f"c{rng.randrange(CUSTOMERS):03d}", amount=rng.randrange(1, 1000))
            for _ in range(count)
        ]
        records = self.app.producer.build_many(self.topic, events)
        for i, (rec, e) in enumerate(zip(records, events, strict=True), start=first):
            rec.timestamp = ts = self.base + i * STEP_MS
            self.reference[(e.customer, ts - ts % WINDOW_MS)] += e.amount
            self.last_ts[rec.partition] = ts
            self.partition_of[e.customer] = rec.partition
        await self.app.broker.append(self.topic.name, records)
        self.produced += count

    def expected(self) -> dict[str, list[tuple[int, int, int]]]:
        """Customer -> (start, end, sum) of each of its windows, by start."""
        out: dict[str, list[tuple[int, int, int]]] = {}
        for (customer, start), total in sorted(self.reference.items()):
            out.setdefault(customer, []).append((start, start + WINDOW_MS, total))
        return out


@pytest_asyncio.fixture
async def feed(crash_env: CrashEnv) -> AsyncIterator[Feed]:
    """A Feed on the test's log; the env watches the flow's group (not the harness's)."""
    crash_env.group = windowed.GROUP
    seed = int(os.environ.get("RB_CRASH_SEED") or random.randrange(1 << 30))
    print(f"\nseed {seed} (rerun with RB_CRASH_SEED={seed})")
    # A clock that stands still: restoring here must not move any watermark.
    app = App(windowed.APP, broker=crash_env.url, clock=MockClock(0))
    f = Feed(app, seed)
    await app.connect()
    try:
        yield f
    finally:
        await app.stop()


def spawn(env: CrashEnv, name: str) -> Worker:
    """A worker process running the windowed flow (`run_app(load_app(TARGET))`)."""
    argv = [sys.executable, str(RUN_SCRIPT), TARGET]
    w = Worker(name, argv, env.env(), env.tmp)
    env.workers.append(w)  # the harness kills it at teardown and reports on failure
    return w


async def wait_commits(
    env: CrashEnv, workers: list[Worker], what: str, cond: Callable[[dict[int, int]], bool]
) -> None:
    """Wait until the group's committed offsets satisfy `cond` (the workers process)."""

    async def reached() -> bool:
        env.assert_alive(*workers)
        return cond(await env.committed())

    await env.wait_until(reached, 60, f"commits to {what}", interval=0.005)


async def sigkill(w: Worker) -> None:
    w.kill()
    rc = await w.wait_async(10)
    assert rc == -signal.SIGKILL, f"SIGKILL did not end {w}:\n{w.describe()}"


async def finish(env: CrashEnv, feed: Feed, workers: list[Worker]) -> dict[int, int]:
    """Wait for the commits to reach the log's end, then SIGTERM the workers."""
    ends = await env.end_offsets()
    assert sum(ends.values()) == feed.produced

    async def done() -> bool:
        env.assert_alive(*workers)
        return await env.committed() == ends

    await env.wait_until(done, 60, f"commits to reach the end offsets {ends}")
    for w in workers:
        w.term()
    for w in workers:
        rc = await w.wait_async(15)
        assert rc == 0, f"SIGTERM: exit code {rc}\n{w.describe()}"
    return ends


async def check_table(env: CrashEnv, feed: Feed, ends: dict[int, int], wall_ms: int) -> None:
    """Restore the table in the test process and compare it with the reference."""
    app = feed.app
    await app.start()
    member = app.members[0]
    await env.wait_until(lambda: len(member.assigned) == len(ALL), 20, "the restore here")
    table = feed.sums.table.snapshot()
    stats = app.statistics()[0]
    committed = await env.committed()
    late = await env.count_records(f"{windowed.GROUP}.late")
    dead = await env.count_records(f"{windowed.TOPIC}.dlq")
    published = await read_closed(env)
    got = {k: [(w.start, w.end, w.value) for w in ws] for k, ws in table.items()}
    want = feed.expected()
    print(
        f"{feed.produced} events, {sum(map(len, want.values()))} windows of {len(want)} "
        f"keys, {len(published)} published as closed"
    )
    assert (late, dead) == (0, 0), f"{late} late records, {dead} dead letters"
    assert committed == ends, f"committed {committed} != end offsets {ends}"
    assert stats.handled == 0, f"the restored flow found {stats.handled} records to process"
    problems = table_diff(want, got)
    assert not problems, "the final table differs from the reference:\n" + "\n".join(problems)
    check_final_flags(feed, table, wall_ms)
    closed = {(k, w.start): w.value for k, ws in table.items() for w in ws if w.final}
    problems = closed_diff(closed, published)
    assert not problems, f"the closed windows published to {windowed.CLOSED!r} differ " + (
        "from the final windows of the table:\n" + "\n".join(problems)
    )


def table_diff(
    want: dict[str, list[tuple[int, int, int]]], got: dict[str, list[tuple[int, int, Any]]]
) -> list[str]:
    """Every window whose (start, end, sum) differs, with got - want (loss < 0 < double)."""
    problems = [f"key {k}: missing from the table" for k in sorted(want.keys() - got.keys())]
    problems += [f"key {k}: not in the reference" for k in sorted(got.keys() - want.keys())]
    for key in sorted(want.keys() & got.keys()):
        w = {start: (end, total) for start, end, total in want[key]}
        g = {start: (end, total) for start, end, total in got[key]}
        for start in sorted(w.keys() | g.keys()):
            if w.get(start) != g.get(start):
                delta = (g.get(start, (0, 0))[1] or 0) - (w.get(start, (0, 0))[1] or 0)
                problems.append(
                    f"key {key} window {start}: want {w.get(start)}, got {g.get(start)} "
                    f"(got - want = {delta})"
                )
        if [s for s, _, _ in got[key]] != sorted(g):
            problems.append(f"key {key}: windows out of order {[s for s, _, _ in got[key]]}")
    return problems[:40] + ([f"... {len(problems) - 40} more"] if len(problems) > 40 else [])


async def read_closed(env: CrashEnv) -> list[dict[str, Any]]:
    """Every record of the closed-windows topic, decoded."""
    observer = await env.observer()
    positions = {TopicPartition(windowed.CLOSED, p): 0 for p in ALL}
    out: list[dict[str, Any]] = []
    while batch := await observer.fetch(positions, max_records=10_000):
        for rec in batch:
            out.append(json.loads(rec.value))
            positions[TopicPartition(rec.topic, rec.partition)] = rec.offset + 1
    return out


def closed_diff(closed: dict[tuple[str, int], Any], published: list[dict[str, Any]]) -> list[str]:
    """Each final window of the table must be published once, with its value, and
    nothing else: a crash between publishing and committing would publish it twice."""
    seen = Counter((c["key"], c["start"]) for c in published)
    problems = [f"window {w} published {n} times" for w, n in sorted(seen.items()) if n > 1]
    problems += [f"window {w} closed but never published" for w in sorted(closed.keys() - seen)]
    problems += [f"window {w} published but not closed" for w in sorted(seen.keys() - closed)]
    for c in published:
        w = (c["key"], c["start"])
        if w in closed and (c["value"], c["final"]) != (closed[w], True):
            problems.append(f"window {w} published as {c}, table says {closed[w]}")
    return problems[:40] + ([f"... {len(problems) - 40} more"] if len(problems) > 40 else [])


def check_final_flags(feed: Feed, table: dict[str, list[WindowValue]], wall_ms: int) -> None:
    """A window is final once its partition's watermark passed end + grace. The
    watermark is the last event time plus, at most, the idle wall time of the workers:
    windows the events alone closed must be final, windows past that bound must not."""
    for key, windows in table.items():
        last = feed.last_ts[feed.partition_of[key]]
        for w in windows:
            if w.end + GRACE_MS <= last:
                assert w.final, f"key {key}: {w} was closed by event time, yet is not final"
            if w.end + GRACE_MS > last + wall_ms:
                assert not w.final, f"key {key}: {w} is final before its close time"


# -- the tests ------------------------------------------------------------------------
N_EVENTS = 500_000
KILLS = 20
EARLY = 0.25
"""The chance of an extra kill during start-up before each of the KILLS."""
BATCH = 2_000


@pytest.mark.slow
@pytest.mark.timeout(150)
async def test_windowed_sums_are_exact_through_sigkills(crash_env: CrashEnv, feed: Feed) -> None:
    """500k events are produced while one worker is SIGKILLed 20 times, each time
    after its commits moved, and restarted (now and then also killed once more while
    starting); the table equals the reference exactly."""
    env = crash_env
    env.settings.update(RB_CRASH_SESSION="1.0", RB_CRASH_HEARTBEAT="0.2")
    rng = random.Random(feed.rng.random())
    started = time.monotonic()
    kills = 0
    extra = 0
    """Events released beyond the share: an early-killed worker may have processed the
    whole share before its kill, and the next one must still find new events."""

    async def produce() -> None:
        # Paced by the kills: before kill i at most (i+1)/(kills+1) of the events exist,
        # so every worker has new events to process and the last share follows the last.
        # Small batches at about the pace of the kill cycles keep the workers following
        # a live stream, so a kill finds stored records not committed yet.
        while feed.produced < N_EVENTS:
            share = N_EVENTS * (kills + 1) // (KILLS + 1)
            allowed = N_EVENTS if kills >= KILLS else min(N_EVENTS, share + extra)
            if feed.produced >= allowed:
                await asyncio.sleep(0.02)
                continue
            await feed.publish(min(BATCH // 4, allowed - feed.produced))
            await asyncio.sleep(0.02)

    producer = asyncio.create_task(produce())
    backlogs: list[int] = []
    try:
        for i in range(KILLS):
            if rng.random() < EARLY:
                await _kill_early(env, spawn(env, f"worker-{i:02d}-early"), rng)
                extra += BATCH // 4
            backlogs.append(await _kill_after_progress(env, spawn(env, f"worker-{i:02d}"), rng))
            kills += 1
        final = spawn(env, "worker-final")
        await asyncio.wait_for(producer, 60)
        ends = await finish(env, feed, [final])
    finally:
        producer.cancel()
        await asyncio.gather(producer, return_exceptions=True)
    wall_ms = round((time.monotonic() - started) * 1000)
    print(f"{KILLS} SIGKILLs, all events committed after {wall_ms / 1000:.1f}s")
    await check_table(env, feed, ends, wall_ms)
    # A kill with a backlog hit a worker between fetch, processing and commit.
    mid_stream = sum(b > 0 for b in backlogs)
    print(f"{mid_stream} of {KILLS} kills left stored records uncommitted")
    assert mid_stream >= KILLS // 2, f"only {mid_stream} kills left uncommitted records"


async def _kill_early(env: CrashEnv, w: Worker, rng: random.Random) -> None:
    """SIGKILL `w` while it starts: importing, joining, waiting for the dead worker's
    partitions, restoring the table or on its first batch."""
    pause = rng.uniform(0.05, 1.5)
    await asyncio.sleep(pause)
    env.assert_alive(w)
    await sigkill(w)
    print(f"{w.name}: killed {pause:.3f}s after its start")


async def _kill_after_progress(env: CrashEnv, w: Worker, rng: random.Random) -> int:
    """SIGKILL `w` a random moment after its first commit; returns how many stored
    records were not committed then."""
    before = await env.committed()
    total = sum(before.values())
    await wait_commits(env, [w], f"pass {total}", lambda c: sum(c.values()) > total)
    pause = rng.uniform(0, 0.3)
    await asyncio.sleep(pause)
    env.assert_alive(w)
    committed = await env.committed()
    backlog = sum((await env.end_offsets()).values()) - sum(committed.values())
    await sigkill(w)
    went_back = {p: c for p, c in committed.items() if c < before.get(p, 0)}
    assert not went_back, f"commits went back from {before} to {committed}"
    print(
        f"{w.name}: killed {pause:.3f}s after its first commit, with {backlog} "
        f"stored records not committed ({sum(committed.values())} committed)"
    )
    return backlog


HANDOVER_EVENTS = 200_000


@pytest.mark.slow
@pytest.mark.timeout(90)
async def test_windowed_state_moves_with_its_partitions(crash_env: CrashEnv, feed: Feed) -> None:
    """Two workers split the partitions; one is SIGKILLed mid-stream and the survivor
    takes its partitions over, then a third joins and is handed some by the survivor.
    Each moved partition had state before its move and records after it, and the
    final table equals the reference exactly."""
    env = crash_env
    env.settings.update(RB_CRASH_SESSION="2.0", RB_CRASH_HEARTBEAT="0.4")
    rng = random.Random(feed.rng.random())
    started = time.monotonic()
    await feed.publish(BATCH)
    a, b = spawn(env, "worker-a"), spawn(env, "worker-b")
    owned = await wait_owners(env, [a, b])
    async with producing(feed, HANDOVER_EVENTS * 4 // 10):
        mine = owned[a.pid]
        await wait_commits(env, [a, b], f"move in {mine}", lambda c: all(c.get(p) for p in mine))
        await asyncio.sleep(rng.uniform(0, 0.3))
        await sigkill(a)
        killed_at = await env.committed()
    async with producing(feed, HANDOVER_EVENTS * 7 // 10):
        await wait_owners(env, [b])
    c = spawn(env, "worker-c")
    async with producing(feed, HANDOVER_EVENTS * 85 // 100):
        given = (await wait_owners(env, [b, c]))[c.pid]
        given_at = await env.committed()
    async with producing(feed, HANDOVER_EVENTS):
        pass
    ends = await finish(env, feed, [b, c])
    print(f"a owned {owned[a.pid]} (killed at {killed_at}), c was given {given} at {given_at}")
    for p in owned[a.pid]:
        assert 0 < killed_at.get(p, 0) < ends[p], f"partition {p} moved without state or work"
    for p in given:
        assert 0 < given_at.get(p, 0) < ends[p], f"partition {p} moved without state or work"
    await check_table(env, feed, ends, round((time.monotonic() - started) * 1000))


async def wait_owners(env: CrashEnv, workers: list[Worker]) -> dict[int, set[int]]:
    """Wait until exactly `workers` are the group's members and own every partition,
    each some; returns pid -> partitions."""
    pids = {w.pid for w in workers}
    seen: dict[str, dict[int, set[int]]] = {}

    async def split() -> bool:
        env.assert_alive(*workers)
        seen["owned"] = owned = await env.ownership()
        every = [p for parts in owned.values() for p in parts]
        return set(owned) == pids and all(owned.values()) and sorted(every) == sorted(ALL)

    await env.wait_until(
        split,
        20,
        f"partitions split among pids {sorted(pids)}",
        lambda: f"ownership now: {seen.get('owned')}\n{env.report()}",
    )
    return seen["owned"]


@contextlib.asynccontextmanager
async def producing(feed: Feed, until: int) -> AsyncIterator[None]:
    """Produce events up to `until` in the background while the block runs, and
    finish producing them when it ends."""

    async def produce() -> None:
        while feed.produced < until:
            await feed.publish(min(BATCH // 2, until - feed.produced))
            await asyncio.sleep(0.02)

    task = asyncio.create_task(produce())
    try:
        yield
        await asyncio.wait_for(asyncio.shield(task), 60)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
