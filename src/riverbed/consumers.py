"""Consumers: what a handler registration is, and how one record is delivered to it.

Delivery of one record to one handler: decode, call, and on failure retry with backoff
(the consumer's `Retry` policy, or the `Retry(after=...)` the handler raised); a
`DecodeError` or `DeadLetter` skips the retries. When the tries are spent the record goes
to `<topic>.dlq` with headers that say why, and the consumer moves on. Nothing is dropped
without a dead-letter entry or, with `dead_letter=False`, an error log naming the record.
"""

from __future__ import annotations

import asyncio
import contextvars
import inspect
import logging
import random
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING, Any, Literal, get_origin, get_type_hints

from riverbed.errors import DeadLetter, DecodeError, Retry, Skip
from riverbed.events import Record

if TYPE_CHECKING:
    from concurrent.futures import Executor

    from riverbed.context import Context
    from riverbed.processing.table import Table
    from riverbed.topics import Topic

__all__ = ["ConsumerSpec", "FailureInfo", "Outcome", "attempt", "dlq_headers", "recover"]

log = logging.getLogger("riverbed.consumer")

StartFrom = Literal["earliest", "latest"]

# Header names on dead-lettered records (and the one replay adds).
H_ERROR_TYPE = "dlq.error.type"
H_ERROR_MESSAGE = "dlq.error.message"
H_ATTEMPTS = "dlq.attempts"
H_TOPIC = "dlq.topic"
H_PARTITION = "dlq.partition"
H_OFFSET = "dlq.offset"
H_GROUP = "dlq.group"
H_FIRST_FAILURE = "dlq.first_failure"
H_LAST_FAILURE = "dlq.last_failure"
H_REPLAY_GROUP = "riverbed.replay-group"
"""Set on a replayed record: only this group handles it, the others skip it."""


class Outcome(Enum):
    DONE = "done"
    SKIPPED = "skipped"
    DEAD = "dead"
    DROPPED = "dropped"
    """Failed with dead letters disabled: logged as an error, then passed over."""


@dataclass(eq=False)
class ConsumerSpec:
    """One `@app.consumer(...)` registration."""

    func: Callable[..., Any]
    topic: Topic[Any]
    group: str
    concurrency: int = 1
    retry: Retry = field(default_factory=Retry)
    dead_letter: bool = True
    start: StartFrom = "earliest"
    is_async: bool = False
    wants_record: bool = False
    wants_context: bool = False
    tables: tuple[Table[Any], ...] = ()
    """Tables the handler writes (their changes commit with its offsets)."""

    @property
    def name(self) -> str:
        return getattr(self.func, "__qualname__", repr(self.func))

    @classmethod
    def inspect_handler(cls, func: Callable[..., Any]) -> tuple[bool, bool, bool]:
        """(is_async, wants_record, wants_context) from the handler's signature.

        The first parameter gets the event, or the whole `Record` when annotated so; a
        second parameter gets the `Context`.
        """
        params = list(inspect.signature(func).parameters.values())
        if not params or len(params) > 2:
            raise TypeError(
                f"handler {getattr(func, '__qualname__', func)!r} must take (event) or (event, ctx)"
            )
        return _is_async(func), _wants_record(func, params[0]), len(params) == 2


def _is_async(func: Callable[..., Any]) -> bool:
    if inspect.iscoroutinefunction(func):
        return True
    call = getattr(func, "__call__", None)  # noqa: B004 - objects with an async __call__
    return inspect.iscoroutinefunction(call)


def _wants_record(func: Callable[..., Any], first: inspect.Parameter) -> bool:
    try:
        hint = get_type_hints(func).get(first.name)
    except Exception:
        # A schema defined in a local scope cannot be resolved from a string annotation
        # (`from __future__ import annotations`); the annotation's text still tells.
        hint = first.annotation
    if isinstance(hint, str):
        return hint == "Record" or hint.startswith(("Record[", "riverbed.Record"))
    return hint is Record or get_origin(hint) is Record


@dataclass
class FailureInfo:
    attempts: int = 0
    first_ms: int = 0
    last_ms: int = 0
    error: BaseException | None = None


