"""A consumer process killed with SIGKILL at random points, and stopped with SIGTERM.

The consumer (`workers/counting.py`) writes one line per handled record with `os.write`
before its handler returns, so the handled log is exact even across SIGKILL. The test
process samples the group's committed offsets throughout through its own broker handle
and checks each against the handled log read right after: a committed offset `c` of
partition `p` promises that every offset below `c` was handled, and since a record's
line is written before its commit can include it, any violation is a real one.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import time
from collections import Counter
from collections.abc import Sequence
from typing import Any

import pytest

from riverbed import TopicPartition

N_EVENTS = 200_000
KILLS = 20
SESSION = 2.0
BATCH = 500  # producer batch; one batch per 0.15 s, at most ~3.3k events/s


@pytest.mark.slow
@pytest.mark.timeout(400)
async def test_sigkill_at_random_points_loses_nothing(crash_env: Any) -> None:
    """200k events flow while a consumer process is SIGKILLed 20 times and restarted:
    every event is handled at least once, and no commit ever passes an unhandled one."""
    await _sigkill_chaos(crash_env, N_EVENTS, KILLS)


@pytest.mark.slow
@pytest.mark.timeout(300)
async def test_sigkill_never_splits_outputs_from_their_input_commit(crash_env: Any) -> None:
    """The handler publishes one output per input through its context; the sqlite log
    writes outputs and the input commit in one transaction. Through SIGKILLs, every
    input's output is in the output topic exactly once: none lost with a commit that
    went through, none doubled by a redelivery after a crash."""
    env = crash_env
    ends = await _sigkill_chaos(env, 50_000, 8, handlers=["context"])
    observer = await env.observer()
    seen: Counter[tuple[int, int]] = Counter()
    positions = {TopicPartition("events.out", p): 0 for p in range(2)}
    while batch := await observer.fetch(positions, max_records=10_000):
        for rec in batch:
            p, o = map(int, rec.value.split())
            seen[(p, o)] += 1
            positions[TopicPartition(rec.topic, rec.partition)] = rec.offset + 1
    doubled = sorted(k for k, n in seen.items() if n > 1)
    missing = [(p, o) for p, end in ends.items() for o in range(end) if (p, o) not in seen]
    print(f"{sum(seen.values())} outputs for {sum(ends.values())} inputs")
    assert not missing, f"{len(missing)} inputs have no output, e.g. {missing[:10]}"
    assert not doubled, f"{len(doubled)} inputs have several outputs, e.g. {doubled[:10]}"


@pytest.mark.slow
@pytest.mark.timeout(300)
@pytest.mark.parametrize("crash_env", ["kafka", "nats", "redis"], indirect=True)
async def test_sigkill_loses_nothing_on_server_backends(crash_env: Any) -> None:
    """The same chaos on a real server: a consumer SIGKILLed mid-batch loses nothing
    after restart, and no commit ever passes an unhandled record."""
    await _sigkill_chaos(crash_env, 20_000, 5, handlers=["value"])


async def _sigkill_chaos(
    env: Any, n_events: int, kills: int, handlers: Sequence[str] = ("record", "value")
) -> dict[int, int]:
    """Produce `n_events` while a consumer is SIGKILLed `kills` times and restarted,
    then stop the last one with SIGTERM; check the at-least-once promises and return
    the end offsets. Each consumer process runs one of `handlers` (RB_CRASH_HANDLER)."""
    seed = int(os.environ.get("RB_CRASH_SEED") or random.randrange(1 << 30))
    rng = random.Random(seed)
    print(f"\nseed {seed} (rerun with RB_CRASH_SEED={seed})")
    env.settings["RB_CRASH_SESSION"] = str(SESSION)
    await env.publish(BATCH)  # creates the topic before the first consumer starts
    watch = env.commit_watch()
    stop = asyncio.Event()
    kills_done = 0

    async def produce() -> None:
        # Paced by the kills: before kill i at most (i+1)/(kills+1) of the events exist,
        # so events keep flowing through every kill and the last share follows the last.
        while env.produced < n_events:
            share = n_events * (kills_done + 1) // (kills + 1)
            allowed = n_events if kills_done >= kills else share
            if env.produced >= allowed:
                await asyncio.sleep(0.05)
                continue
            await env.publish(min(BATCH, allowed - env.produced))
            await asyncio.sleep(0.15)

    producer = asyncio.create_task(produce())
    watcher = asyncio.create_task(watch.run(stop))
    started = time.monotonic()
    try:
        for i in range(kills):
            concurrency = rng.choice(["1", "4"])
            handler = rng.choice(handlers)
            w = env.spawn(
                f"consumer-{i:02d}", RB_CRASH_CONCURRENCY=concurrency, RB_CRASH_HANDLER=handler
            )
            where = await _kill_point(env, w, rng, i)
            env.assert_alive(w)
            env.handled.refresh()
            handled_before = env.handled.done_by_pid[w.pid]
            stored = sum((await env.end_offsets()).values())
            backlog = stored - sum(env.handled.frontier(p) for p in range(env.partitions))
            w.kill()
            rc = await w.wait_async(10)
            assert rc == -signal.SIGKILL, f"SIGKILL did not end {w}:\n{w.describe()}"
            kills_done += 1
            # Printed as it goes: a failure's captured output shows where each kill hit.
            print(
                f"kill {i:2d} ({handler} handler, concurrency {concurrency}) {where}; "
                f"it had handled {handled_before}; {backlog} stored records were not "
                "handled yet"
            )

        final = env.spawn(
            "consumer-final",
            RB_CRASH_CONCURRENCY=rng.choice(["1", "4"]),
            RB_CRASH_HANDLER=rng.choice(handlers),
        )
        await asyncio.wait_for(producer, 120)
        ends = await env.end_offsets()
        assert sum(ends.values()) == n_events

        def done() -> bool:
            env.assert_alive(final)
            return env.all_handled(ends)

        await env.wait_until(done, 120, f"all {n_events} events to be handled")
        # Handled is not committed yet: wait for the commit loop (every 0.1 s) too.
        await env.wait_until(
            lambda: _committed_equals(env, ends), 10, "the final commit to reach the end"
        )
        final.term()
        rc = await final.wait_async(15)
        assert rc == 0, f"SIGTERM: the final consumer exited with {rc}\n{final.describe()}"
    finally:
        stop.set()
        producer.cancel()
        await asyncio.gather(producer, watcher, return_exceptions=True)
    await watch.sample()
    elapsed = time.monotonic() - started

    log = env.handled
    log.refresh()
    committed = await env.committed()
    dlq = await env.count_records(f"{env.topic}.dlq")
    print(
        f"{n_events} events, {kills} SIGKILLs in {elapsed:.1f}s: {log.done_lines} handled, "
        f"{log.duplicates()} duplicates ({100 * log.duplicates() / n_events:.2f}%), "
        f"{watch.samples} commit samples, committed {committed}, dead letters {dlq}, "
        f"{len(log.malformed)} torn lines"
    )
    problems = env.coverage_problems(ends)
    assert not problems, "events never handled:\n" + "\n".join(problems)
    assert not watch.violations, "committed offsets passed unhandled records:\n" + "\n".join(
        watch.violations
    )
    assert not watch.regressions, "committed offsets went backwards:\n" + "\n".join(
        watch.regressions
    )
    assert committed == ends, f"after a clean stop the commits {committed} != ends {ends}"
    assert dlq == 0, f"{dlq} records were dead-lettered; no handler ever fails here"
    return ends


async def _kill_point(env: Any, w: Any, rng: random.Random, i: int) -> str:
    """Wait for a random point in this consumer's life to kill it; says which.

    - early: during import, join, the wait for the dead member's partitions, or the
      first fetch (each cycle the new member waits ~SESSION for them);
    - burst: while it works through the backlog the outage let pile up, so the kill
      lands between fetch, handler and commit (the consumer goes through the ~10k
      records of a cycle in 40-100 ms; hence the tight polling and short pause);
    - tail: after it caught up, while it follows the producer's small batches.
    Each cycle's share of events is produced after the previous kill, so every
    consumer has records to handle.
    """
    mode = rng.choices(["early", "burst", "tail"], weights=[2, 5, 3])[0]
    if mode == "early":
        delay = rng.uniform(0.05, 3.0)
        await asyncio.sleep(delay)
        return f"early, {delay:.2f}s after start"

    def handling() -> bool:
        env.assert_alive(w)
        env.handled.refresh()
        return env.handled.done_by_pid[w.pid] > 0

    await env.wait_until(handling, 60, f"consumer {i} to handle records", interval=0.002)
    if mode == "burst":
        pause = rng.uniform(0, 0.06)
    else:

        def caught_up() -> bool:
            env.assert_alive(w)
            env.handled.refresh()
            fronts = sum(env.handled.frontier(p) for p in range(env.partitions))
            return fronts >= env.produced

        await env.wait_until(caught_up, 60, f"consumer {i} to catch up", interval=0.01)
        pause = rng.uniform(0, 0.4)
    await asyncio.sleep(pause)
    return f"{mode}, {pause:.3f}s after its first record"


async def _committed_equals(env: Any, ends: dict[int, int]) -> bool:
    return await env.committed() == ends


# -- graceful stop --------------------------------------------------------------------
SHUTDOWN = 5.0


@pytest.mark.slow
@pytest.mark.timeout(120)
@pytest.mark.parametrize("handler", ["async", "sync"])
async def test_sigterm_drains_in_flight_handlers_and_commits_exactly(
    crash_env: Any, handler: str
) -> None:
    env = crash_env
    env.handled.track_pids = True
    env.settings.update(
        RB_CRASH_SESSION="5",
        RB_CRASH_CONCURRENCY="4",
        RB_CRASH_SHUTDOWN=str(SHUTDOWN),
        RB_CRASH_SYNC="1" if handler == "sync" else "0",
    )
    await env.publish(400, batch=100)
    w = env.spawn("draining", RB_CRASH_DELAY="0.4")

    def mid_flight() -> bool:
        env.assert_alive(w)
        env.handled.refresh()
        # Some records done (so commits happened) and several handlers running now.
        return env.handled.done_lines >= 8 and len(env.handled.in_flight()) >= 2

    await env.wait_until(mid_flight, 30, "handlers to be in flight")
    running = env.handled.in_flight()
    t0 = time.monotonic()
    w.term()
    rc = await w.wait_async(SHUTDOWN + 5)
    took = time.monotonic() - t0
    assert rc == 0, (
        f"SIGTERM with {len(running)} handlers in flight: exit code {rc}\n{w.describe()}"
    )
    # Each handler takes 0.4 s, so a drain needs well under a second.
    assert took < 3.0, f"exit took {took:.2f}s with handlers of 0.4 s in flight"

    env.handled.refresh()
    assert env.handled.in_flight() == [], (
        f"handlers started but never finished: {env.handled.in_flight()} "
        f"(in flight at SIGTERM: {running})"
    )
    committed = await env.committed()
    frontier = {p: env.handled.frontier(p) for p in range(env.partitions)}
    print(
        f"\n{handler}: exit in {took:.2f}s; {len(running)} in flight at SIGTERM; "
        f"committed {committed}; handled frontier {frontier}"
    )
    assert {p: committed.get(p, 0) for p in frontier} == frontier, (
        f"committed offsets {committed} != handled frontier {frontier}: either a handled "
        "record was not committed (redelivered: tolerable) or an unhandled one was (lost)"
    )

    # A restart resumes exactly there: nothing below the commit is delivered again.
    w2 = env.spawn("resumed", RB_CRASH_SYNC="0")
    ends = await env.end_offsets()

    def done() -> bool:
        env.assert_alive(w2)
        return env.all_handled(ends)

    await env.wait_until(done, 30, "the restarted consumer to finish")
    redelivered = sorted(
        (p, o)
        for (p, o), pids in env.handled.handlers.items()
        if w2.pid in pids and o < committed.get(p, 0)
    )
    assert not redelivered, (
        f"records below the committed offsets delivered again: {redelivered[:20]}"
    )
    w2.term()
    assert await w2.wait_async(10) == 0, w2.describe()


@pytest.mark.slow
@pytest.mark.timeout(60)
@pytest.mark.parametrize("handler", ["async", "sync"])
async def test_sigterm_with_handlers_past_the_shutdown_timeout(
    crash_env: Any, handler: str
) -> None:
    """Handlers slower than `shutdown_timeout`: the process still exits 0 within the
    bound, and their records stay uncommitted (delivered again after restart)."""
    env = crash_env
    shutdown = 1.0
    env.settings.update(
        RB_CRASH_SESSION="5",
        RB_CRASH_CONCURRENCY="4",
        RB_CRASH_SHUTDOWN=str(shutdown),
        RB_CRASH_SYNC="1" if handler == "sync" else "0",
    )
    await env.publish(40, batch=40)
    w = env.spawn("stuck", RB_CRASH_DELAY="8")

    def mid_flight() -> bool:
        env.assert_alive(w)
        env.handled.refresh()
        return len(env.handled.in_flight()) >= 2

    await env.wait_until(mid_flight, 30, "handlers to be in flight")
    t0 = time.monotonic()
    w.term()
    rc = await w.wait_async(20)
    took = time.monotonic() - t0
    print(f"\n{handler}: exit code {rc} after {took:.2f}s (shutdown_timeout {shutdown}s)")
    assert rc == 0, f"exit code {rc} after SIGTERM\n{w.describe()}"
    assert took < shutdown + 3.0, (
        f"the process took {took:.2f}s to exit after SIGTERM; the bound is "
        f"shutdown_timeout ({shutdown}s) plus a margin, handlers take 8 s\n{w.describe()}"
    )
    env.handled.refresh()
    abandoned = {(p, o) for p, o, _ in env.handled.in_flight()}
    committed = await env.committed()
    frontier = {p: env.handled.frontier(p) for p in range(env.partitions)}
    assert all(committed.get(p, 0) <= frontier[p] for p in frontier), (
        f"committed {committed} passed the handled frontier {frontier}"
    )
    # The abandoned records were not committed: a restarted consumer handles them.
    w2 = env.spawn("resumed", RB_CRASH_SYNC="0")
    ends = await env.end_offsets()

    def done() -> bool:
        env.assert_alive(w2)
        return env.all_handled(ends)

    await env.wait_until(done, 30, "the restarted consumer to finish")
    again = {(p, o) for (p, o, pid), n in env.handled.finishes.items() if pid == w2.pid and n}
    assert abandoned <= again, f"abandoned records never handled again: {abandoned - again}"
    w2.term()
    assert await w2.wait_async(10) == 0, w2.describe()
