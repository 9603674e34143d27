"""The Prometheus collector: the monitor's counts, metrics and statistics, read at scrape time.

Nothing is updated on the hot path. ``collect()`` takes the lock the consumer
thread holds while it processes a batch, reads the monitor, builds every
metric family, releases the lock and only then yields, so a scrape sees the
state between two batches, never in the middle of one.

Quality gauges are taken from ``monitor.summary()`` itself, so they are the
same floats the summary (and ``predwatch replay``) reports. Undefined values
(None in the summary) are not exported. Every family is always yielded, with
no samples where there is nothing to report, so the exposition always lists
the whole catalogue (docs/metrics.md).

>>> import threading
>>> from prometheus_client import CollectorRegistry
>>> from predwatch.config import Settings
>>> from predwatch.events import Raw
>>> from predwatch.monitor import Monitor
>>> monitor = Monitor(Settings.model_validate({"models": {"fraud": {"task": "binary"}}}))
>>> lock = threading.Lock()
>>> registry = CollectorRegistry()
>>> registry.register(MonitorCollector(monitor, lock))
>>> _ = monitor.process(0, [Raw(b'{"prediction_id": "a", "model": "fraud", "timestamp": 1, '
...     b'"prediction": 1}')], [Raw(b'{"prediction_id": "a", "timestamp": 2, "label": 1}')], 2.0)
>>> registry.get_sample_value("predwatch_joined_total",
...                           {"model": "fraud", "version": "unversioned"})
1
"""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager
from typing import Any

from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from predwatch.exporter.diagnostics import diagnostics_families
from predwatch.exporter.drift import drift_families
from predwatch.exporter.health import Health
from predwatch.metrics.classification import ClassificationStats
from predwatch.metrics.delay import DELAY_BOUNDS
from predwatch.metrics.model import ModelMetrics
from predwatch.metrics.regression import RegressionStats
from predwatch.monitor import Monitor

CUMULATIVE = "cumulative"
SCOPE_LABELS = ["model", "version", "tag", "tag_value"]  # tag="" is the version as a whole
QUALITY_LABELS = ["model", "version", "window", "tag", "tag_value"]

# Summary metric key -> (gauge name, help). The unit suffix follows Prometheus: _ratio for [0, 1].
QUALITY: dict[str, tuple[str, str]] = {
    "accuracy": ("predwatch_accuracy_ratio", "Share of matched pairs predicted correctly."),
    "precision": ("predwatch_precision_ratio", "Precision of the positive class (binary)."),
    "recall": ("predwatch_recall_ratio", "Recall of the positive class (binary)."),
    "f1": ("predwatch_f1_ratio", "F1 score of the positive class (binary)."),
    "roc_auc": ("predwatch_roc_auc_ratio", "Area under the ROC curve of the score (binary)."),
    "log_loss": ("predwatch_log_loss", "Mean log loss of pairs with a score or probabilities."),
    "brier": ("predwatch_brier_score", "Mean Brier score of pairs with a score (binary)."),
    "macro_precision": ("predwatch_macro_precision_ratio", "Macro-averaged precision."),
    "macro_recall": ("predwatch_macro_recall_ratio", "Macro-averaged recall (multiclass)."),
    "macro_f1": ("predwatch_macro_f1_ratio", "Macro-averaged F1 score (multiclass)."),
    "mae": ("predwatch_mae", "Mean absolute error, in the label's unit (regression)."),
    "rmse": ("predwatch_rmse", "Root mean squared error, in the label's unit (regression)."),
    "mape": ("predwatch_mape_ratio", "Mean absolute percentage error as a ratio, labels != 0."),
    "r2": ("predwatch_r2", "Coefficient of determination R squared (regression)."),
    "bias": ("predwatch_bias", "Mean of prediction minus label (regression)."),
}
PAIRS_GAUGE = "predwatch_metric_pairs"  # from the summary's "count"
IGNORED_REPORT_KEYS = frozenset({"start", "end"})  # a time window's span, not a metric

LockLike = AbstractContextManager[Any]


