"""Schema codecs: round trips in JSON and msgpack, and errors that name what is wrong."""

import dataclasses
from datetime import UTC, datetime
from typing import Any

import msgspec
import pydantic
import pytest

from riverbed.codecs import SchemaCodec, make_codec
from riverbed.errors import DecodeError, EncodeError, RiverbedError, SchemaError
from riverbed.events import Event

FORMATS = ["json", "msgpack"]


class OrderPlaced(Event, type="order.placed"):
    order_id: str
    qty: int
    at: datetime | None = None
    tags: list[str] = msgspec.field(default_factory=list)


@dataclasses.dataclass
class Shipment:
    order_id: str
    qty: int


class Refund(pydantic.BaseModel):
    order_id: str
    qty: int
    at: datetime | None = None


class Note(pydantic.BaseModel):
    extra: Any = None


def dump(fmt: str, obj: Any) -> bytes:
    return msgspec.json.encode(obj) if fmt == "json" else msgspec.msgpack.encode(obj)


AT = datetime(2024, 5, 1, 12, 30, 15, 123000, tzinfo=UTC)
SAMPLES: list[tuple[Any, Any]] = [
    (OrderPlaced, OrderPlaced(order_id="o-1", qty=3, at=AT, tags=["a", "ü"])),
    (Shipment, Shipment(order_id="o-2", qty=4)),
    (Refund, Refund(order_id="o-3", qty=5, at=AT)),
    (dict, {"order_id": "o-4", "qty": 6, "nested": {"x": [1, 2.5, None, True]}}),
    (bytes, bytes(range(256))),
    (bytes, b""),
]


# -- round trips ----------------------------------------------------------------------------
@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize(("schema", "event"), SAMPLES)
def test_round_trip(fmt: Any, schema: Any, event: Any) -> None:
    codec = make_codec(schema, fmt)
    payload = codec.encode(event)
    assert isinstance(payload, bytes)
    back = codec.decode(payload)
    assert back == event
    assert type(back) is type(event)


@pytest.mark.parametrize("fmt", FORMATS)
def test_codec_names_and_content_types(fmt: Any) -> None:
    codec = make_codec(OrderPlaced, fmt)
    assert codec.name == fmt
    assert codec.content_type == {"json": "application/json", "msgpack": "application/msgpack"}[fmt]


def test_json_is_plain_json_any_reader_can_parse() -> None:
    payload = make_codec(Refund).encode(Refund(order_id="o", qty=1))
    assert msgspec.json.decode(payload) == {"order_id": "o", "qty": 1, "at": None}
    payload = make_codec(Shipment).encode(Shipment(order_id="o", qty=1))
    assert msgspec.json.decode(payload) == {"order_id": "o", "qty": 1}


def test_bytes_topic_accepts_bytearray_and_memoryview() -> None:
    codec = make_codec(bytes)
    assert codec.encode(bytearray(b"ab")) == b"ab"
    assert codec.encode(memoryview(b"cd")) == b"cd"
    assert codec.decode(b"\x00\xff") == b"\x00\xff"


# -- encode errors --------------------------------------------------------------------------
@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize(
    ("schema", "wrong"),
    [
        pytest.param(OrderPlaced, Shipment(order_id="o", qty=1), id="struct<-dataclass"),
        pytest.param(Shipment, {"order_id": "o", "qty": 1}, id="dataclass<-dict"),
        pytest.param(Refund, OrderPlaced(order_id="o", qty=1), id="pydantic<-struct"),
        pytest.param(bytes, "text", id="bytes<-str"),
        pytest.param(dict, [1, 2], id="dict<-list"),
        pytest.param(dict, "text", id="dict<-str"),
    ],
)
def test_wrong_type_on_encode_names_both_types(fmt: Any, schema: Any, wrong: Any) -> None:
    codec = make_codec(schema, fmt)
    with pytest.raises(EncodeError) as info:
        codec.encode(wrong)
    message = str(info.value)
    assert schema.__name__ in message
    assert type(wrong).__name__ in message
    assert isinstance(info.value, TypeError)


@pytest.mark.parametrize("fmt", FORMATS)
def test_unencodable_value_is_an_encode_error(fmt: Any) -> None:
    codec = make_codec(dict, fmt)
    with pytest.raises(EncodeError, match="dict"):
        codec.encode({"when": object()})


@pytest.mark.parametrize("fmt", FORMATS)
def test_unencodable_pydantic_value_is_an_encode_error(fmt: Any) -> None:
    codec = make_codec(Note, fmt)
    with pytest.raises(EncodeError, match="Note"):
        codec.encode(Note(extra=object()))


