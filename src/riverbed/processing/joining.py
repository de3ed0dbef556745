"""The join steps of a flow, over the engines in `joins.py`.

Every join is co-partitioned: partition p of the stream meets partition p of the other
side, keyed alike (Kafka Streams' rule; `key_by` first where the keys differ). The
other side's topic is read inside the same sub-topology, by position, for the
partitions the flow's group gives this worker; its position is kept with the state, in
the changelog, so it restores with it.

- `Materialize`: the other side as a table, latest value per key (stream-table joins,
  table-table joins).
- `LookupJoin`: a stream record meets the table's current value for its key.
- `StreamJoinSide`: a record of either stream enters the window join; pairs (and, for
  left/outer joins, records that expired unmatched) come out through `JoinApply`.
- `TableJoinSide`: a table change updates the joined row.
Buffered stream values are stored as JSON text (the changelog is JSON) and turned back
into the stream's type when a pair comes out.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import TYPE_CHECKING, Any

from riverbed.codecs import SchemaCodec
from riverbed.errors import DeadLetter
from riverbed.processing.joins import How, lookup_join
from riverbed.processing.nodes import FnNode, Node
from riverbed.processing.table import EngineTable, Table
from riverbed.processing.walltime import WallTime

if TYPE_CHECKING:
    from riverbed.app import App
    from riverbed.processing.joins import JoinResult, StreamJoinPartition
    from riverbed.processing.task import Run
    from riverbed.topics import Topic

__all__ = [
    "JoinApply",
    "LookupJoin",
    "Materialize",
    "StreamJoinSide",
    "TableJoinSide",
    "TableJoinTable",
]

Fn2 = Callable[[Any, Any], Any]


def _need_key(key: str | None, what: str) -> str:
    if key is None:
        raise DeadLetter(f"{what} joins by key and the record has none; key_by(fn) first")
    return key


class Materialize(Node):
    """Keeps the latest value per key of a topic read alongside the stream."""

    slot = 0

    def __init__(self, table: Table[Any]) -> None:
        super().__init__()
        self.table = table

    def push(self, run: Run, key: str | None, value: Any, ts: int) -> None:
        key = _need_key(key, f"table {self.table.name!r}")
        run.stores[self.slot].put(key, value)
        self.forward(run, key, value, ts)

    async def apush(self, run: Run, key: str | None, value: Any, ts: int) -> None:
        key = _need_key(key, f"table {self.table.name!r}")
        run.stores[self.slot].put(key, value)
        await self.aforward(run, key, value, ts)


class LookupJoin(FnNode):
    """Stream-table join: each record with the table's value for its key."""

    def __init__(self, table: Table[Any], fn: Fn2, how: How) -> None:
        super().__init__(fn)
        self.table = table
        self.how = how
        self.slot = 0

    def _pair(self, run: Run, key: str | None, value: Any) -> tuple[Any, Any] | None:
        key = _need_key(key, f"the join with {self.table.name!r}")
        return lookup_join(value, run.stores[self.slot].data.get(key), self.how)

    def push(self, run: Run, key: str | None, value: Any, ts: int) -> None:
        pair = self._pair(run, key, value)
        if pair is not None:
            self.forward(run, key, self.call(*pair), ts)

    async def apush(self, run: Run, key: str | None, value: Any, ts: int) -> None:
        pair = self._pair(run, key, value)
        if pair is not None:
            await self.aforward(run, key, await self.acall(*pair), ts)


class JoinApply(FnNode):
    """Where a stream join's pairs come out: `fn(left, right)`, values decoded."""

    def __init__(self, fn: Fn2, left: SchemaCodec, right: SchemaCodec) -> None:
        super().__init__(fn)
        self.codecs = (left, right)

    def _values(self, pair: tuple[str | None, str | None]) -> tuple[Any, Any]:
        return tuple(  # type: ignore[return-value]
            None if text is None else codec.decode(text.encode())
            for text, codec in zip(pair, self.codecs, strict=True)
        )

    def push(self, run: Run, key: str | None, value: Any, ts: int) -> None:
        self.forward(run, key, self.call(*self._values(value)), ts)

    async def apush(self, run: Run, key: str | None, value: Any, ts: int) -> None:
        await self.aforward(run, key, await self.acall(*self._values(value)), ts)


