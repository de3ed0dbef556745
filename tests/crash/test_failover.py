"""Two worker processes in one group: they split the partitions, and when one is
SIGKILLed the survivor (or the supervisor's replacement) takes its partitions over.

Ownership is read from the group itself (`describe_group` through a separate broker
handle); which process handled which record comes from the handled log, where every
line carries the pid of the worker that wrote it.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import os
import random
import signal
import time
from collections.abc import AsyncIterator
from typing import Any

import psutil
import pytest

SESSION = 2.0
# Takeover = the dead member's session timeout, then the survivor's next heartbeat
# (0.4 s) expires it and picks its partitions up; the margin covers a loaded machine.
TAKEOVER_BOUND = SESSION + 3.0
ALL = {0, 1, 2, 3}


def _split(owned: dict[int, set[int]], pids: set[int]) -> bool:
    """Exactly `pids` are members; each owns some partitions, disjoint, together all."""
    if set(owned) != pids or any(not parts for parts in owned.values()):
        return False
    every = [p for parts in owned.values() for p in parts]
    return len(every) == len(set(every)) and set(every) == ALL


async def _wait_split(env: Any, pids: set[int], timeout: float, what: str) -> dict[int, set[int]]:
    last: dict[str, Any] = {}

    async def split() -> bool:
        last["owned"] = owned = await env.ownership()
        return _split(owned, pids)

    await env.wait_until(
        split, timeout, what, lambda: f"ownership now: {last.get('owned')}\n{env.report()}"
    )
    owned: dict[int, set[int]] = last["owned"]
    return owned


async def _wait_all_handled(env: Any, workers: list[Any], timeout: float) -> dict[int, int]:
    ends = await env.end_offsets()

    def done() -> bool:
        env.assert_alive(*workers)
        return env.all_handled(ends)

    await env.wait_until(done, timeout, f"every one of {sum(ends.values())} events handled")
    return ends


async def _stop_and_check_commits(env: Any, ends: dict[int, int], *workers: Any) -> None:
    """SIGTERM the workers: each must exit 0 promptly, with the commits at the log's end."""
    t0 = time.monotonic()
    for w in workers:
        w.term()
    for w in workers:
        rc = await w.wait_async(20)
        took = time.monotonic() - t0
        assert rc == 0, f"SIGTERM: exit code {rc} after {took:.1f}s\n{w.describe()}"
        assert took < 10, f"SIGTERM: clean exit took {took:.1f}s\n{w.describe()}"
    committed = await env.committed()
    assert committed == ends, f"after a clean stop committed {committed} != ends {ends}"
    problems = env.coverage_problems(ends)
    assert not problems, "events never handled:\n" + "\n".join(problems)


@contextlib.asynccontextmanager
async def _watching_commits(env: Any) -> AsyncIterator[Any]:
    """Check every committed offset against the handled log while the block runs."""
    watch = env.commit_watch()
    stop = asyncio.Event()
    task = asyncio.create_task(watch.run(stop))
    try:
        yield watch
    finally:
        stop.set()
        await task
    await watch.sample()
    assert not watch.violations, "committed offsets passed unhandled records:\n" + "\n".join(
        watch.violations
    )
    assert not watch.regressions, "committed offsets went backwards:\n" + "\n".join(
        watch.regressions
    )


async def _a_owns_all(env: Any, a: Any) -> float:
    """Wait until `a` is the only member and owns every partition; returns when."""

    async def owns_all() -> bool:
        env.assert_alive(a)
        return (await env.ownership()) == {a.pid: ALL}

    await env.wait_until(owns_all, TAKEOVER_BOUND + 5, "the survivor to own all partitions")
    return time.monotonic()


