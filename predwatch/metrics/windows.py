"""Windows over rows of a stream: the last N rows, and a sliding span of event time.

Every figure kept per window (quality metrics, data drift, the performance
estimate, calibration) is a statistic that merges: a window is given how to make
new, empty statistics (``new``) and how to add rows to them (``update``, from
columns: numpy arrays of equal length, a row per pair or prediction), and the
statistics merge with ``merge``. Both windows answer ``add(columns, clock)``,
``stats(clock)`` and ``span(clock)`` alike, so their users never ask which kind
they hold.

- ``CountWindow``: the last ``size`` rows, exactly. Rows are kept as column
  chunks and summarised when read (statistics that merge cannot forget a row).
- ``TimeWindow``: rows whose ``timestamp`` lies in the last ``duration`` of event
  time, summed into buckets of ``duration / 12``; the window at event time
  ``clock`` is the twelve buckets up to the one holding ``clock``, so it slides a
  twelfth at a time and covers between 11/12 and all of ``duration``.

>>> import numpy as np
>>> window = CountWindow(3, Sum, Sum.update)
>>> window.add({"x": np.array([1, 2])}, 0.0); window.add({"x": np.array([3, 4])}, 0.0)
>>> window.stats(0.0).total, window.span(0.0)
(9.0, None)
>>> hour = TimeWindow(3600.0, Sum, Sum.update)
>>> hour.add({"timestamp": np.array([400.0, 3700.0]), "x": np.array([1, 2])}, clock=3700.0)
>>> hour.stats(3700.0).total, hour.span(3700.0)
(3.0, (300.0, 3900.0))
>>> hour.stats(4000.0).total  # the bucket of 400.0 has slid out
2.0
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Container, Iterable, Iterator, Mapping
from itertools import pairwise
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

import numpy as np

from predwatch.batches import Columns

if TYPE_CHECKING:
    from predwatch.config import WindowSettings

TIME_WINDOW_STEPS = 12  # a time window slides in steps of duration / 12


class Mergeable(Protocol):
    """Statistics a window keeps: ``merge`` adds another's rows into these."""

    def merge(self, other: Any, /) -> None: ...


S = TypeVar("S", bound=Mergeable)
New = Callable[[], S]  # new, empty statistics
Update = Callable[[S, Columns], None]  # add rows, given as columns, to statistics


class Sum:
    """The sum of a column ``x``: the smallest statistic that merges (for examples and tests).

    >>> a, b = Sum(), Sum()
    >>> Sum.update(a, {"x": np.array([1.0, 2.0])}); b.total = 4.0; a.merge(b); a.total
    7.0
    """

    def __init__(self) -> None:
        self.total = 0.0

    def update(self, columns: Columns) -> None:
        self.total += float(columns["x"].sum())

    def merge(self, other: Sum) -> None:
        self.total += other.total


def rows_of(columns: Columns) -> int:
    """How many rows ``columns`` hold (0 for no columns)."""
    return len(next(iter(columns.values()))) if columns else 0


class CountWindow(Generic[S]):
    """The last ``size`` rows, kept as column chunks; their statistics are made when read."""

    def __init__(self, size: int, new: New[S], update: Update[S]) -> None:
        self.size = size
        self._new, self._update = new, update
        self._chunks: deque[Columns] = deque()
        self._rows = 0

    def add(self, columns: Columns, clock: float) -> None:
        """Add rows (oldest first); ``clock`` is not needed by a count."""
        rows = rows_of(columns)
        if rows == 0:
            return
        if rows > self.size:  # only the batch's last rows can stay in the window
            columns = {name: values[-self.size :] for name, values in columns.items()}
            rows = self.size
        self._chunks.append(columns)
        self._rows += rows
        while self._rows - rows_of(self._chunks[0]) >= self.size:
            self._rows -= rows_of(self._chunks.popleft())

    def columns(self) -> Columns:
        """The window's rows, oldest first, at most ``size`` of them ({} before any)."""
        if not self._chunks:
            return {}
        names = self._chunks[0].keys()
        joined = {name: np.concatenate([c[name] for c in self._chunks]) for name in names}
        return {name: values[-self.size :] for name, values in joined.items()}

    def stats(self, clock: float) -> S:
        """Statistics of the last ``size`` rows."""
        stats = self._new()
        if columns := self.columns():
            self._update(stats, columns)
        return stats

    def span(self, clock: float) -> None:
        """A count window has no span of event time."""
        return None


