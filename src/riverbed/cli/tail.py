"""`riverbed tail`: print a topic's records as JSON lines (CloudEvents-style)."""

from __future__ import annotations

import base64
import sys
from contextlib import aclosing
from typing import Annotated, Any

import msgspec
import typer

from riverbed.brokers.base import Broker, TopicInfo, TopicPartition
from riverbed.cli._common import AppOpt, BrokerOpt, Target, fail, parse_time, rfc3339, run
from riverbed.cli._read import FETCH, read_range
from riverbed.codecs import SchemaCodec
from riverbed.errors import DecodeError
from riverbed.events import Record

__all__ = ["record_json", "tail_command"]

FOLLOW_WAIT = 1.0


def _plain(event: Any) -> Any:
    if hasattr(event, "model_dump"):  # pydantic
        return event.model_dump(mode="json")
    return msgspec.to_builtins(event)


def record_json(record: Record[Any], codec: SchemaCodec | None = None) -> dict[str, Any]:
    """A record as a CloudEvents-style JSON object.

    `data` is the payload as JSON (decoded with `codec` when given, so msgpack topics
    read too); a payload that is not JSON is given as `data_base64` instead.
    """
    out: dict[str, Any] = {
        "topic": record.topic,
        "partition": record.partition,
        "offset": record.offset,
        "id": record.id,
        "type": record.type,
        "source": record.source,
        "time": rfc3339(record.timestamp),
        "key": None if record.key is None else record.key.decode("utf-8", "backslashreplace"),
        "headers": dict(record.headers),
    }
    if codec is not None:
        try:
            out["data"] = _plain(codec.decode(record.value))
        except DecodeError:
            pass
        else:
            return out
    try:
        out["data"] = msgspec.json.decode(record.value)
    except msgspec.DecodeError:
        out["data_base64"] = base64.b64encode(record.value).decode()
    return out


class _Printer:
    """Filters by key, writes JSON lines, and counts toward --limit."""

    def __init__(self, codec: SchemaCodec | None, key: str | None, limit: int | None) -> None:
        self.codec = codec
        self.key = None if key is None else key.encode("utf-8", "surrogateescape")
        self.left = limit
        self.encoder = msgspec.json.Encoder()

    @property
    def done(self) -> bool:
        return self.left is not None and self.left <= 0

    def emit(self, records: list[Record[Any]]) -> None:
        lines = []
        for r in records:
            if self.done:
                break
            if self.key is not None and r.key != self.key:
                continue
            lines.append(self.encoder.encode(record_json(r, self.codec)).decode() + "\n")
            if self.left is not None:
                self.left -= 1
        if lines:
            sys.stdout.write("".join(lines))
            sys.stdout.flush()


async def _starts(
    b: Broker, info: TopicInfo, parts: list[int], offset: int | None, since_ms: int | None
) -> dict[TopicPartition, int]:
    starts: dict[TopicPartition, int] = {}
    by_number = {p.partition: p for p in info.partitions}
    for n in parts:
        tp = TopicPartition(info.name, n)
        if offset is not None:
            starts[tp] = offset
        elif since_ms is not None:
            starts[tp] = await b.offset_for_time(tp, since_ms)
        else:
            starts[tp] = by_number[n].start_offset
    return starts


async def _read_to_end(
    b: Broker, info: TopicInfo, pos: dict[TopicPartition, int], out: _Printer
) -> None:
    ends = {TopicPartition(info.name, p): e for p, e in info.end_offsets().items()}
    async with aclosing(read_range(b, pos, ends)) as batches:
        async for batch in batches:
            out.emit(batch)
            if out.done:
                return


async def _follow(b: Broker, pos: dict[TopicPartition, int], out: _Printer) -> None:
    while not out.done:
        records = await b.fetch(pos, max_records=FETCH, timeout=FOLLOW_WAIT)
        for r in records:
            pos[TopicPartition(r.topic, r.partition)] = r.offset + 1
        out.emit(records)


def tail_command(
    topic: Annotated[str, typer.Argument(help="The topic to read.")],
    from_beginning: Annotated[
        bool, typer.Option("--from-beginning", help="Start at the first stored record (default).")
    ] = False,
    offset: Annotated[
        int | None,
        typer.Option(
            min=0, help="Start at this offset (in every partition read).", show_default=False
        ),
    ] = None,
    since: Annotated[
        str | None,
        typer.Option(
            help="Start at records from this long ago (10m, 2h, 7d) or since an "
            "ISO-8601 time (UTC unless it has an offset).",
            show_default=False,
        ),
    ] = None,
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep printing new records until Ctrl-C.")
    ] = False,
    key: Annotated[
        str | None,
        typer.Option("--key", "-k", help="Only records with this key.", show_default=False),
    ] = None,
    partition: Annotated[
        int | None,
        typer.Option("--partition", "-p", min=0, help="Only this partition.", show_default=False),
    ] = None,
    limit: Annotated[
        int | None,
        typer.Option(
            "--limit", "-n", min=1, help="Stop after this many records.", show_default=False
        ),
    ] = None,
    broker: BrokerOpt = None,
    app: AppOpt = None,
) -> None:
    """Print a topic's records, one JSON object per line.

    Each line has topic, partition, offset, id, type, source, time (RFC 3339, UTC), key,
    headers and data (the JSON payload; a payload that is not JSON comes as data_base64,
    as in the CloudEvents JSON format). With --app, payloads are decoded with the
    topic's codec. Reading starts at the beginning unless --offset or --since says
    otherwise; without --follow it stops at the end offsets seen when it started.
    """
    if sum([from_beginning, offset is not None, since is not None]) > 1:
        raise typer.BadParameter("give only one of --from-beginning, --offset and --since")
    since_ms = None if since is None else parse_time(since, option="--since")
    target = Target.resolve(broker, app)
    declared = target.declared(topic)
    codec = declared.codec if declared is not None and declared.schema is not bytes else None
    out = _Printer(codec, key, limit)

    async def go() -> None:
        async with target.open() as b:
            info = await b.describe_topic(topic)
            parts = list(range(info.spec.partitions))
            if partition is not None:
                if partition >= info.spec.partitions:
                    fail(
                        f"topic {topic!r} has {info.spec.partitions} partition(s); "
                        f"there is no partition {partition}"
                    )
                parts = [partition]
            pos = await _starts(b, info, parts, offset, since_ms)
            if follow:
                await _follow(b, pos, out)
            else:
                await _read_to_end(b, info, pos, out)

    run(go)
