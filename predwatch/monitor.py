"""The pure core: decoded batches and a clock in, outcomes out, a report on every tick.

The monitor never reads the wall clock, touches the network or opens a file;
sources hand it raw messages of one partition with the time ``now``
(processing time: the wall clock in a service, the event time in a replay).

Each batch goes through the join of its partition, then one typed view of
what the join decided (``pipeline.batch.Batch``) through the stages in order:
counts, quality, drift, history, diagnostics, delays. ``tick`` makes a report on a
cadence of event time (``alerts.evaluate_every``) of the figures alert rules
watch and evaluates the rules; ``refresh`` makes a full report. Readers take
``monitor.report``, which is immutable.

>>> from predwatch.config import Settings
>>> monitor = Monitor(Settings.model_validate({"models": {"fraud": {"task": "binary"}}}))
>>> prediction = Raw(b'{"prediction_id": "a", "model": "fraud", "timestamp": 100, "prediction": 1}')
>>> label = Raw(b'{"prediction_id": "a", "label": 1}', timestamp=160.0)
>>> changes = monitor.process(0, [prediction], [label], now=160.0)
>>> changes.outcomes["matched"], monitor.counts.matched
(1, 1)
>>> report = monitor.refresh(now=160.0)
>>> [v.value for v in report.select("accuracy", window="cumulative")]
[1.0]
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections import Counter, deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from operator import attrgetter, itemgetter
from typing import Any, TypeVar

from predwatch.alerts.engine import AlertEngine, Transition
from predwatch.catalogue import FIGURES
from predwatch.config import Settings
from predwatch.drift.profile import ReferenceProfile
from predwatch.events import Decoder
from predwatch.pipeline.batch import Batch
from predwatch.pipeline.builder import ReportBuilder
from predwatch.pipeline.cardinality import VersionCap
from predwatch.pipeline.counts import (
    OUTCOMES,
    PARTITION_OUTCOMES,
    CountsStage,
    JoinCounts,
    ModelCounts,
)
from predwatch.pipeline.delays import DelayStage
from predwatch.pipeline.diagnostics import DiagnosticsStage
from predwatch.pipeline.drift import DriftStage
from predwatch.pipeline.history import HistoryStage
from predwatch.pipeline.quality import QualityStage
from predwatch.pipeline.stage import Stage
from predwatch.records import Invalid, Label, Prediction, Raw
from predwatch.report import Report, Value
from predwatch.state.codec import StateError, from_data, to_data
from predwatch.state.envelope import fingerprint, seal, unseal
from predwatch.windowing.join import JoinResult, PartitionJoin, label_fits
from predwatch.windowing.pending import PendingStores

__all__ = ["Changes", "Held", "JoinCounts", "ModelCounts", "Monitor"]

ALERT_LOG_SIZE = 10_000  # transitions kept for the summary
_model_version = attrgetter("model", "version")
_model_of, _first = attrgetter("model"), itemgetter(0)
_timestamp = attrgetter("timestamp")
T = TypeVar("T")

Held = tuple[PartitionJoin | None, Counter[str]]
"""A partition taken out of a monitor as it is: its join and outcome counts."""

Tap = Callable[[Batch], None]
"""Something that observes every batch after the stages (e.g. ``predwatch compare``)."""


@dataclass
class Changes:
    """What one call changed: outcome counts, and the messages that were invalid."""

    outcomes: Counter[str] = field(default_factory=Counter)
    invalid: list[Invalid] = field(default_factory=list)


class Monitor:
    """Joins, counts and scores the predictions and labels of every partition."""

    def __init__(
        self,
        settings: Settings,
        profiles: Sequence[ReferenceProfile] = (),
        stores: PendingStores | None = None,
    ) -> None:
        self.settings = settings
        self._stores = stores  # None: pending predictions in memory
        self.decoder = Decoder(settings)
        self._joins: dict[int, PartitionJoin] = {}
        self._partition_counts: dict[int, Counter[str]] = {}  # outcomes, per input partition
        self._versions = VersionCap(settings.metrics.max_versions)
        self._label_fits = LabelFits({name: m.classes for name, m in settings.models.items()})
        self._counts = CountsStage()
        self._quality = QualityStage(settings)
        self._drift = DriftStage(settings, profiles)
        self._diagnostics = DiagnosticsStage(settings)
        self.stages: list[Stage] = [
            self._counts,
            self._quality,
            self._drift,
            HistoryStage(settings),
            self._diagnostics,
            DelayStage(),
        ]
        self.taps: list[Tap] = []
        self.alerts = AlertEngine(settings.alerts)
        self.alert_log: deque[Transition] = deque(maxlen=ALERT_LOG_SIZE)
        self.report = Report()  # the latest full report, for readers
        self._tick_report = Report()  # the latest tick's, for "since the previous tick"
        self.last_arrival = -math.inf  # processing time of the latest message
        self.event_clock = -math.inf  # the largest prediction time seen
        self.last_event_time = -math.inf  # the largest time of any valid event
        self._ticked_at: float | None = None  # event time of the latest tick

    # --- what the stages hold, for readers that need more than the report --------------------

    @property
    def counts(self) -> JoinCounts:
        return self._counts.counts

    @property
    def model_counts(self) -> dict[tuple[str, str], ModelCounts]:
        return self._counts.model_counts

    @property
    def invalid_reasons(self) -> Counter[tuple[str, str]]:
        return self._counts.invalid_reasons

    @property
    def metrics(self) -> Mapping[str, Any]:
        return self._quality.metrics

    @property
    def drift(self) -> Mapping[str, Any]:
        return self._drift.drift

    @property
    def diagnostics(self) -> Mapping[str, Any]:
        return self._diagnostics.diagnostics

    @property
    def ticked_at(self) -> float | None:
        """The event time of the latest tick, None before the first."""
        return self._ticked_at

    def watermarks(self, now: float) -> dict[int, float | None]:
        """Each partition's join watermark at processing time ``now``."""
        return {partition: join.watermark(now) for partition, join in self._joins.items()}

    # --- the hot path ----------------------------------------------------------------------

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
        predictions: list[Prediction],
        labels: list[Label],
        invalid: list[Invalid],
        now: float,
    ) -> Changes:
        """As ``process``, for messages a source has already decoded (see ``Decoder``)."""
        predictions = self._versions.apply(predictions)
        if predictions or labels or invalid:
            self.last_arrival = max(self.last_arrival, now)
        if predictions:
            self.event_clock = max(self.event_clock, max(map(_timestamp, predictions)))
        self.last_event_time = max(self.event_clock, self.last_event_time)
        if labels:
            self.last_event_time = max(self.last_event_time, max(map(_timestamp, labels)))
        result = self._join(partition, now).process(predictions, labels, now)
        self._count(partition, result, len(predictions), len(labels), len(invalid))
        keys = list(map(_model_version, predictions))
        batch = Batch(self.event_clock, predictions, keys, len(labels), result, list(invalid))
        return self._run(batch, arrived=predictions)

    def advance(self, now: float) -> Changes:
        """Expire, in every partition, what the watermarks have passed by ``now``."""
        result = JoinResult()
        for partition, join in self._joins.items():
            expired = JoinResult()
            join.expire(now, expired)
            self._count(partition, expired)
            _merge(result, expired)
        return self._run(Batch(self.event_clock, result=result))

    def _count(
        self,
        partition: int,
        result: JoinResult,
        predictions: int = 0,
        labels: int = 0,
        invalid: int = 0,
    ) -> None:
        """Add a join result's outcomes to its partition's counts, which move with it."""
        counts = self._partition_counts.setdefault(partition, Counter())
        counts["predictions"] += predictions
        counts["labels"] += labels - len(result.invalid_labels)
        counts["invalid"] += invalid + len(result.invalid_labels)
        for outcome in OUTCOMES:
            counts[outcome] += len(getattr(result, outcome))

    def _join(self, partition: int, now: float) -> PartitionJoin:
        join = self._joins.get(partition)
        if join is None:
            j = self.settings.join
            join = PartitionJoin(
                j.label_timeout,
                j.grace,
                j.idle_timeout,
                j.expired_id_memory,
                created=now,
                fits=self._label_fits,
                **({} if self._stores is None else {"store": self._stores.factory(partition)}),
                max_pending=j.max_pending,
            )
            self._joins[partition] = join
        return join

    def _run(self, batch: Batch, arrived: Sequence[Prediction] = ()) -> Changes:
        """Build the batch's view and hand it to every stage, then to the taps."""
        result = batch.result
        # A label whose value does not fit its model's task is invalid, not a label.
        batch.labels_received -= len(result.invalid_labels)
        field_name = "bad_type:" + self.settings.fields.label
        batch.invalid.extend(
            Invalid("labels", field_name, _raw_of(label)) for label in result.invalid_labels
        )
        self._view(batch, arrived)
        for stage in self.stages:
            stage.observe(batch)
        counts = self.counts
        counts.pending_predictions = sum(j.pending_predictions for j in self._joins.values())
        counts.pending_labels = sum(j.pending_labels for j in self._joins.values())
        for tap in self.taps:
            tap(batch)
        changes = Changes(invalid=batch.invalid)
        changes.outcomes["invalid"] += len(batch.invalid)
        for outcome in OUTCOMES:
            changes.outcomes[outcome] += len(getattr(result, outcome))
        return changes

    def _view(self, batch: Batch, arrived: Sequence[Prediction]) -> None:
        """Each model's arrivals (duplicates left out), matched pairs with their columns, and
        expired predictions."""
        result, keys = batch.result, batch.keys
        if arrived and self.settings.drift.enabled:
            if result.duplicate_predictions:
                repeated = {id(p) for p in result.duplicate_predictions}
                kept = [i for i, p in enumerate(arrived) if id(p) not in repeated]
                arrived, keys = [arrived[i] for i in kept], [keys[i] for i in kept]
            for model, items in _by_model(list(zip(arrived, keys, strict=True))).items():
                batch.model(model).add_arrivals([p for p, _ in items], [k for _, k in items])
        for model, pairs in _by_model(result.matched).items():
            batch.model(model).add_matched(pairs, self._quality.columns_of(model))
        # A prediction set aside as late, or evicted over join.max_pending, will never get its
        # label either: all end without one (coverage, drift's expired, the history).
        ended = result.unlabelled + result.late_predictions + result.evicted
        for model, predictions in _by_model(ended).items():
            batch.model(model).unlabelled = predictions

    # --- the report ------------------------------------------------------------------------

    def tick(self, now: float, extra: Iterable[Value] = ()) -> list[Transition]:
        """Evaluate the alert rules if the event clock has reached the next multiple of
        ``alerts.evaluate_every``; the transitions.

        Only the figures rules watch are computed, so a replay can tick after every batch.
        ``extra`` are figures of the service, not the core (consumer lag). The clock is the
        join's watermark (see ``_clock``).
        """
        clock = self._clock(now)
        every = self.settings.alerts.evaluate_every
        if not math.isfinite(clock):
            return []
        if self._ticked_at is not None and _step(clock, every) <= _step(self._ticked_at, every):
            return []
        self._ticked_at = clock
        if not self._rules_exist():
            return []
        report = self._make_report(now, extra, self._watched(), self._tick_report)
        self._tick_report = report
        transitions = self.alerts.evaluate(report, clock, self._context())
        self.alert_log.extend(transitions)
        if transitions:
            self.report = self._with_alerts(self.report)
        return transitions

    def refresh(self, now: float, extra: Iterable[Value] = (), fresh: bool = False) -> Report:
        """Make a full report (every figure, and the alerts as of the latest tick) and publish
        it as ``report``; ``fresh`` searches segments again even when not due."""
        report = self._make_report(now, extra, None, self._tick_report, fresh)
        self.report = self._with_alerts(report)
        return self.report

    def summary(self, now: float | None = None) -> dict[str, Any]:
        """A fresh full report as the JSON document of a replay; ``now`` (default: when the
        latest message arrived) is when watermarks are read."""
        at = now if now is not None else self.last_arrival
        return dict(self.refresh(at, fresh=True).summary)

    def _clock(self, now: float) -> float:
        """The tick's event time: the smallest partition watermark, up to which every input is
        taken as complete (idle inputs follow processing time). With a backlog on one topic
        the watermark waits for the other, so rules are evaluated at the same event times
        whatever the order the topics are read in."""
        marks = [mark for mark in self.watermarks(now).values() if mark is not None]
        return min(marks) if marks else -math.inf

    def _make_report(
        self,
        now: float,
        extra: Iterable[Value],
        wanted: frozenset[str] | None,
        previous: Report,
        fresh: bool = False,
    ) -> Report:
        """The stages' figures as of the event clock (windows end at the latest prediction);
        ``wanted`` the families to compute (None: all); ``previous`` the last tick's report."""
        builder = ReportBuilder(self.event_clock, wanted, previous=previous, fresh=fresh)
        for stage in self.stages:
            stage.report(builder)
        for partition, mark in self.watermarks(now).items():
            if mark is not None and math.isfinite(mark):
                builder.watermarks[partition] = mark
        self._report_partitions(builder)
        builder.last_event_time = self.last_event_time
        for model, count in sorted(self._versions.folded.items()):
            builder.add("predwatch_folded_values_total", (model, "version"), count)
        for value in extra:
            builder.add(value.metric, value.labels, value.value, value.samples)
        return builder.build()

    def _report_partitions(self, builder: ReportBuilder) -> None:
        """Each partition's outcome counts and pending events: the counters that move with a
        partition to another instance, so their sum over a group's instances is exact."""
        if not builder.wants("predwatch_partition_events_total"):
            return
        for partition in sorted(self._joins):
            counts = self._partition_counts.get(partition, Counter())
            if not counts.total():
                continue  # nothing read of it yet
            join = self._joins[partition]
            entry = {name: counts[name] for name in PARTITION_OUTCOMES}
            entry["pending_predictions"] = join.pending_predictions
            entry["pending_labels"] = join.pending_labels
            builder.partitions[partition] = entry
            for name in PARTITION_OUTCOMES:
                builder.add(
                    "predwatch_partition_events_total", (str(partition), name), counts[name]
                )

    def _with_alerts(self, report: Report) -> Report:
        summary = {**report.summary, "alerts": [t.as_dict() for t in self.alert_log]}
        return dataclasses.replace(report, alerts=tuple(self.alerts.alerts()), summary=summary)

    def _rules_exist(self) -> bool:
        return bool(self.settings.alerts.all_rules())

    def _watched(self) -> frozenset[str]:
        """The families the alert rules watch."""
        return frozenset(
            FIGURES[r.metric].metric
            for r in self.settings.alerts.all_rules()
            if r.metric in FIGURES
        )

    def _context(self) -> Callable[[str, str], Mapping[str, str]]:
        """Annotation variables of a model version, computed only when an alert is rendered."""

        def variables(model: str, version: str) -> Mapping[str, str]:
            found: dict[str, str] = {}
            if model in self._diagnostics.diagnostics:
                segments = self._diagnostics.top_segments(model, version)
                found["top_segments"] = segments or "no failing segment found yet"
            drift = self._drift.drift.get(model)
            at = drift.concept_detections().get(version, (0, None))[1] if drift else None
            if at is not None:
                found["last_drift"] = datetime.fromtimestamp(at, UTC).isoformat(timespec="seconds")
            return found

        return variables

    # --- state -----------------------------------------------------------------------------

    def keep_pending_in(self, stores: PendingStores) -> None:
        """Keep the joins' pending predictions in ``stores`` (on disk), before any event."""
        assert not self._joins, "the stores of pending predictions are set before any event"
        self._stores = stores

    @property
    def partitions(self) -> list[int]:
        """The partitions this monitor holds a join of."""
        return sorted(self._joins)

    def partition_state(self, partition: int) -> dict[str, Any]:
        """What moves with a partition to another instance: its join (pending events, ended ids,
        watermarks) and its outcome counts, as checkpoint data."""
        join = self._joins.get(partition)
        return {
            "join": None if join is None else to_data(join),
            "counts": dict(self._partition_counts.get(partition, Counter())),
        }

    def load_partition(self, partition: int, state: Mapping[str, Any]) -> None:
        """Take over a partition from ``partition_state`` (of this or another instance), in
        place of what this monitor held of it; ``StateError`` if malformed (then unchanged)."""
        try:
            join = None if state["join"] is None else from_data(state["join"])
            counts = Counter({str(k): int(v) for k, v in state["counts"].items()})
        except StateError:
            raise
        except (LookupError, TypeError, ValueError, AttributeError) as error:
            raise StateError(f"its partition state is malformed ({error!r})") from error
        if join is not None and not isinstance(join, PartitionJoin):
            raise StateError("its partition state holds no join")
        if join is not None:
            self._restored(join)
        self.drop_partition(partition)
        if join is not None:
            self._joins[partition] = join
            # The clocks are this monitor's: the partition's events are now among those seen.
            predicted, labelled = (
                join.prediction_mark.max_event_time,
                join.label_mark.max_event_time,
            )
            if predicted is not None:
                self.event_clock = max(self.event_clock, predicted)
            for latest in (predicted, labelled):
                if latest is not None:
                    self.last_event_time = max(self.last_event_time, latest)
        self._partition_counts[partition] = counts

    def detach_partition(self, partition: int) -> Held:
        """Take a partition out as it is (no copy), to ``attach_partition`` it again later."""
        return self._joins.pop(partition, None), self._partition_counts.pop(partition, Counter())

    def attach_partition(self, partition: int, held: Held) -> None:
        """Put back a partition ``detach_partition`` took out."""
        join, counts = held
        if join is not None:
            self._joins[partition] = join
        self._partition_counts[partition] = counts

    def _restored(self, join: PartitionJoin) -> None:
        """Make a join read back from a checkpoint whole: what it packed, and its store."""
        join.unpack()
        if self._stores is not None:
            join.bind_store(self._stores.bind)

    def drop_partition(self, partition: int) -> None:
        """Forget a partition another instance now owns: its pending events and counts go with
        it, so they are neither expired nor exported here."""
        self._joins.pop(partition, None)
        self._partition_counts.pop(partition, None)

    def state(self) -> dict[str, Any]:
        """All state as checkpoint data (``predwatch.state.codec``): msgpack-ready, no pickle."""
        return {
            "joins": to_data(self._joins),
            "partition_counts": [[p, dict(c)] for p, c in self._partition_counts.items()],
            "versions": to_data(self._versions),
            "stages": {stage.name: stage.state() for stage in self.stages},
            "alerts": to_data(self.alerts),
            "alert_log": to_data(self.alert_log),
            "clocks": [self.last_arrival, self.event_clock, self.last_event_time, self._ticked_at],
        }

    def load_state(self, state: Mapping[str, Any]) -> None:
        """Continue from ``state`` (of ``Monitor.state``), in place, so readers that hold this
        monitor see the restored one; all or nothing: ``StateError`` if it is malformed or
        names a type that is not allowed, and then this monitor is unchanged."""
        loaded = Monitor(self.settings, stores=self._stores)
        try:
            loaded._joins = from_data(state["joins"])
            for join in loaded._joins.values():
                self._restored(join)
            loaded._partition_counts = {
                int(p): Counter(c) for p, c in state.get("partition_counts", [])
            }
            loaded._versions = from_data(state["versions"])
            for stage in loaded.stages:
                stage.load_state(state["stages"][stage.name])
            loaded.alerts = from_data(state["alerts"])
            loaded.alerts.reconfigure(self.settings.alerts)
            loaded.alert_log.extend(from_data(state["alert_log"]))
            clocks = [_clock_value(c) for c in state["clocks"][:3]]
            ticked = state["clocks"][3]
            loaded._ticked_at = None if ticked is None else _clock_value(ticked)
        except StateError:
            raise
        except (LookupError, TypeError, ValueError, AttributeError) as error:
            raise StateError(f"its monitor state is malformed ({error!r})") from error
        loaded.last_arrival, loaded.event_clock, loaded.last_event_time = clocks
        loaded.taps = self.taps
        self.__dict__.update(loaded.__dict__)

    def snapshot(self) -> bytes:
        """All state, sealed (``predwatch.state.envelope``); ``Monitor.restore`` continues from
        it with identical results. Data, not pickle: reading it runs no code it names."""
        return seal(self.state(), fingerprint(self.settings))

    @classmethod
    def restore(
        cls, settings: Settings, snapshot: bytes, profiles: Sequence[ReferenceProfile] = ()
    ) -> Monitor:
        """A monitor that continues from ``snapshot`` under ``settings``; ``StateError`` (one
        sentence) if the snapshot is corrupt, truncated or of other settings."""
        monitor = cls(settings, profiles)
        monitor.load_state(unseal(snapshot, fingerprint(settings)))
        return monitor


