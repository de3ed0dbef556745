"""Joins in flows: stream-table, stream-stream within a window, table-table."""

from __future__ import annotations

from typing import Any

import pytest

from riverbed import App, ConfigError, Event
from riverbed.testing.clock import MockClock

from .conftest import Backend, read_topic, wait_for

T0 = 1_700_000_000_000


class Order(Event):
    id: str
    customer: str
    total: int


class Customer(Event):
    id: str
    name: str


class Payment(Event):
    order: str
    amount: int


async def values(app: App, topic: str) -> list[Any]:
    t = app.get_topic(topic)
    return [t.codec.decode(r.value) for r in await read_topic(app.broker, topic)]


async def has(app: App, topic: str, n: int) -> bool:
    return len(await read_topic(app.broker, topic)) >= n


async def test_stream_table_join_enriches_with_the_latest_value(backend: Backend) -> None:
    app = backend.app("shop")
    orders = app.topic("orders", Order, partitions=2, key=lambda o: o.customer)
    customers = app.topic("customers", Customer, partitions=2, key=lambda c: c.id)
    out = app.topic("enriched", dict)
    (
        app.stream(orders, name="enrich")
        .join(customers, lambda o, c: {"order": o.id, "name": c and c.name}, how="left")
        .to(out)
    )
    async with app:
        await customers.publish_many([Customer(id="c1", name="Ann"), Customer(id="c2", name="Bo")])
        await wait_for(lambda: _table_has(app, "enrich.customers.table", 2), what="customers")
        await orders.publish_many(
            [Order(id="o1", customer="c1", total=1), Order(id="o2", customer="c3", total=1)]
        )
        await customers.publish(Customer(id="c1", name="Ann B."))
        await wait_for(lambda: app.tables["enrich.customers.table"].get("c1").name == "Ann B.")
        await orders.publish(Order(id="o3", customer="c1", total=1))
        await wait_for(lambda: has(app, "enriched", 3), what="3 enriched")
        got = sorted((d["order"], d["name"]) for d in await values(app, "enriched"))
    assert got == [("o1", "Ann"), ("o2", None), ("o3", "Ann B.")]


def _table_has(app: App, name: str, n: int) -> bool:
    return len(app.tables[name]) >= n


async def test_inner_stream_table_join_drops_records_without_a_match(backend: Backend) -> None:
    app = backend.app("shop")
    orders = app.topic("orders", Order, key=lambda o: o.customer)
    customers = app.topic("customers", Customer, key=lambda c: c.id)
    names = app.stream(orders).join(customers, lambda o, c: {"n": c.name}).group_by().count()
    async with app:
        await customers.publish(Customer(id="c1", name="Ann"))
        await wait_for(lambda: _table_has(app, "orders.customers.table", 1), what="customer")
        await orders.publish_many(
            [Order(id=f"o{i}", customer=f"c{i % 2}", total=1) for i in range(6)]
        )
        await wait_for(lambda: names.table.snapshot() == {"c1": 3}, what="3 joined for c1")


async def test_stream_stream_join_pairs_within_the_window_and_emits_unmatched_left(
    backend: Backend,
) -> None:
    clock = MockClock(T0)
    app = backend.app("shop", clock=clock)
    orders = app.topic("orders", Order, key=lambda o: o.id)
    payments = app.topic("payments", Payment, key=lambda p: p.order)
    out = app.topic("matched", dict)
    (
        app.stream(orders, name="match")
        .join_stream(
            payments,
            lambda o, p: {"order": o.id, "paid": p and p.amount},
            within=600,
            how="left",
        )
        .to(out)
    )
    async with app:
        await orders.publish_many([Order(id="a", customer="x", total=5)])
        await orders.publish(Order(id="b", customer="x", total=7))
        await payments.publish(Payment(order="a", amount=5))
        await wait_for(lambda: has(app, "matched", 1), what="a paired")
        # b never gets paid: after 10 minutes (+1 ms) of quiet its window closes.
        clock.advance(601)
        await wait_for(lambda: has(app, "matched", 2), what="b unmatched")
        got = [(d["order"], d["paid"]) for d in await values(app, "matched")]
    assert got == [("a", 5), ("b", None)]


