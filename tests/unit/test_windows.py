"""Windowed aggregation by example: each window type with hand-computed results.

Times are ms; window sizes are seconds in the specs (Tumbling(0.01) is 10 ms).
"""

from __future__ import annotations

import copy
import random
from collections.abc import Callable
from typing import Any

import pytest

from riverbed.errors import ConfigError
from riverbed.processing.aggregates import Aggregate, Aggregator, Count, Reduce, Sum
from riverbed.processing.view import DictView
from riverbed.processing.windows import (
    Emit,
    Hopping,
    Session,
    Sliding,
    Tumbling,
    WindowedAggregation,
    WindowedPartition,
    WindowResult,
    WindowSpec,
)

R = WindowResult


def _open(
    spec: WindowSpec,
    agg: Aggregator | None = None,
    *,
    emit: Emit = "both",
    retention: float | None = None,
    view: DictView | None = None,
) -> WindowedPartition:
    engine = WindowedAggregation(spec, agg or Count(), emit=emit, retention=retention)
    return engine.open(DictView() if view is None else view)


def _concat() -> Reduce:
    return Reduce(lambda a, b: a + b)


# -- tumbling -----------------------------------------------------------------------------
def test_tumbling_counts_per_key_and_closes_on_the_watermark() -> None:
    part = _open(Tumbling(0.01))
    assert part.watermark is None
    assert part.add("a", 1, "x") == [R("a", 0, 10, 1, False)]
    assert part.add("a", 5, "x") == [R("a", 0, 10, 2, False)]
    assert part.add("b", 12, "x") == [R("b", 10, 20, 1, False), R("a", 0, 10, 2, True)]
    assert part.add("a", 3, "x") is None
    assert part.watermark == 12
    assert part.advance(25) == [R("b", 10, 20, 1, True)]
    assert part.all_windows() == [R("a", 0, 10, 2, True), R("b", 10, 20, 1, True)]


def test_tumbling_windows_align_to_the_epoch_for_negative_times() -> None:
    part = _open(Tumbling(0.01), Sum(), emit="update")
    assert part.add("a", -1, 5) == [R("a", -10, 0, 5, False)]
    assert part.add("a", -10, 1) == [R("a", -10, 0, 6, False)]
    assert part.add("a", 0, 1) == [R("a", 0, 10, 1, False)]
    assert part.windows_of("a") == [(-10, 0, 6), (0, 10, 1)]
    assert part.windows_of("nobody") == []


def test_grace_keeps_a_window_open_after_its_end() -> None:
    part = _open(Tumbling(0.01, grace=0.005))
    assert part.add("a", 1, None) == [R("a", 0, 10, 1, False)]
    assert part.add("a", 12, None) == [R("a", 10, 20, 1, False)]
    assert part.add("a", 9, None) == [R("a", 0, 10, 2, False)]  # closes at 15, wm is 12
    assert part.add("a", 15, None) == [R("a", 10, 20, 2, False), R("a", 0, 10, 2, True)]
    assert part.add("a", 8, None) is None


def test_a_late_record_changes_nothing_not_even_the_watermark() -> None:
    view = DictView()
    part = _open(Tumbling(0.01), view=view)
    part.add("a", 25, None)
    before = copy.deepcopy(view.data)
    assert part.add("a", 3, None) is None
    assert view.data == before
    assert part.watermark == 25


# -- hopping ------------------------------------------------------------------------------
def test_hopping_updates_every_open_window_holding_the_record() -> None:
    part = _open(Hopping(0.01, advance=0.005))
    assert part.add("a", 7, None) == [R("a", 0, 10, 1, False), R("a", 5, 15, 1, False)]
    assert part.add("a", 12, None) == [
        R("a", 5, 15, 2, False),
        R("a", 10, 20, 1, False),
        R("a", 0, 10, 1, True),
    ]
    # [0, 10) is closed: only [5, 15) counts the record at 9.
    assert part.add("a", 9, None) == [R("a", 5, 15, 3, False)]
    assert part.add("a", 4, None) is None  # [-5, 5) and [0, 10) are both closed
    assert part.advance(15) == [R("a", 5, 15, 3, True)]
    assert part.advance(20) == [R("a", 10, 20, 1, True)]


# -- sliding ------------------------------------------------------------------------------
def test_sliding_window_per_record_and_out_of_order_updates() -> None:
    part = _open(Sliding(0.01, grace=0.01), Sum())
    assert part.add("a", 5, 1) == [R("a", -5, 6, 1, False)]
    assert part.add("a", 12, 2) == [R("a", 2, 13, 3, False)]
    # 8 gets its own window [-2, 9) (records 5 and 8) and joins [2, 13).
    assert part.add("a", 8, 4) == [R("a", -2, 9, 5, False), R("a", 2, 13, 7, False)]
    assert part.add("a", 17, 8) == [R("a", 7, 18, 14, False), R("a", -5, 6, 1, True)]
    assert part.advance(19) == [R("a", -2, 9, 5, True)]


