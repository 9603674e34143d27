"""A bounded history of closed event-time windows of one model version, and a band over it.

Predictions fall into tumbling windows of their own event time,
``[k * window, (k + 1) * window)``. A window holds the sufficient statistics of
its matched pairs (so its metrics are those of its pairs, as scikit-learn
computes them; ROC AUC from score histograms), the expected confusion of its
predictions' scores (CBPE, as ``drift.estimate`` counts it, binary models), and
how many of its predictions still wait for their fate.

Labels come late, so a window's metrics move until its pairs are complete. A
window is **closed** while

1. every prediction of it that arrived has ended: matched, expired unlabelled
   or set aside as late by the join (so at the latest once the join's
   watermark passes its end plus ``join.label_timeout``, earlier when every
   label is in);
2. the event clock (the latest prediction time) is past its end by
   ``join.grace``, after which a prediction of it is behind its input;
3. every earlier window is closed, so the history grows at its end.

These are facts of the events read, not of the order they were read in, so
the history is too. A prediction of a closed window that still comes (from a
partition behind the others) opens it again until it is complete. Once
``keep`` later windows are closed, a window is dropped, and what still comes
for it is left out of the history.

>>> import numpy as np
>>> history = VersionHistory("binary", window=60.0, keep=4, grace=5.0)
>>> history.arrived(np.array([1.0, 2.0, 61.0]))
>>> history.matched({"timestamp": np.array([1.0, 2.0]), "actual": np.array([1, 0]),
...                  "predicted": np.array([1, 1]), "score": np.array([0.9, 0.6])})
>>> history.points("accuracy", clock=64.0)  # 60 + grace not reached yet
[]
>>> history.points("accuracy", clock=65.0)
[Point(start=0.0, end=60.0, value=0.5, count=2)]
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from predwatch.batches import Columns, take_columns
from predwatch.drift.estimate import ExpectedConfusion, to_fixed
from predwatch.metrics.classification import (
    SCORE_BINS,
    ClassificationStats,
    binary_metrics,
    multiclass_metrics,
    score_bins,
)
from predwatch.metrics.model import POSITIVE, Stats, add_pairs
from predwatch.metrics.regression import RegressionStats, regression_metrics

MIN_REFERENCE = 3  # windows before the latest that a band needs
DENSE_SPAN = 256  # windows one batch's pairs may span to be counted in one pass
EPS = 1e-15  # scores are clipped to [EPS, 1 - EPS] before logs, as in ``classification.py``
ESTIMATED = "estimated_accuracy"
# The pairs a metric's value is computed over, when not all of the window's pairs.
_SAMPLES = {
    "log_loss": "log_loss_count",
    "brier": "brier_count",
    "roc_auc": "brier_count",  # the pairs with a score
    "mape": "percentage_count",
}
METRICS = {  # what ``ModelMetrics`` reports, per task, in the summary's order
    "binary": ("accuracy", "precision", "recall", "f1", "roc_auc", "log_loss", "brier"),
    "multiclass": ("accuracy", "macro_precision", "macro_recall", "macro_f1", "log_loss"),
    "regression": ("mae", "rmse", "mape", "r2", "bias"),
}


@dataclass(frozen=True, slots=True)
class Point:
    """One closed window: its span of event time, the metric's value (None where undefined)
    and the number of pairs (predictions, for an estimate) behind it."""

    start: float
    end: float
    value: float | None
    count: int


def split_binary(
    columns: Columns, offsets: np.ndarray, span: int
) -> list[ClassificationStats | None]:
    """Statistics of a binary model's pairs in each of ``span`` windows (``offsets`` says
    which), in one pass: per window what ``ClassificationStats.update`` of its own pairs
    gives (a test holds them equal); None for a window without pairs."""
    actual, predicted = columns["actual"], columns["predicted"]
    n = int(max(actual.max(), predicted.max())) + 1
    cells = offsets * (n * n) + actual * n + predicted
    confusion = np.bincount(cells, minlength=span * n * n).reshape(span, n, n)
    pairs = np.bincount(offsets, minlength=span)
    score = columns.get("score")
    scored = ~np.isnan(score) if score is not None else np.zeros(len(offsets), bool)
    any_scored = score is not None and bool(scored.any())
    if score is not None and any_scored:
        s, positive, at = score[scored], actual[scored] == POSITIVE, offsets[scored]
        clipped = np.clip(s, EPS, 1.0 - EPS)
        losses = -np.log(np.where(positive, clipped, 1.0 - clipped))
        log_loss = np.bincount(at, weights=losses, minlength=span)
        brier = np.bincount(at, weights=(s - positive) ** 2, minlength=span)
        count = np.bincount(at, minlength=span)
        bins = (at * 2 + positive) * SCORE_BINS + score_bins(s)
        histograms = np.bincount(bins, minlength=span * 2 * SCORE_BINS)
        histograms = histograms.reshape(span, 2, SCORE_BINS)
    result: list[ClassificationStats | None] = []
    for offset in range(span):
        if not pairs[offset]:
            result.append(None)
            continue
        stats = ClassificationStats()
        stats.confusion = confusion[offset]
        if any_scored and count[offset]:  # as ``update``: no histograms without a score
            stats.log_loss_sum, stats.brier_sum = float(log_loss[offset]), float(brier[offset])
            stats.log_loss_count = stats.brier_count = int(count[offset])
            stats.negative_scores, stats.positive_scores = histograms[offset]
        result.append(stats)
    return result


def values_of(task: str, stats: Stats) -> dict[str, tuple[float | None, int]]:
    """Each metric of ``task`` as ``(value, count)``."""
    if isinstance(stats, RegressionStats):
        metrics = regression_metrics(stats)
    elif task == "binary":
        metrics = binary_metrics(stats, POSITIVE)
    else:
        metrics = multiclass_metrics(stats)
    return {
        name: (metrics.get(name), int(getattr(stats, _SAMPLES.get(name, "count"))))
        for name in METRICS[task]
    }


class _Window:
    """One tumbling window: statistics of its pairs, its expected confusion, and how many of
    its predictions have not ended yet."""

    __slots__ = ("expected", "stats", "values", "waiting")

    def __init__(self, stats: Stats, estimate: bool) -> None:
        self.stats = stats
        self.expected = ExpectedConfusion() if estimate else None
        self.waiting = 0
        self.values: dict[str, tuple[float | None, int]] | None = None  # None: not computed

    def metrics(self, task: str) -> dict[str, tuple[float | None, int]]:
        """Each metric as ``(value, count)``; computed once per change, when first read."""
        if self.values is None:
            values = values_of(task, self.stats)
            if self.expected is not None:
                values[ESTIMATED] = (self.expected.metrics()["accuracy"], self.expected.count)
            self.values = values
        return self.values


class VersionHistory:
    """Tumbling windows of one model version; the last ``keep`` closed ones are kept.

    ``estimate`` keeps CBPE estimated accuracy per window (binary models whose
    scores are calibrated probabilities): pass the predicted class and score of
    arriving predictions to ``arrived``.
    """

    def __init__(
        self, task: str, window: float, keep: int, grace: float, estimate: bool = False
    ) -> None:
        self.task = task
        self.window = window
        self.keep = keep
        self.grace = grace
        self.estimate = estimate and task == "binary"
        self._windows: dict[int, _Window] = {}
        self._floor: int | None = None  # windows before it were dropped

    def _index(self, timestamps: np.ndarray) -> np.ndarray:
        return np.floor(timestamps / self.window).astype(np.int64)

    def _window(self, index: int) -> _Window | None:
        """The window of ``index``, opened when first needed; None once dropped."""
        if self._floor is not None and index < self._floor:
            return None
        window = self._windows.get(index)
        if window is None:
            stats = RegressionStats() if self.task == "regression" else ClassificationStats()
            window = self._windows[index] = _Window(stats, self.estimate)
        return window

    def _groups(self, timestamps: np.ndarray) -> list[tuple[_Window, np.ndarray | None, int]]:
        """``(window, rows, count)`` for each window the timestamps fall in (rows None: all)."""
        if timestamps.size == 0:
            return []
        index = self._index(timestamps)
        low, high = int(index.min()), int(index.max())
        if low == high:  # the usual batch: one window
            window = self._window(low)
            return [] if window is None else [(window, None, int(index.size))]
        groups = []
        for value, count in zip(*np.unique(index, return_counts=True), strict=True):
            window = self._window(int(value))
            if window is not None:
                groups.append((window, index == value, int(count)))
        return groups

    def arrived(
        self,
        timestamps: np.ndarray,
        predicted: np.ndarray | None = None,
        score: np.ndarray | None = None,
        sign: int = 1,
    ) -> None:
        """Predictions that arrived (``sign=-1``: take back duplicates). With ``estimate``,
        also their ``predicted`` flags (of the positive class) and ``score`` (NaN where none:
        left out of the estimate)."""
        for window, rows, count in self._groups(timestamps):
            window.waiting += sign * count
            if window.expected is None or predicted is None or score is None:
                continue
            flags, scores = (predicted, score) if rows is None else (predicted[rows], score[rows])
            scored = ~np.isnan(scores)
            window.expected.add(flags[scored], to_fixed(scores[scored]), sign)
            window.values = None

    def ended(self, timestamps: np.ndarray) -> None:
        """Predictions that ended without a label (expired, or set aside as late)."""
        for window, _, count in self._groups(timestamps):
            window.waiting -= count

    def matched(self, columns: Columns) -> None:
        """Matched pairs, as ``ModelMetrics.columns`` gives them."""
        timestamps = columns["timestamp"]
        if timestamps.size == 0:
            return
        index = self._index(timestamps)
        low, span = int(index.min()), int(index.max()) - int(index.min()) + 1
        if self.task == "binary" and 1 < span <= DENSE_SPAN:
            # Labels come late, so one batch's pairs often fall in many windows: count
            # them all in one pass rather than a score histogram per window.
            for offset, stats in enumerate(split_binary(columns, index - low, span)):
                window = self._window(low + offset) if stats is not None else None
                if window is not None and stats is not None:
                    window.stats.merge(stats)  # type: ignore[arg-type]
                    window.waiting -= stats.count
                    window.values = None
            return
        for window, rows, count in self._groups(timestamps):
            add_pairs(window.stats, columns if rows is None else take_columns(columns, rows))
            window.waiting -= count
            window.values = None

    def closed(self, clock: float) -> list[int]:
        """The indices of the windows closed at event time ``clock``, oldest first."""
        closed = []
        for index in sorted(self._windows):
            if self._windows[index].waiting > 0 or clock < (index + 1) * self.window + self.grace:
                break
            closed.append(index)
        return closed

    def prune(self, clock: float) -> None:
        """Drop the windows closed before the last ``keep`` at event time ``clock``."""
        closed = self.closed(clock)
        if len(closed) > self.keep:
            for index in closed[: -self.keep]:
                del self._windows[index]
            self._floor = closed[-self.keep]

    @property
    def metrics(self) -> tuple[str, ...]:
        """The metrics kept: those of the task, and the estimate when kept."""
        return (*METRICS[self.task], *((ESTIMATED,) if self.estimate else ()))

    def points(self, metric: str, clock: float, closed: list[int] | None = None) -> list[Point]:
        """The closed windows at ``clock`` (or those ``closed`` gives), oldest first, with
        ``metric``'s value; at most ``keep``."""
        indices = (closed if closed is not None else self.closed(clock))[-self.keep :]
        points = []
        for index in indices:
            value, count = self._windows[index].metrics(self.task).get(metric, (None, 0))
            start = index * self.window
            points.append(Point(start, start + self.window, value, count))
        return points


