"""Every early warning of one model, fed by the monitor as events arrive and end.

Data drift and feature quality watch arriving predictions; concept drift and
calibration watch matched pairs; the performance estimate (binary models with
scores) follows each prediction from arrival to its match or expiry.

>>> from predwatch.config import Settings
>>> from predwatch.metrics.model import ModelMetrics
>>> from predwatch.records import Label, Prediction
>>> settings = Settings.model_validate({"models": {"fraud": {"task": "binary"}}})
>>> drift = ModelDrift("fraud", settings, profiles=[])
>>> p = Prediction("a", "fraud", "v1", 0.0, "1", 0.9, None, {}, {})
>>> drift.on_predictions("v1", [p], clock=0.0)
>>> columns = ModelMetrics(settings.models["fraud"], settings.metrics).columns(
...     [(p, Label("a", 5.0, "1", 1.0))])
>>> drift.on_matched("v1", columns, clock=0.0)  # no concept drift
False
>>> report = drift.report(clock=0.0)["v1"]
>>> report["drift"]["concept"]["observed"], report["estimated"]["pending"]["count"]
(1, 0)
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from operator import itemgetter
from typing import Any

from predwatch.batches import Columns, group_rows, take_columns
from predwatch.config import Settings
from predwatch.drift.calibration import ModelCalibration
from predwatch.drift.concept import ModelConceptDrift
from predwatch.drift.data import DataDrift
from predwatch.drift.estimate import PerformanceEstimator, outcome_columns
from predwatch.drift.profile import ReferenceProfile
from predwatch.metrics.errors import errors
from predwatch.metrics.model import POSITIVE
from predwatch.records import Prediction

_VERSION = itemgetter(2)  # Prediction.version


class ModelDrift:
    """Data drift, quality, concept drift, estimate and calibration of one model."""

    def __init__(self, name: str, settings: Settings, profiles: Iterable[ReferenceProfile]) -> None:
        model, drift, windows = settings.models[name], settings.drift, settings.metrics.windows
        self.enabled = drift.enabled
        self.task, self.positive_label = model.task, model.positive_label
        self.data = DataDrift(name, drift, windows, profiles) if drift.enabled else None
        self.concept = ModelConceptDrift(model, drift.concept)
        binary = model.task == "binary" and drift.enabled
        self.estimator = PerformanceEstimator(model, windows) if binary else None
        self.calibration = ModelCalibration(model, settings.metrics) if binary else None

    # The monitor groups each batch by version once; metrics and drift read the same rows.

    def on_predictions(self, version: str, predictions: Sequence[Prediction], clock: float) -> None:
        """Predictions of one version that the join accepted (not duplicates), before any of
        them is matched."""
        if self.data is None or not predictions:
            return
        columns = outcome_columns(predictions, self.positive_label)
        self.data.observe(version, predictions, clock, columns)
        if self.estimator is not None:
            self.estimator.arrived(version, columns, clock)

    def on_matched(self, version: str, columns: Columns, clock: float) -> bool:
        """Matched pairs of one version, as ``ModelMetrics.columns`` gives them; whether
        concept drift was detected."""
        if not self.enabled or not len(columns["timestamp"]):
            return False
        predicted, actual = columns["predicted"], columns["actual"]
        found = self.concept.observe(
            version, errors(self.task, predicted, actual), columns["timestamp"]
        )
        drifted = bool(found)
        if self.estimator is not None and self.calibration is not None:
            outcomes = {
                "timestamp": columns["timestamp"],
                "score": columns["score"],
                "predicted": predicted == POSITIVE,
                "actual": actual == POSITIVE,
            }
            self.estimator.resolved(version, outcomes)
            self.calibration.add(version, outcomes, clock)
        return drifted

    def on_expired(self, predictions: Sequence[Prediction], clock: float) -> None:
        if self.estimator is None or not predictions:
            return
        columns = outcome_columns(predictions, self.positive_label)
        for version, rows in group_rows(list(map(_VERSION, predictions))):
            self.estimator.resolved(version, take_columns(columns, rows))

    def quality(self) -> dict[tuple[str, str], int]:
        """Feature issues counted so far: ``{(feature, kind): n}``."""
        if self.data is None:
            return {}
        return {(feature, kind): n for (feature, kind), n in self.data.quality.counts().items()}

    def report(self, clock: float) -> dict[str, dict[str, Any]]:
        """Per version: ``drift`` (``data`` per window and column, ``concept``), and for binary
        models ``estimated`` and ``calibration``."""
        parts: list[tuple[str, dict[str, Any]]] = [("concept", self.concept.report())]
        if self.data is not None:
            parts.append(("data", self.data.report(clock)))
        report: dict[str, dict[str, Any]] = {}
        for name, by_version in parts:
            for version, entry in by_version.items():
                report.setdefault(version, {}).setdefault("drift", {})[name] = entry
        for name, part in (("estimated", self.estimator), ("calibration", self.calibration)):
            if part is not None:
                for version, entry in part.report(clock).items():
                    report.setdefault(version, {})[name] = entry
        return report

    def concept_detections(self) -> dict[str, tuple[int, float | None]]:
        """Per version: detections so far and the event time of the last one."""
        return {
            version: (stream.count, stream.last_detection_time)
            for version, stream in self.concept.versions.items()
        }

    def drifting_features(self, clock: float) -> dict[str, int]:
        """Per version: how many columns drift in any window now."""
        if self.data is None:
            return {}
        return {
            version: len(
                {
                    column
                    for window in windows.values()
                    for column, entry in window.items()
                    if entry["drift"]
                }
            )
            for version, windows in self.data.report(clock).items()
        }
