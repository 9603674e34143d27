"""Caps on what events can add to the exposition: model versions per model.

Every value that comes from events and becomes a label multiplies series. A
model's first ``max_versions`` versions are kept as they are; predictions of
any further version count under the version ``other``, and each one folded is
counted (``predwatch_folded_values_total{model, kind="version"}``), so the
exposition stays bounded whatever the topics carry. Classes and tag values
have caps of their own (``metrics.max_classes``, ``metrics.max_tag_values``).

>>> from predwatch.records import Prediction
>>> caps = VersionCap(max_versions=2)
>>> batch = [Prediction(str(i), "m", f"v{i}", 0.0, "1", None, None, {}, {}) for i in range(3)]
>>> [p.version for p in caps.apply(batch)], dict(caps.folded)
(['v0', 'v1', 'other'], {'m': 1})
"""

from __future__ import annotations

from collections import Counter
from operator import attrgetter

from predwatch.records import Prediction

OTHER = "other"

_MODEL_VERSION = attrgetter("model", "version")


class VersionCap:
    """Keeps each model's first ``max_versions`` versions; folds the rest into ``other``."""

    def __init__(self, max_versions: int) -> None:
        self._max = max_versions
        self._known: set[tuple[str, str]] = set()
        self._count: Counter[str] = Counter()  # versions kept per model
        self.folded: Counter[str] = Counter()  # predictions folded per model

    def apply(self, predictions: list[Prediction]) -> list[Prediction]:
        """The predictions, those of versions past the cap under ``other`` (the same list when
        every version is already known, as nearly always)."""
        known = self._known
        if known.issuperset(map(_MODEL_VERSION, predictions)):  # no Python call per prediction
            return predictions
        return [self._fold(p) for p in predictions]

    def _fold(self, prediction: Prediction) -> Prediction:
        key = (prediction.model, prediction.version)
        if key in self._known:
            return prediction
        if self._count[prediction.model] < self._max:
            self._known.add(key)
            self._count[prediction.model] += 1
            return prediction
        self.folded[prediction.model] += 1
        self._known.add((prediction.model, OTHER))
        return prediction._replace(version=OTHER)
