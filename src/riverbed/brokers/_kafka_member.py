"""One riverbed group member as one Kafka group member (a librdkafka consumer).

librdkafka runs the rebalance callbacks inside `poll()`, so each member's consumer is
polled by a thread of its own. Its partitions stay paused: the member only takes part
in the group and commits; records are read by the broker's group-less readers.

Cooperative hand-over (KIP-429) maps onto the riverbed protocol like this: Kafka's
incremental revoke callback marks the partitions `revoking` and then *blocks* until
`release` names them (bounded by `release_timeout`, which sits below the rebalance
timeout), so Kafka hands them to their new owner only after this member has drained and
committed them. No partition is ever consumed by two members at once.

Liveness has two clocks. librdkafka heartbeats to Kafka by itself, so a process that
dies is expired by Kafka's session timeout; a member whose process lives on but which
stopped calling `heartbeat` is expired here, after its riverbed `session_timeout`: the
thread leaves the group and every later call of the member is fenced.
"""

from __future__ import annotations

import contextlib
import sys
import threading
import time
from collections.abc import Iterable, Mapping
from concurrent.futures import Future

from confluent_kafka import Consumer, KafkaError, KafkaException
from confluent_kafka import TopicPartition as KafkaTP

from riverbed.brokers._kafka_config import KafkaConfig
from riverbed.brokers.base import Assignment, TopicPartition
from riverbed.errors import BrokerError, BrokerUnavailable, FencedError

__all__ = ["KafkaMember"]

_POLL = 0.02  # also the longest a commit waits for the poll thread to pick it up
_FENCED_CODES = {
    KafkaError.ILLEGAL_GENERATION,
    KafkaError.UNKNOWN_MEMBER_ID,
    KafkaError.FENCED_INSTANCE_ID,
    KafkaError.REBALANCE_IN_PROGRESS,
    KafkaError._ASSIGNMENT_LOST,
}


def _tps(partitions: Iterable[KafkaTP]) -> set[TopicPartition]:
    return {TopicPartition(p.topic, p.partition) for p in partitions}


def generation_of(consumer: Consumer) -> int:
    """The group generation the consumer is in, -1 if unknown.

    confluent-kafka exposes it only inside the serialized consumer-group metadata
    (librdkafka's `rd_kafka_consumer_group_metadata_write`: "CGMDv2:" then the int32
    generation in native byte order).
    """
    raw = consumer.consumer_group_metadata()
    if isinstance(raw, bytes) and raw.startswith(b"CGMDv2:") and len(raw) >= 11:
        return int.from_bytes(raw[7:11], sys.byteorder, signed=True)
    return -1


