"""The sync face: publishing from plain threads, with and without a running app."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from riverbed import App, ClosedError, ConfigError, Event, Position

from .conftest import FAST, Backend, read_topic, wait_for


class Order(Event):
    id: str
    qty: int


def test_publish_sync_without_a_running_app(backend: Backend) -> None:
    app = App("shop", broker=backend.fresh_url(), consumer_options=FAST)
    orders = app.topic("orders", Order)
    results: list[Position] = []

    def from_a_thread() -> None:
        results.append(orders.publish_sync(Order(id="t", qty=1)))

    first = orders.publish_sync(Order(id="main", qty=1))  # this thread has no loop
    worker = threading.Thread(target=from_a_thread)
    worker.start()
    worker.join()
    batch = orders.publish_many_sync([Order(id=f"b{i}", qty=i) for i in range(3)])
    assert first == Position("orders", 0, 0)
    assert results == [Position("orders", 0, 1)]
    assert [p.offset for p in batch] == [2, 3, 4]
    stored = app.portal.call(lambda: read_topic(app.broker, "orders"))
    assert [orders.codec.decode(r.value).id for r in stored] == ["main", "t", "b0", "b1", "b2"]

    app.close_sync()
    assert app.status() == "stopped"
    assert not [t for t in threading.enumerate() if t.name == "riverbed-shop-sync"]
    with pytest.raises(ClosedError):
        orders.publish_sync(Order(id="late", qty=1))
    app.close_sync()  # idempotent


def test_publish_sync_from_many_threads_at_once(backend: Backend) -> None:
    app = App("shop", broker=backend.fresh_url(), consumer_options=FAST)
    topic = app.topic("burst", bytes)
    try:
        with ThreadPoolExecutor(8) as pool:
            positions = list(pool.map(lambda i: topic.publish_sync(b"%d" % i), range(100)))
        assert sorted(p.offset for p in positions) == list(range(100))
    finally:
        app.close_sync()


def test_the_same_app_runs_on_a_new_loop_after_the_portal(backend: Backend) -> None:
    """Sync use first (the portal's loop), then `asyncio.run` with concurrent publishes.

    Anything the app keeps between runs (locks, queues) must not stay tied to the
    first loop: each run is a fresh loop, as in a script or one test after another.
    """
    app = App("shop", broker=backend.broker_arg(), consumer_options=FAST)
    topics = [app.topic("burst", bytes), app.topic("other", bytes)]
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda i: topics[i % 2].publish_sync(b"sync"), range(50)))
    app.close_sync()

    async def burst() -> list[Position]:
        # Two topics publishing at once, before the app is connected: they race to connect.
        try:
            return await asyncio.gather(*(topics[i % 2].publish(b"async") for i in range(50)))
        finally:
            await app.stop()

    for run in range(2):
        positions = asyncio.run(burst())
        assert len(set(positions)) == 50, f"run {run}"


async def test_publish_sync_from_another_thread_while_the_app_runs(backend: Backend) -> None:
    app = backend.app()
    orders = app.topic("orders", Order)
    seen: list[tuple[str, str]] = []

    @app.consumer(orders)
    async def record(order: Order) -> None:
        seen.append((order.id, threading.current_thread().name))

    loop_thread = threading.current_thread().name
    async with app:
        pos = await asyncio.to_thread(orders.publish_sync, Order(id="from-thread", qty=1))
        batch = await asyncio.to_thread(
            orders.publish_many_sync, [Order(id="b1", qty=1), Order(id="b2", qty=2)]
        )
        await wait_for(lambda: len(seen) == 3, what="three handled")
        assert [t.name for t in threading.enumerate() if t.name == "riverbed-shop-sync"] == []
    assert pos == Position("orders", 0, 0)
    assert [p.offset for p in batch] == [1, 2]
    assert seen == [(i, loop_thread) for i in ("from-thread", "b1", "b2")]


async def test_publish_sync_inside_the_loop_says_to_await(backend: Backend) -> None:
    app = backend.app()
    orders = app.topic("orders", Order)
    with pytest.raises(ConfigError, match="await"):
        orders.publish_sync(Order(id="x", qty=1))
    with pytest.raises(ConfigError, match="await"):
        orders.publish_many_sync([Order(id="x", qty=1)])
    async with app:
        with pytest.raises(ConfigError, match=r"await topic\.publish"):
            orders.publish_sync(Order(id="x", qty=1))
        assert await orders.publish(Order(id="ok", qty=1)) == Position("orders", 0, 0)
