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
import logging
from collections.abc import Coroutine, Sequence
from concurrent.futures import Executor
from typing import TYPE_CHECKING, Any

from riverbed.brokers.base import Broker, TopicPartition
from riverbed.consumers import H_REPLAY_GROUP, ConsumerSpec, recover
from riverbed.context import Context
from riverbed.errors import UnsupportedCapability
from riverbed.events import Record
from riverbed.member import ConsumerOptions, GroupMember
from riverbed.processing.nodes import Node
from riverbed.processing.store import Journal
from riverbed.processing.table import current_run
from riverbed.processing.task import Run, Task

if TYPE_CHECKING:
    from riverbed.app import App
    from riverbed.processing.topology import SubTopology

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
        specs = [
            ConsumerSpec(
                self._handle_record,
                topic,
                sub.group,
                retry=sub.flow.retry,
                is_async=True,
                wants_record=True,
                wants_context=True,
            )
            for topic in sub.sources.values()
        ]
        super().__init__(app, sub.group, specs, broker, options, pool)
        self._tables = self.task.tables if sub.tables else None
        self._transactional = _transactions(sub, broker)
        self._specs = {s.topic.name: s for s in specs}
        self._keys: dict[bytes, str] = {}
        # With coroutine steps a record's processing yields to the loop: the tick must
        # not run in between (its writes would join the record's journal).
        self._steps = asyncio.Lock()

    # -- state lifecycle --------------------------------------------------------------------
    def _restored(self, tps: list[TopicPartition]) -> None:
        now = self.clock.now_ms()
        for tp in tps:
            for node in self.sub.windows:
                node.table.open(tp.partition)
                node.opened(tp.partition, now)

    def _forget(self, tp: TopicPartition) -> None:
        super()._forget(tp)
        for node in self.sub.windows:
            node.forget(tp.partition)

    def _extra_loops(self) -> list[Coroutine[Any, Any, None]]:
        return [self._tick_loop()] if self.sub.windows else []

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

    async def _process_batch(self, records: list[Record[Any]], run: Run) -> None:
        """The fast path: no await per record, state and outputs resolved per partition.

        Outputs of finished records collect in `run.outputs` and join the member's held
        outputs before any await, so a commit never takes an offset without its outputs.
        """
        positions, done, stopping, tables = self._positions, self._done, self._stopping, self.task
        journal = Journal()
        outputs = run.outputs
        roots: list[Node] = []
        decode: Any = None
        tp = TopicPartition("", -1)
        handled = 0
        for rec in records:
            if rec.partition != tp.partition or rec.topic != tp.topic:
                tp = TopicPartition(rec.topic, rec.partition)
                if tp not in done:
                    continue  # revoked meanwhile
                run.partition = tp.partition
                run.stores = tables.tables.stores(tp.partition) if tables.tables else []
                journal = tables.tables.journal(tp.partition) if tables.tables else Journal()
                roots, decode = tables.roots[rec.topic], tables.decoders[rec.topic]
            pos = positions.get(tp)
            if pos is None or rec.offset < pos or stopping.is_set():
                continue  # revoked meanwhile, or a stale duplicate from before a reset
            positions[tp] = rec.offset + 1
            if rec.headers and rec.headers.get(H_REPLAY_GROUP, self.group) != self.group:
                self.stats.skipped += 1  # a replay meant for another group
                done[tp] = rec.offset + 1
                continue
            journal.begin()
            mark = len(outputs)
            self._current = tp
            try:
                value = decode(rec.value) if rec.data is None else rec.data
                key, ts = self._key(rec.key), rec.timestamp
                for node in roots:
                    node.push(run, key, value, ts)
            except Exception as exc:
                journal.rollback()
                del outputs[mark:]
                self._outputs.extend(outputs)  # before the await: see the docstring
                outputs.clear()
                await self._recover_record(rec, tp, exc)
                tp = TopicPartition("", -1)  # state may have moved during the await
                continue
            journal.end()
            done[tp] = rec.offset + 1
            handled += 1
        self._current = None
        self.stats.handled += handled

    async def _dispatch_async(self, records: list[Record[Any]]) -> None:
        """Flows with coroutine steps: one record at a time, awaiting each step."""
        positions, stopping = self._positions, self._stopping
        for rec in records:
            tp = TopicPartition(rec.topic, rec.partition)
            pos = positions.get(tp)
            if pos is None or rec.offset < pos or stopping.is_set():
                continue
            positions[tp] = rec.offset + 1
            if rec.headers and rec.headers.get(H_REPLAY_GROUP, self.group) != self.group:
                self.stats.skipped += 1
                self._finish_inline(rec, tp, [])
                continue
            run = self._run(tp.partition)
            journal = self.task.tables.journal(tp.partition) if self.task.tables else Journal()
            self._current = tp
            try:
                async with self._steps:
                    journal.begin()
                    try:
                        await self.task.aprocess(run, rec)
                    except BaseException:
                        journal.rollback()
                        raise
                    journal.end()
            except Exception as exc:
                await self._recover_record(rec, tp, exc)
                continue
            finally:
                self._current = None
            self.stats.handled += 1
            self._finish_inline(rec, tp, run.outputs)

    async def _recover_record(self, rec: Record[Any], tp: TopicPartition, exc: Exception) -> None:
        """The first try failed: retries per the flow's policy, then the dead letters."""
        spec = self._specs[rec.topic]
        ctx = Context(self.app, self.group, rec, transactional=True)
        outputs: list[tuple[str, Record[Any]]] = []
        self._current = tp
        try:
            outcome, info = await recover(
                spec, rec, ctx, exc, pool=self._pool, stopping=self._stopping, rand=self._rand
            )
            self._settle(spec, rec, outputs, ctx, outcome, info)
        finally:
            self._current = None
        self._finish_inline(rec, tp, outputs)

    async def _handle_record(self, rec: Record[Any], ctx: Context) -> None:
        """One retry of a record: the consumer rules call this through the spec."""
        run = self._run(rec.partition)
        journal = self.task.tables.journal(rec.partition) if self.task.tables else Journal()
        journal.begin()
        try:
            await self.task.aprocess(run, rec)
        except BaseException:
            journal.rollback()
            raise
        journal.end()
        ctx.outputs.extend(run.outputs)

    # -- wall-clock ticks -----------------------------------------------------------------------
    async def _tick_loop(self) -> None:
        while True:
            await self.clock.sleep(TICK_INTERVAL)
            await self.tick()

    async def tick(self) -> None:
        """Close the windows that wall-clock time has closed, in every idle partition."""
        async with self._steps:
            await self._tick()

    async def _tick(self) -> None:
        for tp in list(self._done):
            if self._current == tp or tp in self._releasing:
                continue  # a record of it is mid-way: its journal must not mix with ours
            run = self._run(tp.partition)
            for node in self.sub.windows:
                for key, value, ts in node.tick(run):
                    if self.task.is_async:
                        await node.aforward(run, key, value, ts)
                    else:
                        node.forward(run, key, value, ts)
            if run.outputs and tp in self._done:
                self._outputs.extend(run.outputs)


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
