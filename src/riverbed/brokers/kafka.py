"""`kafka://host:port[,host:port]`: riverbed on Apache Kafka (and Kafka-wire brokers).

A riverbed topic is a Kafka topic with the same partitions; a record is a CloudEvents
binary-mode message (see `_kafka_codec`); consumer groups are Kafka consumer groups
with the cooperative-sticky assignor (one librdkafka consumer per member, see
`_kafka_member`); commits are Kafka offset commits; `append_and_commit` is a Kafka
transaction with `send_offsets_to_transaction`, read back with read_committed.
Retention and compaction are topic configs that the server applies on its own
schedule, so `maintain` does nothing. The client is confluent-kafka (librdkafka): see
docs/backends/kafka.md for the measurement behind that choice and for what was
verified against which server.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from confluent_kafka import ConsumerGroupState
from confluent_kafka import TopicPartition as KafkaTP

from riverbed.brokers._kafka_admin import IDLE_STATES, Admin
from riverbed.brokers._kafka_config import KafkaConfig, parse_url
from riverbed.brokers._kafka_member import KafkaMember
from riverbed.brokers._kafka_producer import Appender, Transactor
from riverbed.brokers._kafka_reader import ReaderPool
from riverbed.brokers.base import (
    Assignment,
    Capabilities,
    GroupInfo,
    PartitionInfo,
    TopicInfo,
    TopicPartition,
    TopicSpec,
)
from riverbed.errors import ClosedError, ConfigError, FencedError, UnknownTopic
from riverbed.events import Record

__all__ = ["KafkaBroker", "KafkaConfig"]

T = TypeVar("T")


class KafkaBroker:
    """`Broker` on Kafka. Options are `KafkaConfig` fields, e.g. `session_timeout_ms`."""

    capabilities = Capabilities(
        transactions=True,
        compaction=True,
        retention=True,
        fetch_by_time=True,
        multi_process=True,
        multi_machine=True,
        # Transaction markers (and compaction) take offsets: they increase, with gaps.
        dense_offsets=False,
    )

    def __init__(self, url: str, **options: Any) -> None:
        self.url = url
        self.config = parse_url(url, options)
        self._started = False
        self._closed = False
        self._pool: ThreadPoolExecutor | None = None
        self._admin: Admin | None = None
        self._appender: Appender | None = None
        self._transactor: Transactor | None = None
        self._tx_lock = asyncio.Lock()
        self._readers = ReaderPool(self.config)
        self._parts: dict[str, int] = {}
        self._members: dict[tuple[str, str], KafkaMember] = {}

    # -- lifecycle --------------------------------------------------------------------
    async def start(self) -> None:
        self._check_open()
        if self._started:
            return
        # Our own threads: fetches and group waits block for seconds, and must not
        # starve the loop's default executor (or each other).
        self._pool = ThreadPoolExecutor(64, thread_name_prefix="riverbed-kafka")
        self._admin = await self._run(Admin, self.config)
        self._appender = await self._run(Appender, self.config)
        await self._run(self._admin.topic_names)  # fail fast if the server is not there
        self._started = True

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        if not self._started or self._pool is None:
            return
        timeout = self.config.request_timeout
        members, self._members = list(self._members.values()), {}
        await asyncio.gather(*(self._run(m.stop, timeout) for m in members))
        deadline = time.monotonic() + 2.0
        # Fetches run in threads and notice `_closed` within ~50 ms: poll their count.
        while self._readers.busy() and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.01)
        await self._run(self._readers.close)
        if self._appender is not None:
            await self._run(self._appender.close, timeout)
        if self._transactor is not None:
            await self._run(self._transactor.close, timeout)
        self._pool.shutdown(wait=False)

    async def maintain(self) -> None:
        """Nothing to do: Kafka applies retention, compaction and session expiry itself."""
        self._check_open()

    # -- topics -----------------------------------------------------------------------
    async def create_topic(self, spec: TopicSpec) -> TopicInfo:
        self._check_open()
        created = await self._run(self._adm().create, spec)
        self._parts[spec.name] = spec.partitions
        if created:
            # A new topic is empty: no need for the round trips of a describe (on
            # Tansu 0.5-1 s a topic, which an app with flows pays a dozen times).
            return TopicInfo(spec, [PartitionInfo(p, 0, 0) for p in range(spec.partitions)])
        return await self.describe_topic(spec.name)

    async def describe_topic(self, name: str) -> TopicInfo:
        self._check_open()
        admin = self._adm()
        n = await self._run(admin.partitions, name)
        self._parts[name] = n
        spec = await self._run(admin.spec, name, n)
        tps = [TopicPartition(name, p) for p in range(n)]
        starts = await self._run(admin.start_offsets, tps)
        ends = await self._end_offsets(tps)
        return TopicInfo(
            spec,
            [
                PartitionInfo(tp.partition, min(max(starts[tp], 0), ends[tp]), ends[tp])
                for tp in tps
            ],
        )

    async def list_topics(self) -> list[TopicInfo]:
        self._check_open()
        names = await self._run(self._adm().topic_names)
        return [await self.describe_topic(n) for n in names]

    # -- produce / fetch --------------------------------------------------------------
    async def append(self, topic: str, records: Sequence[Record[Any]]) -> list[int]:
        self._check_open()
        await self._check_partitions(topic, records)
        if not records:
            return []
        assert self._appender is not None
        return await self._appender.append(topic, records)

    async def fetch(
        self,
        positions: Mapping[TopicPartition, int],
        *,
        max_records: int = 1000,
        timeout: float = 0.0,
    ) -> list[Record[Any]]:
        self._check_open()
        for tp in positions:
            await self._check_partition(tp)
        if not positions:
            await asyncio.sleep(timeout)
            return []
        reader = self._readers.acquire(positions)
        try:
            return await self._run(
                reader.fetch, positions, max(1, max_records), timeout, lambda: self._closed
            )
        finally:
            if self._closed:
                await self._run(reader.close)
            self._readers.give_back(reader)

    async def offset_for_time(self, tp: TopicPartition, timestamp_ms: int) -> int:
        self._check_open()
        await self._check_partition(tp)
        found = (await self._run(self._adm().offsets_for_time, [tp], timestamp_ms))[tp]
        if found < 0:  # no record that late: the end offset
            return (await self._end_offsets([tp]))[tp]
        return found

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
        self._check_open()
        for t in topics:
            await self._partition_count(t)
        key = (group, member_id)
        old = self._members.get(key)
        if old is not None and not old.dead and old.topics == sorted(set(topics)):
            old.touch()
            return old.assignment()
        if old is not None:
            del self._members[key]
            await self._run(old.stop, self.config.request_timeout)
        member = await self._run(
            KafkaMember,
            self.config,
            group,
            member_id,
            topics,
            session_timeout=session_timeout,
            client=client,
        )
        self._members[key] = member
        member.start()
        try:
            return await self._run(member.wait_joined, self._join_timeout())
        except BaseException:
            self._members.pop(key, None)
            await self._run(member.stop, self.config.request_timeout)
            raise

    async def heartbeat(self, group: str, member_id: str) -> Assignment:
        self._check_open()
        member = self._member(group, member_id)
        member.touch()
        mark = member.rebalances()
        state = await self._run(self._adm().group_state, group)
        if state != ConsumerGroupState.STABLE:
            # A rebalance is under way: answer with its outcome, not the old assignment.
            await self._run(member.wait_rebalance, mark, self._rebalance_wait())
        return member.assignment()

    async def release(
        self, group: str, member_id: str, partitions: Sequence[TopicPartition]
    ) -> None:
        self._check_open()
        member = self._members.get((group, member_id))
        if member is not None and not member.dead:
            await self._run(member.release, list(partitions), self._rebalance_wait())

    async def leave_group(self, group: str, member_id: str) -> None:
        self._check_open()
        member = self._members.pop((group, member_id), None)
        if member is not None:
            await self._run(member.stop, self.config.request_timeout)

    async def commit(
        self, group: str, member_id: str, offsets: Mapping[TopicPartition, int]
    ) -> None:
        self._check_open()
        if not offsets:
            return
        member = self._owner(group, member_id, offsets)
        await self._run(member.commit, dict(offsets), self.config.request_timeout * 2)

    async def committed(self, group: str, topic: str) -> dict[int, int]:
        self._check_open()
        n = await self._partition_count(topic)
        tps = [TopicPartition(topic, p) for p in range(n)]
        found = await self._run(self._adm().committed, group, tps)
        return {tp.partition: off for tp, off in found.items() if tp.topic == topic}

    async def set_offsets(self, group: str, offsets: Mapping[TopicPartition, int]) -> None:
        self._check_open()
        for tp in offsets:
            await self._check_partition(tp)
        live = [m for (g, _), m in self._members.items() if g == group and not m.dead]
        state = await self._run(self._adm().group_state, group)
        if live or state not in IDLE_STATES:
            raise ConfigError(
                f"group {group!r} has live members (Kafka reports it {state.name}); stop its "
                "consumers before resetting offsets"
            )
        await self._run(self._adm().set_committed, group, dict(offsets))

    async def list_groups(self) -> list[str]:
        self._check_open()
        admin = self._adm()
        names = []
        for group, state in await self._run(admin.group_names):
            if state not in IDLE_STATES:
                names.append(group)
                continue
            offsets = await self._run(admin.committed, group)
            if offsets:  # an empty group is listed while it has committed offsets
                names.append(group)
        return sorted(names)

    async def describe_group(self, group: str) -> GroupInfo:
        self._check_open()
        admin = self._adm()
        members = await self._run(admin.group_members, group)
        committed = await self._run(admin.committed, group)
        local = {mid: m for (g, mid), m in self._members.items() if g == group and not m.dead}
        for i, info in enumerate(members):
            if info.member_id in local:  # Kafka reports assignments, we know subscriptions
                members[i] = type(info)(
                    info.member_id,
                    info.client,
                    local[info.member_id].topics,
                    info.partitions,
                    info.last_heartbeat_ms,
                )
        # Kafka's DescribeGroups has no generation: the one our own members are in.
        generation = max((m.generation for m in local.values()), default=0)
        return GroupInfo(group, generation, members, committed)

    # -- transactions -------------------------------------------------------------------
    async def append_and_commit(
        self,
        appends: Sequence[tuple[str, Sequence[Record[Any]]]],
        group: str,
        member_id: str,
        offsets: Mapping[TopicPartition, int],
    ) -> list[list[int]]:
        self._check_open()
        member = self._owner(group, member_id, offsets)
        for topic, records in appends:
            await self._check_partitions(topic, records)
        request = [KafkaTP(tp.topic, tp.partition, off) for tp, off in offsets.items()]
        async with self._tx_lock:  # one open transaction per producer
            if self._transactor is None:
                self._transactor = await self._run(Transactor, self.config)
            transactor = self._transactor
            # group_metadata waits for the member's poll thread: never on the event loop.
            return await self._run(
                lambda: transactor.run(appends, request, member.group_metadata())
            )

    # -- internals --------------------------------------------------------------------
    def _check_open(self) -> None:
        if self._closed:
            raise ClosedError(f"the Kafka broker {self.url!r} is closed")

    def _adm(self) -> Admin:
        if self._admin is None:
            raise ClosedError("the Kafka broker was not started: await broker.start() first")
        return self._admin

    async def _run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        loop = asyncio.get_running_loop()
        if kwargs:
            return await loop.run_in_executor(self._pool, lambda: fn(*args, **kwargs))
        return await loop.run_in_executor(self._pool, fn, *args)

    async def _partition_count(self, topic: str) -> int:
        n = self._parts.get(topic)
        if n is None:
            n = await self._run(self._adm().partitions, topic)
            self._parts[topic] = n
        return n

    async def _check_partition(self, tp: TopicPartition) -> None:
        n = await self._partition_count(tp.topic)
        if not 0 <= tp.partition < n:
            # Partitions can be added on a live Kafka cluster: look again before refusing.
            self._parts.pop(tp.topic, None)
            if not 0 <= tp.partition < await self._partition_count(tp.topic):
                raise UnknownTopic(f"no partition {tp.partition} in topic {tp.topic!r}")

    async def _check_partitions(self, topic: str, records: Sequence[Record[Any]]) -> None:
        n = await self._partition_count(topic)
        for r in records:
            if not 0 <= r.partition < n:
                raise ConfigError(
                    f"partition {r.partition} out of range for topic {topic!r} ({n} partitions)"
                )

    async def _end_offsets(self, tps: list[TopicPartition]) -> dict[TopicPartition, int]:
        reader = self._readers.acquire({})
        try:
            return await self._run(reader.end_offsets, tps)
        finally:
            self._readers.give_back(reader)

    def _member(self, group: str, member_id: str) -> KafkaMember:
        member = self._members.get((group, member_id))
        if member is None or member.dead:
            if member is not None:
                del self._members[(group, member_id)]
                with contextlib.suppress(RuntimeError):
                    member.stop(0)
            raise FencedError(
                f"member {member_id!r} is not in group {group!r} (it left or missed its "
                "session timeout); it must rejoin"
            )
        return member

    def _owner(
        self, group: str, member_id: str, offsets: Mapping[TopicPartition, int]
    ) -> KafkaMember:
        member = self._member(group, member_id)
        if not member.owns(offsets):
            raise FencedError(
                f"member {member_id!r} does not own every partition of "
                f"{sorted(offsets)} in group {group!r}; commit refused (a rebalance moved it)"
            )
        return member

    def _join_timeout(self) -> float:
        return self.config.request_timeout * 3 + self.config.session_timeout_ms / 500

    def _rebalance_wait(self) -> float:
        return min(self.config.request_timeout, 2 + self.config.session_timeout_ms / 250)
