"""Retries, Retry(after=...), Skip, dead letters, dropping, and group-targeted replays."""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime
from functools import partial

import pytest

from riverbed import App, DeadLetter, Event, Record, Retry, Skip, Topic

from .conftest import Backend, fully_committed, read_topic, topic_names, wait_for, wait_for_count


class Order(Event):
    id: str
    qty: int


def shop(backend: Backend, partitions: int = 1) -> tuple[App, Topic[Order]]:
    app = backend.app("shop")
    return app, app.topic("orders", Order, partitions=partitions)


def stats(app: App, group: str) -> dict[str, int]:
    [snap] = [s for s in app.statistics() if s.group == group]
    return {k: v for k, v in vars(snap).items() if isinstance(v, int) and k != "generation"}


def parse_iso(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)


async def test_failing_twice_then_succeeding_is_handled_once(backend: Backend) -> None:
    app, orders = shop(backend)
    calls: list[str] = []

    @app.consumer(orders, group="flaky", retry=Retry(attempts=3, backoff=0.01))
    async def flaky(order: Order) -> None:
        calls.append(order.id)
        if len(calls) < 3:
            raise ConnectionError(f"transient #{len(calls)}")

    async with app:
        await orders.publish(Order(id="a", qty=1))
        await wait_for(lambda: stats(app, "flaky")["handled"] == 1, what="handled")
        await wait_for(lambda: fully_committed(app.broker, "flaky", "orders"), what="commit")
        assert await read_topic(app.broker, "orders.dlq") == []
    assert calls == ["a", "a", "a"]
    s = stats(app, "flaky")
    assert (s["handled"], s["retried"], s["dead_lettered"], s["errors"]) == (1, 2, 0, 0)


async def test_raised_retry_after_sets_the_delay(backend: Backend) -> None:
    app, orders = shop(backend)
    times: list[float] = []

    # The policy's own backoff is zero: only the raised `after` can make it wait.
    @app.consumer(orders, group="later", retry=Retry(attempts=3, backoff=0))
    async def later(order: Order) -> None:
        times.append(time.monotonic())
        if len(times) == 1:
            raise Retry(after=0.05)

    async with app:
        await orders.publish(Order(id="a", qty=1))
        await wait_for_count(times, 2)
        await wait_for(lambda: stats(app, "later")["handled"] == 1, what="handled")
    assert times[1] - times[0] >= 0.045  # timer resolution slack only
    assert stats(app, "later")["retried"] == 1


async def test_raised_retry_after_overrides_a_long_policy_backoff(backend: Backend) -> None:
    app, orders = shop(backend)
    calls: list[str] = []

    @app.consumer(orders, group="soon", retry=Retry(attempts=2, backoff=60, jitter=False))
    async def soon(order: Order) -> None:
        calls.append(order.id)
        if len(calls) == 1:
            raise Retry(after=0.01, reason="not yet")

    async with app:
        await orders.publish(Order(id="a", qty=1))
        await wait_for_count(calls, 2, timeout=5)  # far less than the policy's 60 s


async def test_skip_acknowledges_without_a_dead_letter(backend: Backend) -> None:
    app, orders = shop(backend)
    calls: list[str] = []

    @app.consumer(orders, group="picky")
    async def picky(order: Order) -> None:
        calls.append(order.id)
        if order.id == "ignore":
            raise Skip

    async with app:
        await orders.publish_many([Order(id="ignore", qty=1), Order(id="keep", qty=2)])
        await wait_for(lambda: fully_committed(app.broker, "picky", "orders"), what="commit")
        assert await read_topic(app.broker, "orders.dlq") == []
    assert calls == ["ignore", "keep"]
    s = stats(app, "picky")
    assert (s["skipped"], s["handled"], s["retried"], s["dead_lettered"]) == (1, 1, 0, 0)


async def test_skip_after_a_failure_counts_the_retry(backend: Backend) -> None:
    app, orders = shop(backend)
    calls: list[str] = []

    @app.consumer(orders, group="giveup", retry=Retry(attempts=3, backoff=0.01))
    async def giveup(order: Order) -> None:
        calls.append(order.id)
        if len(calls) == 1:
            raise RuntimeError("first try fails")
        raise Skip  # the second try decides to skip

    async with app:
        await orders.publish(Order(id="a", qty=1))
        await wait_for(lambda: stats(app, "giveup")["skipped"] == 1, what="skipped")
    assert calls == ["a", "a"]
    assert stats(app, "giveup")["retried"] == 1  # two tries = one retry


