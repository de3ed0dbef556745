"""A thread pool of daemon threads for sync handlers.

`concurrent.futures.ThreadPoolExecutor` joins its threads at interpreter exit, so one
hung sync handler would keep a stopped worker process alive forever. The app already
bounds how long it waits for handlers at shutdown; after that the process must be free
to exit, which daemon threads allow.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from concurrent.futures import Executor, Future
from typing import Any, ParamSpec, TypeVar

__all__ = ["DaemonThreadPool"]

P = ParamSpec("P")
T = TypeVar("T")

_Job = tuple[Future[Any], Callable[[], Any]]


class DaemonThreadPool(Executor):
    """Runs callables on up to `max_workers` daemon threads, started on demand."""

    def __init__(self, max_workers: int, name: str) -> None:
        self._max = max_workers
        self._name = name
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._idle = 0
        self._lock = threading.Lock()
        self._shutdown = False

    def submit(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> Future[T]:
        fut: Future[T] = Future()
        with self._lock:
            if self._shutdown:
                raise RuntimeError("cannot submit to a pool that was shut down")
            self._jobs.put((fut, lambda: fn(*args, **kwargs)))
            if self._idle == 0 and len(self._threads) < self._max:
                self._start_thread()
            else:
                self._idle -= 1
        return fut

    def _start_thread(self) -> None:
        t = threading.Thread(
            target=self._work, name=f"{self._name}-{len(self._threads)}", daemon=True
        )
        self._threads.append(t)
        t.start()

    def _work(self) -> None:
        while (job := self._jobs.get()) is not None:
            fut, call = job
            if fut.set_running_or_notify_cancel():
                try:
                    fut.set_result(call())
                except BaseException as exc:
                    fut.set_exception(exc)
            with self._lock:
                self._idle += 1

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        with self._lock:
            self._shutdown = True
            threads = list(self._threads)
        if cancel_futures:
            self._cancel_queued()
        for _ in threads:
            self._jobs.put(None)
        if wait:
            for t in threads:
                t.join()

    def _cancel_queued(self) -> None:
        pending: list[_Job] = []
        while True:
            try:
                job = self._jobs.get_nowait()
            except queue.Empty:
                break
            if job is not None:
                pending.append(job)
        for fut, _ in pending:
            fut.cancel()
