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

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import repeat
from operator import eq, itemgetter
from typing import Any

import numpy as np

from predwatch.batches import Columns
from predwatch.config import ModelSettings, WindowSettings
from predwatch.metrics.windows import TIME_WINDOW_STEPS, CountWindow, TimeWindow
from predwatch.records import Prediction

SCALE = 1 << 32  # fixed-point unit of a score
_TIMESTAMP, _VALUE, _SCORE = (itemgetter(i) for i in (3, 4, 5))  # Prediction fields


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

    def update(self, columns: Columns) -> None:
        """Add predictions given as ``predicted`` and fixed-point ``score`` columns."""
        self.add(columns["predicted"], columns["score"])

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
        """Add pairs: whether each predicted, and is, the positive class."""
        cells = np.asarray(predicted, np.intp) * 2 + actual
        tn, fn, fp, tp = np.bincount(cells, minlength=4).tolist()
        self.tp, self.fp, self.fn, self.tn = self.tp + tp, self.fp + fp, self.fn + fn, self.tn + tn

    @property
    def count(self) -> int:
        return self.tp + self.fp + self.fn + self.tn

    def merge(self, other: Confusion) -> None:
        self.tp, self.fp = self.tp + other.tp, self.fp + other.fp
        self.fn, self.tn = self.fn + other.fn, self.tn + other.tn

    def metrics(self) -> dict[str, Any]:
        return confusion_metrics(self.tp, self.fp, self.fn, self.tn)


class _Ended:
    """Predictions that ended (matched or expired) and the confusion of the matched ones."""

    def __init__(self) -> None:
        self.count = 0
        self.realised = Confusion()

    def update(self, columns: Columns) -> None:
        """Add ended predictions: ``predicted`` and, for matched pairs, ``actual``."""
        self.count += len(columns["predicted"])
        if "actual" in columns:
            self.realised.add(columns["predicted"], columns["actual"])

    def merge(self, other: _Ended) -> None:
        self.count += other.count
        self.realised.merge(other.realised)


class _Evaluated:
    """The estimate and the realised confusion of the same matched pairs."""

    def __init__(self) -> None:
        self.estimated = ExpectedConfusion()
        self.realised = Confusion()

    def update(self, columns: Columns) -> None:
        self.estimated.update(columns)
        self.realised.add(columns["predicted"], columns["actual"])

    def merge(self, other: _Evaluated) -> None:
        self.estimated.merge(other.estimated)
        self.realised.merge(other.realised)

    def report(self) -> dict[str, Any]:
        return {
            "labelled": self.estimated.count,
            "estimated": self.estimated.metrics(),
            "realised": self.realised.metrics(),
        }


class _TimeEstimate:
    """Predictions in the event-time buckets of a ``TimeWindow``, each bucket kept until
    every prediction in it has ended.

    ``current`` is the estimate over the window at the clock; ``evaluated`` the
    latest span of 12 buckets that ended and whose every prediction was matched
    or expired, with its estimate and realised metrics.
    """

    def __init__(self, duration: float) -> None:
        self._arrived = TimeWindow(duration, ExpectedConfusion, ExpectedConfusion.update)
        self._ended = TimeWindow(duration, _Ended, _Ended.update)
        self._floor = -(2**62)  # buckets below are gone; predictions there are not counted

    def arrived(self, columns: Columns, clock: float) -> None:
        self._arrived.add_from(columns, self._floor)
        # Forgotten after adding: the batch's own waiting predictions hold the floor down, so
        # a batch spanning more than the window (a replay) is counted whole.
        self._forget(clock)

    def resolved(self, columns: Columns) -> None:
        # Only predictions this window saw arrive (their bucket is still held) end in it.
        self._ended.add_from(columns, self._floor, only=self._arrived.held())

    def _evaluated_end(self, clock: float) -> int:
        """The last ended bucket before the first one still waiting for outcomes."""
        end = self._arrived.bucket(clock) - 1
        ended = self._ended.held()
        waiting = [
            i
            for i, arrived in self._arrived.held().items()
            if (i not in ended or ended[i].count < arrived.count)
        ]
        return min(end, min(waiting) - 1) if waiting else end

    def _forget(self, clock: float) -> int:
        """Forget buckets before the evaluated span (all ended); return the span's end."""
        end = self._evaluated_end(clock)
        floor = end - TIME_WINDOW_STEPS + 1
        if floor > self._floor:
            self._floor = floor
            self._arrived.forget_before(floor)
            self._ended.forget_before(floor)
        return end

    def report(self, clock: float) -> dict[str, Any]:
        """The window now and the latest evaluated span; reading forgets nothing (the buckets
        ``_forget`` would drop lie before both)."""
        last = self._arrived.bucket(clock)
        end = self._evaluated_end(clock)
        first, evaluated = last - TIME_WINDOW_STEPS + 1, end - TIME_WINDOW_STEPS + 1
        start, stop = self._arrived.bounds(first, last + 1)
        evaluated_start, evaluated_stop = self._arrived.bounds(evaluated, end + 1)
        realised = self._ended.merged(evaluated, end + 1).realised
        estimated = self._arrived.merged(evaluated, end + 1)
        return {
            "start": start,
            "end": stop,
            "estimated": self._arrived.merged(first, last + 1).metrics(),
            "evaluated": {
                "start": evaluated_start,
                "end": evaluated_stop,
                "labelled": realised.count,
                "estimated": estimated.metrics(),
                "realised": realised.metrics(),
            },
        }


