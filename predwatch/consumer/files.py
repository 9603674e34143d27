"""Replay from JSON Lines files: the two files interleaved as the two topics would arrive.

Each file is read in its own order, as a topic partition is. An event is taken
to arrive when its file has reached the largest event time before it (the
file's running maximum), so an out-of-order event arrives with its
neighbours, as it would on a topic; a line without a usable time arrives with
the line before it. The replay clock is event time.

Both files are cut at the same boundaries of event time, ``join.grace`` apart,
and each slice is one batch for the monitor: expiry (decided at the end of a
batch) then happens within one grace period of when it is due, whatever the
size of the files.

Decoding applies every input limit but the window around a processing clock,
which a replay does not have. A slice the monitor fails on is processed again
record by record (``predwatch.consumer.isolation``), so one bad record is
counted as ``processing_error`` and the replay goes on.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from itertools import islice, repeat
from operator import attrgetter
from pathlib import Path
from typing import IO, Generic, TypeVar

import numpy as np

from predwatch.config import Settings
from predwatch.consumer.isolation import process_isolated, record_units
from predwatch.monitor import Monitor
from predwatch.records import Invalid, Label, Prediction, Raw

CHUNK_LINES = 20_000
_TIMESTAMP = attrgetter("timestamp")
Record = TypeVar("Record", Prediction, Label)


@dataclass
class _File(Generic[Record]):
    """One file's decoded records waiting to be replayed, with their arrival times."""

    lines: IO[bytes]
    decode: Callable[[list[Raw]], tuple[list[Record], list[Invalid]]]
    records: list[Record] = field(default_factory=list)
    arrivals: list[float] = field(default_factory=list)  # of each record, non-decreasing
    invalid: list[Invalid] = field(default_factory=list)
    invalid_arrivals: list[float] = field(default_factory=list)
    latest: float = -math.inf  # the file's running maximum event time
    done: bool = False

    def read_chunk(self) -> None:
        # filter and map over C callables: no Python call per line (tuple.__new__ skips the
        # named tuple's own __new__).
        lines = list(filter(bytes.strip, islice(self.lines, CHUNK_LINES)))
        if not lines:
            self.done = True
            return
        # Decoding keeps order and each reject holds its own message, so the runs of records
        # between rejects are recovered without decoding anything twice.
        raws: list[Raw] = list(
            map(tuple.__new__, repeat(Raw), zip(lines, repeat(None), repeat(None)))
        )
        decoded, rejected = self.decode(raws)
        if not rejected:
            self._arrive(decoded)
            return
        start = end = 0
        pending = iter(rejected)
        reject = next(pending, None)
        for raw in raws:
            if reject is not None and raw is reject.raw:
                if end > start:
                    self._arrive(decoded[start:end])
                    start = end
                self.invalid.append(reject)
                self.invalid_arrivals.append(self.latest)
                reject = next(pending, None)
            else:
                end += 1
        if end > start:
            self._arrive(decoded[start:end])

    def _arrive(self, records: list[Record]) -> None:
        times = np.fromiter(map(_TIMESTAMP, records), np.float64, len(records))
        arrivals = np.maximum.accumulate(np.maximum(times, self.latest))
        self.latest = float(arrivals[-1])
        self.records.extend(records)
        self.arrivals.extend(arrivals.tolist())

    def take_before(self, end: float) -> tuple[list[Record], list[Invalid]]:
        """Remove and return what arrives before event time ``end``."""
        count = bisect_left(self.arrivals, end)
        records = self.records[:count]
        del self.records[:count], self.arrivals[:count]
        count = bisect_left(self.invalid_arrivals, end)
        invalid = self.invalid[:count]
        del self.invalid[:count], self.invalid_arrivals[:count]
        return records, invalid

    @property
    def first_arrival(self) -> float:
        times = [a[0] for a in (self.arrivals, self.invalid_arrivals) if a]
        return min(times, default=math.inf)


def replay(
    settings: Settings,
    predictions: str | Path,
    labels: str | Path,
    monitor: Monitor | None = None,
    on_batch: Callable[[int], None] | None = None,
) -> Monitor:
    """Feed both files through a monitor (a new one unless given) and return it.

    ``on_batch`` is told the number of events (valid or not) of each batch processed, e.g.
    to show progress. Nothing is flushed at the end: what still waits is left pending.
    """
    for path in (predictions, labels):
        if not Path(path).is_file():
            raise FileNotFoundError(f"{path}: no such file; give a JSON Lines file of events")
    monitor = monitor if monitor is not None else Monitor(settings)
    with Path(predictions).open("rb") as p_lines, Path(labels).open("rb") as l_lines:
        for predictions_, labels_, invalid, now in _batches(settings, monitor, p_lines, l_lines):
            batch = (predictions_, labels_, invalid)
            process_isolated(monitor, 0, batch, now, partial(record_units, *batch))
            monitor.tick(now=now)  # in event time: deterministic
            if on_batch is not None:
                on_batch(len(predictions_) + len(labels_) + len(invalid))
    return monitor


def _batches(
    settings: Settings, monitor: Monitor, p_lines: IO[bytes], l_lines: IO[bytes]
) -> Iterator[tuple[list[Prediction], list[Label], list[Invalid], float]]:
    """Slices of both files, one grace period of arrival time each, with the clock at its end."""
    decoder = monitor.decoder
    files: tuple[_File[Prediction], _File[Label]] = (
        _File(p_lines, decoder.predictions),
        _File(l_lines, decoder.labels),
    )
    step = settings.join.grace or 1.0
    now = -math.inf
    while True:
        for f in files:
            while not f.done and not f.records and not f.invalid:
                f.read_chunk()
        if all(f.done and not f.records and not f.invalid for f in files):
            return
        # Everything before `ready` has been read from both files.
        ready = min((f.latest for f in files if not f.done), default=math.inf)
        end = _slice_end(min(f.first_arrival for f in files), step)
        if end > ready:
            lagging = min((f for f in files if not f.done), key=lambda f: f.latest)
            lagging.read_chunk()
            continue
        p_records, p_invalid = files[0].take_before(end)
        l_records, l_invalid = files[1].take_before(end)
        for records in (p_records, l_records):
            now = max(now, max(map(_TIMESTAMP, records), default=now))
        yield p_records, l_records, p_invalid + l_invalid, now


def _slice_end(start: float, step: float) -> float:
    """The end of the slice that begins at ``start``: the next multiple of ``step``, or the
    next float where multiples can no longer be told apart (a time of 6e17 or 1e308), so
    every slice takes something and replay always ends.

    >>> _slice_end(125.0, 60.0), _slice_end(6e17, 60.0) > 6e17, _slice_end(1e308, 1e-3) > 1e308
    (180.0, True, True)
    """
    if start == -math.inf:  # lines before any usable time arrive first
        return math.nextafter(-math.inf, 0.0)
    slices = start / step
    if math.isfinite(slices):
        end = (math.floor(slices) + 1) * step
        if end > start:
            return end
    return math.nextafter(start, math.inf)
