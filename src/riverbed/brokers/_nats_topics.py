"""Topics as JetStream streams: creation, offsets, lookup by time, retention.

A topic is a stream `RB_<topic>` with one subject per partition, `rb.<topic>.<p>`
(names escaped by `_nats_codec.encode_name`). The `TopicSpec` is kept in the stream's
description (`riverbed:<json>`), so every client reads the same spec from the server.
A record's offset is its stream sequence minus one: offsets increase per partition with
gaps where other partitions' records went (a one-partition topic is dense from 0).

Offsets of a partition: `start` is its first stored message, `end` its last plus one;
an empty partition reports `start == end ==` the stream's last sequence, which the next
record of any partition reaches or passes (the bound `dense_offsets=False` promises).

Retention: `retention_ms` is the stream's `max_age` (the server deletes by arrival
time) and `maintain()` also deletes by record time (CloudEvents `time`), as the spec
asks, scanning each partition's head with a headers-only consumer and purging the
subject up to the first record still young enough. `retention_bytes` is per partition
in the spec but JetStream only limits a whole stream: the stream gets
`max_bytes = retention_bytes * partitions` (bytes as JetStream counts them, headers
included), and the oldest messages of the topic go first.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Callable
from typing import Any

import msgspec
from nats.aio.client import Client
from nats.aio.msg import Msg

from riverbed.brokers._nats_api import ApiError, JsApi
from riverbed.brokers._nats_codec import (
    H_TIME,
    HeaderCodec,
    parse_ack_reply,
    parse_header_block,
    stream_name,
    subject,
    topic_of_stream,
)
from riverbed.brokers.base import PartitionInfo, TopicInfo, TopicPartition, TopicSpec
from riverbed.errors import TopicConflict, UnknownTopic, UnsupportedCapability

__all__ = ["TopicAdmin", "TopicMeta"]

_DESCRIPTION = "riverbed:"
_STREAM_IN_USE = 10058
_SCAN_BATCH = 1000
_DEDUP_WINDOW_NS = 120 * 10**9  # JetStream's default: how long a retried publish is caught
_encode_spec = msgspec.json.Encoder().encode
_decode_spec = msgspec.json.Decoder(TopicSpec).decode


class TopicMeta(msgspec.Struct, frozen=True):
    """What appends and fetches need to know of a topic, cached per broker handle."""

    stream: str
    subjects: list[str]


def _spec_of(info: dict[str, Any]) -> TopicSpec | None:
    desc = info["config"].get("description", "")
    if not desc.startswith(_DESCRIPTION):
        return None
    try:
        return _decode_spec(desc[len(_DESCRIPTION) :])
    except msgspec.DecodeError:
        return None


class TopicAdmin:
    """Topic operations on one connection; caches each topic's stream and subjects."""

    def __init__(self, nc: Client, api: JsApi, codec: HeaderCodec, replicas: int) -> None:
        self._nc = nc
        self._api = api
        self._codec = codec
        self._replicas = replicas
        self._meta: dict[str, TopicMeta] = {}

    # -- metadata ---------------------------------------------------------------------
    async def meta(self, topic: str) -> TopicMeta:
        m = self._meta.get(topic)
        if m is None:
            info = await self._info(topic)
            m = self._remember(topic, info)
        return m

    def forget(self, topic: str) -> None:
        self._meta.pop(topic, None)

    async def locate(self, tp: TopicPartition) -> tuple[str, str]:
        m = await self.meta(tp.topic)
        if not 0 <= tp.partition < len(m.subjects):
            raise UnknownTopic(f"no partition {tp.partition} in topic {tp.topic!r}")
        return m.stream, m.subjects[tp.partition]

    def _remember(self, topic: str, info: dict[str, Any]) -> TopicMeta:
        spec = _spec_of(info)
        n = spec.partitions if spec is not None else len(info["config"]["subjects"])
        m = TopicMeta(stream_name(topic), [subject(topic, p) for p in range(n)])
        self._meta[topic] = m
        return m

    async def _info(self, topic: str, with_subjects: bool = False) -> dict[str, Any]:
        body = {"subjects_filter": subject(topic, 0)[:-1] + "*"} if with_subjects else None
        try:
            info = await self._api.call(f"STREAM.INFO.{stream_name(topic)}", body)
        except UnknownTopic:
            raise UnknownTopic(f"topic {topic!r} does not exist") from None
        if _spec_of(info) is None:
            raise UnknownTopic(
                f"topic {topic!r}: stream {stream_name(topic)!r} exists but was not made "
                "by riverbed (its description lacks the riverbed spec)"
            )
        return info

    # -- create / describe / list ----------------------------------------------------------
    async def create(self, spec: TopicSpec) -> TopicInfo:
        if spec.compact:
            raise UnsupportedCapability(
                f"topic {spec.name!r} asks for compact=True, but NATS JetStream cannot "
                "compact a stream by key; use a backend with compaction (sqlite, kafka) "
                "or drop compact=True"
            )
        config = self._config(spec)
        for _ in range(5):
            try:
                info = await self._info(spec.name)
            except UnknownTopic:
                try:
                    await self._api.call(f"STREAM.CREATE.{config['name']}", config)
                except ApiError as exc:
                    if exc.err_code == _STREAM_IN_USE:
                        continue  # created meanwhile by someone else: compare with theirs
                    raise
                break
            await self._update(spec, info, config)
            break
        self.forget(spec.name)
        return await self.describe(spec.name)

    async def _update(self, spec: TopicSpec, info: dict[str, Any], new: dict[str, Any]) -> None:
        current = _spec_of(info)
        assert current is not None
        if current.partitions != spec.partitions:
            raise TopicConflict(
                f"topic {spec.name!r} exists with {current.partitions} partitions, "
                f"not {spec.partitions}"
            )
        if current == spec:
            return
        config = dict(info["config"])
        for k in ("description", "max_age", "max_bytes", "duplicate_window"):
            config[k] = new[k]
        await self._api.call(f"STREAM.UPDATE.{config['name']}", config)

    def _config(self, spec: TopicSpec) -> dict[str, Any]:
        max_age = (spec.retention_ms or 0) * 1_000_000
        # JetStream refuses a duplicate window longer than max_age.
        window = min(_DEDUP_WINDOW_NS, max_age) if max_age else _DEDUP_WINDOW_NS
        return {
            "name": stream_name(spec.name),
            "description": _DESCRIPTION + _encode_spec(spec).decode(),
            "subjects": [subject(spec.name, p) for p in range(spec.partitions)],
            "retention": "limits",
            "storage": "file",
            "num_replicas": self._replicas,
            "discard": "old",
            "max_age": max_age,
            "max_bytes": -1
            if spec.retention_bytes is None
            else spec.retention_bytes * spec.partitions,
            "duplicate_window": window,
            "allow_direct": True,
        }

    async def describe(self, topic: str) -> TopicInfo:
        info = await self._info(topic, with_subjects=True)
        return await self._topic_info(topic, info)

    async def list_all(self) -> list[TopicInfo]:
        names: list[str] = []
        offset = 0
        while True:
            page = await self._api.call("STREAM.NAMES", {"offset": offset, "subject": "rb.>"})
            batch = page.get("streams") or []
            names.extend(n for n in batch if topic_of_stream(n) is not None)
            offset += len(batch)
            if not batch or offset >= page.get("total", 0):
                break
        topics = sorted(t for n in names if (t := topic_of_stream(n)) is not None)
        found = await asyncio.gather(*(self._describe_or_none(t) for t in topics))
        return [t for t in found if t is not None]

    async def with_retention(self) -> list[str]:
        """The topics whose spec sets `retention_ms`."""
        found: list[str] = []
        offset = 0
        while True:
            page = await self._api.call("STREAM.LIST", {"offset": offset, "subject": "rb.>"})
            batch = page.get("streams") or []
            for info in batch:
                spec = _spec_of(info)
                topic = topic_of_stream(info["config"]["name"])
                if spec is not None and spec.retention_ms is not None and topic is not None:
                    found.append(topic)
            offset += len(batch)
            if not batch or offset >= page.get("total", 0):
                return found

    async def _describe_or_none(self, topic: str) -> TopicInfo | None:
        try:
            return await self.describe(topic)
        except UnknownTopic:
            return None  # deleted meanwhile, or a stream that is not ours

    async def _topic_info(self, topic: str, info: dict[str, Any]) -> TopicInfo:
        spec = _spec_of(info)
        assert spec is not None
        self._remember(topic, info)
        state = info["state"]
        counts: dict[str, int] = state.get("subjects") or {}
        last = state["last_seq"]
        bounds = await asyncio.gather(
            *(
                self._bounds(info["config"]["name"], subject(topic, p), last, counts)
                for p in range(spec.partitions)
            )
        )
        return TopicInfo(spec, [PartitionInfo(p, s, e) for p, (s, e) in enumerate(bounds)])

    async def _bounds(
        self, stream: str, subj: str, last: int, counts: dict[str, int]
    ) -> tuple[int, int]:
        if not counts.get(subj):
            return last, last
        first_msg, last_msg = await asyncio.gather(
            self._api.msg_get(stream, {"seq": 0, "next_by_subj": subj}),
            self._api.msg_get(stream, {"last_by_subj": subj}),
        )
        if first_msg is None or last_msg is None:  # purged in between
            return last, last
        return first_msg["seq"] - 1, last_msg["seq"]

    # -- time -------------------------------------------------------------------------
    async def offset_for_time(self, tp: TopicPartition, timestamp_ms: int) -> int:
        stream, subj = await self.locate(tp)
        found = -1
        seen = 0

        def check(seq: int, ts: int) -> bool:
            nonlocal found, seen
            seen = seq
            if ts >= timestamp_ms:
                found = seq - 1
                return True
            return False

        await self._scan(stream, subj, check)
        if found >= 0:
            return found
        if seen:
            return seen
        info = await self._api.call(f"STREAM.INFO.{stream}")
        last: int = info["state"]["last_seq"]
        return last

    async def enforce_retention(self, topic: str, now_ms: int) -> None:
        """Delete each partition's head of records older than `retention_ms` (record time)."""
        info = await self._info(topic, with_subjects=True)
        spec = _spec_of(info)
        if spec is None or spec.retention_ms is None:
            return
        stream, cutoff = info["config"]["name"], now_ms - spec.retention_ms
        counts: dict[str, int] = info["state"].get("subjects") or {}
        await asyncio.gather(
            *(
                self._expire_head(stream, subj, cutoff)
                for subj in counts
                if counts[subj] and subj.startswith(subject(topic, 0)[:-1])
            )
        )

    async def _expire_head(self, stream: str, subj: str, cutoff: int) -> None:
        head = await self._api.msg_get(stream, {"seq": 0, "next_by_subj": subj})
        if head is None or self._time_of(head) >= cutoff:
            return  # the common case: one request finds nothing to delete
        keep = 0

        def check(seq: int, ts: int) -> bool:
            nonlocal keep
            if ts >= cutoff:
                keep = seq
                return True
            return False

        await self._scan(stream, subj, check)
        body: dict[str, Any] = {"filter": subj}
        if keep:
            body["seq"] = keep  # purge below this sequence only
        await self._api.call(f"STREAM.PURGE.{stream}", body)

    def _time_of(self, stored: dict[str, Any]) -> int:
        raw = stored.get("hdrs")
        if raw:
            text = parse_header_block(base64.b64decode(raw)).get(H_TIME)
            if text is not None:
                ts = self._codec.time_ms(text)
                if ts is not None:
                    return ts
        return self._codec.time_ms(stored["time"]) or 0

    async def _scan(self, stream: str, subj: str, check: Callable[[int, int], bool]) -> None:
        """Call `check(seq, record_time_ms)` on the partition's records until it says stop.

        Reads headers only, through an ephemeral consumer, `_SCAN_BATCH` per pull.
        """
        config = {
            "ack_policy": "none",
            "deliver_policy": "all",
            "filter_subject": subj,
            "headers_only": True,
            "mem_storage": True,
            "num_replicas": 1,
            "inactive_threshold": 30 * 10**9,
        }
        reply = await self._api.call(
            f"CONSUMER.CREATE.{stream}", {"stream_name": stream, "config": config}
        )
        consumer = reply["name"]
        inbox = self._nc.new_inbox()
        got: list[Msg] = []
        ended = asyncio.Event()

        async def on_msg(msg: Msg) -> None:
            if msg.reply:
                got.append(msg)
                if len(got) >= _SCAN_BATCH:
                    ended.set()
            else:
                ended.set()  # 404/408: nothing more for this pull

        sub = await self._nc.subscribe(inbox, cb=on_msg)
        try:
            while True:
                got.clear()
                ended.clear()
                await self._nc.publish(
                    f"$JS.API.CONSUMER.MSG.NEXT.{stream}.{consumer}",
                    b'{"batch":%d,"no_wait":true}' % _SCAN_BATCH,
                    reply=inbox,
                )
                async with asyncio.timeout(self._api.timeout):
                    await ended.wait()
                for msg in got:
                    _, seq, server_ns = parse_ack_reply(msg.reply)
                    text = msg.headers.get(H_TIME) if msg.headers else None
                    ts = self._codec.time_ms(text) if text else None
                    if check(seq, server_ns // 1_000_000 if ts is None else ts):
                        return
                if len(got) < _SCAN_BATCH:
                    return
        finally:
            await sub.unsubscribe()
            await self._nc.publish(f"$JS.API.CONSUMER.DELETE.{stream}.{consumer}")
