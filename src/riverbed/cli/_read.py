"""Reading a bounded range of a topic, batch by batch."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Mapping
from typing import Any

from riverbed.brokers.base import Broker, TopicPartition
from riverbed.events import Record

__all__ = ["read_range"]

FETCH = 1000


async def read_range(
    b: Broker,
    starts: Mapping[TopicPartition, int],
    ends: Mapping[TopicPartition, int],
) -> AsyncGenerator[list[Record[Any]], None]:
    """Yield the records in `[starts[tp], ends[tp])` of each partition, in batches.

    Stops early when the log holds nothing more below the end offsets (retention may
    delete records while we read).
    """
    pos = {tp: o for tp, o in starts.items() if o < ends[tp]}
    while pos:
        records = await b.fetch(pos, max_records=FETCH)
        if not records:
            return
        batch = []
        for r in records:
            tp = TopicPartition(r.topic, r.partition)
            pos[tp] = r.offset + 1
            if r.offset < ends[tp]:
                batch.append(r)
        pos = {tp: o for tp, o in pos.items() if o < ends[tp]}
        if batch:
            yield batch