class StreamJoinSide(Node):
    """One stream's records entering a windowed stream-stream join."""

    def __init__(
        self,
        table: EngineTable[Any],
        side: str,
        codec: SchemaCodec,
        late: Topic[Any],
        clock: WallTime,
        ticks: bool,
    ) -> None:
        super().__init__()
        self.table = table
        self.side = side
        self.codec = codec
        self.late = late
        self.clock = clock
        """Shared by both sides of the join."""
        self.ticks = ticks
        """The left side closes the join's windows on wall-clock ticks (once per join)."""

    def _enter(self, run: Run, key: str | None, value: Any, ts: int) -> list[JoinResult]:
        key = _need_key(key, f"the stream join {self.table.name!r}")
        part: StreamJoinPartition = self.table.part(run.partition)
        text = self.codec.encode(value).decode()
        results = (part.left if self.side == "left" else part.right)(key, ts, text)
        if results is None:
            run.emit(self.late, key, value, ts)  # a late record never vanishes
            return []
        return results

    def push(self, run: Run, key: str | None, value: Any, ts: int) -> None:
        for r in self._enter(run, key, value, ts):
            self.forward(run, r.key, (r.left, r.right), r.ts)

    async def apush(self, run: Run, key: str | None, value: Any, ts: int) -> None:
        for r in self._enter(run, key, value, ts):
            await self.aforward(run, r.key, (r.left, r.right), r.ts)

    # -- wall-clock time (as `WindowNode`) ------------------------------------------------------
    def touch(self, partition: int, now_ms: int) -> None:
        self.clock.seen(partition, now_ms, self.table.part(partition).watermark)

    def tick(self, run: Run) -> list[tuple[str, Any, int]]:
        target = self.clock.target(run.partition, run.now_ms) if self.ticks else None
        if target is None:
            return []
        results = self.table.part(run.partition).advance(target)
        return [(r.key, (r.left, r.right), r.ts) for r in results]

    def forget(self, partition: int) -> None:
        self.clock.forget(partition)


class TableJoinSide(FnNode):
    """A change of one side of a table-table join: the joined row's new value."""

    def __init__(self, table: TableJoinTable, side: str, fn: Fn2) -> None:
        super().__init__(fn)
        self.table = table
        self.side = side

    def _change(self, run: Run, key: str | None, value: Any) -> JoinResult | None:
        key = _need_key(key, f"the table join {self.table.name!r}")
        part = self.table.part(run.partition)
        text = None if value is None else self.table.encode_side(self.side, value)
        result: JoinResult | None = (part.left if self.side == "left" else part.right)(key, text)
        return None if result is None or result.removed else result

    def push(self, run: Run, key: str | None, value: Any, ts: int) -> None:
        r = self._change(run, key, value)
        if r is not None:
            self.forward(run, r.key, self.call(*self.table.decode_row(r)), ts)

    async def apush(self, run: Run, key: str | None, value: Any, ts: int) -> None:
        r = self._change(run, key, value)
        if r is not None:
            await self.aforward(run, r.key, await self.acall(*self.table.decode_row(r)), ts)


class TableJoinTable(EngineTable[Any]):
    """The result of a table-table join: key -> `fn(left, right)` of its current row."""

    def __init__(
        self, app: App, name: str, engine: Any, fn: Fn2, codecs: tuple[SchemaCodec, SchemaCodec]
    ) -> None:
        super().__init__(app, name, engine)
        self.fn = fn
        self.codecs = codecs

    def encode_side(self, side: str, value: Any) -> str:
        return self.codecs[0 if side == "left" else 1].encode(value).decode()

    def decode_row(self, row: JoinResult) -> tuple[Any, Any]:
        left, right = (
            None if text is None else codec.decode(text.encode())
            for text, codec in zip((row.left, row.right), self.codecs, strict=True)
        )
        return left, right

    def _lookup(self, key: Hashable) -> tuple[bool, Any]:
        for part in list(self.parts.values()):
            row = part.get(key)
            if row is not None:
                return True, row
        return False, None

    def show(self, stored: Any) -> Any:
        return self.fn(*self.decode_row(stored))

    def __len__(self) -> int:
        return sum(len(part.rows()) for part in list(self.parts.values()))

    def snapshot(self) -> dict[str, Any]:
        return {
            row.key: self.show(row) for part in list(self.parts.values()) for row in part.rows()
        }
