"""Flows end to end against the plain-Python references, on random inputs.

The engine property tests (tests/unit/test_*_property.py) check the window and join
engines alone. Here the whole path runs: events go to real topics (memory:// or the
sqlite log), an app runs the flow, and what comes out (the flow's table, its output
topic, its late topic) must equal what the references compute from the same events.

Arrival order decides the results, so each test makes it well-defined:
- windows read one topic of one partition, so the flow processes it in offset order:
  the whole stream is appended at once, with chosen event times;
- joins read two topics, and the runtime orders a fetched batch by time across them,
  so each record is published only once the flow has handled the one before
  (`app.statistics()`): arrival order is publish order, whatever the timestamps.
The flows' `MockClock` stands still while records flow, so wall-clock ticks change
nothing; some examples then jump it far ahead and check what the tick closes or expires.
It starts at the events' time (T0): the stream is live, so its watermark follows the
clock (a replay of old events would not move on the clock at all).
"""

from __future__ import annotations

import asyncio
import inspect
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.unit.join_reference import RefStreamJoin, RefTableJoin
from tests.unit.test_windows_property import KINDS
from tests.unit.test_windows_property import specs as window_specs
from tests.unit.window_reference import ReferenceWindows

from riverbed import App, Record, WindowValue
from riverbed.processing.aggregates import Count, Sum
from riverbed.processing.stream import TableStream
from riverbed.processing.windows import WindowSpec
from riverbed.testing import MockClock
from riverbed.topics import Topic

from .conftest import Backend, read_topic, wait_for

T0 = 1_700_000_000_000
FLUSH_MS = 1_000_000
"""How far the clock jumps at the end of a flushing example: past every window."""

SETTINGS = settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
BACKENDS = st.sampled_from(["memory", "memory", "sqlite"])
HOWS = st.sampled_from(["inner", "left", "outer"])

Seen = tuple[str | None, int, Any]
"""A record of a topic as the tests compare it: (key, timestamp, decoded value)."""


# -- running a flow --------------------------------------------------------------------------
def make_backend(kind: str, tmp_path: Path) -> Backend:
    """A fresh store per example (hypothesis reuses the test's tmp_path)."""
    if kind == "memory":
        return Backend("memory", "memory://")
    return Backend("sqlite", f"sqlite:///{tmp_path}/{uuid.uuid4().hex}.db")


def stamped(app: App, topic: Topic[Any], event: dict[str, Any], ts: int) -> Record[Any]:
    """A record of `event` for `topic` with event time `ts`."""
    rec = app.producer.build(topic, event)
    rec.timestamp = ts
    return rec


def handled(app: App, group: str) -> int:
    """Records the flow's group has processed (late and dropped ones included)."""
    return sum(s.handled for s in app.statistics() if s.group == group)


async def wait_handled(app: App, group: str, n: int) -> None:
    await wait_for(lambda: handled(app, group) >= n, interval=0.001, what=f"{n} handled")


async def publish_one_by_one(
    app: App, group: str, records: list[tuple[Topic[Any], dict[str, Any], int]]
) -> None:
    """Publish each record once the flow has handled the previous one."""
    for n, (topic, event, ts) in enumerate(records, 1):
        await app.broker.append(topic.name, [stamped(app, topic, event, ts)])
        await wait_handled(app, group, n)
    assert handled(app, group) == len(records)


async def settle(read: Callable[[], Any], done: Callable[[Any], bool], timeout: float = 2) -> Any:
    """Poll `read()` (sync or async) until `done` says so or `timeout` passes; the last
    value either way (the caller asserts on it: a divergence shows as a diff)."""
    deadline = time.monotonic() + timeout
    while True:
        value = read()
        if inspect.isawaitable(value):
            value = await value
        if done(value) or time.monotonic() > deadline:
            return value
        await asyncio.sleep(0.005)


