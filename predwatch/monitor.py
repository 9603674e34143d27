"""The pure core: decoded batches and a clock in, outcomes, counts and metrics out.

The monitor never reads the wall clock or touches the network; sources hand it
raw messages of one partition with the time ``now`` (processing time: the wall
clock in a service, the event time in a replay), and read its state back.

>>> from predwatch.config import Settings
>>> monitor = Monitor(Settings.model_validate({"models": {"fraud": {"task": "binary"}}}))
>>> prediction = Raw(b'{"prediction_id": "a", "model": "fraud", "timestamp": 100, "prediction": 1}')
>>> label = Raw(b'{"prediction_id": "a", "label": 1}', timestamp=160.0)
>>> changes = monitor.process(0, [prediction], [label], now=160.0)
>>> changes.outcomes["matched"], monitor.counts.matched
(1, 1)
"""

from __future__ import annotations

import json
import pickle
from collections import Counter, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from operator import attrgetter
from typing import Any, TypeVar

import numpy as np

from predwatch.alerts.engine import AlertEngine, Context, Transition
from predwatch.alerts.rules import Extra
from predwatch.batches import group_rows, take_columns, take_records
from predwatch.config import Settings
from predwatch.diagnostics.tree import ModelDiagnostics
from predwatch.drift.profile import ReferenceProfile
from predwatch.drift.tracker import ModelDrift
from predwatch.events import Decoder
from predwatch.metrics.delay import DelayHistogram
from predwatch.metrics.model import ModelMetrics
from predwatch.records import Invalid, Label, Prediction, Raw
from predwatch.windowing.join import JoinResult, PartitionJoin

SNAPSHOT_FORMAT = 1
ALERT_LOG_SIZE = 10_000  # transitions kept for the summary
_model_version = attrgetter("model", "version")
_model_of = attrgetter("model")
T = TypeVar("T")


def _pair_model(pair: tuple[Prediction, Label]) -> str:
    return pair[0].model


def _pair_version(pair: tuple[Prediction, Label]) -> str:
    return pair[0].version


def _label_time(pair: tuple[Prediction, Label]) -> float:
    return pair[1].timestamp


@dataclass
class JoinCounts:
    """Cumulative outcome counts. Invariants, at every moment:

    ``predictions = matched + unlabelled + pending_predictions + duplicate_predictions``
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

    def as_dict(self) -> dict[str, int]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass
class ModelCounts:
    """Outcome counts of one model version's predictions."""

    predictions: int = 0
    matched: int = 0
    unlabelled: int = 0
    duplicate_predictions: int = 0


@dataclass
class Changes:
    """What one call changed: outcome counts, and the messages that were invalid."""

    outcomes: Counter[str] = field(default_factory=Counter)
    invalid: list[Invalid] = field(default_factory=list)