class _CountEstimate:
    """The last ``size`` predictions (estimate), and the last ``size`` matched pairs
    (estimate and realised side by side)."""

    def __init__(self, size: int) -> None:
        self._arrived = CountWindow(size, ExpectedConfusion, ExpectedConfusion.update)
        self._matched = CountWindow(size, _Evaluated, _Evaluated.update)

    def arrived(self, columns: Columns, clock: float) -> None:
        self._arrived.add({"predicted": columns["predicted"], "score": columns["score"]}, clock)

    def resolved(self, columns: Columns) -> None:
        if "actual" in columns:
            matched = {k: columns[k] for k in ("predicted", "score", "actual")}
            self._matched.add(matched, 0.0)

    def report(self, clock: float) -> dict[str, Any]:
        return {
            "estimated": self._arrived.stats(clock).metrics(),
            "evaluated": self._matched.stats(clock).report(),
        }


def _estimate_window(window: WindowSettings) -> _TimeEstimate | _CountEstimate:
    if window.events is not None:
        return _CountEstimate(window.events)
    assert window.duration is not None  # the settings hold one or the other
    return _TimeEstimate(window.duration)


@dataclass
class _VersionEstimate:
    pending: ExpectedConfusion
    windows: dict[str, _TimeEstimate | _CountEstimate]
    unscored: int = 0  # predictions without a score, left out of every estimate


def outcome_columns(predictions: Sequence[Prediction], positive_label: str) -> Columns:
    """Predictions as the columns the estimate reads: ``timestamp``, ``score`` (NaN where a
    prediction has none) and ``predicted`` (of class ``positive_label``).

    >>> ps = [Prediction("a", "m", "v1", 1.0, "1", 0.9, None, {}, {}),
    ...       Prediction("b", "m", "v1", 2.0, "2", None, None, {}, {})]
    >>> columns = outcome_columns(ps, "1")
    >>> columns["score"], columns["predicted"]
    (array([0.9, nan]), array([ True, False]))
    """
    n = len(predictions)
    positive = map(eq, map(_VALUE, predictions), repeat(positive_label))
    return {
        "timestamp": np.fromiter(map(_TIMESTAMP, predictions), np.float64, n),
        "score": np.array(list(map(_SCORE, predictions)), np.float64),  # None becomes NaN
        "predicted": np.fromiter(positive, bool, n),
    }


class PerformanceEstimator:
    """CBPE of one binary model, per version: over pending predictions and per window.

    Call ``arrived`` with every prediction the join accepted (not its
    duplicates), then ``resolved`` as they end; ``clock`` is the monitor's event
    time. Predictions without a score are counted, not estimated.

    >>> from predwatch.batches import take_columns
    >>> from predwatch.config import ModelSettings, WindowSettings
    >>> estimator = PerformanceEstimator(ModelSettings(task="binary"),
    ...                                  [WindowSettings(name="last_2", events=2)])
    >>> ps = [Prediction(str(i), "m", "v1", float(i), "1", 0.75, None, {}, {}) for i in range(4)]
    >>> arrived = outcome_columns(ps, "1")
    >>> estimator.arrived("v1", arrived, clock=3.0)
    >>> estimator.report(clock=3.0)["v1"]["pending"]["accuracy"]
    0.75
    >>> matched = {**take_columns(arrived, np.arange(3)), "actual": np.ones(3, bool)}
    >>> estimator.resolved("v1", matched)  # three matched, all positive
    >>> estimator.resolved("v1", take_columns(arrived, np.array([3])))  # one expired
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
            windows = {w.name: _estimate_window(w) for w in self._windows}
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
        """Remove predictions of one version that ended: matched ones with an ``actual``
        column (of the positive class), or expired ones, as ``outcome_columns`` gives them."""
        state = self._version(version)
        columns, _ = _scored(columns)
        state.pending.add(columns["predicted"], columns["score"], sign=-1)
        for window in state.windows.values():
            window.resolved(columns)

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
