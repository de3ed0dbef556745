"""A clock that only moves when the test says so (as trio's `MockClock`)."""

from __future__ import annotations

import asyncio

__all__ = ["MockClock"]


class MockClock:
    """Virtual time for processors under test.

    `now_ms()` returns the virtual time; `advance(seconds)` moves it and wakes every
    `sleep` whose deadline has passed. A sleeper yields to the event loop once even for
    zero seconds, so loops that sleep on this clock never starve the loop.
    """

    def __init__(self, start_ms: int = 1_700_000_000_000) -> None:
        self._now = start_ms
        self._sleepers: list[tuple[int, asyncio.Future[None]]] = []

    def now_ms(self) -> int:
        return self._now

    async def sleep(self, seconds: float) -> None:
        deadline = self._now + max(0, round(seconds * 1000))
        if deadline <= self._now:
            await asyncio.sleep(0)
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._sleepers.append((deadline, future))
        try:
            await future
        finally:
            self._sleepers = [(d, f) for d, f in self._sleepers if f is not future]

    def advance(self, seconds: float) -> None:
        """Move time forward and wake the sleepers now due."""
        if seconds < 0:
            raise ValueError("a clock does not go backwards")
        self._now += round(seconds * 1000)
        for deadline, future in self._sleepers:
            if deadline <= self._now and not future.done():
                future.set_result(None)

    def __repr__(self) -> str:
        return f"MockClock(now_ms={self._now})"
