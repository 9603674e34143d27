"""Concept drift: river change detectors on the error stream of labelled outcomes.

Each matched pair gives one error (``predwatch.metrics.errors``): 0/1 (wrong
class) for classification, the absolute error for regression. A
``ConceptDrift`` feeds one model version's errors, in the order the pairs are
matched, to one river detector (ADWIN by default) and records every change it
signals: the prediction time of the pair, its sequence number and the detector.
``ModelConceptDrift`` keeps one per version of a model.

ADWIN with river's default ``delta=0.002`` raised no alarm on 10 x 200,000
stable 0/1 errors at rates from 0.02 to 0.5, and finds a jump of the error rate
from 0.1 to 0.3 about 100 pairs after it (see ``benchmarks/detection_concept.py``).

>>> import numpy as np
>>> rng = np.random.default_rng(1)
>>> errors = np.r_[rng.random(20_000) < 0.1, rng.random(5_000) < 0.3].astype(float)
>>> drift = ConceptDrift(ConceptDriftSettings())
>>> found = drift.observe(errors, event_times=np.arange(errors.size, dtype=float))
>>> found == drift.detections(), drift.count, found[0].sequence - 20_000
(True, 1, 191)
"""

from __future__ import annotations

from collections import deque
from typing import Any, NamedTuple

import numpy as np

from predwatch.config import ModelSettings
from predwatch.drift.settings import BINARY_ONLY, KEPT_DETECTIONS, ConceptDriftSettings
from predwatch.river_adapter import changes, make_detector


class Detection(NamedTuple):
    """One change signalled: the pair's prediction time, its sequence number, the detector."""

    event_time: float
    sequence: int
    detector: str


class ConceptDrift:
    """One detector over one error stream (a model version's matched pairs)."""

    def __init__(self, settings: ConceptDriftSettings) -> None:
        self.settings = settings
        self._detector = make_detector(settings.detector, settings.parameters)
        self._seen = 0  # errors observed so far
        self._count = 0
        self._detections: deque[Detection] = deque(maxlen=KEPT_DETECTIONS)

    @property
    def count(self) -> int:
        """How many changes were detected (after the warm-up)."""
        return self._count

    @property
    def observed(self) -> int:
        """How many errors were observed."""
        return self._seen

    @property
    def last_detection_time(self) -> float | None:
        """Event time of the latest detection, None before the first."""
        return self._detections[-1].event_time if self._detections else None

    def detections(self) -> list[Detection]:
        """The latest detections (at most ``KEPT_DETECTIONS``), oldest first."""
        return list(self._detections)

    def observe(
        self,
        errors: np.ndarray,
        event_times: np.ndarray,
        sequence: np.ndarray | None = None,
    ) -> list[Detection]:
        """Feed a batch of errors in stream order; return the detections it caused.

        ``sequence`` numbers the pairs (e.g. source offsets); by default each
        pair's position in this stream (0, 1, 2, ... across batches).
        """
        hits = changes(self._detector, errors.tolist())
        start, self._seen = self._seen, self._seen + len(errors)
        found = []
        for i in hits:
            if start + i < self.settings.warmup:
                continue
            number = start + i if sequence is None else int(sequence[i])
            found.append(Detection(float(event_times[i]), number, self.settings.detector))
        self._detections.extend(found)
        self._count += len(found)
        return found


class ModelConceptDrift:
    """A ``ConceptDrift`` per version of one model, fed the errors of its matched pairs.

    >>> from predwatch.config import ModelSettings
    >>> model = ModelConceptDrift(ModelSettings(task="binary"), ConceptDriftSettings())
    >>> model.observe("v1", np.zeros(3), event_times=np.arange(3.0))
    []
    >>> model.report()["v1"]["count"], model.report()["v1"]["observed"]
    (0, 3)
    """

    def __init__(self, model: ModelSettings, settings: ConceptDriftSettings) -> None:
        if model.task == "regression" and settings.detector in BINARY_ONLY:
            raise ValueError(
                f"detector {settings.detector!r} takes 0/1 errors only; for a regression "
                "model choose adwin, page_hinkley or kswin"
            )
        self.task = model.task
        self.settings = settings
        self.versions: dict[str, ConceptDrift] = {}

    def observe(
        self,
        version: str,
        errors: np.ndarray,
        event_times: np.ndarray,
        sequence: np.ndarray | None = None,
    ) -> list[Detection]:
        """Feed errors of one version, in match order, with their pairs' prediction times
        (and sequence numbers); return the detections they caused."""
        stream = self.versions.get(version)
        if stream is None:
            stream = self.versions[version] = ConceptDrift(self.settings)
        return stream.observe(errors, event_times, sequence)

    def report(self) -> dict[str, Any]:
        """Per version: detector, ``count``, ``observed``, ``last_detection_time``, detections."""
        return {
            version: {
                "detector": stream.settings.detector,
                "count": stream.count,
                "observed": stream.observed,
                "last_detection_time": stream.last_detection_time,
                "detections": [d._asdict() for d in stream.detections()],
            }
            for version, stream in sorted(self.versions.items())
        }
