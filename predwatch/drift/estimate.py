"""Performance estimated from scores before labels arrive: confidence-based estimation (CBPE).

For a binary model whose score ``p`` is a calibrated probability of the positive
class, a prediction of class 1 is expected to be a true positive with
probability ``p`` and a false positive otherwise; a prediction of class 0 is a
false negative with probability ``p`` and a true negative otherwise. Summing
these gives an expected confusion matrix, and accuracy, precision, recall and
F1 are computed from it as ratios of expected counts (the usual CBPE
approximation of NannyML, here kept incrementally; for precision, recall and F1
the ratio of expectations is not the expectation of the ratio, a difference
that vanishes as counts grow). The estimate is only as good as the scores'
calibration: read it next to the expected calibration error (``calibration.py``).

Scores are summed as integers in units of ``2**-32``, so predictions added on
arrival and subtracted when they are matched or expire leave exactly zero.

>>> import numpy as np
>>> e = ExpectedConfusion()
>>> e.add(np.array([True, False]), to_fixed(np.array([0.9, 0.2])))
>>> round(e.metrics()["accuracy"], 6), round(e.metrics()["precision"], 6)
(0.85, 0.9)
>>> e.add(np.array([True, False]), to_fixed(np.array([0.9, 0.2])), sign=-1); e.count, e.score_sum
(0, 0)
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from itertools import repeat
from operator import eq, itemgetter, ne
from typing import Any

import numpy as np

from predwatch.batches import Columns, group_rows, take_columns
from predwatch.config import ModelSettings, WindowSettings
from predwatch.metrics.windows import TIME_WINDOW_STEPS, CountWindow, make_windows
from predwatch.records import Label, Prediction

SCALE = 1 << 32  # fixed-point unit of a score
DENSE_SPAN = 4 * TIME_WINDOW_STEPS  # buckets a batch may span to be counted in one pass
_VERSION, _TIMESTAMP, _VALUE, _SCORE = (itemgetter(i) for i in (2, 3, 4, 5))  # Prediction fields
_LABEL_VALUE = itemgetter(2)


def to_fixed(scores: np.ndarray) -> np.ndarray:
    """Scores in [0, 1] as int64 multiples of ``1 / SCALE``."""
    return np.rint(np.asarray(scores, np.float64) * SCALE).astype(np.int64)


def _ratio(numerator: float, denominator: float) -> float | None:
    return numerator / denominator if denominator > 0 else None


def confusion_metrics(tp: float, fp: float, fn: float, tn: float) -> dict[str, Any]:
    """Accuracy, precision, recall and F1 of (expected) counts; None where undefined."""
    return {
        "count": tp + fp + fn + tn,
        "accuracy": _ratio(tp + tn, tp + fp + fn + tn),
        "precision": _ratio(tp, tp + fp),
        "recall": _ratio(tp, tp + fn),
        "f1": _ratio(2 * tp, 2 * tp + fp + fn),
    }


@dataclass
class ExpectedConfusion:
    """Counts of predicted classes and fixed-point score sums: an expected confusion matrix."""

    positive: int = 0  # predictions of class 1
    negative: int = 0
    positive_score: int = 0  # sum of the fixed-point scores of predictions of class 1
    negative_score: int = 0

    @property
    def count(self) -> int:
        return self.positive + self.negative

    @property
    def score_sum(self) -> int:
        return self.positive_score + self.negative_score

    def add(self, predicted: np.ndarray, score: np.ndarray, sign: int = 1) -> None:
        """Add (``sign=-1``: remove) predictions: class-1 flags and fixed-point scores."""
        positive = int(np.count_nonzero(predicted))
        positive_score = int(score[predicted].sum(dtype=np.int64))
        self.positive += sign * positive
        self.negative += sign * (len(predicted) - positive)
        self.positive_score += sign * positive_score
        self.negative_score += sign * (int(score.sum(dtype=np.int64)) - positive_score)

    def merge(self, other: ExpectedConfusion) -> None:
        self.positive += other.positive
        self.negative += other.negative
        self.positive_score += other.positive_score
        self.negative_score += other.negative_score

    def metrics(self) -> dict[str, Any]:
        tp, fn = self.positive_score / SCALE, self.negative_score / SCALE
        metrics = confusion_metrics(tp, self.positive - tp, fn, self.negative - fn)
        return {**metrics, "count": self.count}


@dataclass
class Confusion:
    """A realised binary confusion matrix."""

    tp: int = 0
    fp: int = 0
    fn: int = 0
    tn: int = 0

    def add(self, predicted: np.ndarray, actual: np.ndarray) -> None:
        self.tp += int(np.count_nonzero(predicted & actual))
        self.fp += int(np.count_nonzero(predicted & ~actual))
        self.fn += int(np.count_nonzero(~predicted & actual))
        self.tn += int(np.count_nonzero(~predicted & ~actual))

    @property
    def count(self) -> int:
        return self.tp + self.fp + self.fn + self.tn

    def merge(self, other: Confusion) -> None:
        self.tp, self.fp = self.tp + other.tp, self.fp + other.fp
        self.fn, self.tn = self.fn + other.fn, self.tn + other.tn

    def metrics(self) -> dict[str, Any]:
        return confusion_metrics(self.tp, self.fp, self.fn, self.tn)


@dataclass
class _Bucket:
    arrived: ExpectedConfusion = field(default_factory=ExpectedConfusion)
    resolved: int = 0  # predictions matched or expired
    realised: Confusion = field(default_factory=Confusion)


class _TimeEstimate:
    """Predictions in event-time buckets of ``duration / 12``, kept until all are resolved.

    ``current`` is the estimate over the buckets of the last ``duration``;
    ``evaluated`` the latest span of 12 buckets that ended and whose every
    prediction was matched or expired, with its estimate and realised metrics.
    """

    def __init__(self, duration: float) -> None:
        self.duration = duration
        self._step = duration / TIME_WINDOW_STEPS
        self._buckets: dict[int, _Bucket] = {}
        self._floor = -(2**62)  # buckets below are gone; predictions there are not counted

    def _groups(self, columns: Columns) -> Iterator[tuple[int, np.ndarray]]:
        """Rows per bucket, for buckets not yet dropped (a prediction is counted in its
        bucket at arrival exactly when it is counted there at its end)."""
        index = np.floor(columns["timestamp"] / self._step).astype(np.int64)
        for bucket in np.unique(index).tolist():
            if bucket >= self._floor:
                yield bucket, index == bucket

    def arrived(self, columns: Columns, clock: float) -> None:
        for bucket, rows in self._groups(columns):
            held = self._buckets.setdefault(bucket, _Bucket())
            held.arrived.add(columns["predicted"][rows], columns["score"][rows])
        # Pruned after adding: the batch's own waiting predictions hold the floor down, so
        # a batch spanning more than the window (a replay) is counted whole.
        self._prune(clock)

    def resolved(self, columns: Columns) -> None:
        index = np.floor(columns["timestamp"] / self._step).astype(np.int64)
        if index.size == 0:
            return
        low, span = int(index.min()), int(index.max()) - int(index.min()) + 1
        if span > DENSE_SPAN:  # outliers in time: bucket by bucket
            self._resolved_by_bucket(columns)
            return
        # Pairs end in many buckets (labels come late): count them all in one pass.
        index -= low
        counts = np.bincount(index, minlength=span).tolist()
        cells: list[list[int]] | None = None
        if "actual" in columns:  # per bucket: [tn, fn, fp, tp]
            cell = index * 4 + columns["predicted"] * 2 + columns["actual"]
            cells = np.bincount(cell, minlength=span * 4).reshape(span, 4).tolist()
        for offset, count in enumerate(counts):
            held = self._buckets.get(low + offset)  # kept while it waits for this prediction
            if not count or low + offset < self._floor or held is None:
                continue  # a prediction this window never saw arrive
            held.resolved += count
            if cells is not None:
                tn, fn, fp, tp = cells[offset]
                realised = held.realised
                realised.tp, realised.fp = realised.tp + tp, realised.fp + fp
                realised.fn, realised.tn = realised.fn + fn, realised.tn + tn

    def _resolved_by_bucket(self, columns: Columns) -> None:
        for bucket, rows in self._groups(columns):
            held = self._buckets.get(bucket)  # kept while it waits for this prediction
            if held is None:  # a prediction this window never saw arrive
                continue
            held.resolved += int(np.count_nonzero(rows))
            if "actual" in columns:
                held.realised.add(columns["predicted"][rows], columns["actual"][rows])

    def _evaluated_end(self, clock: float) -> int:
        """The last ended bucket before the first one still waiting for outcomes."""
        end = math.floor(clock / self._step) - 1
        waiting = [i for i, b in self._buckets.items() if b.resolved < b.arrived.count]
        return min(end, min(waiting) - 1) if waiting else end

    def _prune(self, clock: float) -> int:
        """Drop buckets before the evaluated span (all resolved); return the span's end."""
        end = self._evaluated_end(clock)
        floor = end - TIME_WINDOW_STEPS + 1
        if floor > self._floor:
            self._floor = floor
            for index in [i for i in self._buckets if i < floor]:
                del self._buckets[index]
        return end

    def report(self, clock: float) -> dict[str, Any]:
        last = math.floor(clock / self._step)
        end = self._prune(clock)
        current, estimated, realised = ExpectedConfusion(), ExpectedConfusion(), Confusion()
        for index, bucket in self._buckets.items():
            if last - TIME_WINDOW_STEPS < index <= last:
                current.merge(bucket.arrived)
            if end - TIME_WINDOW_STEPS < index <= end:
                estimated.merge(bucket.arrived)
                realised.merge(bucket.realised)
        return {
            "start": (last - TIME_WINDOW_STEPS + 1) * self._step,
            "end": (last + 1) * self._step,
            "estimated": current.metrics(),
            "evaluated": {
                "start": (end - TIME_WINDOW_STEPS + 1) * self._step,
                "end": (end + 1) * self._step,
                "labelled": realised.count,
                "estimated": estimated.metrics(),
                "realised": realised.metrics(),
            },
        }


