"""A brute-force model of windowed aggregation, for the property tests.

It follows the rules of `riverbed.processing.windows` literally and shares no code
with it: every record ever accepted is kept, every window is a dict entry, and each
step scans them all. Slow and obviously right is the point. Results are plain tuples
(key, start, end, value, final, removed), which compare equal to `WindowResult`s.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

Result = tuple[str, int, int, Any, bool, bool]


def ms(seconds: float) -> int:
    return round(seconds * 1000)


@dataclass
class Window:
    end: int
    acc: Any
    closed: bool = False


class ReferenceWindows:
    """One partition of a windowed aggregation, by brute force.

    `kind` is "tumbling", "hopping", "sliding" or "session"; lengths are seconds as in
    the public window specs.
    """

    def __init__(
        self,
        kind: str,
        aggregator: Any,
        *,
        size: float = 0.0,
        advance: float = 0.0,
        gap: float = 0.0,
        grace: float = 0.0,
        emit: str = "close",
        retention: float | None = None,
    ) -> None:
        self.kind = kind
        self.agg = aggregator
        self.size = ms(size)
        self.advance_by = ms(advance)
        self.gap = ms(gap)
        self.grace = ms(grace)
        self.emit = emit
        self.retention = None if retention is None else ms(retention)
        self.wm: int | None = None
        self.records: list[tuple[str, int, Any]] = []  # every accepted record, in arrival order
        self.windows: dict[tuple[str, int], Window] = {}

    # -- the rules ------------------------------------------------------------------------
    def close_time(self, end: int) -> int:
        if self.kind == "session":
            return end + self.gap + self.grace
        return end + self.grace

    def is_closed(self, end: int) -> bool:
        return self.wm is not None and self.close_time(end) <= self.wm

    def fixed_starts(self, ts: int) -> list[int]:
        """Tumbling and hopping: every aligned start whose window holds ts."""
        step = self.size if self.kind == "tumbling" else self.advance_by
        return [s for s in range(ts - self.size + 1, ts + 1) if s % step == 0]

    def is_late(self, ts: int) -> bool:
        if self.wm is None:
            return False
        if self.kind in ("tumbling", "hopping"):
            return all(self.is_closed(s + self.size) for s in self.fixed_starts(ts))
        return ts + 1 + self.grace <= self.wm

    # -- the operations -------------------------------------------------------------------
    def add(self, key: str, ts: int, value: Any) -> list[Result] | None:
        if self.is_late(ts):
            return None
        self.records.append((key, ts, value))
        if self.kind in ("tumbling", "hopping"):
            updates = self.add_fixed(key, ts, value)
        elif self.kind == "sliding":
            updates = self.add_sliding(key, ts)
        else:
            updates = self.add_session(key, ts, value)
        out = updates if self.emit in ("update", "both") else []
        self.wm = ts if self.wm is None else max(self.wm, ts)
        return out + self.close_and_drop()

    def advance(self, to: int) -> list[Result]:
        self.wm = to if self.wm is None else max(self.wm, to)
        return self.close_and_drop()

    def add_fixed(self, key: str, ts: int, value: Any) -> list[Result]:
        out: list[Result] = []
        for start in self.fixed_starts(ts):
            end = start + self.size
            if self.is_closed(end):
                continue
            window = self.windows.get((key, start))
            acc = self.agg.init() if window is None else copy.deepcopy(window.acc)
            acc = self.agg.add(acc, value)
            self.windows[(key, start)] = Window(end, acc)
            out.append((key, start, end, self.agg.result(acc), False, False))
        return out

    def add_sliding(self, key: str, ts: int) -> list[Result]:
        starts = {ts - self.size}
        for (k, start), window in self.windows.items():
            if k == key and not window.closed and start <= ts < window.end:
                starts.add(start)
        out: list[Result] = []
        for start in sorted(starts):
            end = start + self.size + 1
            acc = self.sliding_fold(key, start, end)
            self.windows[(key, start)] = Window(end, acc)
            out.append((key, start, end, self.agg.result(acc), False, False))
        return out

    def sliding_fold(self, key: str, start: int, end: int) -> Any:
        """Merge the single-record accumulators in (ts, arrival) order."""
        inside = [
            (ts, arrival, value)
            for arrival, (k, ts, value) in enumerate(self.records)
            if k == key and start <= ts < end
        ]
        inside.sort(key=lambda r: (r[0], r[1]))
        singles = [self.agg.add(self.agg.init(), value) for _, _, value in inside]
        acc = singles[0]
        for single in singles[1:]:
            acc = self.agg.merge(acc, single)
        return acc

    def add_session(self, key: str, ts: int, value: Any) -> list[Result]:
        joined = sorted(
            (start, window)
            for (k, start), window in self.windows.items()
            if k == key
            and not window.closed
            and start - self.gap <= ts <= window.end - 1 + self.gap
        )
        if joined:
            acc = copy.deepcopy(joined[0][1].acc)
            for _, window in joined[1:]:
                acc = self.agg.merge(acc, copy.deepcopy(window.acc))
            acc = self.agg.add(acc, value)
        else:
            acc = self.agg.add(self.agg.init(), value)
        start = min([ts] + [s for s, _ in joined])
        end = max([ts + 1] + [w.end for _, w in joined])
        out: list[Result] = []
        for s, window in joined:
            if s != start:
                del self.windows[(key, s)]
                out.append((key, s, window.end, None, False, True))
        self.windows[(key, start)] = Window(end, acc)
        out.append((key, start, end, self.agg.result(acc), False, False))
        return out

    def close_and_drop(self) -> list[Result]:
        newly = []
        for (key, start), window in self.windows.items():
            if not window.closed and self.is_closed(window.end):
                window.closed = True
                newly.append((self.close_time(window.end), key, start, window))
        newly.sort(key=lambda c: (c[0], c[1], c[2]))
        out: list[Result] = []
        if self.emit in ("close", "both"):
            for _, key, start, window in newly:
                out.append((key, start, window.end, self.agg.result(window.acc), True, False))
        if self.retention is not None and self.wm is not None:
            for ident, window in list(self.windows.items()):
                if window.closed and self.close_time(window.end) + self.retention <= self.wm:
                    del self.windows[ident]
        return out

    def all_windows(self) -> list[Result]:
        return [
            (key, start, w.end, self.agg.result(w.acc), w.closed, False)
            for (key, start), w in sorted(self.windows.items(), key=lambda kv: kv[0])
        ]
