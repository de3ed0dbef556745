"""What only the sqlite backend shows: its file layout, pragmas, processes sharing the
file, and retention/compaction at batch-row granularity. The protocol itself is covered
by the conformance suite (tests/conformance/test_sqlite.py)."""

from __future__ import annotations

import asyncio
import sqlite3
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any

import pytest

from riverbed.brokers.base import TopicPartition, TopicSpec
from riverbed.brokers.sqlite import SqliteBroker
from riverbed.errors import (
    BrokerUnavailable,
    BrokerURLError,
    ConfigError,
    EncodeError,
    FencedError,
)
from riverbed.events import IdGenerator, Record

_ids = IdGenerator()
T0 = 1_700_000_000_000
TP = TopicPartition("t", 0)


def rec(
    key: bytes | None = None, *, value: bytes = b"v", ts: int = T0, partition: int = 0
) -> Record[Any]:
    return Record(_ids.new(), "test", "tests", ts, key, value, partition=partition)


class Clock:
    def __init__(self, now: int = T0) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "log" / "app.db"


@pytest.fixture
async def broker(db: Path) -> AsyncIterator[SqliteBroker]:
    b = SqliteBroker(f"sqlite:///{db}")
    await b.start()
    await b.create_topic(TopicSpec("t"))
    yield b
    await b.aclose()


@contextmanager
def raw(db: Path) -> Iterator[sqlite3.Connection]:
    """A plain connection to inspect the file the way another tool would."""
    with closing(sqlite3.connect(db, isolation_level=None)) as conn:
        yield conn


def rows_of(db: Path) -> list[tuple[int, int, int, bytes | None]]:
    with raw(db) as conn:
        return conn.execute(
            "SELECT base_offset, last_offset, n_records, sparse_offsets FROM batches"
            " ORDER BY pid, last_offset"
        ).fetchall()


async def fetch_all(b: SqliteBroker, tp: TopicPartition = TP, pos: int = 0) -> list[Record[Any]]:
    return await b.fetch({tp: pos}, max_records=1_000_000)


# -- opening ------------------------------------------------------------------------------
async def test_relative_and_absolute_paths_follow_sqlalchemy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    relative = SqliteBroker("sqlite:///rel/dir/app.db")
    absolute = SqliteBroker(f"sqlite:///{tmp_path}/abs/app.db")  # "////" + path
    for b in (relative, absolute):
        await b.start()
        await b.aclose()
    assert (tmp_path / "rel" / "dir" / "app.db").is_file()
    assert (tmp_path / "abs" / "app.db").is_file()
    assert relative.path == "rel/dir/app.db"


@pytest.mark.parametrize(
    "url",
    [
        "sqlite://host/app.db",
        "sqlite://",
        "sqlite:///:memory:",
        "sqlite:///a.db?bogus=1",
        "sqlite:///a.db?timeout=nan",
    ],
)
def test_bad_urls_say_what_to_write(url: str) -> None:
    with pytest.raises(BrokerURLError, match="sqlite"):
        SqliteBroker(url)


def test_bad_durability_is_refused() -> None:
    with pytest.raises(ConfigError, match="durability"):
        SqliteBroker("sqlite:///a.db?durability=sometimes")


@pytest.mark.parametrize(
    ("url", "durability", "synchronous"),
    [
        ("app.db", "process", 1),  # NORMAL
        ("app.db", "fsync", 2),  # FULL
        ("app.db?durability=fsync", "process", 2),  # either place asking for fsync wins
    ],
)
async def test_durability_sets_synchronous(
    tmp_path: Path, url: str, durability: Any, synchronous: int
) -> None:
    b = SqliteBroker(f"sqlite:///{tmp_path}/{url}", durability=durability)
    try:
        pragmas = await b.pragmas()
    finally:
        await b.aclose()
    assert pragmas["synchronous"] == synchronous
    assert pragmas["journal_mode"] == "wal"
    assert pragmas["busy_timeout"] == 5000


# -- storage layout -------------------------------------------------------------------------
async def test_a_batch_is_one_row_not_one_row_per_record(broker: SqliteBroker, db: Path) -> None:
    for _ in range(10):
        await broker.append("t", [rec(value=b"x" * 100) for _ in range(500)])
    rows = rows_of(db)
    assert len(rows) == 10
    assert [(r[0], r[1], r[2]) for r in rows] == [(i * 500, i * 500 + 499, 500) for i in range(10)]
    assert all(r[3] is None for r in rows), "fresh rows are dense"
    got = await fetch_all(broker)
    assert [r.offset for r in got] == list(range(5000))


