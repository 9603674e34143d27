"""Quality metrics of one model, per version and per tag value, cumulative and over windows.

>>> from predwatch.config import ModelSettings, MetricSettings
>>> from predwatch.events import Label, Prediction
>>> metrics = ModelMetrics(ModelSettings(task="binary"), MetricSettings(windows=[]))
>>> pairs = [(Prediction(str(i), "m", "v1", float(i), str(i % 2), None, None, {}, {}),
...           Label(str(i), float(i), "1", 1.0)) for i in range(4)]
>>> metrics.update(pairs, clock=4.0)
>>> metrics.report(clock=4.0)["v1"]["cumulative"]["accuracy"]
0.5
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from operator import itemgetter
from typing import Any

import numpy as np

from predwatch.batches import Columns, Rows, group_rows, take_columns
from predwatch.config import MetricSettings, ModelSettings
from predwatch.metrics.classification import (
    ClassificationStats,
    binary_metrics,
    multiclass_metrics,
)
from predwatch.metrics.regression import RegressionStats, regression_metrics
from predwatch.metrics.windows import Window, make_windows
from predwatch.records import Label, Prediction

OTHER = "other"  # tag values past the cap
MISSING = "missing"  # pairs whose prediction lacks the tag

Stats = ClassificationStats | RegressionStats
ScopeKey = tuple[str, str | None, str | None]  # version, tag name, tag value
POSITIVE = 1  # a binary model's positive class, as an index in ``ModelMetrics.columns``
_FIRST, _SECOND = itemgetter(0), itemgetter(1)  # of a pair
_TIMESTAMP, _VALUE, _SCORE = itemgetter(3), itemgetter(4), itemgetter(5)  # Prediction fields
_LABEL_VALUE, _NUMBER = itemgetter(2), itemgetter(3)  # Label fields


def add_pairs(stats: Stats, columns: Columns) -> None:
    """Add matched pairs, as ``ModelMetrics.columns`` types them, to ``stats``."""
    if isinstance(stats, RegressionStats):
        stats.update(columns["actual"], columns["predicted"])
        return
    stats.update(
        columns["actual"],
        columns["predicted"],
        score=columns.get("score"),
        positive=POSITIVE,
        true_probability=columns.get("true_probability"),
    )


@dataclass
class Scope:
    """Cumulative statistics and windows of one version, or one tag value of it."""

    cumulative: Stats
    windows: dict[str, Window[Stats]]


class ModelMetrics:
    """Updates a model's statistics from matched pairs, batch by batch, and reports them."""

    def __init__(self, model: ModelSettings, settings: MetricSettings) -> None:
        self.task = model.task
        self._settings = settings
        self._classes: dict[str, int] = {}
        if model.task == "binary":
            self._classes[model.positive_label] = POSITIVE
        self._tag_values: dict[str, set[str]] = {tag: set() for tag in settings.tags}
        self.folded: Counter[str] = Counter()  # values past a cap, by kind
        self._scopes: dict[ScopeKey, Scope] = {}

    @property
    def classes(self) -> list[str]:
        """Class labels by index; a binary model's negative classes get indices 0, 2, 3, ..."""
        names = [""] * (max(self._classes.values(), default=-1) + 1)
        for name, index in self._classes.items():
            names[index] = name
        return names

    def versions(self) -> list[str]:
        """The versions with matched pairs."""
        return sorted({version for version, _, _ in self._scopes})

    def scopes(self) -> Iterator[tuple[ScopeKey, Scope]]:
        """Every scope kept: keys are ``(version, None, None)`` for a version as a whole and
        ``(version, tag, value)`` for one tag value of it."""
        return iter(self._scopes.items())

    def _class_index(self, key: str) -> int:
        index = self._classes.get(key)
        if index is None:
            if len(self._classes) >= self._settings.max_classes - 1 and key != OTHER:
                self.folded["class"] += 1  # past the cap: one "other" class for the rest
                return self._class_index(OTHER)
            taken = set(self._classes.values())
            index = next(i for i in range(len(taken) + 1) if i not in taken)
            self._classes[key] = index
        return index

    def _class_indices(self, keys: list[str]) -> np.ndarray:
        """``_class_index`` of each key. Known classes are looked up by ``dict.get`` in C; only a
        batch with a new class goes key by key, so new classes get their indices in order."""
        indices = list(map(self._classes.get, keys))
        if None in indices:
            indices = list(map(self._class_index, keys))
        return np.array(indices, np.intp)

    def _new_stats(self) -> Stats:
        return RegressionStats() if self.task == "regression" else ClassificationStats()

    def _stats_of(self, columns: Columns) -> Stats:
        stats = self._new_stats()
        add_pairs(stats, columns)
        return stats

    def _scope(self, key: ScopeKey) -> Scope:
        scope = self._scopes.get(key)
        if scope is None:
            windows = make_windows(self._settings.windows, self._new_stats, add_pairs)
            scope = self._scopes[key] = Scope(self._new_stats(), windows)
        return scope

    def columns(self, pairs: Sequence[tuple[Prediction, Label]]) -> Columns:
        """Matched pairs as the columns every statistic reads: ``timestamp`` (the
        prediction's), ``actual`` and ``predicted`` (class indices, a binary model's positive
        class at 1; numbers for regression), and for a binary model ``score`` (NaN where a
        pair has none) or for a multiclass one ``true_probability``."""
        n = len(pairs)
        predictions, labels = list(map(_FIRST, pairs)), list(map(_SECOND, pairs))
        columns: Columns = {"timestamp": np.fromiter(map(_TIMESTAMP, predictions), np.float64, n)}
        if self.task == "regression":
            columns["actual"] = np.array(list(map(_NUMBER, labels)), np.float64)
            columns["predicted"] = np.array(list(map(_VALUE, predictions)), np.float64)
            return columns
        columns["actual"] = self._class_indices(list(map(_LABEL_VALUE, labels)))
        columns["predicted"] = self._class_indices(list(map(_VALUE, predictions)))
        # Every batch has the same columns, NaN where a pair has no score, so windows can
        # concatenate them.
        if self.task == "binary":
            columns["score"] = np.array(list(map(_SCORE, predictions)), np.float64)  # None: NaN
        else:
            columns["true_probability"] = np.array(
                list(map(_true_probability, predictions, labels)), np.float64
            )
        return columns

    def update(
        self,
        pairs: Sequence[tuple[Prediction, Label]],
        clock: float,
        columns: Columns | None = None,
        versions: list[tuple[str, Rows]] | None = None,
    ) -> None:
        """Add matched pairs of this model; ``clock`` is the monitor's event time.
        ``columns`` (as ``columns`` gives them) and ``versions`` (``group_rows`` of the pairs'
        versions), if the caller has them already."""
        if not pairs:
            return
        if columns is None:
            columns = self.columns(pairs)
        if versions is None:
            versions = group_rows([p.version for p, _ in pairs])
        tag_values = {
            tag: [self._tag_value(tag, p.tags.get(tag)) for p, _ in pairs]
            for tag in self._settings.tags
        }
        for version, rows in versions:
            selected = take_columns(columns, rows)
            self._add((version, None, None), selected, clock)
            for tag, values in tag_values.items():
                if rows is not None:
                    values = [values[i] for i in rows]
                for value, tag_rows in group_rows(values):
                    self._add((version, tag, value), take_columns(selected, tag_rows), clock)

    def _tag_value(self, tag: str, value: str | None) -> str:
        if value is None:
            return MISSING
        seen = self._tag_values[tag]
        if value in seen:
            return value
        if len(seen) < self._settings.max_tag_values:
            seen.add(value)
            return value
        self.folded["tag_value"] += 1
        return OTHER

    def _add(self, key: ScopeKey, columns: Columns, clock: float) -> None:
        scope = self._scope(key)
        scope.cumulative.merge(self._stats_of(columns))  # type: ignore[arg-type]
        for window in scope.windows.values():
            window.add(columns, clock)

    def metrics_of(self, stats: Stats) -> dict[str, Any]:
        if isinstance(stats, RegressionStats):
            return regression_metrics(stats)
        if self.task == "binary":
            return binary_metrics(stats, POSITIVE)
        return multiclass_metrics(stats)

    def window_stats(self, window: Window[Stats], clock: float) -> Stats:
        """Statistics of what ``window`` holds at event time ``clock``."""
        return window.stats(clock)

    def _report_scope(self, scope: Scope, clock: float) -> dict[str, Any]:
        windows: dict[str, Any] = {}
        for name, window in scope.windows.items():
            entry = self.metrics_of(window.stats(clock))
            if (span := window.span(clock)) is not None:
                entry["start"], entry["end"] = span
            windows[name] = entry
        return {"cumulative": self.metrics_of(scope.cumulative), "windows": windows}

    def report(self, clock: float) -> dict[str, Any]:
        """Metrics per version: ``{version: {task, cumulative, windows, tags}}``."""
        report: dict[str, Any] = {}
        for (version, tag, value), scope in sorted(self._scopes.items(), key=_scope_order):
            entry = self._report_scope(scope, clock)
            if tag is None:
                report[version] = {"task": self.task, **entry}
                if self._settings.tags:
                    report[version]["tags"] = {}
            else:
                report[version]["tags"].setdefault(tag, {})[value] = entry
        return report


def _scope_order(item: tuple[ScopeKey, Scope]) -> tuple[str, str, str]:
    version, tag, value = item[0]
    return version, tag or "", value or ""


def _true_probability(prediction: Prediction, label: Label) -> float:
    """The probability the model gave the actual class, normalised over its classes."""
    probabilities = prediction.probabilities
    if probabilities is None:
        return float("nan")
    return probabilities.get(label.value, 0.0) / sum(probabilities.values())
