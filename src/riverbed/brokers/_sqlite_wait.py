"""How a waiting `fetch` learns that the sqlite log changed.

Two sources, combined in `ChangeWatch`:
- in this process, the broker calls `notify()` right after each of its own appends
  commits, waking every waiter at once;
- other processes cannot signal us, so a waiter polls `PRAGMA data_version` on the
  read connection. The pragma compares the WAL-index header in shared memory: no disk
  read, about 5 microseconds (plus one hop to the reader thread). Polls start 1 ms
  apart and double up to 20 ms, so a wake-up comes within ~1-20 ms of a commit, and
  an idle consumer costs ~50 cheap polls a second, never a busy loop.

Where Linux inotify exists, a `WalNudge` tells the polling waiter that another process
wrote the WAL: it wakes everyone at once, and the backoff starts again at 1 ms (the
commit may become visible a moment after its last write). With nudges, polls are only
a safety net and back off to `MAX_POLL_NUDGED`, so an idle consumer costs almost
nothing.

Only one waiter of a broker polls at a time (the first to need it); the others sleep
until it, or an append, calls `notify()`. Ten idle consumers therefore cost what one
does. The version is a counter of the one read connection, so it only grows: a waiter
whose last read saw an older version than the newest one seen has missed nothing but
must read again.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from riverbed.brokers._sqlite_nudge import WalNudge

__all__ = ["ChangeWatch"]

FIRST_POLL = 0.001
MAX_POLL = 0.02
MAX_POLL_NUDGED = 0.1


class ChangeWatch:
    """Wake-ups for one broker's waiting fetches (used on its event loop only).

    `seq` counts notifications: a waiter takes it before reading, so a change between
    its read and its wait is never lost. Each wait makes its own future on the running
    loop, so nothing stays tied to one event loop (scripts and tests run several).
    """

    def __init__(self) -> None:
        self.nudge: WalNudge | None = None
        """Set by the broker once its database file is known (Linux only)."""
        self.seq = 0
        self._latest = -1
        """The newest `data_version` any read or poll saw."""
        self._waiters: set[asyncio.Future[None]] = set()
        self._polling = False

    def notify(self) -> None:
        """Something was committed: wake every waiter."""
        self.seq += 1
        self._wake_all()

    def saw(self, version: int) -> None:
        """Record the data version a read or poll observed; a newer one is a change."""
        if version > self._latest:
            changed = self._latest >= 0
            self._latest = version
            if changed:
                self.notify()

    async def wait(
        self, seq: int, version: int, poll: Callable[[], Awaitable[int]], timeout: float
    ) -> bool:
        """Wait until the log may hold something new; False when `timeout` ran out.

        `seq` and `version` are what the caller observed before its last read.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        delay = FIRST_POLL
        cap = MAX_POLL if self.nudge is None else MAX_POLL_NUDGED
        polling = False
        try:
            while (remaining := deadline - loop.time()) > 0:
                if self.seq != seq or version < self._latest:
                    return True
                if not self._polling:
                    self._polling = polling = True
                    self._listen(loop)
                if not polling:  # another waiter polls; it notifies or hands over
                    await self._sleep(seq, remaining)
                    continue
                await self._sleep(seq, min(delay, remaining))
                if self.seq == seq:
                    self.saw(await poll())
                delay = min(delay * 2, cap)
            return self.seq != seq or version < self._latest
        finally:
            if polling:
                # Hand over: the sleeping waiters wake, one of them takes up polling.
                self._polling = False
                self._unlisten(loop)
                self._wake_all()

    def _listen(self, loop: asyncio.AbstractEventLoop) -> None:
        if self.nudge is not None and self.nudge.fd >= 0:
            loop.add_reader(self.nudge.fd, self._on_nudge)

    def _unlisten(self, loop: asyncio.AbstractEventLoop) -> None:
        if self.nudge is not None and self.nudge.fd >= 0:
            loop.remove_reader(self.nudge.fd)

    def _on_nudge(self) -> None:
        if self.nudge is not None and self.nudge.drain():
            self.notify()

    def _wake_all(self) -> None:
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_result(None)
        self._waiters.clear()

    async def _sleep(self, seq: int, timeout: float) -> None:
        """Until `notify()` (if `seq` is still current) or `timeout` seconds."""
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
