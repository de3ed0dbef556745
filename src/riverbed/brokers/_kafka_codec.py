"""Records to Kafka messages and back, as CloudEvents Kafka binary-mode messages.

The envelope travels in headers (`ce_id`, `ce_type`, `ce_source`, `ce_time`,
`content-type`), the payload is the message value, the key the message key, and the
event time the message timestamp (CreateTime), so any Kafka client can read a riverbed
record. A message without `ce_id` (written by a plain client) is read as a raw event.
"""

from __future__ import annotations

from typing import Any

from confluent_kafka import Message

from riverbed.brokers._cetime import TimeText, rfc3339
from riverbed.events import Record

__all__ = ["RAW_TYPE", "decode", "encode_headers"]

RAW_TYPE = "kafka.record"
"""The `type` of a record read from a message that carries no CloudEvents headers."""
DEFAULT_CONTENT_TYPE = "application/json"
_CE = {"ce_id", "ce_type", "ce_source", "ce_time", "ce_specversion"}
_SPEC = ("ce_specversion", b"1.0")

_EPOCH = b"1970-01-01T00:00:00.000Z"

Headers = list[tuple[str, str | bytes | None]]


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


def decode(m: Message, topic: str, partition: int, offset: int) -> Record[Any]:
    """The record a fetched message holds (a raw event when it lacks `ce_id`).

    Runs once per record on the consume path: one pass over the headers, the record built
    once at the end (no placeholder fields to overwrite).
    """
    kind, ts = m.timestamp()
    timestamp = ts if kind and ts >= 0 else 0
    value = m.value()
    key = m.key()
    rid = etype = source = None
    own: dict[str, str] = {}
    pairs = m.headers() or []
    for k, v in pairs.items() if isinstance(pairs, dict) else pairs:
        if k not in _CE:
            own[k] = _text(v)
        elif k == "ce_id":
            rid = _text(v)
        elif k == "ce_type":
            etype = _text(v)
        elif k == "ce_source":
            source = _text(v)
        elif k == "ce_time" and v == _EPOCH:
            timestamp = 0  # librdkafka sends timestamp 0 as "now"
    if rid is None:
        # A plain client's message: a stable id from its position, headers as they are.
        rid, etype, source = f"kafka:{topic}:{partition}:{offset}", RAW_TYPE, f"kafka://{topic}"
    elif own.get("content-type") == DEFAULT_CONTENT_TYPE:
        # Written by encode_headers as the default: not one of the record's own headers.
        del own["content-type"]
    return Record(
        rid,
        RAW_TYPE if etype is None else etype,
        f"kafka://{topic}" if source is None else source,
        timestamp,
        key if isinstance(key, bytes) or key is None else key.encode(),
        b"" if value is None else value if isinstance(value, bytes) else value.encode(),
        own,
        topic,
        partition,
        offset,
    )
