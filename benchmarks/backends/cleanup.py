"""Removing what a run created on the shared servers, so they do not fill up.

Every topic, stream, key and group a run creates has the run's id in its name. The
`Broker` protocol has no delete, so this knows the backends' layouts: on Redis the keys
(`rb:{topic}:*`, `rb:g:{group}:*`, the raw streams) and the members of the `rb:topics`
and `rb:groups` sets; on NATS the streams (`RB_<topic>`, the raw ones, by exact name:
topic names are plain `[a-z0-9-]`, which riverbed does not escape) and the group
documents in the `RB_GROUPS` key-value bucket. Tansu keeps everything in memory and
dies with the run; a Kafka given by `RIVERBED_BENCH_KAFKA` gets its topics deleted.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field


@dataclass
class Made:
    """The names one backend's workloads used (all of them contain `run_id`)."""

    run_id: str
    riverbed_topics: list[str] = field(default_factory=list)
    raw_topics: list[str] = field(default_factory=list)
    riverbed_groups: list[str] = field(default_factory=list)


_REDIS_REGISTRIES = ("rb:topics", "rb:groups")
_NATS_GROUP_STREAM, _NATS_GROUP_BUCKET = "KV_RB_GROUPS", "RB_GROUPS"


async def _redis(url: str, run_id: str) -> int:
    import redis.asyncio as aioredis

    client = aioredis.Redis.from_url(url)
    try:
        keys = [k async for k in client.scan_iter(match=f"*{run_id}*", count=1000)]
        if keys:
            await client.delete(*keys)
        for registry in _REDIS_REGISTRIES:
            members = [m async for m in client.sscan_iter(registry, match=f"*{run_id}*")]
            if members:
                await client.srem(registry, *members)
        return len(keys)
    finally:
        await client.aclose()


async def _nats(url: str, made: Made) -> int:
    import nats
    from nats.js.errors import NotFoundError

    from benchmarks.backends.raw_nats import stream_name

    names = [f"RB_{t}" for t in made.riverbed_topics] + [stream_name(t) for t in made.raw_topics]
    nc = await nats.connect(url)
    deleted = 0
    try:
        js = nc.jetstream()
        for name in names:
            try:
                await js.delete_stream(name)
                deleted += 1
            except NotFoundError:
                pass  # that workload failed before it made its stream
        for group in made.riverbed_groups:
            for subject in (f"g.{group}", f"m.{group}.>"):
                try:
                    subj = f"$KV.{_NATS_GROUP_BUCKET}.{subject}"
                    await js.purge_stream(_NATS_GROUP_STREAM, subject=subj)
                except NotFoundError:
                    break  # riverbed never made the bucket: nothing to purge
        return deleted
    finally:
        await nc.close()


def _kafka(url: str, run_id: str) -> int:
    from confluent_kafka.admin import AdminClient

    from benchmarks.backends.raw_kafka import bootstrap

    admin = AdminClient({"bootstrap.servers": bootstrap(url)})
    topics = [t for t in admin.list_topics(timeout=10).topics if run_id in t]
    if topics:
        for future in admin.delete_topics(topics).values():
            future.result(30)
    return len(topics)


def remove(backend: str, url: str, made: Made) -> int:
    """Delete what the run made on `backend`; returns how many streams/keys/topics."""
    if backend == "redis":
        return asyncio.run(_redis(url, made.run_id))
    if backend == "nats":
        return asyncio.run(_nats(url, made))
    if backend == "kafka":
        return _kafka(url, made.run_id)
    return 0