class MonitorCollector(Collector):
    """Yields predwatch's metric families, read from the monitor under ``lock`` at scrape time.

    ``monitor`` is a Monitor or a function giving the current one (a monitor
    restored from a checkpoint replaces the old object). ``lock`` must be the
    lock the consumer holds while it processes a batch. ``health`` (optional)
    gives consumer lag, readiness and poll time. ``clock`` gives the
    processing time at which watermarks are read: pass the clock the source
    passes to ``Monitor.process``.
    """

    def __init__(
        self,
        monitor: Monitor | Callable[[], Monitor],
        lock: LockLike,
        health: Health | None = None,
        clock: Callable[[], float] = time.time,
        notifications: Callable[[], dict[tuple[str, str], int]] | None = None,
    ) -> None:
        self._monitor = monitor if callable(monitor) else (lambda: monitor)
        self._lock = lock
        self._health = health
        self._clock = clock
        self._notifications = notifications

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            monitor = self._monitor()
            figures = monitor.figures()
            families = [
                *join_families(monitor),
                delay_family(monitor),
                *quality_families(figures),
                *drift_families(figures),
                *diagnostics_families(figures),
                *statistic_families(monitor),
                *progress_families(monitor, self._clock()),
                alert_family(monitor),
            ]
        families.extend(health_families(self._health))
        families.append(notification_family(self._notifications))
        yield from families


def _counter(name: str, doc: str, labels: list[str] | None = None) -> CounterMetricFamily:
    return CounterMetricFamily(name, doc, labels=labels or [])


def _gauge(name: str, doc: str, labels: list[str] | None = None) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, labels=labels or [])


def join_families(monitor: Monitor) -> list[Metric]:
    """Event and outcome counts: every event ends in exactly one of these."""
    counts = monitor.counts
    per_model = [
        ("predwatch_predictions_total", "Valid predictions received.", "predictions"),
        ("predwatch_joined_total", "Predictions matched with their label.", "matched"),
        ("predwatch_unlabelled_total", "Predictions that expired without a label.", "unlabelled"),
    ]
    families: list[Metric] = []
    for name, doc, field in per_model:
        family = _counter(name, doc, ["model", "version"])
        for (model, version), model_counts in sorted(monitor.model_counts.items()):
            family.add_metric([model, version], getattr(model_counts, field))
        families.append(family)
    for name, doc, value in [
        ("predwatch_labels_total", "Valid labels received.", counts.labels),
        (
            "predwatch_orphan_labels_total",
            "Labels whose prediction never arrived.",
            counts.orphan_labels,
        ),
        (
            "predwatch_late_labels_total",
            "Labels that came after their prediction expired.",
            counts.late_labels,
        ),
    ]:
        total = _counter(name, doc)
        total.add_metric([], value)
        families.append(total)
    duplicates = _counter("predwatch_duplicates_total", "Repeated events by id.", ["kind"])
    duplicates.add_metric(["prediction"], counts.duplicate_predictions)
    duplicates.add_metric(["label"], counts.duplicate_labels)
    invalid = _counter(
        "predwatch_invalid_events_total", "Messages that could not be used.", ["topic", "reason"]
    )
    for (topic, reason), count in sorted(monitor.invalid_reasons.items()):
        invalid.add_metric([topic, reason], count)
    pending_predictions = _gauge(
        "predwatch_pending_predictions", "Predictions waiting for their label."
    )
    pending_predictions.add_metric([], counts.pending_predictions)
    pending_labels = _gauge("predwatch_pending_labels", "Labels waiting for their prediction.")
    pending_labels.add_metric([], counts.pending_labels)
    return [*families, duplicates, invalid, pending_predictions, pending_labels]


def delay_family(monitor: Monitor) -> Metric:
    """Label time minus prediction time of matched pairs, per model."""
    family = HistogramMetricFamily(
        "predwatch_label_delay_seconds",
        "Time from a prediction to its label, of matched pairs.",
        labels=["model"],
    )
    for model, histogram in sorted(monitor.label_delays.items()):
        cumulative = 0
        buckets: list[tuple[str, float]] = []
        for bound, count in zip([*DELAY_BOUNDS, math.inf], histogram.counts.tolist(), strict=True):
            cumulative += count
            buckets.append((floatToGoString(bound), cumulative))
        family.add_metric([model], buckets, sum_value=histogram.sum)
    return family


