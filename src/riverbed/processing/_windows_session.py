"""Session windows: runs of one key's records with gaps of at most `gap` ms.

A session is [first ts, last ts + 1). A record at ts can join it while
s - gap <= ts <= e - 1 + gap (within `gap` of its span). A record is late when
ts + 1 + grace <= watermark, so the earliest record still accepted is at
watermark - grace; it can reach a session while watermark - grace <= e - 1 + gap.
A session therefore closes, no accepted record being able to extend it, at

    close time = e + gap + grace        (= last ts + 1 + gap + grace)

A record merges every open session it reaches into one, spanning them all and the
record: its accumulator is `add(merge(...merge(acc_1, acc_2)..., acc_n), value)`,
sessions in start order. The merged session keeps the start of the earliest of them
(or the record's ts when that comes first); the others are deleted and reported as
removed. The sessions of a key stay more than `gap` apart, so they are disjoint and
their ends rise with their starts.
"""

from __future__ import annotations

import heapq
from bisect import bisect_right
from typing import Any

from riverbed.processing._windows_core import Emit, WindowedPartition, WindowResult
from riverbed.processing.aggregates import Aggregator
from riverbed.processing.view import StateView

__all__ = ["SessionPartition"]

Reached = tuple[int, int, Any]
"""An open session a record reaches: (start, end, accumulator)."""


class SessionPartition(WindowedPartition):
    """Sessions stored as `("w", key, start) -> [end, acc]`."""

    def __init__(
        self,
        view: StateView,
        aggregator: Aggregator,
        *,
        gap: int,
        grace: int,
        emit: Emit,
        retention: int | None,
    ) -> None:
        self._gap = gap
        self._grace = grace
        super().__init__(view, aggregator, emit=emit, after=gap + grace, retention=retention)

    def _end(self, start: int, stored: Any) -> int:
        end: int = stored[0]
        return end

    def _acc(self, stored: Any) -> Any:
        return stored[1]

    def _late(self, ts: int, wm: int) -> bool:
        return ts + 1 + self._grace <= wm

    def _apply(self, key: str, ts: int, value: Any, wm: int | None) -> list[WindowResult]:
        agg = self._agg
        reached = self._reached(key, ts, wm)
        if reached:
            acc = self._fresh(reached[0][2])
            for _, _, other in reached[1:]:
                acc = agg.merge(acc, self._fresh(other))
            acc = agg.add(acc, value)
            start = min(ts, reached[0][0])
            end = max(ts + 1, max(e for _, e, _ in reached))
        else:
            acc = agg.add(agg.init(), value)
            start, end = ts, ts + 1
        # Every aggregator call is done: from here on nothing raises mid-change.
        out = self._remove_merged(key, start, reached)
        self._store(key, start, end, acc, reached)
        if self._updates:
            out.append(WindowResult(key, start, end, self._result(acc), False))
        return out

    def _reached(self, key: str, ts: int, wm: int | None) -> list[Reached]:
        """The open sessions of `key` a record at ts joins, in start order."""
        starts = self._starts.get(key)
        if not starts:
            return []
        gap = self._gap
        view = self._view
        found = []
        i = bisect_right(starts, ts + gap)  # sessions starting later are out of reach
        while i:
            i -= 1
            end, acc = view.get(("w", key, starts[i]))
            if end - 1 + gap < ts:
                break  # this one and all before it end too early
            if wm is None or end + self._after > wm:
                found.append((starts[i], end, acc))
        found.reverse()
        return found

    def _remove_merged(self, key: str, start: int, reached: list[Reached]) -> list[WindowResult]:
        out = []
        for s, e, _ in reached:
            if s != start:
                self._view.delete(("w", key, s))
                self._unindex(key, s)
                if self._updates:
                    out.append(WindowResult(key, s, e, None, False, True))
        return out

    def _store(self, key: str, start: int, end: int, acc: Any, reached: list[Reached]) -> None:
        self._view.put(("w", key, start), [end, acc])
        close = end + self._after
        old_end = next((e for s, e, _ in reached if s == start), None)
        if old_end is None:
            self._index(key, start, close)
        elif old_end != end:
            # The entry at the old close time stays in the heap, skipped when popped.
            heapq.heappush(self._open, (close, key, start))