# -- decode errors --------------------------------------------------------------------------
@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("schema", [OrderPlaced, Shipment])
def test_bad_field_is_a_decode_error_naming_the_field(fmt: Any, schema: Any) -> None:
    codec = make_codec(schema, fmt)
    with pytest.raises(DecodeError) as info:
        codec.decode(dump(fmt, {"order_id": "o", "qty": "three"}))
    assert "$.qty" in str(info.value)
    assert schema.__name__ in str(info.value)
    assert isinstance(info.value, TypeError)


@pytest.mark.parametrize("fmt", FORMATS)
def test_bad_pydantic_field_is_a_decode_error_naming_the_field(fmt: Any) -> None:
    codec = make_codec(Refund, fmt)
    with pytest.raises(DecodeError) as info:
        codec.decode(dump(fmt, {"order_id": "o", "qty": "three"}))
    assert "qty" in str(info.value)
    assert "Refund" in str(info.value)


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("schema", [OrderPlaced, Shipment, Refund])
def test_missing_field_is_a_decode_error_naming_it(fmt: Any, schema: Any) -> None:
    with pytest.raises(DecodeError, match="qty"):
        make_codec(schema, fmt).decode(dump(fmt, {"order_id": "o"}))


@pytest.mark.parametrize("fmt", FORMATS)
def test_nested_field_path_is_named(fmt: Any) -> None:
    with pytest.raises(DecodeError, match=r"\$\.tags\[1\]"):
        make_codec(OrderPlaced, fmt).decode(
            dump(fmt, {"order_id": "o", "qty": 1, "tags": ["ok", 5]})
        )


@pytest.mark.parametrize("schema", [OrderPlaced, Shipment, Refund, dict])
@pytest.mark.parametrize("payload", [b"{", b"not json", b"", b'{"order_id": "o", "qty": 1'])
def test_malformed_json_is_a_decode_error(schema: Any, payload: bytes) -> None:
    with pytest.raises(DecodeError):
        make_codec(schema).decode(payload)


@pytest.mark.parametrize("schema", [OrderPlaced, Shipment, Refund, dict])
def test_malformed_msgpack_is_a_decode_error(schema: Any) -> None:
    with pytest.raises(DecodeError):
        make_codec(schema, "msgpack").decode(b"\xc1\xc1")


@pytest.mark.parametrize("fmt", FORMATS)
def test_dict_topic_rejects_non_objects(fmt: Any) -> None:
    with pytest.raises(DecodeError):
        make_codec(dict, fmt).decode(dump(fmt, [1, 2]))


def test_decode_error_is_a_schema_error() -> None:
    with pytest.raises(SchemaError):
        make_codec(Shipment).decode(b"[]")


# -- schemas --------------------------------------------------------------------------------
class NotASchema:
    pass


@pytest.mark.parametrize("schema", [int, str, list[int], NotASchema, "OrderPlaced", None])
def test_unsupported_schema_is_rejected(schema: Any) -> None:
    with pytest.raises(EncodeError) as info:
        make_codec(schema)
    message = str(info.value)
    assert "unsupported topic schema" in message
    assert "pydantic model" in message


def test_unknown_format_is_rejected() -> None:
    with pytest.raises(RiverbedError, match="xml"):
        SchemaCodec(OrderPlaced, "xml")  # type: ignore[arg-type]


# -- from_builtins --------------------------------------------------------------------------
def test_from_builtins_builds_and_converts() -> None:
    data = {"order_id": "o", "qty": 2, "at": "2024-05-01T12:30:15.123Z"}
    assert make_codec(OrderPlaced).from_builtins(data) == OrderPlaced(order_id="o", qty=2, at=AT)
    assert make_codec(Refund).from_builtins(data) == Refund(order_id="o", qty=2, at=AT)
    assert make_codec(Shipment).from_builtins({"order_id": "o", "qty": 2}) == Shipment("o", 2)
    assert make_codec(dict).from_builtins({"a": [1]}) == {"a": [1]}
    assert make_codec(bytes).from_builtins("héllo") == "héllo".encode()
    assert make_codec(bytes).from_builtins(b"\x00") == b"\x00"


@pytest.mark.parametrize("schema", [OrderPlaced, Shipment, Refund])
def test_from_builtins_validates(schema: Any) -> None:
    codec = make_codec(schema)
    with pytest.raises(DecodeError, match="qty"):
        codec.from_builtins({"order_id": "o", "qty": "two"})
    with pytest.raises(DecodeError, match="qty"):
        codec.from_builtins({"order_id": "o"})
    with pytest.raises(DecodeError):
        codec.from_builtins([1, 2])


def test_from_builtins_validates_dict_and_bytes() -> None:
    with pytest.raises(DecodeError):
        make_codec(dict).from_builtins([1, 2])
    with pytest.raises(DecodeError, match="int"):
        make_codec(bytes).from_builtins(5)
