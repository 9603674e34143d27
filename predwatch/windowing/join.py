"""The event-time join of predictions and labels of one partition, as an interval join.

Every valid event ends in exactly one outcome, decided by the events' ids and
timestamps alone (see docs/architecture.md, "How the join decides, in event
time"). With ``T = label_timeout`` and ``G = grace``:

- The first prediction and the first label of an id read from each input are
  *the* prediction and *the* label; later ones of the same id are *duplicates*.
- An event stamped more than ``G`` before the latest time already read from its
  own input (in this partition) is *behind* its input's watermark: unless a
  duplicate, it is set aside as a *late prediction* or a *late label*, and the
  join goes on as if it had not been read.
- The label matches the prediction when ``-G <= label time - prediction time <= T``
  (and its value fits the model's task, else it is *invalid*); later than that it
  is *late*, earlier (or with no prediction) it is an *orphan*. A prediction
  without a matching label ends *unlabelled*.

Watermarks only decide when a pending event ends: a prediction once the join's
watermark passes ``timestamp + T``, a label without prediction once it passes
``timestamp + G``; no event that could change their outcome can come after
that without being behind. Three bounds of a real service bend the rule: an
idle input's watermark follows the processing-time clock (``idle_timeout``) so
that a quiet topic does not hold everything back; the memory of ended ids is
bounded (``expired_id_memory``), an id forgotten is new again; and with
``max_pending`` a partition keeps at most that many pending predictions, the
oldest (smallest deadline, then id) ending early as *evicted*, like an
unlabelled one (a label read later is late).

>>> from predwatch.events import Label, Prediction
>>> join = PartitionJoin(label_timeout=3600, grace=60, idle_timeout=600, expired_id_memory=100)
>>> p = Prediction("a", "fraud", "v1", 1000.0, "1", 0.9, None, {}, {})
>>> result = join.process([p], [Label("a", 1500.0, "1", 1.0)], now=0.0)
>>> [(pred.id, label.value) for pred, label in result.matched]
[('a', '1')]
>>> late = Prediction("b", "fraud", "v1", 1000.0, "1", 0.9, None, {}, {})
>>> result = join.process([late], [Label("b", 5000.0, "1", 1.0)], now=0.0)
>>> [label.id for label in result.late_labels], join.pending_predictions
(['b'], 1)
"""

from __future__ import annotations

import heapq
import math
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import msgspec

from predwatch.records import Label, Prediction
from predwatch.windowing.pending import CompactStore, PendingStore, StoreFactory
from predwatch.windowing.watermark import Watermark, combined

_encode = msgspec.msgpack.Encoder().encode
_decode = msgspec.msgpack.Decoder().decode

# What of an ended id has been read: its prediction, its label, or both.
PREDICTION, LABEL = 1, 2


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
    late_predictions: list[Prediction] = field(default_factory=list)  # behind their input
    evicted: list[Prediction] = field(default_factory=list)  # ended early: over max_pending


