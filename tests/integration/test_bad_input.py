"""Bad input is refused at the edge with a message that says what and where, and never
crashes a worker or silently disappears."""

from __future__ import annotations

import dataclasses
from functools import partial
from typing import Any

import pydantic
import pytest

from riverbed import (
    App,
    BrokerURLError,
    ConfigError,
    Context,
    EncodeError,
    Event,
    InvalidTopicName,
    Record,
    RecordTooLarge,
    Retry,
    RiverbedError,
    SchemaError,
    TopicConflict,
    TopicSpec,
    UnknownTopic,
)
from riverbed.events import IdGenerator

from .conftest import Backend, fully_committed, read_topic, wait_for

_ids = IdGenerator()


class Order(Event):
    id: str
    qty: int


class Refund(Event):
    id: str


class PydanticOrder(pydantic.BaseModel):
    id: str
    qty: int


@dataclasses.dataclass
class DataclassOrder:
    id: str
    qty: int


def raw(value: bytes, partition: int = 0) -> Record[Any]:
    """A record carrying `value` as is, bypassing the producer's encoding."""
    return Record(_ids.new(), "Order", "elsewhere", 0, None, value, {}, partition=partition)


# -- undecodable records in the log ---------------------------------------------------------
async def test_malformed_json_goes_to_the_dlq_and_the_consumer_keeps_going(
    backend: Backend,
) -> None:
    app = backend.app()
    orders = app.topic("orders", Order)
    handled: list[str] = []

    @app.consumer(orders, group="g", retry=Retry(attempts=3, backoff=0.01))
    async def on_order(order: Order) -> None:
        handled.append(order.id)

    async with app:
        await orders.publish(Order(id="before", qty=1))
        [bad] = await app.broker.append("orders", [raw(b"{not json")])
        await orders.publish(Order(id="after", qty=2))
        await wait_for(lambda: fully_committed(app.broker, "g", "orders"), what="commit")
        [dead] = await read_topic(app.broker, "orders.dlq")
    assert handled == ["before", "after"]
    assert bad == 1
    assert dead.value == b"{not json"
    h = dead.headers
    assert h["dlq.error.type"] == "DecodeError"
    assert h["dlq.attempts"] == "1"  # retrying cannot fix a payload
    message = h["dlq.error.message"]
    assert "'orders'" in message
    assert "partition 0" in message
    assert "offset 1" in message
    assert (h["dlq.topic"], h["dlq.partition"], h["dlq.offset"]) == ("orders", "0", "1")
    [snap] = app.statistics()
    assert (snap.handled, snap.dead_lettered, snap.errors) == (2, 1, 0)


@pytest.mark.parametrize(
    ("schema", "field_path"),
    [
        pytest.param(Order, "$.qty", id="event"),
        pytest.param(DataclassOrder, "$.qty", id="dataclass"),
        pytest.param(PydanticOrder, "qty", id="pydantic"),
    ],
)
async def test_a_payload_of_the_wrong_shape_is_dead_lettered_naming_the_field(
    backend: Backend, schema: Any, field_path: str
) -> None:
    app = backend.app()
    orders = app.topic("orders", schema)
    handled: list[Any] = []

    @app.consumer(orders, group="g")
    async def on_order(order: Any) -> None:
        handled.append(order)

    async with app:
        await app.broker.append("orders", [raw(b'{"id": "a", "qty": "many"}')])
        await orders.publish(schema(id="ok", qty=1))
        await wait_for(lambda: fully_committed(app.broker, "g", "orders"), what="commit")
        [dead] = await read_topic(app.broker, "orders.dlq")
    assert [h.id for h in handled] == ["ok"]
    assert dead.headers["dlq.error.type"] == "DecodeError"
    message = dead.headers["dlq.error.message"]
    assert field_path in message
    assert schema.__name__ in message
    assert "offset 0" in message


