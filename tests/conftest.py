"""Fixtures shared by every test directory.

The repository root goes on `sys.path` so the tests can import `examples.*` the way
`riverbed run examples.shop.app:app` does from the root, however pytest was started.
"""

from __future__ import annotations

import asyncio
import inspect
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

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
