"""Events, the record envelope, and time-sortable ids.

An `Event` is a msgspec Struct that declares a schema::

    class OrderPlaced(Event, type="order.placed"):
        order_id: str
        total: float

A `Record` is one stored event with its envelope. Its attribute names follow
CloudEvents 1.0 (`id`, `type`, `source`, `time`, plus `key`/`partition`/`offset` from
the log), so a record maps one to one onto a CloudEvent.
"""

from __future__ import annotations

import os
import time as _time
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar, Generic, TypeVar

import msgspec

__all__ = ["Event", "IdGenerator", "Record", "event_type_of"]

T = TypeVar("T")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class _EventMeta(msgspec.StructMeta):
    """Lets subclasses say `class X(Event, type="x.happened")`.

    msgspec's metaclass refuses unknown class keywords, so the event type name is taken
    here before the rest is handed on.
    """

    def __new__(
        mcls,
        name: str,
        bases: tuple[type, ...],
        namespace: dict[str, Any],
        type: str | None = None,  # the CloudEvents attribute name
        **kwargs: Any,
    ) -> _EventMeta:
        cls = super().__new__(mcls, name, bases, namespace, **kwargs)
        cls.__event_type__ = type or name  # type: ignore[attr-defined]
        return cls


class Event(msgspec.Struct, metaclass=_EventMeta):
    """Base class of typed events; subclass it to declare a schema.

    The CloudEvents `type` defaults to the class name; set it with
    `class OrderPlaced(Event, type="order.placed")`.
    """

    __event_type__: ClassVar[str]


def event_type_of(schema: object) -> str | None:
    """The CloudEvents type name a schema declares, or None for dict/bytes schemas."""
    declared = getattr(schema, "__event_type__", None)
    if isinstance(declared, str):
        return declared
    if isinstance(schema, type) and schema not in (dict, bytes):
        return schema.__name__
    return None


class Record(msgspec.Struct, Generic[T], array_like=True, gc=False):
    """One event as stored in a topic, with its CloudEvents envelope.

    `value` is the encoded payload; `data` is the payload decoded into the topic's
    schema (set by the consumer before a handler sees the record). The first seven
    fields are the stored form; `topic`, `partition` and `offset` are filled in when
    the record is read back from the log.
    """

    id: str
    type: str
    source: str
    timestamp: int
    """Event time in milliseconds since the Unix epoch (UTC)."""
    key: bytes | None
    value: bytes
    headers: dict[str, str] = msgspec.field(default_factory=dict)
    topic: str = ""
    partition: int = -1
    offset: int = -1
    data: Any = None

    @property
    def time(self) -> datetime:
        """The CloudEvents `time` attribute: event time as an aware UTC datetime."""
        # Integer arithmetic: a float division loses microseconds for far-off dates.
        return _EPOCH + timedelta(milliseconds=self.timestamp)

    @property
    def key_str(self) -> str | None:
        """The key as text (undecodable bytes kept lossless via surrogateescape)."""
        return None if self.key is None else self.key.decode("utf-8", "surrogateescape")


_SEQ_HEX = tuple(f"{i:03x}" for i in range(4096))
_POOL_CHARS = 1 << 16


class IdGenerator:
    """Makes UUIDv7 strings (RFC 9562): time-ordered, unique, monotonic per generator.

    Within one millisecond the 12-bit `rand_a` field is a counter (RFC 9562 section 6.2,
    method 1), so ids from one generator sort in creation order. The random bits come
    from a pool of `os.urandom` hex refilled every few thousand ids: formatting a
    128-bit integer per id was the producer's largest cost.
    """

    __slots__ = ("_last_ms", "_pool", "_pos", "_prefix", "_seq")

    def __init__(self) -> None:
        self._last_ms = -1
        self._seq = 0
        self._prefix = ""
        self._pool = ""
        self._pos = _POOL_CHARS

    def new(self) -> str:
        """Return a fresh id."""
        ms = _time.time_ns() // 1_000_000
        if ms > self._last_ms:
            self._set_ms(ms)
        else:
            self._seq += 1
            if self._seq > 0xFFF:
                # Counter exhausted within the millisecond: borrow the next one so
                # ordering holds.
                self._set_ms(self._last_ms + 1)
                self._seq = 0
        pos = self._pos
        if pos + 16 > _POOL_CHARS:
            self._pool = os.urandom(_POOL_CHARS // 2).hex()
            pos = 0
        self._pos = pos + 16
        r = self._pool
        seq = self._seq
        # variant 0b10: the 17th hex digit is one of 8, 9, a, b
        variant = "89ab"[seq & 3]
        return f"{self._prefix}{_SEQ_HEX[seq]}-{variant}{r[pos : pos + 3]}-{r[pos + 3 : pos + 15]}"

    def new_many(self, n: int) -> list[str]:
        """`n` fresh ids at once: one clock read and one slice of randomness per batch."""
        ms = _time.time_ns() // 1_000_000
        if ms > self._last_ms:
            self._set_ms(ms)
        out: list[str] = []
        while len(out) < n:
            # The ids of one millisecond's counter range share a prefix; a batch that
            # exhausts it borrows the next millisecond, as `new` does.
            take = min(n - len(out), 0xFFF - self._seq)
            if take <= 0:
                self._set_ms(self._last_ms + 1)
                self._seq = -1
                continue
            r = os.urandom(8 * take).hex()
            prefix, first = self._prefix, self._seq + 1
            out.extend(
                f"{prefix}{_SEQ_HEX[s]}-{'89ab'[s & 3]}{r[i : i + 3]}-{r[i + 3 : i + 15]}"
                for s, i in zip(range(first, first + take), range(0, 16 * take, 16), strict=True)
            )
            self._seq += take
        return out

    def _set_ms(self, ms: int) -> None:
        self._last_ms = ms
        # Start each millisecond's counter low but random, leaving room to count up.
        self._seq = os.urandom(1)[0]
        h = f"{ms:012x}"
        self._prefix = f"{h[:8]}-{h[8:12]}-7"
