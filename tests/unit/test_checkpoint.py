"""The local state copy: saved after commits, used only while it matches the changelog,
and a restore from it replays only the changelog's tail."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from riverbed import App, Record, TopicSpec
from riverbed.brokers.memory import MemoryBroker
from riverbed.processing.checkpoint import Checkpoints
from riverbed.processing.tableset import TableSet


class CountingBroker(MemoryBroker):
    """The memory broker, counting the records its fetches return."""

    fetched = 0

    async def fetch(self, positions: Any, **kw: Any) -> list[Record[Any]]:
        got = await super().fetch(positions, **kw)
        self.fetched += len(got)
        return got


def test_save_load_delete_and_forget(tmp_path: Path) -> None:
    cp = Checkpoints(tmp_path / "state" / "a.db")
    assert cp.load("t.changelog", 0) is None
    cp.save("t.changelog", 0, [(b'"a"', b"1"), (b'"b"', b"2")], 5, "id5")
    cp.save("t.changelog", 0, [(b'"a"', None), (b'"c"', b"3")], 7, "id7")
    cp.save("t.changelog", 1, [(b'"z"', b"9")], 1, "id1")
    saved = cp.load("t.changelog", 0)
    assert saved is not None
    assert sorted(saved.entries) == [(b'"b"', b"2"), (b'"c"', b"3")]
    assert (saved.last_offset, saved.last_id) == (7, "id7")
    cp.forget("t.changelog", 0)
    assert cp.load("t.changelog", 0) is None
    assert cp.load("t.changelog", 1) is not None
    cp.close()


async def _setup(tmp_path: Path) -> tuple[App, CountingBroker, Any]:
    broker = CountingBroker()
    app = App("a", broker=broker, state_dir=tmp_path)
    counts = app.table("counts")
    counts.bind("g", 1)
    await broker.create_topic(TopicSpec("input"))
    await broker.create_topic(TopicSpec(counts.changelog))
    app.checkpoints = Checkpoints(tmp_path / "a.db")
    return app, broker, counts


async def test_restore_uses_the_copy_and_replays_only_the_tail(tmp_path: Path) -> None:
    app, broker, counts = await _setup(tmp_path)
    tables = TableSet(app, [counts], "input")
    await tables.restore(broker, [0])
    # 100 commits of one change each; the copy is saved after the first 90.
    for i in range(100):
        tables.stores(0)[0].put(f"k{i % 10}", i)
        batch = tables.changelog(0, {"input": i + 1})
        offsets = await broker.append(counts.changelog, [r for _, r in batch])
        for (_, r), off in zip(batch, offsets, strict=True):
            r.offset = off
        if i < 90:
            await tables.checkpoint(batch)
    fresh = TableSet(app, [counts], "input")
    broker.fetched = 0
    await fresh.restore(broker, [0])
    assert counts.snapshot() == {f"k{k}": 90 + k for k in range(10)}
    assert fresh.applied(0) == {"input": 100}
    # 1 record to check the copy still matches, then the 10 commits after it (2 each).
    assert broker.fetched == 1 + 20


async def test_a_copy_that_no_longer_matches_is_dropped(tmp_path: Path) -> None:
    app, broker, counts = await _setup(tmp_path)
    assert app.checkpoints is not None
    app.checkpoints.save(counts.changelog, 0, [(b'"stale"', b"1")], 0, "not-that-record")
    tables = TableSet(app, [counts], "input")
    assert await tables.restore(broker, [0]) == {}
    assert counts.snapshot() == {}
    assert app.checkpoints.load(counts.changelog, 0) is None
