"""Brute-force references for the join engines, written from the spec alone.

No indexes, no code shared with `riverbed.processing.joins`: every step scans a plain
list, so each rule can be checked by reading it. Results are plain 5-tuples
`(key, ts, left, right, removed)`, which compare equal to the engine's `JoinResult`.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

Row = tuple[str, int, Any, Any, bool]


@dataclass
class Record:
    """One buffered stream record."""

    side: str  # "left" or "right"
    key: str
    ts: int
    seq: int
    value: Any
    matched: bool = False


class RefStreamJoin:
    """Stream-stream join over a list of buffered records."""

    def __init__(self, within_ms: int, grace_ms: int, how: str) -> None:
        self.within = within_ms
        self.grace = grace_ms
        self.how = how
        self.wm: int | None = None
        self.buffer: list[Record] = []
        self.arrivals = 0
        self.accepted: list[tuple[str, str, int, Any]] = []

    def left(self, key: str, ts: int, value: Any) -> list[Row] | None:
        return self.accept("left", key, ts, value)

    def right(self, key: str, ts: int, value: Any) -> list[Row] | None:
        return self.accept("right", key, ts, value)

    def advance(self, to_ms: int) -> list[Row]:
        self.wm = to_ms if self.wm is None else max(self.wm, to_ms)
        return self.expire()

    def accept(self, side: str, key: str, ts: int, value: Any) -> list[Row] | None:
        if self.wm is not None and ts + self.grace < self.wm:
            return None
        self.accepted.append((side, key, ts, value))
        partners = [
            r
            for r in self.buffer
            if r.side != side and r.key == key and abs(r.ts - ts) <= self.within
        ]
        partners.sort(key=lambda r: (r.ts, r.seq))
        out: list[Row] = []
        for r in partners:
            pair = (value, r.value) if side == "left" else (r.value, value)
            out.append((key, max(ts, r.ts), pair[0], pair[1], False))
            r.matched = True
        self.buffer.append(Record(side, key, ts, self.arrivals, value, bool(partners)))
        self.arrivals += 1
        self.wm = ts if self.wm is None else max(self.wm, ts)
        return out + self.expire()

    def expire(self) -> list[Row]:
        assert self.wm is not None
        wm = self.wm
        gone = [r for r in self.buffer if r.ts + self.within + self.grace < wm]
        gone.sort(key=lambda r: (r.ts, 0 if r.side == "left" else 1, r.seq))
        self.buffer = [r for r in self.buffer if r not in gone]
        out: list[Row] = []
        for r in gone:
            if r.matched:
                continue
            if r.side == "left" and self.how in ("left", "outer"):
                out.append((r.key, r.ts, r.value, None, False))
            if r.side == "right" and self.how == "outer":
                out.append((r.key, r.ts, None, r.value, False))
        return out


def all_results(accepted: list[tuple[str, str, int, Any]], within: int, how: str) -> Counter[Row]:
    """Everything a join over `accepted` records emits once every record has expired.

    Declarative, with no watermark: every in-window pair of the same key, plus each
    record with no pair at all on the sides the join type keeps. It holds because a
    non-late record can never miss a partner that already expired.
    """
    lefts = [(k, t, v) for side, k, t, v in accepted if side == "left"]
    rights = [(k, t, v) for side, k, t, v in accepted if side == "right"]
    rows: Counter[Row] = Counter()
    for lk, lt, lv in lefts:
        for rk, rt, rv in rights:
            if lk == rk and abs(lt - rt) <= within:
                rows[(lk, max(lt, rt), lv, rv, False)] += 1
    for lk, lt, lv in lefts:
        lonely = not any(rk == lk and abs(lt - rt) <= within for rk, rt, _ in rights)
        if lonely and how in ("left", "outer"):
            rows[(lk, lt, lv, None, False)] += 1
    for rk, rt, rv in rights:
        lonely = not any(lk == rk and abs(lt - rt) <= within for lk, lt, _ in lefts)
        if lonely and how == "outer":
            rows[(rk, rt, None, rv, False)] += 1
    return rows


class RefTableJoin:
    """Table-table join over two dicts."""

    def __init__(self, how: str) -> None:
        self.how = how
        self.sides: dict[str, dict[str, Any]] = {"left": {}, "right": {}}

    def left(self, key: str, value: Any) -> Row | None:
        return self.update("left", key, value)

    def right(self, key: str, value: Any) -> Row | None:
        return self.update("right", key, value)

    def row(self, key: str) -> Row | None:
        lv = self.sides["left"].get(key)
        rv = self.sides["right"].get(key)
        exists = {
            "inner": lv is not None and rv is not None,
            "left": lv is not None,
            "outer": lv is not None or rv is not None,
        }[self.how]
        return (key, 0, lv, rv, False) if exists else None

    def rows(self) -> list[Row]:
        keys = sorted(set(self.sides["left"]) | set(self.sides["right"]))
        return [r for r in (self.row(k) for k in keys) if r is not None]

    def update(self, side: str, key: str, value: Any) -> Row | None:
        before = self.row(key)
        if value is None:
            self.sides[side].pop(key, None)
        else:
            self.sides[side][key] = value
        after = self.row(key)
        if after == before:
            return None
        if after is None:
            return (key, 0, None, None, True)
        return after
