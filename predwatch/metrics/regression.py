"""Regression quality as sufficient statistics that add up and merge.

The label variance behind R² is kept as count, mean and sum of squared
deviations, merged with Chan et al.'s parallel update, so it stays exact when
labels are large and vary little (a plain sum of squares would cancel). The
mean is kept relative to a shift, the first label seen, so that it is small
and its rounding error scales with the labels' spread, not their size.

MAPE leaves out pairs whose label is 0, where a percentage error is undefined.

>>> stats = RegressionStats()
>>> stats.update(np.array([3.0, -0.5, 2.0, 7.0]), np.array([2.5, 0.0, 2.0, 8.0]))
>>> m = regression_metrics(stats)
>>> m["mae"], m["rmse"], round(m["r2"], 6)
(0.5, 0.6123724356957945, 0.948608)
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np


class RegressionStats:
    """Error sums and label moments of matched regression pairs."""

    __slots__ = (
        "absolute_error_sum",
        "count",
        "error_sum",
        "label_m2",
        "label_mean",
        "label_shift",
        "percentage_count",
        "percentage_error_sum",
        "squared_error_sum",
    )

    def __init__(self) -> None:
        self.count = 0
        self.error_sum = 0.0  # of prediction - label
        self.absolute_error_sum = 0.0
        self.squared_error_sum = 0.0
        self.percentage_error_sum = 0.0
        self.percentage_count = 0
        self.label_shift = 0.0
        self.label_mean = 0.0  # of label - label_shift
        self.label_m2 = 0.0

    def update(self, actual: np.ndarray, predicted: np.ndarray) -> None:
        """Add pairs of actual and predicted values."""
        if actual.size == 0:
            return
        error = predicted - actual
        batch = RegressionStats()
        batch.count = int(actual.size)
        batch.error_sum = float(error.sum())
        absolute = np.abs(error)
        batch.absolute_error_sum = float(absolute.sum())
        batch.squared_error_sum = float((error * error).sum())
        nonzero = actual != 0
        batch.percentage_error_sum = float((absolute[nonzero] / np.abs(actual[nonzero])).sum())
        batch.percentage_count = int(nonzero.sum())
        batch.label_shift = self.label_shift if self.count else float(actual[0])
        shifted = actual - batch.label_shift
        if shifted.min() == shifted.max():  # constant: the mean is exact, the spread is 0
            batch.label_mean, batch.label_m2 = float(shifted[0]), 0.0
        else:
            batch.label_mean = float(shifted.mean())
            batch.label_m2 = float(((shifted - batch.label_mean) ** 2).sum())
        self.merge(batch)

    def merge(self, other: RegressionStats) -> None:
        """Add another set of statistics into this one."""
        if other.count == 0:
            return
        if self.count == 0:
            self.label_shift = other.label_shift
        total = self.count + other.count
        # Shifts are labels of one model, so their difference is exact or nearly so.
        delta = (other.label_shift - self.label_shift) + other.label_mean - self.label_mean
        self.label_m2 += other.label_m2 + delta * delta * self.count * other.count / total
        self.label_mean += delta * other.count / total
        self.count = total
        self.error_sum += other.error_sum
        self.absolute_error_sum += other.absolute_error_sum
        self.squared_error_sum += other.squared_error_sum
        self.percentage_error_sum += other.percentage_error_sum
        self.percentage_count += other.percentage_count


def regression_metrics(stats: RegressionStats) -> dict[str, Any]:
    """MAE, RMSE, MAPE, R² and bias; None where undefined (R² of constant labels)."""
    n = stats.count
    if n == 0:
        return {"count": 0, "mae": None, "rmse": None, "mape": None, "r2": None, "bias": None}
    return {
        "count": n,
        "mae": stats.absolute_error_sum / n,
        "rmse": math.sqrt(stats.squared_error_sum / n),
        "mape": (
            stats.percentage_error_sum / stats.percentage_count if stats.percentage_count else None
        ),
        "r2": 1.0 - stats.squared_error_sum / stats.label_m2 if stats.label_m2 > 0 else None,
        "bias": stats.error_sum / n,
    }
