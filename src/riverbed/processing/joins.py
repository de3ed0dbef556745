"""Join engines: stream-stream within a time window, table-table, and stream-table.

Like the window engine, these are pure logic over a `StateView`: every durable fact
lives in the view, and the in-memory indexes are rebuilt from `view.items()` by `open`.

Stream-stream: a record joins the other side's buffered records of the same key whose
timestamps are at most `within` apart. The watermark is the highest timestamp seen (or
passed to `advance`); a record more than `grace` behind it is late and dropped. A
buffered record expires once no non-late record could still match it
(`ts + within + grace < watermark`); for left and outer joins an expired record that
never matched is emitted with `None` for the missing side.

Table-table: both sides are tables (latest value per key; `None` deletes) and each
update returns how the joined row changed. Stream-table: `lookup_join` decides for one
record; the runtime owns the table.

View layout (keys are tuples, values JSON data):
    ("wm",)                          the stream join's watermark (int ms)
    ("buf", side, key, ts, seq)      a buffered stream record: [value, matched];
                                     side is "l" or "r", seq the arrival number
    ("l", key) / ("r", key)          a table side's latest value
"""

from __future__ import annotations

import heapq
import math
from bisect import bisect_left, insort
from collections.abc import Hashable
from typing import Any, Literal, NamedTuple, TypeGuard

from riverbed.errors import ConfigError
from riverbed.processing.view import StateView

__all__ = [
    "How",
    "JoinResult",
    "StreamJoin",
    "StreamJoinPartition",
    "TableJoin",
    "TableJoinPartition",
    "lookup_join",
]

How = Literal["inner", "left", "outer"]

_HOWS = ("inner", "left", "outer")
_LEFT, _RIGHT = 0, 1
_SIDE_NAMES = ("l", "r")
_WM: tuple[str] = ("wm",)
# Which sides emit their unmatched records on expiry, indexed by _LEFT/_RIGHT.
_EMITS_UNMATCHED = {"inner": (False, False), "left": (True, False), "outer": (True, True)}


class JoinResult(NamedTuple):
    """One joined row: `left`/`right` is None where that side is missing."""

    key: str
    ts: int
    left: Any
    right: Any
    removed: bool = False


def _check_how(how: str, owner: str) -> None:
    if how not in _HOWS:
        raise ConfigError(f"{owner}: how={how!r} is unknown; use 'inner', 'left' or 'outer'")


def _seconds_to_ms(seconds: float, name: str, owner: str) -> int:
    if not (math.isfinite(seconds) and seconds >= 0):
        raise ConfigError(f"{owner}: {name}={seconds!r} must be a finite number >= 0 (seconds)")
    return round(seconds * 1000)


def lookup_join(value: Any, table_value: Any | None, how: How) -> tuple[Any, Any] | None:
    """Stream-table join of one record.

    Returns `(value, table_value)` for the user's function, or None when an inner join
    finds no table value. A stream-table join is inner or left: 'outer' is refused,
    because a table row without stream records has no event to emit.
    """
    _check_how(how, "lookup_join")
    if how == "outer":
        raise ConfigError("a stream-table join is how='inner' or how='left', not 'outer'")
    if table_value is None and how == "inner":
        return None
    return value, table_value


class StreamJoin:
    """Stream-stream join: records of the two sides with the same key and timestamps at
    most `within` seconds apart form a pair; `grace` seconds of lateness are tolerated."""

    def __init__(self, within: float, *, how: How = "inner", grace: float = 0.0) -> None:
        _check_how(how, "StreamJoin")
        self.within_ms = _seconds_to_ms(within, "within", "StreamJoin")
        self.grace_ms = _seconds_to_ms(grace, "grace", "StreamJoin")
        self.how: How = how

    def open(self, view: StateView) -> StreamJoinPartition:
        """The join over one partition's state (indexes rebuilt from `view`)."""
        return StreamJoinPartition(view, self.within_ms, self.grace_ms, self.how)

    def __repr__(self) -> str:
        return (
            f"StreamJoin(within={self.within_ms / 1000}, how={self.how!r}, "
            f"grace={self.grace_ms / 1000})"
        )


