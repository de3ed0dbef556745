"""Topic and group administration through librdkafka's AdminClient (blocking calls,
run by the broker in worker threads)."""

from __future__ import annotations

import time
from collections.abc import Mapping
from concurrent.futures import Future
from typing import Any, TypeVar

from confluent_kafka import (
    ConsumerGroupState,
    ConsumerGroupTopicPartitions,
    KafkaError,
    KafkaException,
)
from confluent_kafka import TopicPartition as KafkaTP
from confluent_kafka.admin import (  # type: ignore[attr-defined]  # re-exported without __all__
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    NewTopic,
    OffsetSpec,
    ResourceType,
)

from riverbed.brokers._kafka_config import KafkaConfig, decode_client_id
from riverbed.brokers.base import MemberInfo, TopicPartition, TopicSpec
from riverbed.errors import BrokerError, BrokerUnavailable, TopicConflict, UnknownTopic

__all__ = ["Admin", "translate"]

T = TypeVar("T")
# Group states in which nobody is a member (DEAD: Kafka never heard of the group).
IDLE_STATES = {ConsumerGroupState.EMPTY, ConsumerGroupState.DEAD}


def translate(exc: KafkaException, what: str) -> Exception:
    err = exc.args[0] if exc.args and isinstance(exc.args[0], KafkaError) else None
    if err is None:
        return BrokerError(f"{what}: {exc}")
    if err.code() in (KafkaError.UNKNOWN_TOPIC_OR_PART, KafkaError._UNKNOWN_TOPIC):
        return UnknownTopic(f"{what}: the topic does not exist ({err.str()})")
    if err.retriable() or err.code() in (
        KafkaError._TRANSPORT,
        KafkaError._ALL_BROKERS_DOWN,
        KafkaError._TIMED_OUT,
    ):
        return BrokerUnavailable(f"{what}: {err.str()}")
    return BrokerError(f"{what}: {err.str()}")


def _topic_configs(spec: TopicSpec) -> dict[str, str]:
    """The Kafka topic configs expressing a spec's retention and compaction."""
    policy = "compact" if spec.compact else "delete"
    if spec.compact and (spec.retention_ms is not None or spec.retention_bytes is not None):
        policy = "compact,delete"
    return {
        "cleanup.policy": policy,
        "retention.ms": str(-1 if spec.retention_ms is None else spec.retention_ms),
        "retention.bytes": str(-1 if spec.retention_bytes is None else spec.retention_bytes),
    }


def _spec_from_configs(name: str, partitions: int, configs: Mapping[str, str]) -> TopicSpec:
    def number(key: str) -> int | None:
        raw = configs.get(key)
        value = int(raw) if raw not in (None, "") else -1
        return None if value < 0 else value

    return TopicSpec(
        name,
        partitions,
        retention_ms=number("retention.ms"),
        retention_bytes=number("retention.bytes"),
        compact="compact" in configs.get("cleanup.policy", ""),
    )


