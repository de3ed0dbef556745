"""Fixtures for the App-layer integration tests: one backend per parameter.

Every test that takes `backend` runs twice: on `memory://` and on the embedded sqlite
log. A `Backend` makes apps on its store and opens an independent handle (`inspect`)
to look at the log and the committed offsets from the outside, also after the apps
using the store have stopped.

The memory store lives only inside one `MemoryBroker` object, so apps on it share one
broker through `SharedMemoryBroker`, a handle whose `aclose()` leaves the store open:
the store outlives its clients, as a server does. Each sqlite app opens its own
connections to the file, as separate processes would.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from riverbed import App, Broker, ConsumerOptions, Record, TopicPartition
from riverbed.brokers.memory import MemoryBroker

FAST = ConsumerOptions(
    commit_interval=0.05,
    heartbeat_interval=0.1,
    session_timeout=1.0,
    fetch_wait=0.1,
    shutdown_timeout=2.0,
)
"""Consumer timings small enough for tests to finish in milliseconds."""


class SharedMemoryBroker:
    """A handle on one `MemoryBroker` store that apps may open and close in turn."""

    def __init__(self, store: MemoryBroker) -> None:
        self._store = store
        self.url = store.url
        self.capabilities = store.capabilities

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    async def aclose(self) -> None:
        """Closing a client leaves the store (the "server") running."""


@dataclass
class Backend:
    """One backend under test: makes apps on a fresh store and inspects that store."""

    name: str
    url: str
    _store: MemoryBroker | None = field(default=None, repr=False)

    def broker_arg(self) -> str | Broker:
        """What to pass as `App(broker=...)` so the app uses this test's store."""
        if self.name == "memory":
            if self._store is None:
                self._store = MemoryBroker()
            return SharedMemoryBroker(self._store)
        return self.url

    def app(self, name: str = "shop", **options: Any) -> App:
        options.setdefault("consumer_options", FAST)
        return App(name, broker=self.broker_arg(), **options)

    def fresh_url(self) -> str:
        """A URL for an app that owns its store outright (sync-facade tests)."""
        return "memory://" if self.name == "memory" else self.url

    @asynccontextmanager
    async def inspect(self) -> AsyncIterator[Broker]:
        """A started broker on this test's store, independent of any app."""
        if self.name == "memory":
            if self._store is None:
                self._store = MemoryBroker()
            yield self._store
            return
        from riverbed.brokers.sqlite import SqliteBroker

        broker = SqliteBroker(self.url)
        await broker.start()
        try:
            yield broker
        finally:
            await broker.aclose()


@pytest.fixture(params=["memory", "sqlite"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    if request.param == "memory":
        return Backend("memory", "memory://")
    return Backend("sqlite", f"sqlite:///{tmp_path}/app.db")


@pytest.fixture(autouse=True)
def _no_broker_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """RIVERBED_BROKER overrides every app's URL; these tests choose their own."""
    monkeypatch.delenv("RIVERBED_BROKER", raising=False)


# -- waiting ----------------------------------------------------------------------------
async def wait_for(
    condition: Callable[[], Any | Awaitable[Any]],
    *,
    timeout: float = 5.0,
    interval: float = 0.005,
    what: str = "",
) -> Any:
    """Poll `condition` (sync or async) until it is truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if isinstance(result, Awaitable):
            result = await result
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or condition}")
        await asyncio.sleep(interval)


async def wait_for_count(items: list[Any], n: int, *, timeout: float = 5.0) -> None:
    await wait_for(lambda: len(items) >= n, timeout=timeout, what=f"{n} items (have {items!r})")


# -- reading the log --------------------------------------------------------------------
async def read_topic(broker: Broker, topic: str) -> list[Record[Any]]:
    """Every stored record of `topic`, partition by partition, in offset order."""
    info = await broker.describe_topic(topic)
    out: list[Record[Any]] = []
    for p in info.partitions:
        pos = p.start_offset
        while pos < p.end_offset:
            batch = await broker.fetch({TopicPartition(topic, p.partition): pos})
            if not batch:
                break
            out.extend(batch)
            pos = batch[-1].offset + 1
    return out


async def topic_names(broker: Broker) -> list[str]:
    return [t.name for t in await broker.list_topics()]


async def end_offsets(broker: Broker, topic: str) -> dict[int, int]:
    return (await broker.describe_topic(topic)).end_offsets()


async def committed_is(
    broker: Broker, group: str, topic: str, offset: int, partition: int = 0
) -> bool:
    """Is `group`'s committed offset of `topic[partition]` exactly `offset`?"""
    return (await broker.committed(group, topic)).get(partition) == offset


async def fully_committed(broker: Broker, group: str, topic: str) -> bool:
    """Has `group` committed every partition of `topic` up to its end?"""
    ends = {p: e for p, e in (await end_offsets(broker, topic)).items() if e > 0}
    committed = await broker.committed(group, topic)
    return all(committed.get(p) == e for p, e in ends.items())
