"""The stateful steps: aggregations and windowed aggregations.

Both keep their state in a table's `PartitionStore` for the partition being processed
(`run.stores`), so it is journaled per record and committed with the offsets.
Each pushes the changed result downstream (the table's stream of changes), which
`to(topic)` can publish.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from riverbed.errors import DeadLetter
from riverbed.processing.nodes import Node
from riverbed.processing.walltime import WallTime

if TYPE_CHECKING:
    from riverbed.processing.table import AggregateTable, WindowedTable
    from riverbed.processing.task import Run
    from riverbed.processing.windows import WindowedPartition, WindowResult
    from riverbed.topics import Topic

__all__ = ["AggregateNode", "WindowNode"]

_MISSING: Any = object()


def _require_key(key: str | None, table: str) -> str:
    if key is None:
        # No retry can give a keyless record a key: straight to the dead letters.
        raise DeadLetter(
            f"aggregation {table!r} needs a key and the record has none; group_by(fn) "
            "to derive one, or publish the input with keys"
        )
    return key


class AggregateNode(Node):
    """`group_by(...).count()` and friends: one running value per key."""

    def __init__(self, table: AggregateTable[Any]) -> None:
        super().__init__()
        self.table = table
        self.aggregator = table.aggregator

    slot = 0
    """This node's table's index among its task's tables (set by the task)."""

    def update(self, run: Run, key: str | None, value: Any) -> tuple[str, Any]:
        if key is None:
            _require_key(key, self.table.name)
        store = run.stores[self.slot]
        agg = self.aggregator
        acc = store.data.get(key, _MISSING)
        acc = agg.add(agg.init() if acc is _MISSING else acc, value)
        store.put(key, acc)
        return key, agg.result(acc)  # type: ignore[return-value]

    def push(self, run: Run, key: str | None, value: Any, ts: int) -> None:
        key, result = self.update(run, key, value)
        self.forward(run, key, result, ts)

    async def apush(self, run: Run, key: str | None, value: Any, ts: int) -> None:
        key, result = self.update(run, key, value)
        await self.aforward(run, key, result, ts)


class WindowNode(Node):
    """A windowed aggregation: updates and closes windows, sends late records aside."""

    def __init__(self, table: WindowedTable, late: Topic[Any], clock: WallTime) -> None:
        super().__init__()
        self.table = table
        self.late = late
        self.clock = clock

    def update(self, run: Run, key: str | None, value: Any, ts: int) -> list[WindowResult]:
        """Add the record to its windows (the runtime tells `clock` afterwards, once per
        batch: see `touch`)."""
        if key is None:
            key = _require_key(key, self.table.name)  # raises: no key, no window
        part: WindowedPartition = self.table.parts[run.partition]
        results = part.add(key, ts, value)
        if results is None:
            run.emit(self.late, key, value, ts)  # a late record never vanishes
            return []
        return results

    def push(self, run: Run, key: str | None, value: Any, ts: int) -> None:
        results = self.update(run, key, value, ts)
        if results:
            for k, out, t in _items(results):
                self.forward(run, k, out, t)

    async def apush(self, run: Run, key: str | None, value: Any, ts: int) -> None:
        for k, out, t in _items(self.update(run, key, value, ts)):
            await self.aforward(run, k, out, t)

    def touch(self, partition: int, now_ms: int) -> None:
        """Records of `partition` arrived (or its state was restored) at `now_ms`:
        wall-clock closing counts from here."""
        self.clock.seen(partition, now_ms, self.table.part(partition).watermark)

    def tick(self, run: Run) -> list[tuple[str, dict[str, Any], int]]:
        """Wall-clock time passed with no record: move the watermark on as far; returns
        the items to push downstream (windows that closed)."""
        target = self.clock.target(run.partition, run.now_ms)
        if target is None:
            return []
        return _items(self.table.part(run.partition).advance(target))

    def forget(self, partition: int) -> None:
        self.clock.forget(partition)


def _items(results: list[WindowResult]) -> list[tuple[str, dict[str, Any], int]]:
    """Window results as the items pushed downstream (time: the window's last ms)."""
    items = []
    for r in results:
        out = {"key": r.key, "start": r.start, "end": r.end, "value": r.value, "final": r.final}
        if r.removed:
            out["removed"] = True
        items.append((r.key, out, r.end - 1))
    return items
