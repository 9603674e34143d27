"""Replay from JSON Lines files: the two files interleaved as the two topics would arrive.

Each file keeps its own order (a topic partition is read in order, out-of-order
events included); the two are merged by event timestamp, predictions first on
a tie. Lines are parsed once here and handed over already parsed. The replay
clock is event time: ``now`` is the largest timestamp read so far.

A batch ends after ``batch_size`` events or once it spans ``join.grace`` of
event time, whichever comes first, so expiry (decided at the end of a batch)
happens within a grace period of when it is due, on small files as on large.
"""

from __future__ import annotations

import contextlib
import heapq
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from predwatch.config import Settings
from predwatch.events import Raw, parse_timestamp
from predwatch.monitor import Monitor

PREDICTIONS, LABELS = 0, 1
DEFAULT_BATCH = 5000


def _timed_lines(path: Path, topic: int, timestamp_field: str) -> Iterator[tuple[float, int, Raw]]:
    """``(event time, topic, message)`` per non-blank line; unusable lines keep the last time."""
    last = float("-inf")
    with path.open("rb") as lines:
        for line in lines:
            if not line.strip():
                continue
            value: bytes | dict[str, Any] = line
            try:
                message = json.loads(line)
            except ValueError:
                message = None
            if isinstance(message, dict):
                value = message
                with contextlib.suppress(ValueError):  # the decoder will name the reason
                    last = parse_timestamp(message.get(timestamp_field))
            yield last, topic, Raw(value)


def merged(settings: Settings, predictions: Path, labels: Path) -> Iterator[tuple[float, int, Raw]]:
    """Both files' messages, interleaved by event time."""
    field = settings.fields.timestamp
    return heapq.merge(
        _timed_lines(predictions, PREDICTIONS, field),
        _timed_lines(labels, LABELS, field),
        key=lambda item: (item[0], item[1]),
    )


def replay(
    settings: Settings,
    predictions: str | Path,
    labels: str | Path,
    batch_size: int = DEFAULT_BATCH,
    monitor: Monitor | None = None,
) -> Monitor:
    """Feed both files through a monitor (a new one unless given) and return it.

    Nothing is flushed at the end: what still waits is left pending.
    """
    for path in (predictions, labels):
        if not Path(path).is_file():
            raise FileNotFoundError(f"{path}: no such file; give a JSON Lines file of events")
    monitor = monitor if monitor is not None else Monitor(settings)
    batch: tuple[list[Raw], list[Raw]] = ([], [])
    now = batch_start = float("-inf")
    size = 0
    span = settings.join.grace
    for event_time, topic, raw in merged(settings, Path(predictions), Path(labels)):
        if size and (size >= batch_size or event_time - batch_start > span):
            monitor.process(0, batch[PREDICTIONS], batch[LABELS], now)
            batch, size = ([], []), 0
        if size == 0:
            batch_start = event_time
        if event_time > now:
            now = event_time
        batch[topic].append(raw)
        size += 1
    if size:
        monitor.process(0, batch[PREDICTIONS], batch[LABELS], now)
    return monitor
