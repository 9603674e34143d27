"""Reference profiles: what a model's features, predictions and scores looked like when trusted.

Numeric columns keep quantile bins (interior edges from the reference, the outer
bins open-ended) with the reference's minimum and maximum; categorical columns
keep their most frequent values, the rest grouped as ``other``, and every value
never seen in the reference falls in an explicit ``unseen`` bucket when compared.
Profiles are plain versioned JSON.

>>> from predwatch.records import Prediction
>>> builder = ProfileBuilder("fraud", numeric_bins=4)
>>> builder.add(Prediction(str(i), "fraud", "v1", 0.0, str(i % 2), i / 10, None,
...                        {"amount": float(i), "country": "BR" if i % 3 else "DE"}, {})
...             for i in range(10))
>>> profile = builder.build()
>>> profile.features["amount"].edges, profile.features["country"].categories
([2.25, 4.5, 6.75], ['BR', 'DE'])
>>> ReferenceProfile.from_json(profile.to_json()) == profile
True
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence
from itertools import chain, repeat
from operator import itemgetter
from typing import Any

import msgspec
import numpy as np

from predwatch.drift.quality import Kind, category_key, load_features
from predwatch.drift.settings import DataDriftSettings
from predwatch.records import Prediction

_VALUE, _SCORE, _FEATURES = itemgetter(4), itemgetter(5), itemgetter(7)  # Prediction fields
FORMAT = 1
MAX_OTHER_VALUES = 1000  # names of grouped categories kept, so that unseen ones are told apart


class ProfileError(ValueError):
    """A profile file that cannot be used; the message is one sentence naming the file."""


class NumericColumn(msgspec.Struct, frozen=True, tag="numeric", tag_field="type"):
    """Reference counts in ``len(edges) + 1`` bins ``(-inf, e0), [e0, e1), ..., [ek, inf)``."""

    edges: list[float]
    minimum: float
    maximum: float
    counts: list[int]


class CategoricalColumn(msgspec.Struct, frozen=True, tag="categorical", tag_field="type"):
    """Counts of the top ``categories``; ``other`` counts the rest, named in ``other_values``
    (all of them when ``other_complete``, else the values past the cap count as ``other`` too)."""

    categories: list[str]
    counts: list[int]
    other: int = 0
    other_values: list[str] = []
    other_complete: bool = True


Column = NumericColumn | CategoricalColumn


class ReferenceProfile(msgspec.Struct, frozen=True):
    """The reference of one model; ``version`` None means it serves every version."""

    model: str
    version: str | None
    count: int
    features: dict[str, Column]
    prediction: Column | None = None
    score: NumericColumn | None = None

    @property
    def schema(self) -> dict[str, Kind]:
        """Each feature's kind, ``numeric`` or ``categorical``."""
        return {
            name: "numeric" if isinstance(c, NumericColumn) else "categorical"
            for name, c in self.features.items()
        }

    def to_json(self) -> str:
        """This profile as a profile file of one profile."""
        return dump_profiles([self])

    @classmethod
    def from_json(cls, text: str | bytes, source: str = "profile") -> ReferenceProfile:
        """The single profile of a profile file; ``ProfileError`` otherwise."""
        profiles = parse_profiles(text, source)
        if len(profiles) != 1:
            raise ProfileError(f"{source}: holds {len(profiles)} profiles where one was expected.")
        return profiles[0]


class _File(msgspec.Struct):
    format: int
    profiles: list[ReferenceProfile]


def dump_profiles(profiles: Iterable[ReferenceProfile]) -> str:
    """A profile file: ``{"format": 1, "profiles": [...]}``, indented for people to read."""
    data = msgspec.json.encode(_File(FORMAT, list(profiles)))
    return msgspec.json.format(data, indent=1).decode()


