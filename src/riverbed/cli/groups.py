"""`riverbed groups list|describe|reset`: consumer groups, their lag, and rewinding."""

from __future__ import annotations

import time
from typing import Annotated, Any

import typer
from rich.table import Table

from riverbed.brokers.base import Broker, GroupInfo, TopicInfo, TopicPartition
from riverbed.brokers.counting import count_between
from riverbed.cli._common import (
    AppOpt,
    BrokerOpt,
    JsonOpt,
    Target,
    fail,
    parse_time,
    print_json,
    rfc3339,
    run,
    stdout,
)
from riverbed.errors import UnknownTopic

__all__ = ["groups"]

groups = typer.Typer(
    help="Inspect consumer groups (members, offsets, lag) and reset their offsets.",
    no_args_is_help=True,
)


async def _topics(b: Broker, info: GroupInfo) -> dict[str, TopicInfo]:
    names = {tp.topic for tp in info.committed}
    names.update(t for m in info.members for t in m.topics)
    found = {}
    for name in sorted(names):
        try:
            found[name] = await b.describe_topic(name)
        except UnknownTopic:
            continue  # deleted since the group last committed
    return found


async def _partition_rows(
    b: Broker, info: GroupInfo, topics: dict[str, TopicInfo]
) -> list[dict[str, Any]]:
    """One row per partition of the group's topics: committed, end and lag.

    A partition never committed counts every stored record as lag.
    """
    owners = {tp: m.member_id for m in info.members for tp in m.partitions}
    rows = []
    for name, t in topics.items():
        for p in t.partitions:
            tp = TopicPartition(name, p.partition)
            committed = info.committed.get(tp)
            read_from = p.start_offset if committed is None else max(committed, p.start_offset)
            rows.append(
                {
                    "topic": name,
                    "partition": p.partition,
                    "committed": committed,
                    "start_offset": p.start_offset,
                    "end_offset": p.end_offset,
                    "lag": await count_between(b, tp, read_from, p.end_offset),
                    "owner": owners.get(tp),
                }
            )
    return rows


def _group_json(info: GroupInfo, rows: list[dict[str, Any]]) -> dict[str, Any]:
    members = [
        {
            "member_id": m.member_id,
            "client": m.client,
            "topics": list(m.topics),
            "partitions": [{"topic": t, "partition": p} for t, p in m.partitions],
            "last_heartbeat": rfc3339(m.last_heartbeat_ms),
            "last_heartbeat_ms": m.last_heartbeat_ms,
        }
        for m in info.members
    ]
    return {
        "group": info.name,
        "generation": info.generation,
        "members": members,
        "lag": sum(r["lag"] for r in rows),
        "partitions": rows,
    }


async def _describe(b: Broker, group: str) -> dict[str, Any]:
    info = await b.describe_group(group)
    return _group_json(info, await _partition_rows(b, info, await _topics(b, info)))


@groups.command("list")
def list_groups(broker: BrokerOpt = None, app: AppOpt = None, json: JsonOpt = False) -> None:
    """List consumer groups with their members, generation and total lag."""
    target = Target.resolve(broker, app)

    async def go() -> list[dict[str, Any]]:
        async with target.open() as b:
            return [await _describe(b, g) for g in await b.list_groups()]

    summaries = [_summary(g) for g in run(go)]
    if json:
        print_json(summaries)
        return
    table = Table("group", "members", "generation", "topics", "lag")
    for g in summaries:
        table.add_row(
            g["group"],
            str(g["members"]),
            str(g["generation"]),
            ", ".join(g["topics"]),
            str(g["lag"]),
        )
    stdout().print(table)


def _summary(described: dict[str, Any]) -> dict[str, Any]:
    return {
        "group": described["group"],
        "generation": described["generation"],
        "lag": described["lag"],
        "members": len(described["members"]),
        "topics": sorted({r["topic"] for r in described["partitions"]}),
    }


