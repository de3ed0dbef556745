"""`sqlite:///path/app.db`: the embedded durable log, shared by processes on one machine.

Storage layout (one SQLite file in WAL mode; see `_sqlite_schema` for the DDL):

- `topics(name, partitions, spec)`: each topic's `TopicSpec`, msgpack-encoded.
- `partitions(id, topic, part, start_offset, end_offset, size_bytes, compacted_upto)`:
  one row per partition. `end_offset` is the next offset to hand out, so an append
  reads one row instead of scanning the log; `start_offset` is the first stored offset.
- `batches(id, pid, base_offset, last_offset, n_records, min_ts, max_ts, size_bytes,
  sparse_offsets, payload)`: the log itself, stored as Kafka stores record batches:
  one row per appended batch (per partition, at most `MAX_ROW_RECORDS` records),
  whose `payload` is the msgpack array of the records' stored form. Offsets are dense
  per partition from 0 and are not in the payload: a row's records have offsets
  `base_offset..last_offset`, unless compaction removed some, in which case
  `sparse_offsets` lists the survivors' offsets. An index on `(pid, last_offset)`
  finds the rows overlapping any offset range; `min_ts`/`max_ts` narrow time lookups.
- `groups(name, state)`: each consumer group's `GroupState` (the pure coordinator of
  `_groups`), msgpack-encoded; `group_offsets(grp, topic, part, next_offset)`: commits.

Concurrency:

- A broker has two connections, each confined to one worker thread: the writer does
  every write, one `BEGIN IMMEDIATE` transaction per call (an append of many records,
  a group operation, a commit), so writes from every process serialize on sqlite's
  write lock (waiting up to `timeout` seconds, default 5, for it); the reader serves
  fetches and descriptions from WAL snapshots and never waits for a writer. Blocking
  sqlite calls therefore never run on the event loop, and the cost of crossing to a
  thread is paid per call, never per record. Records are packed (msgpack-encoded) on
  the event loop before the hand-over, so one append is encoded while the previous
  one is inside sqlite, which releases the GIL.
- Group operations load the group's state, apply one step of the state machine and
  store it inside one write transaction: every process sees one coordinator.
  `append_and_commit` appends and commits in one transaction: all or nothing.
- A waiting `fetch` wakes on an in-process notification from our own appends, and on
  a change of `PRAGMA data_version` for commits by other processes: nudged by inotify
  on the WAL file where Linux offers it (`_sqlite_nudge`), and polled by one waiter at
  a time, 1 ms apart backing off to 20 ms (100 ms with nudges) (`_sqlite_wait`).

Durability: `durability="process"` (synchronous=NORMAL) survives a crash of the
process; `"fsync"` (synchronous=FULL, also `?durability=fsync` in the URL) survives a
power loss. Retention and compaction work on whole batch rows (`_sqlite_maintain`).
"""

from __future__ import annotations

import asyncio
import functools
import sqlite3
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, ParamSpec, TypeVar

from riverbed.brokers._sqlite_batch import Codec, pack
from riverbed.brokers._sqlite_nudge import WalNudge
from riverbed.brokers._sqlite_read import ReadStore
from riverbed.brokers._sqlite_schema import Durability, parse_url, translate_error
from riverbed.brokers._sqlite_store import WriteStore
from riverbed.brokers._sqlite_wait import ChangeWatch
from riverbed.brokers.base import (
    Assignment,
    Capabilities,
    GroupInfo,
    TopicInfo,
    TopicPartition,
    TopicSpec,
)
from riverbed.errors import ClosedError
from riverbed.events import Record

__all__ = ["SqliteBroker"]

P = ParamSpec("P")
T = TypeVar("T")


