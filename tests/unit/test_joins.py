"""The join engines on hand-computed examples."""

from __future__ import annotations

import json
from collections.abc import Hashable, Iterator
from typing import Any

import pytest

from riverbed.errors import ConfigError
from riverbed.processing.joins import (
    JoinResult,
    StreamJoin,
    TableJoin,
    lookup_join,
)
from riverbed.processing.view import DictView

R = JoinResult


# -- stream-stream ---------------------------------------------------------------------


def test_inner_join_pairs_records_within_the_window() -> None:
    part = StreamJoin(0.01).open(DictView())  # within 10 ms, no grace
    assert part.watermark is None
    assert part.left("a", 100, "L1") == []
    assert part.right("a", 105, "R1") == [R("a", 105, "L1", "R1")]
    # 11 ms from L1: no pair; the watermark passes 110, so L1 expires (silently: inner).
    assert part.right("a", 111, "R2") == []
    assert part.watermark == 111
    # Pairs come in the buffered side's (ts, arrival) order; result time is the later ts.
    assert part.left("a", 111, "L3") == [R("a", 111, "L3", "R1"), R("a", 111, "L3", "R2")]
    assert part.left("b", 111, "Lb") == []


def test_within_zero_pairs_equal_timestamps_only() -> None:
    part = StreamJoin(0).open(DictView())
    assert part.left("a", 100, 1) == []
    assert part.right("a", 100, 2) == [R("a", 100, 1, 2)]
    assert part.right("a", 101, 3) == []


def test_late_record_returns_none_and_changes_nothing() -> None:
    view = DictView()
    part = StreamJoin(0.01, grace=0.005).open(view)
    part.left("a", 100, "L1")
    part.right("a", 120, "R1")
    before = dict(view.data)
    # 114 + 5 < 120: late on either side, whatever it could have matched.
    assert part.left("a", 114, "late") is None
    assert part.right("a", 114, "late") is None
    assert view.data == before
    assert part.watermark == 120


def test_out_of_order_within_grace_still_joins() -> None:
    part = StreamJoin(0.01, how="left", grace=0.005).open(DictView())
    assert part.left("a", 100, "L1") == []
    assert part.left("b", 101, "Lb") == []
    # 97 + 5 >= 101: not late, and 3 ms from L1.
    assert part.right("a", 97, "R0") == [R("a", 100, "L1", "R0")]
    assert part.watermark == 101


def test_left_join_emits_unmatched_left_records_on_expiry() -> None:
    part = StreamJoin(0.01, how="left", grace=0.005).open(DictView())
    part.left("a", 100, "L1")
    part.left("b", 101, "Lb")
    part.right("a", 97, "R0")
    # Expiry is ts + within + grace < wm: at 115 only R0 (97) goes; a right record
    # emits nothing in a left join.
    assert part.advance(115) == []
    # At 117 L1 (matched) and Lb (never matched) go.
    assert part.advance(117) == [R("b", 101, "Lb", None)]
    assert part.advance(100) == []  # the watermark does not go back
    assert part.watermark == 117
    assert part.right("b", 112, "Rb") == []  # Lb is gone
    assert part.advance(10_000) == []


def test_outer_join_expiry_order_is_ts_then_left_then_arrival() -> None:
    part = StreamJoin(0.01, how="outer").open(DictView())
    part.right("k", 100, "R1")
    part.left("j", 100, "L1")
    part.left("i", 100, "L0")
    # The record at 120 pairs with nothing; then the three at 100 expire: lefts before
    # the right, lefts in arrival order (not key order).
    assert part.left("k", 120, "L2") == [
        R("j", 100, "L1", None),
        R("i", 100, "L0", None),
        R("k", 100, None, "R1"),
    ]
    assert part.advance(131) == [R("k", 120, "L2", None)]


def test_pairs_come_before_expiries_in_one_call() -> None:
    part = StreamJoin(0.005, how="outer").open(DictView())
    part.left("x", 105, "Lx")
    part.left("a", 110, "La")
    # 112 moves the watermark past 105 + 5: Lx expires after the pair is emitted.
    assert part.right("a", 112, "Ra") == [R("a", 112, "La", "Ra"), R("x", 105, "Lx", None)]


def test_matched_records_are_not_emitted_again_on_expiry() -> None:
    part = StreamJoin(0.01, how="outer").open(DictView())
    part.left("a", 100, "L")
    part.right("a", 104, "R")
    assert part.advance(1_000) == []


def test_expired_records_leave_the_view() -> None:
    view = DictView()
    part = StreamJoin(0.01, how="outer").open(view)
    part.left("a", 100, {"n": [1, 2]})
    part.right("b", 100, "R")
    assert len(view.data) == 3
    part.advance(1_000)
    assert view.data == {("wm",): 1_000}


STEPS: list[tuple[str, str, int, Any]] = [
    ("left", "a", 100, "L1"),
    ("left", "a", 100, "L2"),
    ("right", "b", 103, "Rb"),
    ("left", "a", 98, "L0"),
    ("right", "a", 100, "R1"),
    ("left", "b", 100, "Lb"),
    ("advance", "", 112, None),
    ("right", "a", 104, "R2"),
    ("left", "c", 130, "Lc"),
    ("advance", "", 200, None),
]


def run(part: Any, steps: list[tuple[str, str, int, Any]]) -> list[Any]:
    out = []
    for kind, key, ts, value in steps:
        out.append(part.advance(ts) if kind == "advance" else getattr(part, kind)(key, ts, value))
    return out