def test_sliding_folds_in_time_order_whatever_the_arrival_order() -> None:
    part = _open(Sliding(0.01, grace=0.01), _concat(), emit="update")
    assert part.add("a", 5, "x") == [R("a", -5, 6, "x", False)]
    assert part.add("a", 9, "z") == [R("a", -1, 10, "xz", False)]
    assert part.add("a", 7, "y") == [R("a", -3, 8, "xy", False), R("a", -1, 10, "xyz", False)]
    # Same time: arrival order decides.
    assert part.add("a", 9, "w") == [R("a", -1, 10, "xyzw", False)]


def test_sliding_keeps_the_records_a_future_window_can_hold() -> None:
    part = _open(Sliding(0.01), emit="update")
    part.add("a", 10, None)
    part.add("b", 20, None)  # watermark 20: the earliest record still accepted is at 20
    assert part.add("a", 20, None) == [R("a", 10, 21, 2, False)]
    assert part.add("a", 19, None) is None


# -- sessions -----------------------------------------------------------------------------
def test_session_bridging_two_sessions_merges_them() -> None:
    part = _open(Session(gap=0.006, grace=0.02))
    assert part.add("a", 1, None) == [R("a", 1, 2, 1, False)]
    assert part.add("a", 12, None) == [R("a", 12, 13, 1, False)]
    assert part.add("a", 7, None) == [R("a", 12, 13, None, False, True), R("a", 1, 13, 3, False)]
    assert part.windows_of("a") == [(1, 13, 3)]
    assert part.advance(38) == []
    assert part.advance(39) == [R("a", 1, 13, 3, True)]  # 13 + gap 6 + grace 20


def test_session_extended_to_the_left_gets_a_new_start() -> None:
    part = _open(Session(gap=0.005, grace=0.01))
    assert part.add("a", 10, None) == [R("a", 10, 11, 1, False)]
    assert part.add("a", 6, None) == [R("a", 10, 11, None, False, True), R("a", 6, 11, 2, False)]
    assert part.add("a", 8, None) == [R("a", 6, 11, 3, False)]
    assert part.add("a", 14, None) == [R("a", 6, 15, 4, False)]


def test_session_merge_folds_sessions_in_start_order_then_adds_the_record() -> None:
    part = _open(Session(gap=0.005, grace=0.02), _concat(), emit="update")
    part.add("a", 1, "a")
    part.add("a", 9, "b")
    assert part.add("a", 5, "c") == [R("a", 9, 10, None, False, True), R("a", 1, 10, "abc", False)]


def test_session_closes_when_no_accepted_record_could_extend_it() -> None:
    part = _open(Session(gap=0.005), emit="close")
    assert part.add("a", 1, None) == []
    assert part.add("b", 7, None) == [R("a", 1, 2, 1, True)]  # 2 + gap 5 <= 7
    assert part.add("a", 6, None) is None  # within the gap, but its session is closed
    assert part.add("a", 7, None) == []
    assert part.windows_of("a") == [(1, 2, 1), (7, 8, 1)]


# -- emit and retention -------------------------------------------------------------------
@pytest.mark.parametrize(
    ("emit", "first", "second"),
    [
        ("close", [], [R("a", 0, 10, 1, True)]),
        ("update", [R("a", 0, 10, 1, False)], [R("a", 10, 20, 1, False)]),
        ("both", [R("a", 0, 10, 1, False)], [R("a", 10, 20, 1, False), R("a", 0, 10, 1, True)]),
    ],
)
def test_emit_picks_updates_finals_or_both(
    emit: Emit, first: list[WindowResult], second: list[WindowResult]
) -> None:
    part = _open(Tumbling(0.01), emit=emit)
    assert part.add("a", 1, None) == first
    assert part.add("a", 12, None) == second
    assert part.advance(20) == ([] if emit == "update" else [R("a", 10, 20, 1, True)])


def test_closed_windows_stay_queryable_for_the_retention() -> None:
    part = _open(Tumbling(0.01), emit="close", retention=0.005)
    part.add("a", 1, None)
    part.add("a", 12, None)
    assert part.all_windows() == [R("a", 0, 10, 1, True), R("a", 10, 20, 1, False)]
    part.advance(14)
    assert part.windows_of("a") == [(0, 10, 1), (10, 20, 1)]
    part.advance(15)  # closed at 10, kept 5 ms
    assert part.all_windows() == [R("a", 10, 20, 1, False)]


def test_zero_retention_drops_a_window_as_it_closes() -> None:
    part = _open(Tumbling(0.01), emit="close", retention=0)
    part.add("a", 1, None)
    assert part.add("a", 12, None) == [R("a", 0, 10, 1, True)]
    assert part.all_windows() == [R("a", 10, 20, 1, False)]


def test_no_retention_keeps_closed_windows_forever() -> None:
    part = _open(Tumbling(0.01), emit="close")
    part.add("a", 1, None)
    part.advance(10**12)
    assert part.all_windows() == [R("a", 0, 10, 1, True)]


SPECS = [
    Tumbling(0.01, grace=0.003),
    Hopping(0.01, advance=0.004, grace=0.002),
    Sliding(0.01, grace=0.004),
    Session(gap=0.005, grace=0.003),
]


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: type(s).__name__)
def test_state_stays_bounded_with_retention(spec: WindowSpec) -> None:
    view = DictView()
    part = _open(spec, Sum(), retention=0, view=view)
    for i in range(3000):
        part.add("abc"[i % 3], i * 7, i)
        assert len(view.data) < 40


