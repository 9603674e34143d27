"""The catalogue of figures: every number predwatch reports, described once.

The exporter takes each family's name, type, help and labels from here, alert
rules are checked against it (a rule may watch any figure with a ``figure``
name), and docs/metrics.md is tested against it.

A figure's ``figure`` is the short name rules and the report use
(``accuracy``, ``estimated_accuracy``, ``feature_drift_psi``); ``metric`` is
its Prometheus family. ``labels`` name the dimensions of its values, in
order. ``bounds`` is the range a value can take (a threshold outside it can
never be crossed) and ``better`` which way is good.

>>> spec = FIGURES["estimated_accuracy"]
>>> spec.metric, spec.labels, spec.bounds
('predwatch_estimated_accuracy_ratio', ('model', 'version', 'window'), (0.0, 1.0))
>>> CATALOGUE["predwatch_joined_total"].kind
'counter'
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

Kind = Literal["counter", "gauge", "histogram"]
Unit = Literal["ratio", "number", "seconds", "count", "label"]
Better = Literal["higher", "lower", "none"]
Task = Literal["binary", "multiclass", "regression"]

ALL_TASKS: frozenset[str] = frozenset({"binary", "multiclass", "regression"})
CLASSIFICATION: frozenset[str] = frozenset({"binary", "multiclass"})
BINARY: frozenset[str] = frozenset({"binary"})
MULTICLASS: frozenset[str] = frozenset({"multiclass"})
REGRESSION: frozenset[str] = frozenset({"regression"})

SCOPE = ("model", "version", "tag", "tag_value")
QUALITY = ("model", "version", "window", "tag", "tag_value")
WINDOW = ("model", "version", "window")
FEATURE = ("model", "version", "window", "feature")
SEGMENT = ("model", "version", "rank")
HISTORY = ("model", "version", "metric")
PARTS = ("feature", "partition", "metric")
"""Labels an alert rule picks with ``tags`` in figures without tags (besides tag values)."""
UNBOUNDED = (-math.inf, math.inf)
RATIO = (0.0, 1.0)
NON_NEGATIVE = (0.0, math.inf)


@dataclass(frozen=True)
class Spec:
    """One exported family and, when rules may watch it, its figure name."""

    metric: str
    kind: Kind
    help: str
    labels: tuple[str, ...] = ()
    figure: str | None = None  # the name rules and the report use; None: exported only
    unit: Unit = "number"
    tasks: frozenset[str] = ALL_TASKS
    better: Better = "none"
    bounds: tuple[float, float] = UNBOUNDED

    @property
    def windowed(self) -> bool:
        """Whether values are per window (``cumulative`` or a configured window)."""
        return "window" in self.labels


def _quality(figure: str, metric: str, help: str, tasks: frozenset[str], **kw: object) -> Spec:
    return Spec(metric, "gauge", help, QUALITY, figure, tasks=tasks, **kw)  # type: ignore[arg-type]


def _estimated(name: str) -> list[Spec]:
    return [
        Spec(
            f"predwatch_estimated_{name}_ratio",
            "gauge",
            f"{name.capitalize()} estimated from scores (CBPE) for the predictions of a window, "
            'or those still waiting for labels (window="pending").',
            WINDOW,
            f"estimated_{name}",
            "ratio",
            BINARY,
            "higher",
            RATIO,
        ),
        Spec(
            f"predwatch_evaluated_{name}_ratio",
            "gauge",
            f"{name.capitalize()} of the latest window whose labels have all arrived: "
            "the estimate and the realised value side by side (source).",
            (*WINDOW, "source"),
            None,
            "ratio",
            BINARY,
            "higher",
            RATIO,
        ),
    ]


_SPECS: list[Spec] = [
    # Events and join outcomes.
    Spec("predwatch_predictions_total", "counter", "Valid predictions received.",
         ("model", "version"), "predictions", "count", bounds=NON_NEGATIVE),
    Spec("predwatch_labels_total", "counter", "Valid labels received.", (), "labels", "count",
         bounds=NON_NEGATIVE),
    Spec("predwatch_joined_total", "counter", "Predictions matched with their label.",
         ("model", "version"), "matched", "count", bounds=NON_NEGATIVE),
    Spec("predwatch_unlabelled_total", "counter", "Predictions that expired without a label.",
         ("model", "version"), "unlabelled", "count", better="lower", bounds=NON_NEGATIVE),
    Spec("predwatch_evicted_total", "counter",
         "Pending predictions ended early, the oldest beyond join.max_pending.",
         ("model", "version"), "evicted", "count", better="lower", bounds=NON_NEGATIVE),
    Spec("predwatch_orphan_labels_total", "counter", "Labels whose prediction never arrived.",
         (), "orphan_labels", "count", better="lower", bounds=NON_NEGATIVE),
    Spec("predwatch_late_labels_total", "counter",
         "Labels that came after their prediction expired.", (), "late_labels", "count",
         better="lower", bounds=NON_NEGATIVE),
    Spec("predwatch_late_predictions_total", "counter",
         "Predictions stamped more than join.grace before the latest of their input partition.",
         (), "late_predictions", "count", better="lower", bounds=NON_NEGATIVE),
    Spec("predwatch_duplicates_total", "counter", "Repeated events by id.", ("kind",)),
    Spec("predwatch_invalid_events_total", "counter", "Messages that could not be used.",
         ("topic", "reason"), "invalid", "count", better="lower", bounds=NON_NEGATIVE),
    Spec("predwatch_folded_values_total", "counter",
         "Values from events (versions, classes, tag values) past their cap, counted as other.",
         ("model", "kind")),
    Spec("predwatch_partition_events_total", "counter",
         "Events of an input partition by outcome; they move with the partition to its new "
         "owner, so the sum over a group's instances is exact.", ("partition", "outcome")),
    Spec("predwatch_pending_predictions", "gauge", "Predictions waiting for their label.", (),
         "pending_predictions", "count", bounds=NON_NEGATIVE),
    Spec("predwatch_pending_labels", "gauge", "Labels waiting for their prediction.", (),
         "pending_labels", "count", bounds=NON_NEGATIVE),
    Spec("predwatch_label_coverage_ratio", "gauge",
         "Share of settled predictions (matched, unlabelled or evicted) that got their label.",
         (),
         "label_coverage", "ratio", better="higher", bounds=RATIO),
    Spec("predwatch_label_delay_seconds", "histogram",
         "Time from a prediction to its label, of matched pairs.", ("model",), unit="seconds"),
    # Quality gauges.
    _quality("count", "predwatch_metric_pairs",
             "Matched pairs the quality gauges are computed over.", ALL_TASKS, unit="count",
             bounds=NON_NEGATIVE),
    _quality("accuracy", "predwatch_accuracy_ratio", "Share of matched pairs predicted correctly.",
             CLASSIFICATION, unit="ratio", better="higher", bounds=RATIO),
    _quality("precision", "predwatch_precision_ratio", "Precision of the positive class (binary).",
             BINARY, unit="ratio", better="higher", bounds=RATIO),
    _quality("recall", "predwatch_recall_ratio", "Recall of the positive class (binary).",
             BINARY, unit="ratio", better="higher", bounds=RATIO),
    _quality("f1", "predwatch_f1_ratio", "F1 score of the positive class (binary).", BINARY,
             unit="ratio", better="higher", bounds=RATIO),
    _quality("roc_auc", "predwatch_roc_auc_ratio",
             "Area under the ROC curve of the score (binary).", BINARY, unit="ratio",
             better="higher", bounds=RATIO),
    _quality("log_loss", "predwatch_log_loss",
             "Mean log loss of pairs with a score or probabilities.", CLASSIFICATION,
             better="lower", bounds=NON_NEGATIVE),
    _quality("brier", "predwatch_brier_score", "Mean Brier score of pairs with a score (binary).",
             BINARY, better="lower", bounds=RATIO),
    _quality("macro_precision", "predwatch_macro_precision_ratio", "Macro-averaged precision.",
             MULTICLASS, unit="ratio", better="higher", bounds=RATIO),
    _quality("macro_recall", "predwatch_macro_recall_ratio",
             "Macro-averaged recall (multiclass).", MULTICLASS, unit="ratio", better="higher",
             bounds=RATIO),
    _quality("macro_f1", "predwatch_macro_f1_ratio", "Macro-averaged F1 score (multiclass).",
             MULTICLASS, unit="ratio", better="higher", bounds=RATIO),
    _quality("mae", "predwatch_mae", "Mean absolute error, in the label's unit (regression).",
             REGRESSION, better="lower", bounds=NON_NEGATIVE),
    _quality("rmse", "predwatch_rmse",
             "Root mean squared error, in the label's unit (regression).", REGRESSION,
             better="lower", bounds=NON_NEGATIVE),
    _quality("mape", "predwatch_mape_ratio",
             "Mean absolute percentage error as a ratio, labels != 0.", REGRESSION,
             better="lower", bounds=NON_NEGATIVE),
    _quality("r2", "predwatch_r2", "Coefficient of determination R squared (regression).",
             REGRESSION, better="higher", bounds=(-math.inf, 1.0)),
    _quality("bias", "predwatch_bias", "Mean of prediction minus label (regression).",
             REGRESSION),
    # Sufficient statistics, cumulative: fleet-wide metrics are PromQL ratios of their sums.
    Spec("predwatch_scored_pairs_total", "counter",
         "Matched pairs in the cumulative statistics.", SCOPE),
    Spec("predwatch_correct_total", "counter", "Matched pairs predicted correctly.", SCOPE,
         tasks=CLASSIFICATION),
    Spec("predwatch_true_positives_total", "counter", "Pairs predicted and labelled positive.",
         SCOPE, tasks=BINARY),
    Spec("predwatch_predicted_positives_total", "counter", "Pairs predicted positive.", SCOPE,
         tasks=BINARY),
    Spec("predwatch_actual_positives_total", "counter", "Pairs labelled positive.", SCOPE,
         tasks=BINARY),
    Spec("predwatch_log_loss_total", "counter", "Sum of per-pair log loss.", SCOPE,
         tasks=CLASSIFICATION),
    Spec("predwatch_log_loss_pairs_total", "counter", "Pairs with a score or probabilities.",
         SCOPE, tasks=CLASSIFICATION),
    Spec("predwatch_brier_score_total", "counter", "Sum of per-pair Brier score.", SCOPE,
         tasks=BINARY),
    Spec("predwatch_brier_pairs_total", "counter", "Pairs with a score (binary).", SCOPE,
         tasks=BINARY),
    Spec("predwatch_absolute_error_total", "counter", "Sum of |prediction - label|.", SCOPE,
         tasks=REGRESSION),
    Spec("predwatch_squared_error_total", "counter", "Sum of (prediction - label)^2.", SCOPE,
         tasks=REGRESSION),
    Spec("predwatch_relative_error_total", "counter",
         "Sum of |prediction - label| / |label| over labels != 0.", SCOPE, tasks=REGRESSION),
    Spec("predwatch_relative_error_pairs_total", "counter", "Pairs whose label is not 0.",
         SCOPE, tasks=REGRESSION),
    Spec("predwatch_net_error", "gauge", "Sum of prediction - label (regression).", SCOPE,
         tasks=REGRESSION),
    Spec("predwatch_confusion_total", "counter", "Matched pairs by actual and predicted class.",
         (*SCOPE, "actual", "predicted"), tasks=CLASSIFICATION),
    # Progress and consumer health.
    Spec("predwatch_watermark_timestamp_seconds", "gauge",
         "Event time up to which a partition's join takes its input as complete.",
         ("partition",), unit="seconds"),
    Spec("predwatch_last_event_timestamp_seconds", "gauge",
         "Event time of the latest valid event.", unit="seconds"),
    Spec("predwatch_seconds_since_last_event", "gauge",
         "Processing time since the latest valid event arrived.", (),
         "seconds_since_last_event", "seconds", better="lower", bounds=NON_NEGATIVE),
    Spec("predwatch_consumer_lag", "gauge", "Records not yet consumed, per partition.",
         ("topic", "partition"), "consumer_lag", "count", better="lower", bounds=NON_NEGATIVE),
    Spec("predwatch_ready", "gauge", "1 while the source is ready (see /readyz), else 0."),
    Spec("predwatch_last_poll_timestamp_seconds", "gauge",
         "Wall-clock time of the source's last poll.", unit="seconds"),
    Spec("predwatch_report_timestamp_seconds", "gauge",
         "Event time of the report the other figures come from.", unit="seconds"),
    # Drift, data quality, estimates and calibration.
    Spec("predwatch_feature_drift_psi", "gauge",
         "Population stability index of the window vs the reference.", FEATURE,
         "feature_drift_psi", better="lower", bounds=NON_NEGATIVE),
    Spec("predwatch_feature_drift_js_distance", "gauge",
         "Jensen-Shannon distance (base 2) of the window vs the reference.", FEATURE,
         "feature_drift_js", better="lower", bounds=RATIO),
    Spec("predwatch_feature_drift_p_value", "gauge",
         "Benjamini-Hochberg adjusted p-value "
         "(Kolmogorov-Smirnov for numeric columns, chi-square for categorical).", FEATURE,
         "feature_drift_p_value", better="higher", bounds=RATIO),
    Spec("predwatch_feature_drift_detected", "gauge",
         "1 when the column drifts: enough samples, "
         "PSI past its threshold and an adjusted p-value below alpha; else 0.", FEATURE,
         "feature_drift_detected", better="lower", bounds=RATIO),
    Spec("predwatch_feature_drift_samples", "gauge", "Values of the column in the window.",
         FEATURE, bounds=NON_NEGATIVE),
    Spec("predwatch_feature_unseen_values", "gauge",
         "Values of a category the reference never saw, in the window.", FEATURE,
         "feature_unseen_values", "count", better="lower", bounds=NON_NEGATIVE),
    Spec("predwatch_feature_out_of_range_values", "gauge",
         "Numeric values outside the reference's range, in the window.", FEATURE,
         "feature_out_of_range_values", "count", better="lower", bounds=NON_NEGATIVE),
    Spec("predwatch_feature_issues", "counter",
         "Feature values missing, null, of the wrong type or not finite (the event is still "
         "used).", ("model", "feature", "kind")),
    Spec("predwatch_feature_drift", "gauge",
         "Columns of the model version drifting in any window now.", ("model", "version"),
         "feature_drift", "count", better="lower", bounds=NON_NEGATIVE),
    Spec("predwatch_concept_drift", "counter", "Concept drift detections on the error stream.",
         ("model", "version", "detector")),
    Spec("predwatch_concept_drift_recent", "gauge",
         "1 for a model version with a concept drift detection since the previous report.",
         ("model", "version"), "concept_drift", better="lower", bounds=RATIO),
    Spec("predwatch_concept_drift_last_timestamp_seconds", "gauge",
         "Event time of the pair where the latest concept drift was detected.",
         ("model", "version"), unit="seconds"),
    *[spec for name in ("accuracy", "precision", "recall", "f1") for spec in _estimated(name)],
    Spec("predwatch_calibration_error_ratio", "gauge",
         "Expected calibration error of the score over the window.", WINDOW,
         "calibration_error", "ratio", BINARY, "lower", RATIO),
    # History of closed event-time windows (metrics.history).
    Spec("predwatch_history_band_lower", "gauge",
         "Lower edge of the control band of a metric: mean minus metrics.history.sigmas "
         "standard deviations of the closed windows before the latest.", HISTORY),
    Spec("predwatch_history_band_upper", "gauge",
         "Upper edge of the control band of a metric over the closed windows before the "
         "latest.", HISTORY),
    Spec("predwatch_history_outside_band", "gauge",
         "1 while the latest closed window of a metric lies outside its control band, else 0.",
         HISTORY, "outside_band", better="lower", bounds=RATIO),
    # Diagnostics.
    Spec("predwatch_segment_error_ratio", "gauge",
         "Error rate of the failing segment at this rank (classification models).", SEGMENT,
         tasks=CLASSIFICATION),
    Spec("predwatch_segment_mean_absolute_error", "gauge",
         "Mean absolute error of the failing segment at this rank (regression models).",
         SEGMENT, tasks=REGRESSION),
    Spec("predwatch_segment_lift_ratio", "gauge",
         "The segment's error divided by the model version's overall error.", SEGMENT),
    Spec("predwatch_segment_pairs", "gauge", "Held-out pairs the segment's figures are counted on.",
         SEGMENT),
    Spec("predwatch_segment_info", "gauge",
         "The rule and stable id of the segment at this rank (value 1).",
         (*SEGMENT, "segment_id", "rule")),
    Spec("predwatch_version_comparison_p_value", "gauge",
         "p-value of the difference between two model versions serving together "
         "(two-proportion z test on accuracy, Welch's t test on absolute errors).",
         ("model", "metric", "baseline", "candidate")),
    # Alerts.
    Spec("predwatch_alerts", "gauge", "Alerts pending or firing, per rule and state.",
         ("alertname", "state")),
    Spec("predwatch_alert_notifications", "counter",
         "Alert notifications per sink by result: delivered, retried (failed attempts), dropped "
         "or superseded (replaced by a newer state of the same alert before delivery).",
         ("sink", "result")),
]  # fmt: skip

CATALOGUE: dict[str, Spec] = {spec.metric: spec for spec in _SPECS}
"""Every exported family by its Prometheus name, in the order of the exposition."""

FIGURES: dict[str, Spec] = {spec.figure: spec for spec in _SPECS if spec.figure is not None}
"""Every figure rules may watch, by its short name."""

assert len(CATALOGUE) == len(_SPECS) and len(FIGURES) == sum(1 for s in _SPECS if s.figure)


def figures_table() -> str:
    """The figures rules may watch as a Markdown table, as docs/metrics.md shows them.

    >>> figures_table().splitlines()[2]
    '| `predictions` | `predwatch_predictions_total` | count | every | — | [0, inf] |'
    """
    rows = [
        "| Figure | Family | Unit | Tasks | Better | Range |",
        "|---|---|---|---|---|---|",
    ]
    for name, spec in FIGURES.items():
        tasks = "every" if spec.tasks == ALL_TASKS else ", ".join(sorted(spec.tasks))
        better = "—" if spec.better == "none" else spec.better
        low, high = (f"{b:g}" for b in spec.bounds)
        rows.append(
            f"| `{name}` | `{spec.metric}` | {spec.unit} | {tasks} | {better} | [{low}, {high}] |"
        )
    return "\n".join(rows) + "\n"
