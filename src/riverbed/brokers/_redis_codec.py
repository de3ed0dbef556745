"""How records and offsets look in Redis: stream entry fields and entry-id offsets.

Offsets. A stream entry id is `<ms>-<seq>`; the offset is `ms << 20 | seq`, so offsets
increase with entry ids but are not dense, and entries added by any client with
`XADD *` have an offset too. The sequence gets 20 bits (`MAX_SEQ` = 1,048,575 entries
in one millisecond of one stream): riverbed's append script moves to the next
millisecond before it would pass that (see `_redis_scripts`), and an entry written by
another client with a larger sequence is read with its sequence clamped to `MAX_SEQ`.

Fields. A riverbed record is stored as CloudEvents attributes, so `redis-cli XRANGE`
and any plain client see them: `ce_id`, `ce_specversion`, `ce_type`, `ce_source`,
`ce_time` (RFC 3339, UTC, milliseconds), `content-type` (the record's `content-type`
header, else `application/json`), `key` (only when the record has one), `data` (the
encoded payload) and one `h:<name>` field per header. `ce_id` comes first: the append
script's duplicate check reads it without a lookup.

An entry without `ce_id` (added by another client) is read as a raw event: id
`<stream key>/<entry id>`, type `""` (`RAW_TYPE`), source the stream key, time the
entry id's milliseconds, key the `key` field if any, value the `data` field if there is
one (the other fields become headers), else the whole field map as a JSON object
(undecodable text replaced, U+FFFD), with no headers.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec

from riverbed.events import Record

__all__ = [
    "MAX_SEQ",
    "RAW_TYPE",
    "SEQ_BITS",
    "EntryDecoder",
    "id_at",
    "id_before",
    "offset_of",
]

SEQ_BITS = 20
MAX_SEQ = (1 << SEQ_BITS) - 1
_U64 = (1 << 64) - 1
RAW_TYPE = ""
"""The type of a record read from an entry that another client added without `ce_type`."""


def offset_of(entry_id: bytes) -> int:
    """The offset of a stream entry id (`b"1700000000000-3"` -> `1700000000000 << 20 | 3`)."""
    ms, _, seq = entry_id.partition(b"-")
    return int(ms) << SEQ_BITS | min(int(seq or 0), MAX_SEQ)


def id_at(offset: int) -> str:
    """The entry id an offset stands for: XRANGE from here includes that entry."""
    if offset <= 0:
        return "0-0"
    ms = offset >> SEQ_BITS
    if ms > _U64:
        return f"{_U64}-{_U64}"
    return f"{ms}-{offset & MAX_SEQ}"


def id_before(offset: int) -> str:
    """The greatest entry id below `offset`: XREAD (exclusive) from here starts at it."""
    if offset <= 1:
        return "0-0"
    ms, seq = offset >> SEQ_BITS, offset & MAX_SEQ
    if ms > _U64:
        return f"{_U64}-{_U64}"
    # seq 0: every entry of the previous millisecond is before, whatever its sequence.
    return f"{ms}-{seq - 1}" if seq else f"{ms - 1}-{_U64}"


class EntryDecoder:
    """Turns stream entries into records; caches the last parsed `ce_time` second."""

    __slots__ = ("_prefix", "_sec_ms")

    def __init__(self) -> None:
        self._prefix = b""
        self._sec_ms = 0

    def extend(
        self,
        out: list[Record[Any]],
        key: str,
        entries: list[list[Any]],
        topic: str,
        partition: int,
    ) -> None:
        """Append the records of one stream's entries (as XREAD/XRANGE reply them)."""
        # The hot loop of every fetch: the exact layout the append script writes is read
        # by position, and what repeats from the previous entry (the time, type, source
        # and id milliseconds of a batch) is not parsed again. Anything else (another
        # client's entry, text that strict decode() refuses) goes through `record`.
        append = out.append
        last_t = last_ms = last_type = last_source = None
        ts = base = 0
        type_ = source = ""
        for entry_id, fields in entries:
            n = len(fields)
            if n >= 14 and fields[0] == b"ce_id" and fields[8] == b"ce_time":
                at, key_ = 12, None
                if fields[12] == b"key":
                    key_, at = fields[13], 14
                if n > at + 1 and fields[at] == b"data":
                    try:
                        t = fields[9]
                        if t != last_t:
                            ts = self._parse_time(t, -1)
                            if ts == -1:
                                raise ValueError(t)
                            last_t = t
                        ms, _, sq = entry_id.partition(b"-")
                        if ms != last_ms:
                            base = int(ms) << SEQ_BITS
                            last_ms = ms
                        seq = int(sq)
                        b = fields[5]
                        if b != last_type:
                            type_ = b.decode()
                            last_type = b
                        b = fields[7]
                        if b != last_source:
                            source = b.decode()
                            last_source = b
                        append(
                            Record(
                                fields[1].decode(),
                                type_,
                                source,
                                ts,
                                key_,
                                fields[at + 1],
                                _headers(fields, at + 2) if n > at + 2 else {},
                                topic,
                                partition,
                                base | (seq if seq <= MAX_SEQ else MAX_SEQ),
                            )
                        )
                        continue
                    except (UnicodeDecodeError, ValueError):
                        pass
            append(self.record(key, entry_id, fields, topic, partition))

    def record(
        self, key: str, entry_id: bytes, fields: list[bytes], topic: str, partition: int
    ) -> Record[Any]:
        """One entry, whatever wrote it (see the module docstring)."""
        offset = offset_of(entry_id)
        it = iter(fields)
        m: dict[bytes, bytes] = dict(zip(it, it, strict=False))
        ce_id = m.get(b"ce_id")
        if ce_id is None:
            return _raw(key, entry_id, m, topic, partition, offset)
        try:
            return self._ours(ce_id, m, topic, partition, offset)
        except (UnicodeDecodeError, ValueError):
            # Looks like ours but is not well formed: still delivered, never dropped.
            return _raw(key, entry_id, m, topic, partition, offset)

    def _ours(
        self, ce_id: bytes, m: dict[bytes, bytes], topic: str, partition: int, offset: int
    ) -> Record[Any]:
        headers = {
            k[2:].decode("utf-8", "surrogatepass"): v.decode("utf-8", "surrogatepass")
            for k, v in m.items()
            if k[:2] == b"h:"
        }
        return Record(
            ce_id.decode("utf-8", "surrogatepass"),
            m.get(b"ce_type", b"").decode("utf-8", "surrogatepass"),
            m.get(b"ce_source", b"").decode("utf-8", "surrogatepass"),
            self._time(m, offset),
            m.get(b"key"),
            m.get(b"data", b""),
            headers,
            topic,
            partition,
            offset,
        )

    def _time(self, m: dict[bytes, bytes], offset: int) -> int:
        t = m.get(b"ce_time")
        if t is None:
            exact = m.get(b"rb_time")
            return int(exact) if exact is not None else offset >> SEQ_BITS
        return self._parse_time(t, offset)

    def _parse_time(self, t: bytes, offset: int) -> int:
        # Fast path for what we write: "YYYY-MM-DDTHH:MM:SS.mmmZ".
        if len(t) == 24 and t[19:20] == b"." and t[23:24] == b"Z":
            prefix = t[:19]
            if prefix != self._prefix:
                dt = datetime.fromisoformat(prefix.decode() + "+00:00")
                self._sec_ms = _epoch_ms(dt)
                self._prefix = prefix
            return self._sec_ms + int(t[20:23])
        try:
            return _epoch_ms(datetime.fromisoformat(t.decode()))
        except ValueError:
            return offset >> SEQ_BITS


