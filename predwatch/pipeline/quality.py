"""The quality stage: every model's metrics per version, window and tag value.

It reports the metrics (the summary's ``cumulative``, ``windows`` and
``tags``), one gauge value per metric and scope, and the cumulative
sufficient statistics behind them as counters, so that a fleet-wide metric is
a PromQL ratio of sums.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from predwatch.catalogue import FIGURES, QUALITY
from predwatch.config import Settings
from predwatch.metrics.classification import ClassificationStats
from predwatch.metrics.model import ModelMetrics
from predwatch.metrics.regression import RegressionStats
from predwatch.pipeline.batch import Batch, Pair
from predwatch.pipeline.builder import ReportBuilder
from predwatch.state.codec import from_data, to_data

CUMULATIVE = "cumulative"
NOT_METRICS = frozenset({"start", "end"})  # a time window's span, not a metric

# Summary key -> family: every quality figure of the catalogue is named as the summary names it.
GAUGES = {spec.figure: spec.metric for spec in FIGURES.values() if spec.labels == QUALITY}
STATISTICS = {  # statistic -> family
    "count": "predwatch_scored_pairs_total",
    "correct": "predwatch_correct_total",
    "true_positives": "predwatch_true_positives_total",
    "predicted_positives": "predwatch_predicted_positives_total",
    "actual_positives": "predwatch_actual_positives_total",
    "log_loss_sum": "predwatch_log_loss_total",
    "log_loss_count": "predwatch_log_loss_pairs_total",
    "brier_sum": "predwatch_brier_score_total",
    "brier_count": "predwatch_brier_pairs_total",
    "absolute_error_sum": "predwatch_absolute_error_total",
    "squared_error_sum": "predwatch_squared_error_total",
    "percentage_error_sum": "predwatch_relative_error_total",
    "percentage_count": "predwatch_relative_error_pairs_total",
    "error_sum": "predwatch_net_error",
}
REGRESSION_STATISTICS = (
    "count",
    "absolute_error_sum",
    "squared_error_sum",
    "percentage_error_sum",
    "percentage_count",
    "error_sum",
)


class QualityStage:
    """Feeds each model's ``ModelMetrics`` with the matched pairs of every batch."""

    name = "quality"

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self.metrics = {
            name: ModelMetrics(model, settings.metrics) for name, model in settings.models.items()
        }

    def columns_of(self, model: str) -> Any:
        """The function that types a model's pairs (its class index lives here)."""
        metrics = self.metrics[model]

        def columns(pairs: list[Pair]) -> Any:
            return metrics.columns(pairs)

        return columns

    def observe(self, batch: Batch) -> None:
        for model, part in batch.models.items():
            if part.pairs:
                self.metrics[model].update(part.pairs, batch.clock, part.columns, part.versions)

    def report(self, builder: ReportBuilder) -> None:
        for model, metrics in self.metrics.items():
            for version, entry in metrics.report(builder.clock).items():
                builder.version(model, version, metrics.task).update(entry)
                for scope, figures in _scopes(version, entry):
                    for window, values in figures:
                        count = values.get("count")
                        labels = (model, version, window, *scope)
                        for key, number in values.items():
                            if key in GAUGES:
                                builder.add(GAUGES[key], labels, number, count)
            self._statistics(builder, model, metrics)
            for kind, count in sorted(metrics.folded.items()):
                builder.add("predwatch_folded_values_total", (model, kind), count)

    def _statistics(self, builder: ReportBuilder, model: str, metrics: ModelMetrics) -> None:
        settings = self._settings.models[model]
        positive = settings.positive_label if metrics.task == "binary" else None
        classes = metrics.classes
        for (version, tag, value), scope in sorted(metrics.scopes(), key=_scope_order):
            labels = (model, version, tag or "", value or "")
            stats = scope.cumulative
            if isinstance(stats, RegressionStats):
                values = {key: getattr(stats, key) for key in REGRESSION_STATISTICS}
            else:
                values = _classification(stats, classes, positive)
                _confusion(builder, labels, stats, classes)
            for key, number in values.items():
                builder.add(STATISTICS[key], labels, number)

    def state(self) -> dict[str, Any]:
        return {"metrics": to_data(self.metrics)}

    def load_state(self, state: dict[str, Any]) -> None:
        self.metrics = from_data(state["metrics"])


def _scopes(
    version: str, entry: dict[str, Any]
) -> Iterator[tuple[tuple[str, str], list[tuple[str, dict[str, Any]]]]]:
    """``((tag, tag_value), [(window, metrics)])`` for the version and each tag value."""

    def windows(scope: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
        if "cumulative" not in scope:
            return []
        return [(CUMULATIVE, scope["cumulative"]), *scope.get("windows", {}).items()]

    yield ("", ""), windows(entry)
    for tag, values in entry.get("tags", {}).items():
        for value, tag_entry in values.items():
            yield (tag, value), windows(tag_entry)


def _scope_order(item: tuple[tuple[str, str | None, str | None], object]) -> tuple[str, ...]:
    version, tag, value = item[0]
    return version, tag or "", value or ""


def _classification(
    stats: ClassificationStats, classes: list[str], positive: str | None
) -> dict[str, float]:
    confusion = stats.confusion
    values: dict[str, float] = {
        "count": stats.count,
        "correct": int(confusion.trace()),
        "log_loss_sum": stats.log_loss_sum,
        "log_loss_count": stats.log_loss_count,
    }
    if positive is not None:
        index = classes.index(positive)
        inside = index < confusion.shape[0]
        values["true_positives"] = int(confusion[index, index]) if inside else 0
        values["predicted_positives"] = int(confusion[:, index].sum()) if inside else 0
        values["actual_positives"] = int(confusion[index, :].sum()) if inside else 0
        values["brier_sum"] = stats.brier_sum
        values["brier_count"] = stats.brier_count
    return values


def _confusion(
    builder: ReportBuilder,
    labels: tuple[str, ...],
    stats: ClassificationStats,
    classes: list[str],
) -> None:
    """Every cell over the model's classes (zeros included), so no series appears late."""
    matrix = stats.confusion
    size = matrix.shape[0]
    for i, actual in enumerate(classes):
        for j, predicted in enumerate(classes):
            if actual and predicted:  # "" is an index no class holds yet
                count = int(matrix[i, j]) if i < size and j < size else 0
                builder.add("predwatch_confusion_total", (*labels, actual, predicted), count)
