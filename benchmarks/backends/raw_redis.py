"""The raw redis-py (asyncio, hiredis) client doing the produce and consume workloads.

Produce: one stream; per batch one EVALSHA of a three-line Lua script that XADDs every
event of the batch (the fields riverbed writes: `ce_id`, `ce_specversion`, `ce_type`,
`ce_source`, `ce_time`, `content-type`, `data` = the JSON payload): one round trip and
one command per batch. A non-transactional pipeline of one XADD per event measured
2.5× slower here (redis-py packs every command in Python), so the script is the
most efficient way this client allows. Consume: XREAD COUNT 1000 from the last entry
id read, one round trip per batch, replies left as redis-py's flat lists (no dict per
entry), each entry's fields read and its payload decoded into a `Tick`.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import redis.asyncio as aioredis

from benchmarks.backends import measure, wire
from benchmarks.common import Stopwatch, TickPool

_XADD_ALL = """
for i = 1, #ARGV, 7 do
  redis.call('XADD', KEYS[1], '*', 'ce_id', ARGV[i], 'ce_specversion', ARGV[i + 1],
    'ce_type', ARGV[i + 2], 'ce_source', ARGV[i + 3], 'ce_time', ARGV[i + 4],
    'content-type', ARGV[i + 5], 'data', ARGV[i + 6])
end
return #ARGV / 7
"""


async def _produce(p: dict[str, Any]) -> dict[str, Any]:
    n, batch, key = p["events"], p["batch"], p["topic"]
    client = aioredis.Redis.from_url(p["url"])
    try:
        xadd_all = client.register_script(_XADD_ALL)
        pool, ids, encode = TickPool(batch), wire.Ids(), wire.encode
        etype, source, ctype = wire.EVENT_TYPE, wire.SOURCE, wire.CONTENT_TYPE
        sw = Stopwatch()
        for start in range(0, n, batch):
            events = pool.take(min(batch, n - start))
            with sw:
                ce_time = wire.rfc3339(wire.now_ms())
                args: list[Any] = []
                for event, eid in zip(events, ids.take(len(events)), strict=True):
                    args += (eid, "1.0", etype, source, ce_time, ctype, encode(event))
                added = await xadd_all(keys=[key], args=args)
            if added != len(events):
                raise RuntimeError(f"raw redis produce: {added} of {len(events)} added")
    finally:
        await client.aclose()
    return measure.produce_result(n, sw.total)


def _as_is(response: Any, **_options: Any) -> Any:
    return response


async def _consume(p: dict[str, Any]) -> dict[str, Any]:
    n, key = p["events"], p["topic"]
    client = aioredis.Redis.from_url(p["url"])
    # redis-py turns each entry's field list into a dict by default; a consumer after
    # throughput reads the flat list (the documented hook for a command's reply).
    client.set_response_callback("XREAD", _as_is)
    decode = wire.decoder().decode
    count, first, last_id = 0, 0.0, b"0-0"
    try:
        t0 = time.perf_counter()
        deadline = t0 + p["timeout"]
        while count < n:
            if time.perf_counter() > deadline:
                raise TimeoutError(f"raw redis consume: {count} of {n} after {p['timeout']} s")
            reply = await client.execute_command(  # type: ignore[no-untyped-call]  # untyped in redis-py
                "XREAD", "COUNT", 1000, "BLOCK", 1000, "STREAMS", key, last_id
            )
            # RESP3 (redis-py's default here) answers a map, RESP2 a list of pairs
            streams = reply.items() if isinstance(reply, dict) else reply or []
            for _stream, entries in streams:
                if count == 0:
                    first = time.perf_counter()
                for _entry_id, fields in entries:
                    decode(fields[-1])  # `data` is the last field, as written
                count += len(entries)
                last_id = entries[-1][0]
        last = time.perf_counter()
    finally:
        await client.aclose()
    return measure.consume_result(n, t0, first, last)


def produce(p: dict[str, Any]) -> dict[str, Any]:
    return asyncio.run(_produce(p))


def consume(p: dict[str, Any]) -> dict[str, Any]:
    return asyncio.run(_consume(p))
