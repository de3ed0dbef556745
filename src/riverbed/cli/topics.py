"""`riverbed topics list|create|describe`."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table

from riverbed.brokers.base import TopicInfo, TopicSpec
from riverbed.brokers.counting import partition_counts
from riverbed.cli._common import (
    AppOpt,
    BrokerOpt,
    JsonOpt,
    Target,
    format_retention,
    parse_duration,
    print_json,
    run,
    stdout,
)
from riverbed.errors import UnknownTopic, UnsupportedCapability
from riverbed.topics import validate_topic_name

__all__ = ["topics"]

topics = typer.Typer(
    help="List, create and describe topics and their partitions.", no_args_is_help=True
)


Counts = dict[int, int]
"""Partition -> records stored (see `riverbed.brokers.counting`)."""


def _summary(info: TopicInfo, counts: Counts) -> dict[str, Any]:
    spec = info.spec
    return {
        "name": spec.name,
        "partitions": spec.partitions,
        "records": sum(counts.values()),
        "retention_ms": spec.retention_ms,
        "retention_bytes": spec.retention_bytes,
        "compact": spec.compact,
    }


def _detail(info: TopicInfo, counts: Counts) -> dict[str, Any]:
    parts = [
        {
            "partition": p.partition,
            "start_offset": p.start_offset,
            "end_offset": p.end_offset,
            "records": counts[p.partition],
        }
        for p in info.partitions
    ]
    return {**_summary(info, counts), "partition_offsets": parts}


@topics.command("list")
def list_topics(broker: BrokerOpt = None, app: AppOpt = None, json: JsonOpt = False) -> None:
    """List every topic with its partitions, record count and retention."""
    target = Target.resolve(broker, app)

    async def go() -> list[tuple[TopicInfo, Counts]]:
        async with target.open() as b:
            return [(i, await partition_counts(b, i)) for i in await b.list_topics()]

    infos = run(go)
    if json:
        print_json([_summary(i, counts) for i, counts in infos])
        return
    table = Table("topic", "partitions", "records", "retention", "compact")
    for i, counts in infos:
        table.add_row(
            i.name,
            str(i.spec.partitions),
            str(sum(counts.values())),
            format_retention(i.spec.retention_ms),
            "yes" if i.spec.compact else "",
        )
    stdout().print(table)


@topics.command("create")
def create_topic(
    name: Annotated[str, typer.Argument(help="Topic name: 1-249 of A-Z a-z 0-9 . _ -")],
    partitions: Annotated[
        int, typer.Option("--partitions", "-p", min=1, help="Number of partitions.")
    ] = 1,
    retention: Annotated[
        str | None,
        typer.Option(help="Delete records older than this, e.g. 7d, 12h (default: keep)."),
    ] = None,
    retention_bytes: Annotated[
        int | None,
        typer.Option(min=1, help="Per partition: delete the oldest records past this size."),
    ] = None,
    compact: Annotated[
        bool, typer.Option("--compact", help="Keep only the latest record per key.")
    ] = False,
    broker: BrokerOpt = None,
    app: AppOpt = None,
) -> None:
    """Create a topic (idempotent; on an existing topic it updates retention/compaction)."""
    validate_topic_name(name)
    retention_ms = (
        None if retention is None else int(parse_duration(retention, what="--retention") * 1000)
    )
    spec = TopicSpec(name, partitions, retention_ms, retention_bytes, compact)
    target = Target.resolve(broker, app)

    async def go() -> TopicInfo | None:
        async with target.open() as b:
            caps = b.capabilities
            if compact and not caps.compaction:
                raise UnsupportedCapability(f"the backend at {b.url} cannot compact topics")
            if (retention_ms or retention_bytes) and not caps.retention:
                raise UnsupportedCapability(f"the backend at {b.url} cannot enforce retention")
            try:
                before: TopicInfo | None = await b.describe_topic(name)
            except UnknownTopic:
                before = None
            await b.create_topic(spec)
            return before

    before = run(go)
    out = stdout()
    if before is None:
        out.print(f"created topic {name!r} with {partitions} partition(s)")
    elif before.spec == spec:
        out.print(f"topic {name!r} already exists with these settings")
    else:
        out.print(f"topic {name!r} exists; updated its retention and compaction settings")


@topics.command("describe")
def describe_topic(
    name: Annotated[str, typer.Argument(help="The topic to describe.")],
    broker: BrokerOpt = None,
    app: AppOpt = None,
    json: JsonOpt = False,
) -> None:
    """Describe a topic: settings and each partition's start/end offsets and records."""
    target = Target.resolve(broker, app)

    async def go() -> tuple[TopicInfo, Counts]:
        async with target.open() as b:
            info = await b.describe_topic(name)
            return info, await partition_counts(b, info)

    info, counts = run(go)
    if json:
        print_json(_detail(info, counts))
        return
    spec = info.spec
    size = "" if spec.retention_bytes is None else f", {spec.retention_bytes} bytes/partition"
    out = stdout()
    out.print(
        f"topic [bold]{spec.name}[/]: {spec.partitions} partition(s), "
        f"{sum(counts.values())} record(s), retention {format_retention(spec.retention_ms)}{size}"
        + (", compacted" if spec.compact else "")
    )
    table = Table("partition", "start offset", "end offset", "records")
    for p in info.partitions:
        table.add_row(
            str(p.partition),
            str(p.start_offset),
            str(p.end_offset),
            str(counts[p.partition]),
        )
    out.print(table)
