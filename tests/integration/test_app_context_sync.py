"""Sync handlers publish through `ctx.publish_sync`; sync handlers must not return coroutines."""

from __future__ import annotations

from riverbed import Context, Event

from .conftest import Backend, read_topic, wait_for


class Order(Event):
    id: str


class Shipment(Event):
    order_id: str


async def test_a_sync_handler_publishes_through_publish_sync(backend: Backend) -> None:
    app = backend.app("shop")
    orders = app.topic("orders", Order)
    shipments = app.topic("shipments", Shipment)

    @app.consumer(orders, group="ship")
    def ship(order: Order, ctx: Context) -> None:
        ctx.publish_sync(shipments, Shipment(order_id=order.id))

    async with app:
        await orders.publish_many([Order(id=f"o{i}") for i in range(5)])

        async def five() -> bool:
            return len(await read_topic(app.broker, "shipments")) == 5

        await wait_for(five, what="5 shipments")
        out = await read_topic(app.broker, "shipments")
    assert sorted(shipments.codec.decode(r.value).order_id for r in out) == [
        f"o{i}" for i in range(5)
    ]


async def test_a_sync_handler_returning_a_coroutine_is_a_failure_not_a_silent_drop(
    backend: Backend,
) -> None:
    app = backend.app("shop")
    orders = app.topic("orders", Order)

    async def forgot_async(order: Order) -> None:
        raise AssertionError("never awaited by design")

    @app.consumer(orders, group="g")
    def handler(order: Order):  # type: ignore[no-untyped-def]
        return forgot_async(order)

    async with app:
        await orders.publish(Order(id="o1"))

        async def dead_lettered() -> bool:
            return len(await read_topic(app.broker, "orders.dlq")) == 1

        await wait_for(dead_lettered, what="the record in orders.dlq")
        (dead,) = await read_topic(app.broker, "orders.dlq")
    assert dead.headers["dlq.error.type"] == "TypeError"
    assert "async def" in dead.headers["dlq.error.message"]
