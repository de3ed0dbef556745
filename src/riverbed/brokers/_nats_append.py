"""Appending to JetStream: one pipelined burst of publishes per batch, acks counted once.

Every record of a batch is published at once (nats-py buffers them into a few socket
writes) with a reply subject `<inbox>.<batch>.<index>`; one wildcard subscription
receives the acks and writes each record's stream sequence into the batch's slot, so a
batch costs one round trip's latency and no future or task per record.

Lost acks: a batch whose acks do not all arrive within `ack_timeout` (the server went
away mid-batch, say) publishes its unacknowledged records again, with the same
`Nats-Msg-Id`, until `deadline`: JetStream's duplicate window drops the copies of the
records it had stored and acknowledges them with their original sequence. So an append
that returns stored every record exactly once; one that raises `BrokerUnavailable` may
have stored some of them (a retry with the same records stores the rest once).
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Sequence
from typing import Any

import msgspec
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from riverbed.brokers._nats_codec import HeaderCodec
from riverbed.errors import BrokerError, BrokerUnavailable, RecordTooLarge, UnknownTopic
from riverbed.events import Record

__all__ = ["Publisher"]


class _ApiError(msgspec.Struct):
    code: int = 0
    err_code: int = 0
    description: str = ""


class _PubAck(msgspec.Struct):
    stream: str = ""
    seq: int = 0
    duplicate: bool = False
    error: _ApiError | None = None


_decode_ack = msgspec.json.Decoder(_PubAck).decode
_MAX_PAYLOAD_ERR = 10054  # JSStreamMessageExceedsMaximumErr


class _Batch:
    __slots__ = ("done", "error", "offsets", "remaining")

    def __init__(self, n: int) -> None:
        self.offsets = [-1] * n
        self.remaining = n
        self.error: Exception | None = None
        self.done = asyncio.Event()


class Publisher:
    """Publishes batches on one connection and collects their acks."""

    def __init__(self, nc: Client, codec: HeaderCodec, ack_timeout: float, deadline: float):
        self._nc = nc
        self._codec = codec
        self._ack_timeout = ack_timeout
        self._deadline = deadline
        self._prefix = ""
        self._sub: Subscription | None = None
        self._batches: dict[int, _Batch] = {}
        self._ids = itertools.count()

    async def start(self) -> None:
        self._prefix = self._nc.new_inbox()
        self._sub = await self._nc.subscribe(f"{self._prefix}.*.*", cb=self._on_ack)

    async def stop(self) -> None:
        for batch in self._batches.values():
            batch.error = BrokerUnavailable("the NATS broker was closed during an append")
            batch.done.set()
        if self._sub is not None:
            await self._sub.unsubscribe()

    async def append(
        self, stream: str, subjects: Sequence[str], records: Sequence[Record[Any]]
    ) -> list[int]:
        """Publish `records` (each to its partition's subject); their offsets in order."""
        n = len(records)
        bid = next(self._ids)
        batch = self._batches[bid] = _Batch(n)
        headers = [self._codec.headers(r) for r in records]
        loop = asyncio.get_running_loop()
        give_up = loop.time() + self._deadline
        try:
            pending: Sequence[int] = range(n)
            while True:
                await self._publish(bid, subjects, records, headers, pending)
                try:
                    async with asyncio.timeout(self._ack_timeout):
                        await batch.done.wait()
                except TimeoutError:
                    pending = [i for i, o in enumerate(batch.offsets) if o < 0]
                    if loop.time() >= give_up:
                        raise BrokerUnavailable(
                            f"JetStream acknowledged {n - len(pending)} of {n} records for "
                            f"stream {stream!r} within {self._deadline:g} s; the rest may or "
                            "may not be stored (appending the same records again stores "
                            "each one once)"
                        ) from None
                    continue
                if batch.error is not None:
                    raise batch.error
                return batch.offsets
        finally:
            del self._batches[bid]

    async def _publish(
        self,
        bid: int,
        subjects: Sequence[str],
        records: Sequence[Record[Any]],
        headers: list[dict[str, str]],
        indices: Sequence[int],
    ) -> None:
        publish, prefix = self._nc.publish, f"{self._prefix}.{bid}."
        for i in indices:
            r = records[i]
            await publish(subjects[r.partition], r.value, f"{prefix}{i}", headers[i])

    async def _on_ack(self, msg: Msg) -> None:
        _, _, tail = msg.subject.rpartition(".")
        bid = int(msg.subject[len(self._prefix) + 1 :].partition(".")[0])
        batch = self._batches.get(bid)
        if batch is None:
            return  # a late ack of a batch that already finished
        i = int(tail)
        error = _ack_error(msg)
        if error is None:
            try:
                ack = _decode_ack(msg.data)
            except msgspec.DecodeError:
                ack = _PubAck(error=_ApiError(description=f"unreadable ack {msg.data[:80]!r}"))
            if ack.error is None:
                if batch.offsets[i] < 0:
                    batch.offsets[i] = ack.seq - 1
                    batch.remaining -= 1
                    if batch.remaining == 0:
                        batch.done.set()
                return
            error = _api_error(ack.error)
        if batch.error is None:
            batch.error = error
        batch.done.set()


def _ack_error(msg: Msg) -> Exception | None:
    status = msg.headers.get("Status") if msg.headers else None
    if status is None or msg.data:
        return None
    if status == "503":
        return UnknownTopic(
            f"no JetStream stream listens on {msg.subject!r}: the topic does not exist "
            "(or JetStream is not enabled on the server)"
        )
    return BrokerError(f"JetStream answered a publish with status {status}")


def _api_error(err: _ApiError) -> Exception:
    if err.err_code == _MAX_PAYLOAD_ERR:
        return RecordTooLarge(
            f"JetStream refused a record: {err.description}; raise the server's "
            "max_payload or the stream's max_msg_size"
        )
    if err.code == 503:
        return BrokerUnavailable(f"JetStream is unavailable: {err.description}")
    return BrokerError(f"JetStream refused a record: {err.description} (code {err.err_code})")