async def test_huge_and_multi_partition_appends_split_into_rows(
    broker: SqliteBroker, db: Path
) -> None:
    await broker.create_topic(TopicSpec("two", 2))
    offsets = await broker.append("two", [rec(partition=i % 2) for i in range(10)])
    assert offsets == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4]
    assert len(rows_of(db)) == 2  # one row per partition
    await broker.append("t", [rec() for _ in range(5000)])
    assert [r[2] for r in rows_of(db) if r[2] > 5] == [2048, 2048, 904]


async def test_log_survives_close_and_reopen(broker: SqliteBroker, db: Path) -> None:
    await broker.append("t", [rec(b"k", value=b"%d" % i) for i in range(100)])
    await broker.aclose()
    reopened = SqliteBroker(f"sqlite:///{db}")
    try:
        assert [r.value for r in await fetch_all(reopened)] == [b"%d" % i for i in range(100)]
        assert await reopened.append("t", [rec()]) == [100]
    finally:
        await reopened.aclose()


# -- sharing the file ---------------------------------------------------------------------------
async def test_two_brokers_on_one_file_see_and_wake_each_other(
    broker: SqliteBroker, db: Path
) -> None:
    other = SqliteBroker(f"sqlite:///{db}")
    try:
        await broker.append("t", [rec(value=b"first")])
        assert [r.value for r in await fetch_all(other)] == [b"first"]
        # `other` gets no in-process signal from `broker`: it must notice the commit
        # through PRAGMA data_version.
        waiting = asyncio.create_task(other.fetch({TP: 1}, timeout=10.0))
        await asyncio.sleep(0.3)
        started = time.monotonic()
        await broker.append("t", [rec(value=b"second")])
        got = await waiting
        latency = time.monotonic() - started
    finally:
        await other.aclose()
    print(f"wake-up through data_version (same process): {latency * 1000:.1f} ms")
    assert [r.value for r in got] == [b"second"]
    assert latency < 0.2


async def test_readers_never_wait_for_a_writer_and_a_held_lock_is_retriable(
    tmp_path: Path,
) -> None:
    db = tmp_path / "locked.db"
    b = SqliteBroker(f"sqlite:///{db}?timeout=0.1")
    try:
        await b.create_topic(TopicSpec("t"))
        await b.append("t", [rec()])
        with raw(db) as other:
            other.execute("BEGIN IMMEDIATE")  # another process holds the write lock
            assert len(await fetch_all(b)) == 1
            with pytest.raises(BrokerUnavailable) as info:
                await b.append("t", [rec()])
            assert info.value.retriable
            assert isinstance(info.value.__cause__, sqlite3.OperationalError)
            other.execute("ROLLBACK")
        assert await b.append("t", [rec()]) == [1]
    finally:
        await b.aclose()


_WAITER = """
import asyncio, sys, time
from riverbed.brokers.base import TopicPartition
from riverbed.brokers.sqlite import SqliteBroker

async def main():
    b = SqliteBroker(sys.argv[1])
    await b.start()
    print("ready", flush=True)
    got = await b.fetch({TopicPartition("t", 0): 0}, timeout=20.0)
    print(time.time(), [r.value.decode() for r in got], flush=True)
    await b.aclose()

asyncio.run(main())
"""


async def test_consumer_in_another_process_wakes_promptly(broker: SqliteBroker) -> None:
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-c", _WAITER, broker.url, stdout=asyncio.subprocess.PIPE
    )
    assert child.stdout is not None
    assert (await asyncio.wait_for(child.stdout.readline(), 30)).strip() == b"ready"
    await asyncio.sleep(0.5)  # let the child's polling back off to its slowest
    appended_at = time.time()
    await broker.append("t", [rec(value=b"hello")])
    line = await asyncio.wait_for(child.stdout.readline(), 30)
    assert await child.wait() == 0
    woke_at, values = line.decode().split(" ", 1)
    latency = float(woke_at) - appended_at
    print(f"cross-process wake-up latency: {latency * 1000:.1f} ms")
    assert values.strip() == "['hello']"
    assert latency < 0.2


_WRITER = """
import asyncio, pathlib, sys, time
from riverbed.brokers.sqlite import SqliteBroker
from riverbed.events import IdGenerator, Record

async def main():
    url, name, go = sys.argv[1], sys.argv[2], pathlib.Path(sys.argv[3])
    ids = IdGenerator()
    b = SqliteBroker(url)
    await b.start()
    print("ready", flush=True)
    while not go.exists():
        await asyncio.sleep(0.001)
    for i in range(100):
        batch = [Record(ids.new(), "t", name, 0, None, f"{name}:{i}:{j}".encode(), partition=0)
                 for j in range(20)]
        await b.append("t", batch)
    await b.aclose()

asyncio.run(main())
"""


