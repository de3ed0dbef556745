"""Kafka-compatible partitioning: murmur2, positive masking, modulo, round-robin."""

import random

import pytest

from riverbed.partitioner import Partitioner, murmur2, partition_for_key

# Kafka's own expectations, clients/src/test/java/org/apache/kafka/common/utils/UtilsTest.java
KAFKA_MURMUR2 = [
    (b"21", -973932308),
    (b"foobar", -790332482),
    (b"a-little-bit-long-string", -985981536),
    (b"a-little-bit-longer-string", -1486304829),
    (b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58897971),
    (b"abc", 479470107),
]


@pytest.mark.parametrize(("key", "expected"), KAFKA_MURMUR2)
def test_murmur2_matches_kafka(key: bytes, expected: int) -> None:
    assert murmur2(key) == expected


@pytest.mark.parametrize("length", range(9))
def test_murmur2_is_a_signed_32_bit_int_for_every_tail_length(length: int) -> None:
    h = murmur2(bytes(range(200, 200 + length)))
    assert -(2**31) <= h < 2**31


def _int32(x: int) -> int:
    x &= 0xFFFFFFFF
    return x - (1 << 32) if x & 0x80000000 else x


def _ushr(x: int, n: int) -> int:
    return (x & 0xFFFFFFFF) >> n


def _java_murmur2(data: bytes) -> int:
    """A line-by-line port of Kafka's Java `Utils.murmur2` with Java int arithmetic."""
    m, r = _int32(0x5BD1E995), 24
    length = len(data)
    h = _int32(_int32(0x9747B28C) ^ length)
    for i in range(length // 4):
        i4 = i * 4
        k = _int32(data[i4] + (data[i4 + 1] << 8) + (data[i4 + 2] << 16) + (data[i4 + 3] << 24))
        k = _int32(k * m)
        k = _int32(k ^ _ushr(k, r))
        k = _int32(k * m)
        h = _int32(h * m)
        h = _int32(h ^ k)
    tail = length & ~3
    rest = length % 4
    if rest == 3:
        h = _int32(h ^ (data[tail + 2] << 16))
    if rest >= 2:
        h = _int32(h ^ (data[tail + 1] << 8))
    if rest >= 1:
        h = _int32(h ^ data[tail])
        h = _int32(h * m)
    h = _int32(h ^ _ushr(h, 13))
    h = _int32(h * m)
    return _int32(h ^ _ushr(h, 15))


def test_reference_port_agrees_with_kafka_values() -> None:
    for key, expected in KAFKA_MURMUR2:
        assert _java_murmur2(key) == expected


def test_murmur2_matches_java_on_random_and_high_bytes() -> None:
    rng = random.Random(20240601)
    samples = [b"", b"\xff", b"\x80\x80", b"\xff\xfe\xfd", b"\xff" * 4, b"\xff" * 7]
    samples += [rng.randbytes(rng.randrange(0, 40)) for _ in range(2000)]
    for data in samples:
        assert murmur2(data) == _java_murmur2(data), data


@pytest.mark.parametrize(("key", "hashed"), KAFKA_MURMUR2)
@pytest.mark.parametrize("partitions", [1, 3, 7, 12, 1000])
def test_partition_is_positive_masked_hash_modulo(key: bytes, hashed: int, partitions: int) -> None:
    # Kafka: Utils.toPositive(murmur2(key)) % numPartitions, toPositive = h & 0x7fffffff
    assert partition_for_key(key, partitions) == (hashed & 0x7FFFFFFF) % partitions
    assert 0 <= partition_for_key(key, partitions) < partitions


def test_negative_hash_is_masked_not_negated() -> None:
    # -973932308 & 0x7fffffff = 1173551340, not abs() = 973932308 (they differ mod 10)
    assert partition_for_key(b"21", 10) == 1173551340 % 10 == 0
    assert abs(-973932308) % 10 == 8


def test_partitioner_uses_murmur2_for_keys() -> None:
    p = Partitioner(7)
    for key, hashed in KAFKA_MURMUR2:
        assert p(key) == (hashed & 0x7FFFFFFF) % 7
        assert p(key) == p(key)


def test_keyless_records_go_round_robin() -> None:
    p = Partitioner(3)
    assert [p(None) for _ in range(7)] == [0, 1, 2, 0, 1, 2, 0]


def test_keyed_records_do_not_disturb_round_robin() -> None:
    p = Partitioner(4)
    seen = [p(None), p(b"x"), p(None), p(b"y"), p(b"z"), p(None), p(None), p(None)]
    assert [seen[i] for i in (0, 2, 5, 6, 7)] == [0, 1, 2, 3, 0]


def test_round_robin_is_per_partitioner() -> None:
    a, b = Partitioner(2), Partitioner(2)
    assert (a(None), a(None), b(None)) == (0, 1, 0)


def test_single_partition_always_zero() -> None:
    p = Partitioner(1)
    assert {p(None) for _ in range(5)} | {p(k) for k, _ in KAFKA_MURMUR2} == {0}
