"""Flows on the server backends: the same aggregation, window and join on Kafka, NATS
JetStream and Redis Streams, state restored from the changelog after a restart."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from riverbed import App, ConsumerOptions, Event, Tumbling, WindowValue
from riverbed.processing.checkpoint import Checkpoints
from riverbed.processing.store import decode_key as decode

from .conftest import wait_for

T0 = 1_700_000_040_000
FAST = ConsumerOptions(
    commit_interval=0.05,
    heartbeat_interval=0.2,
    session_timeout=3.0,
    fetch_wait=0.1,
    shutdown_timeout=5.0,
)


class Order(Event):
    id: str
    customer: str
    total: int


class Customer(Event):
    id: str
    name: str


def build(url: str, name: str, state: Path) -> tuple[App, Any, Any, Any, Any]:
    app = App(name, broker=url, consumer_options=FAST, state_dir=state)
    orders = app.topic(f"{name}-orders", Order, partitions=2, key=lambda o: o.customer)
    customers = app.topic(f"{name}-customers", Customer, partitions=2, key=lambda c: c.id)
    flow = app.stream(orders, name="revenue")
    per_minute = flow.group_by().window(Tumbling(60)).sum(lambda o: o.total)
    named = (
        app.stream(orders, name="named")
        .join(customers, lambda o, c: {"name": c.name, "total": o.total})
        .group_by(lambda d: d["name"])
        .count()
    )
    return app, orders, customers, per_minute, named


async def publish_at(app: App, topic: Any, ts: int, events: list[Any]) -> None:
    records = [app.producer.build(topic, e) for e in events]
    for r in records:
        r.timestamp = ts
    await app.broker.append(topic.name, records)


@pytest.mark.parametrize("backend", ["kafka", "nats", "redis"])
async def test_window_and_join_on_each_server_backend(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    url = request.getfixturevalue(f"{backend}_url")
    name = f"flows{os.urandom(3).hex()}"
    app, orders, customers, per_minute, named = build(url, name, tmp_path)
    async with app:
        await publish_at(app, customers, T0, [Customer(id="c1", name="Ann")])
        table = app.tables[f"named.{name}-customers.table"]
        await wait_for(lambda: len(table) == 1, timeout=60, what="the customer")
        first = [Order(id=f"o{i}", customer="c1", total=i) for i in range(5)]
        await publish_at(app, orders, T0 + 1_000, first)
        await wait_for(lambda: named.table.get("Ann") == 5, timeout=60, what="5 joined")
        await wait_for(
            lambda: per_minute.table.get("c1") == [WindowValue(T0, T0 + 60_000, 10)],
            timeout=60,
            what="the window sum",
        )
    # The local copy of the state holds what the changelog holds.
    saved = Checkpoints(tmp_path / f"{name}.db")
    copies = [saved.load(f"{name}.named.count.changelog", p) for p in range(2)]
    saved.close()
    assert [decode(k) for c in copies if c for k, _ in c.entries if k != b"null"] == ["Ann"]
    # Restarted: state comes back (local copy + changelog tail), nothing counted twice.
    app, orders, customers, per_minute, named = build(url, name, tmp_path)
    async with app:
        await publish_at(app, orders, T0 + 2_000, [Order(id="o9", customer="c1", total=9)])
        await wait_for(lambda: named.table.get("Ann") == 6, timeout=60, what="6 joined")
        await wait_for(
            lambda: per_minute.table.get("c1") == [WindowValue(T0, T0 + 60_000, 19)],
            timeout=60,
            what="the window sum after a restart",
        )
