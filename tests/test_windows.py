"""Count and time windows over merging statistics, against the rows they should hold by
definition (a brute-force selection of the stream), and the error of a pair."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import mean_absolute_error, zero_one_loss

from predwatch.batches import Columns
from predwatch.config import WindowSettings
from predwatch.metrics.errors import errors, pair_errors
from predwatch.metrics.windows import (
    TIME_WINDOW_STEPS,
    CountWindow,
    TimeWindow,
    make_windows,
)
from predwatch.records import Label, Prediction


class Rows:
    """A statistic that keeps the ``x`` of every row it was given, in order, so a test can
    check exactly which rows a window holds."""

    def __init__(self) -> None:
        self.values: list[float] = []

    def update(self, columns: Columns) -> None:
        self.values += columns["x"].tolist()

    def merge(self, other: Rows) -> None:
        self.values += other.values


def batches(sizes: list[int], times: list[float]) -> list[Columns]:
    """Consecutive batches of rows numbered 0, 1, 2, ... with the given event times."""
    out, start = [], 0
    for size in sizes:
        size = min(size, len(times) - start)
        x = np.arange(start, start + size, dtype=np.float64)
        out.append({"x": x, "timestamp": np.array(times[start : start + size])})
        start += size
    return out


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 50), st.lists(st.integers(0, 40), max_size=12))
def test_count_window_holds_exactly_the_last_rows(size: int, sizes: list[int]) -> None:
    window = CountWindow(size, Rows, Rows.update)
    total = sum(sizes)
    for batch in batches(sizes, [0.0] * total):
        window.add(batch, clock=0.0)
    assert window.stats(0.0).values == list(range(max(0, total - size), total))
    assert window.span(0.0) is None


@dataclass
class SpanCase:
    duration: float
    clock: float
    start: float  # the window's start, worked out by hand
    end: float


SPAN_CASES = [
    # An hour at 10:07 (36,420 s): buckets of 5 minutes, the last one holds the clock.
    SpanCase(3600.0, 36_420.0, 33_000.0, 36_600.0),
    # On a bucket's edge the clock opens a new bucket, the window starts 11 buckets back.
    SpanCase(3600.0, 36_000.0, 32_700.0, 36_300.0),
    # Before the epoch: floor, not truncation.
    SpanCase(60.0, -1.0, -60.0, 0.0),
]


@pytest.mark.parametrize("case", SPAN_CASES)
def test_time_window_span_slides_in_twelfths(case: SpanCase) -> None:
    window = TimeWindow(case.duration, Rows, Rows.update)
    assert window.span(case.clock) == (case.start, case.end)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.floats(0.0, 1000.0), min_size=1, max_size=200),
    st.lists(st.integers(1, 30), min_size=1, max_size=10),
    st.sampled_from([60.0, 120.0, 100.0]),
)
def test_time_window_holds_the_rows_of_its_span_in_time_order(
    offsets: list[float], sizes: list[int], duration: float
) -> None:
    times = sorted(offsets)  # the clock is the latest event time seen, as in the monitor
    sizes = [*sizes, len(times)]
    window = TimeWindow(duration, Rows, Rows.update)
    clock, seen = -math.inf, 0
    for batch in batches(sizes, times):
        if not len(batch["x"]):
            break
        clock = max(clock, float(batch["timestamp"].max()))
        window.add(batch, clock)
        seen += len(batch["x"])
        start, end = window.span(clock)
        step = duration / TIME_WINDOW_STEPS
        # (A clock on a bucket's edge may round into either bucket when the step is inexact.)
        assert end - start == pytest.approx(duration) and start - 1e-9 <= clock <= end + 1e-9
        # Rows older than the window when they arrive are never counted; later ones stay
        # until their bucket slides out.
        expected = [
            i
            for i in range(seen)
            if math.floor(times[i] / step) >= math.floor(clock / step) - TIME_WINDOW_STEPS + 1
        ]
        held = window.stats(clock).values
        assert sorted(held) == expected
        # Buckets merge oldest first: rows come out in the order of their buckets.
        buckets = [math.floor(times[int(i)] / step) for i in held]
        assert buckets == sorted(buckets)


def test_a_late_row_in_a_forgotten_bucket_is_not_counted() -> None:
    window = TimeWindow(120.0, Rows, Rows.update)  # buckets of 10 s
    window.add({"x": np.array([1.0]), "timestamp": np.array([495.0])}, clock=495.0)
    window.add({"x": np.array([2.0, 3.0]), "timestamp": np.array([370.0, 385.0])}, clock=495.0)
    assert window.stats(495.0).values == [3.0, 1.0]  # 370 is before the window (380 on)
    assert window.stats(620.0).values == []


def test_buckets_kept_longer_are_read_by_range() -> None:
    window = TimeWindow(120.0, Rows, Rows.update)
    times = np.array([5.0, 15.0, 15.5, 130.0, 250.0])
    window.add_from({"x": np.arange(5.0), "timestamp": times}, low=1)
    assert sorted(window.held()) == [1, 13, 25]
    assert window.merged(1, 14).values == [1.0, 2.0, 3.0]
    assert window.merged(13).values == [3.0, 4.0]
    window.forget_before(13)
    assert sorted(window.held()) == [13, 25] and window.bounds(13, 25) == (130.0, 250.0)
    # ``only``: rows of other buckets are left out, as the estimate leaves out predictions
    # it never saw arrive.
    window.add_from({"x": np.array([5.0, 6.0]), "timestamp": np.array([135.0, 145.0])}, 0, {14})
    assert window.merged(13).values == [3.0, 6.0, 4.0]


def test_make_windows_builds_one_window_per_setting() -> None:
    made = make_windows(
        [WindowSettings(name="last_5", events=5), WindowSettings(name="1m", duration=60)],
        Rows,
        Rows.update,
    )
    assert isinstance(made["last_5"], CountWindow) and made["last_5"].size == 5
    assert isinstance(made["1m"], TimeWindow) and made["1m"].duration == 60.0


def _pair(predicted: object, actual: str, number: float | None) -> tuple[Prediction, Label]:
    return (
        Prediction("a", "m", "v", 0.0, predicted, None, None, {}, {}),
        Label("a", 1.0, actual, number),
    )


def test_pair_errors_are_zero_one_loss_and_absolute_error() -> None:
    classes = [_pair("1", "1", 1.0), _pair("1", "0", 0.0), _pair("cat", "dog", None)]
    assert pair_errors(classes, "binary").tolist() == [0.0, 1.0, 1.0]
    actual, predicted = ["1", "0", "dog"], ["1", "1", "cat"]
    assert pair_errors(classes, "multiclass").sum() == zero_one_loss(
        actual, predicted, normalize=False
    )
    numbers = [_pair(3.0, "1.5", 1.5), _pair(-2, "4", 4.0)]
    assert pair_errors(numbers, "regression").tolist() == [1.5, 6.0]
    assert pair_errors(numbers, "regression").mean() == mean_absolute_error([1.5, 4.0], [3.0, -2])
    # Columns of class indices give the same errors as the pairs' labels.
    assert errors("binary", np.array([1, 1, 2]), np.array([1, 0, 3])).tolist() == [0.0, 1.0, 1.0]
