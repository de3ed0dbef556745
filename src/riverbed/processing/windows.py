"""Windowed aggregation: the pure logic, over one partition's `StateView`.

Four window shapes, sized in float seconds (held as integer ms, `round(s * 1000)`):

- `Tumbling(size)`: [k*size, (k+1)*size), aligned to the epoch; one window per record.
- `Hopping(size, advance)`: [k*advance, k*advance + size); a record is in several.
- `Sliding(size)`: one window per record at t, [t - size, t + 1).
- `Session(gap)`: runs of a key's records no more than `gap` apart.

Time is event time. Each partition has a watermark: the max of every accepted
record's ts and every `advance(to)` (wall-clock ticks from the runtime). A window is
closed once its close time (end + grace; sessions: end + gap + grace) is <= the
watermark: it is never updated again, its final result is emitted, and it stays
queryable until `retention` more ms have passed (None: forever). A record is late,
and changes nothing, when every window it could update is closed already.

A record's effect, in the order it is returned: the updates of the windows it created
or changed (by window start; for sessions the merged-away ones first, `removed=True`),
then the windows that the raised watermark closed, by (close time, key, start).
`emit` picks which of the two are returned: "update", "close" or "both".

    engine = WindowedAggregation(Tumbling(60), Count(), emit="both")
    part = engine.open(view)           # one per partition; indexes rebuilt from the view
    part.add("alice", ts, value)       # list of WindowResult, or None if late
    part.advance(now_ms)               # windows closed by time passing
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TypeAlias

from riverbed.errors import ConfigError
from riverbed.processing._windows_core import Emit, WindowedPartition, WindowResult
from riverbed.processing._windows_fixed import HoppingPartition, TumblingPartition
from riverbed.processing._windows_session import SessionPartition
from riverbed.processing._windows_sliding import SlidingPartition
from riverbed.processing.aggregates import Aggregator
from riverbed.processing.view import StateView

__all__ = [
    "Emit",
    "Hopping",
    "Session",
    "Sliding",
    "Tumbling",
    "WindowResult",
    "WindowSpec",
    "WindowedAggregation",
    "WindowedPartition",
]

_EMITS = ("close", "update", "both")


def _ms(seconds: float) -> int:
    return round(seconds * 1000)


def _check_length(owner: str, name: str, seconds: float) -> None:
    """A size, gap or advance: finite and at least 1 ms."""
    if not (isinstance(seconds, int | float) and math.isfinite(seconds) and _ms(seconds) >= 1):
        raise ConfigError(
            f"{owner}({name}={seconds!r}): {name} must be a number of seconds > 0 "
            "(at least 0.001, windows count whole milliseconds)"
        )


def _check_grace(owner: str, seconds: float, name: str = "grace") -> None:
    if not (isinstance(seconds, int | float) and math.isfinite(seconds) and seconds >= 0):
        raise ConfigError(f"{owner}({name}={seconds!r}): {name} must be a number of seconds >= 0")


@dataclass(frozen=True)
class Tumbling:
    """Back-to-back windows of `size` seconds; records up to `grace` seconds late count."""

    size: float
    grace: float = 0.0

    def __post_init__(self) -> None:
        _check_length("Tumbling", "size", self.size)
        _check_grace("Tumbling", self.grace)


@dataclass(frozen=True)
class Hopping:
    """Windows of `size` seconds starting every `advance` seconds (advance <= size)."""

    size: float
    advance: float
    grace: float = 0.0

    def __post_init__(self) -> None:
        _check_length("Hopping", "size", self.size)
        _check_length("Hopping", "advance", self.advance)
        _check_grace("Hopping", self.grace)
        if self.advance > self.size:
            raise ConfigError(
                f"Hopping(size={self.size!r}, advance={self.advance!r}): advance must be "
                "<= size (a larger advance leaves gaps no window covers)"
            )


@dataclass(frozen=True)
class Sliding:
    """For each record, the window of its key's records in the `size` seconds up to it."""

    size: float
    grace: float = 0.0

    def __post_init__(self) -> None:
        _check_length("Sliding", "size", self.size)
        _check_grace("Sliding", self.grace)


@dataclass(frozen=True)
class Session:
    """Activity sessions: a key's records no more than `gap` seconds apart."""

    gap: float
    grace: float = 0.0

    def __post_init__(self) -> None:
        _check_length("Session", "gap", self.gap)
        _check_grace("Session", self.grace)


WindowSpec: TypeAlias = Tumbling | Hopping | Sliding | Session


class WindowedAggregation:
    """An aggregator applied per key and window; `open` one partition's state with it."""

    def __init__(
        self,
        spec: WindowSpec,
        aggregator: Aggregator,
        *,
        emit: Emit = "close",
        retention: float | None = None,
    ) -> None:
        if not isinstance(spec, Tumbling | Hopping | Sliding | Session):
            raise ConfigError(
                f"window spec {spec!r}: pass Tumbling(...), Hopping(...), Sliding(...) "
                "or Session(...)"
            )
        if emit not in _EMITS:
            raise ConfigError(f"emit={emit!r}: emit must be 'close', 'update' or 'both'")
        if retention is not None:
            _check_grace("WindowedAggregation", retention, "retention")
        if isinstance(spec, Session | Sliding) and not getattr(aggregator, "mergeable", True):
            kind = type(spec).__name__
            raise ConfigError(
                f"{kind} windows merge accumulators: pass merge=(a, b) -> combined "
                f"to aggregate() to use it with {kind}(...)"
            )
        self.spec = spec
        self.aggregator = aggregator
        self.emit: Emit = emit
        self.retention = retention

    def open(self, view: StateView) -> WindowedPartition:
        """The windows of one partition, continuing from whatever `view` holds."""
        spec, agg, emit = self.spec, self.aggregator, self.emit
        retention = None if self.retention is None else _ms(self.retention)
        grace = _ms(spec.grace)
        if isinstance(spec, Tumbling):
            return TumblingPartition(
                view, agg, size=_ms(spec.size), grace=grace, emit=emit, retention=retention
            )
        if isinstance(spec, Hopping):
            return HoppingPartition(
                view,
                agg,
                size=_ms(spec.size),
                advance=_ms(spec.advance),
                grace=grace,
                emit=emit,
                retention=retention,
            )
        if isinstance(spec, Sliding):
            return SlidingPartition(
                view, agg, size=_ms(spec.size), grace=grace, emit=emit, retention=retention
            )
        return SessionPartition(
            view, agg, gap=_ms(spec.gap), grace=grace, emit=emit, retention=retention
        )

    def __repr__(self) -> str:
        return (
            f"WindowedAggregation({self.spec!r}, {self.aggregator.name}, emit={self.emit!r}, "
            f"retention={self.retention!r})"
        )
