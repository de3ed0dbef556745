"""Kafka-compatible partitioning: murmur2(key) positive-masked, modulo partitions.

Keys land on the partition a Java Kafka producer would pick for them (Kafka's
`Utils.murmur2` and `Utils.toPositive`), so riverbed and Kafka clients can share keyed
topics. Keyless records go round-robin.
"""

from __future__ import annotations

from functools import lru_cache

__all__ = ["Partitioner", "murmur2", "partition_for_key"]

_M = 0x5BD1E995
_MASK32 = 0xFFFFFFFF


def murmur2(data: bytes) -> int:
    """Kafka's 32-bit murmur2 (seed 0x9747b28c), returned as a signed Java int."""
    length = len(data)
    h = (0x9747B28C ^ length) & _MASK32
    end = length & ~3
    for i in range(0, end, 4):
        k = int.from_bytes(data[i : i + 4], "little")
        k = (k * _M) & _MASK32
        k ^= k >> 24
        k = (k * _M) & _MASK32
        h = ((h * _M) & _MASK32) ^ k
    rest = length & 3
    if rest == 3:
        h ^= data[end + 2] << 16
    if rest >= 2:
        h ^= data[end + 1] << 8
    if rest >= 1:
        h ^= data[end]
        h = (h * _M) & _MASK32
    h ^= h >> 13
    h = (h * _M) & _MASK32
    h ^= h >> 15
    return h - (1 << 32) if h & 0x80000000 else h


@lru_cache(maxsize=65536)
def partition_for_key(key: bytes, partitions: int) -> int:
    """The partition of a keyed record; cached because hot keys repeat."""
    return (murmur2(key) & 0x7FFFFFFF) % partitions


class Partitioner:
    """Chooses partitions for one topic: murmur2 for keys, round-robin otherwise."""

    __slots__ = ("_next", "partitions")

    def __init__(self, partitions: int) -> None:
        self.partitions = partitions
        self._next = 0

    def __call__(self, key: bytes | None) -> int:
        if key is not None:
            return partition_for_key(key, self.partitions)
        p = self._next
        self._next = (p + 1) % self.partitions
        return p