async def seen(backend: Backend, app: App, topic: str) -> list[Seen]:
    """Every record of `topic` in offset order, read from the store after the app stopped."""
    async with backend.inspect() as broker:
        records = await read_topic(broker, topic)
    codec = app.get_topic(topic).codec
    return [(r.key_str, r.timestamp, codec.decode(r.value)) for r in records]


async def count_on(app: App, topic: str) -> int:
    """How many records `topic` holds now (committed outputs, while the app runs)."""
    return len(await read_topic(app.broker, topic))


# -- windows -----------------------------------------------------------------------------------


@st.composite
def timed_events(draw: st.DrawFn) -> list[tuple[str, int, int]]:
    """(key, ts, value): times drift forward, jitter puts some behind (out of order, late)."""
    now = T0
    out = []
    steps = st.tuples(st.integers(0, 4), st.sampled_from("ab"), st.integers(-12, 3))
    for drift, key, jitter in draw(st.lists(steps, min_size=5, max_size=30)):
        now += drift
        out.append((key, now + jitter, draw(st.integers(0, 9))))
    return out


def window_reference(spec: WindowSpec, agg: str, emit: str, retention: Any) -> ReferenceWindows:
    return ReferenceWindows(
        KINDS[type(spec)],
        Count() if agg == "count" else Sum(_n),
        size=getattr(spec, "size", 0.0),
        advance=getattr(spec, "advance", 0.0),
        gap=getattr(spec, "gap", 0.0),
        grace=spec.grace,
        emit=emit,
        retention=retention,
    )


def _n(event: dict[str, Any]) -> int:
    return int(event["n"])


def window_seen(result: tuple[str, int, int, Any, bool, bool]) -> Seen:
    """A reference emission as the output topic holds it (stamped with the last ms)."""
    key, start, end, value, final, removed = result
    item = {"key": key, "start": start, "end": end, "value": value, "final": final}
    if removed:
        item["removed"] = True
    return key, end - 1, item


def window_table(ref: ReferenceWindows) -> dict[str, list[WindowValue]]:
    """The reference's windows as the flow's table shows them."""
    table: dict[str, list[WindowValue]] = {}
    for key, start, end, value, final, _ in ref.all_windows():
        table.setdefault(key, []).append(WindowValue(start, end, value, final))
    return table


def replay_windows(
    ref: ReferenceWindows, events: list[tuple[str, int, int]]
) -> tuple[list[Seen], list[Seen]]:
    """What the reference emits for `events`, and what it finds late, in order."""
    out: list[Seen] = []
    late: list[Seen] = []
    for key, ts, n in events:
        emitted = ref.add(key, ts, {"k": key, "n": n})
        if emitted is None:
            late.append((key, ts, {"k": key, "n": n}))
        else:
            out.extend(window_seen(r) for r in emitted)
    return out, late


def windowed_flow(
    app: App, spec: WindowSpec, agg: str, emit: Any, retention: float | None
) -> TableStream[Any]:
    """Flow "w": events of topic "ev" summed or counted per key and window, to "out"."""
    topic = app.topic("ev", dict, key=lambda e: e["k"])
    grouped = app.stream(topic, name="w").group_by().window(spec, emit=emit, retention=retention)
    windows = grouped.count() if agg == "count" else grouped.sum(_n)
    windows.to(app.topic("out", dict))
    return windows


