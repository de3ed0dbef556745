"""The join engines against the brute-force reference, on random inputs.

After every step the engine's whole returned list must equal the reference's; runs
are cut at random points and continued from a JSON round trip of the view (what a
restore from the changelog gives), which must not change a single emission.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from tests.unit.join_reference import RefStreamJoin, RefTableJoin, all_results

from riverbed.processing.joins import JoinResult, StreamJoin, TableJoin
from riverbed.processing.view import DictView

Op = tuple[str, str, int, Any]
HOWS = st.sampled_from(["inner", "left", "outer"])


def json_copy(view: DictView) -> DictView:
    """The view as the changelog would restore it: keys via JSON arrays, values via JSON,
    and entries in another order (`items()` promises none)."""
    text = json.dumps([[list(k), v] for k, v in reversed(list(view.items()))])
    return DictView({tuple(k): v for k, v in json.loads(text)})


@st.composite
def stream_ops(draw: st.DrawFn) -> list[Op]:
    """Records whose times follow a rising clock with jitter behind it, and advances."""
    clock = 1_000
    ops: list[Op] = []
    for n in range(draw(st.integers(0, 40))):
        # Coarse steps and jitter make equal timestamps common: ties are where arrival
        # order (which must survive a reopen) decides.
        clock += draw(st.sampled_from([0, 0, 1, 5, 12]))
        kind = draw(st.sampled_from(["left", "left", "right", "right", "advance"]))
        if kind == "advance":
            ops.append((kind, "", clock + draw(st.integers(-20, 30)), None))
        else:
            key = draw(st.sampled_from("abc"))
            ops.append((kind, key, clock - draw(st.sampled_from([0, 0, 3, 10, 40])), n))
    return ops


def apply_stream(part: Any, op: Op) -> Any:
    kind, key, ts, value = op
    if kind == "advance":
        return part.advance(ts)
    return getattr(part, kind)(key, ts, value)


@settings(max_examples=400, deadline=None)
@given(
    ops=stream_ops(),
    within_ms=st.sampled_from([0, 5, 20, 50]),
    grace_ms=st.sampled_from([0, 10, 30]),
    how=HOWS,
    reopen_at=st.sets(st.integers(0, 40), max_size=3),
)
def test_stream_join_matches_reference(
    ops: list[Op], within_ms: int, grace_ms: int, how: Any, reopen_at: set[int]
) -> None:
    join = StreamJoin(within_ms / 1000, how=how, grace=grace_ms / 1000)
    view = DictView()
    part = join.open(view)
    ref = RefStreamJoin(within_ms, grace_ms, how)
    emitted: Counter[JoinResult] = Counter()
    for n, op in enumerate(ops):
        if n in reopen_at:
            view = json_copy(view)
            part = StreamJoin(within_ms / 1000, how=how, grace=grace_ms / 1000).open(view)
        got = apply_stream(part, op)
        assert got == apply_stream(ref, op), f"step {n}: {op}"
        assert part.watermark == ref.wm
        emitted.update(got or [])
    flushed = part.advance(10**9)
    assert flushed == ref.advance(10**9)
    emitted.update(flushed)
    assert emitted == all_results(ref.accepted, within_ms, how)
    assert [k for k, _ in view.items()] == ([("wm",)] if ref.wm is not None else [])


TableOp = tuple[str, str, Any]


table_ops = st.lists(
    st.tuples(
        st.sampled_from(["left", "right"]),
        st.sampled_from("abc"),
        st.one_of(st.none(), st.integers(0, 3), st.lists(st.integers(0, 1), max_size=2)),
    ),
    max_size=40,
)


@settings(max_examples=300, deadline=None)
@given(ops=table_ops, how=HOWS, reopen_at=st.sets(st.integers(0, 40), max_size=3))
def test_table_join_matches_reference(ops: list[TableOp], how: Any, reopen_at: set[int]) -> None:
    view = DictView()
    part = TableJoin(how=how).open(view)
    ref = RefTableJoin(how)
    for n, (side, key, value) in enumerate(ops):
        if n in reopen_at:
            view = json_copy(view)
            part = TableJoin(how=how).open(view)
        got = getattr(part, side)(key, value)
        assert got == getattr(ref, side)(key, value), f"step {n}: {side} {key} {value}"
        assert part.get(key) == ref.row(key)
        assert part.rows() == ref.rows()
    assert json_copy(view).data == view.data