@dataclass(frozen=True)
class Control:
    """Statistics of a metric over the windows before the latest (the reference), and
    whether the latest lies outside the band ``mean ± sigmas * standard deviation``."""

    mean: float | None
    median: float | None
    variance: float | None  # sample variance; None with fewer than two values
    band: tuple[float, float] | None  # None with fewer than MIN_REFERENCE values
    outside: bool


def control(
    points: Sequence[Point], sigmas: float, bounds: tuple[float, float] = (-math.inf, math.inf)
) -> Control:
    """The statistics of ``points`` before the latest, and the latest judged against them.

    The latest window is left out of its own reference, as NannyML judges an
    analysis period against thresholds from a reference period: with it in, a
    single outlier among n windows could never be more than (n - 1) / sqrt(n)
    standard deviations from the mean. The band is clipped to ``bounds``, the
    values the metric can take; undefined values are left out.

    >>> ps = [Point(0, 1, v, 10) for v in (0.9, 0.92, 0.88, 0.6)]
    >>> c = control(ps, sigmas=3, bounds=(0.0, 1.0))
    >>> c.mean, c.median, round(c.variance, 6), [round(b, 2) for b in c.band], c.outside
    (0.9, 0.9, 0.0004, [0.84, 0.96], True)
    """
    reference = [p.value for p in points[:-1] if p.value is not None]
    latest = points[-1].value if points else None
    mean = statistics.fmean(reference) if reference else None
    median = float(statistics.median(reference)) if reference else None
    variance = statistics.variance(reference) if len(reference) >= 2 else None
    band = None
    if mean is not None and variance is not None and len(reference) >= MIN_REFERENCE:
        spread = sigmas * math.sqrt(variance)
        low, high = bounds
        band = (max(low, mean - spread), min(high, mean + spread))
    outside = False
    if band is not None and latest is not None:
        slack = 1e-9 * max(1.0, abs(mean or 0.0))  # rounding of the mean, not a signal
        outside = not band[0] - slack <= latest <= band[1] + slack
    return Control(mean, median, variance, band, outside)


def summary_of(points: Sequence[Point], result: Control) -> dict[str, Any]:
    """One metric's entry in the summary's ``history``."""
    return {
        "points": [asdict(p) for p in points],
        "mean": result.mean,
        "median": result.median,
        "variance": result.variance,
        "band": list(result.band) if result.band is not None else None,
        "outside": result.outside,
    }
