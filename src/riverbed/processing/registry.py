"""The processor half of `App`: flows, tables and the internal topics they need.

A mixin so that `app.stream(...)` and `app.table(...)` sit on the app (one explicit
object holds everything), while the code lives with the rest of the processors.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar, cast

from riverbed.brokers.base import TopicSpec
from riverbed.codecs import SchemaCodec, make_codec
from riverbed.errors import ConfigError, Retry
from riverbed.processing.stream import Stream
from riverbed.processing.table import Table
from riverbed.processing.topology import Flow, Guarantee, SubTopology
from riverbed.topics import Topic, validate_topic_name

if TYPE_CHECKING:
    from riverbed.app import App
    from riverbed.codecs import CodecName
    from riverbed.processing.clock import Clock

__all__ = ["Processors"]

T = TypeVar("T")


class Processors:
    """Flows and tables of an app (mixed into `App`)."""

    name: str
    codec: CodecName
    clock: Clock
    _topics: dict[str, Topic[Any]]
    _flows: list[Flow]
    _tables: dict[str, Table[Any]]

    def _app(self) -> App:
        return cast("App", self)

    def internal_topic(
        self, name: str, partitions: int, *, schema: Any = None, codec: SchemaCodec | None = None
    ) -> Topic[Any]:
        """A topic riverbed declares for itself (repartitions, changelogs, late records)."""
        existing = self._topics.get(name)
        if existing is not None:
            return existing
        validate_topic_name(name)
        spec = TopicSpec(name, partitions)
        chosen = codec or make_codec(schema or bytes, self.codec)
        topic: Topic[Any] = Topic(self._app(), spec, chosen, internal=True)
        self._topics[name] = topic
        return topic

    # -- processors ---------------------------------------------------------------------
    def stream(
        self,
        topic: Topic[T] | str,
        *,
        name: str | None = None,
        retry: Retry | None = None,
        guarantee: Guarantee | None = None,
        event_time: Callable[[T], int | datetime] | None = None,
        tables: Sequence[Table[Any]] = (),
    ) -> Stream[T]:
        """Start a dataflow reading `topic`; see `riverbed.processing.stream`.

        `name` (default: the topic's name) names the flow's consumer group
        (`<app>.<name>`), internal topics and tables; `retry` is the policy of a
        failing step before its record goes to the dead letters. `guarantee`:
        "exactly_once" (outputs, state and input offsets in one transaction; refused at
        start-up where the backend has no transactions) or "at_least_once"; by default
        exactly-once where the backend allows it. `event_time` reads a record's event
        time from its value (ms since the epoch, or a datetime) instead of the record's
        time. `tables` are `app.table`s the flow's steps write (`table[key] = ...`):
        their changes commit with the flow's.
        """
        t = self._app().get_topic(topic) if isinstance(topic, str) else topic
        flow_name = name or t.name
        if any(f.name == flow_name for f in self._flows):
            raise ConfigError(
                f"a flow named {flow_name!r} exists on app {self.name!r}; pass name=..."
            )
        flow = Flow(
            self._app(),
            validate_topic_name(flow_name),
            retry=retry or Retry(),
            clock=self.clock,
            guarantee=guarantee,
        )
        self._flows.append(flow)
        sub, entry = flow.sub(t)
        if event_time is not None:
            sub.times[t.name] = event_time
        for table in tables:
            sub.add_table(table)
        return Stream(flow, sub, entry, t.schema)

    def table(self, name: str, schema: Any = None) -> Table[Any]:
        """Declare a keyed table (str keys) that a consumer (`tables=[...]`) writes.

        `schema` types its values (as a topic's schema: Event, pydantic model,
        dataclass, dict); None keeps JSON data. Its changes go to the changelog topic
        `<app>.<name>.changelog` with the writer's commits.
        """
        table: Table[Any] = Table(self._app(), name, schema)
        self.add_table(table)
        return table

    def add_table(self, table: Table[Any]) -> None:
        """Register a table (flows do it for their aggregations)."""
        if table.name in self._tables:
            raise ConfigError(f"table {table.name!r} is declared twice on app {self.name!r}")
        self._tables[table.name] = table

    @property
    def tables(self) -> Mapping[str, Table[Any]]:
        return dict(self._tables)

    @property
    def flows(self) -> list[Flow]:
        return list(self._flows)

    def _subtopologies(self) -> list[SubTopology]:
        return [sub for flow in self._flows for sub in flow.subs]