async def test_table_table_join_keeps_rows_per_how(backend: Backend) -> None:
    app = backend.app("shop")
    customers = app.topic("customers", Customer, key=lambda c: c.id)
    addresses = app.topic("addresses", dict, key=lambda a: a["id"])
    joined = (
        app.stream(customers, name="book")
        .to_table()
        .join(addresses, lambda c, a: {"name": c and c.name, "city": a and a["city"]}, how="outer")
    )
    async with app:
        await customers.publish_many([Customer(id="1", name="Ann"), Customer(id="2", name="Bo")])
        await addresses.publish_many([{"id": "2", "city": "Oslo"}, {"id": "3", "city": "Rome"}])
        want = {
            "1": {"name": "Ann", "city": None},
            "2": {"name": "Bo", "city": "Oslo"},
            "3": {"name": None, "city": "Rome"},
        }
        await wait_for(lambda: joined.table.snapshot() == want, what=f"{want}")
        assert joined.table["2"] == {"name": "Bo", "city": "Oslo"}


def test_joins_need_co_partitioned_inputs(backend: Backend) -> None:
    app = backend.app("shop")
    orders = app.topic("orders", Order, partitions=4)
    customers = app.topic("customers", Customer, partitions=2)
    with pytest.raises(ConfigError, match="co-partitioned"):
        app.stream(orders).join(customers, lambda o, c: o)
    with pytest.raises(ConfigError, match="co-partitioned"):
        app.stream(orders, name="s2").join_stream(customers, lambda o, c: o, within=1)


async def test_joined_state_and_positions_survive_a_restart(backend: Backend) -> None:
    def build() -> tuple[App, Any, Any, Any]:
        app = backend.app("shop")
        orders = app.topic("orders", Order, key=lambda o: o.customer)
        customers = app.topic("customers", Customer, key=lambda c: c.id)
        counts = (
            app.stream(orders, name="e").join(customers, lambda o, c: c.name).group_by().count()
        )
        return app, orders, customers, counts

    app, orders, customers, counts = build()
    async with app:
        await customers.publish(Customer(id="c1", name="Ann"))
        await wait_for(lambda: _table_has(app, "e.customers.table", 1), what="customer")
        await orders.publish(Order(id="o1", customer="c1", total=1))
        await wait_for(lambda: counts.table.get("c1") == 1, what="1")
    app, orders, customers, counts = build()
    async with app:
        await orders.publish(Order(id="o2", customer="c1", total=1))
        await wait_for(lambda: counts.table.get("c1") == 2, what="2 after restart")
        # The customer was not read again from the start: one row, the same one.
        assert app.tables["e.customers.table"].snapshot() == {"c1": Customer(id="c1", name="Ann")}


async def test_a_table_side_catches_up_before_the_stream_is_processed(backend: Backend) -> None:
    """A table topic with a backlog larger than a fetch is read to its end when the
    partition is assigned, so records already waiting find their table values."""
    app = backend.app("shop")
    orders = app.topic("orders", Order, key=lambda o: o.customer)
    customers = app.topic("customers", Customer, key=lambda c: c.id)
    joined = app.stream(orders, name="e").join(customers, lambda o, c: c.name).group_by().count()
    await app.connect()  # publish before the flow starts: a backlog on both topics
    await customers.publish_many([Customer(id=f"c{i}", name=f"n{i}") for i in range(3000)])
    await orders.publish_many(
        [Order(id=f"o{i}", customer=f"c{i * 97}", total=1) for i in range(30)]
    )
    async with app:
        await wait_for(lambda: sum(joined.table.snapshot().values()) == 30, what="30 joined")
