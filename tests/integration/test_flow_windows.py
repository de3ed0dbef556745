"""Windowed aggregations in flows: event time, closing, late records, wall-clock time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from riverbed import App, Event, Hopping, Session, Sliding, Tumbling, WindowValue
from riverbed.testing import MockClock

from .conftest import Backend, read_topic, wait_for

T0 = 1_700_000_040_000  # a minute boundary


class Click(Event):
    user: str
    n: int = 1


def clicks_app(backend: Backend, clock: MockClock | None = None) -> tuple[App, Any]:
    app = backend.app("shop", clock=clock) if clock else backend.app("shop")
    clicks = app.topic("clicks", Click, partitions=2, key=lambda c: c.user)
    return app, clicks


async def publish_at(topic: Any, ts: int, *events: Click) -> None:
    for e in events:
        rec = topic.app.producer.build(topic, e)
        rec.timestamp = ts
        await topic.app.broker.append(topic.name, [rec])


async def changes(app: App, topic: str) -> list[dict[str, Any]]:
    return [app.get_topic(topic).codec.decode(r.value) for r in await read_topic(app.broker, topic)]


async def test_tumbling_count_emits_on_close_and_keeps_the_table(backend: Backend) -> None:
    app, clicks = clicks_app(backend, MockClock(T0))
    per_minute = app.stream(clicks, name="cpm").group_by().window(Tumbling(60)).count()
    per_minute.to(app.topic("cpm-out", dict))
    async with app:
        await publish_at(clicks, T0 + 1_000, Click(user="a"), Click(user="a"), Click(user="b"))
        await publish_at(clicks, T0 + 59_999, Click(user="a"))
        await wait_for(lambda: per_minute.table.get("a") is not None, what="a's window")
        assert await changes(app, "cpm-out") == []  # emit="close": nothing while open
        # Event time moves past the window on each partition: the windows close.
        await publish_at(clicks, T0 + 60_000, Click(user="a"), Click(user="b"))
        await wait_for(lambda: _count(app, "cpm-out", 2), what="2 closed windows")
        out = {
            (c["key"], c["start"]): (c["value"], c["final"]) for c in await changes(app, "cpm-out")
        }
        table = per_minute.table.snapshot()
    assert out == {("a", T0): (3, True), ("b", T0): (1, True)}
    assert table["a"] == [
        WindowValue(T0, T0 + 60_000, 3, final=True),
        WindowValue(T0 + 60_000, T0 + 120_000, 1, final=False),
    ]


async def _count(app: App, topic: str, n: int) -> bool:
    return len(await read_topic(app.broker, topic)) >= n


async def test_late_records_go_to_the_late_topic(backend: Backend) -> None:
    app, clicks = clicks_app(backend, MockClock(T0))
    counts = app.stream(clicks, name="cpm").group_by().window(Tumbling(60, grace=5)).count()
    async with app:
        await publish_at(clicks, T0 + 70_000, Click(user="a"))  # watermark: T0 + 70 s
        await publish_at(clicks, T0 + 58_000, Click(user="a"))  # window closed at T0 + 65 s
        await publish_at(clicks, T0 + 61_000, Click(user="a"))  # in time (within grace)
        await wait_for(lambda: _count(app, "shop.cpm.late", 1), what="a late record")
        await wait_for(lambda: counts.table.get("a") == [WindowValue(T0 + 60_000, T0 + 120_000, 2)])
        late = await read_topic(app.broker, "shop.cpm.late")
    assert [(r.key, r.timestamp) for r in late] == [(b"a", T0 + 58_000)]


async def test_windows_close_on_wall_clock_time_when_no_record_comes(backend: Backend) -> None:
    clock = MockClock(T0 + 10_000)
    app, clicks = clicks_app(backend, clock)
    totals = app.stream(clicks, name="s").group_by().window(Tumbling(60)).sum(lambda c: c.n)
    totals.to(app.topic("sums", dict))
    async with app:
        await publish_at(clicks, T0 + 10_000, Click(user="a", n=4), Click(user="a", n=5))
        # Both records in before the clock moves (else the second would be late).
        want = [WindowValue(T0, T0 + 60_000, 9)]
        await wait_for(lambda: totals.table.get("a") == want, what="a's window with both")
        clock.advance(49)  # T0 + 59 s on the wall clock: still open
        clock.advance(1)  # T0 + 60 s: the window's end, with no new record
        await wait_for(lambda: _count(app, "sums", 1), what="closed by the clock")
        assert [(c["key"], c["value"], c["final"]) for c in await changes(app, "sums")] == [
            ("a", 9, True)
        ]


async def test_hopping_sliding_and_session_windows(backend: Backend) -> None:
    app, clicks = clicks_app(backend, MockClock(T0))
    hop = app.stream(clicks, name="hop").group_by().window(Hopping(60, 30)).count()
    slide = app.stream(clicks, name="slide").group_by().window(Sliding(10)).count()
    sess = app.stream(clicks, name="sess").group_by().window(Session(30)).count()
    async with app:
        for offset in (0, 5_000, 20_000, 100_000):
            await publish_at(clicks, T0 + offset, Click(user="a"))
        want_sessions = [(T0, T0 + 20_001, 3), (T0 + 100_000, T0 + 100_001, 1)]
        await wait_for(lambda: _windows(sess, "a") == want_sessions, what="sessions")
        want_hop = [
            (T0 - 30_000, T0 + 30_000, 3),
            (T0, T0 + 60_000, 3),
            (T0 + 60_000, T0 + 120_000, 1),
            (T0 + 90_000, T0 + 150_000, 1),
        ]
        await wait_for(lambda: _windows(hop, "a") == want_hop, what=f"{want_hop}")
        assert _windows(slide, "a") == [
            (T0 - 10_000, T0 + 1, 1),
            (T0 - 5_000, T0 + 5_001, 2),
            (T0 + 10_000, T0 + 20_001, 1),
            (T0 + 90_000, T0 + 100_001, 1),
        ]


def _windows(ts: Any, key: str) -> list[tuple[int, int, Any]]:
    return [(w.start, w.end, w.value) for w in ts.table.get(key, [])]


async def test_a_replay_of_old_events_is_not_closed_by_the_wall_clock(backend: Backend) -> None:
    """Event time a day behind the clock is a replay: a pause must not make the next
    records late, so only records move its time."""
    clock = MockClock(T0 + 86_400_000)
    app, clicks = clicks_app(backend, clock)
    totals = app.stream(clicks, name="s").group_by().window(Tumbling(60)).count()
    async with app:
        await publish_at(clicks, T0 + 10_000, Click(user="a"))
        await wait_for(lambda: totals.table.get("a") is not None, what="a's window")
        clock.advance(3600)  # an hour of pause in the replay
        await publish_at(clicks, T0 + 20_000, Click(user="a"))  # same window: not late
        await wait_for(lambda: totals.table.get("a") == [WindowValue(T0, T0 + 60_000, 2)])
        assert await read_topic(app.broker, "shop.s.late") == []


def test_wall_time_moves_only_live_partitions() -> None:
    from riverbed.processing.walltime import WallTime

    wall = WallTime(live=600)
    assert wall.target(0, 1_000) is None  # nothing seen
    wall.seen(0, now_ms=1_000_000, watermark=999_000)  # 1 s behind the clock: live
    assert wall.target(0, 1_005_000) == 1_004_000
    wall.seen(1, now_ms=1_000_000, watermark=1_000_000 - 600_001)  # just past: a replay
    assert wall.target(1, 2_000_000) is None
    assert WallTime(live=None).target(0, 5) is None
    wall.forget(0)
    assert wall.target(0, 1_005_000) is None


class Reading(Event):
    sensor: str
    at_ms: int | None = None
    at: datetime | None = None


async def test_event_time_from_a_field_the_user_names(backend: Backend) -> None:
    app = backend.app("shop", clock=MockClock(T0))
    readings = app.topic("readings", Reading, key=lambda r: r.sensor)
    by_ms = (
        app.stream(readings, name="ms", event_time=lambda r: r.at_ms)
        .group_by()
        .window(Tumbling(60))
        .count()
    )
    by_dt = (
        app.stream(readings, name="dt", event_time=lambda r: r.at)
        .filter(lambda r: r.at is not None)
        .group_by()
        .window(Tumbling(60))
        .count()
    )
    start = datetime.fromtimestamp(T0 / 1000, tz=UTC)
    async with app:
        # The records' own times (now) do not matter: the fields do.
        await readings.publish_many(
            [
                Reading(sensor="s", at_ms=T0 + 5_000, at=start + timedelta(seconds=61)),
                Reading(sensor="s", at_ms=T0 + 65_000, at=start + timedelta(seconds=62)),
                Reading(sensor="s", at_ms=None),  # no time: dead-lettered by "ms", saying why
            ]
        )
        await wait_for(lambda: _count(app, "readings.dlq", 1), what="the dead letter")
        await wait_for(lambda: len(by_ms.table.get("s", [])) == 2, what="two minutes")
        await wait_for(lambda: by_dt.table.get("s") is not None, what="dt windows")
        dead = await read_topic(app.broker, "readings.dlq")
    assert [(w.start, w.value) for w in by_ms.table["s"]] == [(T0, 1), (T0 + 60_000, 1)]
    assert [(w.start, w.value) for w in by_dt.table["s"]] == [(T0 + 60_000, 2)]
    assert "event_time returned NoneType" in dead[0].headers["dlq.error.message"]