class Monitor:
    """Joins, counts and scores the predictions and labels of every partition."""

    def __init__(self, settings: Settings, profiles: Sequence[ReferenceProfile] = ()) -> None:
        self.settings = settings
        self.decoder = Decoder(settings)
        self._joins: dict[int, PartitionJoin] = {}
        self.counts = JoinCounts()
        self.invalid_reasons: Counter[tuple[str, str]] = Counter()  # (topic, reason)
        self.model_counts: dict[tuple[str, str], ModelCounts] = {}
        self.metrics = {
            name: ModelMetrics(model, settings.metrics) for name, model in settings.models.items()
        }
        self.drift = {name: ModelDrift(name, settings, profiles) for name in settings.models}
        self.diagnostics = {
            name: ModelDiagnostics(model, settings.diagnostics, name)
            for name, model in settings.models.items()
        }
        self.alerts = AlertEngine(settings.alerts)
        self.alert_metrics = {rule.metric for rule in settings.alerts.all_rules()}
        self._detections_seen: dict[tuple[str, str], int] = {}
        self.alert_log: deque[Transition] = deque(maxlen=ALERT_LOG_SIZE)
        self.last_arrival = float("-inf")  # processing time of the latest message
        self.label_delays: dict[str, DelayHistogram] = {}  # per model
        self.event_clock = float("-inf")  # the largest prediction time seen
        self.last_event_time = float("-inf")  # the largest time of any valid event

    def watermarks(self, now: float) -> dict[int, float | None]:
        """Each partition's join watermark at processing time ``now``."""
        return {partition: join.watermark(now) for partition, join in self._joins.items()}

    def _join(self, partition: int, now: float) -> PartitionJoin:
        join = self._joins.get(partition)
        if join is None:
            j = self.settings.join
            join = PartitionJoin(
                j.label_timeout, j.grace, j.idle_timeout, j.expired_id_memory, created=now
            )
            self._joins[partition] = join
        return join

    def process(
        self, partition: int, predictions: Sequence[Raw], labels: Sequence[Raw], now: float
    ) -> Changes:
        """Decode, join and score one batch of a partition, then expire what is due."""
        decoded_predictions, bad_predictions = self.decoder.predictions(predictions)
        decoded_labels, bad_labels = self.decoder.labels(labels)
        return self.process_records(
            partition, decoded_predictions, decoded_labels, bad_predictions + bad_labels, now
        )

    def process_records(
        self,
        partition: int,
        decoded_predictions: list[Prediction],
        decoded_labels: list[Label],
        invalid: list[Invalid],
        now: float,
    ) -> Changes:
        """As ``process``, for messages a source has already decoded (see ``Decoder``)."""
        changes = Changes(invalid=invalid)
        if decoded_predictions or decoded_labels or invalid:
            self.last_arrival = max(self.last_arrival, now)
        if decoded_predictions:
            self.event_clock = max(self.event_clock, max(p.timestamp for p in decoded_predictions))
        self.last_event_time = max(self.event_clock, self.last_event_time)
        if decoded_labels:
            latest_label = max(label.timestamp for label in decoded_labels)
            self.last_event_time = max(self.last_event_time, latest_label)
        keys = list(map(_model_version, decoded_predictions))
        for key, count in Counter(keys).items():
            self._model_counts(key).predictions += count
        self.counts.predictions += len(decoded_predictions)
        self.counts.labels += len(decoded_labels)
        result = self._join(partition, now).process(decoded_predictions, decoded_labels, now)
        self._apply(result, changes, decoded_predictions, keys)
        return changes

    def advance(self, now: float) -> Changes:
        """Expire, in every partition, what the watermarks have passed by ``now``."""
        changes = Changes()
        for join in self._joins.values():
            result = JoinResult()
            join.expire(now, result)
            self._apply(result, changes)
        return changes

    def _model_counts(self, key: tuple[str, str]) -> ModelCounts:
        counts = self.model_counts.get(key)
        if counts is None:
            counts = self.model_counts[key] = ModelCounts()
        return counts

    def _apply(
        self,
        result: JoinResult,
        changes: Changes,
        arrived: Sequence[Prediction] = (),
        keys: Sequence[tuple[str, str]] = (),
    ) -> None:
        """Count what the join decided; feed metrics and drift in the order events happened:
        arrivals (with their ``(model, version)`` keys), then matches, then expiries."""
        counts = self.counts
        # A label whose value does not fit its model's task is invalid, not a label.
        counts.labels -= len(result.invalid_labels)
        changes.invalid.extend(
            Invalid("labels", "bad_type:" + self.settings.fields.label, _raw_of(label))
            for label in result.invalid_labels
        )
        for invalid in changes.invalid:
            self.invalid_reasons[invalid.topic, invalid.reason] += 1
        counts.invalid += len(changes.invalid)
        counts.matched += len(result.matched)
        counts.unlabelled += len(result.unlabelled)
        counts.orphan_labels += len(result.orphan_labels)
        counts.late_labels += len(result.late_labels)
        counts.duplicate_predictions += len(result.duplicate_predictions)
        counts.duplicate_labels += len(result.duplicate_labels)
        counts.pending_predictions = sum(j.pending_predictions for j in self._joins.values())
        counts.pending_labels = sum(j.pending_labels for j in self._joins.values())
        outcomes = changes.outcomes
        outcomes["invalid"] += len(changes.invalid)
        for name in (
            "matched",
            "unlabelled",
            "orphan_labels",
            "late_labels",
            "duplicate_predictions",
            "duplicate_labels",
        ):
            outcomes[name] += len(getattr(result, name))
        for prediction in result.unlabelled:
            self._model_counts((prediction.model, prediction.version)).unlabelled += 1
        for prediction in result.duplicate_predictions:
            self._model_counts((prediction.model, prediction.version)).duplicate_predictions += 1
        clock = self.event_clock
        if arrived and self.settings.drift.enabled:
            if result.duplicate_predictions:
                repeated = {id(p) for p in result.duplicate_predictions}
                kept = [i for i, p in enumerate(arrived) if id(p) not in repeated]
                arrived, keys = [arrived[i] for i in kept], [keys[i] for i in kept]
            for (model, version), rows in group_rows(keys):
                self.drift[model].on_predictions(version, take_records(arrived, rows), clock)
        for model, pairs in _by_model(result.matched, _pair_model).items():
            versions = group_rows(list(map(_pair_version, pairs)))
            for version, rows in versions:
                self._model_counts((model, version)).matched += len(pairs if rows is None else rows)
            metrics, drift = self.metrics[model], self.drift[model]
            diagnostics = self.diagnostics[model]
            columns = metrics.columns(pairs)
            metrics.update(pairs, clock, columns, versions)
            for version, rows in versions:
                if drift.on_matched(version, take_columns(columns, rows), clock):
                    diagnostics.rotate(version)  # the error pattern has moved
            diagnostics.update(pairs, clock)
            delays = self.label_delays.get(model)
            if delays is None:
                delays = self.label_delays[model] = DelayHistogram()
            label_times = np.fromiter(map(_label_time, pairs), np.float64, len(pairs))
            delays.observe(label_times - columns["timestamp"])
        for model, predictions in _by_model(result.unlabelled, _model_of).items():
            self.drift[model].on_expired(predictions, clock)

    def figures(self, drift: bool = True) -> dict[str, Any]:
        """Join counts, every model version's metrics and (unless ``drift`` is false) drift,
        estimates and calibration, and feature quality."""
        models: dict[str, Any] = {}
        for name, metrics in self.metrics.items():
            versions = metrics.report(self.event_clock)
            drift_report = self.drift[name].report(self.event_clock) if drift else {}
            for version, entry in drift_report.items():
                versions.setdefault(version, {"task": metrics.task}).update(entry)
            if drift:
                for version, entry in self.diagnostics[name].report(self.event_clock).items():
                    versions.setdefault(version, {"task": metrics.task})["segments"] = entry[
                        "segments"
                    ]
            if versions:
                models[name] = dict(sorted(versions.items()))
        quality = {
            name: _nested(drift.quality()) for name, drift in self.drift.items() if drift.quality()
        }
        alpha = self.settings.diagnostics.comparison_alpha
        comparisons = [
            {"model": name, **c.as_dict(), "significant": c.significant(alpha)}
            for name, diagnostics in self.diagnostics.items()
            for c in diagnostics.comparisons()
        ]
        return {
            "join": self.counts.as_dict(),
            "models": models,
            "quality": quality,
            "comparisons": comparisons,
        }

    def summary(self) -> dict[str, Any]:
        """``figures()`` and the alert transitions so far, as a JSON-ready document."""
        return {**self.figures(), "alerts": [t.as_dict() for t in self.alert_log]}

    def evaluate_alerts(
        self, now: float, extra: Extra | None = None, context: Context | None = None
    ) -> list[Transition]:
        """Evaluate the alert rules if ``alerts.evaluate_every`` has passed; the transitions.

        ``extra`` carries figures the core does not hold (consumer lag, seconds
        since the last event); ``context`` extra annotation variables.
        """
        if not self.alert_metrics or not self.alerts.due(now):
            return []
        extra, context = {**self._drift_figures(), **(extra or {})}, dict(context or {})
        for key, last_drift in self._last_drifts().items():
            context[key] = {**context.get(key, {}), "last_drift": last_drift}
        for model, diagnostics in self.diagnostics.items():
            for version in self.metrics[model].versions():
                segments = diagnostics.segments_for_alerts(version)  # as last computed
                if segments:
                    context[model, version] = {
                        **context.get((model, version), {}),
                        "top_segments": segments,
                    }
        transitions = self.alerts.evaluate(self.figures(drift=False), now, extra, context)
        self.alert_log.extend(transitions)
        return transitions

    def _drift_figures(self) -> dict[str, Any]:
        """Drift figures for the rules that watch them: ``concept_drift`` is 1 for a model
        version with a detection since the last evaluation; ``feature_drift`` counts drifting
        columns."""
        figures: dict[str, Any] = {}
        if "concept_drift" in self.alert_metrics:
            flags: dict[str, dict[str, int]] = {}
            for model, drift in self.drift.items():
                for version, (count, _) in drift.concept_detections().items():
                    seen = self._detections_seen.get((model, version), 0)
                    flags.setdefault(model, {})[version] = int(count > seen)
                    self._detections_seen[model, version] = count
            figures["concept_drift"] = flags
        if "feature_drift" in self.alert_metrics:
            figures["feature_drift"] = {
                model: drift.drifting_features(self.event_clock)
                for model, drift in self.drift.items()
            }
        return figures

    def _last_drifts(self) -> dict[tuple[str, str], str]:
        """The event time of each model version's latest concept drift detection."""
        return {
            (model, version): datetime.fromtimestamp(at, UTC).isoformat(timespec="seconds")
            for model, drift in self.drift.items()
            for version, (_, at) in drift.concept_detections().items()
            if at is not None
        }

    def snapshot(self) -> bytes:
        """All state, serialised; ``Monitor.restore`` continues from it with identical results.

        A snapshot is trusted input (it is unpickled): load only snapshots
        predwatch itself wrote.
        """
        state = {k: v for k, v in self.__dict__.items() if k not in ("settings", "decoder")}
        return pickle.dumps((SNAPSHOT_FORMAT, state), protocol=pickle.HIGHEST_PROTOCOL)

    @classmethod
    def restore(cls, settings: Settings, snapshot: bytes) -> Monitor:
        """A monitor that continues from ``snapshot`` under ``settings``."""
        version, state = pickle.loads(snapshot)
        if version != SNAPSHOT_FORMAT:
            raise ValueError(
                f"snapshot format {version} is not supported (expected {SNAPSHOT_FORMAT})"
            )
        monitor = cls(settings)
        monitor.__dict__.update(state)
        monitor.alerts.reconfigure(settings.alerts)
        monitor.alert_metrics = {rule.metric for rule in settings.alerts.all_rules()}
        return monitor


def _nested(counts: dict[tuple[str, str], int]) -> dict[str, dict[str, int]]:
    """``{(feature, kind): n}`` as ``{feature: {kind: n}}``."""
    nested: dict[str, dict[str, int]] = {}
    for (feature, kind), count in sorted(counts.items()):
        nested.setdefault(feature, {})[kind] = count
    return nested


def _by_model(items: Sequence[T], model_of: Callable[[T], str]) -> dict[str, list[T]]:
    """Items grouped by model, in their order."""
    if not items:
        return {}
    first = model_of(items[0])
    if all(model_of(item) == first for item in items):
        return {first: list(items)}
    groups: dict[str, list[T]] = {}
    for item in items:
        groups.setdefault(model_of(item), []).append(item)
    return groups


def _raw_of(label: Any) -> Raw:
    """A stand-in message for a label rejected after decoding (the original is gone)."""
    return Raw(json.dumps(label._asdict()))
