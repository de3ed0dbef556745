"""Flows: stateless steps, re-keying through repartition topics, aggregations to tables."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from riverbed import App, ConfigError, DeadLetter, Event, Retry
from riverbed.testing.conformance import make_record

from .conftest import Backend, fully_committed, read_topic, wait_for


class Order(Event):
    id: str
    customer: str
    total: int


def orders_app(backend: Backend, partitions: int = 1) -> tuple[App, Any]:
    app = backend.app("shop")
    orders = app.topic("orders", Order, partitions=partitions, key=lambda o: o.id)
    return app, orders


async def values(app: App, topic: str) -> list[Any]:
    t = app.get_topic(topic)
    return [t.codec.decode(r.value) for r in await read_topic(app.broker, topic)]


async def test_map_filter_flat_map_peek_to(backend: Backend) -> None:
    app, orders = orders_app(backend)
    out = app.topic("big", dict)
    seen: list[str] = []

    async def enrich(o: Order) -> dict[str, Any]:
        await asyncio.sleep(0)
        return {"id": o.id, "total": o.total, "double": o.total * 2}

    (
        app.stream(orders)
        .filter(lambda o: o.total >= 10)
        .peek(lambda o: seen.append(o.id))
        .map(enrich)
        .flat_map(lambda d: [d, {**d, "copy": True}])
        .to(out)
    )
    async with app:
        await orders.publish_many([Order(id=f"o{i}", customer="c", total=i * 5) for i in range(5)])
        await wait_for(lambda: _has(app, "big", 6), what="6 outputs")
        got = await values(app, "big")
    assert seen == ["o2", "o3", "o4"]
    assert [(d["id"], d["double"], "copy" in d) for d in got] == [
        (f"o{i}", i * 10, copy) for i in (2, 3, 4) for copy in (False, True)
    ]


async def _has(app: App, topic: str, n: int) -> bool:
    return len(await read_topic(app.broker, topic)) >= n


async def test_branch_and_route(backend: Backend) -> None:
    app, orders = orders_app(backend)
    small, large, other = (app.topic(n, Order) for n in ("small", "large", "other"))
    a, b, rest = app.stream(orders, name="split").branch(
        lambda o: o.total < 10, lambda o: o.total < 100
    )
    a.to(small)
    b.to(large)
    rest.map(lambda o: o.id).filter(lambda i: i != "none").peek(print)
    app.stream(orders, name="router").route({"other": lambda o: o.customer == "x"})
    async with app:
        await orders.publish_many(
            [Order(id=f"o{t}", customer="x" if t == 50 else "y", total=t) for t in (5, 50, 500)]
        )
        await wait_for(lambda: _has(app, "large", 1), what="large")
        await wait_for(lambda: _has(app, "other", 1), what="other")
        assert [o.id for o in await values(app, "small")] == ["o5"]
        assert [o.id for o in await values(app, "large")] == ["o50"]
        assert [o.id for o in await values(app, "other")] == ["o50"]
    del other


async def test_count_and_sum_per_key_through_a_repartition(backend: Backend) -> None:
    app, orders = orders_app(backend, partitions=3)
    totals = app.stream(orders, name="totals").group_by(lambda o: o.customer).sum(lambda o: o.total)
    counts = app.stream(orders, name="counts").group_by(lambda o: o.customer).count()
    totals.changes().map(lambda total: {"total": total}).to(app.topic("totals-out", dict))
    events = [Order(id=f"o{i}", customer=f"c{i % 4}", total=i) for i in range(40)]
    want_totals = {f"c{k}": sum(i for i in range(40) if i % 4 == k) for k in range(4)}
    async with app:
        await orders.publish_many(events)
        await wait_for(lambda: totals.table.snapshot() == want_totals, what="totals")
        await wait_for(lambda: counts.table.snapshot() == dict.fromkeys(want_totals, 10))
        assert totals.table["c1"] == want_totals["c1"]
        assert totals.table.get("nobody", -1) == -1
        assert "c2" in counts.table
        assert len(counts.table) == 4
        await wait_for(lambda: _has(app, "totals-out", 40), what="40 changes")
        changes = await read_topic(app.broker, "totals-out")
        topics = {t.name for t in await app.broker.list_topics()}
    assert {"shop.totals.repartition.1", "shop.totals.sum.changelog"} <= topics
    last = {r.key: totals_of(r) for r in sorted(changes, key=lambda r: r.offset)}
    assert last == {k.encode(): v for k, v in want_totals.items()}


def totals_of(record: Any) -> int:
    import json

    total: int = json.loads(record.value)["total"]
    return total


async def test_state_survives_a_restart_and_is_not_counted_twice(backend: Backend) -> None:
    def build() -> tuple[App, Any, Any]:
        app, orders = orders_app(backend)
        counts = app.stream(orders, name="counts").group_by(lambda o: o.customer).count()
        return app, orders, counts

    app, orders, counts = build()
    async with app:
        await orders.publish_many([Order(id=f"a{i}", customer="c", total=1) for i in range(7)])
        await wait_for(lambda: counts.table.get("c") == 7, what="7")
    app, orders, counts = build()
    async with app:
        await wait_for(lambda: counts.table.get("c") == 7, what="7 after restart")
        await orders.publish_many([Order(id=f"b{i}", customer="c", total=1) for i in range(3)])
        await wait_for(lambda: counts.table.get("c") == 10, what="10")
        # Once everything is committed nothing is left to count again: still 10.
        await wait_for(lambda: fully_committed(app.broker, "shop.counts", "orders"))
        assert counts.table["c"] == 10


async def test_a_failing_step_goes_to_the_dead_letters_and_the_flow_goes_on(
    backend: Backend,
) -> None:
    app, orders = orders_app(backend)

    def check(o: Order) -> Order:
        if o.customer == "bad":
            raise DeadLetter("bad customer")
        if o.customer == "boom":
            raise RuntimeError("boom")
        return o

    counts = (
        app.stream(orders, name="counts", retry=Retry(attempts=2, backoff=0.001))
        .map(check)
        .group_by(lambda o: o.customer)
        .count()
    )
    async with app:
        await orders.publish_many(
            [
                Order(id=f"o{i}", customer=c, total=1)
                for i, c in enumerate(["a", "bad", "a", "boom", "a"])
            ]
        )
        await wait_for(lambda: _has(app, "orders.dlq", 2), what="2 dead letters")
        await wait_for(lambda: counts.table.get("a") == 3, what="a=3")
        dead = await read_topic(app.broker, "orders.dlq")
    assert [(r.headers["dlq.error.type"], r.headers["dlq.attempts"]) for r in dead] == [
        ("DeadLetter", "1"),
        ("RuntimeError", "2"),
    ]
    assert counts.table.snapshot() == {"a": 3}


@pytest.mark.parametrize("bad", ["decode", "key"])
async def test_undecodable_records_and_failing_key_functions_are_dead_lettered(
    backend: Backend, bad: str
) -> None:
    app, orders = orders_app(backend)

    def key(o: Order) -> str:
        if o.customer == "x":
            raise ValueError("no key for x")
        return o.customer

    counts = app.stream(orders, name="counts", retry=Retry(attempts=1)).group_by(key).count()
    async with app:
        if bad == "decode":
            await app.broker.append("orders", [make_record(value=b"{not json")])
        else:
            await orders.publish(Order(id="x1", customer="x", total=1))
        await orders.publish(Order(id="ok", customer="c", total=1))
        await wait_for(lambda: counts.table.get("c") == 1, what="c=1")
        await wait_for(lambda: _has(app, "orders.dlq", 1), what="dead letter")
        dead = await read_topic(app.broker, "orders.dlq")
    want = "DecodeError" if bad == "decode" else "ValueError"
    assert [r.headers["dlq.error.type"] for r in dead] == [want]


async def test_a_consumer_writes_a_table_with_its_commits(backend: Backend) -> None:
    app = backend.app("shop")
    orders = app.topic("orders", Order, partitions=2, key=lambda o: o.customer)
    spent = app.table("spent")
    fail_once = {"o3"}

    @app.consumer(orders, group="spending", tables=[spent], retry=Retry(attempts=3, backoff=0.001))
    def track(order: Order) -> None:  # sync: runs in a thread, sees its record's scope
        spent[order.customer] = spent.get(order.customer, 0) + order.total
        if order.id in fail_once:
            fail_once.discard(order.id)
            raise RuntimeError("fails after writing: the write must be undone")

    events = [Order(id=f"o{i}", customer=f"c{i % 3}", total=i) for i in range(12)]
    want = {f"c{k}": sum(i for i in range(12) if i % 3 == k) for k in range(3)}
    async with app:
        await orders.publish_many(events)
        await wait_for(lambda: spent.snapshot() == want, what=f"{want}")
        with pytest.raises(ConfigError, match="written only by its writer"):
            spent["x"] = 1
    # A restarted app restores the table from its changelog.
    app2 = backend.app("shop")
    app2.topic("orders", Order, partitions=2, key=lambda o: o.customer)
    spent2 = app2.table("spent")

    @app2.consumer("orders", group="spending", tables=[spent2])
    def track2(order: Order) -> None:
        spent2[order.customer] = spent2.get(order.customer, 0) + order.total

    async with app2:
        await wait_for(lambda: spent2.snapshot() == want, what="restored")


async def test_a_key_outside_the_record_partition_is_dead_lettered_with_the_reason(
    backend: Backend,
) -> None:
    app, orders = orders_app(backend, partitions=4)  # keyed by order id, not customer
    spent = app.table("spent")

    @app.consumer(orders, group="spending", tables=[spent], retry=Retry(attempts=1))
    async def track(order: Order) -> None:
        spent[order.customer] = order.total

    async with app:
        await orders.publish_many([Order(id=f"o{i}", customer="c", total=i) for i in range(8)])
        await wait_for(lambda: _has(app, "orders.dlq", 1), what="a dead letter")
        dead = await read_topic(app.broker, "orders.dlq")
    assert "key the input records by the table key" in dead[0].headers["dlq.error.message"]


def test_tables_need_one_writer_and_concurrency_one(backend: Backend) -> None:
    app, orders = orders_app(backend)
    t = app.table("t")
    with pytest.raises(ConfigError, match="concurrency=1"):
        app.consumer(orders, group="g", tables=[t], concurrency=2)
    app.consumer(orders, group="a", tables=[t])(lambda o: None)
    with pytest.raises(ConfigError, match="one writer"):
        app.consumer(orders, group="b", tables=[t])(lambda o: None)


async def test_a_partition_handed_to_another_worker_carries_its_state(backend: Backend) -> None:
    def worker() -> tuple[App, Any, Any]:
        app, orders = orders_app(backend, partitions=4)
        counts = app.stream(orders, name="counts").group_by().count()
        return app, orders, counts

    first, orders, counts1 = worker()
    batch_a = [Order(id=f"k{i % 16}", customer="c", total=1) for i in range(64)]
    batch_b = [Order(id=f"k{i % 16}", customer="c", total=1) for i in range(32)]
    want = {f"k{k}": 6 for k in range(16)}
    async with first:
        await orders.publish_many(batch_a)
        await wait_for(lambda: sum(counts1.table.snapshot().values()) == 64, what="64 counted")
        second, _, counts2 = worker()
        async with second:
            # The second worker takes half the partitions, restoring their counts.
            await wait_for(lambda: len(counts2.table.snapshot()) > 0, what="a handover")
            assert all(v == 4 for v in counts2.table.snapshot().values())
            await orders.publish_many(batch_b)

            def merged() -> dict[str, int]:
                return {**counts1.table.snapshot(), **counts2.table.snapshot()}

            await wait_for(lambda: merged() == want, what=f"{want}")
            assert not set(counts1.table.snapshot()) & set(counts2.table.snapshot())


async def test_exactly_once_is_refused_where_the_backend_has_no_transactions(
    nats_url: str,
) -> None:
    from riverbed import UnsupportedCapability

    app = App(unique("eos"), broker=nats_url)
    orders = app.topic(unique("orders"), Order)
    app.stream(orders, guarantee="exactly_once").group_by().count()
    with pytest.raises(UnsupportedCapability, match="at_least_once"):
        await app.start()
    await app.stop()


def unique(prefix: str) -> str:
    import os

    return f"{prefix}{os.urandom(4).hex()}"


async def test_a_flow_step_writes_a_table_the_flow_declares(backend: Backend) -> None:
    app = backend.app("shop")
    orders = app.topic("orders", Order, partitions=2, key=lambda o: o.customer)
    last = app.table("last-order")

    def remember(o: Order) -> None:
        last[o.customer] = o.id

    app.stream(orders, name="remember", tables=[last]).peek(remember)
    async with app:
        await orders.publish_many(
            [Order(id=f"o{i}", customer=f"c{i % 2}", total=1) for i in range(6)]
        )
        await wait_for(lambda: last.snapshot() == {"c0": "o4", "c1": "o5"}, what="the last ids")
