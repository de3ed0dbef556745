"""Checked by mypy in tests/unit/test_typing.py: the public API keeps user types."""

from collections.abc import Coroutine
from typing import Any, assert_type

from riverbed import App, Context, Event, Position, Record, Topic


class OrderPlaced(Event, type="order.placed"):
    order_id: str
    qty: int


app = App("typing", broker="memory://")
orders = app.topic("orders", OrderPlaced, partitions=3)
raw = app.topic("raw")
assert_type(orders, Topic[OrderPlaced])
assert_type(raw, Topic[bytes])


@app.consumer(orders, group="g")
async def handle(event: OrderPlaced, ctx: Context) -> None:
    await ctx.publish(orders, event)


@app.consumer(orders)
def handle_sync(record: Record[OrderPlaced]) -> int:
    return record.offset


def check(ctx: Context) -> None:
    coro = assert_type(handle(OrderPlaced(order_id="o", qty=1), ctx), Coroutine[Any, Any, None])
    coro.close()


assert_type(handle_sync(Record("i", "t", "s", 0, None, b"")), int)


async def publish() -> None:
    pos = await orders.publish(OrderPlaced(order_id="o1", qty=1))
    assert_type(pos, Position)
    many = await orders.publish_many([OrderPlaced(order_id="o2", qty=2)])
    assert_type(many, list[Position])
    orders.publish_sync(OrderPlaced(order_id="o3", qty=3))
