"""How a flow is cut into sub-topologies, and the names of its internal parts.

A flow starts at one topic. Every re-keying step (`key_by`, `group_by(fn)`) on a topic
of several partitions writes the records, keyed anew, to an internal repartition topic
and continues in a new sub-topology reading it, so that one key's records meet in one
partition (as Kafka Streams does). Each sub-topology runs as its own consumer group.

Internal names carry the app's name, so apps sharing a Kafka cluster never collide:
groups `<app>.<flow>[.<n>]`, topics `<app>.<flow>.repartition.<n>`,
`<app>.<flow>.late` (records that came after their window closed) and
`<app>.<table>.changelog`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from riverbed.errors import ConfigError, Retry
from riverbed.processing.clock import Clock
from riverbed.processing.nodes import Arm, Node

if TYPE_CHECKING:
    from riverbed.app import App
    from riverbed.processing.table import Table
    from riverbed.topics import Topic

__all__ = ["Flow", "Guarantee", "SubTopology"]

Guarantee = Literal["exactly_once", "at_least_once"]


@dataclass(eq=False)
class SubTopology:
    """One consumer group's share of a flow: its input topics, steps and tables."""

    flow: Flow
    group: str
    primary: str
    """The input topic whose partitions the group owns (and the state follows)."""
    partitions: int
    sources: dict[str, Topic[Any]] = field(default_factory=dict)
    roots: dict[str, list[Node]] = field(default_factory=dict)
    tables: list[Table[Any]] = field(default_factory=list)
    sides: dict[str, Topic[Any]] = field(default_factory=dict)
    """Topics read by position next to the primary (the other sides of joins)."""
    table_sides: set[str] = field(default_factory=set)
    """The sides that are tables (latest value per key), not streams."""
    times: dict[str, Callable[[Any], Any]] = field(default_factory=dict)
    """Topic -> the function reading a value's event time (default: the record's)."""

    def root(self, topic: Topic[Any]) -> Node:
        """A new entry point for records of `topic`."""
        node = Arm()
        self.sources[topic.name] = topic
        self.roots.setdefault(topic.name, []).append(node)
        return node

    def side(self, topic: Topic[Any], what: str, *, table: bool) -> Node:
        """An entry point for `topic` read alongside the primary input (a join's other
        side): partition p of it is processed with partition p of the primary. A
        `table` side is read to its end before the primary, when a partition comes."""
        if topic.partitions != self.partitions:
            raise ConfigError(
                f"{what}: {self.primary!r} has {self.partitions} partition(s) and "
                f"{topic.name!r} {topic.partitions}; a join needs co-partitioned inputs "
                "(same partition count, keyed alike): declare them so, or key_by to "
                "repartition"
            )
        if topic.name == self.primary:
            raise ConfigError(f"{what}: a topic cannot be joined with itself in one flow")
        self.sides[topic.name] = topic
        if table:
            self.table_sides.add(topic.name)
        self.flow.app.dlq_topic(topic)
        return self.root(topic)

    def nodes(self) -> list[Node]:
        seen: dict[int, Node] = {}
        for roots in self.roots.values():
            for root in roots:
                for n in root.walk():
                    seen.setdefault(id(n), n)
        return list(seen.values())

    @property
    def is_async(self) -> bool:
        return any(n.is_async for n in self.nodes())

    @property
    def timed(self) -> list[Any]:
        """Steps that act on wall-clock time too (windows, stream joins)."""
        return [n for n in self.nodes() if callable(getattr(n, "tick", None))]

    def add_table(self, table: Table[Any]) -> None:
        table.bind(self.group, self.partitions)
        self.tables.append(table)


class Flow:
    """A named dataflow of the app: its sub-topologies and internal topics."""

    def __init__(
        self, app: App, name: str, *, retry: Retry, clock: Clock, guarantee: Guarantee | None
    ) -> None:
        if guarantee not in (None, "exactly_once", "at_least_once"):
            raise ConfigError(
                f"flow {name!r}: guarantee must be 'exactly_once' or 'at_least_once', "
                f"got {guarantee!r}"
            )
        self.app = app
        self.name = name
        self.retry = retry
        self.clock = clock
        self.guarantee = guarantee
        """None: exactly-once where the backend has transactions, else at-least-once."""
        self.subs: list[SubTopology] = []
        self._late: Topic[Any] | None = None

    def __repr__(self) -> str:
        return f"Flow({self.name!r})"

    def internal_name(self, suffix: str) -> str:
        return f"{self.app.name}.{self.name}.{suffix}"

    def sub(self, source: Topic[Any]) -> tuple[SubTopology, Node]:
        """A new sub-topology reading `source`, and its entry node."""
        n = len(self.subs)
        group = f"{self.app.name}.{self.name}" + (f".{n}" if n else "")
        sub = SubTopology(self, group, source.name, source.partitions)
        self.subs.append(sub)
        self.app.dlq_topic(source)
        return sub, sub.root(source)

    def repartition_topic(self, partitions: int, schema: Any) -> Topic[Any]:
        from riverbed.processing.anycodec import AnyCodec

        name = self.internal_name(f"repartition.{len(self.subs)}")
        codec = None if schema is not None else AnyCodec()
        return self.app.internal_topic(name, partitions, schema=schema, codec=codec)

    def late_topic(self, partitions: int) -> Topic[Any]:
        from riverbed.processing.anycodec import AnyCodec

        if self._late is None:
            name = self.internal_name("late")
            self._late = self.app.internal_topic(name, partitions, codec=AnyCodec())
        return self._late

    def table_name(self, given: str | None, what: str) -> str:
        name = given or f"{self.name}.{what}"
        if name in self.app.tables:
            raise ConfigError(
                f"flow {self.name!r}: a table named {name!r} exists already; pass name=..."
            )
        return name
