"""The tables one consumer group writes, and their life with the group's partitions.

A group that writes tables reads one topic (its *input*); table partition p is input
partition p's state. `TableSet` restores a partition's stores from the changelogs when
the group gets the partition, drops them when it goes, journals each record's writes
(`scope`), and turns the changes since the last commit into changelog records that
carry the input offset the state reaches (`changelog`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from contextvars import Token
from types import TracebackType
from typing import TYPE_CHECKING, Any

from riverbed.brokers.base import Broker, TopicPartition
from riverbed.events import IdGenerator, Record
from riverbed.processing.store import TOMBSTONE_HEADER, Journal, PartitionStore
from riverbed.processing.table import current_run

if TYPE_CHECKING:
    from riverbed.app import App
    from riverbed.processing.table import Table
    from riverbed.processing.task import Run

__all__ = ["CHANGELOG_TYPE", "RecordScope", "TableSet"]

CHANGELOG_TYPE = "riverbed.changelog"
_RESTORE_BATCH = 5000


class TableSet:
    """The tables of one group (see the module docstring)."""

    def __init__(self, app: App, tables: Sequence[Table[Any]], input_topic: str) -> None:
        self.app = app
        self.tables = list(tables)
        self.input = input_topic
        self.checkpoints = app.checkpoints
        self._changelogs = {t.changelog for t in self.tables}
        self._ids = IdGenerator()
        self._journals: dict[int, Journal] = {}
        self._applied: dict[int, dict[str, int]] = {}
        self._stores: dict[int, list[PartitionStore]] = {}

    def __bool__(self) -> bool:
        return bool(self.tables)

    # -- per record -------------------------------------------------------------------------
    def journal(self, partition: int) -> Journal:
        """The undo log shared by `partition`'s stores (restored partitions only)."""
        return self._journals[partition]

    def stores(self, partition: int) -> list[PartitionStore]:
        """`partition`'s store of each table, in the order of `tables`."""
        return self._stores[partition]

    # -- partitions coming and going -------------------------------------------------------------
    async def restore(self, broker: Broker, partitions: Sequence[int]) -> dict[int, int]:
        """Load `partitions` from the changelogs; returns, per partition, the input
        offset the restored state reaches (absent: no state yet)."""
        reach: dict[int, int] = {}
        for p in partitions:
            self._applied.pop(p, None)
        journals = {p: Journal() for p in partitions}
        stores: dict[int, list[PartitionStore]] = {p: [] for p in partitions}
        for table in self.tables:
            ends = (await broker.describe_topic(table.changelog)).end_offsets()
            for p in partitions:
                store = PartitionStore(p, journals[p])
                tp = TopicPartition(table.changelog, p)
                start = await self._from_checkpoint(broker, table, tp, store)
                await _replay(broker, table, tp, start, ends[p], store)
                stores[p].append(store)
                for topic, offset in store.applied.items():
                    have = self._applied.setdefault(p, {})
                    have[topic] = min(have.get(topic, offset), offset)
                applied = store.applied.get(self.input)
                if applied is not None:
                    reach[p] = min(reach.get(p, applied), applied)
        for p in partitions:  # visible only once every table of the partition is back
            for table, store in zip(self.tables, stores[p], strict=True):
                table.attach(p, store)
        self._journals.update(journals)
        self._stores.update(stores)
        return reach

    async def _from_checkpoint(
        self, broker: Broker, table: Table[Any], tp: TopicPartition, store: PartitionStore
    ) -> int:
        """Load the local copy of `tp` if it still matches the changelog; returns the
        changelog offset to replay from."""
        if self.checkpoints is None:
            return 0
        saved = await asyncio.to_thread(self.checkpoints.load, tp.topic, tp.partition)
        if saved is None:
            return 0
        at = await broker.fetch({tp: saved.last_offset}, max_records=1)
        if not at or at[0].offset != saved.last_offset or at[0].id != saved.last_id:
            # The changelog moved under it (recreated, or retention): replay it whole.
            await asyncio.to_thread(self.checkpoints.forget, tp.topic, tp.partition)
            return 0
        for key, value in saved.entries:
            store.load(key, value, table.decode)
        return saved.last_offset + 1

    async def checkpoint(self, written: Sequence[tuple[str, Record[Any]]]) -> None:
        """Copy the changelog records a commit wrote (their offsets set) to local state."""
        if self.checkpoints is None:
            return
        runs: dict[tuple[str, int], list[Record[Any]]] = {}
        for topic, rec in written:
            if topic in self._changelogs:
                runs.setdefault((topic, rec.partition), []).append(rec)
        for (topic, partition), recs in runs.items():
            changes = [(r.key or b"null", None if _is_tombstone(r) else r.value) for r in recs]
            last = max(recs, key=lambda r: r.offset)
            await asyncio.to_thread(
                self.checkpoints.save, topic, partition, changes, last.offset, last.id
            )

    def applied(self, partition: int) -> dict[str, int]:
        """Per input topic, the offset the restored state of `partition` reaches."""
        return dict(self._applied.get(partition, {}))

    def drop(self, partition: int) -> None:
        for table in self.tables:
            table.detach(partition)
        self._journals.pop(partition, None)
        self._stores.pop(partition, None)
        self._applied.pop(partition, None)

    def changelog(self, partition: int, applied: dict[str, int]) -> list[tuple[str, Record[Any]]]:
        """The changelog records of `partition`'s dirty state, with the input offsets the
        state reaches (topic -> next offset: the input, and a flow's join sides)."""
        out: list[tuple[str, Record[Any]]] = []
        now = time.time_ns() // 1_000_000
        for table in self.tables:
            store = table.store(partition)
            if store is None or not store.dirty:
                continue
            store.applied = applied
            for key, value in store.drain(table.encode):
                out.append((table.changelog, self._entry(partition, key, value, now)))
        return out

    def _entry(self, partition: int, key: bytes, value: bytes | None, now: int) -> Record[Any]:
        headers = {TOMBSTONE_HEADER: "1"} if value is None else {}
        value_bytes = b"" if value is None else value
        return Record(
            self._ids.new(), CHANGELOG_TYPE, self.app.name, now, key, value_bytes, headers,
            partition=partition,
        )  # fmt: skip


class RecordScope:
    """`with scope:` around one try of a handler that writes tables: the writes are
    journaled, kept if the try returns and undone if it raises; `current_run` tells the
    tables which partition is being processed (also in a sync handler's thread, which
    runs in a copy of this context)."""

    def __init__(self, tables: TableSet, run: Run) -> None:
        self._tables = tables
        self._run = run
        self._token: Token[Run | None] | None = None
        self._journal = Journal()

    def __enter__(self) -> RecordScope:
        self._journal = self._tables.journal(self._run.partition)
        self._journal.begin()
        self._token = current_run.set(self._run)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._token is not None:
            current_run.reset(self._token)
        if exc_type is None:
            self._journal.end()
        else:
            self._journal.rollback()


def _is_tombstone(rec: Record[Any]) -> bool:
    return bool(rec.headers) and TOMBSTONE_HEADER in rec.headers


async def _replay(
    broker: Broker,
    table: Table[Any],
    tp: TopicPartition,
    start: int,
    end: int,
    store: PartitionStore,
) -> None:
    position = start
    while position < end:
        batch = await broker.fetch({tp: position}, max_records=_RESTORE_BATCH)
        if not batch:
            break  # retention removed the tail meanwhile: nothing more to read
        for rec in batch:
            value = None if _is_tombstone(rec) else rec.value
            store.load(rec.key or b"null", value, table.decode)
            position = rec.offset + 1