class _CountEstimate:
    """The last ``size`` predictions (estimate), and the last ``size`` matched pairs
    (estimate and realised side by side)."""

    def __init__(self, size: int) -> None:
        self._arrived = CountWindow(size)
        self._matched = CountWindow(size)

    def arrived(self, columns: Columns, clock: float) -> None:
        self._arrived.add({"predicted": columns["predicted"], "score": columns["score"]})

    def resolved(self, columns: Columns) -> None:
        if "actual" in columns:
            self._matched.add({k: columns[k] for k in ("predicted", "score", "actual")})

    def report(self, clock: float) -> dict[str, Any]:
        current, estimated, realised = ExpectedConfusion(), ExpectedConfusion(), Confusion()
        if arrived := self._arrived.columns():
            current.add(arrived["predicted"], arrived["score"])
        if matched := self._matched.columns():
            estimated.add(matched["predicted"], matched["score"])
            realised.add(matched["predicted"], matched["actual"])
        evaluated = {
            "labelled": estimated.count,
            "estimated": estimated.metrics(),
            "realised": realised.metrics(),
        }
        return {"estimated": current.metrics(), "evaluated": evaluated}


@dataclass
class _VersionEstimate:
    pending: ExpectedConfusion
    windows: dict[str, _TimeEstimate | _CountEstimate]
    unscored: int = 0  # predictions without a score, left out of every estimate


