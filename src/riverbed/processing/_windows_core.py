"""What every window type shares: the watermark, closing by close time, retention.

State layout in the view (the view belongs to one windowed aggregation):
- `("wm",)` -> the watermark (int ms), absent until the first record or `advance`;
- `("w", key, start)` -> one window: its accumulator (tumbling, hopping, sliding, whose
  end follows from the start) or `[end, accumulator]` (sessions, whose end moves);
- `("r", key, ts, seq)` -> one buffered record's accumulator (sliding windows only).

A window is closed when its close time (end + `after`) is <= the watermark. Nothing
about closing is stored: it follows from the stored windows and the watermark, so a
reopened partition knows which windows are closed without being told.

In memory, rebuilt by `open`: a heap of (close time, key, start) holding every open
window (sessions leave stale entries behind when they grow or merge; they are skipped
when popped), a deque of closed windows in close order for retention, and each key's
sorted window starts.
"""

from __future__ import annotations

import heapq
from abc import ABC, abstractmethod
from bisect import bisect_left, insort
from collections import deque
from typing import Any, Literal, NamedTuple

from riverbed.processing.aggregates import Aggregator, Count, Max, Mean, Min, Sum
from riverbed.processing.view import StateView

__all__ = ["Emit", "WindowResult", "WindowedPartition"]

Emit = Literal["close", "update", "both"]

WM_KEY = ("wm",)
MISSING: Any = object()
# These aggregators always return new accumulators; any other may mutate the one it is
# given, which must then be a copy: the view's stored values are never mutated in place.
_PURE = (Count, Sum, Min, Max, Mean)


class WindowResult(NamedTuple):
    """One window's state as emitted, or as listed by `all_windows`."""

    key: str
    start: int
    """ms, inclusive"""
    end: int
    """ms, exclusive"""
    value: Any
    """`aggregator.result(acc)`; None when removed"""
    final: bool
    """True: the window closed (its last emission)"""
    removed: bool = False
    """a session merged into another: this window no longer exists"""


def json_copy(data: Any) -> Any:
    """A deep copy of JSON data (lists and dicts copied, scalars shared)."""
    if type(data) is list:
        return [json_copy(item) for item in data]
    if type(data) is dict:
        return {k: json_copy(v) for k, v in data.items()}
    return data


