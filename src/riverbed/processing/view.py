"""`StateView`: what a processing engine (windows, joins) sees of one partition's state.

Engines are pure logic over a `StateView`: they never touch brokers, changelogs or
clocks. The runtime hands them the view of the partition being processed; every `put`
and `delete` there is journaled (undone if the record fails, flushed to the changelog
at commit). Hence the one rule for engines: never mutate a value read from the view in
place; `put` a new one.

Keys are hashable tuples of str and int (they travel as JSON arrays in the changelog);
values are JSON data (None, bool, int, float, str, lists, dicts with str keys).
"""

from __future__ import annotations

from collections.abc import Hashable, Iterator
from typing import Any, Protocol

__all__ = ["DictView", "StateView"]


class StateView(Protocol):
    """One partition's key-value state."""

    def get(self, key: Hashable, default: Any = None) -> Any:
        """The value stored at `key`, else `default`."""

    def put(self, key: Hashable, value: Any) -> None:
        """Store `value` at `key` (a new object: stored values are never mutated)."""

    def delete(self, key: Hashable) -> None:
        """Remove `key`; no error if absent."""

    def items(self) -> Iterator[tuple[Hashable, Any]]:
        """Every entry, in no particular order (used to rebuild indexes on restore)."""


class DictView:
    """A `StateView` over a plain dict: for engine tests and reference runs."""

    def __init__(self, data: dict[Hashable, Any] | None = None) -> None:
        self.data: dict[Hashable, Any] = {} if data is None else data

    def get(self, key: Hashable, default: Any = None) -> Any:
        return self.data.get(key, default)

    def put(self, key: Hashable, value: Any) -> None:
        self.data[key] = value

    def delete(self, key: Hashable) -> None:
        self.data.pop(key, None)

    def items(self) -> Iterator[tuple[Hashable, Any]]:
        return iter(list(self.data.items()))
