"""The fast path of decoding: typed structs parsed and checked in one pass by msgspec.

A message the fast path accepts decodes to exactly the record the checked
path in ``predwatch.events`` would give; anything unusual (a wrong type, a
naive timestamp, ``true`` as a class, NaN, not JSON at all) makes it answer
None, and the checked path then decodes the message or names the reason it
cannot. Features are kept as raw JSON until something needs them.

>>> from predwatch.config import Settings
>>> fast = FastDecoder(Settings.model_validate({"models": {"fraud": {"task": "binary"}}}))
>>> fast.prediction(Raw(b'{"prediction_id": 7, "model": "fraud", "timestamp": 5, "prediction": 1}'))
Prediction(id='7', model='fraud', version='unversioned', timestamp=5.0, value='1', ...)
>>> fast.prediction(Raw(b'{"prediction_id": 7, "model": "fraud", "prediction": NaN}')) is None
True
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

import msgspec

from predwatch.config import FieldNames, Settings, class_key
from predwatch.records import UNVERSIONED, Label, Prediction, Raw

_NULL = msgspec.Raw(b"null")


def _structs(fields: FieldNames) -> tuple[type, type]:
    """Wire structs whose attributes carry the configured field names."""
    prediction = msgspec.defstruct(
        "WirePrediction",
        [
            ("prediction_id", str | int),
            ("model", str),
            ("prediction", str | int | float),
            ("model_version", str | int | None, None),
            ("timestamp", datetime | float | None, None),
            ("features", msgspec.Raw, _NULL),
            ("score", float | None, None),
            ("probabilities", dict[str, float] | None, None),
            ("tags", dict[str, str] | None, None),
        ],
        rename={
            name: getattr(fields, name)
            for name in (
                "prediction_id",
                "model",
                "prediction",
                "model_version",
                "timestamp",
                "features",
                "score",
                "probabilities",
                "tags",
            )
        },
        gc=False,
    )
    label = msgspec.defstruct(
        "WireLabel",
        [
            ("prediction_id", str | int),
            ("label", str | int | float),
            ("timestamp", datetime | float | None, None),
        ],
        rename={
            "prediction_id": fields.prediction_id,
            "label": fields.label,
            "timestamp": fields.timestamp,
        },
        gc=False,
    )
    return prediction, label


class FastDecoder:
    """Decodes well-formed messages quickly; answers None for anything else."""

    def __init__(self, settings: Settings) -> None:
        prediction, label = _structs(settings.fields)
        self._prediction: Callable[[bytes], Any] = msgspec.json.Decoder(prediction).decode
        self._label: Callable[[bytes], Any] = msgspec.json.Decoder(label).decode
        self._regression = {
            name: model.task == "regression" for name, model in settings.models.items()
        }

    def prediction(self, raw: Raw) -> Prediction | None:
        wire: Any = _parse(self._prediction, raw)
        key = _key(wire)
        if key is None:
            return None
        regression = self._regression.get(wire.model)
        if regression is None:
            return None
        version = wire.model_version
        if version is None:
            version = UNVERSIONED
        elif type(version) is not str:
            version = str(version)
        elif not version:
            return None
        timestamp = _seconds(wire.timestamp, raw)
        if timestamp is None:
            return None
        predicted = wire.prediction
        if regression:
            if type(predicted) is str:
                return None
            predicted = float(predicted)
        elif type(predicted) is int:
            predicted = str(predicted)
        elif type(predicted) is not str:
            predicted = class_key(predicted)
        score = wire.score
        if score is not None and not 0.0 <= score <= 1.0:
            return None
        probabilities = wire.probabilities
        if probabilities is not None and (
            not probabilities
            or min(probabilities.values()) < 0.0
            or sum(probabilities.values()) <= 0.0
        ):
            return None
        features = wire.features
        first = memoryview(features)[0]
        if first == 110:  # b"n": null
            features = {}
        elif first != 123:  # not b"{": not an object
            return None
        return Prediction(
            key,
            wire.model,
            version,
            timestamp,
            predicted,
            score,
            probabilities,
            features,
            wire.tags or {},
        )

    def label(self, raw: Raw) -> Label | None:
        wire: Any = _parse(self._label, raw)
        key = _key(wire)
        if key is None:
            return None
        timestamp = _seconds(wire.timestamp, raw)
        if timestamp is None:
            return None
        label = wire.label
        if type(label) is str:
            return Label(key, timestamp, label, None)
        if type(label) is int:
            return Label(key, timestamp, str(label), float(label))
        return Label(key, timestamp, class_key(label), float(label))


def _parse(decode: Callable[[bytes], Any], raw: Raw) -> Any:
    """The wire struct of a message, or None where msgspec declines it."""
    value = raw.value
    try:
        return decode(value.encode() if isinstance(value, str) else value)
    except (msgspec.MsgspecError, TypeError):
        return None


def _key(wire: Any) -> str | None:
    """The prediction id as text; None without a usable one (or without a struct)."""
    if wire is None:
        return None
    key = wire.prediction_id
    if type(key) is not str:
        return str(key)
    return key or None


def _seconds(stamp: datetime | float | None, raw: Raw) -> float | None:
    """Epoch seconds of a message's time, the transport's when it has none; None when its
    time is ambiguous."""
    if stamp is None:
        return raw.timestamp
    if not isinstance(stamp, datetime):
        return stamp
    if stamp.tzinfo is None:
        return None  # ambiguous: the checked path names the reason
    return stamp.timestamp()
