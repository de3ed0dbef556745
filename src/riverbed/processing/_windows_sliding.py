"""Sliding windows: one window per record, looking back `size` ms from it.

A record at t defines the window [t - size, t + 1): every record of its key with
t - size <= ts <= t. A later record at u updates each open window holding u as well.
The window closes at t + 1 + grace; a record is late when its own window would be
closed already (u + 1 + grace <= watermark).

A window's accumulator is the left fold, with `merge`, of its records' single-record
accumulators `add(init(), v)` in (ts, arrival) order, so that order-sensitive folds
(string concatenation, float sums) give one answer however records arrive. Records
that arrive out of order land inside existing windows, which are then folded again
from the buffer of single-record accumulators kept in the view as `("r", key, ts, seq)`;
`seq` numbers the records of one key and ts in arrival order. A buffered record is
dropped once no open or future window can hold it: t < watermark - grace - size.
"""

from __future__ import annotations

import heapq
from bisect import bisect_left, bisect_right
from typing import Any

from riverbed.processing._windows_core import Emit, WindowedPartition, WindowResult
from riverbed.processing.aggregates import Aggregator
from riverbed.processing.view import StateView

__all__ = ["SlidingPartition"]

Entry = tuple[int, int]
"""A buffered record: (ts, seq)."""


def _ts(entry: Entry) -> int:
    return entry[0]


class SlidingPartition(WindowedPartition):
    """Windows [t - size, t + 1) for every record at t."""

    def __init__(
        self,
        view: StateView,
        aggregator: Aggregator,
        *,
        size: int,
        grace: int,
        emit: Emit,
        retention: int | None,
    ) -> None:
        self._size = size
        self._length = size + 1
        self._buffer: dict[str, list[Entry]] = {}  # per key, sorted
        self._expiry: list[tuple[int, str, int]] = []  # heap of (ts, key, seq)
        super().__init__(view, aggregator, emit=emit, after=grace, retention=retention)
        for entries in self._buffer.values():
            entries.sort()
        heapq.heapify(self._expiry)

    def _late(self, ts: int, wm: int) -> bool:
        return ts + 1 + self._after <= wm

    def _apply(self, key: str, ts: int, value: Any, wm: int | None) -> list[WindowResult]:
        agg = self._agg
        single = agg.add(agg.init(), value)
        entries = self._buffer.get(key, [])
        at = bisect_right(entries, ts, key=_ts)  # where the new record goes
        seq = entries[at - 1][1] + 1 if at and entries[at - 1][0] == ts else 0
        changes = []
        # The windows holding ts are those of records at t in [ts, ts + size]: all
        # open, since ts is not late (t + 1 + grace > ts + grace >= watermark).
        for t in self._window_ends(entries, at, ts):
            if t == ts and seq:  # the record comes last in its own window's fold
                stored = self._view.get(("w", key, t - self._size))
                acc = agg.merge(self._fresh(stored), self._fresh(single))
            else:
                acc = self._fold(key, entries, at, single, t)
            changes.append((t, acc))
        # Every aggregator call is done: from here on nothing raises mid-change.
        self._buffer_record(key, entries, at, ts, seq, single)
        return self._write(key, ts, seq, changes)

    def _window_ends(self, entries: list[Entry], at: int, ts: int) -> list[int]:
        """The distinct record times t in [ts, ts + size] once ts is added, in order."""
        stop = bisect_right(entries, ts + self._size, key=_ts)
        ends = [ts]
        for t, _ in entries[at:stop]:
            if t != ends[-1]:
                ends.append(t)
        return ends

    def _fold(self, key: str, entries: list[Entry], at: int, single: Any, t: int) -> Any:
        """The accumulator of the window ending at t, the new record (at index `at`)
        included."""
        lo = bisect_left(entries, t - self._size, key=_ts)
        hi = bisect_right(entries, t, key=_ts)
        view = self._view
        accs = [view.get(("r", key, ets, eseq)) for ets, eseq in entries[lo:at]]
        accs.append(single)
        accs.extend(view.get(("r", key, ets, eseq)) for ets, eseq in entries[at:hi])
        merge = self._agg.merge
        acc = self._fresh(accs[0])
        for other in accs[1:]:
            acc = merge(acc, self._fresh(other))
        return acc

    def _buffer_record(
        self, key: str, entries: list[Entry], at: int, ts: int, seq: int, single: Any
    ) -> None:
        self._view.put(("r", key, ts, seq), single)
        if not entries:
            self._buffer[key] = entries
        entries.insert(at, (ts, seq))
        heapq.heappush(self._expiry, (ts, key, seq))

    def _write(
        self, key: str, ts: int, seq: int, changes: list[tuple[int, Any]]
    ) -> list[WindowResult]:
        out = []
        for t, acc in changes:
            start = t - self._size
            self._view.put(("w", key, start), acc)
            if t == ts and not seq:
                self._index(key, start, t + 1 + self._after)
            if self._updates:
                out.append(WindowResult(key, start, t + 1, self._result(acc), False))
        return out

    def _prune(self, wm: int) -> None:
        expiry = self._expiry
        limit = wm - self._after - self._size
        while expiry and expiry[0][0] < limit:
            ts, key, seq = heapq.heappop(expiry)
            self._view.delete(("r", key, ts, seq))
            entries = self._buffer[key]
            del entries[0]  # the heap pops each key's records in (ts, seq) order
            if not entries:
                del self._buffer[key]

    def _restore_entry(self, key: tuple[Any, ...], value: Any) -> None:
        if key[0] == "r":
            _, rkey, ts, seq = key
            self._buffer.setdefault(rkey, []).append((ts, seq))
            self._expiry.append((ts, rkey, seq))