@groups.command("describe")
def describe_group(
    group: Annotated[str, typer.Argument(help="The consumer group.")],
    broker: BrokerOpt = None,
    app: AppOpt = None,
    json: JsonOpt = False,
) -> None:
    """Show a group's members, generation, and per partition its committed offset,
    end offset and lag."""
    target = Target.resolve(broker, app)

    async def go() -> dict[str, Any]:
        async with target.open() as b:
            return await _describe(b, group)

    found = run(go)
    if not found["members"] and not any(r["committed"] is not None for r in found["partitions"]):
        fail(
            f"no consumer group {group!r} (no members and no committed offsets); "
            "`riverbed groups list` shows the groups"
        )
    if json:
        print_json(found)
        return
    out = stdout()
    out.print(
        f"group [bold]{group}[/]: generation {found['generation']}, "
        f"{len(found['members'])} member(s), lag {found['lag']}"
    )
    if found["members"]:
        now_ms = time.time_ns() // 1_000_000
        members = Table("member", "client", "partitions", "last heartbeat")
        for m in found["members"]:
            parts = ", ".join(f"{p['topic']}[{p['partition']}]" for p in m["partitions"])
            age = max(0, now_ms - m["last_heartbeat_ms"]) / 1000
            members.add_row(m["member_id"], m["client"], parts or "-", f"{age:.1f}s ago")
        out.print(members)
    table = Table("topic", "partition", "committed", "end offset", "lag", "owner")
    for r in found["partitions"]:
        committed = "-" if r["committed"] is None else str(r["committed"])
        table.add_row(
            r["topic"],
            str(r["partition"]),
            committed,
            str(r["end_offset"]),
            str(r["lag"]),
            r["owner"] or "-",
        )
    out.print(table)


def _check_one_target(
    to_offset: int | None, to_time: str | None, earliest: bool, latest: bool
) -> None:
    given = sum([to_offset is not None, to_time is not None, earliest, latest])
    if given != 1:
        raise typer.BadParameter(
            "give exactly one of --to-offset, --to-time, --to-earliest and --to-latest"
        )


@groups.command("reset")
def reset_group(
    group: Annotated[str, typer.Argument(help="The consumer group to rewind or fast-forward.")],
    topic: Annotated[str, typer.Option("--topic", "-t", help="The topic whose offsets to set.")],
    to_offset: Annotated[
        int | None,
        typer.Option(
            min=0,
            help="This offset (kept within each partition's stored range).",
            show_default=False,
        ),
    ] = None,
    to_time: Annotated[
        str | None,
        typer.Option(
            help="The first record at or after this time: a duration "
            "ago (10m, 2h) or an ISO-8601 time.",
            show_default=False,
        ),
    ] = None,
    to_earliest: Annotated[
        bool, typer.Option("--to-earliest", help="The first stored record.")
    ] = False,
    to_latest: Annotated[
        bool, typer.Option("--to-latest", help="The end: skip everything stored.")
    ] = False,
    partition: Annotated[
        int | None,
        typer.Option("--partition", "-p", min=0, help="Only this partition.", show_default=False),
    ] = None,
    broker: BrokerOpt = None,
    app: AppOpt = None,
) -> None:
    """Reset a group's committed offsets on a topic. Stop the group's consumers first:
    a group with live members is refused."""
    _check_one_target(to_offset, to_time, to_earliest, to_latest)
    time_ms = None if to_time is None else parse_time(to_time, option="--to-time")
    target = Target.resolve(broker, app)

    async def go() -> list[tuple[int, int | None, int]]:
        async with target.open() as b:
            info = await b.describe_topic(topic)
            parts = info.partitions
            if partition is not None:
                parts = [p for p in parts if p.partition == partition]
                if not parts:
                    fail(
                        f"topic {topic!r} has {info.spec.partitions} partition(s); "
                        f"there is no partition {partition}"
                    )
            new: dict[TopicPartition, int] = {}
            for p in parts:
                tp = TopicPartition(topic, p.partition)
                if to_offset is not None:
                    new[tp] = min(max(to_offset, p.start_offset), p.end_offset)
                elif time_ms is not None:
                    new[tp] = await b.offset_for_time(tp, time_ms)
                else:
                    new[tp] = p.start_offset if to_earliest else p.end_offset
            old = await b.committed(group, topic)
            await b.set_offsets(group, new)
            return [(tp.partition, old.get(tp.partition), off) for tp, off in new.items()]

    changes = run(go)
    table = Table("partition", "old offset", "new offset", title=f"{group} on {topic}")
    for p, old, off in changes:
        table.add_row(str(p), "-" if old is None else str(old), str(off))
    stdout().print(table)
