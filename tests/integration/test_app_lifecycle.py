"""`async with app`: consumers start, stop cleanly, and resume from committed offsets."""

from __future__ import annotations

import asyncio
import dataclasses
import subprocess
import sys
import time

from riverbed import App, Event, Retry, Topic

from .conftest import (
    FAST,
    Backend,
    end_offsets,
    fully_committed,
    read_topic,
    wait_for,
    wait_for_count,
)


class Order(Event):
    id: str
    qty: int


def shop(backend: Backend, seen: list[str], *, partitions: int = 3) -> tuple[App, Topic[Order]]:
    app = backend.app("shop")
    orders = app.topic("orders", Order, partitions=partitions, key=lambda o: o.id)

    @app.consumer(orders, group="fulfil")
    async def fulfil(order: Order) -> None:
        seen.append(order.id)

    return app, orders


async def test_stop_commits_everything_handled(backend: Backend) -> None:
    seen: list[str] = []
    app, orders = shop(backend, seen)
    async with app:
        assert app.status() == "running"
        assert [m.group for m in app.members] == ["fulfil"]
        await orders.publish_many([Order(id=f"o{i}", qty=i) for i in range(30)])
        await wait_for_count(seen, 30)
    assert app.status() == "stopped"
    async with backend.inspect() as broker:
        ends = await end_offsets(broker, "orders")
        assert sum(ends.values()) == 30
        assert await broker.committed("fulfil", "orders") == {p: e for p, e in ends.items() if e}
        group = await broker.describe_group("fulfil")
        assert group.members == []  # the member left on stop
    assert sorted(seen) == sorted(f"o{i}" for i in range(30))


async def test_restart_resumes_from_committed_without_redelivery(backend: Backend) -> None:
    seen: list[str] = []
    app, orders = shop(backend, seen)
    async with app:
        await orders.publish_many([Order(id=f"a{i}", qty=i) for i in range(20)])
        await wait_for_count(seen, 20)
    first_run = list(seen)

    seen.clear()
    app2, orders2 = shop(backend, seen)
    await orders2.publish_many([Order(id=f"b{i}", qty=i) for i in range(10)])  # while stopped
    async with app2:
        await orders2.publish_many([Order(id=f"c{i}", qty=i) for i in range(5)])
        await wait_for_count(seen, 15)
        await wait_for(
            lambda: fully_committed(app2.broker, "fulfil", "orders"), what="commit to end"
        )
    assert sorted(first_run) == sorted(f"a{i}" for i in range(20))
    assert sorted(seen) == sorted([f"b{i}" for i in range(10)] + [f"c{i}" for i in range(5)])


async def test_same_app_object_can_run_twice(backend: Backend) -> None:
    seen: list[str] = []
    app, orders = shop(backend, seen, partitions=1)
    for run in range(2):
        async with app:
            await orders.publish(Order(id=f"run{run}", qty=run))
            await wait_for_count(seen, run + 1)
    assert seen == ["run0", "run1"]


async def test_start_latest_skips_the_backlog_of_a_new_group(backend: Backend) -> None:
    app = backend.app()
    topic = app.topic("events", bytes)
    got: list[bytes] = []

    @app.consumer(topic, group="late", start="latest")
    async def late(data: bytes) -> None:
        got.append(data)

    await topic.publish_many([b"old1", b"old2"])
    async with app:
        await wait_for(lambda: app.statistics()[0].generation >= 1, what="the group joined")
        # Joined; wait until the member has taken its starting position.
        await wait_for(lambda: bool(app.members[0].assigned), what="an assignment")
        await topic.publish(b"new")
        await wait_for(lambda: got == [b"new"], what="only the new record")


async def test_stop_with_nothing_registered_is_clean(backend: Backend) -> None:
    app = backend.app()
    app.topic("quiet", bytes)
    async with app:
        assert app.members == []
        assert app.statistics() == []
    assert app.status() == "stopped"


async def test_stop_while_a_handler_runs_waits_for_it_and_commits(backend: Backend) -> None:
    app = backend.app()
    topic = app.topic("slow", bytes)
    started, finished = asyncio.Event(), []

    @app.consumer(topic, group="slow")
    async def slow(data: bytes) -> None:
        started.set()
        await asyncio.sleep(0.2)
        finished.append(data)

    async with app:
        await topic.publish(b"one")
        await asyncio.wait_for(started.wait(), 5)
    assert finished == [b"one"]  # drained, not cut off
    async with backend.inspect() as broker:
        assert await broker.committed("slow", "slow") == {0: 1}


