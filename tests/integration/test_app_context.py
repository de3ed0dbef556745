"""`ctx.publish` from a handler: outputs downstream, atomic with the input's commit."""

from __future__ import annotations

import asyncio

from riverbed import App, Broker, Context, DeadLetter, Event, Position, Retry, Topic

from .conftest import Backend, fully_committed, read_topic, wait_for


class Order(Event):
    id: str
    qty: int


class Shipment(Event):
    order_id: str
    seq: int


def pipeline(backend: Backend) -> tuple[App, Topic[Order], Topic[Shipment]]:
    app = backend.app("shop")
    orders = app.topic("orders", Order)
    shipments = app.topic("shipments", Shipment, partitions=2)
    return app, orders, shipments


async def test_outputs_published_through_the_context_appear_downstream(backend: Backend) -> None:
    app, orders, shipments = pipeline(backend)
    returned: list[Position | None] = []
    contexts: list[tuple[str, int]] = []

    @app.consumer(orders, group="ship")
    async def ship(order: Order, ctx: Context) -> None:
        contexts.append((ctx.group, ctx.record.offset))
        returned.append(await ctx.publish(shipments, Shipment(order_id=order.id, seq=0)))
        returned.append(
            await ctx.publish("shipments", Shipment(order_id=order.id, seq=1), key=order.id)
        )

    async with app:
        await orders.publish_many([Order(id=f"o{i}", qty=i) for i in range(5)])
        await wait_for(lambda: _count(app.broker, "shipments", 10), what="10 shipments")
        out = await read_topic(app.broker, "shipments")
        transactional = app.broker.capabilities.transactions
    assert contexts == [("ship", i) for i in range(5)]
    assert sorted((shipments.codec.decode(r.value).order_id, r.source) for r in out) == sorted(
        (f"o{i}", "shop") for i in range(5) for _ in range(2)
    )
    # On a transactional backend outputs are held for the commit: no position yet.
    assert all((p is None) == transactional for p in returned)


async def _count(broker: Broker, topic: str, n: int) -> bool:
    return len(await read_topic(broker, topic)) >= n


async def test_an_output_is_never_visible_before_its_input_is_committed(backend: Backend) -> None:
    """Sample the log from the outside while the pipeline runs.

    Every time an output for input offset i is visible, the input offset must already be
    committed past i: output and commit are one transaction. (The committed offset only
    grows, so reading it after the outputs can only make the check easier to pass for
    an atomic implementation, never hide a torn one that we happen to observe.)
    """
    app, orders, shipments = pipeline(backend)
    n = 60

    @app.consumer(orders, group="ship")
    async def ship(order: Order, ctx: Context) -> None:
        await ctx.publish(shipments, Shipment(order_id=order.id, seq=ctx.record.offset))
        await asyncio.sleep(0)  # let commits and the sampler interleave with handling

    violations: list[str] = []
    samples = 0

    async def sampler(broker: Broker) -> None:
        nonlocal samples
        while True:
            outs = await read_topic(broker, "shipments")
            committed = (await broker.committed("ship", "orders")).get(0, 0)
            samples += 1
            for rec in outs:
                seq = shipments.codec.decode(rec.value).seq
                if seq >= committed:
                    violations.append(f"output of input {seq} visible, committed={committed}")
            if len(outs) == n and committed == n:
                return
            await asyncio.sleep(0)

    async with app, backend.inspect() as observer:
        watch = asyncio.create_task(sampler(observer))
        for i in range(0, n, 5):  # several small publishes: several commits
            await orders.publish_many([Order(id=f"o{j}", qty=j) for j in range(i, i + 5)])
            await asyncio.sleep(0.01)
        await asyncio.wait_for(watch, 10)
    assert samples > 1
    assert violations == []


async def test_a_dead_lettered_record_publishes_nothing_downstream(backend: Backend) -> None:
    app, orders, shipments = pipeline(backend)

    @app.consumer(orders, group="ship", retry=Retry(attempts=2, backoff=0.01))
    async def ship(order: Order, ctx: Context) -> None:
        await ctx.publish(shipments, Shipment(order_id=order.id, seq=0))
        if order.id == "poison":
            raise RuntimeError("fails after publishing")
        if order.id == "refused":
            raise DeadLetter("refused after publishing")

    async with app:
        await orders.publish_many(
            [Order(id="poison", qty=1), Order(id="refused", qty=1), Order(id="fine", qty=1)]
        )
        await wait_for(lambda: fully_committed(app.broker, "ship", "orders"), what="commit")
        out = await read_topic(app.broker, "shipments")
        dead = await read_topic(app.broker, "orders.dlq")
    assert [shipments.codec.decode(r.value).order_id for r in out] == ["fine"]
    assert sorted(r.headers["dlq.error.type"] for r in dead) == ["DeadLetter", "RuntimeError"]


async def test_outputs_of_a_failed_try_are_discarded_before_the_retry(backend: Backend) -> None:
    app, orders, shipments = pipeline(backend)
    tries: list[int] = []

    @app.consumer(orders, group="ship", retry=Retry(attempts=3, backoff=0.01))
    async def ship(order: Order, ctx: Context) -> None:
        tries.append(len(tries))
        await ctx.publish(shipments, Shipment(order_id=order.id, seq=len(tries)))
        if len(tries) < 3:
            raise ConnectionError("flaky downstream")

    async with app:
        await orders.publish(Order(id="a", qty=1))
        await wait_for(lambda: fully_committed(app.broker, "ship", "orders"), what="commit")
        out = await read_topic(app.broker, "shipments")
    assert [shipments.codec.decode(r.value).seq for r in out] == [3]


async def test_context_publish_to_an_undeclared_topic_fails_the_record(backend: Backend) -> None:
    app, orders, _ = pipeline(backend)

    @app.consumer(orders, group="ship", retry=Retry(attempts=1))
    async def ship(order: Order, ctx: Context) -> None:
        await ctx.publish("nowhere", order)

    async with app:
        await orders.publish(Order(id="a", qty=1))
        await wait_for(lambda: fully_committed(app.broker, "ship", "orders"), what="commit")
        [dead] = await read_topic(app.broker, "orders.dlq")
    assert dead.headers["dlq.error.type"] == "UnknownTopic"
    assert "nowhere" in dead.headers["dlq.error.message"]
