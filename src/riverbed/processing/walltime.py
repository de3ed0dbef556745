"""Wall-clock time for quiet partitions: how far their watermark may move with no record.

Windows and stream joins close on event time, which only records carry; when a stream
stops, its last windows would wait forever for a record that never comes (a
long-standing complaint about Kafka Streams and Quix). So while a partition is quiet,
its watermark moves on with the app's clock from the last record's arrival, as if
records kept coming with the clock's time.

That assumption holds only for a live stream. A replay of last month's events that
pauses between batches must not close its windows on today's clock and turn its next
records late, so the watermark moves only while the partition's event time is live:
within `live` of the clock when its last record arrived.
"""

from __future__ import annotations

__all__ = ["WallTime"]

DEFAULT_LIVE = 600.0
"""Seconds: event time this close to the wall clock counts as live."""


class WallTime:
    """Per partition: when the last record arrived, and the watermark it left."""

    def __init__(self, live: float | None = DEFAULT_LIVE) -> None:
        self.live_ms = None if live is None else round(live * 1000)
        self._arrivals: dict[int, tuple[int, int]] = {}

    def seen(self, partition: int, now_ms: int, watermark: int | None) -> None:
        """A record arrived (or the partition was restored) at `now_ms`."""
        if watermark is not None:
            self._arrivals[partition] = (now_ms, watermark)

    def target(self, partition: int, now_ms: int) -> int | None:
        """The watermark wall-clock time has reached, or None (not live, nothing seen)."""
        arrival = self._arrivals.get(partition)
        if arrival is None or self.live_ms is None:
            return None
        wall, watermark = arrival
        if watermark < wall - self.live_ms:
            return None  # a replay of old events: only its records move its time
        return watermark + max(0, now_ms - wall)

    def forget(self, partition: int) -> None:
        self._arrivals.pop(partition, None)
