"""Every early warning of one model, fed by the monitor as events arrive and end.

Data drift and feature quality watch arriving predictions; concept drift and
calibration watch matched pairs; the performance estimate (binary models with
scores) follows each prediction from arrival to its match or expiry.

>>> from predwatch.config import Settings
>>> from predwatch.records import Label, Prediction
>>> settings = Settings.model_validate({"models": {"fraud": {"task": "binary"}}})
>>> drift = ModelDrift("fraud", settings, profiles=[])
>>> p = Prediction("a", "fraud", "v1", 0.0, "1", 0.9, None, {}, {})
>>> drift.on_predictions([p], clock=0.0)
>>> drift.on_matched([(p, Label("a", 5.0, "1", 1.0))], clock=0.0)  # no version drifted
[]
>>> report = drift.report(clock=0.0)["v1"]
>>> report["drift"]["concept"]["observed"], report["estimated"]["pending"]["count"]
(1, 0)
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from operator import itemgetter
from typing import Any

import numpy as np

from predwatch.config import Settings
from predwatch.drift.calibration import ModelCalibration
from predwatch.drift.concept import ModelConceptDrift, errors_of
from predwatch.drift.data import DataDrift
from predwatch.drift.estimate import (
    PerformanceEstimator,
    outcome_columns,
    take,
    take_columns,
    take_records,
    version_rows,
)
from predwatch.drift.profile import ReferenceProfile
from predwatch.records import Label, Prediction

_VERSION, _TIMESTAMP = itemgetter(2), itemgetter(3)  # Prediction fields
_FIRST, _SECOND = itemgetter(0), itemgetter(1)  # of a pair


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

    # Each batch is grouped by version and turned into numpy columns once, here, and every
    # part reads its rows of them: walking the records is what costs, not the arithmetic.

    def on_predictions(self, predictions: Sequence[Prediction], clock: float) -> None:
        """Predictions the join accepted (not duplicates), before any of them is matched."""
        if self.data is None or not predictions:
            return
        columns = outcome_columns(predictions, self.positive_label)
        for version, rows in version_rows(list(map(_VERSION, predictions))):
            selected = take_columns(columns, rows)
            self.data.observe_version(version, take_records(predictions, rows), clock, selected)
            if self.estimator is not None:
                self.estimator.arrived(version, selected, clock)

    def on_matched(self, pairs: Sequence[tuple[Prediction, Label]], clock: float) -> list[str]:
        """Matched pairs; the versions in which concept drift was detected."""
        drifted: list[str] = []
        if not self.enabled or not pairs:
            return drifted
        predictions: list[Prediction] = list(map(_FIRST, pairs))
        estimator, calibration = self.estimator, self.calibration
        if estimator is not None and calibration is not None:
            labels: list[Label] = list(map(_SECOND, pairs))
            columns = outcome_columns(predictions, self.positive_label, labels)
            errors = columns.pop("error")
        else:
            errors = errors_of(pairs, self.task)
            columns = {"timestamp": np.fromiter(map(_TIMESTAMP, predictions), np.float64)}
        for version, rows in version_rows(list(map(_VERSION, predictions))):
            if self.concept.observe(version, take(errors, rows), take(columns["timestamp"], rows)):
                drifted.append(version)
            if estimator is not None and calibration is not None:
                selected = take_columns(columns, rows)
                estimator.resolved(version, selected)
                calibration.add(version, selected, clock)
        return drifted

    def on_expired(self, predictions: Sequence[Prediction], clock: float) -> None:
        if self.estimator is None or not predictions:
            return
        columns = outcome_columns(predictions, self.positive_label)
        for version, rows in version_rows(list(map(_VERSION, predictions))):
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
        return {version: (stream.count, stream.last_detection_time)
                for version, stream in self.concept.versions.items()}

    def drifting_features(self, clock: float) -> dict[str, int]:
        """Per version: how many columns drift in any window now."""
        if self.data is None:
            return {}
        return {
            version: len({column for window in windows.values()
                          for column, entry in window.items() if entry["drift"]})
            for version, windows in self.data.report(clock).items()
        }