@pytest.mark.slow
@pytest.mark.timeout(120)
async def test_survivor_takes_over_the_partitions_of_a_killed_worker(crash_env: Any) -> None:
    env = crash_env
    env.handled.track_pids = True
    env.settings["RB_CRASH_SESSION"] = str(SESSION)
    a, b = env.spawn("worker-a"), env.spawn("worker-b")
    owned = await _wait_split(env, {a.pid, b.pid}, 20, "the two workers to split 4 partitions")
    print(f"\nsplit: a (pid {a.pid}) owns {owned[a.pid]}, b (pid {b.pid}) owns {owned[b.pid]}")
    async with _watching_commits(env):
        # Produced after the split, so each worker gets the records of its partitions.
        await env.publish(20_000)
        await _wait_all_handled(env, [a, b], 60)
        for w in (a, b):
            assert env.handled.done_by_pid[w.pid] > 0, f"{w.name} never handled a record"
        before = await env.end_offsets()

        b.kill()
        killed_at = time.monotonic()
        assert await b.wait_async(5) == -signal.SIGKILL, b.describe()
        publisher = asyncio.create_task(env.publish(20_000, batch=500))
        takeover = await _a_owns_all(env, a) - killed_at
        await publisher
        ends = await _wait_all_handled(env, [a], 60)
    print(f"takeover {takeover:.2f}s after SIGKILL (session timeout {SESSION}s)")
    assert takeover <= TAKEOVER_BOUND, (
        f"the survivor owned everything only {takeover:.2f}s after the kill; the bound is "
        f"session_timeout {SESSION}s + margin = {TAKEOVER_BOUND}s"
    )
    # The survivor went on with b's partitions: it handled what was appended there
    # after the kill.
    for p in owned[b.pid]:
        late = [env.handled.handlers[(p, o)] for o in range(before[p], ends[p])]
        assert late, f"nothing was produced to partition {p} after the kill"
        assert all(a.pid in pids for pids in late), (
            f"partition {p}: records after the kill not handled by the survivor"
        )
    await _stop_and_check_commits(env, ends, a)


@pytest.mark.slow
@pytest.mark.timeout(60)
async def test_partition_moves_only_after_its_running_handler_finished(crash_env: Any) -> None:
    """Cooperative hand-over when a member joins: the old owner releases a partition
    only once its running handler returned, so no record is ever handled by two
    members at once, even by a handler that outlives session_timeout / 2."""
    env = crash_env
    env.settings.update(RB_CRASH_SESSION=str(SESSION), RB_CRASH_DELAY="5")
    # The joining member gets partitions 2 and 3 (sticky assignment keeps 0 and 1).
    await env.publish(2, partition=3)
    a = env.spawn("owner")

    def a_handling() -> bool:
        env.assert_alive(a)
        env.handled.refresh()
        return any(p == 3 for p, _, _ in env.handled.in_flight())

    await env.wait_until(a_handling, 20, "the owner to be inside a handler of partition 3")
    b = env.spawn("joiner")
    await _wait_split(env, {a.pid, b.pid}, 20, "the joiner to get its partitions")
    ends = await _wait_all_handled(env, [a, b], 30)
    assert not env.handled.overlaps, "\n".join(env.handled.overlaps)
    await _stop_and_check_commits(env, ends, a, b)