async def test_a_dict_topic_dead_letters_a_json_array(backend: Backend) -> None:
    app = backend.app()
    topic = app.topic("docs", dict)

    @app.consumer(topic, group="g")
    async def on_doc(doc: dict[str, Any]) -> None:
        pass

    async with app:
        await app.broker.append("docs", [raw(b"[1, 2]")])
        await wait_for(lambda: fully_committed(app.broker, "g", "docs"), what="commit")
        [dead] = await read_topic(app.broker, "docs.dlq")
    assert dead.headers["dlq.error.type"] == "DecodeError"
    assert "object" in dead.headers["dlq.error.message"]


# -- topic names ------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["", "a b", "x" * 250, "ä", "..", ".", "a/b", "t\n"])
def test_invalid_topic_names_are_refused_with_the_rule(name: str) -> None:
    app = App("shop", broker="memory://")
    with pytest.raises(InvalidTopicName) as info:
        app.topic(name)
    assert isinstance(info.value, ValueError)
    message = str(info.value)
    assert repr(name) in message
    assert "1 to 249 characters" in message
    assert "A-Z a-z 0-9 . _ -" in message
    assert name not in app.topics


@pytest.mark.parametrize("name", ["a", "x" * 249, "orders.v2", "Orders_2-eu", "..."])
def test_valid_topic_names_at_the_edges_are_accepted(name: str) -> None:
    assert App("shop", broker="memory://").topic(name).name == name


# -- publishing the wrong thing ------------------------------------------------------------
async def test_publishing_the_wrong_event_type_names_both_types(backend: Backend) -> None:
    app = backend.app()
    orders = app.topic("orders", Order)
    async with app:
        with pytest.raises(EncodeError) as info:
            await orders.publish(Refund(id="r"))  # type: ignore[arg-type]
        assert isinstance(info.value, SchemaError)
        assert isinstance(info.value, TypeError)
        assert "Order" in str(info.value)
        assert "Refund" in str(info.value)
        with pytest.raises(EncodeError, match="Refund"):
            await orders.publish_many([Order(id="ok", qty=1), Refund(id="r")])  # type: ignore[list-item]
        assert await read_topic(app.broker, "orders") == []  # nothing of the batch landed


@pytest.mark.parametrize(
    ("schema", "event", "names"),
    [
        pytest.param(
            PydanticOrder, Order(id="a", qty=1), ["PydanticOrder", "Order"], id="pydantic"
        ),
        pytest.param(DataclassOrder, {"id": "a", "qty": 1}, ["DataclassOrder", "dict"], id="dc"),
        pytest.param(bytes, "text", ["bytes", "str"], id="bytes"),
        pytest.param(dict, [1, 2], ["dict", "list"], id="dict"),
    ],
)
async def test_publishing_a_mismatched_value_is_refused(
    backend: Backend, schema: Any, event: Any, names: list[str]
) -> None:
    app = backend.app()
    topic = app.topic("things", schema)
    async with app:
        with pytest.raises(EncodeError) as info:
            await topic.publish(event)
        assert all(n in str(info.value) for n in names), str(info.value)
        assert await read_topic(app.broker, "things") == []


async def test_a_key_of_an_unsupported_type_is_refused(backend: Backend) -> None:
    app = backend.app()
    topic = app.topic("things", bytes)
    async with app:
        with pytest.raises(EncodeError, match="float"):
            await topic.publish(b"x", key=1.5)  # type: ignore[arg-type]


# -- size limits ------------------------------------------------------------------------------
async def test_a_record_over_the_default_limit_is_refused(backend: Backend) -> None:
    app = backend.app()
    topic = app.topic("blobs", bytes)
    limit = 1 << 20
    async with app:
        assert (await topic.publish(b"x" * limit)).offset == 0  # exactly at the limit
        with pytest.raises(RecordTooLarge) as info:
            await topic.publish(b"x" * (limit + 1))
        assert isinstance(info.value, ValueError)
        message = str(info.value)
        assert "'blobs'" in message
        assert str(limit + 1) in message
        assert str(limit) in message
        assert len(await read_topic(app.broker, "blobs")) == 1


