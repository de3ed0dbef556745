"""Counting stored records and a group's lag, on backends whose offsets have gaps too.

On a log with dense offsets a count is a subtraction. Where the backend maps a native
position to the offset (Redis entry ids, JetStream sequences, Kafka offsets with
transaction markers) the difference of two offsets says nothing about how many records
lie between them, so these read and count: exact, and costing a read of what they count
(fine for an operator's command or a dashboard, not for a per-record hot path).
"""

from __future__ import annotations

from riverbed.brokers.base import Broker, TopicInfo, TopicPartition

__all__ = ["count_between", "group_lag", "partition_counts"]

_PAGE = 10_000


async def count_between(b: Broker, tp: TopicPartition, start: int, end: int) -> int:
    """Records of `tp` stored at offsets in `[start, end)`."""
    if b.capabilities.dense_offsets:
        return max(0, end - start)
    count, position = 0, start
    while position < end:
        batch = await b.fetch({tp: position}, max_records=_PAGE)
        below = [r.offset for r in batch if r.offset < end]
        if not below:
            break
        count += len(below)
        position = below[-1] + 1
    return count


async def partition_counts(b: Broker, info: TopicInfo) -> dict[int, int]:
    """Partition -> records it stores now."""
    return {
        p.partition: await count_between(
            b, TopicPartition(info.name, p.partition), p.start_offset, p.end_offset
        )
        for p in info.partitions
    }


async def group_lag(b: Broker, group: str, topic: str) -> dict[int, int]:
    """Partition -> records the group has not committed past (all stored, if never)."""
    info = await b.describe_topic(topic)
    committed = await b.committed(group, topic)
    return {
        p.partition: await count_between(
            b,
            TopicPartition(topic, p.partition),
            max(committed.get(p.partition, 0), p.start_offset),
            p.end_offset,
        )
        for p in info.partitions
    }
