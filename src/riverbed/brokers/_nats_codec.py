"""How riverbed's names and records look on NATS JetStream: pure functions, no I/O.

Names. Topic names (`[A-Za-z0-9._-]`) and group/member names (anything) must become
stream names (no `.`, `*`, `>`, whitespace), subject tokens and KV keys. Every character
outside `[A-Za-z0-9-]` is escaped as `_XX` (the hex of each UTF-8 byte), which is
reversible and keeps plain names readable: topic `orders.dlq` is stream `RB_orders_2Edlq`
with subjects `rb.orders_2Edlq.0`, `rb.orders_2Edlq.1`, ...

Records (CloudEvents NATS binding, binary content mode): the payload is the record's
value; the envelope travels as headers `ce-specversion`, `ce-id`, `ce-type`,
`ce-source`, `ce-time` (RFC 3339, milliseconds), `content-type`, the key as
`ce-partitionkey` (the CloudEvents partitioning extension) when it is text a header can
carry exactly, else base64 in `rb-key-b64`. Values outside printable ASCII are
percent-encoded as the binding prescribes. The record's own headers go as NATS headers
when a NATS header carries them exactly (a token name that is not ours, a value without
surrounding spaces or line breaks); the rest, and a `content-type` equal to the default,
travel JSON-encoded in one `rb-headers` header. `Nats-Msg-Id` is the record id, so
JetStream drops a retried publish of the same record.

A message without `ce-id` (published by a client that is not riverbed) is read as a raw
event: its payload is the value, its headers are the record's headers, the id is its
`Nats-Msg-Id` or `<stream>:<sequence>`, the time is the server's arrival time.
"""

from __future__ import annotations

import base64
import re
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, unquote

import msgspec

from riverbed.brokers._cetime import rfc3339
from riverbed.events import Record

__all__ = [
    "DEFAULT_CONTENT_TYPE",
    "HeaderCodec",
    "decode_name",
    "encode_name",
    "parse_ack_reply",
    "parse_header_block",
    "stream_name",
    "subject",
    "topic_of_stream",
]

STREAM_PREFIX = "RB_"
SUBJECT_PREFIX = "rb"
DEFAULT_CONTENT_TYPE = "application/json"

_PLAIN = re.compile(r"[A-Za-z0-9-]*")
_ESCAPE = re.compile(r"_([0-9A-F]{2})")
# What nats-py accepts as a header name (an HTTP token), and values a header keeps exactly.
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_CE_SAFE = re.compile(r"[!#$&-~]*")  # printable ASCII without space, '"' and '%'

H_SPEC, H_ID, H_TYPE, H_SOURCE, H_TIME = (
    "ce-specversion",
    "ce-id",
    "ce-type",
    "ce-source",
    "ce-time",
)
H_CONTENT_TYPE = "content-type"
H_KEY = "ce-partitionkey"
H_KEY_B64 = "rb-key-b64"
H_HEADERS = "rb-headers"
H_MSG_ID = "Nats-Msg-Id"
_RESERVED = frozenset(
    h.lower()
    for h in (H_SPEC, H_ID, H_TYPE, H_SOURCE, H_TIME, H_CONTENT_TYPE, H_KEY, H_KEY_B64, H_HEADERS)
)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_json_encode = msgspec.json.Encoder().encode
_json_headers = msgspec.json.Decoder(dict[str, str]).decode


# -- names ------------------------------------------------------------------------------
def encode_name(name: str) -> str:
    """`name` with every character outside `[A-Za-z0-9-]` escaped as `_XX` per UTF-8 byte."""
    if _PLAIN.fullmatch(name):
        return name
    out = []
    for ch in name:
        if _PLAIN.fullmatch(ch):
            out.append(ch)
        else:
            out.extend(f"_{b:02X}" for b in ch.encode("utf-8", "surrogatepass"))
    return "".join(out)


def decode_name(encoded: str) -> str:
    """The inverse of `encode_name`."""
    if "_" not in encoded:
        return encoded
    raw = _ESCAPE.sub(lambda m: f"%{m.group(1)}", encoded.replace("%", "%25"))
    return unquote(raw, errors="surrogatepass")


def stream_name(topic: str) -> str:
    return STREAM_PREFIX + encode_name(topic)


def topic_of_stream(stream: str) -> str | None:
    """The topic a stream holds, or None for a stream that is not riverbed's."""
    if not stream.startswith(STREAM_PREFIX):
        return None
    return decode_name(stream[len(STREAM_PREFIX) :])


def subject(topic: str, partition: int) -> str:
    return f"{SUBJECT_PREFIX}.{encode_name(topic)}.{partition}"


def parse_ack_reply(reply: str) -> tuple[str, int, int]:
    """(consumer, stream sequence, server time in ns) from a delivery's reply subject.

    `$JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.<cseq>.<ts>.<pending>` (9 tokens),
    or the newer form with domain and account hash after `ACK` (12 tokens).
    """
    t = reply.split(".")
    if len(t) == 9:
        return t[3], int(t[5]), int(t[7])
    return t[5], int(t[7]), int(t[9])


# -- CloudEvents attribute values ---------------------------------------------------------
def _ce_encode(value: str) -> str:
    if _CE_SAFE.fullmatch(value):
        return value
    return quote(value, safe="!#$&'()*+,-./:;<=>?@[\\]^_`{|}~")


def _ce_decode(value: str) -> str:
    return unquote(value) if "%" in value else value


