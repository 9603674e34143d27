"""The event-time join of predictions and labels of one partition.

Every valid event ends in exactly one outcome. A prediction is *matched*,
expires *unlabelled*, or is a *duplicate*; a label is *matched*, *orphan* (no
prediction was ever seen for it), *late* (its prediction had already expired),
*duplicate*, or *invalid* (its value does not fit the model's task). Until then
an event is *pending*.

>>> from predwatch.events import Label, Prediction
>>> join = PartitionJoin(label_timeout=3600, grace=60, idle_timeout=600, expired_id_memory=100)
>>> p = Prediction("a", "fraud", "v1", 1000.0, "1", 0.9, None, {}, {})
>>> result = join.process([p], [Label("a", 1500.0, "1", 1.0)], now=0.0)
>>> [(pred.id, label.value) for pred, label in result.matched]
[('a', '1')]
"""

from __future__ import annotations

import heapq
from collections import OrderedDict
from dataclasses import dataclass, field

from predwatch.records import Label, Prediction
from predwatch.windowing.watermark import Watermark, combined


@dataclass(slots=True)
class JoinResult:
    """What one call to ``PartitionJoin.process`` decided."""

    matched: list[tuple[Prediction, Label]] = field(default_factory=list)
    unlabelled: list[Prediction] = field(default_factory=list)
    duplicate_predictions: list[Prediction] = field(default_factory=list)
    orphan_labels: list[Label] = field(default_factory=list)
    late_labels: list[Label] = field(default_factory=list)
    duplicate_labels: list[Label] = field(default_factory=list)
    invalid_labels: list[Label] = field(default_factory=list)


class PartitionJoin:
    """Pending predictions and labels of one partition, and the ids that already ended.

    A prediction waits until the watermark passes ``timestamp + label_timeout``;
    a label without its prediction waits until it passes ``timestamp + grace``.
    After a match the id is remembered until the prediction's deadline, and ids
    that ended are remembered (up to ``expired_id_memory``, oldest forgotten
    first) so a label arriving after its prediction expired counts as late, not
    orphan, and repeats count as duplicates.
    """

    def __init__(
        self,
        label_timeout: float,
        grace: float,
        idle_timeout: float,
        expired_id_memory: int,
        created: float | None = None,
    ) -> None:
        self._label_timeout = label_timeout
        self._grace = grace
        self._memory_size = expired_id_memory
        start = created if created is not None else float("-inf")
        self.prediction_mark = Watermark(grace, idle_timeout, start)
        self.label_mark = Watermark(grace, idle_timeout, start)
        self._predictions: dict[str, Prediction] = {}
        self._labels: dict[str, Label] = {}
        self._matched: dict[str, float] = {}  # id -> deadline of the matched prediction
        self._ended: OrderedDict[str, bool] = OrderedDict()  # id -> was it matched
        self._high_mark = float("-inf")
        self._prediction_deadlines: list[tuple[float, str]] = []
        self._label_deadlines: list[tuple[float, str]] = []

    @property
    def pending_predictions(self) -> int:
        return len(self._predictions)

    @property
    def pending_labels(self) -> int:
        return len(self._labels)

    def watermark(self, now: float) -> float | None:
        """The join's watermark: the smaller of its two inputs', and never lower than before.

        An idle input's watermark runs ahead with the clock; when events arrive
        again it may fall back, but what expired stays expired, so the join's
        watermark keeps the highest value expiry used. Reading it changes nothing.
        """
        mark = combined([self.prediction_mark, self.label_mark], now)
        high = self._high_mark if mark is None else max(mark, self._high_mark)
        return None if high == float("-inf") else high

    def process(self, predictions: list[Prediction], labels: list[Label], now: float) -> JoinResult:
        """Add a batch (predictions first, then labels), then expire what the watermark passed."""
        result = JoinResult()
        self._add_predictions(predictions, now, result)
        self._add_labels(labels, now, result)
        self.expire(now, result)
        return result

    def _add_predictions(self, batch: list[Prediction], now: float, result: JoinResult) -> None:
        pending, labels = self._predictions, self._labels
        matched, ended = self._matched, self._ended
        timeout, deadlines = self._label_timeout, self._prediction_deadlines
        max_time = float("-inf")
        for prediction in batch:
            key = prediction.id
            if max_time < prediction.timestamp:
                max_time = prediction.timestamp
            if key in pending or key in matched or key in ended:
                result.duplicate_predictions.append(prediction)
                continue
            deadline = prediction.timestamp + timeout
            heapq.heappush(deadlines, (deadline, key))
            label = labels.pop(key, None)
            if label is None:
                pending[key] = prediction
            elif _fits(prediction, label):
                matched[key] = deadline
                result.matched.append((prediction, label))
            else:
                result.invalid_labels.append(label)
                pending[key] = prediction
        if batch:
            self.prediction_mark.observe(max_time, now)

    def _add_labels(self, batch: list[Label], now: float, result: JoinResult) -> None:
        pending, labels = self._predictions, self._labels
        matched, ended = self._matched, self._ended
        grace, deadlines = self._grace, self._label_deadlines
        max_time = float("-inf")
        for label in batch:
            key = label.id
            if max_time < label.timestamp:
                max_time = label.timestamp
            prediction = pending.get(key)
            if prediction is not None:
                if _fits(prediction, label):
                    del pending[key]
                    matched[key] = prediction.timestamp + self._label_timeout
                    result.matched.append((prediction, label))
                else:
                    result.invalid_labels.append(label)
            elif key in matched or key in labels:
                result.duplicate_labels.append(label)
            elif key in ended:
                if ended[key]:
                    result.duplicate_labels.append(label)
                else:
                    result.late_labels.append(label)
            else:
                labels[key] = label
                heapq.heappush(deadlines, (label.timestamp + grace, key))
        if batch:
            self.label_mark.observe(max_time, now)

    def expire(self, now: float, result: JoinResult) -> None:
        """End every pending event whose deadline the watermark has passed."""
        mark = self.watermark(now)
        if mark is None:
            return
        self._high_mark = mark
        deadlines = self._prediction_deadlines
        pending, matched, ended = self._predictions, self._matched, self._ended
        timeout, unlabelled, pop = self._label_timeout, result.unlabelled, heapq.heappop
        while deadlines and deadlines[0][0] < mark:
            deadline, key = pop(deadlines)
            prediction = pending.get(key)
            if prediction is not None and prediction.timestamp + timeout == deadline:
                del pending[key]
                unlabelled.append(prediction)
                ended[key] = False
            elif matched.get(key) == deadline:
                del matched[key]
                ended[key] = True
        self._forget_oldest()
        deadlines = self._label_deadlines
        while deadlines and deadlines[0][0] < mark:
            deadline, key = heapq.heappop(deadlines)
            label = self._labels.get(key)
            if label is not None and label.timestamp + self._grace == deadline:
                del self._labels[key]
                result.orphan_labels.append(label)

    def _forget_oldest(self) -> None:
        """Keep the memory of ended ids to its configured size, forgetting the oldest first."""
        ended, excess = self._ended, len(self._ended) - self._memory_size
        for _ in range(max(0, excess)):
            ended.popitem(last=False)


def _fits(prediction: Prediction, label: Label) -> bool:
    """A regression prediction needs a numeric label; any label names a class."""
    return label.number is not None or not isinstance(prediction.value, float)