def _buf_key(side: int, key: str, ts: int, seq: int) -> tuple[str, str, str, int, int]:
    return ("buf", _SIDE_NAMES[side], key, ts, seq)


class StreamJoinPartition:
    """One partition of a stream-stream join; see the module docstring for the rules."""

    def __init__(self, view: StateView, within_ms: int, grace_ms: int, how: How) -> None:
        self._view = view
        self._within = within_ms
        self._grace = grace_ms
        self._emits = _EMITS_UNMATCHED[how]
        # Per key, each side's buffered (ts, seq), sorted: a record finds its partners
        # by bisection instead of scanning the buffer.
        self._index: dict[str, tuple[list[tuple[int, int]], list[tuple[int, int]]]] = {}
        # Every buffered record as (ts, side, seq, key): a heap in expiry-emission order.
        self._expiry: list[tuple[int, int, int, str]] = []
        self._next_seq = 0
        self._rebuild()

    def _rebuild(self) -> None:
        for vkey, _ in self._view.items():
            if isinstance(vkey, tuple) and len(vkey) == 5 and vkey[0] == "buf":
                _, side_name, key, ts, seq = vkey
                side = _SIDE_NAMES.index(side_name)
                self._sides(key)[side].append((ts, seq))
                self._expiry.append((ts, side, seq, key))
                # Only the order among buffered records matters, so numbering on from
                # the highest one left keeps arrival order without storing a counter.
                self._next_seq = max(self._next_seq, seq + 1)
        for sides in self._index.values():
            sides[_LEFT].sort()
            sides[_RIGHT].sort()
        heapq.heapify(self._expiry)

    def _sides(self, key: str) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
        sides = self._index.get(key)
        if sides is None:
            sides = self._index[key] = ([], [])
        return sides

    @property
    def watermark(self) -> int | None:
        """The highest accepted timestamp or `advance` target; None before either."""
        wm: int | None = self._view.get(_WM)
        return wm

    def left(self, key: str, ts: int, value: Any) -> list[JoinResult] | None:
        """Accept a left record: its pairs, then any expiries; None (and no change) if late."""
        return self._accept(_LEFT, key, ts, value)

    def right(self, key: str, ts: int, value: Any) -> list[JoinResult] | None:
        """Accept a right record: its pairs, then any expiries; None (and no change) if late."""
        return self._accept(_RIGHT, key, ts, value)

    def advance(self, to_ms: int) -> list[JoinResult]:
        """Move the watermark to at least `to_ms` and expire what can no longer match."""
        return self._expire(self._raise_watermark(self.watermark, to_ms))

    def _accept(self, side: int, key: str, ts: int, value: Any) -> list[JoinResult] | None:
        wm = self.watermark
        if wm is not None and ts + self._grace < wm:
            return None
        out = self._match(side, key, ts, value)
        self._buffer(side, key, ts, [value, bool(out)])
        out.extend(self._expire(self._raise_watermark(wm, ts)))
        return out

    def _match(self, side: int, key: str, ts: int, value: Any) -> list[JoinResult]:
        sides = self._index.get(key)
        if sides is None:
            return []
        other_side = 1 - side
        others = sides[other_side]
        # seq >= 0, so (t, -1) sorts before every entry at t.
        lo = bisect_left(others, (ts - self._within, -1))
        hi = bisect_left(others, (ts + self._within + 1, -1))
        out: list[JoinResult] = []
        for other_ts, seq in others[lo:hi]:
            vkey = _buf_key(other_side, key, other_ts, seq)
            other_value, matched = self._view.get(vkey)
            if side == _LEFT:
                out.append(JoinResult(key, max(ts, other_ts), value, other_value))
            else:
                out.append(JoinResult(key, max(ts, other_ts), other_value, value))
            if not matched:
                self._view.put(vkey, [other_value, True])
        return out

    def _buffer(self, side: int, key: str, ts: int, stored: list[Any]) -> None:
        seq = self._next_seq
        self._next_seq += 1
        self._view.put(_buf_key(side, key, ts, seq), stored)
        insort(self._sides(key)[side], (ts, seq))
        heapq.heappush(self._expiry, (ts, side, seq, key))

    def _raise_watermark(self, wm: int | None, ts: int) -> int:
        if wm is not None and wm >= ts:
            return wm
        self._view.put(_WM, ts)
        return ts

    def _expire(self, wm: int) -> list[JoinResult]:
        horizon = wm - self._within - self._grace
        out: list[JoinResult] = []
        expiry = self._expiry
        while expiry and expiry[0][0] < horizon:
            ts, side, seq, key = heapq.heappop(expiry)
            self._unindex(side, key)
            vkey = _buf_key(side, key, ts, seq)
            value, matched = self._view.get(vkey)
            self._view.delete(vkey)
            if not matched and self._emits[side]:
                pair = (value, None) if side == _LEFT else (None, value)
                out.append(JoinResult(key, ts, *pair))
        return out

    def _unindex(self, side: int, key: str) -> None:
        sides = self._index[key]
        # The heap pops in (ts, seq) order within a key and side, so the popped record
        # is always the first of its sorted list.
        del sides[side][0]
        if not sides[_LEFT] and not sides[_RIGHT]:
            del self._index[key]


