"""Counters the runtime keeps, and the frozen snapshots `statistics()` returns."""

from __future__ import annotations

from dataclasses import dataclass, fields

from riverbed.consumers import Outcome

__all__ = ["ConsumerStats", "ConsumerStatsSnapshot"]


@dataclass(frozen=True)
class ConsumerStatsSnapshot:
    """A consumer group member's counters at one moment."""

    group: str
    generation: int
    handled: int
    skipped: int
    retried: int
    dead_lettered: int
    dropped: int
    commits: int
    rebalances: int
    errors: int


@dataclass
class ConsumerStats:
    """Mutable counters owned by one group member (one event loop, no locking needed)."""

    group: str
    generation: int = -1
    handled: int = 0
    skipped: int = 0
    retried: int = 0
    dead_lettered: int = 0
    dropped: int = 0
    commits: int = 0
    rebalances: int = 0
    errors: int = 0

    def count(self, outcome: Outcome, attempts: int) -> None:
        if attempts > 1:
            self.retried += attempts - 1
        if outcome is Outcome.DONE:
            self.handled += 1
        elif outcome is Outcome.SKIPPED:
            self.skipped += 1
        elif outcome is Outcome.DEAD:
            self.dead_lettered += 1
        elif outcome is Outcome.DROPPED:
            self.dropped += 1

    def snapshot(self) -> ConsumerStatsSnapshot:
        return ConsumerStatsSnapshot(**{f.name: getattr(self, f.name) for f in fields(self)})
