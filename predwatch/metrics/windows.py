"""Windows over matched pairs: the last N pairs, and a sliding span of event time.

Both take columns of pairs (numpy arrays of equal length) and give back, when
read, statistics of what the window holds now, built by a ``StatsFactory``.

>>> import numpy as np
>>> window = CountWindow(3)
>>> window.add({"x": np.array([1, 2])}); window.add({"x": np.array([3, 4])})
>>> window.columns()["x"]
array([2, 3, 4])
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import numpy as np

from predwatch.batches import Columns

if TYPE_CHECKING:
    from predwatch.config import WindowSettings

TIME_WINDOW_STEPS = 12  # a time window slides in steps of duration / 12
C = TypeVar("C")
T = TypeVar("T")


def make_windows(
    windows: Iterable[WindowSettings], by_events: Callable[[int], C], by_time: Callable[[float], T]
) -> dict[str, C | T]:
    """One object per configured window, by name: ``by_events(n)`` for the last ``n`` events,
    ``by_time(seconds)`` for a span of event time.

    >>> from predwatch.config import WindowSettings
    >>> make_windows([WindowSettings(name="1h", duration=3600)], CountWindow, float)
    {'1h': 3600.0}
    """
    made: dict[str, C | T] = {}
    for window in windows:
        if window.events is not None:
            made[window.name] = by_events(window.events)
        else:
            assert window.duration is not None  # the settings hold one or the other
            made[window.name] = by_time(window.duration)
    return made


class Stats(Protocol):
    def merge(self, other: Any) -> None: ...


StatsFactory = Callable[[Columns], Stats]


class CountWindow:
    """The last ``size`` pairs, kept as column chunks; statistics are computed when read."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._chunks: deque[Columns] = deque()
        self._rows = 0

    def add(self, columns: Columns) -> None:
        rows = len(next(iter(columns.values())))
        if rows == 0:
            return
        self._chunks.append(columns)
        self._rows += rows
        while self._rows - len(next(iter(self._chunks[0].values()))) >= self.size:
            dropped = self._chunks.popleft()
            self._rows -= len(next(iter(dropped.values())))

    def columns(self) -> Columns:
        """The window's pairs, oldest first, at most ``size`` of them."""
        if not self._chunks:
            return {}
        names = self._chunks[0].keys()
        joined = {name: np.concatenate([c[name] for c in self._chunks]) for name in names}
        return {name: values[-self.size :] for name, values in joined.items()}


class TimeWindow:
    """Pairs whose prediction time lies in the last ``duration`` of event time.

    Pairs are summed into ``TIME_WINDOW_STEPS`` buckets by prediction time; the
    window is the buckets that end after ``clock - duration``, so it covers
    between 11/12 and all of ``duration`` and slides a bucket at a time.
    """

    def __init__(self, duration: float, make: StatsFactory) -> None:
        self.duration = duration
        self._step = duration / TIME_WINDOW_STEPS
        self._make = make
        self._buckets: dict[int, Stats] = {}

    def add(self, columns: Columns, clock: float) -> None:
        """Add pairs; ``columns["timestamp"]`` is prediction time, ``clock`` event time now."""
        self._prune(clock)
        bucket = np.floor(columns["timestamp"] / self._step).astype(np.int64)
        first = self._first_bucket(clock)
        for index in np.unique(bucket):
            if index < first:
                continue  # older than the window: not counted in it
            selected = {name: values[bucket == index] for name, values in columns.items()}
            stats = self._make(selected)
            if (held := self._buckets.get(int(index))) is None:
                self._buckets[int(index)] = stats
            else:
                held.merge(stats)

    def _first_bucket(self, clock: float) -> int:
        return math.floor(clock / self._step) - TIME_WINDOW_STEPS + 1

    def _prune(self, clock: float) -> None:
        first = self._first_bucket(clock)
        for index in [i for i in self._buckets if i < first]:
            del self._buckets[index]

    def span(self, clock: float) -> tuple[float, float]:
        """Event-time start (inclusive) and end (exclusive) of the window at ``clock``."""
        first = self._first_bucket(clock)
        steps = TIME_WINDOW_STEPS
        return first * self.duration / steps, (first + steps) * self.duration / steps

    def stats(self, clock: float, into: Stats) -> None:
        """Merge the statistics of the window at ``clock`` into ``into``."""
        self._prune(clock)
        for index in sorted(self._buckets):
            into.merge(self._buckets[index])