async def test_concurrent_appends_from_two_processes_keep_offsets_dense(
    broker: SqliteBroker, db: Path, tmp_path: Path
) -> None:
    go = tmp_path / "go"
    children = [
        await asyncio.create_subprocess_exec(
            sys.executable, "-c", _WRITER, broker.url, name, str(go), stdout=asyncio.subprocess.PIPE
        )
        for name in ("a", "b")
    ]
    for child in children:
        assert child.stdout is not None
        assert (await asyncio.wait_for(child.stdout.readline(), 30)).strip() == b"ready"
    go.touch()
    assert [await c.wait() for c in children] == [0, 0]
    got = await fetch_all(broker)
    assert [r.offset for r in got] == list(range(4000))
    for name in ("a", "b"):
        mine = [r.value.decode() for r in got if r.source == name]
        assert mine == [f"{name}:{i}:{j}" for i in range(100) for j in range(20)]
    assert len(rows_of(db)) == 200


# -- retention and compaction -------------------------------------------------------------
async def test_retention_by_age_drops_whole_rows_and_keeps_offsets(db: Path) -> None:
    clock = Clock(T0)
    b = SqliteBroker(f"sqlite:///{db}", clock=clock)
    try:
        await b.create_topic(TopicSpec("t", retention_ms=1000))
        await b.append("t", [rec(ts=T0 - 5000) for _ in range(3)])  # 0-2: expired
        await b.append("t", [rec(ts=T0 - 5000), rec(ts=T0 - 100)])  # 3-4: one recent
        await b.append("t", [rec(ts=T0) for _ in range(2)])  # 5-6
        await b.maintain()
        info = (await b.describe_topic("t")).partitions[0]
        assert (info.start_offset, info.end_offset) == (3, 7)
        assert [r.offset for r in await fetch_all(b)] == [3, 4, 5, 6]  # 0 reads from start
        assert await b.offset_for_time(TP, T0 - 200) == 4
        clock.now = T0 + 950  # row 3-4 now wholly past retention
        await b.maintain()
        assert [r.offset for r in await fetch_all(b, pos=1)] == [5, 6]
        assert await b.append("t", [rec(ts=clock.now)]) == [7]
    finally:
        await b.aclose()


async def test_retention_by_size_keeps_the_row_straddling_the_limit(
    broker: SqliteBroker, db: Path
) -> None:
    for i in range(4):
        await broker.append("t", [rec(value=b"%d" % i * 50) for _ in range(10)])
    with raw(db) as conn:
        sizes = [s for (s,) in conn.execute("SELECT size_bytes FROM batches ORDER BY base_offset")]
    # The 2 newest rows hold just under the limit: the third is kept (it straddles it),
    # the oldest goes.
    await broker.create_topic(TopicSpec("t", retention_bytes=sizes[2] + sizes[3] + 1))
    await broker.maintain()
    info = (await broker.describe_topic("t")).partitions[0]
    assert (info.start_offset, info.end_offset) == (10, 40)
    assert [r.offset for r in await fetch_all(broker)] == list(range(10, 40))


async def test_compaction_keeps_latest_per_key_at_original_offsets(
    broker: SqliteBroker, db: Path
) -> None:
    await broker.create_topic(TopicSpec("c", compact=True))
    tp = TopicPartition("c", 0)

    def r(key: bytes | None, offset: int) -> Record[Any]:
        return rec(key, value=b"%d" % offset, ts=T0 + offset * 10)

    await broker.append("c", [r(b"k1", 0), r(b"k2", 1), r(b"k3", 2), r(None, 3)])
    await broker.append("c", [r(b"k2", 4), r(b"k4", 5)])
    await broker.append("c", [r(b"k4", 6)])
    await broker.maintain()

    assert [x.offset for x in await fetch_all(broker, tp)] == [0, 2, 3, 4, 6]
    assert [x.value for x in await fetch_all(broker, tp)] == [b"0", b"2", b"3", b"4", b"6"]
    assert [x.offset for x in await fetch_all(broker, tp, 1)] == [2, 3, 4, 6]  # inside a gap
    assert [x.offset for x in await fetch_all(broker, tp, 5)] == [6]
    assert [x.offset for x in await broker.fetch({tp: 0}, max_records=2)] == [0, 2]
    assert await broker.offset_for_time(tp, T0 + 11) == 2
    assert await broker.offset_for_time(tp, T0 + 41) == 6
    first_row = rows_of(db)[0]
    assert first_row[:3] == (0, 3, 3)
    assert first_row[3] is not None

    await broker.append("c", [r(b"k1", 7)])
    await broker.maintain()
    info = (await broker.describe_topic("c")).partitions[0]
    assert (info.start_offset, info.end_offset) == (2, 8)
    assert [x.offset for x in await fetch_all(broker, tp)] == [2, 3, 4, 6, 7]
    assert await broker.append("c", [r(b"k9", 8)]) == [8]