def parse_profiles(text: str | bytes, source: str = "profile") -> list[ReferenceProfile]:
    """The profiles of a profile file's text; ``ProfileError`` names ``source`` and the problem."""
    try:
        data = msgspec.json.decode(text)
    except msgspec.DecodeError as exc:
        raise ProfileError(f"{source}: is not valid JSON ({exc}).") from None
    if not isinstance(data, dict) or "format" not in data:
        raise ProfileError(f"{source}: is not a predwatch profile (no 'format' key at the top).")
    if data["format"] != FORMAT:
        raise ProfileError(
            f"{source}: has profile format {data['format']!r}, but this predwatch reads format "
            f"{FORMAT}; rebuild it with 'predwatch profile'."
        )
    try:
        profiles = msgspec.convert(data, _File).profiles
    except msgspec.ValidationError as exc:
        raise ProfileError(f"{source}: is not a valid profile: {exc}.") from None
    for profile in profiles:
        columns = {**profile.features, "(prediction)": profile.prediction, "(score)": profile.score}
        for name, column in columns.items():
            if column is not None and (problem := _check(column)):
                raise ProfileError(
                    f"{source}: column {name!r} of model {profile.model!r} {problem}."
                )
    return profiles


def _check(column: Column) -> str | None:
    if any(n < 0 for n in column.counts):
        return "has a negative count"
    if isinstance(column, CategoricalColumn):
        if len(column.counts) != len(column.categories):
            return "needs one count per category"
        return None
    if len(column.counts) != len(column.edges) + 1:
        return "needs one count more than it has edges"
    if any(b <= a for a, b in zip(column.edges, column.edges[1:], strict=False)):
        return "has edges that do not increase"
    if column.minimum > column.maximum:
        return "has a minimum above its maximum"
    return None


class _Values:
    """What one column of the reference held: finite numbers, and category keys."""

    def __init__(self) -> None:
        self._numbers: list[np.ndarray] = []  # chunks, in no particular order
        self._count = 0  # numbers held
        self.categories: Counter[str] = Counter()

    def extend(self, values: list[object]) -> None:
        kinds = set(map(type, values))
        if kinds <= {float, int}:  # the usual numeric column: no bool, None, str
            numbers = np.array(values, np.float64)
            self._add_numbers(numbers[np.isfinite(numbers)])
        elif kinds == {str}:
            self.categories.update(values)  # type: ignore[arg-type]
        else:
            finite: list[float] = []
            for value in values:
                if isinstance(value, int | float) and not isinstance(value, bool):
                    if math.isfinite(value):
                        finite.append(float(value))
                elif (key := category_key(value)) is not None:
                    self.categories[key] += 1
            self._add_numbers(np.array(finite, np.float64))

    def _add_numbers(self, numbers: np.ndarray) -> None:
        if numbers.size:
            self._numbers.append(numbers)
            self._count += numbers.size

    def column(self, numeric_bins: int, max_categories: int) -> Column | None:
        if self._count and self._count >= self.categories.total():
            return _numeric(np.concatenate(self._numbers), numeric_bins)
        if self.categories:
            return _categorical(self.categories, max_categories)
        return None


def _numeric(values: np.ndarray, bins: int) -> NumericColumn:
    low, high = float(values.min()), float(values.max())
    edges = np.unique(np.quantile(values, np.arange(1, bins) / bins))
    edges = edges[edges > low]
    counts = np.bincount(np.searchsorted(edges, values, side="right"), minlength=edges.size + 1)
    return NumericColumn(edges.tolist(), low, high, counts.tolist())


def _categorical(counts: Counter[str], limit: int) -> CategoricalColumn:
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    top, rest = ranked[:limit], ranked[limit:]
    return CategoricalColumn(
        [name for name, _ in top],
        [n for _, n in top],
        other=sum(n for _, n in rest),
        other_values=sorted(name for name, _ in rest[:MAX_OTHER_VALUES]),
        other_complete=len(rest) <= MAX_OTHER_VALUES,
    )