def _merge(into: JoinResult, result: JoinResult) -> None:
    for item in dataclasses.fields(JoinResult):
        getattr(into, item.name).extend(getattr(result, item.name))


def _clock_value(value: Any) -> float:
    if isinstance(value, int | float):
        return float(value)
    raise StateError("its clocks are not numbers")


class LabelFits:
    """Whether a label's value fits its prediction's model: a number for regression, one of
    a binary model's two classes (when it names them). A class, so a join is checkpoint data."""

    def __init__(self, classes: Mapping[str, tuple[str, str] | None]) -> None:
        self._classes = dict(classes)

    def __call__(self, prediction: Prediction, label: Label) -> bool:
        classes = self._classes.get(prediction.model)
        if classes is not None:
            return label.value in classes
        return label_fits(prediction, label)


def _step(clock: float, every: float) -> float:
    """The number of the cadence step ``clock`` falls in."""
    return math.floor(clock / every) if math.isfinite(clock) else clock


def _by_model(items: Sequence[T]) -> dict[str, list[T]]:
    """Items grouped by model, in their order; one model keeps the whole list."""
    if not items:
        return {}
    # One kind of item per call: C getters mapped over them, no Python call per item.
    heads: Sequence[Any] = items
    predictions = heads if isinstance(heads[0], Prediction) else map(_first, heads)
    models = list(map(_model_of, predictions))
    first = models[0]
    if models.count(first) == len(models):
        return {first: list(items)}
    groups: dict[str, list[T]] = {}
    for model, item in zip(models, items, strict=True):
        groups.setdefault(model, []).append(item)
    return groups


def _raw_of(label: Any) -> Raw:
    """A stand-in message for a label rejected after decoding (the original is gone)."""
    return Raw(json.dumps(label._asdict()))