class PartitionJoin:
    """Pending predictions and labels of one partition, and the ids that already ended.

    A pending prediction may already know its label's fate (late, orphan,
    invalid): it is *sealed* and still ends unlabelled at its own deadline, so
    when it ends never depends on which of the two came first. Ended ids are
    remembered with what was read of them (up to ``expired_id_memory``, oldest
    forgotten first), to tell duplicates and late labels from new events.
    ``max_pending`` (0: no cap) bounds the pending predictions; ``store`` makes
    the store they are kept in (``windowing/pending.py``).
    """

    def __init__(
        self,
        label_timeout: float,
        grace: float,
        idle_timeout: float,
        expired_id_memory: int,
        created: float | None = None,
        fits: Callable[[Prediction, Label], bool] | None = None,
        store: StoreFactory = CompactStore,
        max_pending: int = 0,
    ) -> None:
        self._fits = fits or label_fits
        self._label_timeout = label_timeout
        self._grace = grace
        self._memory_size = expired_id_memory
        self._max_pending = max_pending
        start = created if created is not None else float("-inf")
        self.prediction_mark = Watermark(grace, idle_timeout, start)
        self.label_mark = Watermark(grace, idle_timeout, start)
        self._predictions = store()  # pending, by id, with their deadlines
        self._labels: dict[str, Label] = {}
        self._sealed: set[str] = set()  # pending predictions whose label was already judged
        self._ended: OrderedDict[str, int] = OrderedDict()  # id -> PREDICTION | LABEL read
        self._high_mark = float("-inf")
        self._label_deadlines: list[tuple[float, str]] = []

    def bind_store(self, bind: Callable[[object], PendingStore]) -> None:
        """Give a join read back from a checkpoint its live store: one kept outside the
        checkpoint (on disk) is written there only as its name."""
        self._predictions = bind(self._predictions)

    @property
    def pending_predictions(self) -> int:
        return len(self._predictions)

    @property
    def pending_labels(self) -> int:
        return len(self._labels)

    def __getstate__(self) -> dict[str, Any]:
        """As checkpoint data: the ended ids, pending labels and their deadlines packed into one
        msgpack value, made in one call instead of an entry per id (a million ended ids are
        most of a checkpoint). ``unpack`` rebuilds them."""
        self.unpack()
        state = dict(self.__dict__)
        state["_packed"] = _encode(
            [
                list(self._ended),
                bytes(self._ended.values()),
                list(self._sealed),
                list(self._labels.values()),
                self._label_deadlines,
            ]
        )
        state.update(_ended=None, _sealed=None, _labels=None, _label_deadlines=None)
        return state

    def unpack(self) -> None:
        """Rebuild what ``__getstate__`` packed, once a join is read back from a checkpoint
        (the checkpoint reader runs no code of the class); at once if nothing is packed."""
        packed = self.__dict__.pop("_packed", None)
        if packed is None:
            return
        ids, flags, sealed, labels, deadlines = _decode(packed)
        self._ended = OrderedDict(zip(ids, flags, strict=True))
        self._sealed = set(sealed)
        self._labels = {label[0]: Label(*label) for label in labels}
        self._label_deadlines = [(deadline, key) for deadline, key in deadlines]

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
        """Add a batch (predictions first, then labels), then expire what the watermark passed.

        Each event is judged against its input's latest time before it, so how a
        stream is cut into batches does not matter.
        """
        result = JoinResult()
        self.unpack()
        self._add_predictions(predictions, now, result)
        self._add_labels(labels, now, result)
        self.expire(now, result)
        return result

    def _add_predictions(self, batch: list[Prediction], now: float, result: JoinResult) -> None:
        pending, labels, sealed, ended = self._predictions, self._labels, self._sealed, self._ended
        timeout, grace, cap = self._label_timeout, self._grace, self._max_pending
        latest = _latest(self.prediction_mark)
        for prediction in batch:
            key, time = prediction.id, prediction.timestamp
            behind = time < latest - grace
            if latest < time:
                latest = time
            seen = ended.get(key, 0)  # 0, or LABEL past the duplicate check
            if key in pending or seen & PREDICTION:
                result.duplicate_predictions.append(prediction)
                continue
            if behind:
                result.late_predictions.append(prediction)
                continue
            label = labels.pop(key, None)
            if label is None:
                if seen:  # its label ended as an orphan already
                    del ended[key]
                    sealed.add(key)
            else:
                gap = label.timestamp - time
                if gap > timeout:
                    result.late_labels.append(label)
                elif gap < -grace:
                    result.orphan_labels.append(label)
                elif self._fits(prediction, label):
                    result.matched.append((prediction, label))
                    ended[key] = PREDICTION | LABEL
                    continue
                else:
                    result.invalid_labels.append(label)
                sealed.add(key)
            pending.add(prediction, time + timeout)
            if cap and len(pending) > cap:  # as each is added: never more, whatever the batch
                for evicted in pending.pop_oldest(len(pending) - cap):
                    self._end(evicted.id)
                    result.evicted.append(evicted)
        if batch:
            self.prediction_mark.observe(latest, now)

    def _add_labels(self, batch: list[Label], now: float, result: JoinResult) -> None:
        pending, labels, sealed, ended = self._predictions, self._labels, self._sealed, self._ended
        timeout, grace, deadlines = self._label_timeout, self._grace, self._label_deadlines
        latest = _latest(self.label_mark)
        for label in batch:
            key, time = label.id, label.timestamp
            behind = time < latest - grace
            if latest < time:
                latest = time
            if key in labels or key in sealed or ended.get(key, 0) & LABEL:
                result.duplicate_labels.append(label)
                continue
            if behind:
                result.late_labels.append(label)
                continue
            # Taken out, as a match (the usual case) takes it; put back if it does not match.
            prediction = pending.pop(key)
            if prediction is None:
                if key in ended:  # its prediction ended unlabelled: past its deadline
                    result.late_labels.append(label)
                    ended[key] |= LABEL
                else:
                    labels[key] = label
                    heapq.heappush(deadlines, (time + grace, key))
                continue
            gap = time - prediction.timestamp
            if gap > timeout:
                result.late_labels.append(label)
            elif gap < -grace:
                result.orphan_labels.append(label)
            elif self._fits(prediction, label):
                result.matched.append((prediction, label))
                ended[key] = PREDICTION | LABEL
                continue
            else:
                result.invalid_labels.append(label)
            pending.add(prediction, prediction.timestamp + timeout)
            sealed.add(key)
        if batch:
            self.label_mark.observe(latest, now)

    def expire(self, now: float, result: JoinResult) -> None:
        """End every pending event whose deadline the watermark has passed."""
        mark = self.watermark(now)
        if mark is None:
            return
        self.unpack()
        self._high_mark = mark
        ended, pop = self._ended, heapq.heappop
        due = self._predictions.pop_due(mark)
        for prediction in due:
            self._end(prediction.id)
        result.unlabelled.extend(due)
        deadlines, labels = self._label_deadlines, self._labels
        while deadlines and deadlines[0][0] < mark:
            deadline, key = pop(deadlines)
            label = labels.get(key)
            if label is not None and label.timestamp + self._grace == deadline:
                del labels[key]
                result.orphan_labels.append(label)
                ended[key] = LABEL
        self._forget_oldest()

    def _end(self, key: str) -> None:
        """Remember a prediction that ended unmatched (expired or evicted), and its label if
        one was judged already."""
        sealed = key in self._sealed
        self._sealed.discard(key)
        self._ended[key] = PREDICTION | LABEL if sealed else PREDICTION

    def _forget_oldest(self) -> None:
        """Keep the memory of ended ids to its configured size, forgetting the oldest first."""
        ended, excess = self._ended, len(self._ended) - self._memory_size
        for _ in range(max(0, excess)):
            ended.popitem(last=False)


def _latest(mark: Watermark) -> float:
    """The largest event time an input has read, ``-inf`` before its first event."""
    latest = mark.max_event_time
    return -math.inf if latest is None else latest


def label_fits(prediction: Prediction, label: Label) -> bool:
    """A regression prediction needs a numeric label; any label names a class (the monitor
    passes a stricter check that knows each model's classes)."""
    return label.number is not None or not isinstance(prediction.value, float)
