"""The App: an explicit registry of topics and consumers, and their lifespan.

Nothing global: every topic, consumer and connection hangs off an `App` instance, and
tests make their own. `async with app:` starts the consumers in the background of the
running loop and stops them cleanly on exit; `app.run()` blocks until a signal.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, TypeVar, overload

from riverbed._threads import DaemonThreadPool
from riverbed.brokers import broker_from_url
from riverbed.brokers.base import Broker, TopicSpec
from riverbed.codecs import CodecName, make_codec
from riverbed.consumers import ConsumerSpec, StartFrom
from riverbed.errors import (
    ConfigError,
    Retry,
    UnknownTopic,
    UnsupportedCapability,
)
from riverbed.member import ConsumerOptions, GroupMember
from riverbed.portal import Portal
from riverbed.processing.checkpoint import Checkpoints
from riverbed.processing.clock import Clock, SystemClock
from riverbed.processing.registry import Processors
from riverbed.processing.runner import flow_members
from riverbed.processing.table import Table
from riverbed.processing.topology import Flow
from riverbed.producer import Producer
from riverbed.stats import ConsumerStatsSnapshot
from riverbed.topics import DLQ_SUFFIX, KeyFunc, Position, Topic, validate_topic_name

__all__ = ["App"]

log = logging.getLogger("riverbed")

T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])

_APP_NAME = re.compile(r"[A-Za-z0-9._-]{1,100}")
DEFAULT_MAX_RECORD_BYTES = 1 << 20


class App(Processors):
    """An event-driven application: topics, consumers, and the broker they run on.

    `broker` is a URL (`sqlite:///path.db`, `memory://`, ...) or a `Broker` instance;
    the environment variable `RIVERBED_BROKER`, when set, overrides the URL. The default
    is an embedded log at `./.riverbed/<name>.db`. `clock` is the flows' wall clock;
    `state_dir` holds a local copy of tables' state when the broker is a server.
    """

    def __init__(
        self,
        name: str,
        *,
        broker: str | Broker | None = None,
        codec: CodecName = "json",
        max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES,
        consumer_options: ConsumerOptions | None = None,
        maintenance_interval: float = 5.0,
        clock: Clock | None = None,
        state_dir: str | os.PathLike[str] = ".riverbed/state",
    ) -> None:
        if not _APP_NAME.fullmatch(name):
            raise ConfigError(
                f"invalid app name {name!r}: use 1 to 100 characters from A-Z a-z 0-9 . _ -"
            )
        if max_record_bytes < 1:
            raise ConfigError("max_record_bytes must be a positive number of bytes")
        self.name = name
        self._broker_arg = broker
        self.codec: CodecName = codec
        self.consumer_options = consumer_options or ConsumerOptions()
        self.maintenance_interval = maintenance_interval
        self.producer = Producer(self, max_record_bytes=max_record_bytes)
        self.portal = Portal(name)
        self._topics: dict[str, Topic[Any]] = {}
        self._consumers: list[ConsumerSpec] = []
        self._broker: Broker | None = None
        self._connect_lock: asyncio.Lock | None = None
        self._lock_loop: asyncio.AbstractEventLoop | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._members: list[GroupMember] = []
        self._runner: asyncio.Task[None] | None = None
        self._pool: DaemonThreadPool | None = None
        self.clock: Clock = clock or SystemClock()
        """The flows' wall clock (windows of quiet partitions close on it)."""
        self.state_dir = Path(state_dir)
        """Where tables keep a local copy of their state on server backends."""
        self.checkpoints: Checkpoints | None = None
        self._flows: list[Flow] = []
        self._tables: dict[str, Table[Any]] = {}

    def __repr__(self) -> str:
        return f"App({self.name!r})"

    # -- declaring --------------------------------------------------------------------
    @overload
    def topic(
        self,
        name: str,
        schema: type[T],
        *,
        partitions: int = 1,
        key: KeyFunc | None = None,
        retention: float | None = None,
        retention_bytes: int | None = None,
        compact: bool = False,
        codec: CodecName | None = None,
    ) -> Topic[T]: ...
    @overload
    def topic(
        self,
        name: str,
        schema: None = None,
        *,
        partitions: int = 1,
        key: KeyFunc | None = None,
        retention: float | None = None,
        retention_bytes: int | None = None,
        compact: bool = False,
        codec: CodecName | None = None,
    ) -> Topic[bytes]: ...

    def topic(
        self,
        name: str,
        schema: Any = None,
        *,
        partitions: int = 1,
        key: KeyFunc | None = None,
        retention: float | None = None,
        retention_bytes: int | None = None,
        compact: bool = False,
        codec: CodecName | None = None,
    ) -> Topic[Any]:
        """Declare a topic (created on the broker at start-up) and return its handle.

        `schema` is an Event subclass, a pydantic model, a dataclass, `dict` or `bytes`
        (the default). `key` derives a record's key from its event. `retention` is in
        seconds, `retention_bytes` per partition.
        """
        validate_topic_name(name)
        if partitions < 1:
            raise ConfigError(f"topic {name!r}: partitions must be at least 1, got {partitions}")
        spec = TopicSpec(
            name,
            partitions,
            retention_ms=None if retention is None else int(retention * 1000),
            retention_bytes=retention_bytes,
            compact=compact,
        )
        existing = self._topics.get(name)
        if existing is not None and not existing.internal:
            raise ConfigError(f"topic {name!r} is declared twice on app {self.name!r}")
        topic: Topic[Any] = Topic(self, spec, make_codec(schema or bytes, codec or self.codec), key)
        self._topics[name] = topic
        return topic

    def get_topic(self, name: str) -> Topic[Any]:
        """The handle of a declared topic; `UnknownTopic` names the declared ones."""
        try:
            return self._topics[name]
        except KeyError:
            known = ", ".join(sorted(self._topics)) or "none"
            raise UnknownTopic(
                f"topic {name!r} is not declared on app {self.name!r} (declared: {known})"
            ) from None

    @property
    def topics(self) -> Mapping[str, Topic[Any]]:
        return dict(self._topics)

    @property
    def consumers(self) -> list[ConsumerSpec]:
        return list(self._consumers)

    def dlq_topic(self, topic: Topic[Any]) -> Topic[Any]:
        """The dead-letter topic of `topic`: `<name>.dlq`, same partitions, raw bytes."""
        name = topic.name + DLQ_SUFFIX
        existing = self._topics.get(name)
        if existing is not None:
            return existing
        spec = TopicSpec(name, topic.partitions)
        dlq: Topic[Any] = Topic(self, spec, make_codec(bytes), internal=True)
        self._topics[name] = dlq
        return dlq

    def consumer(
        self,
        topic: Topic[Any] | str,
        *,
        group: str | None = None,
        concurrency: int = 1,
        retry: Retry | None = None,
        dead_letter: bool = True,
        start: StartFrom = "earliest",
        tables: Sequence[Table[Any]] = (),
    ) -> Callable[[F], F]:
        """Register a handler for a topic; returns the function unchanged.

        The handler takes `(event)` or `(event, ctx)`; annotate the first parameter as
        `Record[...]` to get the whole record. Sync handlers run in a thread pool.
        `group` defaults to `<app>.<function name>`. `start` says where a group with no
        committed offset begins. `tables` are the tables the handler writes: their
        changes commit with the handler's offsets (one transaction on the sqlite log).
        """
        t = self.get_topic(topic) if isinstance(topic, str) else topic
        if concurrency < 1:
            raise ConfigError(f"concurrency must be at least 1, got {concurrency}")
        if start not in ("earliest", "latest"):
            raise ConfigError(f"start must be 'earliest' or 'latest', got {start!r}")
        if tables and concurrency != 1:
            raise ConfigError(
                "a handler that writes tables runs with concurrency=1: its writes must "
                "apply in partition order"
            )

        def register(func: F) -> F:
            is_async, wants_record, wants_ctx = ConsumerSpec.inspect_handler(func)
            name = getattr(func, "__name__", None)
            if group is None and name is None:
                raise ConfigError(
                    f"handler {func!r} has no __name__ to derive its group from; "
                    "pass group=... to app.consumer"
                )
            spec = ConsumerSpec(
                func,
                t,
                group or f"{self.name}.{name}",
                concurrency,
                retry or Retry(),
                dead_letter,
                start,
                is_async,
                wants_record,
                wants_ctx,
                tuple(tables),
            )
            for table in tables:
                table.bind(spec.group, t.partitions)
            self._consumers.append(spec)
            if dead_letter:
                self.dlq_topic(t)
            return func

        return register

    # -- connecting -------------------------------------------------------------------
    @property
    def broker(self) -> Broker:
        """The connected broker; `ConfigError` before `connect()`/start."""
        if self._broker is None:
            raise ConfigError(f"app {self.name!r} is not connected; use `async with app:`")
        return self._broker

    def broker_url(self) -> str:
        """The URL the app connects to: env RIVERBED_BROKER, the argument, or the default."""
        env = os.environ.get("RIVERBED_BROKER")
        if env:
            return env
        if isinstance(self._broker_arg, str):
            return self._broker_arg
        if self._broker_arg is not None:
            return self._broker_arg.url
        return f"sqlite:///.riverbed/{self.name}.db"

    async def connect(self) -> Broker:
        """Open the broker and create the declared topics (idempotent)."""
        if self._broker is not None:
            self._check_loop()
            return self._broker
        if self._connect_lock is None or self._lock_loop is not asyncio.get_running_loop():
            # A lock belongs to one loop; the app may be reconnected from another.
            self._connect_lock = asyncio.Lock()
            self._lock_loop = asyncio.get_running_loop()
        async with self._connect_lock:
            if self._broker is None:
                broker = self._make_broker()
                await broker.start()
                try:
                    await self._create_topics(broker)
                except BaseException:
                    await broker.aclose()
                    raise
                self._loop = asyncio.get_running_loop()
                self._broker = broker
        return self._broker

    def _make_broker(self) -> Broker:
        env = os.environ.get("RIVERBED_BROKER")
        if isinstance(self._broker_arg, str) or self._broker_arg is None or env:
            return broker_from_url(self.broker_url())
        return self._broker_arg

    def _check_loop(self) -> None:
        if self._loop is not None and self._loop is not asyncio.get_running_loop():
            raise ConfigError(
                f"app {self.name!r} is connected on another event loop; use its sync "
                "methods (publish_sync) from other threads, or one loop throughout"
            )

    async def _create_topics(self, broker: Broker) -> None:
        caps = broker.capabilities
        for table in self._tables.values():
            if table.partitions:  # bound to its writer: the changelog is partitioned alike
                spec = TopicSpec(table.changelog, table.partitions, compact=caps.compaction)
                await broker.create_topic(spec)
        for t in self._topics.values():
            if t.spec.compact and not caps.compaction:
                raise UnsupportedCapability(
                    f"topic {t.name!r} asks for compaction, which the {broker.url} backend "
                    "cannot provide; drop compact=True or use a backend that compacts"
                )
            if (t.spec.retention_ms or t.spec.retention_bytes) and not caps.retention:
                raise UnsupportedCapability(
                    f"topic {t.name!r} asks for retention, which {broker.url} cannot enforce"
                )
            await broker.create_topic(t.spec)

    # -- running ----------------------------------------------------------------------
    async def start(self) -> None:
        """Connect and start every consumer in the background of the running loop."""
        if self._runner is not None:
            return
        broker = await self.connect()
        self._pool = DaemonThreadPool(
            max([c.concurrency for c in self._consumers] + [4]), f"riverbed-{self.name}"
        )
        if self._tables and broker.capabilities.multi_machine:
            # The changelog there is remote and uncompacted: keep a local copy of the
            # state so a restart replays only its tail (see processing/checkpoint.py).
            self.checkpoints = Checkpoints(self.state_dir / f"{self.name}.db")
        self._members = [
            GroupMember(self, group, specs, broker, self.consumer_options, self._pool)
            for group, specs in self._groups().items()
        ]
        self._members += flow_members(self, self._subtopologies(), broker, self._pool)
        self.portal.lend(asyncio.get_running_loop())
        self._runner = asyncio.create_task(self._run_members(), name=f"riverbed-{self.name}")

    def _groups(self) -> dict[str, list[ConsumerSpec]]:
        groups: dict[str, list[ConsumerSpec]] = {}
        for spec in self._consumers:
            groups.setdefault(spec.group, []).append(spec)
        return groups

    async def _run_members(self) -> None:
        done = asyncio.Event()
        async with asyncio.TaskGroup() as tg:
            maintenance = tg.create_task(self._maintain_loop(done))
            members = [tg.create_task(m.run()) for m in self._members]
            if members:
                await asyncio.wait(members)
            else:
                await asyncio.Event().wait()  # only housekeeping: run until cancelled
            done.set()  # in case the cancel is lost in a client's wait_for (see member.py)
            maintenance.cancel()

    async def _maintain_loop(self, done: asyncio.Event) -> None:
        while not done.is_set():
            await asyncio.sleep(self.maintenance_interval)
            try:
                await self.broker.maintain()
            except Exception:
                log.exception("app %s: broker maintenance failed; will try again", self.name)

    async def stop(self) -> None:
        """Stop consumers (drain, commit, leave the groups) and close the broker."""
        runner, self._runner = self._runner, None
        for m in self._members:
            m.stop()
        if runner is not None:
            if not self._members:
                runner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await runner
        self.portal.lend(None)
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None
        if self.checkpoints is not None:
            self.checkpoints.close()
            self.checkpoints = None
        await self.aclose_broker()

    async def aclose_broker(self) -> None:
        broker, self._broker = self._broker, None
        self._loop = None
        if broker is not None:
            await broker.aclose()

    async def __aenter__(self) -> App:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    def run(self) -> None:
        """Run every consumer until SIGINT/SIGTERM, then drain and exit."""
        from riverbed.runtime import run_app

        run_app(self)

    def close_sync(self) -> None:
        """Close what the sync methods opened (the portal's loop and broker)."""
        self.portal.run_and_close(self.aclose_broker)

    # -- producing and introspection ----------------------------------------------------
    async def publish(
        self,
        topic: Topic[T] | str,
        event: T,
        *,
        key: str | bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Position:
        """Publish one event to a topic given by handle or name."""
        t = self.get_topic(topic) if isinstance(topic, str) else topic
        return await t.publish(event, key=key, headers=headers)

    def statistics(self) -> list[ConsumerStatsSnapshot]:
        """A frozen snapshot of every running group member's counters."""
        return [m.stats.snapshot() for m in self._members]

    @property
    def members(self) -> list[GroupMember]:
        return list(self._members)

    def status(self) -> Literal["stopped", "connected", "running"]:
        if self._runner is not None:
            return "running"
        return "connected" if self._broker is not None else "stopped"