@pytest.mark.slow
@pytest.mark.timeout(120)
async def test_paused_worker_is_fenced_out_and_rejoins(crash_env: Any) -> None:
    """A worker frozen (SIGSTOP) past its session timeout, as a long GC pause or a
    stalled VM would: the other takes its partitions; when it resumes, its stale
    commits must be refused (committed offsets never go back or pass unhandled
    records), and it rejoins and gets its share again."""
    env = crash_env
    env.handled.track_pids = True
    env.settings["RB_CRASH_SESSION"] = str(SESSION)
    a, b = env.spawn("worker-a"), env.spawn("worker-b")
    await _wait_split(env, {a.pid, b.pid}, 20, "the two workers to split 4 partitions")
    async with _watching_commits(env):
        # b stops while it works through a backlog, with handled but uncommitted records.
        publisher = asyncio.create_task(env.publish(30_000, batch=500))

        def b_busy() -> bool:
            env.handled.refresh()
            return env.handled.done_by_pid[b.pid] > 1000

        await env.wait_until(b_busy, 30, "worker b to be handling records", interval=0.002)
        b.send(signal.SIGSTOP)
        stopped_at = time.monotonic()
        takeover = await _a_owns_all(env, a) - stopped_at
        await publisher
        await _wait_all_handled(env, [a], 60)
        b_before = env.handled.done_by_pid[b.pid]
        b.send(signal.SIGCONT)
        paused = time.monotonic() - stopped_at
        await _wait_split(env, {a.pid, b.pid}, 20, "b to rejoin and get its share back")
        await env.publish(10_000)
        ends = await _wait_all_handled(env, [a, b], 60)
    print(
        f"\nb paused {paused:.2f}s; a owned all {takeover:.2f}s after the pause; b handled "
        f"{b_before} before, {env.handled.done_by_pid[b.pid] - b_before} after resuming; "
        f"{env.handled.duplicates()} duplicates"
    )
    assert env.handled.done_by_pid[b.pid] > b_before, "b handled nothing after it rejoined"
    await _stop_and_check_commits(env, ends, a, b)


class Children:
    """The supervisor's live worker processes; remembers every one it ever saw, so the
    test can end them even if the supervisor dies first."""

    def __init__(self, sup: Any) -> None:
        self.sup = sup
        self.seen: dict[int, psutil.Process] = {}

    def __call__(self) -> set[int]:
        try:
            kids = psutil.Process(self.sup.pid).children()
        except psutil.NoSuchProcess:
            return set()
        live = set()
        for k in kids:
            with contextlib.suppress(psutil.NoSuchProcess):
                if k.status() != psutil.STATUS_ZOMBIE:
                    live.add(k.pid)
                    self.seen.setdefault(k.pid, k)
        return live

    def kill_leftovers(self) -> None:
        if self.sup.alive():
            self.sup.send(signal.SIGSTOP)  # frozen, it cannot start another worker
        self()
        for proc in self.seen.values():
            # psutil.Process checks the creation time: never a recycled pid.
            with contextlib.suppress(psutil.NoSuchProcess):
                if proc.is_running():
                    proc.kill()


@pytest.mark.slow
@pytest.mark.timeout(120)
async def test_supervisor_restarts_a_killed_worker_and_the_group_resplits(
    crash_env: Any,
) -> None:
    if importlib.util.find_spec("riverbed.cli") is None:
        pytest.fail("riverbed.cli is missing: `riverbed run --workers N` cannot be tested")
    env = crash_env
    env.handled.track_pids = True
    env.settings["RB_CRASH_SESSION"] = str(SESSION)
    sup = env.spawn_cli("supervisor", "--workers", "2", "--log-level", "WARNING")
    children = Children(sup)
    try:

        def started() -> set[int] | bool:
            env.assert_alive(sup)
            kids = children()
            return len(kids) == 2 and kids

        kids = await env.wait_until(started, 20, "the supervisor to start 2 workers")
        owned = await _wait_split(env, kids, 30, "the 2 workers to split the partitions")
        print(f"\nsupervised workers {sorted(kids)} own {owned}")
        await env.publish(10_000)
        await _wait_all_handled(env, [sup], 60)
        for pid in kids:
            assert env.handled.done_by_pid[pid] > 0, f"worker {pid} never handled a record"

        victim = min(kids)
        survivor = max(kids)
        os.kill(victim, signal.SIGKILL)
        killed_at = time.monotonic()

        def replaced() -> set[int] | bool:
            env.assert_alive(sup)
            now = children()
            return len(now) == 2 and victim not in now and survivor in now and now

        # The supervisor's first restart waits 1 s (0.5 s * 2**1), then the interpreter
        # starts and imports.
        kids2 = await env.wait_until(replaced, 15, "the supervisor to restart the worker")
        restarted = time.monotonic() - killed_at
        (newcomer,) = kids2 - {survivor}
        owned = await _wait_split(
            env, kids2, TAKEOVER_BOUND + 10, "the survivor and the new worker to split"
        )
        resplit = time.monotonic() - killed_at
        await env.publish(10_000)
        print(
            f"worker {victim} SIGKILLed; replacement {newcomer} started after "
            f"{restarted:.2f}s; group re-split after {resplit:.2f}s: {owned}"
        )
        ends = await _wait_all_handled(env, [sup], 60)
        assert env.handled.done_by_pid[newcomer] > 0, "the new worker never handled a record"
        await _stop_and_check_commits(env, ends, sup)
        left = [p.pid for p in children.seen.values() if p.is_running()]
        assert not left, f"workers {left} still run after the supervisor exited"
    finally:
        children.kill_leftovers()  # the supervisor's children are ours too


