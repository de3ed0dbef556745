"""Records to Kafka messages and back, as CloudEvents Kafka binary-mode messages.

The envelope travels in headers (`ce_id`, `ce_type`, `ce_source`, `ce_time`,
`content-type`), the payload is the message value, the key the message key, and the
event time the message timestamp (CreateTime), so any Kafka client can read a riverbed
record. A message without `ce_id` (written by a plain client) is read as a raw event.
"""

from __future__ import annotations

import time
from typing import Any

from confluent_kafka import Message

from riverbed.brokers._cetime import TimeText
from riverbed.events import Record

__all__ = ["RAW_TYPE", "decode", "encode_headers"]

RAW_TYPE = "kafka.record"
"""The `type` of a record read from a message that carries no CloudEvents headers."""
DEFAULT_CONTENT_TYPE = "application/json"
_CE = {"ce_id", "ce_type", "ce_source", "ce_time", "ce_specversion"}
_SPEC = ("ce_specversion", b"1.0")

_EPOCH = b"1970-01-01T00:00:00.000Z"

Headers = list[tuple[str, str | bytes | None]]


def rfc3339(ms: int) -> str:
    """Milliseconds since the epoch as an RFC 3339 UTC time (`ce_time`)."""
    seconds, millis = divmod(ms, 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{millis:03d}Z"


def encode_headers(r: Record[Any], times: TimeText) -> Headers:
    """The message headers of one record: the CloudEvents attributes, then its own."""
    stamp = times.text(r.timestamp)
    headers: Headers = [
        _SPEC,
        ("ce_id", r.id.encode()),
        ("ce_type", r.type.encode()),
        ("ce_source", r.source.encode()),
        ("ce_time", stamp if stamp is not None else rfc3339(r.timestamp).encode()),
    ]
    own = r.headers
    if "content-type" not in own:
        headers.append(("content-type", DEFAULT_CONTENT_TYPE.encode()))
    for k, v in own.items():
        headers.append((k, v.encode()))
    return headers


def _text(raw: bytes | str | None) -> str:
    if raw is None:
        return ""
    if isinstance(raw, str):
        return raw
    # A foreign client may put any bytes in a header: keep them readable, never fail.
    return raw.decode("utf-8", "backslashreplace")


def decode(m: Message, topic: str) -> Record[Any]:
    """The record a fetched message holds (a raw event when it lacks `ce_id`)."""
    partition, offset = m.partition() or 0, m.offset() or 0
    kind, ts = m.timestamp()
    value = m.value()
    key = m.key()
    record: Record[Any] = Record(
        id="",
        type=RAW_TYPE,
        source=f"kafka://{topic}",
        timestamp=ts if kind and ts >= 0 else 0,
        key=key if isinstance(key, bytes) or key is None else key.encode(),
        value=b"" if value is None else value if isinstance(value, bytes) else value.encode(),
        topic=topic,
        partition=partition,
        offset=offset,
    )
    own: dict[str, str] = {}
    ours = False
    pairs = m.headers() or []
    for k, v in pairs.items() if isinstance(pairs, dict) else pairs:
        if k in _CE:
            if k == "ce_id":
                record.id, ours = _text(v), True
            elif k == "ce_type":
                record.type = _text(v)
            elif k == "ce_source":
                record.source = _text(v)
            elif k == "ce_time" and v == _EPOCH:
                record.timestamp = 0  # librdkafka sends timestamp 0 as "now"
            continue
        own[k] = _text(v)
    if not ours:
        # A plain client's message: a stable id from its position, headers as they are.
        record.id = f"kafka:{topic}:{partition}:{offset}"
        record.type, record.source = RAW_TYPE, f"kafka://{topic}"
    elif own.get("content-type") == DEFAULT_CONTENT_TYPE:
        # Written by encode_headers as the default: not one of the record's own headers.
        del own["content-type"]
    record.headers = own
    return record
