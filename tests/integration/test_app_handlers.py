"""Handler signatures and payload schemas, end to end through the log."""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

import pydantic
import pytest

from riverbed import App, ConfigError, Context, Event, Record

from .conftest import Backend, read_topic, wait_for


class Order(Event, type="order.placed"):
    id: str
    qty: int


class PydanticOrder(pydantic.BaseModel):
    id: str
    qty: int
    tags: list[str] = []


@dataclasses.dataclass
class DataclassOrder:
    id: str
    qty: int


async def test_handler_taking_the_event(backend: Backend) -> None:
    app = backend.app()
    orders = app.topic("orders", Order)
    got: list[Any] = []

    @app.consumer(orders)
    async def on_order(order: Order) -> None:
        got.append(order)

    async with app:
        await orders.publish(Order(id="a", qty=1))
        await wait_for(lambda: got, what="the event")
    assert got == [Order(id="a", qty=1)]


async def test_handler_taking_the_event_and_the_context(backend: Backend) -> None:
    app = backend.app()
    orders = app.topic("orders", Order)
    got: list[tuple[Order, str, int]] = []

    @app.consumer(orders, group="with-ctx")
    async def on_order(order: Order, ctx: Context) -> None:
        got.append((order, ctx.group, ctx.record.offset))

    async with app:
        await orders.publish(Order(id="a", qty=1))
        await wait_for(lambda: got, what="the event")
    assert got == [(Order(id="a", qty=1), "with-ctx", 0)]


async def test_handler_taking_the_whole_record(backend: Backend) -> None:
    app = backend.app("billing")
    orders = app.topic("orders", Order, partitions=2)
    got: list[Record[Order]] = []

    @app.consumer(orders)
    async def on_record(record: Record[Order]) -> None:
        got.append(record)

    async with app:
        pos = await orders.publish(Order(id="a", qty=1), key="k", headers={"x": "y"})
        await wait_for(lambda: got, what="the record")
    [rec] = got
    assert isinstance(rec, Record)
    assert rec.data == Order(id="a", qty=1)
    assert (rec.topic, rec.partition, rec.offset) == tuple(pos)
    assert (rec.type, rec.source, rec.key, rec.headers) == (
        "order.placed",
        "billing",
        b"k",
        {"x": "y"},
    )


async def test_handler_taking_a_bare_record_annotation(backend: Backend) -> None:
    app = backend.app()
    orders = app.topic("orders", Order)
    got: list[Any] = []

    @app.consumer(orders)
    def on_record(record: Record, ctx: Context) -> None:  # type: ignore[type-arg]
        got.append(record)

    async with app:
        await orders.publish(Order(id="a", qty=1))
        await wait_for(lambda: got, what="the record")
    assert isinstance(got[0], Record)
    assert got[0].data == Order(id="a", qty=1)


async def test_record_annotation_naming_a_locally_defined_schema(backend: Backend) -> None:
    """With postponed annotations (this module), `Record[Local]` is a string that
    cannot be resolved from the module's globals; the handler must still get the
    record, not silently the event."""

    class LocalOrder(Event):
        id: str

    app = backend.app()
    orders = app.topic("orders", LocalOrder)
    got: list[Any] = []

    @app.consumer(orders)
    async def on_record(record: Record[LocalOrder]) -> None:
        got.append(record)

    async with app:
        await orders.publish(LocalOrder(id="a"))
        await wait_for(lambda: got, what="a delivery")
    assert isinstance(got[0], Record), f"handler got {type(got[0]).__name__}, not the Record"


@pytest.mark.parametrize(
    ("schema", "event"),
    [
        pytest.param(Order, Order(id="a", qty=1), id="event"),
        pytest.param(PydanticOrder, PydanticOrder(id="a", qty=1, tags=["gift"]), id="pydantic"),
        pytest.param(DataclassOrder, DataclassOrder(id="a", qty=1), id="dataclass"),
        pytest.param(dict, {"id": "a", "qty": 1, "nested": {"x": [1, 2]}}, id="dict"),
        pytest.param(bytes, b"\x00\xffraw bytes", id="bytes"),
    ],
)
async def test_schemas_round_trip_end_to_end(backend: Backend, schema: Any, event: Any) -> None:
    app = backend.app()
    topic = app.topic("things", schema)
    got: list[Any] = []
    types: list[str] = []

    @app.consumer(topic)
    async def on_thing(record: Record[Any]) -> None:
        got.append(record.data)
        types.append(record.type)

    async with app:
        await topic.publish(event)
        await topic.publish_many([event, event])
        await wait_for(lambda: len(got) == 3, what="three deliveries")
    assert got == [event, event, event]
    assert all(type(g) is type(event) for g in got)
    expected_type = {Order: "order.placed", dict: "things", bytes: "things"}.get(
        schema, schema.__name__
    )
    assert types == [expected_type] * 3


