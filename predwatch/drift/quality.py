"""Data quality of features: missing, null, wrong-type and non-finite values, counted per feature.

A ``FeatureReader`` turns a batch of predictions into one column per feature of
a known schema, counting what it cannot use; ``FeatureQuality`` keeps those
counts for a model. Nothing here rejects an event: an unusable value is left
out of that feature's column (NaN, or ``INVALID`` for a categorical feature).

>>> from predwatch.records import Prediction
>>> features = [b'{"amount": 3.5, "country": "BR"}', b'{"amount": null}',
...             b'{"amount": "x", "country": 7}']
>>> batch = [Prediction(str(i), "m", "v1", 0.0, "1", None, None, f, {})
...          for i, f in enumerate(features)]
>>> quality = FeatureQuality()
>>> columns = quality.observe(batch, {"amount": "numeric", "country": "categorical"})
>>> columns["amount"], columns["country"] == ["BR", INVALID, INVALID]
(array([3.5, nan, nan]), True)
>>> quality.counts()  # doctest: +NORMALIZE_WHITESPACE
{('amount', 'null'): 1, ('amount', 'wrong_type'): 1, ('country', 'missing'): 1,
 ('country', 'wrong_type'): 1}
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Mapping, Sequence
from operator import attrgetter, itemgetter
from typing import Any, Literal

import msgspec
import numpy as np

from predwatch.records import Prediction

Kind = Literal["numeric", "categorical"]
Issue = Literal["missing", "null", "wrong_type", "non_finite"]
ISSUES: tuple[Issue, ...] = ("missing", "null", "wrong_type", "non_finite")
INVALID = "\x00invalid"  # a categorical value that could not be used
Column = np.ndarray | list[str]  # numeric: float64 with NaN where unusable; categorical: str
_ABSENT = object()
_FEATURES = itemgetter(7)  # Prediction.features


def category_key(value: object) -> str | None:
    """The category a JSON value stands for: strings as they are, booleans as ``true``/``false``;
    None for anything else (a number or a structure in a categorical feature is the wrong type).

    >>> category_key("BR"), category_key(True), category_key(3)
    ('BR', 'true', None)
    """
    if isinstance(value, str):
        return value if type(value) is str else str(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    return None


def load_features(features: object) -> object:
    """One prediction's features decoded generically; ``json`` also takes NaN and 1e999."""
    if isinstance(features, dict):
        return features
    try:
        return msgspec.json.decode(features)  # type: ignore[call-overload]
    except msgspec.ValidationError:  # a number out of range, which json reads as infinity
        return json.loads(bytes(features))  # type: ignore[call-overload]


class FeatureReader:
    """Reads the columns of a fixed feature schema from batches of predictions.

    A batch whose features all have the expected types is decoded by msgspec
    straight into typed structs (the fast path); any other batch is decoded
    generically and checked value by value. Both give the same columns and counts.
    """

    def __init__(self, schema: Mapping[str, Kind]) -> None:
        self.schema = dict(schema)
        fields: list[tuple[str, type, Any]] = []
        for i, kind in enumerate(self.schema.values()):
            numeric = kind == "numeric"
            fields.append((f"f{i}", float, math.nan) if numeric else (f"f{i}", str, INVALID))
        names = dict(zip((f for f, _, _ in fields), self.schema, strict=True))
        struct = msgspec.defstruct("Features", fields, rename=names, gc=False)
        self._empty = struct()
        self._decode = msgspec.json.Decoder(list[struct | None]).decode  # type: ignore[valid-type]
        self._getters = [attrgetter(f) for f, _, _ in fields]

    def read(self, predictions: Sequence[Prediction]) -> tuple[dict[str, Column], Counter[Any]]:
        """Columns by feature name, and counts of ``(feature, issue)``."""
        features = list(map(_FEATURES, predictions))
        try:
            rows = self._decode(_json_array(features))
        except (TypeError, msgspec.ValidationError):  # dicts from the checked decoder; odd values
            return self._read_checked([load_features(f) for f in features])
        if None in rows:  # "features": null
            rows = [self._empty if row is None else row for row in rows]  # type: ignore[misc]
        issues: Counter[Any] = Counter()
        columns: dict[str, Column] = {}
        n = len(rows)
        for (name, kind), getter in zip(self.schema.items(), self._getters, strict=True):
            if kind == "numeric":
                values = np.fromiter(map(getter, rows), np.float64, n)
                if missing := int(np.isnan(values).sum()):
                    issues[name, "missing"] += missing
                columns[name] = values
            else:
                strings = list(map(getter, rows))
                if missing := strings.count(INVALID):
                    issues[name, "missing"] += missing
                columns[name] = strings
        return columns, issues

    def _read_checked(self, rows: list[Any]) -> tuple[dict[str, Column], Counter[Any]]:
        issues: Counter[Any] = Counter()
        columns: dict[str, Column] = {}
        for name, kind in self.schema.items():
            values = [row.get(name, _ABSENT) if isinstance(row, dict) else _ABSENT for row in rows]
            if kind == "numeric":
                numbers = np.full(len(values), np.nan)
                for i, value in enumerate(values):
                    issue = _numeric_issue(value)
                    if issue is None:
                        numbers[i] = value
                    else:
                        issues[name, issue] += 1
                columns[name] = numbers
            else:
                strings: list[str] = []
                for value in values:
                    key = category_key(value)
                    if key is None:
                        issues[name, _categorical_issue(value)] += 1
                    strings.append(INVALID if key is None else key)
                columns[name] = strings
        return columns, issues


def _json_array(features: list[Any]) -> bytes:
    """The raw JSON of each prediction's features, as one JSON array; ``TypeError`` if some
    are not raw JSON (already decoded)."""
    if set(map(type, features)) == {msgspec.Raw}:  # as the decoder leaves them
        return _ENCODE(features)  # msgspec copies each raw value in: faster than a join
    return b"[" + b",".join(features) + b"]"


_ENCODE = msgspec.json.Encoder().encode


def _numeric_issue(value: object) -> Issue | None:
    if value is _ABSENT:
        return "missing"
    if value is None:
        return "null"
    if isinstance(value, bool) or not isinstance(value, int | float):
        return "wrong_type"
    return None if math.isfinite(value) else "non_finite"


def _categorical_issue(value: object) -> Issue:
    if value is _ABSENT:
        return "missing"
    return "null" if value is None else "wrong_type"


class FeatureQuality:
    """Counts of feature issues of one model, ``(feature, issue) -> n``, over every batch read."""

    def __init__(self) -> None:
        self._counts: Counter[tuple[str, Issue]] = Counter()
        self._readers: dict[tuple[tuple[str, Kind], ...], FeatureReader] = {}

    def observe(
        self, predictions: Sequence[Prediction], schema: Mapping[str, Kind]
    ) -> dict[str, Column]:
        """Read the batch's feature columns for ``schema`` and count their issues."""
        key = tuple(schema.items())
        reader = self._readers.get(key)
        if reader is None:
            reader = self._readers[key] = FeatureReader(schema)
        columns, issues = reader.read(predictions)
        self._counts.update(issues)
        return columns

    def __getstate__(self) -> dict[str, Any]:
        # Readers hold generated msgspec types, which do not pickle; they are rebuilt on use.
        return {"_counts": self._counts, "_readers": {}}

    def counts(self) -> dict[tuple[str, Issue], int]:
        """Issue counts so far, by feature and issue, in sorted order; zero counts left out."""
        return {key: n for key, n in sorted(self._counts.items()) if n}
