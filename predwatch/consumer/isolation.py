"""Failure isolation: a message that makes processing fail is set aside, never the batch.

A source hands the monitor a batch at a time. Should the monitor raise (a
defect that some message's content triggers), the batch is processed again
one message at a time: each message that fails again on its own is counted
invalid as ``processing_error`` (and dead-lettered by the source), and every
other message is processed as usual. The service never stops on it and no
other message of the batch is lost.

The monitor is not transactional: the part of the failed batch processed
before the exception may be counted again by the retry, as a redelivery
would be (at least once).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import NamedTuple

import msgspec

from predwatch.events import PROCESSING_ERROR, Decoder
from predwatch.monitor import Changes, Monitor
from predwatch.records import Invalid, Label, Prediction, Raw

log = logging.getLogger(__name__)


class Unit(NamedTuple):
    """Part of a batch processed on its own in a retry, and what counts if it fails again."""

    predictions: list[Prediction]
    labels: list[Label]
    invalid: list[Invalid]
    failed: Invalid


def process_isolated(
    monitor: Monitor,
    partition: int,
    batch: tuple[list[Prediction], list[Label], list[Invalid]],
    now: float,
    units: Callable[[], Iterable[Unit]],
) -> Changes:
    """``monitor.process_records`` of ``batch``; if it raises, of each of ``units()`` in turn.

    >>> from predwatch.config import Settings
    >>> class Brittle(Monitor):  # fails on the prediction "poison"
    ...     def process_records(self, partition, predictions, labels, invalid, now):
    ...         if any(p.id == "poison" for p in predictions):
    ...             raise ZeroDivisionError("a defect")
    ...         return super().process_records(partition, predictions, labels, invalid, now)
    >>> monitor = Brittle(Settings.model_validate({"models": {"m": {"task": "binary"}}}))
    >>> raws = [Raw(b'{"prediction_id": "%s", "model": "m", "timestamp": 1, "prediction": 1}' % i)
    ...         for i in (b"a", b"poison", b"b")]
    >>> changes = process_raw(monitor, 0, raws, [], now=1.0)
    >>> monitor.counts.predictions, [i.reason for i in changes.invalid]
    (2, ['processing_error'])
    """
    try:
        return monitor.process_records(partition, *batch, now)
    except Exception:  # a defect met by some message: find it, the rest goes on
        log.exception(
            "processing a batch of partition %d failed; retrying its messages one by one",
            partition,
        )
    changes = Changes()
    for unit in units():
        try:
            one = monitor.process_records(
                partition, unit.predictions, unit.labels, unit.invalid, now
            )
        except Exception:  # this message alone: count it and go on
            log.exception("a message of %s failed processing on its own", unit.failed.topic)
            one = monitor.process_records(partition, [], [], [unit.failed], now)
        changes.outcomes.update(one.outcomes)
        changes.invalid.extend(one.invalid)
    return changes


def process_raw(
    monitor: Monitor,
    partition: int,
    predictions: Sequence[Raw],
    labels: Sequence[Raw],
    now: float,
) -> Changes:
    """Decode (with ``now`` as the processing clock) and process one partition's messages,
    isolating any that fail; what is invalid keeps its original bytes for a dead-letter topic."""
    decoder = monitor.decoder
    decoded_predictions, bad_predictions = decoder.predictions(predictions, now)
    decoded_labels, bad_labels = decoder.labels(labels, now)
    batch = (decoded_predictions, decoded_labels, bad_predictions + bad_labels)
    return process_isolated(
        monitor, partition, batch, now, lambda: _raw_units(decoder, predictions, labels, now)
    )


def _raw_units(
    decoder: Decoder, predictions: Sequence[Raw], labels: Sequence[Raw], now: float
) -> Iterator[Unit]:
    for raw in predictions:
        decoded, bad = decoder.predictions([raw], now)
        yield Unit(decoded, [], bad, Invalid("predictions", PROCESSING_ERROR, raw))
    for raw in labels:
        records, bad = decoder.labels([raw], now)
        yield Unit([], records, bad, Invalid("labels", PROCESSING_ERROR, raw))


def record_units(
    predictions: Sequence[Prediction], labels: Sequence[Label], invalid: Sequence[Invalid]
) -> Iterator[Unit]:
    """Units of already decoded records (a replay keeps no raw bytes; a failed record is
    counted with its fields re-encoded as JSON)."""
    for prediction in predictions:
        yield Unit([prediction], [], [], _failed("predictions", prediction))
    for label in labels:
        yield Unit([], [label], [], _failed("labels", label))
    for item in invalid:
        yield Unit([], [], [item], item._replace(reason=PROCESSING_ERROR))


def _failed(topic: str, record: Prediction | Label) -> Invalid:
    return Invalid(topic, PROCESSING_ERROR, Raw(msgspec.json.encode(record._asdict())))
