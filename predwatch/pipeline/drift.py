"""The drift stage: data drift, feature quality, concept drift, estimates and calibration.

Arrived predictions feed data drift and the estimate; matched pairs feed the
concept drift detectors, the estimate's realised side and calibration; a
concept drift it detects is written into the batch (``concept_changes``) for
the diagnostics stage after it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from predwatch.batches import take_columns
from predwatch.config import Settings
from predwatch.drift.profile import ReferenceProfile
from predwatch.drift.tracker import ModelDrift
from predwatch.pipeline.batch import Batch
from predwatch.pipeline.builder import ReportBuilder
from predwatch.state.codec import from_data, to_data

FEATURE_VALUES = {  # key of a column's data drift figures -> family
    "psi": "predwatch_feature_drift_psi",
    "js": "predwatch_feature_drift_js_distance",
    "p_adjusted": "predwatch_feature_drift_p_value",
    "drift": "predwatch_feature_drift_detected",
    "n": "predwatch_feature_drift_samples",
    "unseen": "predwatch_feature_unseen_values",
    "out_of_range": "predwatch_feature_out_of_range_values",
}
ESTIMATED = ("accuracy", "precision", "recall", "f1")
DRIFT_REPORT = frozenset(
    [
        *FEATURE_VALUES.values(),
        *(f"predwatch_estimated_{m}_ratio" for m in ESTIMATED),
        *(f"predwatch_evaluated_{m}_ratio" for m in ESTIMATED),
        "predwatch_calibration_error_ratio",
        "predwatch_feature_drift",
        "predwatch_feature_issues",
    ]
)
CONCEPT = ("predwatch_concept_drift", "predwatch_concept_drift_recent")


class DriftStage:
    """Feeds each model's ``ModelDrift``; reports drift, estimates and calibration."""

    name = "drift"

    def __init__(self, settings: Settings, profiles: Sequence[ReferenceProfile] = ()) -> None:
        self.enabled = settings.drift.enabled
        self.drift = {name: ModelDrift(name, settings, profiles) for name in settings.models}

    def observe(self, batch: Batch) -> None:
        if not self.enabled:
            return
        clock = batch.clock
        for model, part in batch.models.items():
            drift = self.drift[model]
            for version, predictions in part.arrived:
                drift.on_predictions(version, predictions, clock)
            for version, rows in part.versions:
                if drift.on_matched(version, take_columns(part.columns, rows), clock):
                    batch.concept_changes.add((model, version))
            if part.unlabelled:
                drift.on_expired(part.unlabelled, clock)

    def report(self, builder: ReportBuilder) -> None:
        if not self.enabled:
            return
        if builder.wants(*CONCEPT):
            self._concept(builder)
        if not builder.wants(*DRIFT_REPORT):
            return
        for model, drift in self.drift.items():
            for version, entry in drift.report(builder.clock).items():
                builder.version(model, version, drift.task).update(entry)
                _drift_values(builder, model, version, entry)
            drifting = drift.drifting_features(builder.clock)
            for version, count in sorted(drifting.items()):
                builder.add("predwatch_feature_drift", (model, version), count)
            quality = drift.quality()
            if quality:
                nested: dict[str, dict[str, int]] = {}
                for (feature, kind), count in sorted(quality.items()):
                    nested.setdefault(feature, {})[kind] = count
                    builder.add("predwatch_feature_issues", (model, feature, kind), count)
                builder.quality[model] = nested

    def _concept(self, builder: ReportBuilder) -> None:
        """Detections so far, and whether each version had one since the previous report."""
        before = {
            row.labels[:2]: row.value for row in builder.previous.select("predwatch_concept_drift")
        }
        for model, drift in self.drift.items():
            detector = drift.concept.settings.detector
            for version, (count, at) in sorted(drift.concept_detections().items()):
                labels = (model, version)
                seen = before.get(labels, 0)
                builder.add("predwatch_concept_drift", (*labels, detector), count)
                builder.add("predwatch_concept_drift_recent", labels, int(count > seen))
                builder.add("predwatch_concept_drift_last_timestamp_seconds", labels, at)

    def state(self) -> dict[str, Any]:
        return {"drift": to_data(self.drift)}

    def load_state(self, state: dict[str, Any]) -> None:
        self.drift = from_data(state["drift"])


def _drift_values(builder: ReportBuilder, model: str, version: str, entry: dict[str, Any]) -> None:
    """The figures of one version's drift report."""
    for window, columns in entry.get("drift", {}).get("data", {}).items():
        for feature, values in columns.items():
            samples = values.get("n")
            for key, metric in FEATURE_VALUES.items():
                number = values.get(key)
                if number is not None:
                    labels = (model, version, window, feature)
                    builder.add(metric, labels, float(number), samples)
    estimated = entry.get("estimated")
    if estimated is not None:
        windows = [("pending", estimated["pending"])]
        windows += [(name, w["estimated"]) for name, w in estimated["windows"].items()]
        for window, metrics in windows:
            for name in ESTIMATED:
                metric = f"predwatch_estimated_{name}_ratio"
                builder.add(metric, (model, version, window), metrics.get(name))
        for window, w in estimated["windows"].items():
            for source in ("estimated", "realised"):
                for name in ESTIMATED:
                    metric = f"predwatch_evaluated_{name}_ratio"
                    value = w["evaluated"][source].get(name)
                    builder.add(metric, (model, version, window, source), value)
    calibration = entry.get("calibration")
    if calibration is not None:
        windows = [("cumulative", calibration["cumulative"]), *calibration["windows"].items()]
        for window, values in windows:
            builder.add(
                "predwatch_calibration_error_ratio", (model, version, window), values.get("ece")
            )
