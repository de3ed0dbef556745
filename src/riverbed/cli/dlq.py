"""`riverbed dlq list|replay`: inspect dead letters and put them back on their topic."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table

from riverbed.brokers.base import Broker, TopicInfo, TopicPartition
from riverbed.cli._common import (
    AppOpt,
    BrokerOpt,
    JsonOpt,
    Target,
    fail,
    print_json,
    run,
    stdout,
)
from riverbed.cli._read import read_range
from riverbed.consumers import (
    H_ATTEMPTS,
    H_ERROR_MESSAGE,
    H_ERROR_TYPE,
    H_FIRST_FAILURE,
    H_GROUP,
    H_LAST_FAILURE,
    H_OFFSET,
    H_PARTITION,
    H_REPLAY_GROUP,
    H_TOPIC,
)
from riverbed.errors import UnknownTopic
from riverbed.events import Record
from riverbed.partitioner import Partitioner
from riverbed.topics import DLQ_SUFFIX

__all__ = ["REPLAY_GROUP", "dlq"]

REPLAY_GROUP = "riverbed.dlq-replay"
"""The group whose committed offsets on `<topic>.dlq` mark what `replay --all` has done."""

dlq = typer.Typer(
    help="List a topic's dead letters (`TOPIC.dlq`) and replay them to the topic.",
    no_args_is_help=True,
)


async def _dlq_info(b: Broker, topic: str) -> TopicInfo:
    try:
        return await b.describe_topic(topic + DLQ_SUFFIX)
    except UnknownTopic:
        await b.describe_topic(topic)  # says so if the topic itself is unknown
        raise UnknownTopic(
            f"topic {topic!r} has no dead-letter topic {topic + DLQ_SUFFIX!r} (no consumer of "
            "it has dead-lettered a record yet)"
        ) from None


def _positions(
    info: TopicInfo, committed: dict[int, int] | None = None
) -> tuple[dict[TopicPartition, int], dict[TopicPartition, int]]:
    committed = committed or {}
    starts = {
        TopicPartition(info.name, p.partition): max(p.start_offset, committed.get(p.partition, 0))
        for p in info.partitions
    }
    ends = {TopicPartition(info.name, p.partition): p.end_offset for p in info.partitions}
    return starts, ends


async def _read_all(b: Broker, info: TopicInfo) -> list[Record[Any]]:
    starts, ends = _positions(info)
    return [r async for batch in read_range(b, starts, ends) for r in batch]


def _int(text: str | None) -> int | None:
    try:
        return None if text is None else int(text)
    except ValueError:
        return None


def _entry(r: Record[Any], replayed_below: dict[int, int]) -> dict[str, Any]:
    h = r.headers
    return {
        "partition": r.partition,
        "offset": r.offset,
        "id": r.id,
        "type": r.type,
        "key": None if r.key is None else r.key.decode("utf-8", "backslashreplace"),
        "error_type": h.get(H_ERROR_TYPE),
        "error_message": h.get(H_ERROR_MESSAGE),
        "attempts": _int(h.get(H_ATTEMPTS)),
        "topic": h.get(H_TOPIC),
        "original_partition": _int(h.get(H_PARTITION)),
        "original_offset": _int(h.get(H_OFFSET)),
        "group": h.get(H_GROUP),
        "first_failure": h.get(H_FIRST_FAILURE),
        "last_failure": h.get(H_LAST_FAILURE),
        "replayed": r.offset < replayed_below.get(r.partition, 0),
    }


@dlq.command("list")
def list_dead_letters(
    topic: Annotated[str, typer.Argument(help="The topic whose dead letters to list.")],
    broker: BrokerOpt = None,
    app: AppOpt = None,
    json: JsonOpt = False,
) -> None:
    """List the dead letters of a topic: id, error, attempts, original position, group.

    The replayed column says whether `dlq replay --all` has already put a record back.
    """
    target = Target.resolve(broker, app)

    async def go() -> list[dict[str, Any]]:
        async with target.open() as b:
            info = await _dlq_info(b, topic)
            replayed = await b.committed(REPLAY_GROUP, info.name)
            return [_entry(r, replayed) for r in await _read_all(b, info)]

    entries = run(go)
    if json:
        print_json(entries)
        return
    table = Table(
        "dlq offset",
        "id",
        "error",
        "attempts",
        "original",
        "group",
        "replayed",
        title=f"{topic}{DLQ_SUFFIX}: {len(entries)} dead letter(s)",
    )
    for e in entries:
        error = f"{e['error_type']}: {e['error_message']}"
        table.add_row(
            f"{e['partition']}:{e['offset']}",
            e["id"],
            error if len(error) <= 80 else error[:79] + "…",
            str(e["attempts"]),
            f"{e['original_partition']}:{e['original_offset']}",
            e["group"] or "-",
            "yes" if e["replayed"] else "",
        )
    stdout().print(table)


def _replay_record(r: Record[Any], partitioner: Partitioner) -> Record[Any]:
    """The dead letter as it was first published, addressed to the group that failed."""
    headers = {k: v for k, v in r.headers.items() if not k.startswith("dlq.")}
    headers.pop(H_REPLAY_GROUP, None)
    group = r.headers.get(H_GROUP)
    if group:
        headers[H_REPLAY_GROUP] = group
    partition = _int(r.headers.get(H_PARTITION))
    if partition is None or not 0 <= partition < partitioner.partitions:
        partition = partitioner(r.key)
    return Record(r.id, r.type, r.source, r.timestamp, r.key, r.value, headers, partition=partition)


async def _replay_all(b: Broker, topic: TopicInfo, info: TopicInfo) -> int:
    """Replay what no earlier `--all` did; each batch's progress is committed after it."""
    committed = await b.committed(REPLAY_GROUP, info.name)
    starts, ends = _positions(info, committed)
    partitioner = Partitioner(topic.spec.partitions)
    count = 0
    async for batch in read_range(b, starts, ends):
        await b.append(topic.name, [_replay_record(r, partitioner) for r in batch])
        done = {TopicPartition(r.topic, r.partition): r.offset + 1 for r in batch}
        await b.set_offsets(REPLAY_GROUP, done)
        count += len(batch)
    # Mark the ends too, so records deleted meanwhile are not looked at again.
    await b.set_offsets(REPLAY_GROUP, {tp: end for tp, end in ends.items() if end > starts[tp]})
    return count


