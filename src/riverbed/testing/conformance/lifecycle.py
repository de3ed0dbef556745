"""Conformance cases for a broker's life: `start`, `aclose`, and every call after it."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from riverbed.brokers.base import Broker, TopicPartition, TopicSpec
from riverbed.errors import ClosedError
from riverbed.testing.conformance._base import ConformanceBase, make_record, unique_name


class LifecycleCases(ConformanceBase):
    """`start` is idempotent; after `aclose()` every call raises `ClosedError`."""

    async def test_start_is_idempotent(self, broker: Broker) -> None:
        await broker.start()
        topic = await self.new_topic(broker)
        await broker.start()
        assert (await broker.describe_topic(topic)).name == topic

    async def test_every_call_after_aclose_raises_closed(self, broker: Broker) -> None:
        topic = await self.new_topic(broker)
        tp = TopicPartition(topic, 0)
        g, g2 = unique_name("g"), unique_name("g")
        await broker.join_group(g, "m", [topic])
        await broker.aclose()
        await broker.aclose()  # idempotent
        calls: dict[str, Callable[[], Awaitable[object]]] = {
            "start": lambda: broker.start(),
            "maintain": lambda: broker.maintain(),
            "create_topic": lambda: broker.create_topic(TopicSpec(unique_name("t"))),
            "describe_topic": lambda: broker.describe_topic(topic),
            "list_topics": lambda: broker.list_topics(),
            "append": lambda: broker.append(topic, [make_record()]),
            "fetch": lambda: broker.fetch({tp: 0}),
            "fetch(timeout)": lambda: broker.fetch({tp: 0}, timeout=0.2),
            "offset_for_time": lambda: broker.offset_for_time(tp, 0),
            "join_group": lambda: broker.join_group(g, "m2", [topic]),
            "heartbeat": lambda: broker.heartbeat(g, "m"),
            "release": lambda: broker.release(g, "m", [tp]),
            "leave_group": lambda: broker.leave_group(g, "m"),
            "commit": lambda: broker.commit(g, "m", {tp: 0}),
            "committed": lambda: broker.committed(g, topic),
            "set_offsets": lambda: broker.set_offsets(g2, {tp: 0}),
            "list_groups": lambda: broker.list_groups(),
            "describe_group": lambda: broker.describe_group(g),
            "append_and_commit": lambda: broker.append_and_commit(
                [(topic, [make_record()])], g, "m", {tp: 1}
            ),
        }
        failures = []
        for name, call in calls.items():
            try:
                await call()
            except ClosedError:
                continue
            except Exception as exc:
                failures.append(f"{name} raised {exc!r}")
            else:
                failures.append(f"{name} returned normally")
        assert not failures, "after aclose() every call must raise ClosedError: " + "; ".join(
            failures
        )

    async def test_aclose_ends_a_pending_fetch(self, broker: Broker) -> None:
        topic = await self.new_topic(broker)
        task = asyncio.create_task(broker.fetch({TopicPartition(topic, 0): 0}, timeout=10.0))
        await asyncio.sleep(0.05)
        await broker.aclose()
        done, _ = await asyncio.wait({task}, timeout=2.0)
        if not done:
            task.cancel()
            pytest.fail("a fetch waiting when aclose() was called still waited 2 s later")
        exc = task.exception()
        assert exc is None or isinstance(exc, ClosedError), f"pending fetch raised {exc!r}"
        if exc is None:
            assert task.result() == []