class WindowedPartition(ABC):
    """The windows of one partition: `add` records, `advance` time, query windows.

    Made by `WindowedAggregation.open(view)`; every durable fact lives in the view.
    """

    _length = 0
    """end - start, for the window types whose windows all have one length"""

    def __init__(
        self,
        view: StateView,
        aggregator: Aggregator,
        *,
        emit: Emit,
        after: int,
        retention: int | None,
    ) -> None:
        self._view = view
        self._agg = aggregator
        self._updates = emit != "close"
        self._finals = emit != "update"
        self._after = after
        self._retention = retention
        self._keep = 0 if retention is None else retention
        self._copies = type(aggregator) not in _PURE
        self._wm: int | None = None
        self._open: list[tuple[int, str, int]] = []
        self._closed: deque[tuple[int, str, int]] = deque()
        self._starts: dict[str, list[int]] = {}
        self._restore()

    @property
    def watermark(self) -> int | None:
        """The max of every accepted record's ts and every `advance`; None before both."""
        return self._wm

    def add(self, key: str, ts: int, value: Any) -> list[WindowResult] | None:
        """Apply one record: the updates it made, then the windows it closed; None (and
        no change at all) if the record is late."""
        wm = self._wm
        if wm is not None and self._late(ts, wm):
            return None
        out = self._apply(key, ts, value, wm)
        if wm is None or ts > wm:
            wm = ts
            self._set_wm(ts)
        self._settle(wm, out)
        return out

    def advance(self, to_ms: int) -> list[WindowResult]:
        """Move the watermark to `to_ms` (never back): the windows that closed."""
        out: list[WindowResult] = []
        wm = self._wm
        if wm is None or to_ms > wm:
            wm = to_ms
            self._set_wm(to_ms)
        self._settle(wm, out)
        return out

    def windows_of(self, key: str) -> list[tuple[int, int, Any]]:
        """(start, end, result) of every stored window of `key`, by start."""
        view = self._view
        out = []
        for start in self._starts.get(key, ()):
            stored = view.get(("w", key, start))
            out.append((start, self._end(start, stored), self._result(self._acc(stored))))
        return out

    def results_of(self, key: str) -> list[WindowResult]:
        """Every stored window of `key`, by start; `final` says it is closed."""
        wm = self._wm
        return [
            WindowResult(key, start, end, value, wm is not None and end + self._after <= wm)
            for start, end, value in self.windows_of(key)
        ]

    def all_windows(self) -> list[WindowResult]:
        """Every stored window, sorted by (key, start); `final` says it is closed."""
        return [w for key in sorted(self._starts) for w in self.results_of(key)]

    # -- what each window type defines ----------------------------------------------------
    @abstractmethod
    def _late(self, ts: int, wm: int) -> bool:
        """Whether a record at `ts` comes too late to change any window."""

    @abstractmethod
    def _apply(self, key: str, ts: int, value: Any, wm: int | None) -> list[WindowResult]:
        """Fold a non-late record into its windows; the updates to emit, by start."""

    def _end(self, start: int, stored: Any) -> int:
        """A stored window's end."""
        return start + self._length

    def _acc(self, stored: Any) -> Any:
        """A stored window's accumulator."""
        return stored

    def _restore_entry(self, key: tuple[Any, ...], value: Any) -> None:  # noqa: B027 - a hook
        """Rebuild the index of a view entry that is not a window or the watermark."""

    def _prune(self, wm: int) -> None:  # noqa: B027 - a hook: only sliding windows buffer
        """Forget buffered data that no open or future window can need."""

    # -- shared machinery -----------------------------------------------------------------
    def _set_wm(self, wm: int) -> None:
        self._wm = wm
        self._view.put(WM_KEY, wm)

    def _fresh(self, acc: Any) -> Any:
        """A stored accumulator made safe to hand to the aggregator."""
        return json_copy(acc) if self._copies else acc

    def _result(self, acc: Any) -> Any:
        value = self._agg.result(acc)
        # Aggregate's result is the accumulator itself: a consumer mutating the emitted
        # value must not reach into the view.
        return json_copy(value) if self._copies else value

    def _index(self, key: str, start: int, close: int) -> None:
        """Record a new window in the per-key starts and the open heap."""
        starts = self._starts.get(key)
        if starts is None:
            self._starts[key] = [start]
        else:
            insort(starts, start)
        heapq.heappush(self._open, (close, key, start))

    def _unindex(self, key: str, start: int) -> None:
        starts = self._starts[key]
        del starts[bisect_left(starts, start)]
        if not starts:
            del self._starts[key]

    def _settle(self, wm: int, out: list[WindowResult]) -> None:
        """Close the windows due at `wm`, then drop those past retention."""
        heap = self._open
        if heap and heap[0][0] <= wm:
            self._close_due(wm, out)
        closed = self._closed
        if closed and closed[0][0] <= wm - self._keep:
            self._drop_expired(wm - self._keep)
        self._prune(wm)

    def _close_due(self, wm: int, out: list[WindowResult]) -> None:
        heap = self._open
        view = self._view
        while heap and heap[0][0] <= wm:
            close, key, start = heapq.heappop(heap)
            stored = view.get(("w", key, start), MISSING)
            if stored is MISSING:
                continue  # a session merged away
            end = self._end(start, stored)
            if end + self._after != close:
                continue  # a session that grew: its newer entry is still in the heap
            if self._retention is not None:
                self._closed.append((close, key, start))
            if self._finals:
                out.append(WindowResult(key, start, end, self._result(self._acc(stored)), True))

    def _drop_expired(self, limit: int) -> None:
        closed = self._closed
        while closed and closed[0][0] <= limit:
            _, key, start = closed.popleft()
            self._view.delete(("w", key, start))
            self._unindex(key, start)

    def _restore(self) -> None:
        wm = self._wm = self._view.get(WM_KEY)
        closed = []
        for k, value in self._view.items():
            if not isinstance(k, tuple) or k == WM_KEY:
                continue
            if k[0] != "w":
                self._restore_entry(k, value)
                continue
            key, start = k[1], k[2]
            self._starts.setdefault(key, []).append(start)
            close = self._end(start, value) + self._after
            if wm is None or close > wm:
                self._open.append((close, key, start))
            elif self._retention is not None:
                closed.append((close, key, start))
        for starts in self._starts.values():
            starts.sort()
        heapq.heapify(self._open)
        self._closed.extend(sorted(closed))
