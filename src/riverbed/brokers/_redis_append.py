"""Building the appends section of the append scripts, and reading their replies.

Layout (see `_redis_scripts`): per topic, the index of its meta key in KEYS and its
record count, then per record the index of its stream key, its partition, its field
time (ms), field count and its fields (`_redis_codec.FieldEncoder`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from riverbed.brokers._redis_codec import FieldEncoder, offset_of
from riverbed.brokers._redis_conn import Keys
from riverbed.events import Record

__all__ = ["Batch", "assign"]


class Batch:
    """The KEYS and ARGV of the append scripts' appends section (see `_redis_scripts`)."""

    def __init__(self, keys: Keys, key_list: list[str], fields: FieldEncoder) -> None:
        self._names = keys
        self.keys = key_list
        self._index = {k: i + 1 for i, k in enumerate(key_list)}
        self._fields = fields
        self._args: list[Any] = []
        self.ntopics = 0

    def _key(self, key: str) -> int:
        i = self._index.get(key)
        if i is None:
            self.keys.append(key)
            i = self._index[key] = len(self.keys)
        return i

    def add(self, topic: str, records: Sequence[Record[Any]]) -> None:
        self.ntopics += 1
        args = self._args
        args += (self._key(self._names.meta(topic)), len(records))
        streams: dict[int, int] = {}
        encode = self._fields.fields
        for r in records:
            p = r.partition
            i = streams.get(p)
            if i is None:
                i = streams[p] = self._key(self._names.stream(topic, p))
            f = encode(r)
            args += (i, p, r.timestamp, len(f))
            args += f

    def args(self) -> list[Any]:
        return self._args


def assign(topic: str, records: Sequence[Record[Any]], ids: Sequence[bytes]) -> list[int]:
    """Set topic and offset on the appended records from the ids the script returned."""
    offsets = [offset_of(i) for i in ids]
    for r, offset in zip(records, offsets, strict=True):
        r.topic, r.offset = topic, offset
    return offsets
