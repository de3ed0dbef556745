"""Tables: keyed state a flow or consumer keeps, and what the rest of the app reads.

A table is partitioned like the input of the flow (or consumer) that writes it: the
state of partition p lives with whoever owns input partition p, in a `PartitionStore`,
and is written to the changelog topic `<table>.changelog` in the same commit as the
input offsets (see `store.py`). When partition p moves to another worker, the new owner
restores it from the changelog before it processes a record of p.

Reads (`table[key]`, `get`, `in`, `items`, `snapshot`) see the partitions this process
owns. Writes happen only while a record is processed by the owner, so that they commit
with it: outside that, they raise with a message that says so.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterator
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import msgspec

from riverbed.codecs import SchemaCodec, make_codec
from riverbed.errors import ConfigError
from riverbed.partitioner import partition_for_key
from riverbed.processing.aggregates import Aggregator
from riverbed.processing.store import PartitionStore
from riverbed.topics import validate_topic_name

if TYPE_CHECKING:
    from riverbed.app import App
    from riverbed.processing.task import Run
    from riverbed.processing.windows import WindowedAggregation, WindowedPartition

__all__ = [
    "AggregateTable",
    "EngineTable",
    "Table",
    "WindowValue",
    "WindowedTable",
    "current_run",
]

V = TypeVar("V")
CHANGELOG_SUFFIX = ".changelog"

current_run: ContextVar[Run | None] = ContextVar("riverbed_current_run", default=None)
"""The record being processed in this task (set by the runtime around each record)."""

_json_encode = msgspec.json.Encoder().encode
_json_decode = msgspec.json.Decoder().decode


class WindowValue(msgspec.Struct, frozen=True):
    """One window of a windowed table: its span [start, end) in ms and its value."""

    start: int
    end: int
    value: Any
    final: bool = False


class Table(Generic[V]):
    """A keyed state store (str keys), partitioned like its writer's input."""

    def __init__(self, app: App, name: str, schema: Any = None) -> None:
        validate_topic_name(f"{app.name}.{name}{CHANGELOG_SUFFIX}")
        self.app = app
        self.name = name
        self.schema = schema
        self._codec: SchemaCodec | None = None if schema is None else make_codec(schema)
        self.partitions = 0
        """Set when the table is bound to its writer's input topic."""
        self.writer: str | None = None
        """The group that writes the table (one writer per table)."""
        self._stores: dict[int, PartitionStore] = {}

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"

    @property
    def changelog(self) -> str:
        """The changelog topic: `<app>.<table>.changelog`."""
        return f"{self.app.name}.{self.name}{CHANGELOG_SUFFIX}"

    # -- encoding (changelog values) --------------------------------------------------
    def encode(self, value: Any) -> bytes:
        return _json_encode(value) if self._codec is None else self._codec.encode(value)

    def decode(self, raw: bytes) -> Any:
        return _json_decode(raw) if self._codec is None else self._codec.decode(raw)

    # -- the runtime's side -------------------------------------------------------------
    def bind(self, group: str, partitions: int) -> None:
        """Make `group` the table's writer, with its input's partition count."""
        if self.writer is not None and self.writer != group:
            raise ConfigError(
                f"table {self.name!r} is written by {self.writer!r} and {group!r}; "
                "a table has one writer: give each its own table"
            )
        self.writer = group
        self.partitions = partitions

    def attach(self, partition: int, store: PartitionStore) -> None:
        self._stores[partition] = store

    def detach(self, partition: int) -> None:
        self._stores.pop(partition, None)

    def store(self, partition: int) -> PartitionStore | None:
        return self._stores.get(partition)

    # -- reads --------------------------------------------------------------------------
    def _lookup(self, key: Hashable) -> tuple[bool, Any]:
        """(found, stored value) for a state key, from the partition it hashes to first."""
        if self.partitions and isinstance(key, str):
            store = self._stores.get(partition_for_key(key.encode(), self.partitions))
            if store is not None and key in store.data:
                return True, store.data[key]
        for store in self._stores.values():  # inputs not partitioned by the default rule
            if key in store.data:
                return True, store.data[key]
        return False, None

    def show(self, stored: Any) -> Any:
        """What a read returns for a stored value."""
        return stored

    def get(self, key: str, default: Any = None) -> Any:
        """The value at `key` in the partitions this process owns, else `default`."""
        found, value = self._lookup(key)
        return self.show(value) if found else default

    def __getitem__(self, key: str) -> V:
        found, value = self._lookup(key)
        if not found:
            raise KeyError(key)
        shown: V = self.show(value)
        return shown

    def __contains__(self, key: object) -> bool:
        return self._lookup(key)[0] if isinstance(key, str) else False

    def items(self) -> Iterator[tuple[str, V]]:
        """(key, value) of every entry in the owned partitions (a point-in-time copy)."""
        return iter(list(self.snapshot().items()))

    def __iter__(self) -> Iterator[str]:
        return iter(list(self.snapshot()))

    def __len__(self) -> int:
        return sum(len(s) for s in self._stores.values())

    def snapshot(self) -> dict[str, V]:
        """A point-in-time copy of the owned partitions: key -> value."""
        out: dict[str, V] = {}
        for store in list(self._stores.values()):
            for k, v in store.data.items():
                out[k] = self.show(v)  # type: ignore[index]
        return out

    # -- writes (only while the owner processes a record) --------------------------------
    def _writable(self, key: str) -> PartitionStore:
        run = current_run.get()
        store = None if run is None else self._stores.get(run.partition)
        if run is None or store is None or run.group != self.writer:
            raise ConfigError(
                f"table {self.name!r} is written only by its writer ({self.writer or 'none'}) "
                "while it handles a record, so the write commits with that record"
            )
        if not isinstance(key, str):
            raise ConfigError(f"table {self.name!r}: keys are str, got {type(key).__name__}")
        home = partition_for_key(key.encode(), self.partitions)
        if home != run.partition:
            # Stored here, the key would be invisible to readers (they look in its home
            # partition) and could be written by two workers at once.
            raise ConfigError(
                f"table {self.name!r}: key {key!r} belongs to partition {home} but the record "
                f"came from partition {run.partition}; key the input records by the table "
                "key (publish with that key, or write the table from a flow after group_by)"
            )
        return store

    def __setitem__(self, key: str, value: V) -> None:
        self._writable(key).put(key, value)

    def __delitem__(self, key: str) -> None:
        store = self._writable(key)
        if key not in store.data:
            raise KeyError(key)
        store.delete(key)

    def pop(self, key: str, default: Any = None) -> Any:
        store = self._writable(key)
        value = store.data.get(key, default)
        store.delete(key)
        return value