def _report_scopes(summary: dict[str, Any]) -> Iterator[tuple[list[str], dict[str, Any]]]:
    """``([model, version, tag, tag_value], {cumulative, windows})`` per scope of the summary."""
    for model, versions in summary["models"].items():
        for version, entry in versions.items():
            yield [model, version, "", ""], entry
            for tag, values in entry.get("tags", {}).items():
                for value, tag_entry in values.items():
                    yield [model, version, tag, value], tag_entry


def quality_families(summary: dict[str, Any]) -> list[Metric]:
    """A gauge per quality metric and window, with the summary's own values."""
    gauges = {key: _gauge(name, doc, QUALITY_LABELS) for key, (name, doc) in QUALITY.items()}
    pairs = _gauge(
        PAIRS_GAUGE, "Matched pairs the quality gauges are computed over.", QUALITY_LABELS
    )
    for (model, version, tag, value), entry in _report_scopes(summary):
        if "cumulative" not in entry:
            continue  # a version with drift figures but no matched pair yet
        for window, metrics in [(CUMULATIVE, entry["cumulative"]), *entry["windows"].items()]:
            labels = [model, version, window, tag, value]
            for key, number in metrics.items():
                if number is None or key in IGNORED_REPORT_KEYS:
                    continue
                if key == "count":
                    pairs.add_metric(labels, number)
                elif key in gauges:
                    gauges[key].add_metric(labels, number)
    return [*gauges.values(), pairs]


STATISTICS: dict[str, tuple[str, str]] = {  # attribute or derived key -> (name, help)
    "count": ("predwatch_scored_pairs_total", "Matched pairs in the cumulative statistics."),
    "correct": ("predwatch_correct_total", "Matched pairs predicted correctly."),
    "true_positives": ("predwatch_true_positives_total", "Pairs predicted and labelled positive."),
    "predicted_positives": ("predwatch_predicted_positives_total", "Pairs predicted positive."),
    "actual_positives": ("predwatch_actual_positives_total", "Pairs labelled positive."),
    "log_loss_sum": ("predwatch_log_loss_total", "Sum of per-pair log loss."),
    "log_loss_count": ("predwatch_log_loss_pairs_total", "Pairs with a score or probabilities."),
    "brier_sum": ("predwatch_brier_score_total", "Sum of per-pair Brier score."),
    "brier_count": ("predwatch_brier_pairs_total", "Pairs with a score (binary)."),
    "absolute_error_sum": ("predwatch_absolute_error_total", "Sum of |prediction - label|."),
    "squared_error_sum": ("predwatch_squared_error_total", "Sum of (prediction - label)^2."),
    "percentage_error_sum": (
        "predwatch_relative_error_total",
        "Sum of |prediction - label| / |label| over labels != 0.",
    ),
    "percentage_count": ("predwatch_relative_error_pairs_total", "Pairs whose label is not 0."),
}
NET_ERROR = "predwatch_net_error"  # a signed sum goes up and down: a gauge, not a counter


def _classification_statistics(
    stats: ClassificationStats, metrics: ModelMetrics, positive: str | None
) -> dict[str, float]:
    confusion = stats.confusion
    values: dict[str, float] = {
        "count": stats.count,
        "correct": int(confusion.trace()),
        "log_loss_sum": stats.log_loss_sum,
        "log_loss_count": stats.log_loss_count,
    }
    if positive is not None:
        index = metrics.classes.index(positive)
        inside = index < confusion.shape[0]
        values["true_positives"] = int(confusion[index, index]) if inside else 0
        values["predicted_positives"] = int(confusion[:, index].sum()) if inside else 0
        values["actual_positives"] = int(confusion[index, :].sum()) if inside else 0
        values["brier_sum"] = stats.brier_sum
        values["brier_count"] = stats.brier_count
    return values


def _regression_statistics(stats: RegressionStats) -> dict[str, float]:
    return {
        key: getattr(stats, key)
        for key in (
            "count",
            "absolute_error_sum",
            "squared_error_sum",
            "percentage_error_sum",
            "percentage_count",
            "error_sum",
        )
    }


