"""The window engine against a brute-force reference, on random streams.

Each example draws a window spec, an aggregator, an emit mode, a retention and a stream
of records (a few keys, times drifting forward with out-of-order jitter) sprinkled with
`advance` calls. After every step the engine's returned emissions (the whole list, in
order) and `all_windows()` must equal the reference's. The same stream is also run split
in two, the second half on a partition reopened from a JSON round trip of the view.

The view is a `StrictView`: it fails the test if the engine stores anything that is not
JSON data or mutates a stored value in place (the runtime's journal relies on that).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Hashable
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from tests.unit.window_reference import ReferenceWindows

from riverbed.processing.aggregates import Aggregate, Count, Max, Mean, Min, Reduce, Sum
from riverbed.processing.view import DictView
from riverbed.processing.windows import (
    Hopping,
    Session,
    Sliding,
    Tumbling,
    WindowedAggregation,
    WindowedPartition,
    WindowSpec,
)

Op = tuple[str, str, int, int]  # ("add", key, ts, value) or ("advance", "", to, 0)
_MISSING: Any = object()


class StrictView(DictView):
    """A `DictView` that checks the engine's rules: JSON values, never mutated in place."""

    def __init__(self, data: dict[Hashable, Any] | None = None) -> None:
        super().__init__(data)
        self.shadow = copy.deepcopy(self.data)

    def put(self, key: Hashable, value: Any) -> None:
        self._unchanged(key)
        assert isinstance(key, tuple)
        assert all(isinstance(part, str | int) for part in key), key
        assert json.loads(json.dumps(value)) == value, f"not JSON data: {value!r}"
        super().put(key, value)
        self.shadow[key] = copy.deepcopy(value)

    def delete(self, key: Hashable) -> None:
        self._unchanged(key)
        super().delete(key)
        self.shadow.pop(key, None)

    def _unchanged(self, key: Hashable) -> None:
        now, then = self.data.get(key, _MISSING), self.shadow.get(key, _MISSING)
        assert now == then, f"{key!r} was mutated in place: {then!r} -> {now!r}"

    def check(self) -> None:
        assert self.data == self.shadow, "a stored value was mutated in place"


def _append(acc: list[int], value: int) -> list[int]:
    acc.append(value)  # mutates on purpose: the engine must hand it a copy
    return acc


def _extend(a: list[int], b: list[int]) -> list[int]:
    a.extend(b)
    return a


AGGREGATORS: dict[str, Callable[[], Any]] = {
    "count": Count,
    "sum": Sum,
    "float-sum": lambda: Sum(lambda v: v * 0.1),  # float sums depend on the order
    "min": Min,
    "max": Max,
    "mean": Mean,
    "concat": lambda: Reduce(lambda a, b: f"{a},{b}"),  # not commutative
    "list": lambda: Aggregate(list, _append, _extend),
}

KINDS = {Tumbling: "tumbling", Hopping: "hopping", Sliding: "sliding", Session: "session"}


@st.composite
def specs(draw: st.DrawFn) -> WindowSpec:
    grace = draw(st.integers(0, 8)) / 1000
    size = draw(st.integers(1, 15))
    kind = draw(st.sampled_from(["tumbling", "hopping", "sliding", "session"]))
    if kind == "tumbling":
        return Tumbling(size / 1000, grace)
    if kind == "hopping":
        return Hopping(size / 1000, draw(st.integers(1, size)) / 1000, grace)
    if kind == "sliding":
        return Sliding(size / 1000, grace)
    return Session(draw(st.integers(1, 8)) / 1000, grace)


@st.composite
def streams(draw: st.DrawFn) -> list[Op]:
    now = draw(st.integers(-40, 40))
    steps = draw(
        st.lists(
            st.tuples(
                st.integers(0, 4),  # how far time drifts on
                st.integers(0, 11),  # 0: an advance, else a record
                st.sampled_from("ab"),
                st.integers(-12, 15),  # jitter: mostly behind the drift
                st.integers(0, 9),
            ),
            min_size=8,
            max_size=50,
        )
    )
    ops: list[Op] = []
    for drift, kind, key, jitter, value in steps:
        now += drift
        if kind == 0:
            ops.append(("advance", "", now + jitter, 0))
        else:
            ops.append(("add", key, now + min(jitter, 3), value))
    return ops


def _reference(spec: WindowSpec, agg: str, emit: str, retention: float | None) -> ReferenceWindows:
    return ReferenceWindows(
        KINDS[type(spec)],
        AGGREGATORS[agg](),
        size=getattr(spec, "size", 0.0),
        advance=getattr(spec, "advance", 0.0),
        gap=getattr(spec, "gap", 0.0),
        grace=spec.grace,
        emit=emit,
        retention=retention,
    )


def _step(part: WindowedPartition | ReferenceWindows, op: Op) -> Any:
    verb, key, ts, value = op
    return part.add(key, ts, value) if verb == "add" else part.advance(ts)


def _reopened(view: StrictView, engine: WindowedAggregation) -> tuple[StrictView, Any]:
    """A new partition on a copy of the view whose values went through JSON."""
    data = {k: json.loads(json.dumps(v)) for k, v in view.data.items()}
    copied = StrictView(copy.deepcopy(data))
    return copied, engine.open(copied)


@settings(max_examples=1000, deadline=None)
@given(
    spec=specs(),
    agg=st.sampled_from(sorted(AGGREGATORS)),
    emit=st.sampled_from(["close", "update", "both"]),
    retention=st.none() | st.integers(0, 20).map(lambda r: r / 1000),
    ops=streams(),
    split=st.integers(0, 50),
)
def test_engine_matches_reference(
    spec: WindowSpec, agg: str, emit: Any, retention: float | None, ops: list[Op], split: int
) -> None:
    reference = _reference(spec, agg, emit, retention)
    expected = [(_step(reference, op), reference.all_windows()) for op in ops]

    for reopen_at in (None, split % (len(ops) + 1)):
        engine = WindowedAggregation(spec, AGGREGATORS[agg](), emit=emit, retention=retention)
        view = StrictView()
        part = engine.open(view)
        for i, op in enumerate(ops):
            if i == reopen_at:
                view, part = _reopened(view, engine)
            emitted = _step(part, op)
            view.check()
            assert (emitted, part.all_windows()) == expected[i], (i, op)
        assert part.watermark == reference.wm
