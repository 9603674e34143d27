"""The history stage: per model version and metric, closed event-time windows and a band.

Each batch's arriving predictions, matched pairs and predictions that ended
unlabelled feed one ``VersionHistory`` per model version (``metrics/history.py``
says when a window closes). At a report, each metric's closed windows give the
summary's ``history`` (points, mean, median, variance, band, whether the latest
window lies outside the band) and the band's figures, which alert rules may
watch (``outside_band``, picked per metric with ``tags: {metric: accuracy}``).

>>> from predwatch.config import Settings
>>> from predwatch.records import Label, Prediction
>>> settings = Settings.model_validate({"models": {"m": {"task": "binary"}},
...                                     "join": {"grace": "5s"},
...                                     "metrics": {"history": {"window": "1m"}}})
>>> stage = HistoryStage(settings)
>>> p = Prediction("a", "m", "v1", 10.0, "1", 0.8, None, {}, {})
>>> batch = Batch(clock=70.0, received=[p], keys=[("m", "v1")])
>>> batch.model("m").add_arrivals([p], [("m", "v1")])
>>> batch.model("m").add_matched([(p, Label("a", 12.0, "1", 1.0))],
...     lambda pairs: {"timestamp": np.array([10.0]), "actual": np.array([1]),
...                    "predicted": np.array([1]), "score": np.array([0.8])})
>>> stage.observe(batch)
>>> builder = ReportBuilder(clock=70.0)
>>> stage.report(builder)
>>> history = builder.build().summary["models"]["m"]["v1"]["history"]
>>> history["window"], history["metrics"]["accuracy"]["points"]
(60.0, [{'start': 0.0, 'end': 60.0, 'value': 1.0, 'count': 1}])
>>> round(history["metrics"]["estimated_accuracy"]["points"][0]["value"], 6)  # 2**-32 units
0.8
"""

from __future__ import annotations

from collections.abc import Sequence
from operator import attrgetter, itemgetter
from typing import Any

import numpy as np

from predwatch.batches import group_rows, take, take_columns
from predwatch.catalogue import FIGURES
from predwatch.config import Settings
from predwatch.drift.estimate import outcome_columns
from predwatch.metrics.history import VersionHistory, control, summary_of
from predwatch.pipeline.batch import Batch
from predwatch.pipeline.builder import ReportBuilder
from predwatch.records import Prediction
from predwatch.state.codec import from_data, to_data

LOWER, UPPER = "predwatch_history_band_lower", "predwatch_history_band_upper"
OUTSIDE = "predwatch_history_outside_band"
FAMILIES = (LOWER, UPPER, OUTSIDE)
_TIMESTAMP = itemgetter(3)  # Prediction.timestamp
_model_version = attrgetter("model", "version")


class HistoryStage:
    """Feeds each model version's ``VersionHistory``; reports the history and its band."""

    name = "history"

    def __init__(self, settings: Settings) -> None:
        self._settings = settings.metrics.history
        self._grace = settings.join.grace
        self._models = settings.models
        # CBPE assumes calibrated scores and goes with the other estimates (drift.enabled).
        self._estimate = settings.drift.enabled
        self.histories: dict[tuple[str, str], VersionHistory] = {}

    def _history(self, model: str, version: str) -> VersionHistory:
        history = self.histories.get((model, version))
        if history is None:
            s = self._settings
            task = self._models[model].task
            history = VersionHistory(task, s.window, s.keep, self._grace, self._estimate)
            self.histories[(model, version)] = history
        return history

    def observe(self, batch: Batch) -> None:
        if self._estimate:
            # With drift on, the view groups arrivals by version, duplicates left out.
            for model, part in batch.models.items():
                for version, predictions in part.arrived:
                    self._arrived(model, version, predictions)
        else:
            self._received(batch)
        for model, part in batch.models.items():
            for version, rows in part.versions:
                self._history(model, version).matched(take_columns(part.columns, rows))
            if part.unlabelled:
                timestamps = _timestamps(part.unlabelled)
                for version, rows in group_rows([p.version for p in part.unlabelled]):
                    self._history(model, version).ended(take(timestamps, rows))
        for history in self.histories.values():
            history.prune(batch.clock)

    def _arrived(self, model: str, version: str, predictions: Sequence[Prediction]) -> None:
        history = self._history(model, version)
        if history.estimate:
            columns = outcome_columns(predictions, self._models[model].positive_label)
            history.arrived(columns["timestamp"], columns["predicted"], columns["score"])
        else:
            history.arrived(_timestamps(predictions))

    def _received(self, batch: Batch) -> None:
        """Arrivals from every prediction read, duplicates taken back (the view groups
        arrivals only for drift)."""
        for predictions, sign in ((batch.received, 1), (batch.result.duplicate_predictions, -1)):
            if not predictions:
                continue
            timestamps = _timestamps(predictions)
            keys = batch.keys if sign == 1 else list(map(_model_version, predictions))
            for (model, version), rows in group_rows(keys):
                self._history(model, version).arrived(take(timestamps, rows), sign=sign)

    def report(self, builder: ReportBuilder) -> None:
        if not builder.wants(*FAMILIES):
            return
        sigmas = self._settings.sigmas
        for (model, version), history in sorted(self.histories.items()):
            metrics: dict[str, Any] = {}
            closed = history.closed(builder.clock)
            for metric in history.metrics:
                points = history.points(metric, builder.clock, closed)
                result = control(points, sigmas, FIGURES[metric].bounds)
                metrics[metric] = summary_of(points, result)
                if result.band is not None:
                    labels = (model, version, metric)
                    count = points[-1].count
                    builder.add(LOWER, labels, result.band[0], count)
                    builder.add(UPPER, labels, result.band[1], count)
                    builder.add(OUTSIDE, labels, int(result.outside), count)
            if builder.full:
                entry = builder.version(model, version, history.task)
                entry["history"] = {"window": self._settings.window, "metrics": metrics}

    def state(self) -> dict[str, Any]:
        return {"histories": to_data(self.histories)}

    def load_state(self, state: dict[str, Any]) -> None:
        self.histories = from_data(state["histories"])


def _timestamps(predictions: Sequence[Prediction]) -> np.ndarray:
    return np.fromiter(map(_TIMESTAMP, predictions), np.float64, len(predictions))
