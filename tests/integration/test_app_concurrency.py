"""concurrency=N: keys in parallel, each key in order, commits never pass unfinished work."""

from __future__ import annotations

import asyncio
import threading
from collections import defaultdict

from riverbed import Record

from .conftest import Backend, committed_is, fully_committed, wait_for, wait_for_count


async def test_different_keys_run_in_parallel(backend: Backend) -> None:
    app = backend.app()
    topic = app.topic("jobs", bytes)
    in_flight = 0
    peak = 0
    overlapped = asyncio.Event()

    @app.consumer(topic, concurrency=4)
    async def work(record: Record[bytes]) -> None:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        if in_flight >= 2:
            overlapped.set()
        try:
            # Hold on until another handler runs at the same time (or give up): with
            # serial handling this waits out the timeout and the assertion below fails.
            await asyncio.wait_for(overlapped.wait(), 1.0)
        except TimeoutError:
            pass
        finally:
            in_flight -= 1

    async with app:
        # 32 distinct keys: they spread over the 4 workers (all on one is ~4**-31).
        await topic.publish_many([f"k{i}".encode() for i in range(32)], key=lambda v: v)
        await wait_for(lambda: app.statistics()[0].handled == 32, what="32 handled")
    assert overlapped.is_set()
    assert 2 <= peak <= 4


async def test_each_key_keeps_its_order_under_concurrency(backend: Backend) -> None:
    app = backend.app()
    topic = app.topic("per-key", dict, partitions=2)
    seen: dict[str, list[int]] = defaultdict(list)
    total: list[int] = []

    @app.consumer(topic, concurrency=4)
    async def work(event: dict[str, int | str]) -> None:
        key, seq = str(event["key"]), int(event["seq"])
        # Uneven, key-dependent work so workers interleave differently.
        await asyncio.sleep(0.001 * ((seq * 7 + len(key)) % 3))
        seen[key].append(seq)
        total.append(seq)

    events = [{"key": f"k{k}", "seq": s} for s in range(15) for k in range(8)]
    async with app:
        await topic.publish_many(events, key=lambda e: str(e["key"]))
        await wait_for_count(total, len(events))
        await wait_for(lambda: fully_committed(app.broker, "shop.work", "per-key"), what="commit")
    assert set(seen) == {f"k{k}" for k in range(8)}
    for key, seqs in seen.items():
        assert seqs == list(range(15)), f"key {key} handled out of order: {seqs}"


async def test_commit_never_passes_an_unfinished_record(backend: Backend) -> None:
    app = backend.app()
    topic = app.topic("gated", bytes)
    release = asyncio.Event()
    blocked_at: list[int] = []
    finished: list[int] = []

    @app.consumer(topic, group="gated", concurrency=4)
    async def work(record: Record[bytes]) -> None:
        if record.value == b"slow":
            blocked_at.append(record.offset)
            await release.wait()
        finished.append(record.offset)

    # Offsets 0-2 quick, 3 blocks, 4-23 quick on 20 different keys (some share the
    # blocked record's worker and wait behind it; the others finish).
    values = [b"q0", b"q1", b"q2", b"slow"] + [f"q{i}".encode() for i in range(4, 24)]
    async with app:
        await topic.publish_many(values, key=lambda v: v)
        await wait_for(lambda: blocked_at == [3], what="the slow record to start")
        await wait_for(lambda: {0, 1, 2} <= set(finished), what="the records before it")
        await wait_for(lambda: sum(o > 3 for o in finished) >= 5, what="records after the slow one")
        await wait_for(
            lambda: committed_is(app.broker, "gated", "gated", 3), what="commit up to it"
        )
        # Later records finished, commits keep running: the commit point must stay put.
        for _ in range(20):
            await asyncio.sleep(app.consumer_options.commit_interval / 2)
            committed = (await app.broker.committed("gated", "gated")).get(0, 0)
            assert committed <= 3, f"committed {committed} past unfinished offset 3"
        assert 3 not in finished

        release.set()
        await wait_for_count(finished, 24)
        await wait_for(lambda: committed_is(app.broker, "gated", "gated", 24), what="all")


async def test_sync_handlers_run_in_a_worker_thread(backend: Backend) -> None:
    app = backend.app()
    topic = app.topic("blocking", bytes)
    threads: list[threading.Thread] = []
    loop_thread = threading.current_thread()

    @app.consumer(topic)
    def blocking(data: bytes) -> None:
        threads.append(threading.current_thread())

    @app.consumer(topic, group="blocking-ctx")
    def blocking_with_ctx(data: bytes, ctx: object) -> None:
        threads.append(threading.current_thread())

    async with app:
        await topic.publish_many([b"a", b"b"])
        await wait_for_count(threads, 4)
    assert all(t is not loop_thread for t in threads)
    assert all(t.name.startswith("riverbed-shop") for t in threads)


async def test_sync_handler_does_not_block_the_loop(backend: Backend) -> None:
    app = backend.app()
    topic = app.topic("blocking", bytes)
    gate = threading.Event()
    done: list[bytes] = []

    @app.consumer(topic)
    def blocking(data: bytes) -> None:
        assert gate.wait(5), "the loop never got to set the gate"
        done.append(data)

    async with app:
        await topic.publish(b"x")
        await wait_for(lambda: app.statistics()[0].generation >= 1, what="join")
        # The loop keeps running while the handler blocks its thread: publish more.
        await topic.publish(b"y")
        gate.set()
        await wait_for(lambda: done == [b"x", b"y"], what="both handled")