@SETTINGS
@given(
    spec=window_specs(),
    agg=st.sampled_from(["count", "sum"]),
    emit=st.sampled_from(["close", "update", "both"]),
    retention=st.none() | st.integers(0, 20).map(lambda r: r / 1000),
    events=timed_events(),
    flush=st.booleans(),
    kind=BACKENDS,
)
async def test_windowed_flow_matches_reference(
    tmp_path: Path,
    spec: WindowSpec,
    agg: str,
    emit: Any,
    retention: float | None,
    events: list[tuple[str, int, int]],
    flush: bool,
    kind: str,
) -> None:
    ref = window_reference(spec, agg, emit, retention)
    want_out, want_late = replay_windows(ref, events)
    backend, clock = make_backend(kind, tmp_path), MockClock(T0)
    app = backend.app("p", clock=clock)
    windows = windowed_flow(app, spec, agg, emit, retention)
    async with app:
        topic = app.get_topic("ev")
        await app.broker.append(
            "ev", [stamped(app, topic, {"k": k, "n": n}, t) for k, t, n in events]
        )
        await wait_handled(app, "p.w", len(events))
        assert windows.table.snapshot() == window_table(ref)
        if flush:
            assert ref.wm is not None  # the first record is never late
            want_out.extend(window_seen(r) for r in ref.advance(ref.wm + FLUSH_MS))
            clock.advance(FLUSH_MS / 1000)
            want_table = window_table(ref)
            assert await settle(windows.table.snapshot, want_table.__eq__) == want_table
            await settle(lambda: count_on(app, "out"), lambda n: n >= len(want_out))
    assert await seen(backend, app, "out") == want_out
    assert await seen(backend, app, "p.w.late") == want_late


# -- joins -------------------------------------------------------------------------------------
def _pair(left: Any, right: Any) -> dict[str, Any]:
    return {"l": left, "r": right}


def join_seen(rows: list[tuple[str, int, Any, Any, bool]]) -> list[Seen]:
    """Reference join rows as the output topic holds them."""
    return [(key, ts, _pair(left, right)) for key, ts, left, right, _ in rows]


@st.composite
def join_events(draw: st.DrawFn) -> list[tuple[str, str, int]]:
    """(side, key, ts): a rising clock with jitter behind it; ties are common."""
    now = T0
    out = []
    for _ in range(draw(st.integers(1, 24))):
        now += draw(st.sampled_from([0, 0, 1, 5, 12]))
        side = draw(st.sampled_from(["left", "right"]))
        out.append((side, draw(st.sampled_from("ab")), now - draw(st.sampled_from([0, 0, 3, 40]))))
    return out


@SETTINGS
@given(
    events=join_events(),
    within_ms=st.sampled_from([0, 5, 20]),
    grace_ms=st.sampled_from([0, 10, 30]),
    how=HOWS,
    flush=st.booleans(),
    kind=BACKENDS,
)
async def test_stream_stream_join_flow_matches_reference(
    tmp_path: Path,
    events: list[tuple[str, str, int]],
    within_ms: int,
    grace_ms: int,
    how: Any,
    flush: bool,
    kind: str,
) -> None:
    await check_stream_join(tmp_path, events, within_ms, grace_ms, how, flush, kind)


async def test_stream_stream_join_expires_right_records_on_the_clock(tmp_path: Path) -> None:
    """The smallest case the property found: with no left record accepted, a jump of the
    clock must still expire the right record and emit it from an outer join."""
    await check_stream_join(tmp_path, [("right", "a", T0)], 0, 0, "outer", True, "memory")


async def check_stream_join(
    tmp_path: Path,
    events: list[tuple[str, str, int]],
    within_ms: int,
    grace_ms: int,
    how: Any,
    flush: bool,
    kind: str,
) -> None:
    """Publish `events` one by one to the join's two topics (then, if `flush`, jump the
    clock): the pairs, the expired records and the late ones must be the reference's."""
    ref = RefStreamJoin(within_ms, grace_ms, how)
    want_out: list[Seen] = []
    want_late: list[Seen] = []
    for n, (side, key, ts) in enumerate(events):
        rows = getattr(ref, side)(key, ts, {"k": key, "n": n})
        if rows is None:
            want_late.append((key, ts, {"k": key, "n": n}))
        want_out.extend(join_seen(rows or []))
    backend, clock = make_backend(kind, tmp_path), MockClock(T0)
    app = backend.app("p", clock=clock)
    topics = {side: app.topic(side, dict, key=lambda e: e["k"]) for side in ("left", "right")}
    app.stream(topics["left"], name="j").join_stream(
        topics["right"], _pair, within=within_ms / 1000, how=how, grace=grace_ms / 1000
    ).to(app.topic("out", dict))
    async with app:
        plan = [(topics[s], {"k": k, "n": n}, ts) for n, (s, k, ts) in enumerate(events)]
        await publish_one_by_one(app, "p.j", plan)
        if flush:
            assert ref.wm is not None  # the first record is never late
            want_out.extend(join_seen(ref.advance(ref.wm + FLUSH_MS)))
            clock.advance(FLUSH_MS / 1000)
            await settle(lambda: count_on(app, "out"), lambda n: n >= len(want_out))
    assert await seen(backend, app, "out") == want_out
    assert await seen(backend, app, "p.j.late") == want_late