class TableJoin:
    """Table-table join: each side is a table (latest value per key)."""

    def __init__(self, *, how: How = "inner") -> None:
        _check_how(how, "TableJoin")
        self.how: How = how

    def open(self, view: StateView) -> TableJoinPartition:
        """The join over one partition's state."""
        return TableJoinPartition(view, self.how)

    def __repr__(self) -> str:
        return f"TableJoin(how={self.how!r})"


class TableJoinPartition:
    """One partition of a table-table join.

    Inner: a row exists iff both sides do; left: iff the left does; outer: iff either
    does. Each update returns the row as it now is (ts 0), a `removed=True` result when
    the row went away, or None when the joined row did not change.
    """

    def __init__(self, view: StateView, how: How) -> None:
        self._view = view
        self._how = how

    def left(self, key: str, value: Any | None) -> JoinResult | None:
        """Set the left side of `key` (None deletes it); the row's change, if any."""
        return self._update(_LEFT, key, value)

    def right(self, key: str, value: Any | None) -> JoinResult | None:
        """Set the right side of `key` (None deletes it); the row's change, if any."""
        return self._update(_RIGHT, key, value)

    def get(self, key: str) -> JoinResult | None:
        """The current joined row of `key`, or None."""
        left = self._view.get((_SIDE_NAMES[_LEFT], key))
        right = self._view.get((_SIDE_NAMES[_RIGHT], key))
        if self._how == "inner":
            exists = left is not None and right is not None
        elif self._how == "left":
            exists = left is not None
        else:
            exists = left is not None or right is not None
        return JoinResult(key, 0, left, right) if exists else None

    def rows(self) -> list[JoinResult]:
        """Every current joined row, sorted by key."""
        keys = sorted({vkey[1] for vkey, _ in self._view.items() if _is_table_key(vkey)})
        found = (self.get(key) for key in keys)
        return [row for row in found if row is not None]

    def _update(self, side: int, key: str, value: Any | None) -> JoinResult | None:
        vkey = (_SIDE_NAMES[side], key)
        if self._view.get(vkey) == value:
            return None
        before = self.get(key)
        if value is None:
            self._view.delete(vkey)
        else:
            self._view.put(vkey, value)
        after = self.get(key)
        if after is None and before is not None:
            return JoinResult(key, 0, None, None, removed=True)
        return after


def _is_table_key(vkey: Hashable) -> TypeGuard[tuple[str, str]]:
    return isinstance(vkey, tuple) and len(vkey) == 2 and vkey[0] in _SIDE_NAMES
