"""Topics: the names, rules and handles producers publish through."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, Generic, NamedTuple, TypeVar

from riverbed.brokers.base import TopicSpec
from riverbed.codecs import SchemaCodec
from riverbed.errors import InvalidTopicName
from riverbed.events import event_type_of

if TYPE_CHECKING:
    from riverbed.app import App

__all__ = ["Position", "Topic", "validate_topic_name"]

T = TypeVar("T")

_NAME = re.compile(r"[A-Za-z0-9._-]{1,249}")
DLQ_SUFFIX = ".dlq"


def validate_topic_name(name: object) -> str:
    """Return `name` if it is a valid topic name, else raise `InvalidTopicName`."""
    if not isinstance(name, str) or not _NAME.fullmatch(name) or name in (".", ".."):
        raise InvalidTopicName(
            f"invalid topic name {name!r}: use 1 to 249 characters from A-Z a-z 0-9 . _ - "
            "(and not '.' or '..')"
        )
    return name


class Position(NamedTuple):
    """Where a published record landed."""

    topic: str
    partition: int
    offset: int


KeyFunc = Callable[[Any], "str | bytes | None"]


class Topic(Generic[T]):
    """A declared topic: its schema, codec, partitioning, and publish methods.

    Made by `app.topic(...)`; publishing goes through the app's producer.
    """

    def __init__(
        self,
        app: App,
        spec: TopicSpec,
        codec: SchemaCodec,
        key: KeyFunc | None = None,
        *,
        internal: bool = False,
    ) -> None:
        self.app = app
        self.spec = spec
        self.codec = codec
        self.key_func = key
        self.internal = internal
        self.event_type = event_type_of(codec.schema) or spec.name

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def schema(self) -> Any:
        return self.codec.schema

    @property
    def partitions(self) -> int:
        return self.spec.partitions

    def __repr__(self) -> str:
        return f"Topic({self.name!r}, partitions={self.partitions})"

    async def publish(
        self,
        event: T,
        *,
        key: str | bytes | None = None,
        headers: Mapping[str, str] | None = None,
        type: str | None = None,  # the CloudEvents attribute name
    ) -> Position:
        """Append one event; returns where it landed once it is durable."""
        record = self.app.producer.build(self, event, key=key, headers=headers, type=type)
        return await self.app.producer.send(self, record)

    async def publish_many(
        self,
        events: Iterable[T],
        *,
        key: Callable[[T], str | bytes | None] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> list[Position]:
        """Append many events in one batch (one broker write); returns their positions."""
        records = self.app.producer.build_many(self, events, key=key, headers=headers)
        return await self.app.producer.send_many(self, records)

    def publish_sync(
        self,
        event: T,
        *,
        key: str | bytes | None = None,
        headers: Mapping[str, str] | None = None,
        type: str | None = None,
    ) -> Position:
        """`publish` for sync code (scripts, Flask, Django): no event loop to manage."""
        return self.app.portal.call(
            lambda: self.publish(event, key=key, headers=headers, type=type)
        )

    def publish_many_sync(
        self,
        events: Iterable[T],
        *,
        key: Callable[[T], str | bytes | None] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> list[Position]:
        """`publish_many` for sync code."""
        batch = list(events)
        return self.app.portal.call(lambda: self.publish_many(batch, key=key, headers=headers))
