"""Time as processors see it: a `Clock` is injected, never read from a global.

Windows close on event time (the records' timestamps) and, when a partition goes quiet,
on wall-clock time; both come through a `Clock` so tests can use
`riverbed.testing.MockClock` and jump an hour in a microsecond.
"""

from __future__ import annotations

import asyncio
import time
from typing import Protocol, runtime_checkable

__all__ = ["Clock", "SystemClock"]


@runtime_checkable
class Clock(Protocol):
    """Wall-clock time in milliseconds since the epoch, and sleeping on it."""

    def now_ms(self) -> int:
        """The current time (ms since the Unix epoch)."""

    async def sleep(self, seconds: float) -> None:
        """Wait `seconds` of this clock's time."""


class SystemClock:
    """The real clock: `time.time()` and `asyncio.sleep`."""

    def now_ms(self) -> int:
        return time.time_ns() // 1_000_000

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)

    def __repr__(self) -> str:
        return "SystemClock()"
