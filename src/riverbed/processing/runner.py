"""`FlowMember`: a consumer-group member that runs a flow's sub-topology.

It is a `GroupMember` (same joins, heartbeats, rebalances, commit loop and drain) with
four differences:
- a partition's state is restored from the changelogs before its first record, and
  dropped when the partition leaves; a restored state that reaches past the committed
  offset (possible only without transactions) moves the start there, so no record is
  applied twice;
- records are pushed through the task in the fetch loop, without a coroutine frame per
  record when every step is a plain function;
- each commit carries the changelog records of the state changed since the last one,
  after the outputs: on the sqlite log (and Kafka) one transaction holds outputs, state
  and input offsets, which is exactly-once; elsewhere the changelog is appended after
  the outputs it depends on;
- a tick on the flow's clock closes windows of partitions that receive no records.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
from collections.abc import Coroutine, Sequence
from concurrent.futures import Executor
from typing import TYPE_CHECKING, Any

from riverbed.brokers.base import Broker, TopicPartition
from riverbed.consumers import H_REPLAY_GROUP, ConsumerSpec
from riverbed.context import Context
from riverbed.errors import UnsupportedCapability
from riverbed.events import Record
from riverbed.member import ConsumerOptions, GroupMember
from riverbed.processing.nodes import Node
from riverbed.processing.store import Journal
from riverbed.processing.table import EngineTable, current_run
from riverbed.processing.task import Run, Task, event_ms

if TYPE_CHECKING:
    from riverbed.app import App
    from riverbed.processing.topology import SubTopology
    from riverbed.topics import Topic

__all__ = ["FlowMember"]

log = logging.getLogger("riverbed.flow")

TICK_INTERVAL = 0.1
"""Seconds between wall-clock ticks (windows of quiet partitions close on them)."""


class FlowMember(GroupMember):
    """Runs one sub-topology of a flow in this process (see the module docstring)."""

    def __init__(
        self,
        app: App,
        sub: SubTopology,
        broker: Broker,
        options: ConsumerOptions,
        pool: Executor,
    ) -> None:
        self.sub = sub
        self.task = Task(app, sub)
        self.clock = sub.flow.clock
        specs = {name: self._spec(topic) for name, topic in sub.sources.items()}
        # The group owns the primary topic's partitions; the join sides are read by
        # position for the same partition numbers, and their positions live in the state.
        super().__init__(app, sub.group, [specs[sub.primary]], broker, options, pool)
        self._tables = self.task.tables if sub.tables else None
        self._transactional = _transactions(sub, broker)
        self._specs = specs
        self._sides = frozenset(sub.sides)
        self._side: dict[TopicPartition, int] = {}
        self._keys: dict[bytes, str] = {}
        self._timed = sub.timed
        # With coroutine steps a record's processing yields to the loop: the tick must
        # not run in between (its writes would join the record's journal).
        self._steps = asyncio.Lock()

    def _spec(self, topic: Topic[Any]) -> ConsumerSpec:
        return ConsumerSpec(
            self._handle_record,
            topic,
            self.sub.group,
            retry=self.sub.flow.retry,
            is_async=True,
            wants_record=True,
            wants_context=True,
        )

    # -- state lifecycle --------------------------------------------------------------------
    def _restored(self, tps: list[TopicPartition]) -> None:
        now = self.clock.now_ms()
        for tp in tps:
            self._open_engines(tp.partition)
            self._touch(tp.partition, now)
            applied = self.task.tables.applied(tp.partition)
            for side in self._sides:  # a table side is read from its start
                self._side[TopicPartition(side, tp.partition)] = applied.get(side, 0)

    async def _prepare(self, tps: list[TopicPartition]) -> None:
        """Read the table sides of `tps` to their ends before the stream's records are
        fetched, so that records already waiting meet the tables as they are now (else
        a table with a backlog larger than a fetch would be behind its stream)."""
        sides = [TopicPartition(side, tp.partition) for side in self.sub.table_sides for tp in tps]
        ends: dict[TopicPartition, int] = {}
        for side in self.sub.table_sides:
            info = await self.broker.describe_topic(side)
            ends.update({TopicPartition(side, p): end for p, end in info.end_offsets().items()})
        while True:
            todo = {tp: self._side[tp] for tp in sides if self._side.get(tp, ends[tp]) < ends[tp]}
            if not todo:
                return
            batch = await self.broker.fetch(todo, max_records=self.options.max_poll_records)
            if not batch:
                return  # nothing more stored below the ends (offsets with gaps)
            await self._dispatch_inline(batch)

    def _open_engines(self, partition: int) -> None:
        """(Re)build the engines' indexes from the partition's stores: after a restore,
        and after a rollback undid writes the indexes had seen."""
        for table in self.sub.tables:
            if isinstance(table, EngineTable):
                table.open(partition)

    def _forget(self, tp: TopicPartition) -> None:
        super()._forget(tp)
        for node in self._timed:
            node.forget(tp.partition)
        for side in self._sides:
            self._side.pop(TopicPartition(side, tp.partition), None)

    def _fetch_positions(self) -> dict[TopicPartition, int]:
        positions = dict(self._positions)
        positions.update(self._side)
        return positions

    def _state_outputs(self) -> list[tuple[str, Record[Any]]]:
        if not self._tables:
            return []
        out: list[tuple[str, Record[Any]]] = []
        for tp, offset in self._done.items():
            applied = {tp.topic: offset}
            for side in self._sides:
                applied[side] = self._side.get(TopicPartition(side, tp.partition), 0)
            out.extend(self._tables.changelog(tp.partition, applied))
        return out

    def _extra_loops(self) -> list[Coroutine[Any, Any, None]]:
        return [self._tick_loop()] if self._timed else []

    # -- processing ---------------------------------------------------------------------------
    def _run(self, partition: int) -> Run:
        run = self.task.run(self.group, partition)
        run.now_ms = self.clock.now_ms()
        return run

    def _key(self, raw: bytes | None) -> str | None:
        if raw is None:
            return None
        key = self._keys.get(raw)
        if key is None:
            if len(self._keys) > 100_000:
                self._keys.clear()  # bounded: a cache for the keys that repeat
            key = self._keys[raw] = raw.decode("utf-8", "surrogateescape")
        return key

    async def _dispatch_inline(self, records: list[Record[Any]]) -> None:
        if self._sides:
            records = _by_time(records)
        if self.task.is_async:
            await self._dispatch_async(records)
            return
        run = Run(self.app, self.group)
        run.now_ms = self.clock.now_ms()
        outputs = run.outputs
        token = current_run.set(run)
        try:
            await self._process_batch(records, run)
        finally:
            current_run.reset(token)
            self._current = None
            self._outputs.extend(outputs)
            if self._idle_waiters:
                self._progress.set()

    def _touch(self, partition: int, now_ms: int) -> None:
        """Records of `partition` were processed at `now_ms` (wall-clock closing counts
        from the last of them)."""
        for node in self._timed:
            node.touch(partition, now_ms)

    def _position_map(self, tp: TopicPartition) -> dict[TopicPartition, int]:
        return self._side if tp.topic in self._sides else self._positions

    def _finish(self, rec: Record[Any], tp: TopicPartition) -> None:
        if tp.topic in self._sides:
            if tp in self._side:
                self._side[tp] = rec.offset + 1
        elif tp in self._done:
            self._done[tp] = rec.offset + 1

    async def _process_batch(self, records: list[Record[Any]], run: Run) -> None:
        """The fast path: no await per record, state and outputs resolved per partition.

        Outputs of finished records collect in `run.outputs` and join the member's held
        outputs before any await, so a commit never takes an offset without its outputs.
        Nothing else can run between two records here (no await), so the stop flag and
        the ownership are checked when the partition changes and after an await.
        """
        task, keys, group = self.task, self._keys, self.group
        journal = Journal()
        entries = journal.entries
        outputs = run.outputs
        roots: list[Node] = []
        decode: Any = None
        time_of: Any = None
        positions: dict[TopicPartition, int] = {}
        done: dict[TopicPartition, int] = {}
        tp = TopicPartition("", -1)
        handled = 0
        for rec in records:
            if rec.partition != tp.partition or rec.topic != tp.topic:
                if tp in positions:
                    self._touch(tp.partition, run.now_ms)
                if self._stopping.is_set():
                    break
                tp = TopicPartition(rec.topic, rec.partition)
                positions = self._position_map(tp)
                done = self._side if tp.topic in self._sides else self._done
                if tp not in positions:
                    continue  # revoked meanwhile
                run.partition = tp.partition
                run.stores = task.tables.stores(tp.partition) if task.tables else []
                journal = task.tables.journal(tp.partition) if task.tables else Journal()
                entries = journal.entries
                roots, decode = task.roots[rec.topic], task.decoders[rec.topic]
                time_of = task.times[rec.topic]
            pos = positions.get(tp)
            if pos is None or rec.offset < pos:
                continue  # revoked meanwhile, or a stale duplicate from before a reset
            positions[tp] = rec.offset + 1
            if rec.headers and rec.headers.get(H_REPLAY_GROUP, group) != group:
                self.stats.skipped += 1  # a replay meant for another group
                done[tp] = rec.offset + 1
                continue
            if entries:
                entries.clear()
            journal.active = True
            mark = len(outputs)
            try:
                value = decode(rec.value) if rec.data is None else rec.data
                raw = rec.key
                key = None if raw is None else (keys.get(raw) or self._key(raw))
                ts = rec.timestamp if time_of is None else event_ms(time_of(value))
                for node in roots:
                    node.push(run, key, value, ts)
            except Exception as exc:
                self._rollback(journal, tp.partition)
                del outputs[mark:]
                self._outputs.extend(outputs)  # before the await: see the docstring
                outputs.clear()
                await self._recover_record(rec, tp, exc)
                tp = TopicPartition("", -1)  # state may have moved during the await
                continue
            journal.active = False
            done[tp] = rec.offset + 1
            handled += 1
        if tp in positions:
            self._touch(tp.partition, run.now_ms)
        self.stats.handled += handled

    def _rollback(self, journal: Journal, partition: int) -> None:
        touched = bool(journal.entries)
        journal.rollback()
        if touched:
            self._open_engines(partition)

    async def _dispatch_async(self, records: list[Record[Any]]) -> None:
        """Flows with coroutine steps: one record at a time, awaiting each step."""
        for rec in records:
            tp = TopicPartition(rec.topic, rec.partition)
            positions = self._position_map(tp)
            pos = positions.get(tp)
            if pos is None or rec.offset < pos or self._stopping.is_set():
                continue
            positions[tp] = rec.offset + 1
            if rec.headers and rec.headers.get(H_REPLAY_GROUP, self.group) != self.group:
                self.stats.skipped += 1
                self._finish(rec, tp)
                continue
            self._current = tp
            try:
                async with self._steps:
                    outputs = await self._attempt(rec)
            except Exception as exc:
                await self._recover_record(rec, tp, exc)
                continue
            finally:
                self._current = None
            self.stats.handled += 1
            self._outputs.extend(outputs)
            self._finish(rec, tp)
            self._touch(tp.partition, self.clock.now_ms())
            self._progress.set()

    async def _attempt(self, rec: Record[Any]) -> list[tuple[str, Record[Any]]]:
        """One try of a record, awaiting its coroutine steps; undone if it raises."""
        run = self._run(rec.partition)
        tables = self.task.tables
        journal = tables.journal(rec.partition) if tables else Journal()
        journal.begin()
        try:
            await self.task.aprocess(run, rec)
        except BaseException:
            self._rollback(journal, rec.partition)
            raise
        journal.end()
        return run.outputs

    async def _recover_record(self, rec: Record[Any], tp: TopicPartition, exc: Exception) -> None:
        """The first try failed: retries per the flow's policy, then the dead letters."""
        ctx = Context(self.app, self.group, rec, transactional=True)
        outputs = await self._recover(self._specs[rec.topic], rec, tp, exc, ctx)
        if tp in self._position_map(tp):  # still ours: a revocation may have dropped it
            self._outputs.extend(outputs)
            self._finish(rec, tp)
        self._progress.set()

    async def _handle_record(self, rec: Record[Any], ctx: Context) -> None:
        """One retry of a record: the consumer rules call this through the spec."""
        ctx.outputs.extend(await self._attempt(rec))

    # -- wall-clock ticks -----------------------------------------------------------------------
    async def _tick_loop(self) -> None:
        while not self._ended:
            await self.clock.sleep(TICK_INTERVAL)
            await self.tick()

    async def tick(self) -> None:
        """Close the windows that wall-clock time has closed, in every idle partition."""
        async with self._steps:
            await self._tick()

    async def _tick(self) -> None:
        for tp in list(self._done):
            if self._current is not None and self._current.partition == tp.partition:
                continue  # a record of it is mid-way: its journal must not mix with ours
            if tp in self._releasing:
                continue
            run = self._run(tp.partition)
            for node in self._timed:
                for key, value, ts in node.tick(run):
                    if self.task.is_async:
                        await node.aforward(run, key, value, ts)
                    else:
                        node.forward(run, key, value, ts)
            if run.outputs and tp in self._done:
                self._outputs.extend(run.outputs)


