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


async def _serve(app: App, ready: asyncio.Event | None = None) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        async with app:
            log.info("app %s running on %s", app.name, app.broker.url)
            if ready is not None:
                ready.set()
            await stop.wait()
            log.info("app %s stopping: draining in-flight handlers", app.name)
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)


def run_app(app: App) -> None:
    """Run `app` in this process until SIGINT/SIGTERM; returns after a clean drain."""
    asyncio.run(_serve(app))


def supervise(target: str, workers: int, *, extra_args: list[str] | None = None) -> int:
    """Run `workers` child processes of `riverbed run target`; returns the exit code."""
    args = [sys.executable, "-m", "riverbed", "run", target, *(extra_args or [])]
    procs: dict[int, subprocess.Popen[bytes]] = {}
    stopping = False

    def on_signal(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True
        for p in procs.values():
            with contextlib.suppress(ProcessLookupError):
                p.send_signal(signum)

    old = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        for i in range(workers):
            procs[i] = subprocess.Popen(args)
        restarts = dict.fromkeys(procs, 0)
        while procs:
            for i, p in list(procs.items()):
                code = p.poll()
                if code is None:
                    continue
                if stopping or code == 0:
                    del procs[i]
                    continue
                restarts[i] += 1
                delay = min(10.0, 0.5 * 2 ** min(restarts[i], 5))
                log.warning("worker %d exited with %d; restarting in %.1fs", i, code, delay)
                time.sleep(delay)
                if not stopping:
                    procs[i] = subprocess.Popen(args)
            time.sleep(0.1)
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)
    return 0