class SqliteBroker:
    """The embedded durable `Broker` (see the module docstring for the design).

    `url` is `sqlite:///relative/app.db` or `sqlite:////absolute/app.db`, with optional
    `?durability=fsync` and `?timeout=<seconds>` (how long a write waits for another
    process's lock). `clock` returns milliseconds (injectable for tests).
    """

    capabilities = Capabilities(
        transactions=True,
        compaction=True,
        retention=True,
        fetch_by_time=True,
        multi_process=True,
    )

    def __init__(
        self,
        url: str,
        *,
        durability: Durability = "process",
        clock: Callable[[], int] | None = None,
    ) -> None:
        self.url = url
        self._config = parse_url(url, durability)
        self._clock = clock or (lambda: time.time_ns() // 1_000_000)
        self._writes = WriteStore(self._config)
        self._reads = ReadStore(self._config)
        # One thread each: the writer thread orders this broker's writes (sqlite's lock
        # orders them across processes); reads go on while a write is in progress.
        self._writer = ThreadPoolExecutor(1, thread_name_prefix="riverbed-sqlite-writer")
        self._reader = ThreadPoolExecutor(1, thread_name_prefix="riverbed-sqlite-reader")
        self._codec = Codec()  # the event loop's own, for packing appends
        self._watch = ChangeWatch()
        self._started = False
        self._closed = False

    @property
    def path(self) -> str:
        """The database file."""
        return self._config.path

    # -- lifecycle --------------------------------------------------------------------
    async def start(self) -> None:
        # No lock: each open runs on its store's own thread and is idempotent there, so
        # racing starts (or starts from one event loop after another) are harmless.
        self._check_open()
        if not self._started:
            await self._run(self._writer, self._writes.open)
            await self._run(self._reader, self._reads.open)
            if self._watch.nudge is None:
                self._watch.nudge = WalNudge.open(self._config.path)
            self._started = True

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._watch.notify()  # waiting fetches wake up and raise ClosedError
        loop = asyncio.get_running_loop()
        try:
            # Queued behind any call still running on each thread, so nothing is cut
            # off mid-transaction.
            await loop.run_in_executor(self._writer, self._writes.close)
            await loop.run_in_executor(self._reader, self._reads.close)
        finally:
            self._writer.shutdown(wait=False)
            self._reader.shutdown(wait=False)
            if self._watch.nudge is not None:
                self._watch.nudge.close()

    async def maintain(self) -> None:
        await self._write(self._writes.maintain, self._clock())

    async def pragmas(self) -> dict[str, Any]:
        """The writer connection's effective settings (journal_mode, synchronous, ...)."""
        return await self._write(self._writes.pragmas)

    # -- topics -----------------------------------------------------------------------
    async def create_topic(self, spec: TopicSpec) -> TopicInfo:
        return await self._write(self._writes.create_topic, spec)

    async def describe_topic(self, name: str) -> TopicInfo:
        return await self._read(self._reads.describe_topic, name)

    async def list_topics(self) -> list[TopicInfo]:
        return await self._read(self._reads.list_topics)

    # -- produce / fetch --------------------------------------------------------------
    async def append(self, topic: str, records: Sequence[Record[Any]]) -> list[int]:
        # Packed here, not on the writer thread: while the writer is inside sqlite
        # (which releases the GIL) the next append is being encoded, so concurrent
        # appends overlap their CPU and I/O halves.
        chunks = pack(topic, records, self._codec)
        offsets = await self._write(self._writes.append, topic, records, chunks)
        if offsets:
            self._watch.notify()
        return offsets

    async def fetch(
        self,
        positions: Mapping[TopicPartition, int],
        *,
        max_records: int = 1000,
        timeout: float = 0.0,
    ) -> list[Record[Any]]:
        await self._ready()
        positions = dict(positions)  # read on another thread: never the caller's dict
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            seq = self._watch.seq
            version, out = await self._read(self._reads.fetch, positions, max_records)
            self._watch.saw(version)
            remaining = deadline - loop.time()
            if out or remaining <= 0:
                return out
            if not await self._watch.wait(seq, version, self._poll, remaining):
                return []
            self._check_open()

    async def _poll(self) -> int:
        return await self._read(self._reads.data_version)

    async def offset_for_time(self, tp: TopicPartition, timestamp_ms: int) -> int:
        return await self._read(self._reads.offset_for_time, tp, timestamp_ms)

    # -- groups -----------------------------------------------------------------------
    async def join_group(
        self,
        group: str,
        member_id: str,
        topics: Sequence[str],
        *,
        session_timeout: float = 10.0,
        client: str = "",
    ) -> Assignment:
        return await self._write(
            self._writes.join,
            group,
            member_id,
            list(topics),
            client=client,
            now_ms=self._clock(),
            session_timeout_ms=int(session_timeout * 1000),
        )

    async def heartbeat(self, group: str, member_id: str) -> Assignment:
        return await self._write(self._writes.heartbeat, group, member_id, self._clock())

    async def release(
        self, group: str, member_id: str, partitions: Sequence[TopicPartition]
    ) -> None:
        await self._write(self._writes.release, group, member_id, list(partitions))

    async def leave_group(self, group: str, member_id: str) -> None:
        await self._write(self._writes.leave, group, member_id)

    async def commit(
        self, group: str, member_id: str, offsets: Mapping[TopicPartition, int]
    ) -> None:
        await self._write(self._writes.commit, group, member_id, dict(offsets))

    async def committed(self, group: str, topic: str) -> dict[int, int]:
        return await self._read(self._reads.committed, group, topic)

    async def set_offsets(self, group: str, offsets: Mapping[TopicPartition, int]) -> None:
        await self._write(self._writes.set_offsets, group, dict(offsets), self._clock())

    async def list_groups(self) -> list[str]:
        return await self._read(self._reads.list_groups)

    async def describe_group(self, group: str) -> GroupInfo:
        return await self._read(self._reads.describe_group, group)

    async def append_and_commit(
        self,
        appends: Sequence[tuple[str, Sequence[Record[Any]]]],
        group: str,
        member_id: str,
        offsets: Mapping[TopicPartition, int],
    ) -> list[list[int]]:
        packed = [(t, records, pack(t, records, self._codec)) for t, records in appends]
        result = await self._write(
            self._writes.append_and_commit, packed, group, member_id, dict(offsets)
        )
        if any(result):
            self._watch.notify()
        return result

    # -- internals --------------------------------------------------------------------
    def _check_open(self) -> None:
        if self._closed:
            raise ClosedError(f"the sqlite broker on {self._config.path!r} is closed")

    async def _ready(self) -> None:
        # Opened on first use too, as the memory broker needs no start().
        if not self._started:
            await self.start()
        self._check_open()

    async def _write(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        await self._ready()
        return await self._run(self._writer, fn, *args, **kwargs)

    async def _read(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        await self._ready()
        return await self._run(self._reader, fn, *args, **kwargs)

    async def _run(
        self, executor: ThreadPoolExecutor, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """Run a blocking store call on its thread, translating sqlite's errors."""
        self._check_open()  # no await between this check and the submit: no race
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(executor, functools.partial(fn, *args, **kwargs))
        except sqlite3.Error as exc:
            raise translate_error(exc, self._config.path) from exc