class AggregateTable(Table[V]):
    """The table of a `group_by(...).count()` (or sum, mean, ...): key -> result."""

    def __init__(self, app: App, name: str, aggregator: Aggregator) -> None:
        super().__init__(app, name)
        self.aggregator = aggregator

    def show(self, stored: Any) -> Any:
        return self.aggregator.result(stored)

    def _writable(self, key: str) -> PartitionStore:
        raise ConfigError(f"table {self.name!r} is an aggregation's result: it is read-only")


class EngineTable(Table[V]):
    """A table whose partitions are run by an engine (windows, joins): the engine keeps
    its state in the partition's store and is reopened on it after a restore."""

    def __init__(self, app: App, name: str, engine: Any) -> None:
        super().__init__(app, name)
        self.engine = engine
        self.parts: dict[int, Any] = {}
        """Partition -> its engine (opened on the partition's store)."""

    def open(self, partition: int) -> Any:
        part = self.parts[partition] = self.engine.open(self._stores[partition])
        return part

    def part(self, partition: int) -> Any:
        return self.parts[partition]

    def detach(self, partition: int) -> None:
        super().detach(partition)
        self.parts.pop(partition, None)

    def _writable(self, key: str) -> PartitionStore:
        raise ConfigError(f"table {self.name!r} is kept by a flow step: it is read-only")


class WindowedTable(EngineTable[list[WindowValue]]):
    """The table of a windowed aggregation: key -> its windows, by start."""

    def __init__(self, app: App, name: str, engine: WindowedAggregation) -> None:
        super().__init__(app, name, engine)

    def part(self, partition: int) -> WindowedPartition:
        part: WindowedPartition = self.parts[partition]
        return part

    def _lookup(self, key: Hashable) -> tuple[bool, Any]:
        if not isinstance(key, str):
            return False, None
        for part in list(self.parts.values()):
            windows = part.results_of(key)
            if windows:
                return True, [WindowValue(w.start, w.end, w.value, w.final) for w in windows]
        return False, None

    def __len__(self) -> int:
        return len(self.snapshot())

    def snapshot(self) -> dict[str, list[WindowValue]]:
        out: dict[str, list[WindowValue]] = {}
        for part in list(self.parts.values()):
            for w in part.all_windows():
                out.setdefault(w.key, []).append(WindowValue(w.start, w.end, w.value, w.final))
        return out