async def test_a_configured_limit_counts_key_and_value(backend: Backend) -> None:
    app = backend.app(max_record_bytes=1000)
    topic = app.topic("small", bytes)
    async with app:
        await topic.publish(b"x" * 1000)
        with pytest.raises(RecordTooLarge, match=r"'small' is 1001 bytes.* limit of 1000"):
            await topic.publish(b"x" * 1001)
        with pytest.raises(RecordTooLarge, match="1001 bytes"):
            await topic.publish(b"x" * 995, key="123456")
        with pytest.raises(RecordTooLarge):
            await topic.publish_many([b"ok", b"x" * 2000, b"ok"])
        with pytest.raises(RecordTooLarge):
            await topic.publish_many([b"ok", b"x" * 2000], key=lambda v: "k")
        stored = await read_topic(app.broker, "small")
    assert [len(r.value) for r in stored] == [1000]  # nothing else was appended


async def test_an_oversized_output_of_a_handler_dead_letters_its_input(backend: Backend) -> None:
    app = backend.app(max_record_bytes=1000)
    source = app.topic("source", bytes)
    sink = app.topic("sink", bytes)

    @app.consumer(source, group="g", retry=Retry(attempts=1))
    async def amplify(data: bytes, ctx: Context) -> None:
        await ctx.publish(sink, data * 100)

    async with app:
        await source.publish_many([b"0123456789x", b"y"])
        await wait_for(lambda: fully_committed(app.broker, "g", "source"), what="commit")
        [dead] = await read_topic(app.broker, "source.dlq")
        out = await read_topic(app.broker, "sink")
    assert dead.headers["dlq.error.type"] == "RecordTooLarge"
    assert "'sink'" in dead.headers["dlq.error.message"]
    assert [r.value for r in out] == [b"y" * 100]


# -- configuration ----------------------------------------------------------------------------
async def test_an_unknown_broker_scheme_lists_the_known_ones() -> None:
    app = App("shop", broker="kafkaa://localhost:9092")
    with pytest.raises(BrokerURLError) as info:
        async with app:
            pass
    assert isinstance(info.value, ValueError)
    message = str(info.value)
    assert "'kafkaa'" in message
    assert "memory" in message
    assert "sqlite" in message
    assert app.status() == "stopped"


async def test_a_broker_url_without_a_scheme_says_what_one_looks_like() -> None:
    with pytest.raises(BrokerURLError, match="sqlite:///"):
        await App("shop", broker="data/app.db").connect()