def statistic_families(monitor: Monitor) -> list[Metric]:
    """The cumulative sufficient statistics: fleet-wide metrics are PromQL ratios of their sums."""
    counters = {key: _counter(name, doc, SCOPE_LABELS) for key, (name, doc) in STATISTICS.items()}
    net_error = _gauge(NET_ERROR, "Sum of prediction - label (regression).", SCOPE_LABELS)
    confusion = _counter(
        "predwatch_confusion_total",
        "Matched pairs by actual and predicted class.",
        [*SCOPE_LABELS, "actual", "predicted"],
    )
    for model, metrics in sorted(monitor.metrics.items()):
        settings = monitor.settings.models[model]
        positive = settings.positive_label if metrics.task == "binary" else None
        classes = metrics.classes
        for (version, tag, value), scope in sorted(metrics.scopes(), key=_scope_order):
            labels = [model, version, tag or "", value or ""]
            stats = scope.cumulative
            if isinstance(stats, RegressionStats):
                values = _regression_statistics(stats)
                net_error.add_metric(labels, values.pop("error_sum"))
            else:
                values = _classification_statistics(stats, metrics, positive)
                _add_confusion(confusion, labels, stats, classes)
            for key, number in values.items():
                counters[key].add_metric(labels, number)
    return [*counters.values(), net_error, confusion]


def _scope_order(item: tuple[tuple[str, str | None, str | None], object]) -> tuple[str, ...]:
    version, tag, value = item[0]
    return version, tag or "", value or ""


def _add_confusion(
    family: CounterMetricFamily, labels: list[str], stats: ClassificationStats, classes: list[str]
) -> None:
    """Every cell over the model's classes (zeros included), so no series appears late."""
    matrix = stats.confusion
    size = matrix.shape[0]
    for i, actual in enumerate(classes):
        for j, predicted in enumerate(classes):
            if actual and predicted:  # "" is an index no class holds yet
                count = int(matrix[i, j]) if i < size and j < size else 0
                family.add_metric([*labels, actual, predicted], count)


def progress_families(monitor: Monitor, now: float) -> list[Metric]:
    """How far event time has got: watermarks per partition and the latest event."""
    watermarks = _gauge(
        "predwatch_watermark_timestamp_seconds",
        "Event time up to which a partition's join takes its input as complete.",
        ["partition"],
    )
    for partition, mark in sorted(monitor.watermarks(now).items()):
        if mark is not None and math.isfinite(mark):
            watermarks.add_metric([str(partition)], mark)
    last_event = _gauge(
        "predwatch_last_event_timestamp_seconds", "Event time of the latest valid event."
    )
    if math.isfinite(monitor.last_event_time):
        last_event.add_metric([], monitor.last_event_time)
    return [watermarks, last_event]


def health_families(health: Health | None) -> Iterable[Metric]:
    """Consumer lag, readiness and last poll time, as the source reported them."""
    lag = _gauge(
        "predwatch_consumer_lag", "Records not yet consumed, per partition.", ["topic", "partition"]
    )
    ready = _gauge("predwatch_ready", "1 while the source is ready (see /readyz), else 0.")
    last_poll = _gauge(
        "predwatch_last_poll_timestamp_seconds", "Wall-clock time of the source's last poll."
    )
    if health is not None:
        for (topic, partition), records in sorted(health.lags().items()):
            lag.add_metric([topic, str(partition)], records)
        ready.add_metric([], 1.0 if health.ready else 0.0)
        if health.last_poll is not None:
            last_poll.add_metric([], health.last_poll)
    return [lag, ready, last_poll]


def alert_family(monitor: Monitor) -> Metric:
    """How many alerts are pending and firing, per rule."""
    family = _gauge(
        "predwatch_alerts", "Alerts pending or firing, per rule and state.", ["alertname", "state"]
    )
    states = Counter((alert.rule, alert.state) for alert in monitor.alerts.active())
    for (rule, state), count in sorted(states.items()):
        family.add_metric([rule, state], count)
    return family


def notification_family(counts: Callable[[], dict[tuple[str, str], int]] | None) -> Metric:
    """What each alert sink did with the notifications it was given."""
    family = _counter(
        "predwatch_alert_notifications",
        "Alert notifications per sink by result: delivered, retried (failed attempts), dropped "
        "or superseded (replaced by a newer state of the same alert before delivery).",
        ["sink", "result"],
    )
    for (sink, result), count in sorted((counts() if counts else {}).items()):
        family.add_metric([sink, result], count)
    return family