def outcome_columns(
    predictions: Sequence[Prediction], positive_label: str, labels: Sequence[Label] | None = None
) -> Columns:
    """A batch as the columns the estimate, calibration and concept drift read:
    ``timestamp``, ``score`` (NaN where a prediction has none), ``predicted`` (of class
    ``positive_label``) and, with the labels of matched pairs, ``actual`` (of class
    ``positive_label``) and ``error`` (1.0 where the classes differ, as
    ``concept.errors_of`` gives for classification).

    >>> ps = [Prediction("a", "m", "v1", 1.0, "1", 0.9, None, {}, {}),
    ...       Prediction("b", "m", "v1", 2.0, "2", None, None, {}, {})]
    >>> columns = outcome_columns(ps, "1", [Label("a", 3.0, "0", 0.0), Label("b", 4.0, "2", 2.0)])
    >>> columns["score"], columns["predicted"], columns["actual"], columns["error"]
    (array([0.9, nan]), array([ True, False]), array([False, False]), array([1., 0.]))
    """
    n = len(predictions)
    values = list(map(_VALUE, predictions))  # each record is read once per field: that costs
    positive = repeat(positive_label)
    columns: Columns = {
        "timestamp": np.fromiter(map(_TIMESTAMP, predictions), np.float64, n),
        "score": np.array(list(map(_SCORE, predictions)), np.float64),  # None becomes NaN
        "predicted": np.fromiter(map(eq, values, positive), bool, n),
    }
    if labels is not None:
        actual = list(map(_LABEL_VALUE, labels))
        columns["actual"] = np.fromiter(map(eq, actual, positive), bool, n)
        columns["error"] = np.fromiter(map(ne, values, actual), np.float64, n)
    return columns


