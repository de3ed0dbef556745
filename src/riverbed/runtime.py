"""Running apps: one process until a signal, or a supervisor of N worker processes.

Worker processes are plain `riverbed run module:app` children; they split the
partitions through the consumer-group protocol like members on different machines
would. The supervisor forwards SIGTERM/SIGINT, waits for a clean drain, and restarts a
worker that dies unexpectedly (with backoff), so a crash costs a rebalance, not a stop.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from typing import TYPE_CHECKING

from riverbed.errors import ConfigError

if TYPE_CHECKING:
    from riverbed.app import App

__all__ = ["load_app", "run_app", "supervise"]

log = logging.getLogger("riverbed.runtime")


def load_app(target: str) -> App:
    """Import `module:attribute` (the current directory is importable) and return the App."""
    from riverbed.app import App

    module_name, _, attr = target.partition(":")
    if not module_name or not attr:
        raise ConfigError(f"app target {target!r} must look like 'package.module:app'")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        raise ConfigError(f"cannot import {module_name!r} for {target!r}: {exc}") from exc
    app = getattr(module, attr, None)
    if not isinstance(app, App):
        raise ConfigError(f"{target!r} is not a riverbed App (found {type(app).__name__})")
    return app


async def _serve(app: App, early_stop: threading.Event) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    if early_stop.is_set():
        stop.set()  # the signal came before the loop could take it
    try:
        async with app:
            log.info("app %s running on %s", app.name, app.broker.url)
            await stop.wait()
            log.info("app %s stopping: draining in-flight handlers", app.name)
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)


def run_app(app: App) -> None:
    """Run `app` in this process until SIGINT/SIGTERM; returns after a clean drain.

    A signal that arrives while the loop is still starting is remembered, not fatal:
    the app starts, then stops cleanly at once.
    """
    early_stop = threading.Event()
    previous = {
        s: signal.signal(s, lambda *_: early_stop.set()) for s in (signal.SIGINT, signal.SIGTERM)
    }
    try:
        asyncio.run(_serve(app, early_stop))
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def supervise(
    target: str,
    workers: int,
    *,
    extra_args: list[str] | None = None,
    stop_grace: float = 30.0,
) -> int:
    """Run `workers` child processes of `riverbed run target`; returns the exit code.

    A worker that dies is restarted with backoff. One that dies within
    `_QUICK_DEATH` seconds of starting, `_MAX_QUICK_DEATHS` times in a row, is failing
    at start-up (bad config, missing extra): the supervisor stops everything and exits 1
    instead of restarting it forever. After SIGTERM/SIGINT, workers still running
    `stop_grace` seconds later are killed, and the exit code is 1.
    """
    args = [sys.executable, "-m", "riverbed", "run", target, *(extra_args or [])]
    pool = _WorkerPool(args, workers, stop_grace)
    old = {s: signal.signal(s, pool.on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        return pool.run()
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)


_QUICK_DEATH = 5.0
_MAX_QUICK_DEATHS = 3


class _WorkerPool:
    def __init__(self, args: list[str], workers: int, stop_grace: float) -> None:
        self.args = args
        self.stop_grace = stop_grace
        self.stop_signal = signal.SIGTERM
        self.stop_deadline = float("inf")
        self.procs: dict[int, subprocess.Popen[bytes]] = {}
        self.started: dict[int, float] = {}
        self.quick_deaths = dict.fromkeys(range(workers), 0)
        self.stopping = False
        self.failed = False

    def on_signal(self, signum: int, _frame: object) -> None:
        if not self.stopping:
            self.stop_signal = signal.Signals(signum)
            self.stop_deadline = time.monotonic() + self.stop_grace
        self.stopping = True
        for p in self.procs.values():
            with contextlib.suppress(ProcessLookupError):
                p.send_signal(signum)

    def spawn(self, i: int) -> None:
        proc = subprocess.Popen(self.args)
        self.procs[i] = proc
        self.started[i] = time.monotonic()
        if self.stopping:  # the signal came while Popen ran: this worker missed it
            proc.send_signal(self.stop_signal)

    def run(self) -> int:
        for i in self.quick_deaths:
            self.spawn(i)
        while self.procs:
            for i, p in list(self.procs.items()):
                code = p.poll()
                if code is not None:
                    self.reap(i, code)
            if time.monotonic() > self.stop_deadline:
                for i, p in self.procs.items():
                    log.error(
                        "worker %d still runs %.0fs after the stop; killing it", i, self.stop_grace
                    )
                    p.kill()
                self.failed = True
                self.stop_deadline = float("inf")
            time.sleep(0.1)
        return 1 if self.failed else 0

    def reap(self, i: int, code: int) -> None:
        del self.procs[i]
        if self.stopping:
            if code not in (0, -self.stop_signal):  # the worker's drain failed
                log.error("worker %d exited with %d while stopping", i, code)
                self.failed = True
            return
        if code == 0:
            return
        lived = time.monotonic() - self.started[i]
        self.quick_deaths[i] = self.quick_deaths[i] + 1 if lived < _QUICK_DEATH else 0
        if self.quick_deaths[i] >= _MAX_QUICK_DEATHS:
            log.error("worker %d keeps failing at start-up (exit %d); stopping", i, code)
            self.failed = True
            self.on_signal(signal.SIGTERM, None)
            return
        delay = min(10.0, 0.5 * 2 ** self.quick_deaths[i])
        log.warning("worker %d exited with %d; restarting in %.1fs", i, code, delay)
        time.sleep(delay)
        if not self.stopping:
            self.spawn(i)