def test_one_run_gives_the_hand_computed_results() -> None:
    join = StreamJoin(0.005, how="outer", grace=0.01)
    assert run(join.open(DictView()), STEPS) == [
        [],
        [],
        [],
        [],
        [R("a", 100, "L0", "R1"), R("a", 100, "L1", "R1"), R("a", 100, "L2", "R1")],
        [R("b", 103, "Lb", "Rb")],
        [],
        [R("a", 104, "L1", "R2"), R("a", 104, "L2", "R2")],
        # wm 130: everything up to 114 expires; all of it matched.
        [],
        [R("c", 130, "Lc", None)],
    ]


@pytest.mark.parametrize("cut", range(len(STEPS) + 1))
def test_reopening_from_the_same_view_mid_stream_changes_nothing(cut: int) -> None:
    join = StreamJoin(0.005, how="outer", grace=0.01)
    whole = run(join.open(DictView()), STEPS)
    view = DictView()
    first = run(join.open(view), STEPS[:cut])
    assert first + run(join.open(view), STEPS[cut:]) == whole


def test_arrival_order_survives_reopen() -> None:
    view = DictView()
    join = StreamJoin(0.01)
    join.open(view).left("a", 100, "first")
    part = join.open(view)
    part.left("a", 100, "second")
    assert part.right("a", 100, "R") == [R("a", 100, "first", "R"), R("a", 100, "second", "R")]


def test_state_is_plain_json() -> None:
    view = DictView()
    part = StreamJoin(0.01, how="outer").open(view)
    part.left("a", 100, {"x": [1]})
    part.right("a", 101, [2, 3])
    for key, value in view.items():
        assert isinstance(key, tuple)
        assert all(isinstance(piece, str | int) for piece in key)
        assert json.loads(json.dumps(value)) == value


class CountingView(DictView):
    """A `DictView` that counts reads, to see how much of the state a record touches."""

    def __init__(self) -> None:
        super().__init__()
        self.reads = 0

    def get(self, key: Hashable, default: Any = None) -> Any:
        self.reads += 1
        return super().get(key, default)

    def items(self) -> Iterator[tuple[Hashable, Any]]:
        self.reads += len(self.data)
        return super().items()


def test_a_record_reads_only_its_partners() -> None:
    view = CountingView()
    part = StreamJoin(3600).open(view)
    for n in range(2_000):
        part.left(f"k{n}", 1_000 + n, n)
    view.reads = 0
    assert part.right("k7", 3_000, "R") == [R("k7", 3_000, 7, "R")]
    assert view.reads < 10


# -- table-table -----------------------------------------------------------------------


def test_inner_table_join() -> None:
    part = TableJoin().open(DictView())
    assert part.left("a", 1) is None
    assert part.right("a", 2) == R("a", 0, 1, 2)
    assert part.left("a", 1) is None  # same value: the row did not change
    assert part.left("a", 3) == R("a", 0, 3, 2)
    assert part.get("a") == R("a", 0, 3, 2)
    assert part.right("a", None) == R("a", 0, None, None, removed=True)
    assert part.right("a", None) is None  # nothing to delete
    assert part.get("a") is None
    assert part.rows() == []


def test_left_table_join() -> None:
    part = TableJoin(how="left").open(DictView())
    assert part.right("a", 2) is None
    assert part.left("a", 1) == R("a", 0, 1, 2)
    assert part.right("a", None) == R("a", 0, 1, None)
    assert part.left("a", None) == R("a", 0, None, None, removed=True)
    assert part.left("b", 5) == R("b", 0, 5, None)
    assert part.rows() == [R("b", 0, 5, None)]


def test_outer_table_join() -> None:
    part = TableJoin(how="outer").open(DictView())
    assert part.right("a", [2]) == R("a", 0, None, [2])
    assert part.left("a", {"v": 1}) == R("a", 0, {"v": 1}, [2])
    assert part.left("a", None) == R("a", 0, None, [2])
    assert part.right("a", None) == R("a", 0, None, None, removed=True)
    assert part.left("zz", None) is None


def test_table_rows_are_sorted_by_key_and_survive_reopen() -> None:
    view = DictView()
    part = TableJoin(how="outer").open(view)
    part.left("b", 1)
    part.right("a", 2)
    part.left("c", 3)
    part.right("c", 4)
    expected = [R("a", 0, None, 2), R("b", 0, 1, None), R("c", 0, 3, 4)]
    assert part.rows() == expected
    assert TableJoin(how="outer").open(view).rows() == expected
    assert TableJoin(how="inner").open(view).rows() == [R("c", 0, 3, 4)]


# -- stream-table ----------------------------------------------------------------------


def test_lookup_join() -> None:
    assert lookup_join("event", {"name": "x"}, "inner") == ("event", {"name": "x"})
    assert lookup_join("event", None, "inner") is None
    assert lookup_join("event", None, "left") == ("event", None)
    assert lookup_join("event", 0, "inner") == ("event", 0)


# -- validation ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("make", "names"),
    [
        (lambda: StreamJoin(-1), "within"),
        (lambda: StreamJoin(float("nan")), "within"),
        (lambda: StreamJoin(float("inf")), "within"),
        (lambda: StreamJoin(1, grace=-0.5), "grace"),
        (lambda: StreamJoin(1, how="full"), "how"),  # type: ignore[arg-type]
        (lambda: TableJoin(how="cross"), "how"),  # type: ignore[arg-type]
        (lambda: lookup_join(1, 2, "outer"), "outer"),
        (lambda: lookup_join(1, 2, "right"), "how"),  # type: ignore[arg-type]
    ],
)
def test_bad_settings_are_refused_with_the_name(make: Any, names: str) -> None:
    with pytest.raises(ConfigError, match=names):
        make()


def test_config_errors_are_value_errors_and_sizes_convert_to_ms() -> None:
    with pytest.raises(ValueError, match="within"):
        StreamJoin(-0.001)
    join = StreamJoin(1.5, grace=0.0004)
    assert (join.within_ms, join.grace_ms) == (1_500, 0)
