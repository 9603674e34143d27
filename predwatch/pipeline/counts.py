"""The counts stage: every event's outcome, counted once, per model version where it has one.

>>> from predwatch.records import Prediction
>>> stage = CountsStage()
>>> p = Prediction("a", "fraud", "v1", 10.0, "1", None, None, {}, {})
>>> stage.observe(Batch(clock=10.0, received=[p], keys=[("fraud", "v1")]))
>>> stage.counts.predictions, stage.model_counts["fraud", "v1"].predictions
(1, 1)
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, fields
from typing import Any

from predwatch.pipeline.batch import Batch
from predwatch.pipeline.builder import ReportBuilder

OUTCOMES = (
    "matched",
    "unlabelled",
    "orphan_labels",
    "late_labels",
    "duplicate_predictions",
    "duplicate_labels",
    "late_predictions",
    "evicted",
)

PARTITION_OUTCOMES = ("predictions", "labels", "invalid", *OUTCOMES)
"""What a partition's counts hold (``Monitor.partition_state``)."""


@dataclass
class JoinCounts:
    """Cumulative outcome counts. Invariants, at every moment:

    ``predictions = matched + unlabelled + pending_predictions + duplicate_predictions
    + late_predictions + evicted``
    ``labels = matched + orphan_labels + late_labels + duplicate_labels + pending_labels``
    """

    predictions: int = 0
    labels: int = 0
    matched: int = 0
    unlabelled: int = 0
    pending_predictions: int = 0
    orphan_labels: int = 0
    late_labels: int = 0
    pending_labels: int = 0
    duplicate_predictions: int = 0
    duplicate_labels: int = 0
    invalid: int = 0
    late_predictions: int = 0
    evicted: int = 0  # ended early: over join.max_pending

    def as_dict(self) -> dict[str, int]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass
class ModelCounts:
    """Outcome counts of one model version's predictions."""

    predictions: int = 0
    matched: int = 0
    unlabelled: int = 0
    duplicate_predictions: int = 0
    evicted: int = 0


class CountsStage:
    """Counts what arrived and what the join decided; pending counts are set by the monitor."""

    name = "counts"

    def __init__(self) -> None:
        self.counts = JoinCounts()
        self.invalid_reasons: Counter[tuple[str, str]] = Counter()  # (topic, reason)
        self.model_counts: dict[tuple[str, str], ModelCounts] = {}

    def _model(self, key: tuple[str, str]) -> ModelCounts:
        counts = self.model_counts.get(key)
        if counts is None:
            counts = self.model_counts[key] = ModelCounts()
        return counts

    def observe(self, batch: Batch) -> None:
        counts, result = self.counts, batch.result
        for key, count in Counter(batch.keys).items():
            self._model(key).predictions += count
        counts.predictions += len(batch.received)
        counts.labels += batch.labels_received
        for invalid in batch.invalid:
            self.invalid_reasons[invalid.topic, invalid.reason] += 1
        counts.invalid += len(batch.invalid)
        for outcome in OUTCOMES:
            setattr(counts, outcome, getattr(counts, outcome) + len(getattr(result, outcome)))
        for part in batch.models.values():
            for version, rows in part.versions:
                matched = len(part.pairs) if rows is None else len(rows)
                self._model((part.model, version)).matched += matched
        for prediction in result.unlabelled:
            self._model((prediction.model, prediction.version)).unlabelled += 1
        for prediction in result.duplicate_predictions:
            self._model((prediction.model, prediction.version)).duplicate_predictions += 1
        for prediction in result.evicted:
            self._model((prediction.model, prediction.version)).evicted += 1

    def report(self, builder: ReportBuilder) -> None:
        counts = self.counts
        builder.join = counts.as_dict()
        builder.invalid = dict(self.invalid_reasons)
        add = builder.add
        for (model, version), per_model in sorted(self.model_counts.items()):
            add("predwatch_predictions_total", (model, version), per_model.predictions)
            add("predwatch_joined_total", (model, version), per_model.matched)
            add("predwatch_unlabelled_total", (model, version), per_model.unlabelled)
            add("predwatch_evicted_total", (model, version), per_model.evicted)
        add("predwatch_labels_total", (), counts.labels)
        add("predwatch_orphan_labels_total", (), counts.orphan_labels)
        add("predwatch_late_labels_total", (), counts.late_labels)
        add("predwatch_late_predictions_total", (), counts.late_predictions)
        add("predwatch_duplicates_total", ("prediction",), counts.duplicate_predictions)
        add("predwatch_duplicates_total", ("label",), counts.duplicate_labels)
        for (topic, reason), count in sorted(self.invalid_reasons.items()):
            add("predwatch_invalid_events_total", (topic, reason), count)
        add("predwatch_pending_predictions", (), counts.pending_predictions)
        add("predwatch_pending_labels", (), counts.pending_labels)
        settled = counts.matched + counts.unlabelled + counts.evicted  # evicted: no label
        if settled:
            add("predwatch_label_coverage_ratio", (), counts.matched / settled, settled)

    def state(self) -> dict[str, Any]:
        return {
            "counts": asdict(self.counts),
            "invalid_reasons": [[t, r, n] for (t, r), n in self.invalid_reasons.items()],
            "model_counts": [[m, v, asdict(c)] for (m, v), c in self.model_counts.items()],
        }

    def load_state(self, state: dict[str, Any]) -> None:
        self.counts = JoinCounts(**state["counts"])
        self.invalid_reasons = Counter({(t, r): n for t, r, n in state["invalid_reasons"]})
        self.model_counts = {(m, v): ModelCounts(**c) for m, v, c in state["model_counts"]}
