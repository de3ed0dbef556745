"""The raw baseline: the same count by hand over `SqliteBroker`, no riverbed runtime.

The minimum Python doing the durable work the flow does, on the same engine: join the
group once, `fetch` 1000 records at a time (the member's batch size), decode each value
into a `Tick` with msgspec, count per (key, minute) in a dict per partition and keep
each partition's watermark. Every 0.2 s (the flow's commit interval) the changed counts,
the watermarks and the offsets reached become changelog records in the flow's own
encoding, and one `append_and_commit` writes them with the group's offsets in one
transaction; the write runs while the next batches are counted, as the flow's commit
loop does. No per-record undo journal, no window close heap, no heartbeats, ticks or
maintenance. Timed from opening the broker until the last commit holds every offset.
"""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any

import msgspec

from benchmarks.backends.wire import Ids
from benchmarks.common import Tick
from benchmarks.flows.workload import APP, PARTITIONS, TOPIC, WINDOW_S
from riverbed.brokers.base import TopicPartition, TopicSpec
from riverbed.brokers.sqlite import SqliteBroker
from riverbed.events import Record

CHANGELOG = f"{APP}.raw.changelog"
GROUP = f"{APP}.raw"
COMMIT_S = 0.2
CHANGELOG_TYPE = "riverbed.changelog"
_WM_KEY = b'["wm"]'
_OFFSETS_KEY = b"null"
_encode = msgspec.json.Encoder().encode

Window = tuple[str, int]


class _Partition:
    """One partition's counts, the windows changed since the last commit, watermark."""

    __slots__ = ("counts", "dirty", "position", "wm")

    def __init__(self) -> None:
        self.counts: dict[Window, int] = {}
        self.dirty: set[Window] = set()
        self.wm = -1
        self.position = 0


class Counter:
    """The counting loop's state: per partition, and the changelog it owes."""

    def __init__(self, partitions: list[int]) -> None:
        self.parts = {p: _Partition() for p in partitions}
        self.size = round(WINDOW_S * 1000)
        self._decode = msgspec.json.Decoder(Tick).decode
        self._ids = Ids()

    def add(self, records: list[Record[Any]]) -> None:
        """Count a fetched batch (runs of one partition, in offset order)."""
        decode, size, parts = self._decode, self.size, self.parts
        for rec in records:
            decode(rec.value)  # the typed event, as a handler would get it
            part = parts[rec.partition]
            ts = rec.timestamp
            start = ts - ts % size
            part.position = rec.offset + 1
            if start + size <= part.wm:
                continue  # late: its window closed already
            window = (rec.key.decode() if rec.key else "", start)
            counts = part.counts
            counts[window] = counts.get(window, 0) + 1
            part.dirty.add(window)
            if ts > part.wm:
                part.wm = ts

    def drain(self) -> tuple[list[Record[Any]], dict[TopicPartition, int]]:
        """The changelog records of what changed since the last drain, and the offsets."""
        now = time.time_ns() // 1_000_000
        out: list[Record[Any]] = []
        offsets: dict[TopicPartition, int] = {}
        for p, part in self.parts.items():
            if not part.dirty:
                continue
            entries = [(_encode(("w", k, s)), _encode(part.counts[k, s])) for k, s in part.dirty]
            entries.append((_WM_KEY, _encode(part.wm)))
            entries.append((_OFFSETS_KEY, _encode({TOPIC: part.position})))
            ids = self._ids.take(len(entries))
            out += [
                Record(i, CHANGELOG_TYPE, APP, now, k, v, {}, partition=p)
                for i, (k, v) in zip(ids, entries, strict=True)
            ]
            offsets[TopicPartition(TOPIC, p)] = part.position
            part.dirty = set()
        return out, offsets

    def positions(self) -> dict[TopicPartition, int]:
        return {TopicPartition(TOPIC, p): part.position for p, part in self.parts.items()}

    def total(self) -> int:
        return sum(c for part in self.parts.values() for c in part.counts.values())


class _Committer:
    """Writes each drain with `append_and_commit` in the background, one at a time."""

    def __init__(self, broker: SqliteBroker, member: str) -> None:
        self.broker = broker
        self.member = member
        self.commits = 0
        self.records = 0
        self._pending: asyncio.Task[None] | None = None

    async def commit(self, counter: Counter) -> None:
        await self.wait()  # the previous write first, as the flow's commit lock does
        records, offsets = counter.drain()
        if offsets:
            self._pending = asyncio.create_task(self._write(records, offsets))

    async def _write(self, records: list[Record[Any]], offsets: dict[TopicPartition, int]) -> None:
        await self.broker.append_and_commit([(CHANGELOG, records)], GROUP, self.member, offsets)
        self.commits += 1
        self.records += len(records)

    async def wait(self) -> None:
        if self._pending is not None:
            await self._pending
            self._pending = None


async def _join(broker: SqliteBroker, member: str) -> list[int]:
    await broker.create_topic(TopicSpec(CHANGELOG, PARTITIONS, compact=True))
    # One member for the whole run: a long session needs no heartbeats to keep it.
    assignment = await broker.join_group(GROUP, member, [TOPIC], session_timeout=3600)
    return sorted(tp.partition for tp in assignment.assigned)


async def _count_all(broker: SqliteBroker, counter: Counter, committer: _Committer) -> None:
    ends = (await broker.describe_topic(TOPIC)).end_offsets()
    ends_tp = {TopicPartition(TOPIC, p): end for p, end in ends.items()}
    last = time.perf_counter()
    while True:
        positions = counter.positions()
        caught_up = positions == ends_tp
        if not caught_up:
            counter.add(await broker.fetch(positions, max_records=1000, timeout=1.0))
        now = time.perf_counter()
        if caught_up:
            await asyncio.sleep(max(0.0, last + COMMIT_S - now))  # the next commit tick
        elif now - last < COMMIT_S:
            continue
        await committer.commit(counter)
        last = time.perf_counter()
        if caught_up:
            await committer.wait()
            return


async def _count(p: dict[str, Any]) -> dict[str, Any]:
    n, member = p["events"], f"raw-{os.getpid()}"
    t0 = time.perf_counter()
    broker = SqliteBroker(f"sqlite:///{p['db']}")
    await broker.start()
    try:
        counter = Counter(await _join(broker, member))
        committer = _Committer(broker, member)
        try:
            await asyncio.wait_for(_count_all(broker, counter, committer), p["timeout"])
        except TimeoutError:
            reached = {tp.partition: o for tp, o in counter.positions().items()}
            raise TimeoutError(f"raw: at {reached} after {p['timeout']} s") from None
        seconds = time.perf_counter() - t0
        committed = await broker.committed(GROUP, TOPIC)
    finally:
        await broker.aclose()
    if counter.total() != n or sum(committed.values()) != n:
        raise RuntimeError(f"raw: windows sum to {counter.total()}, committed {committed}, of {n}")
    return {
        "events": n,
        "seconds": seconds,
        "rate": n / seconds,
        "commits": committer.commits,
        "changelog_records": committer.records,
    }


def count(p: dict[str, Any]) -> dict[str, Any]:
    """Child workload: the hand-written count over the log at `db`."""
    return asyncio.run(_count(p))