class Admin:
    """Blocking administrative calls; every KafkaException leaves as a riverbed error."""

    def __init__(self, config: KafkaConfig) -> None:
        self._client = AdminClient(config.common())
        self._timeout = config.request_timeout

    def _wait(self, future: Future[T], what: str) -> T:
        try:
            return future.result(timeout=self._timeout * 2)
        except KafkaException as exc:
            raise translate(exc, what) from exc
        except TimeoutError as exc:
            raise BrokerUnavailable(f"{what}: Kafka did not answer") from exc

    # -- topics -------------------------------------------------------------------------
    def partitions(self, topic: str) -> int:
        """The topic's partition count; `UnknownTopic` if it does not exist."""
        try:
            meta = self._client.list_topics(topic, timeout=self._timeout)
        except KafkaException as exc:
            raise translate(exc, f"metadata of {topic!r}") from exc
        found = meta.topics.get(topic)
        if found is None or found.error is not None or not found.partitions:
            raise UnknownTopic(f"topic {topic!r} does not exist")
        return len(found.partitions)

    def topic_names(self) -> list[str]:
        try:
            meta = self._client.list_topics(timeout=self._timeout)
        except KafkaException as exc:
            raise translate(exc, "listing topics") from exc
        return sorted(
            n for n, t in meta.topics.items() if t.error is None and not n.startswith("__")
        )

    def create(self, spec: TopicSpec) -> bool:
        """Create the topic; False if it already existed (then its configs are updated)."""
        new = NewTopic(spec.name, spec.partitions, config=_topic_configs(spec))
        future = self._client.create_topics([new], request_timeout=self._timeout)[spec.name]
        try:
            future.result(timeout=self._timeout * 2)
            return True
        except KafkaException as exc:
            err = exc.args[0]
            if not isinstance(err, KafkaError) or err.code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise translate(exc, f"creating topic {spec.name!r}") from exc
        existing = self.partitions(spec.name)
        if existing != spec.partitions:
            raise TopicConflict(
                f"topic {spec.name!r} exists with {existing} partitions, not {spec.partitions}"
            )
        self.set_configs(spec)
        return False

    def set_configs(self, spec: TopicSpec) -> None:
        entries = [
            ConfigEntry(k, v, incremental_operation=AlterConfigOpType.SET)
            for k, v in _topic_configs(spec).items()
        ]
        resource = ConfigResource(ResourceType.TOPIC, spec.name, incremental_configs=entries)
        for future in self._client.incremental_alter_configs([resource]).values():
            self._wait(future, f"configuring topic {spec.name!r}")

    def spec(self, topic: str, partitions: int) -> TopicSpec:
        resource = ConfigResource(ResourceType.TOPIC, topic)
        found: dict[str, str] = {}
        for future in self._client.describe_configs([resource]).values():
            entries: dict[str, Any] = self._wait(future, f"configs of topic {topic!r}")
            found = {k: e.value for k, e in entries.items() if e.value is not None}
        return _spec_from_configs(topic, partitions, found)

    def offsets(self, tps: list[TopicPartition], spec: Any) -> dict[TopicPartition, int]:
        """ListOffsets for each partition (`spec`: an `OffsetSpec`); -1 when none."""
        request = {KafkaTP(tp.topic, tp.partition): spec for tp in tps}
        futures = self._client.list_offsets(request, request_timeout=self._timeout)
        return {
            TopicPartition(k.topic, k.partition): self._wait(f, "listing offsets").offset
            for k, f in futures.items()
        }

    def start_offsets(self, tps: list[TopicPartition]) -> dict[TopicPartition, int]:
        return self.offsets(tps, OffsetSpec.earliest())  # type: ignore[no-untyped-call]

    def offsets_for_time(self, tps: list[TopicPartition], ms: int) -> dict[TopicPartition, int]:
        return self.offsets(tps, OffsetSpec.for_timestamp(ms))

    # -- groups -------------------------------------------------------------------------
    def group_state(self, group: str) -> ConsumerGroupState:
        future = self._client.describe_consumer_groups([group])[group]
        state = self._wait(future, f"describing group {group!r}").state
        return state if isinstance(state, ConsumerGroupState) else ConsumerGroupState.UNKNOWN

    def group_members(self, group: str) -> list[MemberInfo]:
        """The members Kafka reports, with riverbed's member ids where they are ours."""
        future = self._client.describe_consumer_groups([group])[group]
        description = self._wait(future, f"describing group {group!r}")
        now = time.time_ns() // 1_000_000
        members = []
        for m in description.members:
            ids = decode_client_id(m.client_id or "") or decode_client_id(m.member_id)
            member_id, client = ids or (m.member_id, m.client_id or "")
            parts = sorted(
                TopicPartition(tp.topic, tp.partition) for tp in m.assignment.topic_partitions
            )
            topics = sorted({tp.topic for tp in parts})
            # Kafka does not report heartbeat times: a listed member is alive as of now.
            members.append(MemberInfo(member_id, client, topics, parts, now))
        return sorted(members, key=lambda m: m.member_id)

    def group_names(self) -> list[tuple[str, ConsumerGroupState]]:
        result = self._wait(self._client.list_consumer_groups(), "listing groups")
        return [(g.group_id, g.state) for g in result.valid]

    def committed(
        self, group: str, tps: list[TopicPartition] | None = None
    ) -> dict[TopicPartition, int]:
        request = ConsumerGroupTopicPartitions(
            group, None if tps is None else [KafkaTP(tp.topic, tp.partition) for tp in tps]
        )
        future = self._client.list_consumer_group_offsets([request])[group]
        result = self._wait(future, f"offsets of group {group!r}")
        return {
            TopicPartition(tp.topic, tp.partition): tp.offset
            for tp in result.topic_partitions or ()
            if tp.offset >= 0 and tp.error is None
        }

    def set_committed(self, group: str, offsets: Mapping[TopicPartition, int]) -> None:
        request = ConsumerGroupTopicPartitions(
            group, [KafkaTP(tp.topic, tp.partition, off) for tp, off in offsets.items()]
        )
        future = self._client.alter_consumer_group_offsets([request])[group]
        result = self._wait(future, f"setting offsets of group {group!r}")
        for tp in result.topic_partitions or ():
            if tp.error is not None:
                raise BrokerError(f"setting offsets of group {group!r}: {tp.error}")
