"""Classification quality as sufficient statistics that add up and merge.

Classes are small integers (a model's ``ClassIndex`` gives them). A confusion
matrix gives accuracy, precision, recall and F1; sums give log loss and the
Brier score; two histograms of the positive-class score, on bins even in
logit so resolution is fine near 0 and 1, give ROC AUC.

>>> stats = ClassificationStats()
>>> stats.update(np.array([1, 0, 1, 1]), np.array([1, 0, 0, 1]), score=np.array([.9, .2, .4, .8]))
>>> m = binary_metrics(stats, positive=1)
>>> m["accuracy"], m["recall"], m["roc_auc"]
(0.75, 0.6666666666666666, 1.0)
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

SCORE_BINS = 4096
_LOGIT_RANGE = 20.0  # scores from 2e-9 to 1 - 2e-9 get bins of their own
_EPS = 1e-15  # probabilities are clipped to [eps, 1 - eps] before taking logs


def score_bins(score: np.ndarray) -> np.ndarray:
    """The histogram bin of each score in [0, 1]: even steps of logit over [-20, 20]."""
    clipped = np.clip(score, _EPS, 1.0 - _EPS)
    logit = np.log(clipped) - np.log1p(-clipped)
    position = (logit + _LOGIT_RANGE) * (SCORE_BINS / (2 * _LOGIT_RANGE))
    return np.clip(position, 0, SCORE_BINS - 1).astype(np.intp)


class ClassificationStats:
    """Counts and sums behind classification metrics, for any number of classes."""

    __slots__ = (
        "brier_count",
        "brier_sum",
        "confusion",
        "log_loss_count",
        "log_loss_sum",
        "negative_scores",
        "positive_scores",
    )

    def __init__(self) -> None:
        self.confusion = np.zeros((0, 0), dtype=np.int64)  # [actual, predicted]
        self.log_loss_sum = 0.0
        self.log_loss_count = 0
        self.brier_sum = 0.0
        self.brier_count = 0
        self.positive_scores: np.ndarray | None = None
        self.negative_scores: np.ndarray | None = None

    @property
    def count(self) -> int:
        return int(self.confusion.sum())

    def _grow(self, size: int) -> None:
        old = self.confusion.shape[0]
        if size > old:
            grown = np.zeros((size, size), dtype=np.int64)
            grown[:old, :old] = self.confusion
            self.confusion = grown

    def update(
        self,
        actual: np.ndarray,
        predicted: np.ndarray,
        score: np.ndarray | None = None,
        positive: int = 1,
        true_probability: np.ndarray | None = None,
    ) -> None:
        """Add pairs of class indices.

        ``score`` is the probability of class ``positive`` (binary models);
        ``true_probability`` the probability the model gave the actual class
        (multiclass). NaN marks a pair without one.
        """
        if actual.size == 0:
            return
        size = int(max(actual.max(), predicted.max())) + 1
        self._grow(size)
        n = self.confusion.shape[0]
        self.confusion += np.bincount(actual * n + predicted, minlength=n * n).reshape(n, n)
        if score is not None:
            scored = ~np.isnan(score)
            if scored.any():
                self._add_scores(score[scored], actual[scored] == positive)
        if true_probability is not None:
            known = true_probability[~np.isnan(true_probability)]
            if known.size:
                self.log_loss_sum += float(-np.log(np.clip(known, _EPS, 1.0)).sum())
                self.log_loss_count += int(known.size)

    def _add_scores(self, score: np.ndarray, is_positive: np.ndarray) -> None:
        clipped = np.clip(score, _EPS, 1.0 - _EPS)
        self.log_loss_sum += float(-np.log(np.where(is_positive, clipped, 1.0 - clipped)).sum())
        self.log_loss_count += int(score.size)
        self.brier_sum += float(((score - is_positive) ** 2).sum())
        self.brier_count += int(score.size)
        bins = score_bins(score)
        if self.positive_scores is None or self.negative_scores is None:
            self.positive_scores = np.zeros(SCORE_BINS, dtype=np.int64)
            self.negative_scores = np.zeros(SCORE_BINS, dtype=np.int64)
        self.positive_scores += np.bincount(bins[is_positive], minlength=SCORE_BINS)
        self.negative_scores += np.bincount(bins[~is_positive], minlength=SCORE_BINS)

    def merge(self, other: ClassificationStats) -> None:
        """Add another set of statistics of the same model into this one."""
        self._grow(other.confusion.shape[0])
        n = other.confusion.shape[0]
        self.confusion[:n, :n] += other.confusion
        self.log_loss_sum += other.log_loss_sum
        self.log_loss_count += other.log_loss_count
        self.brier_sum += other.brier_sum
        self.brier_count += other.brier_count
        if other.positive_scores is not None and other.negative_scores is not None:
            if self.positive_scores is None or self.negative_scores is None:
                self.positive_scores = other.positive_scores.copy()
                self.negative_scores = other.negative_scores.copy()
            else:
                self.positive_scores += other.positive_scores
                self.negative_scores += other.negative_scores


def _ratio(numerator: float, denominator: float) -> float | None:
    return numerator / denominator if denominator else None


def roc_auc(positive_scores: np.ndarray, negative_scores: np.ndarray) -> float | None:
    """Area under the ROC curve from score histograms; a tie within a bin counts one half.

    >>> roc_auc(np.array([0, 0, 2]), np.array([1, 1, 0]))
    1.0
    """
    positives, negatives = int(positive_scores.sum()), int(negative_scores.sum())
    if positives == 0 or negatives == 0:
        return None
    negatives_below = np.cumsum(negative_scores) - negative_scores
    wins = (positive_scores * (negatives_below + 0.5 * negative_scores)).sum()
    return float(wins) / (positives * negatives)


def binary_metrics(stats: ClassificationStats, positive: int) -> dict[str, Any]:
    """Metrics of a binary model; None where a metric is undefined (e.g. no positives yet)."""
    confusion = stats.confusion
    total = stats.count
    result: dict[str, Any] = {"count": total, "accuracy": _ratio(np.trace(confusion), total)}
    if positive < confusion.shape[0]:
        tp = int(confusion[positive, positive])
        predicted_positive = int(confusion[:, positive].sum())
        actual_positive = int(confusion[positive, :].sum())
    else:
        tp = predicted_positive = actual_positive = 0
    result["precision"] = _ratio(tp, predicted_positive)
    result["recall"] = _ratio(tp, actual_positive)
    result["f1"] = _ratio(2 * tp, predicted_positive + actual_positive)
    # Score metrics cover the pairs that carry a score; None when none did.
    result["log_loss"] = _ratio(stats.log_loss_sum, stats.log_loss_count)
    result["brier"] = _ratio(stats.brier_sum, stats.brier_count)
    result["roc_auc"] = None
    if stats.positive_scores is not None and stats.negative_scores is not None:
        result["roc_auc"] = roc_auc(stats.positive_scores, stats.negative_scores)
    return _plain(result)


def multiclass_metrics(stats: ClassificationStats) -> dict[str, Any]:
    """Accuracy and macro averages over the classes seen as actual or predicted."""
    confusion = stats.confusion
    total = stats.count
    result: dict[str, Any] = {"count": total, "accuracy": _ratio(np.trace(confusion), total)}
    tp = np.diag(confusion).astype(np.float64)
    predicted = confusion.sum(axis=0)
    actual = confusion.sum(axis=1)
    seen = (predicted + actual) > 0
    if seen.any():
        # A class never predicted has precision 0 (scikit-learn's zero_division=0).
        precision = np.divide(tp, predicted, out=np.zeros_like(tp), where=predicted > 0)[seen]
        recall = np.divide(tp, actual, out=np.zeros_like(tp), where=actual > 0)[seen]
        f1 = np.divide(2 * tp, predicted + actual, out=np.zeros_like(tp), where=seen)[seen]
        result["macro_precision"] = float(precision.mean())
        result["macro_recall"] = float(recall.mean())
        result["macro_f1"] = float(f1.mean())
    else:
        result["macro_precision"] = result["macro_recall"] = result["macro_f1"] = None
    result["log_loss"] = _ratio(stats.log_loss_sum, stats.log_loss_count)
    return _plain(result)


def _plain(result: dict[str, Any]) -> dict[str, Any]:
    """Plain Python numbers, and None for NaN, so the result is ready for JSON."""
    for key, value in result.items():
        if isinstance(value, np.generic):
            result[key] = value.item()
        elif isinstance(value, float) and math.isnan(value):
            result[key] = None
    return result
