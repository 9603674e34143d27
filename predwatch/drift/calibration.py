"""Calibration of a binary model's scores: reliability bins and expected calibration error.

Matched pairs are counted in equal-width bins of the score (10 by default):
per bin the number of pairs, the sum of their scores and the number of actual
positives. These add up and merge, so they are kept cumulatively and per
window like the quality metrics. The expected calibration error is

    ECE = sum over bins of n_b / N * |mean score_b - positive rate_b|

Confidence-based performance estimation (``estimate.py``) assumes the scores
are calibrated probabilities: its estimate is only as good as the calibration,
so read the ECE next to it (an ECE of 0.05 can move estimated accuracy by about
as much).

>>> import numpy as np
>>> stats = CalibrationStats()
>>> stats.update(np.array([0.15, 0.15, 0.85, 0.85]), np.array([False, True, True, True]))
>>> round(expected_calibration_error(stats), 6)
0.25
"""

from __future__ import annotations

from typing import Any

import numpy as np

from predwatch.batches import Columns
from predwatch.config import MetricSettings, ModelSettings
from predwatch.metrics.windows import Window, make_windows

BINS = 10


class CalibrationStats:
    """Per score bin: pairs, score sum and actual positives. Mergeable."""

    __slots__ = ("counts", "positives", "score_sums")

    def __init__(self, bins: int = BINS) -> None:
        self.counts = np.zeros(bins, np.int64)
        self.score_sums = np.zeros(bins, np.float64)
        self.positives = np.zeros(bins, np.int64)

    @property
    def count(self) -> int:
        return int(self.counts.sum())

    def update(self, score: np.ndarray, actual: np.ndarray) -> None:
        """Add pairs: positive-class scores in [0, 1] and whether the label is positive."""
        bins = len(self.counts)
        index = np.minimum((score * bins).astype(np.intp), bins - 1)  # 1.0 is in the top bin
        self.counts += np.bincount(index, minlength=bins)
        self.score_sums += np.bincount(index, weights=score, minlength=bins)
        self.positives += np.bincount(
            index, weights=actual.astype(np.float64), minlength=bins
        ).astype(np.int64)

    def merge(self, other: CalibrationStats) -> None:
        self.counts += other.counts
        self.score_sums += other.score_sums
        self.positives += other.positives

    def reliability(self) -> list[dict[str, Any]]:
        """Per bin: its bounds, count, mean score and observed positive rate (None if empty)."""
        bins = len(self.counts)
        rows = []
        for b in range(bins):
            n = int(self.counts[b])
            rows.append(
                {
                    "low": b / bins,
                    "high": (b + 1) / bins,
                    "count": n,
                    "mean_score": float(self.score_sums[b] / n) if n else None,
                    "positive_rate": float(self.positives[b] / n) if n else None,
                }
            )
        return rows


def expected_calibration_error(stats: CalibrationStats) -> float | None:
    """ECE of the binned statistics; None when they hold no pairs."""
    total = stats.count
    if total == 0:
        return None
    filled = stats.counts > 0
    n = stats.counts[filled]
    gap = np.abs(stats.score_sums[filled] - stats.positives[filled]) / n
    return float(np.sum(n / total * gap))


def update_from(stats: CalibrationStats, columns: Columns) -> None:
    """Add matched pairs given as ``score`` and ``actual`` columns (the windows' ``update``)."""
    stats.update(columns["score"], columns["actual"])


class ModelCalibration:
    """Calibration of one binary model per version, cumulative and over the metric windows.

    >>> from predwatch.config import MetricSettings, ModelSettings
    >>> calibration = ModelCalibration(ModelSettings(task="binary"), MetricSettings())
    >>> columns = {"timestamp": np.arange(4.0), "score": np.full(4, 0.7),
    ...            "actual": np.array([False, True, False, True])}
    >>> calibration.add("v1", columns, clock=4.0)
    >>> report = calibration.report(clock=4.0)["v1"]
    >>> round(report["cumulative"]["ece"], 6), round(report["windows"]["1h"]["ece"], 6)
    (0.2, 0.2)
    """

    def __init__(self, model: ModelSettings, settings: MetricSettings) -> None:
        if model.task != "binary":
            raise ValueError(f"calibration needs a binary model, not {model.task!r}")
        self.positive_label = model.positive_label
        self._settings = settings
        self.versions: dict[str, tuple[CalibrationStats, dict[str, Window[CalibrationStats]]]] = {}

    def add(self, version: str, columns: Columns, clock: float) -> None:
        """Add matched pairs of one version: ``timestamp``, ``score`` (NaN: none) and
        ``actual`` (of the positive class) columns; unscored pairs are left out."""
        scored = ~np.isnan(columns["score"])
        if not scored.any():
            return
        rows: Any = slice(None) if scored.all() else scored
        columns = {name: columns[name][rows] for name in ("timestamp", "score", "actual")}
        cumulative, windows = self._version(version)
        update_from(cumulative, columns)
        for window in windows.values():
            window.add(columns, clock)

    def _version(
        self, version: str
    ) -> tuple[CalibrationStats, dict[str, Window[CalibrationStats]]]:
        if version not in self.versions:
            windows = make_windows(self._settings.windows, CalibrationStats, update_from)
            self.versions[version] = (CalibrationStats(), windows)
        return self.versions[version]

    @staticmethod
    def _entry(stats: CalibrationStats) -> dict[str, Any]:
        return {
            "count": stats.count,
            "ece": expected_calibration_error(stats),
            "bins": stats.reliability(),
        }

    def report(self, clock: float) -> dict[str, Any]:
        """Per version: ``cumulative`` and per window ``{count, ece, bins}`` (and the
        ``start`` and ``end`` of a time window)."""
        report: dict[str, Any] = {}
        for version, (cumulative, windows) in sorted(self.versions.items()):
            entries = {}
            for name, window in windows.items():
                entries[name] = self._entry(window.stats(clock))
                if (span := window.span(clock)) is not None:
                    entries[name]["start"], entries[name]["end"] = span
            report[version] = {"cumulative": self._entry(cumulative), "windows": entries}
        return report
