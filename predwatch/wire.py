"""The fast path of decoding: typed structs parsed and checked in one pass by msgspec.

A message the fast path accepts decodes to exactly the record the checked
path in ``predwatch.events`` would give; anything unusual (a wrong type, a
naive timestamp, ``true`` as a class, NaN, a value over a limit, not JSON at
all) makes it answer None, and the checked path then decodes the message or
names the reason it cannot. The input limits are part of the structs' types
(``msgspec.Meta``), so checking them costs almost nothing here. Features are
kept as raw JSON until something needs them, once they are known to hold
only scalars within the limits.

>>> from predwatch.config import Settings
>>> fast = FastDecoder(Settings.model_validate({"models": {"fraud": {"task": "binary"}}}))
>>> fast.prediction(Raw(b'{"prediction_id": 7, "model": "fraud", "timestamp": 5, "prediction": 1}'))
Prediction(id='7', model='fraud', version='unversioned', timestamp=5.0, value='1', ...)
>>> fast.prediction(Raw(b'{"prediction_id": 7, "model": "fraud", "prediction": NaN}')) is None
True
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any

import msgspec

from predwatch.config import FieldNames, Settings, class_key
from predwatch.limits import LimitsSettings
from predwatch.records import UNVERSIONED, Label, Prediction, Raw
from predwatch.screening import shallow

_NULL = msgspec.Raw(b"null")
_new = tuple.__new__
_DECLINED = (msgspec.MsgspecError, TypeError, RecursionError)


def _utf8(value: bytes) -> bool:
    try:
        value.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _types(limits: LimitsSettings, short: bool = False) -> dict[str, Any]:
    """The wire types of each field, with the limits as constraints.

    ``short``: the types for a JSON text of at most ``max_string_length`` bytes, which
    cannot hold a longer string (a character takes at least one byte), so strings go
    unchecked: a length constraint on dict keys makes msgspec twice as slow on features.
    """
    bound = limits.max_abs_number
    whole = min(math.floor(bound), 2**63 - 1)  # msgspec's integers are 64-bit
    text = Annotated[str, msgspec.Meta(max_length=None if short else limits.max_string_length)]
    integer = Annotated[int, msgspec.Meta(ge=-whole, le=whole)]
    number = Annotated[float, msgspec.Meta(ge=-bound, le=bound)]
    value = text | integer | number
    scalar = None | bool | integer | number | text
    return {
        "id": Annotated[str, msgspec.Meta(max_length=limits.max_id_length)] | int,
        "value": value,
        "version": text | integer | None,
        "timestamp": datetime | float | None,
        "score": Annotated[float, msgspec.Meta(ge=0.0, le=1.0)] | None,
        "probabilities": Annotated[
            dict[text, Annotated[float, msgspec.Meta(ge=0.0, le=bound)]],
            msgspec.Meta(min_length=1, max_length=limits.max_classes),
        ]
        | None,
        "tags": Annotated[dict[text, text], msgspec.Meta(max_length=limits.max_tags)] | None,
        "features": Annotated[dict[text, scalar], msgspec.Meta(max_length=limits.max_features)],
    }


def _structs(fields: FieldNames, types: dict[str, Any]) -> tuple[type, type]:
    """Wire structs whose attributes carry the configured field names."""
    prediction = msgspec.defstruct(
        "WirePrediction",
        [
            ("prediction_id", types["id"]),
            ("model", str),
            ("prediction", types["value"]),
            ("model_version", types["version"], None),
            ("timestamp", types["timestamp"], None),
            ("features", msgspec.Raw, _NULL),
            ("score", types["score"], None),
            ("probabilities", types["probabilities"], None),
            ("tags", types["tags"], None),
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
            ("prediction_id", types["id"]),
            ("label", types["value"]),
            ("timestamp", types["timestamp"], None),
        ],
        rename={
            "prediction_id": fields.prediction_id,
            "label": fields.label,
            "timestamp": fields.timestamp,
        },
        gc=False,
    )
    return prediction, label


Decoders = tuple[Callable[[Any], Any], Callable[[Any], Any]]  # (any length, short)


def _decoders(checked: Any, short: Any) -> Decoders:
    return msgspec.json.Decoder(checked).decode, msgspec.json.Decoder(short).decode


class FastDecoder:
    """Decodes well-formed messages within the limits quickly; answers None for anything else."""

    def __init__(self, settings: Settings) -> None:
        limits = settings.limits
        # Each decoder twice: with the string limits, and without them for a text too short
        # to break them (see ``_types``), which most messages are.
        types, short = _types(limits), _types(limits, short=True)
        prediction, label = _structs(settings.fields, types)
        short_prediction, short_label = _structs(settings.fields, short)
        self._prediction: Decoders = _decoders(prediction, short_prediction)
        self._label: Decoders = _decoders(label, short_label)
        self._features: Decoders = _decoders(types["features"], short["features"])
        self._regression = {
            name: model.task == "regression" for name, model in settings.models.items()
        }
        self._limits = limits
        self._max_bytes = limits.max_message_bytes
        self._max_depth = limits.max_depth
        self._max_id = limits.max_id_length
        self._max_text = limits.max_string_length
        self._min_time, self._max_time = limits.min_timestamp, limits.max_timestamp

    def prediction(self, raw: Raw) -> Prediction | None:
        wire: Any = self._parse(self._prediction, raw)
        key = self._key(wire)
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
            if len(version) > self._max_text:
                return None
        elif not version:
            return None
        timestamp = self._seconds(wire.timestamp, raw)
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
        probabilities = wire.probabilities
        if probabilities is not None and sum(probabilities.values()) <= 0.0:
            return None
        features = wire.features
        try:  # an object within the limits, of scalars only
            self._features[len(features) <= self._max_text](features)
        except _DECLINED:
            if bytes(features) != b"null":  # valid JSON (msgspec parsed it) but no object
                return None
            features = {}
        # tuple.__new__ skips the named tuple's own __new__, a Python call per record.
        model, score, tags = wire.model, wire.score, wire.tags or {}
        record = (key, model, version, timestamp, predicted, score, probabilities, features, tags)
        return _new(Prediction, record)

    def label(self, raw: Raw) -> Label | None:
        wire: Any = self._parse(self._label, raw)
        key = self._key(wire)
        if key is None:
            return None
        timestamp = self._seconds(wire.timestamp, raw)
        if timestamp is None:
            return None
        label = wire.label
        if type(label) is str:
            return _new(Label, (key, timestamp, label, None))
        if type(label) is int:
            return _new(Label, (key, timestamp, str(label), float(label)))
        return _new(Label, (key, timestamp, class_key(label), float(label)))

    def _parse(self, decoders: Decoders, raw: Raw) -> Any:
        """The wire struct of a message, or None where msgspec declines it or it is too large or
        could nest too deeply (the checked path then names the reason)."""
        value = raw.value
        if type(value) is not bytes:
            if not isinstance(value, str):
                return None
            value = value.encode("utf-8", "surrogatepass")
        size = len(value)
        if size > self._max_bytes or not shallow(value, self._max_depth):
            return None
        if not value.isascii() and not _utf8(value):
            return None  # msgspec skips unknown fields without checking their UTF-8
        try:
            return decoders[size <= self._max_text](value)
        except _DECLINED:
            return None

    def _key(self, wire: Any) -> str | None:
        """The prediction id as text; None without a usable one (or without a struct)."""
        if wire is None:
            return None
        key = wire.prediction_id
        if type(key) is not str:
            key = str(key)
            return key if len(key) <= self._max_id else None
        return key or None

    def _seconds(self, stamp: datetime | float | None, raw: Raw) -> float | None:
        """Epoch seconds of a message's time, the transport's when it has none; None when it
        is unusable (the checked path then names the reason)."""
        if type(stamp) is float:
            seconds = stamp
        elif stamp is None:
            if raw.timestamp is None:
                return None
            seconds = raw.timestamp
        elif stamp.tzinfo is None:  # type: ignore[union-attr]
            return None  # ambiguous
        else:
            seconds = stamp.timestamp()  # type: ignore[union-attr]
        return seconds if self._min_time <= seconds <= self._max_time else None
