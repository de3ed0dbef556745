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
from riverbed.events import Record
from riverbed.member import ConsumerOptions, GroupMember
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
        self._specs = {s.topic.name: s for s in specs}
        self._runs: dict[int, Run] = {}
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
        self._runs.pop(tp.partition, None)

    def _extra_loops(self) -> list[Coroutine[Any, Any, None]]:
        return [self._tick_loop()] if self.sub.windows else []

    # -- processing ---------------------------------------------------------------------------
    def _run(self, partition: int) -> Run:
        run = self._runs.get(partition)
        if run is None:
            run = self._runs[partition] = Run(self.app, self.group, partition)
        run.outputs = []
        run.now_ms = self.clock.now_ms()
        return run

    async def _dispatch_inline(self, records: list[Record[Any]]) -> None:
        positions, done, stopping, task = self._positions, self._done, self._stopping, self.task
        tables = task.tables
        tp = TopicPartition("", -1)
        for rec in records:
            if rec.partition != tp.partition or rec.topic != tp.topic:
                tp = TopicPartition(rec.topic, rec.partition)
            pos = positions.get(tp)
            if pos is None or rec.offset < pos or stopping.is_set():
                continue  # revoked meanwhile, or a stale duplicate from before a reset
            positions[tp] = rec.offset + 1
            if rec.headers and rec.headers.get(H_REPLAY_GROUP, self.group) != self.group:
                self.stats.skipped += 1  # a replay meant for another group
                self._finish_inline(rec, tp, [])
                continue
            run = self._run(tp.partition)
            self._current = tp
            tables.begin(tp.partition)
            try:
                if task.is_async:
                    async with self._steps:
                        await task.aprocess(run, rec)
                else:
                    task.process(run, rec)
            except Exception as exc:
                tables.rollback(tp.partition)
                await self._recover_record(rec, tp, exc)
                continue
            finally:
                self._current = None
            tables.end(tp.partition)
            self.stats.handled += 1
            if tp in done:
                done[tp] = rec.offset + 1
                if run.outputs:
                    self._outputs.extend(run.outputs)
            if self._idle_waiters:
                self._progress.set()

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
        tables = self.task.tables
        tables.begin(rec.partition)
        try:
            await self.task.aprocess(run, rec)
        except BaseException:
            tables.rollback(rec.partition)
            raise
        tables.end(rec.partition)
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


def flow_members(
    app: App, subs: Sequence[SubTopology], broker: Broker, pool: Executor
) -> list[FlowMember]:
    return [FlowMember(app, sub, broker, app.consumer_options, pool) for sub in subs]