def _by_time(records: list[Record[Any]]) -> list[Record[Any]]:
    """The batch in time order across the task's inputs (as Kafka Streams picks the
    oldest record first), each partition's records kept in offset order."""
    runs: dict[tuple[str, int], list[Record[Any]]] = {}
    for rec in records:
        runs.setdefault((rec.topic, rec.partition), []).append(rec)
    if len(runs) < 2:
        return records
    return list(heapq.merge(*runs.values(), key=lambda r: r.timestamp))


def _transactions(sub: SubTopology, broker: Broker) -> bool:
    """Commit outputs, state and offsets as one transaction? Per the flow's guarantee."""
    guarantee, caps = sub.flow.guarantee, broker.capabilities
    if guarantee == "exactly_once" and not caps.transactions:
        raise UnsupportedCapability(
            f"flow {sub.flow.name!r} asks for exactly_once, which {broker.url} cannot give "
            "(no transactions); use guarantee='at_least_once' (table writes stay "
            "idempotent) or a backend with transactions (sqlite, kafka)"
        )
    return caps.transactions and guarantee != "at_least_once"


def flow_members(
    app: App, subs: Sequence[SubTopology], broker: Broker, pool: Executor
) -> list[FlowMember]:
    return [FlowMember(app, sub, broker, app.consumer_options, pool) for sub in subs]
