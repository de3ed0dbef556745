"""The codec of a flow's internal topics when the values' type is not known.

Between steps a value may be anything the user's functions made: a pydantic model, a
dataclass, a msgspec Struct, a dict. Where such values must cross a topic (a
repartition, the late-records side topic) and the flow declared no schema, they travel
as JSON and come back as plain data (dicts, lists). Never pickle.
"""

from __future__ import annotations

from typing import Any

import msgspec

from riverbed.codecs import SchemaCodec
from riverbed.errors import DecodeError, EncodeError

__all__ = ["AnyCodec"]


def _enc_hook(obj: Any) -> Any:
    dump = getattr(obj, "model_dump", None)  # pydantic v2, without importing it
    if callable(dump):
        return dump(mode="json")
    raise NotImplementedError(f"cannot encode {type(obj).__name__} as JSON")


class AnyCodec(SchemaCodec):
    """JSON for any JSON-able value (models included); decodes to plain data."""

    def __init__(self) -> None:
        super().__init__(dict, "json")
        self._any_encoder = msgspec.json.Encoder(enc_hook=_enc_hook)
        self._any_decoder = msgspec.json.Decoder()

    def encode(self, event: Any) -> bytes:
        try:
            out: bytes = self._any_encoder.encode(event)
        except (TypeError, NotImplementedError, msgspec.EncodeError, OverflowError) as exc:
            raise EncodeError(
                f"cannot encode {type(event).__name__} for a flow's internal topic: {exc}; "
                "return JSON-able values (dicts, models, dataclasses) from the steps"
            ) from exc
        return out

    def decode(self, payload: bytes) -> Any:
        try:
            return self._any_decoder.decode(payload)
        except msgspec.DecodeError as exc:
            raise DecodeError(f"payload is not valid JSON: {exc}") from exc

    def from_builtins(self, obj: Any) -> Any:
        return obj