async def test_dead_letter_goes_straight_to_the_dlq_with_its_reason(backend: Backend) -> None:
    app, orders = shop(backend, partitions=3)
    calls: list[str] = []
    before = datetime.now(UTC).replace(microsecond=0)

    @app.consumer(orders, group="strict", retry=Retry(attempts=5, backoff=0.01))
    async def strict(order: Order) -> None:
        calls.append(order.id)
        if order.qty < 0:
            raise DeadLetter(f"negative quantity {order.qty}")

    async with app:
        bad = await orders.publish(Order(id="bad", qty=-2), key="cust-9", headers={"h": "v"})
        await orders.publish(Order(id="good", qty=1), key="cust-9")
        await wait_for(lambda: fully_committed(app.broker, "strict", "orders"), what="commit")
        [dead] = await read_topic(app.broker, "orders.dlq")
        [original] = [r for r in await read_topic(app.broker, "orders") if r.offset == bad.offset]
    assert calls == ["bad", "good"]  # no retries for DeadLetter, and the stream moved on
    assert dead.partition == bad.partition  # the DLQ has the same partitions
    assert (dead.id, dead.key, dead.value, dead.type) == (
        original.id,
        b"cust-9",
        original.value,
        original.type,
    )
    h = dead.headers
    assert h["h"] == "v"  # the original headers are kept
    assert h["dlq.error.type"] == "DeadLetter"
    assert h["dlq.error.message"] == "negative quantity -2"
    assert h["dlq.attempts"] == "1"
    assert (h["dlq.topic"], h["dlq.partition"], h["dlq.offset"]) == (
        "orders",
        str(bad.partition),
        str(bad.offset),
    )
    assert h["dlq.group"] == "strict"
    first, last = parse_iso(h["dlq.first_failure"]), parse_iso(h["dlq.last_failure"])
    assert before <= first <= last <= datetime.now(UTC)
    s = stats(app, "strict")
    assert (s["dead_lettered"], s["handled"], s["retried"]) == (1, 1, 0)


async def test_exhausted_retries_dead_letter_and_the_consumer_moves_on(backend: Backend) -> None:
    app, orders = shop(backend)
    calls: list[str] = []

    @app.consumer(orders, group="fragile", retry=Retry(attempts=3, backoff=0.01))
    async def fragile(order: Order) -> None:
        calls.append(order.id)
        if order.id == "poison":
            raise ValueError(f"cannot ship {order.id}")

    async with app:
        await orders.publish_many(
            [Order(id="ok1", qty=1), Order(id="poison", qty=1), Order(id="ok2", qty=1)]
        )
        await wait_for(lambda: fully_committed(app.broker, "fragile", "orders"), what="commit")
        [dead] = await read_topic(app.broker, "orders.dlq")
    assert calls == ["ok1", "poison", "poison", "poison", "ok2"]
    h = dead.headers
    assert h["dlq.error.type"] == "ValueError"
    assert "cannot ship poison" in h["dlq.error.message"]
    assert h["dlq.attempts"] == "3"
    assert h["dlq.offset"] == "1"
    assert parse_iso(h["dlq.first_failure"]) <= parse_iso(h["dlq.last_failure"])
    s = stats(app, "fragile")
    assert (s["handled"], s["retried"], s["dead_lettered"], s["errors"]) == (2, 2, 1, 0)


async def test_without_dead_letters_a_failure_is_dropped_and_counted(
    backend: Backend, caplog: pytest.LogCaptureFixture
) -> None:
    app, orders = shop(backend)
    calls: list[str] = []

    @app.consumer(orders, group="lossy", retry=Retry(attempts=2, backoff=0.01), dead_letter=False)
    async def lossy(order: Order) -> None:
        calls.append(order.id)
        if order.id == "poison":
            raise RuntimeError("always")

    with caplog.at_level(logging.ERROR, logger="riverbed"):
        async with app:
            await orders.publish_many([Order(id="poison", qty=1), Order(id="next", qty=1)])
            await wait_for(lambda: fully_committed(app.broker, "lossy", "orders"), what="commit")
            names = await topic_names(app.broker)
    assert calls == ["poison", "poison", "next"]
    assert not [n for n in names if n.endswith(".dlq")]
    s = stats(app, "lossy")
    assert (s["dropped"], s["dead_lettered"], s["handled"], s["retried"]) == (1, 0, 1, 1)
    [log] = [r for r in caplog.records if "dead letters are off" in r.getMessage()]
    assert "orders[0]@0" in log.getMessage()


async def test_a_replay_for_one_group_is_skipped_by_the_others(backend: Backend) -> None:
    app, orders = shop(backend)
    seen: dict[str, list[str]] = {"billing": [], "shipping": []}

    @app.consumer(orders, group="billing")
    async def billing(order: Order) -> None:
        seen["billing"].append(order.id)

    @app.consumer(orders, group="shipping")
    async def shipping(order: Order) -> None:
        seen["shipping"].append(order.id)

    async with app:
        await orders.publish(Order(id="normal", qty=1))
        await orders.publish(
            Order(id="replayed", qty=1), headers={"riverbed.replay-group": "billing"}
        )
        await orders.publish(Order(id="after", qty=1))
        for group in ("billing", "shipping"):
            await wait_for(partial(fully_committed, app.broker, group, "orders"), what=group)
    assert seen == {"billing": ["normal", "replayed", "after"], "shipping": ["normal", "after"]}
    assert stats(app, "shipping")["skipped"] == 1
    assert stats(app, "billing")["skipped"] == 0


async def test_a_dead_lettered_replay_loses_its_replay_header(backend: Backend) -> None:
    app, orders = shop(backend)

    @app.consumer(orders, group="billing")
    async def billing(record: Record[Order]) -> None:
        raise DeadLetter("still bad")

    async with app:
        await orders.publish(Order(id="x", qty=1), headers={"riverbed.replay-group": "billing"})
        await wait_for(lambda: fully_committed(app.broker, "billing", "orders"), what="commit")
        [dead] = await read_topic(app.broker, "orders.dlq")
    assert "riverbed.replay-group" not in dead.headers
    assert dead.headers["dlq.group"] == "billing"