def _parse_time(text: str) -> int | None:
    try:
        t = datetime.fromisoformat(text)
    except ValueError:
        return None
    if t.tzinfo is None:
        t = t.replace(tzinfo=UTC)
    delta = t - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1000 + delta.microseconds // 1000


class HeaderCodec:
    """Builds and reads the NATS headers of records.

    One per broker: it remembers the last time it formatted and parsed, since a batch's
    records usually share one timestamp.
    """

    __slots__ = ("_fmt", "_parse")

    def __init__(self) -> None:
        self._fmt: tuple[int, str] = (-1, "")
        self._parse: tuple[str, int | None] = ("", None)

    def time_text(self, ms: int) -> str:
        if self._fmt[0] != ms:
            self._fmt = (ms, rfc3339(ms))
        return self._fmt[1]

    def time_ms(self, text: str) -> int | None:
        if self._parse[0] != text:
            self._parse = (text, _parse_time(text))
        return self._parse[1]

    def headers(self, r: Record[Any]) -> dict[str, str]:
        """The NATS headers that carry `r`'s envelope, key and headers."""
        h = {
            H_MSG_ID: r.id,
            H_SPEC: "1.0",
            H_ID: _ce_encode(r.id),
            H_TYPE: _ce_encode(r.type),
            H_SOURCE: _ce_encode(r.source),
            H_TIME: self.time_text(r.timestamp),
            H_CONTENT_TYPE: DEFAULT_CONTENT_TYPE,
        }
        key = r.key
        if key is not None:
            text = _key_text(key)
            if text is None:
                h[H_KEY_B64] = base64.b64encode(key).decode("ascii")
            else:
                h[H_KEY] = _ce_encode(text)
        if r.headers:
            extra = _user_headers(r.headers, h)
            if extra:
                h[H_HEADERS] = _json_encode(extra).decode("utf-8")
        return h

    def record(
        self,
        stream: str,
        topic: str,
        partition: int,
        seq: int,
        server_ns: int,
        subj: str,
        headers: dict[str, str] | None,
        value: bytes,
    ) -> Record[Any]:
        """The record a delivered message holds (a raw event when it lacks `ce-id`)."""
        if not headers or H_ID not in headers:
            return self._raw(stream, topic, partition, seq, server_ns, subj, headers, value)
        h = dict(headers)
        h.pop(H_MSG_ID, None)
        h.pop(H_SPEC, None)
        rid = _ce_decode(h.pop(H_ID))
        etype = _ce_decode(h.pop(H_TYPE, ""))
        source = _ce_decode(h.pop(H_SOURCE, ""))
        ts = self.time_ms(h.pop(H_TIME, ""))
        ctype = h.pop(H_CONTENT_TYPE, DEFAULT_CONTENT_TYPE)
        if ctype != DEFAULT_CONTENT_TYPE:
            h[H_CONTENT_TYPE] = ctype
        key: bytes | None = None
        if H_KEY in h:
            key = _ce_decode(h.pop(H_KEY)).encode("utf-8")
        if H_KEY_B64 in h:
            key = _b64(h.pop(H_KEY_B64))
        packed = h.pop(H_HEADERS, None)
        if packed is not None:
            try:
                h.update(_json_headers(packed))
            except msgspec.DecodeError:
                h[H_HEADERS] = packed  # not ours after all: keep it as it came
        return Record(
            rid,
            etype,
            source,
            server_ns // 1_000_000 if ts is None else ts,
            key,
            value,
            h,
            topic,
            partition,
            seq - 1,
        )

    @staticmethod
    def _raw(
        stream: str,
        topic: str,
        partition: int,
        seq: int,
        server_ns: int,
        subj: str,
        headers: dict[str, str] | None,
        value: bytes,
    ) -> Record[Any]:
        h = dict(headers) if headers else {}
        rid = h.get(H_MSG_ID) or f"{stream}:{seq}"
        return Record(
            rid, "", subj, server_ns // 1_000_000, None, value, h, topic, partition, seq - 1
        )


def _key_text(key: bytes) -> str | None:
    """The key as text when `ce-partitionkey` can carry it exactly, else None."""
    try:
        text = key.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if text != text.strip() or "\r" in text or "\n" in text:
        return None
    return text


def _b64(text: str) -> bytes | None:
    try:
        return base64.b64decode(text, validate=True)
    except ValueError:
        return None


def _user_headers(headers: dict[str, str], out: dict[str, str]) -> dict[str, str]:
    """Put the headers NATS carries exactly into `out`; return the others."""
    extra: dict[str, str] = {}
    for k, v in headers.items():
        if (
            _TOKEN.fullmatch(k)
            and k.lower() not in _RESERVED
            and not k.lower().startswith("nats-")
            and v == v.strip()
            and "\r" not in v
            and "\n" not in v
        ):
            out[k] = v
        elif k == H_CONTENT_TYPE and v != DEFAULT_CONTENT_TYPE and v == v.strip() and _safe(v):
            out[H_CONTENT_TYPE] = v
        else:
            extra[k] = v
    return extra


def _safe(v: str) -> bool:
    return "\r" not in v and "\n" not in v


def parse_header_block(raw: bytes) -> dict[str, str]:
    """Headers from a stored message's header block (`NATS/1.0\\r\\nName: value\\r\\n...`)."""
    out: dict[str, str] = {}
    for line in raw.split(b"\r\n")[1:]:
        name, sep, value = line.partition(b":")
        if sep:
            out[name.strip().decode("ascii", "replace")] = value.strip().decode("utf-8", "replace")
    return out
