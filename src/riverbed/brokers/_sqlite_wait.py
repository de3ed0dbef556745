"""How a waiting `fetch` learns that the sqlite log changed.

Two sources, checked together:
- in this process, `ChangeSignal.notify()` is called by the broker right after each of
  its own appends commits, waking waiters at once;
- other processes cannot signal us, so the waiter polls `PRAGMA data_version` on the
  read connection. The pragma compares the WAL-index header in shared memory: no disk
  read, about 5 microseconds (plus one hop to the reader thread). Polls start 1 ms
  apart and double up to 20 ms, so a wake-up comes within ~1-20 ms of a commit while
  an idle consumer costs ~50 cheap polls a second, never a busy loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

__all__ = ["ChangeSignal", "wait_for_change"]

FIRST_POLL = 0.001
MAX_POLL = 0.02


class ChangeSignal:
    """In-process notification of appends; `seq` counts them so that a waiter can tell
    whether one happened since it last looked (no lost wake-ups).

    Each wait makes its own future on the running loop, so nothing here stays tied to
    one event loop: a broker can be used by one loop after another (scripts, tests).
    """

    def __init__(self) -> None:
        self.seq = 0
        self._waiters: set[asyncio.Future[None]] = set()

    def notify(self) -> None:
        self.seq += 1
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_result(None)
        self._waiters.clear()

    async def wait(self, seq: int, timeout: float) -> None:
        """Return when `seq` is stale (something was notified) or after `timeout`."""
        if self.seq != seq:
            return
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.add(waiter)
        try:
            async with asyncio.timeout(timeout):
                await waiter
        except TimeoutError:
            pass
        finally:
            self._waiters.discard(waiter)


async def wait_for_change(
    signal: ChangeSignal,
    seq: int,
    version: int,
    poll_version: Callable[[], Awaitable[int]],
    timeout: float,
) -> bool:
    """Wait until the log may hold something new; False when `timeout` ran out first.

    `seq` and `version` are the signal's count and the data version observed before
    the caller's last read, so any commit after that read ends the wait.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    delay = FIRST_POLL
    while (remaining := deadline - loop.time()) > 0:
        await signal.wait(seq, min(delay, remaining))
        if signal.seq != seq or await poll_version() != version:
            return True
        delay = min(delay * 2, MAX_POLL)
    return False