async def test_partial_reads_of_a_row_are_consistent(broker: SqliteBroker) -> None:
    await broker.create_topic(TopicSpec("c", compact=True))
    tp = TopicPartition("c", 0)
    await broker.append("c", [rec(b"k%d" % i) for i in range(10)])
    first = await broker.fetch({tp: 0}, max_records=3)  # the rest of the row is kept
    first[0].data = "mine"
    await broker.append("c", [rec(b"k5")])
    await broker.maintain()  # rewrites the row: the kept rest must not be served
    rest = await fetch_all(broker, tp, 3)
    assert [x.offset for x in first + rest] == [0, 1, 2, 3, 4, 6, 7, 8, 9, 10]
    again = await broker.fetch({tp: 0}, max_records=3)
    assert again[0] is not first[0]
    assert again[0].data is None

    await broker.append("t", [rec() for _ in range(1000)])
    seen: list[Record[Any]] = []
    while len(seen) < 1000:
        seen += await broker.fetch({TP: len(seen)}, max_records=300)
    assert [x.offset for x in seen] == list(range(1000))
    assert len({id(x) for x in seen}) == 1000


async def test_fenced_append_and_commit_stores_nothing(broker: SqliteBroker, db: Path) -> None:
    await broker.join_group("g", "owner", ["t"])
    before = rows_of(db)
    with pytest.raises(FencedError):
        await broker.append_and_commit([("t", [rec()])], "g", "intruder", {TP: 1})
    assert rows_of(db) == before
    assert (await broker.describe_topic("t")).partitions[0].end_offset == 0
    assert await broker.committed("g", "t") == {}
    assert await broker.append_and_commit([("t", [rec(), rec()])], "g", "owner", {TP: 5}) == [
        [0, 1]
    ]
    assert await broker.committed("g", "t") == {0: 5}


async def test_unstorable_record_is_refused_and_nothing_is_stored(
    broker: SqliteBroker, db: Path
) -> None:
    bad = rec()
    bad.value = object()  # type: ignore[assignment]
    with pytest.raises(EncodeError, match="'t'"):
        await broker.append("t", [rec(), bad])
    assert rows_of(db) == []
    assert await broker.append("t", [rec()]) == [0]


def test_one_broker_serves_one_event_loop_after_another(db: Path) -> None:
    b = SqliteBroker(f"sqlite:///{db}")

    async def first() -> list[Record[Any]]:
        await b.create_topic(TopicSpec("t"))
        return await b.fetch({TP: 0}, timeout=0.05)  # a wait that times out

    async def second() -> list[Record[Any]]:
        waiting = asyncio.create_task(b.fetch({TP: 0}, timeout=10.0))
        await asyncio.sleep(0.05)
        await b.append("t", [rec(value=b"later")])
        try:
            return await waiting
        finally:
            await b.aclose()

    assert asyncio.run(first()) == []
    assert [r.value for r in asyncio.run(second())] == [b"later"]


async def test_waiting_fetches_share_one_poller_and_hand_it_over(
    broker: SqliteBroker, db: Path
) -> None:
    await broker.create_topic(TopicSpec("m", 3))
    other = SqliteBroker(f"sqlite:///{db}")  # its appends reach us only through polling
    try:
        waiting = [
            asyncio.create_task(broker.fetch({TopicPartition("m", p): 0}, timeout=10.0))
            for p in range(3)
        ]
        await asyncio.sleep(0.1)
        for p in range(3):  # whoever polled first finishes first: the others take over
            started = time.monotonic()
            await other.append("m", [rec(value=b"%d" % p, partition=p)])
            got = await asyncio.wait_for(waiting[p], 5)
            assert [r.value for r in got] == [b"%d" % p]
            assert time.monotonic() - started < 0.2
            assert not any(w.done() for w in waiting[p + 1 :])
    finally:
        await other.aclose()