async def test_sync_handler_receives_decoded_pydantic_models(backend: Backend) -> None:
    app = backend.app()
    topic = app.topic("things", PydanticOrder)
    got: list[PydanticOrder] = []

    @app.consumer(topic)
    def on_thing(order: PydanticOrder) -> None:
        got.append(order)

    async with app:
        await topic.publish(PydanticOrder(id="p", qty=3))
        await wait_for(lambda: got, what="delivery")
    assert got == [PydanticOrder(id="p", qty=3)]


async def test_stored_payload_is_plain_json(backend: Backend) -> None:
    app = backend.app()
    topic = app.topic("things", PydanticOrder)
    async with app:
        await topic.publish(PydanticOrder(id="p", qty=3))
        [rec] = await read_topic(app.broker, "things")
    assert rec.value == b'{"id":"p","qty":3,"tags":[]}'


async def test_several_handlers_of_one_group_each_see_every_record(backend: Backend) -> None:
    app = backend.app()
    orders = app.topic("orders", Order)
    got: dict[str, list[str]] = {"a": [], "b": []}

    @app.consumer(orders, group="both")
    async def first(order: Order) -> None:
        got["a"].append(order.id)

    @app.consumer(orders, group="both")
    def second(order: Order) -> None:
        got["b"].append(order.id)

    async with app:
        assert [m.group for m in app.members] == ["both"]
        await orders.publish_many([Order(id="x", qty=1), Order(id="y", qty=1)])
        await wait_for(lambda: len(got["a"]) == len(got["b"]) == 2, what="both handlers")
    assert got == {"a": ["x", "y"], "b": ["x", "y"]}


def test_consumer_returns_the_handler_unchanged() -> None:
    app = App("shop", broker="memory://")
    orders = app.topic("orders", Order)

    async def on_order(order: Order) -> None:
        pass

    assert app.consumer(orders)(on_order) is on_order
    [spec] = app.consumers
    assert spec.group == "shop.on_order"
    assert "orders.dlq" in app.topics


class OrderHandler:
    """A handler object: `async def __call__` makes it an async handler."""

    def __init__(self) -> None:
        self.got: list[Any] = []

    async def __call__(self, record: Record[Order]) -> None:
        await asyncio.sleep(0)
        self.got.append(record)


async def test_a_callable_object_with_an_async_call_is_awaited(backend: Backend) -> None:
    app = backend.app()
    orders = app.topic("orders", Order)
    handler = OrderHandler()
    app.consumer(orders, group="object")(handler)

    async with app:
        await orders.publish(Order(id="a", qty=1))
        await wait_for(lambda: app.statistics()[0].handled == 1, what="handled")
        await wait_for(lambda: handler.got, timeout=1, what="the handler to really run")
    assert isinstance(handler.got[0], Record)
    assert handler.got[0].data == Order(id="a", qty=1)


async def test_each_group_gets_its_own_copy_of_the_event(backend: Backend) -> None:
    app = backend.app()
    docs = app.topic("docs", dict)
    mutated = asyncio.Event()
    seen_by_b: list[dict[str, Any]] = []

    @app.consumer(docs, group="a")
    async def a(doc: dict[str, Any]) -> None:
        doc["touched_by"] = "a"
        doc["items"].append("from a")
        mutated.set()

    @app.consumer(docs, group="b")
    async def b(doc: dict[str, Any]) -> None:
        await asyncio.wait_for(mutated.wait(), 5)
        seen_by_b.append(doc)

    async with app:
        await docs.publish({"items": []})
        await wait_for(lambda: seen_by_b, what="group b")
    assert seen_by_b == [{"items": []}]


def test_a_handler_object_without_a_name_needs_an_explicit_group() -> None:
    app = App("shop", broker="memory://")
    orders = app.topic("orders", Order)
    with pytest.raises(ConfigError, match="group="):
        app.consumer(orders)(OrderHandler())
    assert app.consumers == []
    app.consumer(orders, group="named")(OrderHandler())
    assert [c.group for c in app.consumers] == ["named"]