class KafkaMember:
    """A group member's consumer, its poll thread and the riverbed view of what it owns."""

    def __init__(
        self,
        config: KafkaConfig,
        group: str,
        member_id: str,
        topics: Iterable[str],
        *,
        session_timeout: float,
        client: str,
    ) -> None:
        self.group, self.member_id, self.client = group, member_id, client
        self.topics = sorted(set(topics))
        self.generation = -1
        self._config = config
        self._session = session_timeout
        self._cond = threading.Condition()
        self._assigned: set[TopicPartition] = set()
        self._revoking: set[TopicPartition] = set()
        self._released: set[TopicPartition] = set()
        self._assigns = 0  # completed assign callbacks: one per finished rebalance
        self._last_seen = time.monotonic()
        self._dead = False
        self._stopping = False
        self._error: BaseException | None = None
        self._metadata: object = None  # consumer-group metadata as of the last rebalance
        # librdkafka's consumer is only ever called from the poll thread: a synchronous
        # commit from another thread deadlocks against a concurrent poll().
        self._commits: list[tuple[list[KafkaTP], Future[None]]] = []
        self._consumer = Consumer(config.member(group, member_id, client))
        self._thread = threading.Thread(
            target=self._run, name=f"riverbed-kafka-{group}-{member_id}", daemon=True
        )

    # -- called from the broker (worker threads or the event loop) ------------------------
    def start(self) -> None:
        self._thread.start()

    @property
    def dead(self) -> bool:
        return self._dead

    def touch(self) -> None:
        with self._cond:
            self._last_seen = time.monotonic()

    def assignment(self) -> Assignment:
        with self._cond:
            self._check_alive()
            return Assignment(self.generation, frozenset(self._assigned), frozenset(self._revoking))

    def owns(self, tps: Iterable[TopicPartition]) -> bool:
        with self._cond:
            return not self._dead and all(
                tp in self._assigned or tp in self._revoking for tp in tps
            )

    def rebalances(self) -> int:
        with self._cond:
            return self._assigns

    def wait_joined(self, timeout: float) -> Assignment:
        """Block until the first assignment arrives (Kafka's first rebalance is done)."""
        with self._cond:
            self._cond.wait_for(lambda: self._assigns > 0 or self._dead, timeout)
            if self._dead:
                raise BrokerUnavailable(
                    f"member {self.member_id!r} could not join group {self.group!r}: "
                    f"{self._error or 'it left or was expired'}"
                )
            if self._assigns == 0:
                raise BrokerUnavailable(
                    f"group {self.group!r}: no assignment for {self.member_id!r} after {timeout} s"
                )
        return self.assignment()

    def wait_rebalance(self, mark: int, timeout: float) -> None:
        """Block until a rebalance after `mark` completes, a revoke starts, or we die."""
        with self._cond:
            self._cond.wait_for(
                lambda: self._assigns > mark or bool(self._revoking) or self._dead, timeout
            )

    def release(self, tps: Iterable[TopicPartition], timeout: float) -> None:
        """Let Kafka hand revoked partitions on; wait for the rebalance that follows."""
        with self._cond:
            freed = set(tps) & self._revoking
            if not freed:
                return
            mark = self._assigns
            self._released |= freed
            self._cond.notify_all()
            self._cond.wait_for(lambda: self._assigns > mark or self._dead, timeout)

    def commit(self, offsets: Mapping[TopicPartition, int], timeout: float) -> None:
        """Commit through Kafka (done by the poll thread); the caller checked ownership."""
        request = [KafkaTP(tp.topic, tp.partition, off) for tp, off in offsets.items()]
        done: Future[None] = Future()
        with self._cond:
            self._check_alive()
            self._commits.append((request, done))
            self._cond.notify_all()
        done.result(timeout)

    def group_metadata(self) -> object:
        """What `send_offsets_to_transaction` needs: group, generation and member id."""
        with self._cond:
            self._check_alive()
            return self._metadata

    def stop(self, timeout: float) -> None:
        """Leave the group (the poll thread closes the consumer) and wait for it."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    # -- the poll thread ------------------------------------------------------------------
    def _run(self) -> None:
        try:
            self._consumer.subscribe(
                self.topics,
                on_assign=self._on_assign,
                on_revoke=self._on_revoke,
                on_lost=self._on_lost,
            )
            while self._alive():
                # Partitions are paused: poll only serves callbacks and errors.
                self._consumer.poll(_POLL)
                self._serve_commits()
        except (KafkaException, RuntimeError) as exc:
            self._error = exc
        finally:
            with self._cond:
                self._stopping = True  # the revoke callback close() triggers must not block
                self._dead = True
                self._cond.notify_all()
            self._serve_commits()
            with contextlib.suppress(KafkaException, RuntimeError):
                self._consumer.close()  # LeaveGroup: the others rebalance at once

    def _serve_commits(self) -> None:
        with self._cond:
            pending, self._commits = self._commits, []
        for request, done in pending:
            if self._dead:
                done.set_exception(self._fenced())
                continue
            try:
                result = self._consumer.commit(offsets=request, asynchronous=False)
                errors = [tp.error for tp in result or () if tp.error is not None]
                if errors:
                    raise KafkaException(errors[0])
            except KafkaException as exc:
                done.set_exception(self._translate(exc.args[0]))
            else:
                done.set_result(None)

    def _alive(self) -> bool:
        with self._cond:
            if self._stopping or self._dead:
                return False
            # The riverbed session runs from the end of the join: a join can take longer
            # than a short session timeout (the coordinator waits for the others).
            if self._assigns and time.monotonic() - self._last_seen > self._session:
                self._dead = True
                self._cond.notify_all()
                return False
            return True

    def _on_assign(self, consumer: Consumer, partitions: list[KafkaTP]) -> None:
        consumer.incremental_assign(partitions)
        if partitions:
            consumer.pause(partitions)
        generation = generation_of(consumer)
        metadata = consumer.consumer_group_metadata()
        with self._cond:
            self._metadata = metadata
            if not self._assigns:
                self._last_seen = time.monotonic()
            self._assigned |= _tps(partitions)
            self.generation = max(self.generation, generation)
            self._assigns += 1
            self._cond.notify_all()

    def _on_revoke(self, consumer: Consumer, partitions: list[KafkaTP]) -> None:
        tps = _tps(partitions)
        generation = generation_of(consumer)
        metadata = consumer.consumer_group_metadata()
        with self._cond:
            self._metadata = metadata
            self.generation = max(self.generation, generation)
            self._assigned -= tps
            if not (self._stopping or self._dead):
                self._revoking |= tps
                self._cond.notify_all()
                self._wait_released(tps)
            self._revoking -= tps
            self._released -= tps
            self._cond.notify_all()

    def _wait_released(self, tps: set[TopicPartition]) -> None:
        # Runs inside librdkafka's rebalance: the new owner waits until we return.
        deadline = time.monotonic() + self._config.release_timeout
        while not tps <= self._released and not (self._stopping or self._dead):
            now = time.monotonic()
            if now - self._last_seen > self._session:
                self._dead = True  # expired while revoking: the partitions move on
                return
            if now >= deadline:
                return
            self._cond.wait(min(deadline - now, _POLL))
            if self._commits:
                # The revoking member commits before it releases: serve it from here.
                self._cond.release()
                try:
                    self._serve_commits()
                finally:
                    self._cond.acquire()

    def _on_lost(self, consumer: Consumer, partitions: list[KafkaTP]) -> None:
        # Kafka expired us: our partitions may already be someone else's. Fence.
        with self._cond:
            self._assigned -= _tps(partitions)
            self._revoking -= _tps(partitions)
            self._dead = True
            self._cond.notify_all()

    # -- helpers ---------------------------------------------------------------------------
    def _check_alive(self) -> None:
        if self._dead:
            raise self._fenced()

    def _fenced(self) -> FencedError:
        return FencedError(
            f"member {self.member_id!r} of group {self.group!r} left or missed its "
            "session timeout; it must rejoin"
        )

    def _translate(self, err: KafkaError) -> BrokerError:
        if err.code() in _FENCED_CODES:
            return FencedError(
                f"Kafka refused the commit of {self.member_id!r} in group {self.group!r}: "
                f"{err.str()} (a rebalance moved its partitions)"
            )
        if err.retriable():
            return BrokerUnavailable(f"Kafka commit failed: {err.str()}")
        return BrokerError(f"Kafka commit failed: {err.str()}")