class ProfileBuilder:
    """Collects predictions of one model, then ``build()`` makes its reference profile.

    A feature is numeric when most of its usable values are numbers, else
    categorical; values of the other kind, nulls and non-finite numbers are left out.
    """

    def __init__(
        self,
        model: str,
        version: str | None = None,
        *,
        numeric_bins: int = 10,
        max_categories: int = 20,
    ) -> None:
        self.model, self.version = model, version
        self._bins, self._limit = numeric_bins, max_categories
        self._features: dict[str, _Values] = {}
        self._prediction, self._score = _Values(), _Values()
        self._count = 0

    @property
    def count(self) -> int:
        """Predictions added so far."""
        return self._count

    def add(self, predictions: Iterable[Prediction]) -> None:
        """Add a batch of predictions (of this builder's model)."""
        batch = list(predictions)
        self._count += len(batch)
        self._prediction.extend(list(map(_VALUE, batch)))
        self._score.extend([score for score in map(_SCORE, batch) if score is not None])
        rows = [row for row in _load_all(list(map(_FEATURES, batch))) if type(row) is dict]
        for name in dict.fromkeys(chain.from_iterable(rows)):  # every feature name, once
            # Missing and null values alike are left out.
            values = [value for value in map(dict.get, rows, repeat(name)) if value is not None]
            held = self._features.get(name)
            if held is None:
                held = self._features[name] = _Values()
            held.extend(values)

    def build(self) -> ReferenceProfile:
        """The profile of everything added."""
        features: dict[str, Column] = {}
        for name in sorted(self._features):
            column = self._features[name].column(self._bins, self._limit)
            if column is not None:
                features[name] = column
        score = self._score.column(self._bins, self._limit)
        return ReferenceProfile(
            model=self.model,
            version=self.version,
            count=self._count,
            features=features,
            prediction=self._prediction.column(self._bins, self._limit),
            score=score if isinstance(score, NumericColumn) else None,
        )


def _load_all(features: list[Any]) -> list[object]:
    """Every prediction's features decoded generically, as ``load_features`` does one's:
    in one msgspec call when they are all raw JSON that msgspec reads."""
    try:
        rows = msgspec.json.decode(b"[" + b",".join(features) + b"]")
    except (TypeError, msgspec.ValidationError, msgspec.DecodeError):  # dicts; numbers json reads
        return [load_features(f) for f in features]
    if len(rows) != len(features):  # not one JSON value each
        return [load_features(f) for f in features]
    return rows  # type: ignore[no-any-return]


def profile_lines(
    settings: Any,
    chunks: Iterable[Sequence[bytes]],
    drift: DataDriftSettings | None = None,
) -> list[ReferenceProfile]:
    """Profile every model (per version if ``drift.reference.per_version``) of the prediction
    messages in ``chunks`` (lists of JSON lines), decoded as ``settings`` (a
    ``predwatch.config.Settings``) says. Lines that do not decode are skipped.

    Reading the lines from a file and writing the profiles is ``predwatch profile``'s part
    (``predwatch.commands.profile``); this function does no I/O.
    """
    from predwatch.events import Decoder, Raw

    drift = drift or getattr(settings, "drift", None) or DataDriftSettings()
    decoder = Decoder(settings)
    builders: dict[tuple[str, str | None], ProfileBuilder] = {}
    for lines in chunks:
        predictions, _ = decoder.predictions(Raw(line) for line in lines)
        batches: dict[tuple[str, str | None], list[Prediction]] = {}
        for prediction in predictions:
            version = prediction.version if drift.reference.per_version else None
            batches.setdefault((prediction.model, version), []).append(prediction)
        for (model, version), batch in batches.items():
            builder = builders.get((model, version))
            if builder is None:
                builder = builders[model, version] = ProfileBuilder(
                    model,
                    version,
                    numeric_bins=drift.numeric_bins,
                    max_categories=drift.max_categories,
                )
            builder.add(batch)
    return [builders[key].build() for key in sorted(builders, key=lambda k: (k[0], k[1] or ""))]