class PerformanceEstimator:
    """CBPE of one binary model, per version: over pending predictions and per window.

    Call ``on_predictions`` with every prediction the join accepted (not its
    duplicates), then ``on_matched`` / ``on_expired`` as they end; ``clock`` is
    the monitor's event time. Predictions without a score are counted, not estimated.

    >>> from predwatch.config import ModelSettings, WindowSettings
    >>> estimator = PerformanceEstimator(ModelSettings(task="binary"),
    ...                                  [WindowSettings(name="last_2", events=2)])
    >>> ps = [Prediction(str(i), "m", "v1", float(i), "1", 0.75, None, {}, {}) for i in range(4)]
    >>> estimator.on_predictions(ps, clock=3.0)
    >>> estimator.report(clock=3.0)["v1"]["pending"]["accuracy"]
    0.75
    >>> estimator.on_matched([(p, Label(p.id, 5.0, "1", 1.0)) for p in ps[:3]], clock=3.0)
    >>> estimator.on_expired(ps[3:], clock=3.0)
    >>> report = estimator.report(clock=3.0)["v1"]
    >>> report["pending"]["count"], report["windows"]["last_2"]["evaluated"]["realised"]["accuracy"]
    (0, 1.0)
    """

    def __init__(self, model: ModelSettings, windows: Sequence[WindowSettings]) -> None:
        if model.task != "binary":
            raise ValueError(f"performance estimation needs a binary model, not {model.task!r}")
        self.positive_label = model.positive_label
        self._windows = list(windows)
        self.versions: dict[str, _VersionEstimate] = {}

    def _version(self, version: str) -> _VersionEstimate:
        state = self.versions.get(version)
        if state is None:
            windows = make_windows(self._windows, _CountEstimate, _TimeEstimate)
            state = self.versions[version] = _VersionEstimate(ExpectedConfusion(), windows)
        return state

    def arrived(self, version: str, columns: Columns, clock: float) -> None:
        """Add arriving predictions of one version, as ``outcome_columns`` gives them."""
        state = self._version(version)
        columns, unscored = _scored(columns)
        state.unscored += unscored
        state.pending.add(columns["predicted"], columns["score"])
        for window in state.windows.values():
            window.arrived(columns, clock)

    def resolved(self, version: str, columns: Columns) -> None:
        """Remove predictions of one version that were matched (``columns`` with ``actual``)
        or expired, as ``outcome_columns`` gives them."""
        state = self._version(version)
        columns, _ = _scored(columns)
        state.pending.add(columns["predicted"], columns["score"], sign=-1)
        for window in state.windows.values():
            window.resolved(columns)

    def on_predictions(self, predictions: Sequence[Prediction], clock: float) -> None:
        """Add arriving predictions of this model to the pending set and the windows."""
        columns = outcome_columns(predictions, self.positive_label)
        for version, rows in group_rows(list(map(_VERSION, predictions))):
            self.arrived(version, take_columns(columns, rows), clock)

    def on_matched(self, pairs: Sequence[tuple[Prediction, Label]], clock: float) -> None:
        """Remove matched predictions from the pending set; windows learn their labels."""
        predictions = [p for p, _ in pairs]
        columns = outcome_columns(predictions, self.positive_label, [label for _, label in pairs])
        for version, rows in group_rows(list(map(_VERSION, predictions))):
            self.resolved(version, take_columns(columns, rows))

    def on_expired(self, predictions: Sequence[Prediction], clock: float) -> None:
        """Remove predictions that expired unlabelled from the pending set."""
        columns = outcome_columns(predictions, self.positive_label)
        for version, rows in group_rows(list(map(_VERSION, predictions))):
            self.resolved(version, take_columns(columns, rows))

    def report(self, clock: float) -> dict[str, Any]:
        """Per version: ``pending`` estimate, ``unscored`` count, and per window the
        ``estimated`` metrics now and the latest ``evaluated`` span (estimate vs realised)."""
        return {
            version: {
                "pending": state.pending.metrics(),
                "unscored": state.unscored,
                "windows": {n: w.report(clock) for n, w in state.windows.items()},
            }
            for version, state in sorted(self.versions.items())
        }


def _scored(columns: Columns) -> tuple[Columns, int]:
    """The rows with a score, the score in fixed point; and how many had none."""
    score = columns["score"]
    scored = ~np.isnan(score)
    unscored = len(score) - int(np.count_nonzero(scored))
    if unscored:
        columns = {name: values[scored] for name, values in columns.items()}
    return {**columns, "score": to_fixed(columns["score"])}, unscored