@st.composite
def table_updates(draw: st.DrawFn, sides: tuple[str, str]) -> list[tuple[str, str, int | None]]:
    """(side, key, value) with None (a delete) on the first side only."""
    update = st.tuples(
        st.sampled_from(sides), st.sampled_from("abc"), st.none() | st.integers(0, 3)
    ).map(lambda u: (u[0], u[1], 0 if u[0] == sides[1] and u[2] is None else u[2]))
    return draw(st.lists(update, min_size=1, max_size=24))


@SETTINGS
@given(
    updates=table_updates(("stream", "table")),
    how=st.sampled_from(["inner", "left"]),
    kind=BACKENDS,
)
async def test_stream_table_join_flow_matches_reference(
    tmp_path: Path, updates: list[tuple[str, str, int | None]], how: Any, kind: str
) -> None:
    latest: dict[str, dict[str, Any]] = {}
    want_out: list[Seen] = []
    for n, (side, key, value) in enumerate(updates):
        event = {"k": key, "v": value}
        if side == "table":
            latest[key] = event
        elif key in latest or how == "left":
            want_out.append((key, T0 + n, _pair(event, latest.get(key))))
    backend = make_backend(kind, tmp_path)
    app = backend.app("p")
    topics = {side: app.topic(side, dict, key=lambda e: e["k"]) for side in ("stream", "table")}
    app.stream(topics["stream"], name="e").join(topics["table"], _pair, how=how).to(
        app.topic("out", dict)
    )
    async with app:
        plan = [(topics[s], {"k": k, "v": v}, T0 + n) for n, (s, k, v) in enumerate(updates)]
        await publish_one_by_one(app, "p.e", plan)
        assert app.tables["e.table.table"].snapshot() == latest
    assert await seen(backend, app, "out") == want_out


def _left_value(event: dict[str, Any]) -> dict[str, Any] | None:
    """A left update whose value is None deletes the key from the left table."""
    return None if event["v"] is None else event


@SETTINGS
@given(updates=table_updates(("left", "right")), how=HOWS, kind=BACKENDS)
async def test_table_table_join_flow_matches_reference(
    tmp_path: Path, updates: list[tuple[str, str, int | None]], how: Any, kind: str
) -> None:
    ref = RefTableJoin(how)
    want_out: list[Seen] = []
    for n, (side, key, value) in enumerate(updates):
        event = {"k": key, "v": value}
        row = getattr(ref, side)(key, _left_value(event) if side == "left" else event)
        # The flow passes a changed row on, and nothing when a row goes away.
        if row is not None and not row[4]:
            want_out.append((key, T0 + n, _pair(row[2], row[3])))
    want_table = {key: _pair(left, right) for key, _, left, right, _ in ref.rows()}
    backend = make_backend(kind, tmp_path)
    app = backend.app("p")
    topics = {side: app.topic(side, dict, key=lambda e: e["k"]) for side in ("left", "right")}
    joined = (
        app.stream(topics["left"], name="t")
        .map(_left_value)
        .to_table()
        .join(topics["right"], _pair, how=how)
    )
    joined.to(app.topic("out", dict))
    async with app:
        plan = [(topics[s], {"k": k, "v": v}, T0 + n) for n, (s, k, v) in enumerate(updates)]
        await publish_one_by_one(app, "p.t", plan)
        assert joined.table.snapshot() == want_table
    assert await seen(backend, app, "out") == want_out
