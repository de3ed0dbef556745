"""A consumer-group member: fetch, dispatch, commit, heartbeat, rebalance.

One `GroupMember` runs per (app process, group). It joins the group with every topic its
handlers read, fetches from the partitions it owns, hands records to the handlers and
commits offsets in batches.

Commit rule (at-least-once): a partition's committed offset is the first record not yet
finished. With `concurrency > 1` records of different keys finish out of order, so each
partition keeps a queue of in-flight slots and the commit point only moves past a
contiguous run of finished ones. Outputs a handler published through its context (and
dead letters) travel with that commit: on transactional backends in the same
transaction, elsewhere appended just before it.

A session is one membership: join, run the loops, leave. A `FencedError` (the broker
gave our partitions to someone else) ends the session without committing; the member
then joins again from the committed offsets.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import socket
from collections import defaultdict, deque
from collections.abc import AsyncIterator, Coroutine, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from riverbed.brokers.base import Assignment, Broker, TopicPartition
from riverbed.consumers import (
    H_REPLAY_GROUP,
    ConsumerSpec,
    FailureInfo,
    Outcome,
    attempt,
    dlq_headers,
    recover,
)
from riverbed.context import Context
from riverbed.errors import ConfigError, FencedError
from riverbed.events import Record
from riverbed.processing.tableset import RecordScope, TableSet
from riverbed.processing.task import Run
from riverbed.stats import ConsumerStats

if TYPE_CHECKING:
    from riverbed.app import App

__all__ = ["ConsumerOptions", "GroupMember"]

log = logging.getLogger("riverbed.consumer")


@dataclass(frozen=True, kw_only=True)
class ConsumerOptions:
    """Timing and batching knobs shared by an app's consumers."""

    session_timeout: float = 10.0
    """A member silent this long is declared dead and its partitions move."""
    heartbeat_interval: float = 1.0
    commit_interval: float = 0.2
    """Longest time a finished record waits for its offset to be committed."""
    output_linger: float = 0.002
    """How long held outputs (ctx.publish, dead letters) wait to share a commit."""
    max_poll_records: int = 1000
    fetch_wait: float = 0.5
    shutdown_timeout: float = 10.0
    """How long a stop waits for in-flight handlers before cancelling them."""


class _Slot:
    __slots__ = ("done", "offset", "outputs", "started")

    def __init__(self, offset: int) -> None:
        self.offset = offset
        self.started = False
        self.done = False
        self.outputs: list[tuple[str, Record[Any]]] = []


_Queue = asyncio.Queue[tuple[Record[Any], TopicPartition, _Slot] | None]


def new_member_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{os.urandom(4).hex()}"


