"""The conformance suite on Kafka (Tansu, a Kafka-wire broker, started by the test run).

Cases marked xfail(strict=True) hit a named deviation of the test broker (or a Kafka
property the suite does not model yet, reported to the suite's owner); strict, so they
fail loudly the day the deviation is gone.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from riverbed.brokers.base import Broker
from riverbed.brokers.kafka import KafkaBroker
from riverbed.testing.conformance import BrokerConformance

# Tansu takes about half the Kafka session timeout to complete a rebalance: keep it short.
OPTIONS = {"session_timeout_ms": 1000}

TANSU_OFFSETS_FOR_TIME = pytest.mark.xfail(
    strict=True, reason="Tansu deviation: ListOffsets by timestamp always answers offset 0"
)
TANSU_DESCRIBE_GROUPS = pytest.mark.xfail(
    strict=True,
    reason="Tansu deviation: DescribeGroups answers without client ids or assignments, and "
    "librdkafka parses its answer as a group with no members",
)
TANSU_LIST_GROUPS = pytest.mark.xfail(
    strict=True,
    reason="Tansu deviation: ListGroups leaves out groups that have members but no "
    "committed offsets",
)
SERVER_SIDE_RETENTION = pytest.mark.xfail(
    strict=True,
    reason="Kafka applies retention and compaction in the background on closed segments "
    "(log.retention.check.interval.ms, the log cleaner), never on maintain(); Tansu does "
    "not apply retention.ms/retention.bytes/cleanup.policy=compact at all",
)


class TestKafkaBroker(BrokerConformance):
    # Kafka's cooperative-sticky assignor balances members' totals, and a revocation
    # once handed out completes; sessions below ~3 s expire inside Tansu's rebalances.
    balance = "member"
    revocation_completes = True
    short_session = 3.0

    @pytest_asyncio.fixture
    async def broker(self, kafka_url: str) -> AsyncIterator[KafkaBroker]:
        b = KafkaBroker(kafka_url, **OPTIONS)
        await b.start()
        yield b
        await b.aclose()

    async def open_peer(self, broker: Broker) -> Broker:
        other = KafkaBroker(broker.url, **OPTIONS)
        await other.start()
        return other

    # -- named deviations ---------------------------------------------------------------------
    @TANSU_OFFSETS_FOR_TIME
    async def test_offset_for_time(self, broker: Broker) -> None:
        await super().test_offset_for_time(broker)

    @TANSU_OFFSETS_FOR_TIME
    async def test_offset_for_time_with_unordered_timestamps(self, broker: Broker) -> None:
        await super().test_offset_for_time_with_unordered_timestamps(broker)

    @TANSU_OFFSETS_FOR_TIME
    async def test_replay_from_time_after_reset(self, broker: Broker, peer: Broker) -> None:
        await super().test_replay_from_time_after_reset(broker, peer)

    @TANSU_DESCRIBE_GROUPS
    async def test_describe_group(self, broker: Broker, peer: Broker) -> None:
        await super().test_describe_group(broker, peer)

    @TANSU_DESCRIBE_GROUPS  # only its last assertion reads describe_group; the rest passes
    async def test_leave_hands_partitions_to_remaining_member(
        self, broker: Broker, peer: Broker
    ) -> None:
        await super().test_leave_hands_partitions_to_remaining_member(broker, peer)

    @TANSU_LIST_GROUPS
    async def test_list_groups(self, broker: Broker, peer: Broker) -> None:
        await super().test_list_groups(broker, peer)

    @SERVER_SIDE_RETENTION
    async def test_retention_by_age(self, broker: Broker) -> None:
        await super().test_retention_by_age(broker)

    @SERVER_SIDE_RETENTION
    async def test_retention_by_size(self, broker: Broker) -> None:
        await super().test_retention_by_size(broker)

    @SERVER_SIDE_RETENTION
    async def test_compaction_keeps_latest_per_key(self, broker: Broker) -> None:
        await super().test_compaction_keeps_latest_per_key(broker)

    @TANSU_DESCRIBE_GROUPS  # only its last assertion reads describe_group; the rest passes
    async def test_dead_member_is_expired_by_heartbeat_of_another(
        self, broker: Broker, peer: Broker
    ) -> None:
        await super().test_dead_member_is_expired_by_heartbeat_of_another(broker, peer)
