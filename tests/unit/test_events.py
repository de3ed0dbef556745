"""Event type names, the record envelope, and UUIDv7 ids."""

import dataclasses
import itertools
import re
import time
import uuid
from datetime import UTC, datetime, timedelta

import msgspec
import pydantic
import pytest

from riverbed.events import Event, IdGenerator, Record, event_type_of

UUID7 = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")


# -- event types -------------------------------------------------------------------------------
class OrderPlaced(Event, type="order.placed"):
    order_id: str
    total: float = 0.0


class Shipped(Event):
    order_id: str


class ExpressShipped(Shipped):
    pass


class Renamed(Shipped, type="shipping.renamed"):
    pass


def test_type_defaults_to_class_name() -> None:
    assert Shipped.__event_type__ == "Shipped"
    assert event_type_of(Shipped) == "Shipped"


def test_type_override() -> None:
    assert OrderPlaced.__event_type__ == "order.placed"
    assert event_type_of(OrderPlaced) == "order.placed"


def test_subclasses_get_their_own_type() -> None:
    assert event_type_of(ExpressShipped) == "ExpressShipped"
    assert event_type_of(Renamed) == "shipping.renamed"
    assert event_type_of(Shipped) == "Shipped"


def test_event_is_a_struct() -> None:
    e = OrderPlaced(order_id="o-1", total=9.5)
    assert isinstance(e, msgspec.Struct)
    assert msgspec.json.decode(msgspec.json.encode(e), type=OrderPlaced) == e


def test_the_type_keyword_is_not_a_field() -> None:
    assert [f.name for f in msgspec.structs.fields(OrderPlaced)] == ["order_id", "total"]
    assert msgspec.json.encode(OrderPlaced(order_id="x")) == b'{"order_id":"x","total":0.0}'


def test_type_of_other_schemas() -> None:
    @dataclasses.dataclass
    class Point:
        x: int

    class Model(pydantic.BaseModel):
        x: int

    class Plain(msgspec.Struct):
        x: int

    assert event_type_of(Point) == "Point"
    assert event_type_of(Model) == "Model"
    assert event_type_of(Plain) == "Plain"
    assert event_type_of(dict) is None
    assert event_type_of(bytes) is None
    assert event_type_of(OrderPlaced(order_id="x")) == "order.placed"


# -- ids --------------------------------------------------------------------------------------
def test_ids_are_uuid7_strings() -> None:
    gen = IdGenerator()
    for _ in range(1000):
        s = gen.new()
        assert UUID7.match(s), s
        u = uuid.UUID(s)
        assert u.version == 7
        assert u.variant == uuid.RFC_4122
        assert str(u) == s


def test_id_timestamp_is_now() -> None:
    gen = IdGenerator()
    before = time.time_ns() // 1_000_000
    s = gen.new()
    after = time.time_ns() // 1_000_000
    ms = uuid.UUID(s).int >> 80
    assert before <= ms <= after


def test_ids_are_monotonic_and_unique_over_100k() -> None:
    gen = IdGenerator()
    ids = [gen.new() for _ in range(100_000)]
    assert all(a < b for a, b in itertools.pairwise(ids))
    assert len(set(ids)) == len(ids)
    ints = [uuid.UUID(s).int for s in ids]
    assert ints == sorted(ints)


def test_counter_overflow_within_a_millisecond_keeps_order(monkeypatch: pytest.MonkeyPatch) -> None:
    frozen = 1_700_000_000_000 * 1_000_000
    monkeypatch.setattr(time, "time_ns", lambda: frozen)
    gen = IdGenerator()
    ids = [gen.new() for _ in range(10_000)]  # > 4096 per ms: the counter must roll over
    assert all(a < b for a, b in itertools.pairwise(ids))
    stamps = [uuid.UUID(s).int >> 80 for s in ids]
    assert stamps[0] == 1_700_000_000_000
    assert stamps[-1] > stamps[0]
    assert all(UUID7.match(s) for s in ids)


def test_ids_from_separate_generators_differ() -> None:
    a, b = IdGenerator(), IdGenerator()
    assert len({a.new() for _ in range(1000)} | {b.new() for _ in range(1000)}) == 2000


# -- records ----------------------------------------------------------------------------------
def record(timestamp: int, key: bytes | None = None) -> Record[object]:
    return Record(id="i", type="t", source="s", timestamp=timestamp, key=key, value=b"")


@pytest.mark.parametrize(
    ("timestamp", "expected"),
    [
        (0, datetime(1970, 1, 1, tzinfo=UTC)),
        (1_700_000_000_123, datetime(2023, 11, 14, 22, 13, 20, 123_000, tzinfo=UTC)),
        (1_700_000_000_999, datetime(2023, 11, 14, 22, 13, 20, 999_000, tzinfo=UTC)),
        (253_402_300_799_999, datetime(9999, 12, 31, 23, 59, 59, 999_000, tzinfo=UTC)),
    ],
)
def test_time_is_an_aware_utc_datetime(timestamp: int, expected: datetime) -> None:
    t = record(timestamp).time
    assert t == expected
    assert t.tzinfo is not None
    assert t.utcoffset() == timedelta(0)
    assert t.microsecond == expected.microsecond


def test_time_is_exact_to_the_millisecond() -> None:
    for ms in range(1_700_000_000_000, 1_700_000_000_000 + 2000, 7):
        t = record(ms).time
        assert round(t.timestamp() * 1000) == ms
        assert t.microsecond % 1000 == 0


def test_record_defaults_and_stored_form() -> None:
    r = record(5, key=b"k")
    assert (r.headers, r.topic, r.partition, r.offset, r.data) == ({}, "", -1, -1, None)
    assert record(5).headers is not r.headers
    back = msgspec.msgpack.decode(msgspec.msgpack.encode(r), type=Record[object])
    assert back == r


def test_key_str() -> None:
    assert record(0).key_str is None
    assert record(0, key=b"order-1").key_str == "order-1"
    raw = b"\xff\xfeok"
    text = record(0, key=raw).key_str
    assert text is not None
    assert text.encode("utf-8", "surrogateescape") == raw


def test_ids_made_in_bulk_are_valid_ordered_and_unique_with_single_ids() -> None:
    import uuid as _uuid

    from riverbed.events import IdGenerator as _Gen

    gen = _Gen()
    # 10k in one call exhausts a millisecond's 4096-step counter: it must borrow ahead.
    ids = gen.new_many(3) + [gen.new() for _ in range(5)] + gen.new_many(10_000) + [gen.new()]
    assert len(ids) == 10_009
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)
    for text in ids[::101]:
        parsed = _uuid.UUID(text)
        assert parsed.version == 7
        assert parsed.variant == _uuid.RFC_4122
