"""`nats://host:port`: riverbed on NATS JetStream, shared by processes on many machines.

How the protocol maps onto JetStream (details in the helper modules and in
docs/backends/nats.md):

- a topic is a stream `RB_<topic>` with one subject per partition, `rb.<topic>.<p>`;
  the spec lives in the stream's description (`_nats_topics`);
- a record is a message in CloudEvents binary mode (`ce-*` headers, the value as
  payload), de-duplicated by `Nats-Msg-Id` = record id (`_nats_codec`); its offset is
  its stream sequence minus one, so offsets increase per partition but are not dense;
- `append` publishes a batch in one pipelined burst and awaits every ack, re-publishing
  unacknowledged records (safe: same `Nats-Msg-Id`) until `append_timeout`
  (`_nats_append`);
- `fetch` reads through cached ephemeral pull consumers, one per partition, reused
  while the caller continues where the last fetch ended (`_nats_fetch`);
- consumer groups (membership, cooperative rebalancing, fenced commits) live in the
  key-value bucket `RB_GROUPS`, updated with compare-and-set (`_nats_groups`).

URL: `nats://[user:password@]host:port[,host:port...][?timeout=5&append_timeout=30
&replicas=1]`. `timeout` bounds each request to the server, `append_timeout` how long an
append keeps retrying through a reconnect before it raises `BrokerUnavailable`,
`replicas` is the replication factor of streams and of the group bucket (on a cluster).
The client reconnects forever, with nats-py's backoff, while the server is away.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import msgspec

# Without nats-py this import fails and `broker_from_url` names the extra to install.
import nats
from nats.aio.client import Client

from riverbed.brokers._nats_api import JsApi, translated
from riverbed.brokers._nats_append import Publisher
from riverbed.brokers._nats_codec import HeaderCodec
from riverbed.brokers._nats_fetch import Fetcher
from riverbed.brokers._nats_groups import GroupStore
from riverbed.brokers._nats_topics import TopicAdmin
from riverbed.brokers.base import (
    Assignment,
    Capabilities,
    GroupInfo,
    TopicInfo,
    TopicPartition,
    TopicSpec,
)
from riverbed.errors import (
    BrokerURLError,
    ClosedError,
    ConfigError,
    UnknownTopic,
    UnsupportedCapability,
)
from riverbed.events import Record

__all__ = ["NatsBroker", "NatsConfig"]


class NatsConfig(msgspec.Struct, frozen=True):
    """Connection settings, from the URL's query or the constructor's keywords."""

    servers: list[str]
    timeout: float = 5.0
    """Seconds a request to the server may take before `BrokerUnavailable`."""
    append_timeout: float = 30.0
    """Seconds an append retries unacknowledged records (across reconnects)."""
    replicas: int = 1
    """Replication factor of the streams and the group bucket."""


def parse_url(url: str, **options: Any) -> NatsConfig:
    parts = urlsplit(url)
    if parts.scheme != "nats" or not parts.netloc:
        raise BrokerURLError(f"{url!r} is not a NATS URL; use nats://host:4222")
    creds, _, hosts = parts.netloc.rpartition("@")
    prefix = f"{creds}@" if creds else ""
    servers = [f"nats://{prefix}{h}" for h in hosts.split(",") if h]
    query = dict(parse_qsl(parts.query))
    unknown = set(query) - {"timeout", "append_timeout", "replicas"}
    if unknown:
        raise BrokerURLError(
            f"unknown option(s) {sorted(unknown)} in {url!r}; "
            "known: timeout, append_timeout, replicas"
        )
    merged: dict[str, Any] = {**query, **options}
    try:
        return msgspec.convert({"servers": servers, **merged}, NatsConfig, strict=False)
    except msgspec.ValidationError as exc:
        raise BrokerURLError(f"bad option in {url!r}: {exc}") from exc


class NatsBroker:
    """The NATS JetStream `Broker` (see the module docstring for the mapping).

    `clock` returns milliseconds (injectable for tests); it times group sessions.
    """

    capabilities = Capabilities(
        transactions=False,
        compaction=False,
        retention=True,
        fetch_by_time=True,
        multi_process=True,
        multi_machine=True,
        dense_offsets=False,
    )

    def __init__(
        self,
        url: str,
        *,
        timeout: float | None = None,
        append_timeout: float | None = None,
        replicas: int | None = None,
        clock: Callable[[], int] | None = None,
    ) -> None:
        self.url = url
        given = {"timeout": timeout, "append_timeout": append_timeout, "replicas": replicas}
        self._config = parse_url(url, **{k: v for k, v in given.items() if v is not None})
        self._clock = clock or (lambda: time.time_ns() // 1_000_000)
        self._nc: Client | None = None
        self._codec = HeaderCodec()
        self._topics: TopicAdmin | None = None
        self._publisher: Publisher | None = None
        self._fetcher: Fetcher | None = None
        self._groups: GroupStore | None = None
        self._lock = asyncio.Lock()
        self._closed = False

    # -- lifecycle --------------------------------------------------------------------
    async def start(self) -> None:
        self._check_open()
        async with self._lock:
            if self._nc is not None:
                return
            cfg = self._config
            with translated(f"connect to {', '.join(cfg.servers)}"):
                nc = await nats.connect(
                    cfg.servers,
                    name="riverbed",
                    connect_timeout=max(1, int(cfg.timeout)),
                    allow_reconnect=True,
                    max_reconnect_attempts=-1,
                    reconnect_time_wait=0.5,
                    reconnected_cb=self._on_reconnect,
                    error_cb=self._on_error,
                )
            api = JsApi(nc, cfg.timeout)
            self._topics = TopicAdmin(nc, api, self._codec, cfg.replicas)
            self._publisher = Publisher(nc, self._codec, min(cfg.timeout, 2.0), cfg.append_timeout)
            self._fetcher = Fetcher(nc, api, self._codec, self._topics.locate)
            self._groups = GroupStore(nc.jetstream(timeout=cfg.timeout), self._counts,
                                      self._clock, cfg.replicas)  # fmt: skip
            await self._publisher.start()
            await self._fetcher.start()
            self._nc = nc

    async def _on_reconnect(self) -> None:
        if self._fetcher is not None:
            self._fetcher.reset()

    async def _on_error(self, exc: Exception) -> None:
        """Connection errors surface through the calls that hit them; nothing to do here."""

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        async with self._lock:
            nc, self._nc = self._nc, None
            if nc is None:
                return
            try:
                if self._fetcher is not None:
                    await self._fetcher.stop()
                if self._publisher is not None:
                    await self._publisher.stop()
            finally:
                await nc.close()

    async def maintain(self) -> None:
        topics, groups = await self._parts()
        await groups.expire_all()
        now = self._clock()
        for topic in await topics.with_retention():
            await topics.enforce_retention(topic, now)

    # -- topics -----------------------------------------------------------------------
    async def create_topic(self, spec: TopicSpec) -> TopicInfo:
        topics, _ = await self._parts()
        return await topics.create(spec)

    async def describe_topic(self, name: str) -> TopicInfo:
        topics, _ = await self._parts()
        return await topics.describe(name)

    async def list_topics(self) -> list[TopicInfo]:
        topics, _ = await self._parts()
        return await topics.list_all()

    # -- produce / fetch --------------------------------------------------------------
    async def append(self, topic: str, records: Sequence[Record[Any]]) -> list[int]:
        topics, _ = await self._parts()
        assert self._publisher is not None
        meta = await topics.meta(topic)
        n = len(meta.subjects)
        for r in records:
            if not 0 <= r.partition < n:
                raise ConfigError(
                    f"partition {r.partition} out of range for topic {topic!r} ({n} partitions)"
                )
        if not records:
            return []
        try:
            offsets = await self._publisher.append(meta.stream, meta.subjects, records)
        except UnknownTopic:
            topics.forget(topic)  # deleted (or recreated) behind our back
            raise
        for r, off in zip(records, offsets, strict=True):
            r.topic, r.offset = topic, off
        return offsets

    async def fetch(
        self,
        positions: Mapping[TopicPartition, int],
        *,
        max_records: int = 1000,
        timeout: float = 0.0,
    ) -> list[Record[Any]]:
        await self._parts()
        assert self._fetcher is not None
        return await self._fetcher.fetch(dict(positions), max(1, max_records), timeout)

    async def offset_for_time(self, tp: TopicPartition, timestamp_ms: int) -> int:
        topics, _ = await self._parts()
        return await topics.offset_for_time(tp, timestamp_ms)

    # -- groups -----------------------------------------------------------------------
    async def join_group(
        self,
        group: str,
        member_id: str,
        topics: Sequence[str],
        *,
        session_timeout: float = 10.0,
        client: str = "",
    ) -> Assignment:
        _, groups = await self._parts()
        return await groups.join(
            group, member_id, list(topics), int(session_timeout * 1000), client
        )

    async def heartbeat(self, group: str, member_id: str) -> Assignment:
        _, groups = await self._parts()
        return await groups.heartbeat(group, member_id)

    async def release(
        self, group: str, member_id: str, partitions: Sequence[TopicPartition]
    ) -> None:
        _, groups = await self._parts()
        await groups.release(group, member_id, list(partitions))

    async def leave_group(self, group: str, member_id: str) -> None:
        _, groups = await self._parts()
        await groups.leave(group, member_id)

    async def commit(
        self, group: str, member_id: str, offsets: Mapping[TopicPartition, int]
    ) -> None:
        _, groups = await self._parts()
        await groups.commit(group, member_id, dict(offsets))

    async def committed(self, group: str, topic: str) -> dict[int, int]:
        _, groups = await self._parts()
        return await groups.committed(group, topic)

    async def set_offsets(self, group: str, offsets: Mapping[TopicPartition, int]) -> None:
        _, groups = await self._parts()
        await groups.set_offsets(group, dict(offsets))

    async def list_groups(self) -> list[str]:
        _, groups = await self._parts()
        return await groups.list_all()

    async def describe_group(self, group: str) -> GroupInfo:
        _, groups = await self._parts()
        return await groups.describe(group)

    async def append_and_commit(
        self,
        appends: Sequence[tuple[str, Sequence[Record[Any]]]],
        group: str,
        member_id: str,
        offsets: Mapping[TopicPartition, int],
    ) -> list[list[int]]:
        self._check_open()
        raise UnsupportedCapability(
            "NATS JetStream (2.9) has no transaction spanning publishes and a group's "
            "commit, so append_and_commit (exactly-once processing) is not available on "
            "nats://; use at-least-once processing, or the sqlite or kafka backend"
        )

    # -- internals --------------------------------------------------------------------
    def _check_open(self) -> None:
        if self._closed:
            raise ClosedError(f"the NATS broker for {self.url!r} is closed")

    async def _parts(self) -> tuple[TopicAdmin, GroupStore]:
        # Connected on first use too, as the memory broker needs no start().
        if self._nc is None:
            await self.start()
        self._check_open()
        assert self._topics is not None
        assert self._groups is not None
        return self._topics, self._groups

    async def _counts(self, topics: Sequence[str]) -> dict[str, int]:
        assert self._topics is not None
        metas = await asyncio.gather(*(self._topics.meta(t) for t in topics))
        return {t: len(m.subjects) for t, m in zip(topics, metas, strict=True)}
