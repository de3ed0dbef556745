"""Payload codecs: schema-aware encoding and validating decoding.

A topic's schema may be an `Event` (msgspec Struct), a pydantic v2 model, a dataclass,
`dict` or `bytes`. JSON (msgspec) is the default format; msgpack is the compact option.
pydantic is only touched when a schema is a pydantic model, so it is never imported
otherwise. Nothing here ever decodes pickle.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any, Literal, Protocol

import msgspec

from riverbed.errors import DecodeError, EncodeError

__all__ = ["Codec", "CodecName", "SchemaCodec", "make_codec"]

CodecName = Literal["json", "msgpack"]
CONTENT_TYPES: dict[str, str] = {"json": "application/json", "msgpack": "application/msgpack"}


class Codec(Protocol):
    """Turns a topic's events into bytes and back."""

    name: str
    content_type: str

    def encode(self, event: Any) -> bytes:
        """Encode one event; raises `EncodeError` naming the type when it does not fit."""

    def decode(self, payload: bytes) -> Any:
        """Decode and validate; raises `DecodeError` naming the field and the problem."""

    def from_builtins(self, obj: Any) -> Any:
        """Build an event from JSON-like data (CLI, HTTP), validating it."""


def _is_pydantic(schema: object) -> bool:
    return (
        isinstance(schema, type)
        and hasattr(schema, "model_validate")
        and hasattr(schema, "model_fields")
    )


def schema_name(schema: object) -> str:
    """A short printable name for a schema, for messages."""
    return getattr(schema, "__name__", repr(schema))


class SchemaCodec:
    """The codec for one schema and one format."""

    def __init__(self, schema: Any, name: CodecName = "json") -> None:
        if name not in CONTENT_TYPES:
            raise EncodeError(f"unknown codec {name!r}; use 'json' or 'msgpack'")
        self.schema = schema
        self.name = name
        self.content_type = CONTENT_TYPES[name]
        self._pydantic = _is_pydantic(schema)
        self._raw = schema is bytes
        target: Any = dict[str, Any] if schema is dict else schema
        if self._pydantic or self._raw:
            target = Any
        mod = msgspec.json if name == "json" else msgspec.msgpack
        self._encoder = mod.Encoder()
        self._decoder: Any = mod.Decoder(type=target)
        self._target = target
        self._check_type = schema if isinstance(schema, type) and schema is not dict else None

    def encode(self, event: Any) -> bytes:
        if self._raw:
            if isinstance(event, bytes | bytearray | memoryview):
                return bytes(event)
            raise EncodeError(f"this topic takes bytes, got {type(event).__name__}")
        if self.schema is dict and not isinstance(event, Mapping):
            raise EncodeError(f"this topic takes dict, got {type(event).__name__}")
        if self._check_type is not None and not isinstance(event, self._check_type):
            raise EncodeError(
                f"this topic takes {schema_name(self.schema)}, got {type(event).__name__}; "
                f"build a {schema_name(self.schema)} or publish to the topic of that type"
            )
        if self._pydantic:
            return self._encode_pydantic(event)
        try:
            out: bytes = self._encoder.encode(event)
            return out
        except (TypeError, msgspec.EncodeError, OverflowError) as exc:
            raise EncodeError(f"cannot encode {type(event).__name__}: {exc}") from exc

    def _encode_pydantic(self, event: Any) -> bytes:
        try:
            if self.name == "json":
                data: bytes = event.model_dump_json().encode()
                return data
            out: bytes = self._encoder.encode(event.model_dump(mode="json"))
        except (ValueError, TypeError) as exc:  # pydantic's serialization errors
            raise EncodeError(f"cannot encode {type(event).__name__}: {exc}") from exc
        return out

    def decode(self, payload: bytes) -> Any:
        if self._raw:
            return payload
        try:
            if self._pydantic:
                return self._decode_pydantic(payload)
            return self._decoder.decode(payload)
        except (msgspec.ValidationError, msgspec.DecodeError) as exc:
            raise DecodeError(_describe(exc, self.schema)) from exc

    def fast_decoder(self) -> Callable[[bytes], Any]:
        """`decode` without its error translation, for hot loops that fall back to
        `decode` (and its clear messages) when this raises."""
        if self._raw or self._pydantic:
            return self.decode
        decode: Callable[[bytes], Any] = self._decoder.decode
        return decode

    def _decode_pydantic(self, payload: bytes) -> Any:
        if self.name == "json":
            try:
                return self.schema.model_validate_json(payload)
            except ValueError as exc:  # pydantic.ValidationError subclasses ValueError
                raise DecodeError(f"does not fit {schema_name(self.schema)}: {exc}") from exc
        return self.from_builtins(self._decoder.decode(payload))

    def from_builtins(self, obj: Any) -> Any:
        if self._raw:
            if isinstance(obj, str):
                return obj.encode()
            if isinstance(obj, bytes):
                return obj
            raise DecodeError(f"this topic takes bytes or text, got {type(obj).__name__}")
        try:
            if self._pydantic:
                return self.schema.model_validate(obj)
            return msgspec.convert(obj, self._target)
        except msgspec.ValidationError as exc:
            raise DecodeError(_describe(exc, self.schema)) from exc
        except ValueError as exc:
            raise DecodeError(f"does not fit {schema_name(self.schema)}: {exc}") from exc


def _describe(exc: Exception, schema: object) -> str:
    """msgspec says e.g. "Expected `int`, got `str` - at `$.qty`": keep it, add the schema."""
    if isinstance(exc, msgspec.ValidationError):
        return f"payload does not fit {schema_name(schema)}: {exc}"
    return f"payload is not valid encoded data: {exc}"


def make_codec(schema: Any, name: CodecName = "json") -> SchemaCodec:
    """The codec for `schema`; refuses schemas riverbed cannot encode, saying which work."""
    ok = (
        schema in (dict, bytes)
        or _is_pydantic(schema)
        or (isinstance(schema, type) and issubclass(schema, msgspec.Struct))
        or (isinstance(schema, type) and dataclasses.is_dataclass(schema))
    )
    if not ok:
        raise EncodeError(
            f"unsupported topic schema {schema_name(schema)}; use an Event subclass, a "
            "pydantic model, a dataclass, dict or bytes"
        )
    return SchemaCodec(schema, name)
