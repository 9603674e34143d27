"""Data drift of every feature, the prediction and the score: each window against the reference.

Each batch is binned against the reference once (one msgspec call decodes
all its features; numpy bins every column): each prediction gets a row of slots
in one flat counts vector, and a window's ``SlotCounts`` count them. Windows
are the metric windows (``predwatch.metrics.windows``): count windows keep the
last N predictions exactly, time windows sum buckets of a twelfth of their span.

>>> from predwatch.config import WindowSettings
>>> from predwatch.drift.settings import DataDriftSettings
>>> from predwatch.records import Prediction
>>> def batch(start, scale):
...     return [Prediction(str(i), "fraud", "v1", float(i), "1", None, None,
...                        {"amount": (i * 7919 % 1000) * scale}, {})
...             for i in range(start, start + 1000)]
>>> drift = DataDrift("fraud", DataDriftSettings.model_validate({"reference": {"first": 1000}}),
...                   [WindowSettings(name="last_1000", events=1000)])
>>> drift.observe("v1", batch(0, 1.0), clock=1000.0)  # becomes the reference
>>> drift.observe("v1", batch(1000, 1.0), clock=2000.0)
>>> drift.report(clock=2000.0)["v1"]["last_1000"]["amount"]["drift"]
False
>>> drift.observe("v1", batch(2000, 3.0), clock=3000.0)
>>> entry = drift.report(clock=3000.0)["v1"]["last_1000"]["amount"]
>>> entry["drift"], entry["n"], entry["out_of_range"], round(entry["psi"], 2)
(True, 1000, 666, 1.83)
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from operator import itemgetter
from typing import Any

import numpy as np
from scipy.stats import false_discovery_control

from predwatch.batches import Columns
from predwatch.config import WindowSettings
from predwatch.drift.profile import (
    Column,
    NumericColumn,
    ProfileBuilder,
    ReferenceProfile,
)
from predwatch.drift.quality import INVALID, FeatureQuality
from predwatch.drift.settings import DataDriftSettings
from predwatch.drift.statistics import chi2_homogeneity, js_distance, ks_binned
from predwatch.drift.statistics import psi as population_stability
from predwatch.metrics.windows import make_windows
from predwatch.records import Prediction

PREDICTION = "@prediction"  # the column names of the prediction and the score in reports
SCORE = "@score"


class _CategoryIndex(dict[str, int]):
    def __init__(self, items: dict[str, int], default: int) -> None:
        super().__init__(items)
        self.default = default

    def __missing__(self, key: str) -> int:
        return self.default


class _Slots:
    """Where one column's values land in a flat counts vector, and how they compare.

    Numeric: below the reference minimum, the reference bins, above the maximum,
    unusable. Categorical: the top categories, other, unseen, unusable.
    """

    def __init__(self, name: str, column: Column, offset: int) -> None:
        self.name, self.column, self.offset = name, column, offset
        if isinstance(column, NumericColumn):
            upper = math.nextafter(column.maximum, math.inf)
            self.edges = np.array([column.minimum, *column.edges, upper, math.inf])
            self.size = len(column.edges) + 4
            self.reference = np.array(column.counts, np.float64)
        else:
            k = len(column.categories)
            index = {name: offset + i for i, name in enumerate(column.categories)}
            index.update(dict.fromkeys(column.other_values, offset + k))
            index[INVALID] = offset + k + 2
            self.index = _CategoryIndex(index, offset + k + (1 if column.other_complete else 0))
            self.size = k + 3
            self.reference = np.array([*column.counts, column.other, 0], np.float64)

    def codes(self, values: Any, n: int) -> np.ndarray:
        if isinstance(self.column, NumericColumn):
            return np.searchsorted(self.edges, values, side="right") + self.offset
        return np.fromiter(map(self.index.__getitem__, values), np.intp, n)

    def compare(self, counts: np.ndarray) -> dict[str, Any]:
        numeric = isinstance(self.column, NumericColumn)
        if numeric:
            bins = counts[1:-2].copy()
            bins[0] += counts[0]
            bins[-1] += counts[-2]
            unseen, outside = 0, int(counts[0] + counts[-2])
        else:
            bins = counts[:-1]
            unseen, outside = int(counts[-2]), 0
        n = int(bins.sum())
        entry: dict[str, Any] = dict(
            psi=None,
            js=None,
            ks_stat=None,
            ks_p=None,
            chi2_p=None,
            p_adjusted=None,
            n=n,
            drift=False,
            unseen=unseen,
            out_of_range=outside,
        )
        if n == 0:
            return entry
        entry["psi"] = float(population_stability(self.reference, bins))
        entry["js"] = float(js_distance(self.reference, bins))
        if numeric:
            statistic, p = ks_binned(self.reference, bins)
            entry["ks_stat"], entry["ks_p"] = float(statistic), float(p)
        else:
            entry["chi2_p"] = chi2_homogeneity(self.reference, bins)[1]
        return entry


class _Layout:
    """The flat counts vector of one reference profile: every column's slots, side by side."""

    def __init__(self, profile: ReferenceProfile) -> None:
        self.profile, self.schema = profile, profile.schema
        named: list[tuple[str, Column | None]] = [*profile.features.items()]
        named += [(PREDICTION, profile.prediction), (SCORE, profile.score)]
        self.columns: list[_Slots] = []
        offset = 0
        for name, column in named:
            if column is not None:
                self.columns.append(_Slots(name, column, offset))
                offset += self.columns[-1].size
        self.size = offset

    def encode(
        self, batch: Sequence[Prediction], quality: FeatureQuality, scores: np.ndarray | None = None
    ) -> np.ndarray:
        """The slot of each column's value in each prediction: shape (columns, predictions).
        ``scores``: the batch's scores, NaN for none, if already read."""
        n = len(batch)
        features = quality.observe(batch, self.schema) if self.schema else {}
        matrix = np.empty((len(self.columns), n), np.intp)
        for row, slots in enumerate(self.columns):
            if slots.name == PREDICTION:
                values: Any = list(map(_VALUE, batch))
                if isinstance(slots.column, NumericColumn):
                    values = np.array(values, np.float64)
            elif slots.name == SCORE:
                values = scores if scores is not None else _scores(batch)
            else:
                values = features[slots.name]
            matrix[row] = slots.codes(values, n)
        return matrix

    def judge(self, counts: np.ndarray, settings: DataDriftSettings) -> dict[str, Any]:
        entries = {s.name: s.compare(counts[s.offset : s.offset + s.size]) for s in self.columns}
        tested = [(e, e["chi2_p"] if e["ks_p"] is None else e["ks_p"]) for e in entries.values()]
        tested = [(e, p) for e, p in tested if p is not None and not math.isnan(p)]
        adjusted = false_discovery_control([p for _, p in tested])  # Benjamini-Hochberg
        for (entry, _), p in zip(tested, adjusted.tolist(), strict=True):
            entry["p_adjusted"] = p
            entry["drift"] = (
                entry["n"] >= settings.min_samples
                and entry["psi"] >= settings.psi_threshold
                and p < settings.alpha
            )
        return entries


