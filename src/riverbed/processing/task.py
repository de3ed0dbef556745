"""A task: one sub-topology of a flow at work on the partitions this member owns.

For every owned input partition p the task holds p's state (one `PartitionStore` per
table), restored from the changelog before the first record of p is processed. A
record runs through the tree of nodes with a `Run`: the outputs it makes and the state
of its partition. Its table writes are journaled and undone if a step raises, so a
retried or dead-lettered record leaves no trace in the state.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from riverbed.errors import DeadLetter
from riverbed.events import Record
from riverbed.processing.store import PartitionStore
from riverbed.processing.table import current_run
from riverbed.processing.tableset import TableSet

if TYPE_CHECKING:
    from riverbed.app import App
    from riverbed.processing.topology import SubTopology
    from riverbed.topics import Topic

__all__ = ["Run", "Task"]


class Run:
    """What the nodes see while records of one partition (or a wall-clock tick) are
    processed: the partition, its stores, and where outputs go."""

    __slots__ = ("app", "group", "now_ms", "outputs", "partition", "stores")

    def __init__(self, app: App, group: str, partition: int = -1) -> None:
        self.app = app
        self.group = group
        self.partition = partition
        self.now_ms = 0
        self.outputs: list[tuple[str, Record[Any]]] = []
        self.stores: list[PartitionStore] = []
        """The partition's store of each of the task's tables (see `TableSet.stores`)."""

    def emit(self, topic: Topic[Any], key: str | None, value: Any, ts: int) -> None:
        """An output record of this run, stamped with the item's event time."""
        record = self.app.producer.build(topic, value, key=key)
        record.timestamp = ts
        self.outputs.append((topic.name, record))


class Task:
    """Runs one sub-topology for the partitions its member owns."""

    def __init__(self, app: App, sub: SubTopology) -> None:
        self.app = app
        self.sub = sub
        self.tables = TableSet(app, sub.tables, sub.primary)
        self.is_async = sub.is_async
        # The entry nodes are pass-through arms: start at their children.
        self.roots = {
            topic: [child for arm in arms for child in arm.children]
            for topic, arms in sub.roots.items()
        }
        self.decoders = {name: t.codec.fast_decoder() for name, t in sub.sources.items()}
        self.times = {name: sub.times.get(name) for name in sub.sources}
        self._codecs = {name: t.codec for name, t in sub.sources.items()}
        for node in sub.nodes():
            table = getattr(node, "table", None)
            if table is not None:
                node.slot = sub.tables.index(table)  # type: ignore[attr-defined]

    def run(self, group: str, partition: int) -> Run:
        """A run for `partition` (an owned one: its stores are restored)."""
        run = Run(self.app, group, partition)
        run.stores = self.tables.stores(partition) if self.tables else []
        return run

    def value(self, record: Record[Any]) -> Any:
        """The record's value, decoded (with the codec's full error messages)."""
        if record.data is None:
            record.data = self._codecs[record.topic].decode(record.value)
        return record.data

    async def aprocess(self, run: Run, record: Record[Any]) -> None:
        """Push one record through the tree, awaiting the coroutine steps."""
        value = self.value(record)
        key = record.key_str
        time_of = self.times[record.topic]
        ts = record.timestamp if time_of is None else event_ms(time_of(value))
        token = current_run.set(run)
        try:
            for root in self.roots[record.topic]:
                await root.apush(run, key, value, ts)
        finally:
            current_run.reset(token)


def event_ms(when: Any) -> int:
    """An `event_time` function's answer as ms since the epoch (int ms, or a datetime;
    a naive datetime is taken as UTC)."""
    if isinstance(when, datetime):
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        return int(when.timestamp() * 1000)
    if isinstance(when, int) and not isinstance(when, bool):
        return when
    # No retry can change it: to the dead letters, saying what came back.
    raise DeadLetter(
        f"event_time returned {type(when).__name__} {when!r}; return ms since the epoch "
        "(int) or a datetime"
    )