class TimeWindow(Generic[S]):
    """Rows whose ``timestamp`` lies in the last ``duration`` of event time, in buckets.

    ``add``, ``stats`` and ``span`` are the window at event time ``clock``;
    ``add`` forgets the buckets before it. The bucket methods below them serve a
    window that keeps buckets longer (the estimate keeps a bucket until every
    prediction in it has ended): it adds with ``add_from``, reads with
    ``merged`` and forgets with ``forget_before`` itself.
    """

    def __init__(self, duration: float, new: New[S], update: Update[S]) -> None:
        self.duration = duration
        self.step = duration / TIME_WINDOW_STEPS
        self._new, self._update = new, update
        self._buckets: dict[int, S] = {}

    def add(self, columns: Columns, clock: float) -> None:
        """Add rows; those in buckets already before the window at ``clock`` are not counted,
        and buckets before it are forgotten."""
        first = self.first(clock)
        self.forget_before(first)
        self.add_from(columns, first)

    def stats(self, clock: float) -> S:
        """Statistics of the window at ``clock``, its buckets merged oldest first (reading
        forgets nothing: what a window holds depends on what was added, not on who read)."""
        return self.merged(self.first(clock))

    def span(self, clock: float) -> tuple[float, float]:
        """Event-time start (inclusive) and end (exclusive) of the window at ``clock``."""
        first = self.first(clock)
        return self.bounds(first, first + TIME_WINDOW_STEPS)

    def first(self, clock: float) -> int:
        """The oldest bucket of the window at ``clock``."""
        return self.bucket(clock) - TIME_WINDOW_STEPS + 1

    # Buckets: bucket ``i`` holds the rows with ``i * step <= timestamp < (i + 1) * step``.

    def bucket(self, time: float) -> int:
        """The bucket of an event time."""
        return math.floor(time / self.step)

    def buckets(self, times: np.ndarray) -> np.ndarray:
        """The bucket of each event time."""
        return np.floor(times / self.step).astype(np.int64)

    def held(self) -> Mapping[int, S]:
        """The buckets held, by index (read only)."""
        return self._buckets

    def add_from(self, columns: Columns, low: int, only: Container[int] | None = None) -> None:
        """Add the rows of buckets ``low`` and later (and in ``only``, if given)."""
        for index, rows in _split(columns, self.buckets(columns["timestamp"]), low):
            if only is not None and index not in only:
                continue
            part = self._new()
            self._update(part, rows)
            if (held := self._buckets.get(index)) is None:
                self._buckets[index] = part
            else:
                held.merge(part)

    def merged(self, low: int, high: int | None = None) -> S:
        """New statistics holding the buckets from ``low`` up to (not including) ``high``."""
        stats = self._new()
        for index in sorted(self._buckets):
            if index >= low and (high is None or index < high):
                stats.merge(self._buckets[index])
        return stats

    def forget_before(self, low: int) -> None:
        """Drop the buckets before ``low``."""
        for index in [i for i in self._buckets if i < low]:
            del self._buckets[index]

    def bounds(self, low: int, high: int) -> tuple[float, float]:
        """Event-time start of bucket ``low`` and end of bucket ``high - 1``."""
        return low * self.duration / TIME_WINDOW_STEPS, high * self.duration / TIME_WINDOW_STEPS


def _split(columns: Columns, buckets: np.ndarray, low: int) -> Iterator[tuple[int, Columns]]:
    """The rows of each bucket from ``low`` on, buckets in ascending order and rows in their
    order (so a sum over a bucket's rows adds up as over a boolean selection of them)."""
    if buckets.size == 0:
        return
    first, last = int(buckets.min()), int(buckets.max())
    if first == last:  # the usual case for arriving predictions
        if first >= low:
            yield first, columns
        return
    order = np.argsort(buckets, kind="stable")
    ordered = buckets[order]
    skipped = int(np.searchsorted(ordered, low))  # rows of buckets before ``low``
    order, ordered = order[skipped:], ordered[skipped:]
    # One gather per column, then a slice (a view) per bucket.
    gathered = {name: values[order] for name, values in columns.items()}
    cuts = [0, *(np.flatnonzero(ordered[1:] != ordered[:-1]) + 1).tolist(), len(ordered)]
    for start, end in pairwise(cuts):
        if end > start:
            yield int(ordered[start]), {name: v[start:end] for name, v in gathered.items()}


Window = CountWindow[S] | TimeWindow[S]


def make_windows(
    windows: Iterable[WindowSettings], new: New[S], update: Update[S]
) -> dict[str, Window[S]]:
    """One window per configured window, by name, of statistics made by ``new`` and ``update``.

    >>> from predwatch.config import WindowSettings
    >>> made = make_windows([WindowSettings(name="1h", duration=3600)], Sum, Sum.update)
    >>> {name: (type(w).__name__, w.duration) for name, w in made.items()}
    {'1h': ('TimeWindow', 3600.0)}
    """
    made: dict[str, Window[S]] = {}
    for window in windows:
        if window.events is not None:
            made[window.name] = CountWindow(window.events, new, update)
        else:
            assert window.duration is not None  # the settings hold one or the other
            made[window.name] = TimeWindow(window.duration, new, update)
    return made
