"""Connecting to Redis: the URL, key names, retries with backoff, error translation.

redis-py's own retry is switched off: it would resend any command after a dropped
connection, appends included, and an append whose reply was lost may have landed.
`Connection.run` retries instead, with exponential backoff and jitter up to
`retry_timeout` seconds, then raises `BrokerUnavailable`; a caller whose command is not
idempotent passes `on_retry` to change the command for the next attempt (the append
script then first looks for the batch it may already have stored).
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import msgspec
from redis import exceptions as rexc
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from riverbed.brokers.base import TopicPartition
from riverbed.errors import (
    BrokerError,
    BrokerUnavailable,
    BrokerURLError,
    ClosedError,
    ConfigError,
    FencedError,
    TopicConflict,
    UnknownTopic,
)

__all__ = ["Connection", "Keys", "RedisConfig", "parse_url"]

T = TypeVar("T")

# Raised when the server cannot be reached or is not ready yet (LOADING after a
# restart is a BusyLoadingError, a ConnectionError subclass).
_TRANSIENT = (rexc.ConnectionError, rexc.TimeoutError, OSError)


class RedisConfig(msgspec.Struct, frozen=True, kw_only=True):
    """Knobs of the Redis backend; each can also be set as a URL query parameter."""

    prefix: str = "rb"
    """Namespace of every key riverbed writes (`rb:{orders}:0`, ...)."""
    retry_timeout: float = 15.0
    """How long a call keeps retrying a lost connection before `BrokerUnavailable`."""
    socket_timeout: float = 10.0
    """Per-command network timeout; blocking reads wait in slices below it."""
    dedup_window: float = 60.0
    """How far back (seconds, allowing for clock skew) a retried append looks for
    a first attempt that landed although its reply was lost."""


def parse_url(url: str, options: dict[str, Any]) -> tuple[str, RedisConfig]:
    """Split our own query parameters off `url`: (URL for redis-py, config)."""
    parts = urlsplit(url)
    if parts.scheme != "redis":
        raise BrokerURLError(f"not a redis:// URL: {url!r}")
    ours: dict[str, Any] = dict(options)
    theirs = []
    for name, value in parse_qsl(parts.query):
        if name in RedisConfig.__struct_fields__:
            ours[name] = value if name == "prefix" else float(value)
        else:
            theirs.append((name, value))
    try:
        config = msgspec.convert(ours, RedisConfig, strict=False)
    except msgspec.ValidationError as exc:
        raise BrokerURLError(f"redis broker option: {exc} (URL {url!r})") from exc
    return urlunsplit(parts._replace(query=urlencode(theirs))), config


class Keys:
    """Key names. A topic's keys share the hash tag `{topic}`, a group's `{group}`."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.topics = f"{prefix}:topics"
        self.groups = f"{prefix}:groups"

    def meta(self, topic: str) -> str:
        return f"{self.prefix}:{{{topic}}}:meta"

    def stream(self, topic: str, partition: int) -> str:
        return f"{self.prefix}:{{{topic}}}:{partition}"

    def group(self, group: str, part: str) -> str:
        return f"{self.prefix}:g:{{{group}}}:{part}"


def owner_field(tp: TopicPartition) -> str:
    """The field naming a partition in the owners and offsets hashes (`GroupState` keys)."""
    return f"{tp.partition}:{tp.topic}"


class Connection:
    """A redis-py client plus our retry loop and error translation."""

    def __init__(self, url: str, config: RedisConfig) -> None:
        self.config = config
        self.closed = False
        self.client: Redis = Redis.from_url(
            url,
            retry=Retry(NoBackoff(), 0),
            protocol=2,  # the reply shapes below (raw stream replies) are RESP2
            socket_timeout=config.socket_timeout,
            socket_connect_timeout=min(5.0, config.socket_timeout),
            socket_keepalive=True,
        )
        # Raw replies: we decode stream entries ourselves, without redis-py building
        # a dict per entry first.
        for command in ("XREAD", "XRANGE", "XREVRANGE"):
            self.client.set_response_callback(command, _identity)

    def check_open(self, what: str = "the redis broker") -> None:
        if self.closed:
            raise ClosedError(f"{what} is closed")

    async def run(
        self,
        call: Callable[[], Awaitable[T]],
        *,
        on_retry: Callable[[], None] | None = None,
    ) -> T:
        """Await `call()`, retrying transient failures with backoff (see module doc)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.config.retry_timeout
        delay = 0.05
        while True:
            self.check_open()
            try:
                return await call()
            except _TRANSIENT as exc:
                if self.closed:
                    raise ClosedError("the redis broker was closed during the call") from exc
                if on_retry is not None:
                    on_retry()
                if loop.time() + delay > deadline:
                    raise BrokerUnavailable(
                        f"redis at {self.client.connection_pool.connection_kwargs.get('host')}:"
                        f"{self.client.connection_pool.connection_kwargs.get('port')} "
                        f"unreachable for {self.config.retry_timeout:g} s: {exc}"
                    ) from exc
                await asyncio.sleep(delay * (0.5 + random.random() / 2))
                delay = min(delay * 2, 1.0)
            except rexc.ResponseError as exc:
                raise translate(exc) from exc

    async def aclose(self) -> None:
        self.closed = True
        await self.client.aclose()
        await self.client.connection_pool.disconnect()


def _identity(response: Any, **options: Any) -> Any:
    return response


def translate(exc: rexc.ResponseError) -> Exception:
    """Our scripts' error replies (`RB_...`) to riverbed errors; others to BrokerError."""
    text = str(exc)
    code, _, rest = text.partition(" ")
    if code == "RB_UNKNOWN_TOPIC":
        return UnknownTopic(f"topic does not exist (no {rest})")
    if code == "RB_BAD_PARTITION":
        p, n, meta = [*rest.split(" ", 2), "", "", ""][:3]
        return ConfigError(f"partition {p} out of range: {n} partitions ({meta})")
    if code == "RB_FENCED":
        p, _, topic = rest.partition(":")
        return FencedError(
            f"the member does not own {topic}[{p}]; commit refused (a rebalance moved it)"
        )
    if code == "RB_TOPIC_CONFLICT":
        return TopicConflict(f"the topic exists with {rest} partitions")
    return BrokerError(f"redis refused a command: {text}")