@pytest.mark.slow
@pytest.mark.timeout(240)
async def test_members_killed_and_stopped_while_the_group_rebalances(crash_env: Any) -> None:
    """Three members; one at a time is SIGKILLed (or stopped with SIGTERM) and replaced
    while events flow, so partitions keep moving by revocation, release, and expiry of
    dead members. Nothing may be lost and no commit may pass an unhandled record."""
    env = crash_env
    seed = int(os.environ.get("RB_CRASH_SEED") or random.randrange(1 << 30))
    rng = random.Random(seed)
    print(f"\nseed {seed} (rerun with RB_CRASH_SEED={seed})")
    env.settings["RB_CRASH_SESSION"] = str(SESSION)
    total, rounds = 60_000, 12
    await env.publish(500)
    slots = [env.spawn(f"member-{i}-0") for i in range(3)]
    events: list[str] = []

    async def produce() -> None:
        while env.produced < total:
            await env.publish(min(500, total - env.produced))
            await asyncio.sleep(0.15)

    async with _watching_commits(env):
        producer = asyncio.create_task(produce())
        try:
            for r in range(rounds):
                await asyncio.sleep(rng.uniform(0.3, 2.5))
                i = rng.randrange(3)
                w = slots[i]
                env.assert_alive(*slots)
                how = rng.choices(["SIGKILL", "SIGTERM"], weights=[3, 1])[0]
                if how == "SIGKILL":
                    w.kill()
                    rc = await w.wait_async(5)
                    assert rc == -signal.SIGKILL, w.describe()
                else:
                    w.term()
                    rc = await w.wait_async(15)
                    assert rc == 0, f"SIGTERM during rebalancing: exit {rc}\n{w.describe()}"
                await asyncio.sleep(rng.uniform(0, 1.0))
                slots[i] = env.spawn(
                    f"member-{i}-{r + 1}",
                    RB_CRASH_CONCURRENCY=rng.choice(["1", "4"]),
                    RB_CRASH_HANDLER=rng.choice(["record", "value"]),
                )
                events.append(
                    f"round {r:2d}: {how} {w.name} (pid {w.pid}), produced {env.produced}"
                )
            await asyncio.wait_for(producer, 60)
        finally:
            producer.cancel()
            await asyncio.gather(producer, return_exceptions=True)
        ends = await _wait_all_handled(env, slots, 90)
        # Stop only once every member runs (a SIGTERM during start-up ends a process
        # before it installs its handlers).
        await _wait_split(env, {w.pid for w in slots}, 30, "all three members to share")
        await env.wait_until(lambda: _commits_at(env, ends), 15, "the members to commit the end")
    print("\n".join(events))
    print(
        f"{total} events, {rounds} kills/stops: {env.handled.done_lines} handled, "
        f"{env.handled.duplicates()} duplicates; final split {await env.ownership()}"
    )
    await _stop_and_check_commits(env, ends, *slots)


async def _commits_at(env: Any, ends: dict[int, int]) -> bool:
    return await env.committed() == ends
