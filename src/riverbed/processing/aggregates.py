"""Aggregators: how a group's running value starts, grows and (for sessions) merges.

An accumulator is plain data (numbers, lists, dicts, strings, None) because it is
written to the changelog as JSON and restored from it; `result` turns it into what the
table shows and what is emitted downstream (`mean` keeps `[sum, count]` and shows the
quotient). Values are the flow's values at the aggregation step; `field` functions pick
the number to sum or compare.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from typing import Any, Protocol

from riverbed.errors import ConfigError

__all__ = [
    "Aggregate",
    "Aggregator",
    "Count",
    "Max",
    "Mean",
    "Min",
    "Reduce",
    "Sum",
]

Field = Callable[[Any], Any]


def _identity(value: Any) -> Any:
    return value


class Aggregator(Protocol):
    """The three (or four) functions of an aggregation."""

    name: str

    def init(self) -> Any:
        """The accumulator of an empty group."""

    def add(self, acc: Any, value: Any) -> Any:
        """The accumulator with `value` added (a new object or the same, mutated)."""

    def merge(self, a: Any, b: Any) -> Any:
        """Two accumulators as one (session windows merge); `ConfigError` if impossible."""

    def result(self, acc: Any) -> Any:
        """What the table shows for the accumulator."""


class Count:
    name = "count"

    def init(self) -> int:
        return 0

    def add(self, acc: int, value: Any) -> int:
        return acc + 1

    def merge(self, a: int, b: int) -> int:
        return a + b

    def result(self, acc: int) -> int:
        return acc


class Sum:
    name = "sum"

    def __init__(self, field: Field | None = None) -> None:
        self.field = field or _identity

    def init(self) -> Any:
        return 0

    def add(self, acc: Any, value: Any) -> Any:
        return acc + self.field(value)

    def merge(self, a: Any, b: Any) -> Any:
        return a + b

    def result(self, acc: Any) -> Any:
        return acc


class _Extreme:
    """Min or max: None until the first value; `beats(b, a)` says b replaces a."""

    name = ""
    beats: Callable[[Any, Any], bool]

    def __init__(self, field: Field | None = None) -> None:
        self.field = field or _identity

    def init(self) -> Any:
        return None

    def pick(self, a: Any, b: Any) -> Any:
        return b if self.beats(b, a) else a

    def add(self, acc: Any, value: Any) -> Any:
        v = self.field(value)
        return v if acc is None else self.pick(acc, v)

    def merge(self, a: Any, b: Any) -> Any:
        if a is None:
            return b
        return a if b is None else self.pick(a, b)

    def result(self, acc: Any) -> Any:
        return acc


class Min(_Extreme):
    name = "min"
    beats = staticmethod(operator.lt)


class Max(_Extreme):
    name = "max"
    beats = staticmethod(operator.gt)


class Mean:
    """The arithmetic mean, kept as `[sum, count]`; None for an empty group."""

    name = "mean"

    def __init__(self, field: Field | None = None) -> None:
        self.field = field or _identity

    def init(self) -> list[Any]:
        return [0, 0]

    def add(self, acc: list[Any], value: Any) -> list[Any]:
        return [acc[0] + self.field(value), acc[1] + 1]

    def merge(self, a: list[Any], b: list[Any]) -> list[Any]:
        return [a[0] + b[0], a[1] + b[1]]

    def result(self, acc: list[Any]) -> Any:
        return acc[0] / acc[1] if acc[1] else None


class Reduce:
    """`fn(acc, value)` with the first value as the start; `fn` must be associative
    for session windows, which merge two reduced values with it."""

    name = "reduce"

    def __init__(self, fn: Callable[[Any, Any], Any]) -> None:
        self.fn = fn

    def init(self) -> Any:
        return None

    def add(self, acc: Any, value: Any) -> Any:
        return value if acc is None else self.fn(acc, value)

    def merge(self, a: Any, b: Any) -> Any:
        if a is None:
            return b
        return a if b is None else self.fn(a, b)

    def result(self, acc: Any) -> Any:
        return acc


class Aggregate:
    """A user's own fold: `init()` then `fn(acc, value)`; `merge(a, b)` for sessions."""

    name = "aggregate"

    def __init__(
        self,
        init: Callable[[], Any],
        fn: Callable[[Any, Any], Any],
        merge: Callable[[Any, Any], Any] | None = None,
    ) -> None:
        self._init = init
        self.fn = fn
        self._merge = merge

    def init(self) -> Any:
        return self._init()

    def add(self, acc: Any, value: Any) -> Any:
        return self.fn(acc, value)

    def merge(self, a: Any, b: Any) -> Any:
        if self._merge is None:
            raise ConfigError(
                "session windows merge sessions: pass merge=(a, b) -> combined to aggregate()"
            )
        return self._merge(a, b)

    @property
    def mergeable(self) -> bool:
        return self._merge is not None

    def result(self, acc: Any) -> Any:
        return acc