async def test_stop_during_a_retry_backoff_leaves_the_record_for_the_next_run(
    backend: Backend,
) -> None:
    tries: list[str] = []

    def make() -> tuple[App, Topic[Order]]:
        app = backend.app("shop")
        orders = app.topic("orders", Order)

        @app.consumer(orders, group="g", retry=Retry(attempts=3, backoff=30, jitter=False))
        async def flaky(order: Order) -> None:
            tries.append(order.id)
            if len(tries) == 1:
                raise ConnectionError("down")

        return app, orders

    app, orders = make()
    async with app:
        await orders.publish(Order(id="a", qty=1))
        await wait_for_count(tries, 1)
        stopping = time.monotonic()
    assert time.monotonic() - stopping < 5  # did not sit out the 30 s backoff
    async with backend.inspect() as broker:
        assert (await broker.committed("g", "orders")).get(0, 0) == 0  # not past it
        assert await read_topic(broker, "orders.dlq") == []

    app2, _ = make()
    async with app2:
        await wait_for_count(tries, 2)
        await wait_for(lambda: fully_committed(app2.broker, "g", "orders"), what="commit")
    assert tries == ["a", "a"]


async def test_two_apps_in_one_group_split_the_partitions(backend: Backend) -> None:
    seen: dict[str, list[str]] = {"one": [], "two": []}

    def make(name: str) -> tuple[App, Topic[Order]]:
        app = backend.app("shop")
        orders = app.topic("orders", Order, partitions=4, key=lambda o: o.id)

        @app.consumer(orders, group="shared")
        async def fulfil(order: Order) -> None:
            seen[name].append(order.id)

        return app, orders

    one, orders = make("one")
    two, _ = make("two")
    async with one, two:

        def split() -> bool:
            a, b = one.members[0].assigned, two.members[0].assigned
            return len(a) == len(b) == 2 and not (a & b)

        await wait_for(split, what="two partitions each")
        await orders.publish_many([Order(id=f"o{i}", qty=i) for i in range(40)])
        await wait_for(lambda: len(seen["one"]) + len(seen["two"]) >= 40, what="all handled")
        await wait_for(lambda: fully_committed(one.broker, "shared", "orders"), what="commit")
    assert seen["one"]
    assert seen["two"]
    assert sorted(seen["one"] + seen["two"]) == sorted(f"o{i}" for i in range(40))


async def test_stop_gives_up_on_a_hung_handler_after_the_shutdown_timeout(
    backend: Backend,
) -> None:
    options = dataclasses.replace(FAST, shutdown_timeout=0.2)
    app = backend.app("shop", consumer_options=options)
    orders = app.topic("orders", Order)
    started = asyncio.Event()

    @app.consumer(orders, group="g")
    async def hangs(order: Order) -> None:
        started.set()
        await asyncio.Event().wait()  # never set

    async with app:
        await orders.publish(Order(id="a", qty=1))
        await asyncio.wait_for(started.wait(), 5)
        stopping = time.monotonic()
    assert time.monotonic() - stopping < 3
    async with backend.inspect() as broker:
        assert (await broker.committed("g", "orders")).get(0, 0) == 0  # will come again


_HUNG_SYNC_HANDLER = """
import asyncio, sys, threading
from riverbed import App, ConsumerOptions

never = threading.Event()

async def main():
    options = ConsumerOptions(fetch_wait=0.1, heartbeat_interval=0.1, shutdown_timeout=0.2)
    app = App("hung", broker=sys.argv[1], consumer_options=options)
    topic = app.topic("t", bytes)
    started = threading.Event()

    @app.consumer(topic)
    def stuck(data: bytes) -> None:
        started.set()
        never.wait()  # blocking sync code that never returns

    async with app:
        await topic.publish(b"x")
        while not started.is_set():
            await asyncio.sleep(0.01)
    print("stopped", flush=True)

asyncio.run(main())
"""


def test_a_hung_sync_handler_does_not_keep_the_process_alive(backend: Backend) -> None:
    """After `stop()` gave up on it, a handler thread stuck in sync code must not block
    the interpreter's exit (as `riverbed run` after SIGTERM): the record is uncommitted
    and will be delivered again, so there is nothing left to wait for."""
    try:
        out = subprocess.run(
            [sys.executable, "-c", _HUNG_SYNC_HANDLER, backend.fresh_url()],
            capture_output=True,
            text=True,
            timeout=8,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise AssertionError(
            f"the process did not exit after the app stopped; stdout: {exc.stdout!r}"
        ) from None
    assert out.stdout == "stopped\n", out.stderr
    assert out.returncode == 0, out.stderr