async def test_the_env_override_is_checked_the_same_way(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RIVERBED_BROKER", "bogus://x")
    with pytest.raises(BrokerURLError, match="'bogus'"):
        await App("shop", broker="memory://").connect()


async def test_a_topic_declared_with_other_partitions_conflicts_at_start(
    backend: Backend,
) -> None:
    async with backend.inspect() as broker:
        await broker.create_topic(TopicSpec("orders", 3))
    app = backend.app()
    app.topic("orders", Order, partitions=2)
    with pytest.raises(TopicConflict, match="3 partitions"):
        async with app:
            pass


def test_declaration_mistakes_are_config_errors() -> None:
    app = App("shop", broker="memory://")
    orders = app.topic("orders", Order)
    with pytest.raises(ConfigError, match="declared twice"):
        app.topic("orders", Order)
    with pytest.raises(ConfigError, match="partitions"):
        app.topic("empty", partitions=0)
    with pytest.raises(ConfigError, match="concurrency"):
        app.consumer(orders, concurrency=0)
    with pytest.raises(ConfigError, match="attempts"):
        Retry(attempts=0)
    with pytest.raises(ConfigError, match="app name"):
        App("my app")
    with pytest.raises(EncodeError, match="unsupported topic schema int"):
        app.topic("ints", int)
    with pytest.raises(UnknownTopic, match=r"'nope'.*declared: orders"):
        app.consumer("nope")


async def test_publishing_to_an_undeclared_topic_names_the_declared_ones() -> None:
    app = App("shop", broker="memory://")
    app.topic("orders", Order)
    with pytest.raises(UnknownTopic, match=r"'ordres'.*declared: orders"):
        await app.publish("ordres", Order(id="a", qty=1))


# -- handlers ---------------------------------------------------------------------------------
async def test_a_handler_failing_every_time_never_kills_the_worker(backend: Backend) -> None:
    app = backend.app()
    orders = app.topic("orders", Order, partitions=2)
    handled: list[str] = []

    @app.consumer(orders, group="g", retry=Retry(attempts=2, backoff=0.001), concurrency=2)
    async def broken(order: Order) -> None:
        if order.id.startswith("bad"):
            raise RuntimeError(f"{order.id} is broken")
        handled.append(order.id)

    @app.consumer(orders, group="g-sync", retry=Retry(attempts=2, backoff=0.001))
    def broken_sync(order: Order) -> None:
        if order.id.startswith("bad"):
            raise KeyError(order.id)

    async with app:
        await orders.publish_many([Order(id=f"bad{i}", qty=i) for i in range(10)])
        for group in ("g", "g-sync"):
            await wait_for(partial(fully_committed, app.broker, group, "orders"), what=group)
        generation = {s.group: s.generation for s in app.statistics()}
        await orders.publish(Order(id="good", qty=1))
        await wait_for(lambda: handled == ["good"], what="the good record after the bad ones")
        dead = await read_topic(app.broker, "orders.dlq")
    assert len(dead) == 20
    assert {r.headers["dlq.error.type"] for r in dead} == {"RuntimeError", "KeyError"}
    for snap in app.statistics():
        assert (snap.errors, snap.rebalances) == (0, 0), snap
        assert snap.generation == generation[snap.group]  # same session throughout
        assert snap.dead_lettered == 10


@pytest.mark.parametrize("arity", [0, 3])
def test_a_handler_with_a_wrong_signature_is_refused_at_registration(arity: int) -> None:
    app = App("shop", broker="memory://")
    orders = app.topic("orders", Order)
    params = ", ".join(f"p{i}" for i in range(arity))
    namespace: dict[str, Any] = {}
    exec(f"async def handler({params}):\n    pass", namespace)
    with pytest.raises(TypeError, match=r"\(event\) or \(event, ctx\)"):
        app.consumer(orders)(namespace["handler"])
    assert app.consumers == []


# -- headers ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "headers",
    [
        pytest.param({"attempt": 1}, id="int-value"),
        pytest.param({"trace": None}, id="none-value"),
        pytest.param({7: "x"}, id="int-name"),
        pytest.param({"raw": b"bytes"}, id="bytes-value"),
    ],
)
async def test_headers_that_are_not_text_are_refused_at_the_edge(
    backend: Backend, headers: dict[Any, Any]
) -> None:
    """Headers are str -> str (CloudEvents, W3C trace context). Anything else must be
    refused by publish, naming the header: stored, it cannot be read back as a record
    (and on a batch-per-row log it takes its neighbours with it)."""
    app = backend.app()
    topic = app.topic("things", bytes)
    handled: list[bytes] = []

    @app.consumer(topic, group="g")
    async def on_thing(data: bytes) -> None:
        handled.append(data)

    name = repr(next(iter(headers)))
    async with app:
        for publish in (
            lambda: topic.publish(b"x", headers=headers),
            lambda: topic.publish_many([b"x", b"y"], headers=headers),
            lambda: app.publish("things", b"x", headers=headers),
        ):
            with pytest.raises(TypeError) as info:
                await publish()
            assert isinstance(info.value, RiverbedError)
            assert name in str(info.value)
        assert await read_topic(app.broker, "things") == []
        await topic.publish(b"fine", headers={"ok": "yes"})
        await wait_for(lambda: handled == [b"fine"], what="the next good record")
    [snap] = app.statistics()
    assert snap.errors == 0


async def test_headers_count_towards_the_record_size_limit(backend: Backend) -> None:
    app = backend.app(max_record_bytes=1000)
    topic = app.topic("small", bytes)
    async with app:
        with pytest.raises(RecordTooLarge, match="'small'"):
            await topic.publish(b"x", headers={"blob": "x" * 5000})
        with pytest.raises(RecordTooLarge):
            await topic.publish_many([b"x"], headers={"blob": "x" * 5000})
        assert await read_topic(app.broker, "small") == []