class GroupMember:
    """Runs the handlers of one consumer group in this process."""

    def __init__(
        self,
        app: App,
        group: str,
        specs: Sequence[ConsumerSpec],
        broker: Broker,
        options: ConsumerOptions,
        pool: Executor,
    ) -> None:
        self.app = app
        self.group = group
        self.broker = broker
        self.options = options
        self.member_id = new_member_id()
        self.stats = ConsumerStats(group)
        self._pool = pool
        self._by_topic: dict[str, list[ConsumerSpec]] = defaultdict(list)
        for spec in specs:
            self._by_topic[spec.topic.name].append(spec)
        self._concurrency = max(s.concurrency for s in specs)
        self._tables = _table_set(app, group, specs)
        self._transactional = broker.capabilities.transactions
        self._rand = random.Random()
        self._stopping = asyncio.Event()
        self._reset_session()

    def _reset_session(self) -> None:
        self.generation = -1
        self._positions: dict[TopicPartition, int] = {}
        self._slots: dict[TopicPartition, deque[_Slot]] = {}
        self._done: dict[TopicPartition, int] = {}
        self._committed: dict[TopicPartition, int] = {}
        self._outputs: list[tuple[str, Record[Any]]] = []
        self._current: TopicPartition | None = None
        self._progress = asyncio.Event()
        self._idle_waiters = 0
        self._releasing: set[TopicPartition] = set()
        self._tg: asyncio.TaskGroup | None = None
        self._ended = False
        """The session is over: its background loops must return."""
        self._release_tasks: set[asyncio.Task[None]] = set()
        self._kick = asyncio.Event()
        self._commit_lock = asyncio.Lock()

    @property
    def assigned(self) -> frozenset[TopicPartition]:
        return frozenset(self._positions)

    def stop(self) -> None:
        """Ask the member to stop: no new fetches, drain, commit, leave."""
        self._stopping.set()
        self._kick.set()

    # -- sessions ---------------------------------------------------------------------
    async def run(self) -> None:
        """Join and consume until `stop()`; rejoin after a fence or a backend failure.

        A failing backend never ends the member: it logs, backs off (up to 5 s) and
        joins again, resuming from the committed offsets.
        """
        failures = 0
        while not self._stopping.is_set():
            try:
                await self._session()
                failures = 0
            except* FencedError as eg:
                log.warning("group %s: %s; rejoining", self.group, eg.exceptions[0])
                self.stats.rebalances += 1
            except* Exception as eg:
                failures += 1
                self.stats.errors += 1
                log.error("group %s: session failed; rejoining", self.group, exc_info=eg)
                await self._pause(min(5.0, 0.1 * 2**failures))
            self._reset_session()

    async def _pause(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._stopping.wait()

    async def _session(self) -> None:
        assignment = await self.broker.join_group(
            self.group,
            self.member_id,
            sorted(self._by_topic),
            session_timeout=self.options.session_timeout,
            client=f"{socket.gethostname()}/{os.getpid()}",
        )
        try:
            await self._apply(assignment)
            async with asyncio.TaskGroup() as tg:
                self._tg = tg
                side = [
                    tg.create_task(self._heartbeat_loop()),
                    tg.create_task(self._commit_loop()),
                    *(tg.create_task(loop) for loop in self._extra_loops()),
                ]
                queues, workers = self._start_workers(tg)
                fetcher = tg.create_task(self._fetch_loop(queues))
                await self._stopping.wait()
                await self._drain(queues, [fetcher, *workers])
                # The loops also check `_ended`: a cancel can be lost (an asyncio.wait_for
                # in a client library may swallow it when its result arrives at the same
                # moment), and the task group would then wait for them forever.
                self._ended = True
                for task in [*side, *self._release_tasks]:
                    task.cancel()  # leaving the group releases everything anyway
            await self._commit()
        finally:
            self._tg = None
            if self._stopping.is_set():
                with contextlib.suppress(Exception):
                    await self.broker.leave_group(self.group, self.member_id)

    # -- assignment -------------------------------------------------------------------
    async def _heartbeat_loop(self) -> None:
        while not self._ended:
            await asyncio.sleep(self.options.heartbeat_interval)
            await self._apply(await self.broker.heartbeat(self.group, self.member_id))

    async def _apply(self, a: Assignment) -> None:
        if a.generation != self.generation:
            self.generation = a.generation
            self.stats.generation = a.generation
        for tp in set(self._positions) - a.assigned - a.revoking:
            self._forget(tp)  # lost without a revocation: only after a fence
        new = [tp for tp in a.assigned if tp not in self._positions and tp not in self._releasing]
        if new:
            await self._start_partitions(new)
        revoke = [tp for tp in a.revoking if tp not in self._releasing]
        if not revoke:
            return
        for tp in revoke:
            self._positions.pop(tp, None)  # stop fetching them now
        self._releasing.update(revoke)
        if self._tg is None:
            await self._release_when_idle(revoke)  # joining: nothing of ours is running
        else:
            # Wait for running handlers in a task of our own: heartbeats must go on
            # meanwhile, however long a handler takes.
            task = self._tg.create_task(self._release_when_idle(revoke))
            self._release_tasks.add(task)
            task.add_done_callback(self._release_tasks.discard)

    async def _start_partitions(self, tps: list[TopicPartition]) -> None:
        reach: dict[int, int] = {}
        if self._tables:
            # State first: no record of a partition runs before its tables are back.
            async with self._kept_alive():
                reach = await self._tables.restore(self.broker, [tp.partition for tp in tps])
                self._restored(tps)
                await self._prepare(tps)
        await self._start_positions(tps)
        for tp in tps:
            applied = reach.get(tp.partition)
            if applied is not None and applied > self._positions.get(tp, applied):
                # Without transactions the changelog can get ahead of the committed
                # offset: those records' effects are in the state already.
                self._positions[tp] = self._done[tp] = applied

    @contextlib.asynccontextmanager
    async def _kept_alive(self) -> AsyncIterator[None]:
        """Heartbeat while the body runs: restoring large tables can take longer than
        the session timeout, and the heartbeat loop waits for it (it called us)."""

        async def beat() -> None:
            while True:
                await asyncio.sleep(self.options.heartbeat_interval)
                await self.broker.heartbeat(self.group, self.member_id)

        beating = asyncio.create_task(beat())
        try:
            yield
        finally:
            beating.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await beating  # a FencedError from it propagates: we lost the partitions

    def _restored(self, tps: list[TopicPartition]) -> None:
        """The tables of `tps` were restored (flows open their windows here)."""

    async def _prepare(self, tps: list[TopicPartition]) -> None:
        """Last step before `tps` are fetched (flows catch their table sides up here)."""

    async def _start_positions(self, tps: list[TopicPartition]) -> None:
        for topic in {tp.topic for tp in tps}:
            committed = await self.broker.committed(self.group, topic)
            ends: dict[int, int] = {}
            if any(s.start == "latest" for s in self._by_topic[topic]):
                ends = (await self.broker.describe_topic(topic)).end_offsets()
            for tp in tps:
                if tp.topic == topic:
                    start = committed.get(tp.partition, ends.get(tp.partition, 0))
                    self._positions[tp] = start
                    self._committed[tp] = committed.get(tp.partition, -1)
                    self._done[tp] = start
                    self._slots[tp] = deque()
        self._kick.set()

    async def _release_when_idle(self, tps: list[TopicPartition]) -> None:
        """Hand revoked partitions over once no handler of theirs runs, never before.

        Releasing while a handler still runs would let the new owner start on the
        same record: two members handling one partition at once.
        """
        await self._wait_idle(tps, None)
        await self._commit()
        for tp in tps:
            self._forget(tp)
        await self.broker.release(self.group, self.member_id, tps)
        self._releasing.difference_update(tps)
        self.stats.rebalances += 1

    def _forget(self, tp: TopicPartition) -> None:
        if self._tables:
            self._tables.drop(tp.partition)
        self._positions.pop(tp, None)
        self._slots.pop(tp, None)
        self._done.pop(tp, None)
        self._committed.pop(tp, None)

    def _busy(self, tps: Sequence[TopicPartition]) -> bool:
        """Is a handler running for a record of these partitions?"""
        if self._current is not None and self._current in tps:
            return True
        for tp in tps:
            for slot in self._slots.get(tp, ()):
                if slot.started and not slot.done:
                    return True
        return False

    async def _wait_idle(self, tps: Sequence[TopicPartition], timeout: float | None) -> bool:
        async def idle() -> None:
            while self._busy(tps):
                self._progress.clear()
                await self._progress.wait()

        self._idle_waiters += 1
        try:
            async with asyncio.timeout(timeout):
                await idle()
        except TimeoutError:
            return False
        finally:
            self._idle_waiters -= 1
        return True

    # -- fetching and dispatch ----------------------------------------------------------
    async def _fetch_loop(self, queues: list[_Queue]) -> None:
        while not self._stopping.is_set():
            if not self._positions:
                self._kick.clear()
                await self._kick.wait()
                continue
            records = await self.broker.fetch(
                self._fetch_positions(), max_records=self.options.max_poll_records
            )
            if not records:
                records = await self._wait_fetch()
            if records:
                await self._dispatch(records, queues)

    async def _wait_fetch(self) -> list[Record[Any]]:
        """Long-poll, but return early on stop or when the assignment changes."""
        self._kick.clear()
        fetch = asyncio.create_task(
            self.broker.fetch(
                self._fetch_positions(),
                max_records=self.options.max_poll_records,
                timeout=self.options.fetch_wait,
            )
        )
        kick = asyncio.create_task(self._kick.wait())
        try:
            await asyncio.wait({fetch, kick}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            kick.cancel()
        if not fetch.done():
            fetch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await fetch
            return []
        return fetch.result()

    async def _dispatch(self, records: list[Record[Any]], queues: list[_Queue]) -> None:
        if not queues:
            await self._dispatch_inline(records)
            return
        positions = self._positions
        stopping = self._stopping
        tp = TopicPartition("", -1)
        for rec in records:
            # A fetch returns runs of one partition: build the key only when it changes.
            if rec.partition != tp.partition or rec.topic != tp.topic:
                tp = TopicPartition(rec.topic, rec.partition)
            pos = positions.get(tp)
            if pos is None or rec.offset < pos or stopping.is_set():
                continue  # revoked meanwhile, or a stale duplicate from before a reset
            positions[tp] = rec.offset + 1
            slot = _Slot(rec.offset)
            self._slots[tp].append(slot)
            await queues[self._shard(rec, len(queues))].put((rec, tp, slot))

    async def _dispatch_inline(self, records: list[Record[Any]]) -> None:
        """concurrency=1: handle each record in the fetch loop, in order.

        The common case (one async handler for the topic, taking just the event, no
        replay header) runs without further coroutine frames: at a few hundred
        thousand records a second each frame is a measurable share of the cost.
        """
        positions, done, stopping = self._positions, self._done, self._stopping
        tp = TopicPartition("", -1)
        fast: ConsumerSpec | None = None
        for rec in records:
            if rec.partition != tp.partition or rec.topic != tp.topic:
                tp = TopicPartition(rec.topic, rec.partition)
                fast = self._fast_spec(rec.topic)
            pos = positions.get(tp)
            if pos is None or rec.offset < pos or stopping.is_set():
                continue  # revoked meanwhile, or a stale duplicate from before a reset
            positions[tp] = rec.offset + 1
            if fast is None or rec.headers:
                await self._handle_inline(rec, tp)
                continue
            self._current = tp
            try:
                # The event is not kept on the record: dropped as soon as the handler
                # returns, a batch's decoded events never pile up for the cyclic GC to
                # scan. A retry after a failure decodes afresh.
                await fast.func(fast.topic.codec.decode(rec.value))
            except Exception as exc:
                await self._recover_inline(fast, rec, tp, exc)
                continue
            finally:
                self._current = None
            self.stats.handled += 1
            if tp in done:  # still ours: a revocation may have dropped it meanwhile
                done[tp] = rec.offset + 1
            if self._idle_waiters:
                self._progress.set()

    def _fast_spec(self, topic: str) -> ConsumerSpec | None:
        specs = self._by_topic[topic]
        if len(specs) != 1:
            return None
        spec = specs[0]
        fits = (
            spec.is_async and not spec.wants_context and not spec.wants_record and not spec.tables
        )
        return spec if fits else None

    async def _handle_inline(self, rec: Record[Any], tp: TopicPartition) -> None:
        """Handle one record in the fetch loop; the commit point follows directly."""
        self._current = tp
        outputs: list[tuple[str, Record[Any]]] = []
        try:
            await self._handle(rec, outputs)
        finally:
            self._current = None
        self._finish_inline(rec, tp, outputs)

    async def _recover_inline(
        self, spec: ConsumerSpec, rec: Record[Any], tp: TopicPartition, exc: Exception
    ) -> None:
        """The fast path's first try failed: retries, skip or dead letter from here."""
        self._finish_inline(rec, tp, await self._recover(spec, rec, tp, exc, None))

    async def _recover(
        self,
        spec: ConsumerSpec,
        rec: Record[Any],
        tp: TopicPartition,
        exc: Exception,
        ctx: Context | None,
    ) -> list[tuple[str, Record[Any]]]:
        """Retries per the policy after a failed first try; the outputs to commit (the
        last try's, or a dead letter)."""
        self._current = tp
        outputs: list[tuple[str, Record[Any]]] = []
        try:
            outcome, info = await recover(
                spec, rec, ctx, exc, pool=self._pool, stopping=self._stopping, rand=self._rand
            )
            self._settle(spec, rec, outputs, ctx, outcome, info)
        finally:
            self._current = None
        return outputs

    def _finish_inline(
        self, rec: Record[Any], tp: TopicPartition, outputs: list[tuple[str, Record[Any]]]
    ) -> None:
        if tp in self._done:  # still ours: a revocation may have dropped it meanwhile
            self._done[tp] = rec.offset + 1
            if outputs:
                self._outputs.extend(outputs)
        self._progress.set()

    @staticmethod
    def _shard(rec: Record[Any], n: int) -> int:
        # Same key -> same worker keeps per-key order; keyless records keep partition order.
        return hash(rec.key) % n if rec.key is not None else rec.partition % n

    def _start_workers(
        self, tg: asyncio.TaskGroup
    ) -> tuple[list[_Queue], list[asyncio.Task[None]]]:
        if self._concurrency <= 1:
            return [], []
        size = max(1, self.options.max_poll_records // self._concurrency)
        queues: list[_Queue] = [asyncio.Queue(maxsize=size) for _ in range(self._concurrency)]
        return queues, [tg.create_task(self._worker(q)) for q in queues]

    async def _worker(self, queue: _Queue) -> None:
        while (item := await queue.get()) is not None:
            rec, tp, slot = item
            if self._stopping.is_set() or tp not in self._positions:
                continue  # stopping, or the partition was revoked: leave it uncommitted
            slot.started = True
            await self._handle(rec, slot.outputs)
            slot.done = True
            self._advance(tp)

    async def _handle(self, rec: Record[Any], outputs: list[tuple[str, Record[Any]]]) -> None:
        replay_for = rec.headers.get(H_REPLAY_GROUP) if rec.headers else None
        if replay_for is not None and replay_for != self.group:
            self.stats.skipped += 1  # a replay meant for another group
            return
        for spec in self._by_topic[rec.topic]:
            await self._run_handler(spec, rec, outputs)

    async def _run_handler(
        self, spec: ConsumerSpec, rec: Record[Any], outputs: list[tuple[str, Record[Any]]]
    ) -> None:
        ctx = (
            Context(self.app, self.group, rec, transactional=self._transactional)
            if spec.wants_context
            else None
        )
        scope = self._scope(rec) if spec.tables else None
        try:
            await attempt(spec, rec, ctx, self._pool, scope)
        except Exception as exc:
            outcome, info = await recover(
                spec,
                rec,
                ctx,
                exc,
                pool=self._pool,
                stopping=self._stopping,
                rand=self._rand,
                scope=scope,
            )
            self._settle(spec, rec, outputs, ctx, outcome, info)
        else:
            self.stats.handled += 1
            if ctx is not None and ctx.outputs:
                outputs.extend(ctx.outputs)

    def _scope(self, rec: Record[Any]) -> RecordScope:
        assert self._tables is not None  # specs with tables made the set
        return RecordScope(self._tables, Run(self.app, self.group, rec.partition))

    def _settle(
        self,
        spec: ConsumerSpec,
        rec: Record[Any],
        outputs: list[tuple[str, Record[Any]]],
        ctx: Context | None,
        outcome: Outcome,
        info: FailureInfo,
    ) -> None:
        """Account for a record that needed the slow path (retries, skip, dead letter)."""
        if outcome is Outcome.DEAD and not spec.dead_letter:
            outcome = Outcome.DROPPED
        # info.attempts counts failed tries; a try that succeeded or skipped counts too.
        tries = info.attempts + (1 if outcome in (Outcome.DONE, Outcome.SKIPPED) else 0)
        self.stats.count(outcome, tries)
        if outcome is Outcome.DONE and ctx is not None:
            outputs.extend(ctx.outputs)
        elif outcome is Outcome.DEAD:
            outputs.append(self._dead_letter(spec, rec, info))
        elif outcome is Outcome.DROPPED:
            log.error(
                "group %s: %s[%d]@%d failed %d time(s) and dead letters are off; "
                "passing over it: %r",
                self.group,
                rec.topic,
                rec.partition,
                rec.offset,
                info.attempts,
                info.error,
            )

    def _dead_letter(
        self, spec: ConsumerSpec, rec: Record[Any], info: FailureInfo
    ) -> tuple[str, Record[Any]]:
        dlq = self.app.dlq_topic(spec.topic)
        dead: Record[Any] = Record(
            rec.id,
            rec.type,
            rec.source,
            rec.timestamp,
            rec.key,
            rec.value,
            dlq_headers(rec, spec, info),
            partition=rec.partition % dlq.partitions,
        )
        return dlq.name, dead

    def _advance(self, tp: TopicPartition) -> None:
        slots = self._slots.get(tp)
        if slots is None:
            return
        while slots and slots[0].done:
            slot = slots.popleft()
            self._done[tp] = slot.offset + 1
            if slot.outputs:
                self._outputs.extend(slot.outputs)
        self._progress.set()

    # -- committing ---------------------------------------------------------------------
    async def _commit_loop(self) -> None:
        interval = self.options.commit_interval
        linger = self.options.output_linger
        waited = 0.0
        while not self._ended:
            step = linger if self._outputs else min(interval, 0.05)
            await asyncio.sleep(step)
            waited += step
            if self._outputs or waited >= interval:
                waited = 0.0
                await self._commit()

    async def _commit(self) -> None:
        async with self._commit_lock:
            offsets = {tp: off for tp, off in self._done.items() if off != self._committed.get(tp)}
            outputs, self._outputs = self._outputs, []
            # State changes go last: where appends are not one transaction, the state
            # that says "applied up to here" must not land before the outputs it made.
            outputs.extend(self._state_outputs())
            if not offsets and not outputs:
                return
            # The outputs have left `_outputs`: a cancel (a stop, a revocation) must not
            # abandon the write half-way, or they would be lost while a later commit
            # stores the offsets alone. The write finishes; the cancel is raised after.
            write = asyncio.ensure_future(self._write(outputs, offsets))
            try:
                await asyncio.shield(write)
            except asyncio.CancelledError:
                await write
                self._committed.update(offsets)
                raise
            self._committed.update(offsets)
            self.stats.commits += 1

    def _fetch_positions(self) -> dict[TopicPartition, int]:
        """Where to fetch from: the owned partitions' positions (flows add join sides)."""
        return dict(self._positions)

    def _state_outputs(self) -> list[tuple[str, Record[Any]]]:
        """The changelog records of the tables' changes since the last commit."""
        if not self._tables:
            return []
        out: list[tuple[str, Record[Any]]] = []
        for tp, offset in self._done.items():
            out.extend(self._tables.changelog(tp.partition, {tp.topic: offset}))
        return out

    def _extra_loops(self) -> list[Coroutine[Any, Any, None]]:
        """More background loops of a session (flows: the wall-clock tick)."""
        return []

    async def _write(
        self, outputs: list[tuple[str, Record[Any]]], offsets: dict[TopicPartition, int]
    ) -> None:
        appends = _group_by_topic(outputs)
        if self._transactional and appends:
            # Nothing to write with the offsets: a plain commit is as atomic, and on Kafka
            # far cheaper than a transaction.
            written = await self.broker.append_and_commit(
                appends, self.group, self.member_id, offsets
            )
            for (_, records), offs in zip(appends, written, strict=True):
                _assign_offsets(records, offs)
        else:
            for topic, records in appends:
                _assign_offsets(records, await self.broker.append(topic, records))
            if offsets:
                await self.broker.commit(self.group, self.member_id, offsets)
        if self._tables and outputs:
            await self._tables.checkpoint(outputs)

    async def _drain(self, queues: list[_Queue], tasks: list[asyncio.Task[None]]) -> None:
        """Let running handlers finish (bounded); records not started stay uncommitted."""
        self._kick.set()
        for q in queues:
            _clear_queue(q)
            q.put_nowait(None)
        _, pending = await asyncio.wait(tasks, timeout=self.options.shutdown_timeout)
        if pending:
            log.warning(
                "group %s: handlers still running after %.1fs; cancelling them (their "
                "records stay uncommitted and will be delivered again)",
                self.group,
                self.options.shutdown_timeout,
            )
            for task in pending:
                task.cancel()


def _table_set(app: App, group: str, specs: Sequence[ConsumerSpec]) -> TableSet | None:
    tables = [t for s in specs for t in s.tables]
    if not tables:
        return None
    topics = {s.topic.name for s in specs}
    if len(topics) > 1:
        raise ConfigError(
            f"group {group!r} writes tables and reads {len(topics)} topics "
            f"({', '.join(sorted(topics))}); a table follows one input topic's partitions: "
            "give each topic's handler its own group"
        )
    return TableSet(app, tables, topics.pop())


def _group_by_topic(
    outputs: list[tuple[str, Record[Any]]],
) -> list[tuple[str, list[Record[Any]]]]:
    grouped: dict[str, list[Record[Any]]] = {}
    for topic, rec in outputs:
        grouped.setdefault(topic, []).append(rec)
    return list(grouped.items())


def _assign_offsets(records: Sequence[Record[Any]], offsets: Sequence[int]) -> None:
    for rec, offset in zip(records, offsets, strict=True):
        rec.offset = offset


def _clear_queue(q: asyncio.Queue[Any]) -> None:
    while not q.empty():
        q.get_nowait()
