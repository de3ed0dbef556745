"""A consumer app that records every record it handles, durably, before returning.

Run as `tests.crash.workers.counting:app` (by `workers/run.py`, `riverbed run`, or
`riverbed run --workers N`). Configured by environment variables because a `module:app`
target takes no arguments; the parent test sets them:

- `RB_CRASH_DB`          path of the sqlite log (required unless RB_CRASH_BROKER is set)
- `RB_CRASH_BROKER`      broker URL, for a run on Kafka, NATS or Redis (default: the
                         sqlite log at RB_CRASH_DB)
- `RB_CRASH_TOPIC`       the consumed topic (default `events`; a shared server needs a
                         name of its own per test)
- `RB_CRASH_LOG`         path of the handled-log file (required)
- `RB_CRASH_PARTITIONS`  partitions of topic `events` (default 4)
- `RB_CRASH_GROUP`       consumer group (default `crash`)
- `RB_CRASH_CONCURRENCY` handler concurrency (default 1)
- `RB_CRASH_SESSION`     session timeout in seconds (default 2.0)
- `RB_CRASH_HEARTBEAT`   heartbeat interval in seconds (default 0.4)
- `RB_CRASH_SHUTDOWN`    shutdown timeout in seconds (default 10)
- `RB_CRASH_DELAY`       seconds each handler sleeps (default 0: no sleep)
- `RB_CRASH_SYNC`        "1" for a sync handler (runs in the thread pool); "block"
                         for an async handler that wrongly blocks its event loop for
                         RB_CRASH_DELAY seconds (a process that cannot stop promptly)
- `RB_CRASH_HANDLER`     "record" (default): the handler takes the record;
                         "value": the (async) handler takes only the event, which runs
                         the consumer's fast path; its log line names the payload (the
                         test knows where each payload landed);
                         "context": the (async) handler also publishes "<partition>
                         <offset>" to topic `events.out` through its context, which the
                         sqlite log writes in the transaction that commits the input
                         offset (`events.out` has 2 partitions)

The handled log gets one line per event, written with a single `os.write` on an
`O_APPEND` descriptor, so a SIGKILL never loses a line already written and lines from
concurrent processes never interleave:

    D <partition> <offset> <pid>     the handler finished this record (written last)
    S <partition> <offset> <pid>     the handler started (only when RB_CRASH_DELAY > 0)
    V <payload> <pid>                the handler taking only the event finished it

Every line is exactly 32 bytes. A write that straddles a page boundary is copied one
page at a time, and Linux checks for a fatal signal between the pages: SIGKILL can tear
such a write, leaving half a line that the next process's first line is glued to. With
32-byte lines (32 divides the page size) no line ever straddles a page.
"""

from __future__ import annotations

import asyncio
import os
import time

from riverbed import App, ConsumerOptions, Context, Record

LINE_BYTES = 32
_env = os.environ
_DELAY = float(_env.get("RB_CRASH_DELAY", "0"))
_PID = os.getpid()
# Opened at import: the app module is imported once per worker process. A forked or
# re-executed child gets its own descriptor and pid.
_FD = os.open(_env["RB_CRASH_LOG"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

app = App(
    "crash",
    broker=_env.get("RB_CRASH_BROKER") or f"sqlite:///{os.path.abspath(_env['RB_CRASH_DB'])}",
    consumer_options=ConsumerOptions(
        session_timeout=float(_env.get("RB_CRASH_SESSION", "2.0")),
        heartbeat_interval=float(_env.get("RB_CRASH_HEARTBEAT", "0.4")),
        commit_interval=0.1,
        shutdown_timeout=float(_env.get("RB_CRASH_SHUTDOWN", "10")),
    ),
    maintenance_interval=1.0,
)
_TOPIC = _env.get("RB_CRASH_TOPIC", "events")
events = app.topic(_TOPIC, partitions=int(_env.get("RB_CRASH_PARTITIONS", "4")))
out = app.topic(f"{_TOPIC}.out", partitions=2)


def _line(kind: bytes, rec: Record[bytes]) -> None:
    line = b"%s %3d %10d %10d    \n" % (kind, rec.partition, rec.offset, _PID)
    assert len(line) == LINE_BYTES, line
    if os.write(_FD, line) != LINE_BYTES:  # only on a full disk: then fail the handler
        raise OSError(f"short write to {_env['RB_CRASH_LOG']}")


_GROUP = _env.get("RB_CRASH_GROUP", "crash")
_CONCURRENCY = int(_env.get("RB_CRASH_CONCURRENCY", "1"))

if _env.get("RB_CRASH_HANDLER") == "value":

    @app.consumer(events, group=_GROUP, concurrency=_CONCURRENCY)
    async def handle(value: bytes) -> None:
        line = b"V %14s %10d    \n" % (value, _PID)
        if len(line) != LINE_BYTES or os.write(_FD, line) != LINE_BYTES:
            raise OSError(f"bad line {line!r} or short write to {_env['RB_CRASH_LOG']}")

elif _env.get("RB_CRASH_HANDLER") == "context":

    @app.consumer(events, group=_GROUP, concurrency=_CONCURRENCY)
    async def handle(rec: Record[bytes], ctx: Context) -> None:
        await ctx.publish(out, b"%d %d" % (rec.partition, rec.offset))
        _line(b"D", rec)

elif _env.get("RB_CRASH_SYNC") == "1":

    @app.consumer(events, group=_GROUP, concurrency=_CONCURRENCY)
    def handle(rec: Record[bytes]) -> None:
        if _DELAY:
            _line(b"S", rec)
            time.sleep(_DELAY)
        _line(b"D", rec)

else:

    @app.consumer(events, group=_GROUP, concurrency=_CONCURRENCY)
    async def handle(rec: Record[bytes]) -> None:
        if _DELAY:
            _line(b"S", rec)
            if _env.get("RB_CRASH_SYNC") == "block":
                time.sleep(_DELAY)  # noqa: ASYNC251 - on purpose: the loop cannot stop
            else:
                await asyncio.sleep(_DELAY)
        elif rec.offset % 64 == 0:
            # Yield now and then so that, with concurrency > 1, records of one partition
            # finish out of order and the commit point must wait for the slow ones.
            await asyncio.sleep(0)
        _line(b"D", rec)