class SlotCounts:
    """How many values fell in each slot of a flat counts vector: a statistic that merges.

    >>> counts = SlotCounts(3)
    >>> counts.update({"slots": np.array([[0, 2], [2, 2]])}); counts.counts
    array([1, 0, 3])
    """

    __slots__ = ("counts",)

    def __init__(self, size: int) -> None:
        self.counts = np.zeros(size, np.int64)

    def update(self, columns: Columns) -> None:
        """Add predictions given as a ``slots`` column: a row of slots per prediction."""
        slots = columns["slots"].ravel(order="K")  # in memory order: no copy
        self.counts += np.bincount(slots, minlength=self.counts.size)

    def merge(self, other: SlotCounts) -> None:
        self.counts += other.counts


class _Version:
    def __init__(self, layout: _Layout, windows: Sequence[WindowSettings]) -> None:
        self.layout = layout
        self.windows = make_windows(windows, self.new_counts, SlotCounts.update)

    def new_counts(self) -> SlotCounts:
        return SlotCounts(self.layout.size)

    def observe(
        self, batch: Sequence[Prediction], clock: float, quality: FeatureQuality, columns: Columns
    ) -> None:
        matrix = self.layout.encode(batch, quality, columns.get("score"))
        times = columns.get("timestamp")
        if times is None:
            times = np.fromiter(map(_TIMESTAMP, batch), np.float64, len(batch))
        rows = {"timestamp": times, "slots": matrix.T}  # a row of slots per prediction
        for window in self.windows.values():
            window.add(rows, clock)