def _headers(fields: list[bytes], at: int) -> dict[str, str]:
    out = {}
    for i in range(at, len(fields) - 1, 2):
        name = fields[i]
        if name[:2] == b"h:":
            out[name[2:].decode("utf-8", "surrogatepass")] = fields[i + 1].decode(
                "utf-8", "surrogatepass"
            )
    return out


def _epoch_ms(dt: datetime) -> int:
    # Integer arithmetic: timestamp() is a float and loses milliseconds on far dates.
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=_UTC)
    delta = dt - _EPOCH
    return delta.days * 86_400_000 + delta.seconds * 1000 + delta.microseconds // 1000


_UTC = datetime.fromisoformat("1970-01-01T00:00:00+00:00").tzinfo
_EPOCH = datetime.fromisoformat("1970-01-01T00:00:00+00:00")
_JSON = msgspec.json.Encoder()


def _raw(
    key: str, entry_id: bytes, m: dict[bytes, bytes], topic: str, partition: int, offset: int
) -> Record[Any]:
    """A record for an entry that another client wrote (see the module docstring)."""
    data = m.get(b"data")
    text = {k.decode("utf-8", "replace"): v.decode("utf-8", "replace") for k, v in m.items()}
    if data is None:
        value, headers = _JSON.encode(text), {}
    else:
        value = data
        headers = {k: v for k, v in text.items() if k not in ("data", "key")}
    eid = entry_id.decode()
    return Record(
        f"{key}/{eid}",
        RAW_TYPE,
        key,
        offset >> SEQ_BITS,
        m.get(b"key"),
        value,
        headers,
        topic,
        partition,
        offset,
    )