async def attempt(
    spec: ConsumerSpec,
    record: Record[Any],
    ctx: Context | None,
    pool: Executor,
    scope: AbstractContextManager[Any] | None = None,
) -> None:
    """One try: decode the payload (once per record) and call the handler.

    This is the hot path, kept to one coroutine frame; exceptions propagate to the
    caller, which hands them to `recover`. `scope` wraps the call of a handler that
    writes tables (their writes are journaled per try).
    """
    if record.data is None:
        record.data = spec.topic.codec.decode(record.value)
    if scope is not None:
        with scope:
            await _call(spec, record, ctx, pool)
        return
    arg = record if spec.wants_record else record.data
    if spec.is_async:
        if ctx is None:
            await spec.func(arg)
        else:
            await spec.func(arg, ctx)
        return
    await _call(spec, record, ctx, pool)


async def _call(
    spec: ConsumerSpec, record: Record[Any], ctx: Context | None, pool: Executor
) -> None:
    arg = record if spec.wants_record else record.data
    args = (arg,) if ctx is None else (arg, ctx)
    if spec.is_async:
        await spec.func(*args)
        return
    # The thread runs in a copy of this context: it sees what the scope set.
    call = contextvars.copy_context().run
    result = await asyncio.get_running_loop().run_in_executor(pool, call, spec.func, *args)
    if inspect.isawaitable(result):
        if inspect.iscoroutine(result):
            result.close()
        raise TypeError(
            f"sync handler {spec.name} returned an awaitable that nobody would await; "
            "declare it `async def`"
        )


async def recover(
    spec: ConsumerSpec,
    record: Record[Any],
    ctx: Context | None,
    error: Exception,
    *,
    pool: Executor,
    stopping: asyncio.Event,
    rand: random.Random,
    scope: AbstractContextManager[Any] | None = None,
) -> tuple[Outcome, FailureInfo]:
    """After a failed first try: retry per policy until success or the tries are spent.

    Returns `Outcome.DEAD` (with the failure) when the record must go to the dead-letter
    topic. If the app starts stopping during a backoff wait, raises `asyncio.CancelledError`
    so the record stays uncommitted and is delivered again after restart.
    """
    info = FailureInfo()
    policy = spec.retry
    exc: Exception | None = error
    while True:
        if ctx is not None:
            ctx.discard()
        if exc is None:
            return Outcome.DONE, info
        if isinstance(exc, Skip):
            return Outcome.SKIPPED, info
        _fail(info, exc, record)
        if isinstance(exc, DeadLetter | DecodeError) or info.attempts >= policy.attempts:
            return Outcome.DEAD, info
        after = exc.after if isinstance(exc, Retry) else None
        delay = after if after is not None else policy.delay(info.attempts, rand.random())
        log.debug("retrying %s@%d in %.3fs: %r", record.topic, record.offset, delay, exc)
        await _backoff(delay, stopping)
        try:
            await attempt(spec, record, ctx, pool, scope)
            return Outcome.DONE, info
        except Exception as next_exc:
            exc = next_exc


def _fail(info: FailureInfo, exc: BaseException, record: Record[Any]) -> None:
    now = time.time_ns() // 1_000_000
    if isinstance(exc, DecodeError) and not exc.topic:
        exc = DecodeError(
            str(exc), topic=record.topic, partition=record.partition, offset=record.offset
        )
    info.attempts += 1
    info.first_ms = info.first_ms or now
    info.last_ms = now
    info.error = exc


async def _backoff(delay: float, stopping: asyncio.Event) -> None:
    if delay <= 0:
        return
    try:
        async with asyncio.timeout(delay):
            await stopping.wait()
    except TimeoutError:
        return
    raise asyncio.CancelledError("stopping during retry backoff")


def dlq_headers(record: Record[Any], spec: ConsumerSpec, info: FailureInfo) -> dict[str, str]:
    """The original headers plus the dead-letter reason and the original position."""
    err = info.error
    if isinstance(err, DeadLetter):
        etype, message = "DeadLetter", err.reason
    else:
        etype = type(err).__name__ if err else "unknown"
        message = str(err) if err else ""
    headers = {k: v for k, v in record.headers.items() if k != H_REPLAY_GROUP}
    headers.update(
        {
            H_ERROR_TYPE: etype,
            H_ERROR_MESSAGE: message[:4096],
            H_ATTEMPTS: str(info.attempts),
            H_TOPIC: record.topic,
            H_PARTITION: str(record.partition),
            H_OFFSET: str(record.offset),
            H_GROUP: spec.group,
            H_FIRST_FAILURE: _iso(info.first_ms),
            H_LAST_FAILURE: _iso(info.last_ms),
        }
    )
    return headers


def _iso(ms: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms / 1000)) + f".{ms % 1000:03d}Z"