async def _replay_ids(b: Broker, topic: TopicInfo, info: TopicInfo, ids: list[str]) -> int:
    latest: dict[str, Record[Any]] = {}
    for r in await _read_all(b, info):
        if r.id in ids:
            latest[r.id] = r  # a record that failed again after a replay: take the last
    missing = [i for i in ids if i not in latest]
    if missing:
        fail(f"no dead letter with id {', '.join(missing)} in {info.name!r}; nothing replayed")
    partitioner = Partitioner(topic.spec.partitions)
    chosen = sorted(latest.values(), key=lambda r: (r.partition, r.offset))
    await b.append(topic.name, [_replay_record(r, partitioner) for r in chosen])
    return len(chosen)


@dlq.command("replay")
def replay(
    topic: Annotated[str, typer.Argument(help="The topic whose dead letters to replay.")],
    ids: Annotated[
        list[str] | None,
        typer.Option(
            "--id", help="Replay the dead letter with this id (repeatable).", show_default=False
        ),
    ] = None,
    all_: Annotated[
        bool, typer.Option("--all", help="Replay every dead letter not replayed before.")
    ] = False,
    broker: BrokerOpt = None,
    app: AppOpt = None,
) -> None:
    """Put dead letters back on their topic, for the group that failed them.

    A replayed record keeps its id, type, source, time, key and payload; its headers lose
    the `dlq.*` entries and gain `riverbed.replay-group` naming the failed group, so only
    that group handles it again (other groups skip it). --all replays the dead letters
    that earlier --all runs did not, and remembers its progress as the committed offsets
    of the group `riverbed.dlq-replay` on `TOPIC.dlq` (delivery is at least once: an
    interrupted run may replay its last batch again). --id replays the given ids, even
    ones replayed before, and leaves that progress alone.
    """
    if bool(ids) == all_:
        raise typer.BadParameter("give --all or one or more --id, not both")
    target = Target.resolve(broker, app)

    async def go() -> int:
        async with target.open() as b:
            info = await _dlq_info(b, topic)
            dest = await b.describe_topic(topic)
            if all_:
                return await _replay_all(b, dest, info)
            return await _replay_ids(b, dest, info, list(ids or []))

    count = run(go)
    if count == 0:
        stdout().print(
            f"replayed 0 dead letters: every dead letter of {topic!r} was replayed "
            "before (--id replays one again)"
        )
        return
    stdout().print(f"replayed {count} dead letter(s) from {topic + DLQ_SUFFIX!r} to {topic!r}")
