"""What the raw clients send: the bytes riverbed puts on the wire for the same events.

The payload is the event's JSON from the same encoder riverbed's codec uses
(`msgspec.json`), encoded inside the timed loop because riverbed encodes inside
`publish_many` too. The envelope carries the same attribute names with values of the
same lengths: a 36-character id (a per-run prefix plus a counter rather than a UUIDv7,
so the raw side pays less than riverbed for its ids), the event type, the source (the
app's name) and the event time, taken once per batch as riverbed's producer does.
"""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime

import msgspec

from benchmarks.common import Tick

EVENT_TYPE = Tick.__event_type__
SOURCE = "bench"  # riverbed's source attribute is the app's name; the apps are "bench"
CONTENT_TYPE = "application/json"

encode = msgspec.json.Encoder().encode


def decoder() -> msgspec.json.Decoder[Tick]:
    """What a raw consumer does with a payload: the typed event a handler would get."""
    return msgspec.json.Decoder(Tick)


class Ids:
    """36-character unique ids: a random 24-hex-digit prefix per run and a counter."""

    def __init__(self) -> None:
        self._prefix = os.urandom(12).hex()
        self._next = 0

    def take(self, n: int) -> list[str]:
        start, self._next = self._next, self._next + n
        p = self._prefix
        return [f"{p}{i:012x}" for i in range(start, start + n)]


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def rfc3339(ms: int) -> str:
    """CloudEvents `time` as Kafka's binary mode writes it: RFC 3339, UTC, milliseconds."""
    dt = datetime.fromtimestamp(ms / 1000, UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"