class DataDrift:
    """Data drift of one model, per version and window, against its reference profile.

    ``profiles`` are the loaded reference profiles (those of other models are
    ignored); a version uses its own profile, else the model's version-less one.
    With ``reference.first`` a version without one collects its first
    predictions into a profile, then starts comparing. Feature issues are
    counted in ``quality`` once a version has a reference.
    """

    def __init__(
        self,
        model: str,
        settings: DataDriftSettings | None = None,
        windows: Sequence[WindowSettings] = (),
        profiles: Iterable[ReferenceProfile] = (),
        quality: FeatureQuality | None = None,
    ) -> None:
        self.model = model
        self.settings = settings or DataDriftSettings()
        self.quality = quality or FeatureQuality()
        self._windows = list(windows)
        self._layouts = {p.version: _Layout(p) for p in profiles if p.model == model}
        self._builders: dict[str | None, ProfileBuilder] = {}
        self._versions: dict[str, _Version] = {}

    def references(self) -> dict[str | None, ReferenceProfile]:
        """The reference profiles in use, by version (None: for every version)."""
        return {version: layout.profile for version, layout in self._layouts.items()}

    def collecting(self) -> dict[str | None, int]:
        """Predictions collected so far for references still being built, by version."""
        return {version: builder.count for version, builder in self._builders.items()}

    def observe(
        self,
        version: str,
        batch: Sequence[Prediction],
        clock: float,
        columns: Columns | None = None,
    ) -> None:
        """Add a batch of predictions of one version of this model; ``clock`` is the monitor's
        event time, and the versions of one batch come in sorted order. ``columns``: the
        batch's ``timestamp`` and ``score`` (NaN for none) if already read, so that they are
        not read again."""
        state = self._versions.get(version)
        if state is None:
            layout, rest = self._reference(version, batch)
            if layout is None:
                return
            state = self._versions[version] = _Version(layout, self._windows)
            if len(rest) < len(batch):  # the head of the batch went into the reference
                batch, columns = rest, None
        if batch:
            state.observe(batch, clock, self.quality, columns or {})

    def _reference(
        self, version: str, batch: Sequence[Prediction]
    ) -> tuple[_Layout | None, Sequence[Prediction]]:
        layout = self._layouts.get(version) or self._layouts.get(None)
        first = self.settings.reference.first
        if layout is not None or first is None:
            return layout, batch
        key = version if self.settings.reference.per_version else None
        builder = self._builders.get(key)
        if builder is None:
            builder = self._builders[key] = ProfileBuilder(
                self.model,
                key,
                numeric_bins=self.settings.numeric_bins,
                max_categories=self.settings.max_categories,
            )
        taken = first - builder.count
        builder.add(batch[:taken])
        if builder.count < first:
            return None, batch[:0]
        del self._builders[key]
        layout = self._layouts[key] = _Layout(builder.build())
        return layout, batch[taken:]

    def report(self, clock: float) -> dict[str, Any]:
        """``{version: {window: {column: {psi, js, ks_stat, ks_p, chi2_p, p_adjusted, n, drift,
        unseen, out_of_range}}}}``; the prediction and score columns are ``@prediction`` and
        ``@score``. Statistics a column cannot have are None."""
        return {
            version: {
                name: state.layout.judge(window.stats(clock).counts, self.settings)
                for name, window in state.windows.items()
            }
            for version, state in sorted(self._versions.items())
        }


_TIMESTAMP, _VALUE, _SCORE = (itemgetter(i) for i in (3, 4, 5))  # Prediction fields


def _scores(batch: Sequence[Prediction]) -> np.ndarray:
    return np.array(list(map(_SCORE, batch)), np.float64)  # None becomes NaN
