"""Tumbling and hopping windows: fixed-length windows aligned to the epoch.

A window [start, start + size) closes at end + grace. Tumbling windows have one window
per record; hopping windows start every `advance` ms, so a record falls into
ceil(size / advance) of them (fewer at the edges) and updates those still open.
"""

from __future__ import annotations

from typing import Any

from riverbed.processing._windows_core import (
    MISSING,
    WM_KEY,
    Emit,
    WindowedPartition,
    WindowResult,
)
from riverbed.processing.aggregates import Aggregator
from riverbed.processing.view import StateView

__all__ = ["HoppingPartition", "TumblingPartition"]

_new_tuple = tuple.__new__


class HoppingPartition(WindowedPartition):
    """Windows [k*advance, k*advance + size): overlapping when advance < size."""

    def __init__(
        self,
        view: StateView,
        aggregator: Aggregator,
        *,
        size: int,
        advance: int,
        grace: int,
        emit: Emit,
        retention: int | None,
    ) -> None:
        self._length = size
        self._step = advance
        super().__init__(view, aggregator, emit=emit, after=grace, retention=retention)

    def _late(self, ts: int, wm: int) -> bool:
        last_start = ts - ts % self._step
        return last_start + self._length + self._after <= wm

    def _apply(self, key: str, ts: int, value: Any, wm: int | None) -> list[WindowResult]:
        agg = self._agg
        view = self._view
        changes = []
        for start in self._starts_of(ts):
            close = start + self._length + self._after
            if wm is not None and close <= wm:
                continue
            acc = view.get(("w", key, start), MISSING)
            new = acc is MISSING
            acc = agg.add(agg.init() if new else self._fresh(acc), value)
            changes.append((start, close, new, acc))
        # Every aggregator call is done: from here on nothing raises mid-change.
        out = []
        for start, close, new, acc in changes:
            view.put(("w", key, start), acc)
            if new:
                self._index(key, start, close)
            if self._updates:
                out.append(WindowResult(key, start, start + self._length, self._result(acc), False))
        return out

    def _starts_of(self, ts: int) -> range:
        """The starts of the windows holding `ts`, in order."""
        step = self._step
        first = ((ts - self._length) // step + 1) * step
        return range(first, ts - ts % step + 1, step)


class TumblingPartition(HoppingPartition):
    """Hopping windows whose advance is their size, [k*size, (k+1)*size): `add` is the
    hot path, written out in one piece (the inherited `_late`/`_apply` say the same)."""

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
        self._reach = size + grace  # close time - start
        super().__init__(
            view, aggregator, size=size, advance=size, grace=grace, emit=emit, retention=retention
        )

    def add(self, key: str, ts: int, value: Any) -> list[WindowResult] | None:
        start = ts - ts % self._length  # % floors: negative times land in the right window
        wm = self._wm
        if wm is not None and start + self._reach <= wm:
            return None
        agg = self._agg
        view = self._view
        wkey = ("w", key, start)
        acc = view.get(wkey, MISSING)
        if acc is MISSING:
            acc = agg.add(agg.init(), value)
            self._index(key, start, start + self._reach)
        else:
            acc = agg.add(self._fresh(acc) if self._copies else acc, value)
        view.put(wkey, acc)
        if self._updates:
            # tuple.__new__ skips the NamedTuple's Python-level __new__: 130 ns a record.
            update = (key, start, start + self._length, self._result(acc), False, False)
            out = [_new_tuple(WindowResult, update)]
        else:
            out = []
        if wm is None or ts > wm:
            self._wm = wm = ts
            view.put(WM_KEY, ts)
        heap = self._open
        closed = self._closed
        if (heap and heap[0][0] <= wm) or (closed and closed[0][0] <= wm - self._keep):
            self._settle(wm, out)
        return out
