"""The dataflow API: `app.stream(topic)` and what chains from it.

Every method adds a step and returns a new handle; nothing runs until the app starts
(`riverbed run`, `async with app:`), when each sub-topology joins its consumer group.
Functions may be plain or `async def`. A step that raises follows the consumer rules:
retried with backoff per the flow's `Retry`, then the record goes to
`<topic>.dlq` with the reason, and the flow goes on.

    orders = app.topic("orders", Order, partitions=4)
    revenue = (
        app.stream(orders, name="revenue")
        .filter(lambda o: o.total > 0)
        .group_by(lambda o: o.customer)
        .window(Tumbling(60))
        .sum(lambda o: o.total)
    )
    revenue.to(app.topic("revenue-per-minute", dict))
    revenue.table  # queryable: revenue.table["alice"] -> [WindowValue(...), ...]
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from riverbed.codecs import SchemaCodec, make_codec
from riverbed.errors import ConfigError
from riverbed.processing import aggregates as agg
from riverbed.processing.anycodec import AnyCodec
from riverbed.processing.joining import (
    JoinApply,
    LookupJoin,
    Materialize,
    StreamJoinSide,
    TableJoinSide,
    TableJoinTable,
)
from riverbed.processing.nodes import (
    Arm,
    Branch,
    Filter,
    FlatMap,
    Map,
    Node,
    Peek,
    Rekey,
    Route,
    Sink,
)
from riverbed.processing.stateful import AggregateNode, WindowNode
from riverbed.processing.table import AggregateTable, EngineTable, Table, WindowedTable
from riverbed.processing.walltime import DEFAULT_LIVE, WallTime

if TYPE_CHECKING:
    from riverbed.processing.joins import How
    from riverbed.processing.topology import Flow, SubTopology
    from riverbed.processing.windows import Emit, WindowSpec
    from riverbed.topics import Topic

__all__ = ["GroupedStream", "Stream", "TableStream", "WindowedStream"]

T = TypeVar("T")
U = TypeVar("U")


class Stream(Generic[T]):
    """A lazy stream of a flow: each method adds a step."""

    def __init__(self, flow: Flow, sub: SubTopology, node: Node, schema: Any = None) -> None:
        self._flow = flow
        self._sub = sub
        self._node = node
        self._schema = schema

    def __repr__(self) -> str:
        return f"Stream(flow={self._flow.name!r}, group={self._sub.group!r})"

    def _then(self, node: Node, schema: Any = None) -> Stream[Any]:
        self._node.add(node)
        return Stream(self._flow, self._sub, node, schema)

    # -- stateless steps ------------------------------------------------------------------
    def map(self, fn: Callable[[T], U], *, schema: Any = None) -> Stream[U]:
        """Each value becomes `fn(value)`; `schema` names its type if a later step
        repartitions (values cross the repartition topic as that type, else as JSON data)."""
        return self._then(Map(fn), schema)

    def filter(self, predicate: Callable[[T], Any]) -> Stream[T]:
        """Keep the values for which `predicate` is true."""
        return self._then(Filter(predicate), self._schema)

    def flat_map(self, fn: Callable[[T], Any], *, schema: Any = None) -> Stream[Any]:
        """Each value becomes the values `fn(value)` returns (an iterable)."""
        return self._then(FlatMap(fn), schema)

    def peek(self, fn: Callable[[T], Any]) -> Stream[T]:
        """Call `fn(value)` for its effect (logging, metrics); the value goes on unchanged."""
        return self._then(Peek(fn), self._schema)

    def branch(self, *predicates: Callable[[T], Any]) -> list[Stream[T]]:
        """One stream per predicate (each value to the first that holds), plus a last
        stream for the values no predicate took."""
        if not predicates:
            raise ConfigError("branch() needs at least one predicate")
        node = Branch(list(predicates))
        self._node.add(node)
        arms = [node.add(Arm()) for _ in range(len(predicates) + 1)]
        return [Stream(self._flow, self._sub, arm, self._schema) for arm in arms]

    # -- re-keying --------------------------------------------------------------------------
    def key_by(self, fn: Callable[[T], str | bytes | int]) -> Stream[T]:
        """Key each value by `fn(value)`. On a topic of several partitions the records go
        through an internal repartition topic, so that a key's records meet in one
        partition for the steps after this one."""
        rekey = self._then(Rekey(fn), self._schema)
        return rekey._repartition()

    def _repartition(self) -> Stream[T]:
        if self._sub.partitions <= 1:
            return self  # one partition: every key meets there already
        topic = self._flow.repartition_topic(self._sub.partitions, self._schema)
        self._node.add(Sink(topic))
        sub, entry = self._flow.sub(topic)
        return Stream(self._flow, sub, entry, self._schema)

    # -- outputs ------------------------------------------------------------------------------
    def to(self, topic: Topic[Any] | str) -> None:
        """Publish each value to `topic` (with its key), committed with the input."""
        self._node.add(Sink(self._topic(topic)))

    def route(
        self,
        routes: Mapping[Topic[Any] | str, Callable[[T], Any]],
        *,
        default: Topic[Any] | str | None = None,
    ) -> None:
        """Publish each value to the first topic whose predicate holds, else to
        `default` (None: values no predicate took are dropped on purpose)."""
        pairs = [(self._topic(t), p) for t, p in routes.items()]
        self._node.add(Route(pairs, None if default is None else self._topic(default)))

    def _topic(self, topic: Topic[Any] | str) -> Topic[Any]:
        app = self._flow.app
        return app.get_topic(topic) if isinstance(topic, str) else topic

    # -- joins ------------------------------------------------------------------------------------
    def join(
        self,
        table: Topic[Any] | TableStream[Any],
        fn: Callable[[T, Any], U],
        *,
        how: How = "inner",
        name: str | None = None,
    ) -> Stream[U]:
        """Stream-table join: each value with the table's current value for its key,
        `fn(value, table_value)`. `table` is a topic (its latest value per key, read
        alongside this stream: co-partitioned, keyed alike) or an aggregation of this
        flow. `how="left"` keeps values without a table value (`table_value=None`)."""
        if isinstance(table, TableStream):
            if table.table not in self._sub.tables:
                raise ConfigError(
                    f"join with table {table.table.name!r}: it belongs to another part of "
                    "the flow; join with its topic instead"
                )
            looked_up = table.table
        else:
            looked_up = self._materialized(self._topic(table), name).table
        return self._then(LookupJoin(looked_up, fn, how))

    def _materialized(self, topic: Topic[Any], name: str | None) -> TableStream[Any]:
        flow, sub = self._flow, self._sub
        root = sub.side(topic, f"join with {topic.name!r}", table=True)
        table: Table[Any] = Table(
            flow.app, flow.table_name(name, f"{topic.name}.table"), topic.schema
        )
        flow.app.add_table(table)
        sub.add_table(table)
        node = root.add(Materialize(table))
        return TableStream(table, Stream(flow, sub, node, topic.schema))

    def join_stream(
        self,
        other: Topic[Any] | str,
        fn: Callable[[T, Any], U],
        *,
        within: float,
        how: How = "inner",
        grace: float = 0.0,
        name: str | None = None,
        wall_clock: float | None = DEFAULT_LIVE,
    ) -> Stream[U]:
        """Stream-stream join: values of the two streams with the same key whose times
        are at most `within` seconds apart, `fn(value, other_value)`. `how="left"`
        (or "outer") also emits values that found no partner once their window passed,
        with None for the missing side. Records later than `grace` go to the late topic.
        `wall_clock`: as for `window()`."""
        from riverbed.processing.joins import StreamJoin

        flow, sub = self._flow, self._sub
        topic = self._topic(other)
        table: EngineTable[Any] = EngineTable(
            flow.app,
            flow.table_name(name, f"join.{topic.name}"),
            StreamJoin(within, how=how, grace=grace),
        )
        flow.app.add_table(table)
        sub.add_table(table)
        late = flow.late_topic(sub.partitions)
        left_codec, right_codec = _json_codec(self._schema), _json_codec(topic.schema)
        apply = JoinApply(fn, left_codec, right_codec)
        clock = WallTime(wall_clock)
        left = StreamJoinSide(table, "left", left_codec, late, clock, ticks=True)
        right = StreamJoinSide(table, "right", right_codec, late, clock, ticks=False)
        self._node.add(left).add(apply)
        sub.side(topic, f"join with {topic.name!r}", table=False).add(right).add(apply)
        return Stream(flow, sub, apply)

    def to_table(self, *, name: str | None = None) -> TableStream[T]:
        """The latest value per key of this stream, as a table (and its changes)."""
        flow, sub = self._flow, self._sub
        table: Table[Any] = Table(flow.app, flow.table_name(name, "table"), self._schema)
        flow.app.add_table(table)
        sub.add_table(table)
        node = self._node.add(Materialize(table))
        return TableStream(table, Stream(flow, sub, node, self._schema))

    # -- aggregation --------------------------------------------------------------------------
    def group_by(self, fn: Callable[[T], str | bytes | int] | None = None) -> GroupedStream[T]:
        """Group by `fn(value)` (repartitioning as `key_by` does), or by the record key."""
        stream = self if fn is None else self.key_by(fn)
        return GroupedStream(stream)


class GroupedStream(Generic[T]):
    """A stream grouped by key, ready to aggregate or window."""

    def __init__(self, stream: Stream[T]) -> None:
        self._stream = stream

    def window(
        self,
        spec: WindowSpec,
        *,
        emit: Emit = "close",
        retention: float | None = 86_400.0,
        wall_clock: float | None = DEFAULT_LIVE,
    ) -> WindowedStream[T]:
        """Aggregate per window: `Tumbling`, `Hopping`, `Sliding` or `Session`.

        `emit`: "close" (one final result per window), "update" (every change) or
        "both". Closed windows stay queryable for `retention` seconds (None: forever).
        Records later than the window's grace go to `<app>.<flow>.late`. While a
        partition gets no records its windows also close on the app's clock, if its
        event time is live: within `wall_clock` seconds of the clock (None: only
        records move time; see `walltime.py`).
        """
        return WindowedStream(self._stream, spec, emit, retention, wall_clock)

    def _agg(self, aggregator: agg.Aggregator, name: str | None) -> TableStream[Any]:
        s = self._stream
        table: AggregateTable[Any] = AggregateTable(
            s._flow.app, s._flow.table_name(name, aggregator.name), aggregator
        )
        s._flow.app.add_table(table)
        s._sub.add_table(table)
        node = AggregateNode(table)
        s._node.add(node)
        return TableStream(table, Stream(s._flow, s._sub, node))

    def count(self, *, name: str | None = None) -> TableStream[int]:
        """Records per key."""
        return self._agg(agg.Count(), name)

    def sum(
        self, field: Callable[[T], Any] | None = None, *, name: str | None = None
    ) -> TableStream[Any]:
        """Sum of `field(value)` (or the value) per key."""
        return self._agg(agg.Sum(field), name)

    def min(
        self, field: Callable[[T], Any] | None = None, *, name: str | None = None
    ) -> TableStream[Any]:
        return self._agg(agg.Min(field), name)

    def max(
        self, field: Callable[[T], Any] | None = None, *, name: str | None = None
    ) -> TableStream[Any]:
        return self._agg(agg.Max(field), name)

    def mean(
        self, field: Callable[[T], Any] | None = None, *, name: str | None = None
    ) -> TableStream[Any]:
        return self._agg(agg.Mean(field), name)

    def reduce(self, fn: Callable[[Any, Any], Any], *, name: str | None = None) -> TableStream[Any]:
        """`fn(acc, value)` per key, starting from the first value."""
        return self._agg(agg.Reduce(fn), name)

    def aggregate(
        self,
        init: Callable[[], Any],
        fn: Callable[[Any, T], Any],
        *,
        merge: Callable[[Any, Any], Any] | None = None,
        name: str | None = None,
    ) -> TableStream[Any]:
        """Your own fold: `init()` then `fn(acc, value)`; accumulators must be JSON data."""
        return self._agg(agg.Aggregate(init, fn, merge), name)


class WindowedStream(GroupedStream[T]):
    """A grouped stream cut into windows; its aggregations make a `WindowedTable`."""

    def __init__(
        self,
        stream: Stream[T],
        spec: WindowSpec,
        emit: Emit,
        retention: float | None,
        wall_clock: float | None,
    ) -> None:
        super().__init__(stream)
        self._spec = spec
        self._emit = emit
        self._retention = retention
        self._wall_clock = wall_clock

    def _agg(self, aggregator: agg.Aggregator, name: str | None) -> TableStream[Any]:
        from riverbed.processing.windows import WindowedAggregation

        s = self._stream
        engine = WindowedAggregation(
            self._spec, aggregator, emit=self._emit, retention=self._retention
        )
        table = WindowedTable(s._flow.app, s._flow.table_name(name, aggregator.name), engine)
        s._flow.app.add_table(table)
        s._sub.add_table(table)
        late = s._flow.late_topic(s._sub.partitions)
        node = WindowNode(table, late, WallTime(self._wall_clock))
        s._node.add(node)
        return TableStream(table, Stream(s._flow, s._sub, node))


class TableStream(Generic[T]):
    """An aggregation's result: the queryable `table` and its stream of changes."""

    def __init__(self, table: Table[Any], changes: Stream[Any]) -> None:
        self.table = table
        self._changes = changes

    def __repr__(self) -> str:
        return f"TableStream({self.table.name!r})"

    def changes(self) -> Stream[Any]:
        """Each change as a value: the new result (windowed: a dict with key, start,
        end, value and final)."""
        return self._changes

    def to(self, topic: Topic[Any] | str) -> None:
        """Publish every change to `topic`, keyed by the group key."""
        self._changes.to(topic)

    def join(
        self,
        other: Topic[Any] | str,
        fn: Callable[[Any, Any], Any],
        *,
        how: How = "inner",
        name: str | None = None,
    ) -> TableStream[Any]:
        """Table-table join with the latest values of `other` (co-partitioned, keyed
        alike): a table of `fn(left, right)` per key, where a row exists when both sides
        do (inner), the left does (left) or either does (outer); its changes stream on."""
        from riverbed.processing.joins import TableJoin

        s = self._changes
        flow, sub = s._flow, s._sub
        topic = s._topic(other)
        codecs = (_json_codec(s._schema), _json_codec(topic.schema))
        table = TableJoinTable(
            flow.app, flow.table_name(name, f"join.{topic.name}"), TableJoin(how=how), fn, codecs
        )
        flow.app.add_table(table)
        sub.add_table(table)
        out = Arm()  # where the joined rows' changes continue, from either side
        s._node.add(TableJoinSide(table, "left", fn)).add(out)
        side = sub.side(topic, f"join with {topic.name!r}", table=True)
        side.add(TableJoinSide(table, "right", fn)).add(out)
        return TableStream(table, Stream(flow, sub, out))


def _json_codec(schema: Any) -> SchemaCodec:
    """How a join stores values of `schema` (JSON; plain data when unknown)."""
    if schema is None or schema is bytes:
        return AnyCodec()
    return make_codec(schema, "json")