# -- restore ------------------------------------------------------------------------------
Op = tuple[str, int, str]


def _stream() -> list[Op]:
    """Records drifting forward with out-of-order jitter, and advances (key "")."""
    rng = random.Random(7)
    out = []
    now = 0
    for _ in range(60):
        now += rng.randrange(4)
        if rng.random() < 0.1:
            out.append(("", now + rng.randrange(10), ""))
        else:
            out.append((rng.choice("ab"), now - rng.randrange(12), str(rng.randrange(10))))
    return out


def _feed(part: WindowedPartition, ops: list[Op]) -> list[Any]:
    return [part.add(k, ts, v) if k else part.advance(ts) for k, ts, v in ops]


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: type(s).__name__)
def test_reopening_the_view_mid_stream_gives_the_same_results(spec: WindowSpec) -> None:
    ops = _stream()
    whole = _open(spec, _concat(), retention=0.01)
    expected = _feed(whole, ops)
    assert any(r is None for r in expected)  # the stream has late records
    for split in range(0, len(ops), 7):
        view = DictView()
        first = _open(spec, _concat(), retention=0.01, view=view)
        got = _feed(first, ops[:split])
        second = _open(spec, _concat(), retention=0.01, view=view)
        assert second.watermark == first.watermark
        got += _feed(second, ops[split:])
        assert got == expected, split
        assert second.all_windows() == whole.all_windows()


# -- accumulators and failures ------------------------------------------------------------
def _append(acc: list[int], value: int) -> list[int]:
    acc.append(value)
    return acc


def _extend(a: list[int], b: list[int]) -> list[int]:
    a.extend(b)
    return a


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: type(s).__name__)
def test_a_mutating_aggregate_never_touches_stored_or_emitted_values(spec: WindowSpec) -> None:
    view = DictView()
    part = _open(spec, Aggregate(list, _append, _extend), view=view)
    first = part.add("a", 1, 1)
    stored = list(view.data.values())  # the very objects in the view, not copies
    frozen = copy.deepcopy((first, stored))
    part.add("a", 2, 2)
    assert (first, stored) == frozen  # neither the emission nor a stored value changed
    for _, _, value in part.windows_of("a"):
        value.append(99)  # a consumer scribbling on a result
    assert all(99 not in value for _, _, value in part.windows_of("a"))


def _picky(value: Any) -> int:
    if value == "bad":
        raise ValueError("bad value")
    return int(value)


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: type(s).__name__)
def test_a_failing_aggregator_leaves_the_state_as_it_was(spec: WindowSpec) -> None:
    view = DictView()
    part = _open(spec, Sum(_picky), view=view)
    part.add("a", 1, 1)
    part.add("a", 4, 2)
    before = copy.deepcopy(view.data)
    with pytest.raises(ValueError, match="bad value"):
        part.add("a", 3, "bad")
    assert view.data == before
    assert part.watermark == 4
    part.add("a", 5, 4)
    clean = _open(spec, Sum())
    for ts, value in ((1, 1), (4, 2), (5, 4)):
        clean.add("a", ts, value)
    assert part.all_windows() == clean.all_windows()


# -- validation ---------------------------------------------------------------------------
def _no_merge() -> Aggregate:
    return Aggregate(list, _append)


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: Tumbling(0), r"size=0\b.*> 0"),
        (lambda: Tumbling(-1), "size"),
        (lambda: Tumbling(0.0001), "size"),
        (lambda: Tumbling(float("nan")), "size"),
        (lambda: Tumbling(1, grace=-1), "grace"),
        (lambda: Hopping(0, 0), "size"),
        (lambda: Hopping(10, 0), "advance"),
        (lambda: Hopping(10, 20), "advance must be <= size"),
        (lambda: Sliding(0), "size"),
        (lambda: Sliding(1, grace=float("inf")), "grace"),
        (lambda: Session(0), "gap"),
        (lambda: Session(1, grace=-0.5), "grace"),
        (lambda: WindowedAggregation(Tumbling(1), Count(), retention=-1), "retention"),
        (lambda: WindowedAggregation(Tumbling(1), Count(), emit="often"), "emit"),  # type: ignore[arg-type]
        (lambda: WindowedAggregation(60, Count()), "Tumbling"),  # type: ignore[arg-type]
        (lambda: WindowedAggregation(Session(1), _no_merge()), "merge="),
        (lambda: WindowedAggregation(Sliding(1), _no_merge()), "merge="),
    ],
)
def test_bad_settings_raise_config_errors_naming_the_setting(
    make: Callable[[], object], match: str
) -> None:
    with pytest.raises(ConfigError, match=match):
        make()


def test_unmergeable_aggregates_are_fine_for_fixed_windows() -> None:
    part = _open(Hopping(0.01, 0.005), _no_merge(), emit="update")
    assert part.add("a", 7, 1) == [R("a", 0, 10, [1], False), R("a", 5, 15, [1], False)]
