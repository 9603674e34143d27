"""One typed view of what the join decided for a batch, built once and read by every stage.

Per model: the predictions that arrived (not duplicates) grouped by version,
the matched pairs with their columns (class indices, score, label time, error)
and the rows of each version, and the predictions that expired unlabelled.
Building the columns costs a pass over the records; the arithmetic each stage
does on them costs far less, so they are built here once.

>>> from predwatch.records import Label, Prediction
>>> p = Prediction("a", "fraud", "v1", 10.0, "1", 0.9, None, {}, {})
>>> batch = Batch(clock=10.0)
>>> part = batch.model("fraud")
>>> part.add_arrivals([p], [("fraud", "v1")])
>>> [(version, len(predictions)) for version, predictions in part.arrived]
[('v1', 1)]
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from operator import attrgetter, itemgetter

import numpy as np

from predwatch.batches import Columns, Rows, group_rows, take_records
from predwatch.records import Invalid, Label, Prediction
from predwatch.windowing.join import JoinResult

Pair = tuple[Prediction, Label]


# C getters, mapped over a batch's pairs: no Python call per pair.
_FIRST, _SECOND = itemgetter(0), itemgetter(1)
_TIMESTAMP, _VERSION = attrgetter("timestamp"), attrgetter("version")


@dataclass(slots=True)
class ModelBatch:
    """One model's part of a batch."""

    model: str
    arrived: list[tuple[str, Sequence[Prediction]]] = field(default_factory=list)
    pairs: list[Pair] = field(default_factory=list)
    columns: Columns = field(default_factory=dict)
    versions: list[tuple[str, Rows]] = field(default_factory=list)
    unlabelled: list[Prediction] = field(default_factory=list)  # ended without a label

    def add_arrivals(
        self, predictions: Sequence[Prediction], keys: Sequence[tuple[str, str]]
    ) -> None:
        """Predictions of this model the join accepted, with their ``(model, version)`` keys."""
        for (_, version), rows in group_rows(list(keys)):
            self.arrived.append((version, take_records(predictions, rows)))

    def add_matched(self, pairs: list[Pair], columns_of: Callable[[list[Pair]], Columns]) -> None:
        """Matched pairs of this model; ``columns_of`` types them (the model's class index)."""
        self.pairs = pairs
        columns = columns_of(pairs)
        labels = map(_SECOND, pairs)
        columns["label_time"] = np.fromiter(map(_TIMESTAMP, labels), np.float64, len(pairs))
        if "score" in columns or "true_probability" in columns:
            columns["error"] = (columns["predicted"] != columns["actual"]).astype(np.float64)
        else:
            columns["error"] = np.abs(columns["predicted"] - columns["actual"])
        self.columns = columns
        self.versions = group_rows(list(map(_VERSION, map(_FIRST, pairs))))


@dataclass(slots=True)
class Batch:
    """What one call to the monitor decided, at event time ``clock``.

    ``result`` holds every outcome the join decided; ``invalid`` the messages
    that could not be used; ``models`` each model's part. ``concept_changes``
    is written by the drift stage (model versions whose error pattern moved)
    and read by the diagnostics stage after it.
    """

    clock: float
    received: Sequence[Prediction] = ()  # every decoded prediction, duplicates included
    keys: Sequence[tuple[str, str]] = ()  # their (model, version)
    labels_received: int = 0
    result: JoinResult = field(default_factory=JoinResult)
    invalid: list[Invalid] = field(default_factory=list)
    models: dict[str, ModelBatch] = field(default_factory=dict)
    concept_changes: set[tuple[str, str]] = field(default_factory=set)

    def model(self, name: str) -> ModelBatch:
        """The part of model ``name``, created when first asked for."""
        part = self.models.get(name)
        if part is None:
            part = self.models[name] = ModelBatch(name)
        return part
