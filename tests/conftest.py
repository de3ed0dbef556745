"""Fixtures shared by every test directory.

The repository root goes on `sys.path` so the tests can import `examples.*` the way
`riverbed run examples.shop.app:app` does from the root, however pytest was started.
"""

from __future__ import annotations

import asyncio
import inspect
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from tests import servers  # noqa: E402 - needs the root on sys.path

Predicate = Callable[[], "bool | Awaitable[bool]"]
WaitUntil = Callable[..., Awaitable[None]]


async def _wait_until(
    predicate: Predicate,
    timeout: float = 10.0,
    *,
    interval: float = 0.02,
    message: str = "",
) -> None:
    """Poll `predicate` (sync or async) until it is true; fail the test after `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return
        if time.monotonic() >= deadline:
            what = message or getattr(predicate, "__qualname__", repr(predicate))
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")
        await asyncio.sleep(interval)


@pytest.fixture
def wait_until() -> WaitUntil:
    """`await wait_until(predicate, timeout=10, message=...)`: poll until true or fail."""
    return _wait_until


@pytest.fixture
def repo_root() -> Path:
    return REPO_ROOT


# -- real servers for the backend tests (see tests/servers.py) ---------------------------
@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """The machine's Redis on 127.0.0.1:6379, else a redis-server started for this run."""
    yield from servers.machine_or_own(6379, servers.redis_process, "redis://127.0.0.1:{}/0")


@pytest.fixture(scope="session")
def nats_url() -> Iterator[str]:
    """The machine's NATS (JetStream) on 127.0.0.1:4222, else a nats-server started here."""
    yield from servers.machine_or_own(4222, servers.nats_process, "nats://127.0.0.1:{}")


@pytest.fixture(scope="session")
def kafka_url() -> Iterator[str]:
    """A Kafka-wire broker (Tansu) started for this test run on an ephemeral port."""
    with servers.running(servers.kafka_process) as server:
        yield f"kafka://127.0.0.1:{server.port}"
