"""The sync face: run the app's coroutines from plain threads (scripts, Flask, Django).

If the app already runs on an event loop in another thread, calls are handed to that
loop. Otherwise the portal starts one daemon thread with its own loop on first use and
keeps it until `close()`, so each call costs one thread hop, not a new loop.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from typing import TypeVar

from riverbed.errors import ClosedError, ConfigError

__all__ = ["Portal"]

T = TypeVar("T")


class Portal:
    """Runs coroutines for synchronous callers on an event loop it owns or borrows."""

    def __init__(self, name: str) -> None:
        self._name = name
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._borrowed: asyncio.AbstractEventLoop | None = None
        self._closed = False

    def lend(self, loop: asyncio.AbstractEventLoop | None) -> None:
        """Use `loop` (where the app runs) for calls from other threads; None to stop."""
        self._borrowed = loop

    def call(self, make: Callable[[], Awaitable[T]]) -> T:
        """Run `make()` on the loop and wait for its result in this thread."""
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            pass
        else:
            raise ConfigError(
                "a *_sync method was called from inside an event loop; "
                "use the async method (await topic.publish(...)) there"
            )
        loop = self._borrowed or self._own_loop()

        async def run() -> T:
            return await make()

        return asyncio.run_coroutine_threadsafe(run(), loop).result()

    def _own_loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._closed:
                raise ClosedError(f"the sync portal of app {self._name!r} is closed")
            if self._loop is None:
                loop = asyncio.new_event_loop()
                thread = threading.Thread(
                    target=loop.run_forever, name=f"riverbed-{self._name}-sync", daemon=True
                )
                thread.start()
                self._loop, self._thread = loop, thread
            return self._loop

    def run_and_close(self, make: Callable[[], Awaitable[None]]) -> None:
        """Run a final coroutine (closing the app) on the owned loop, then stop it."""
        with self._lock:
            loop, thread = self._loop, self._thread
            self._loop = self._thread = None
            self._closed = True
        if loop is None or thread is None:
            return

        async def run() -> None:
            await make()

        try:
            asyncio.run_coroutine_threadsafe(run(), loop).result()
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join()
            loop.close()
