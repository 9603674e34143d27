"""Prediction and label records, and their decoding from JSON messages in batches.

Decoding never raises on bad input: a message that cannot be used becomes an
``Invalid`` with a reason from a short, fixed vocabulary (``not_json``,
``not_object``, ``missing_field:<name>``, ``bad_type:<name>``,
``non_finite:<name>``, ``bad_timestamp``, ``unknown_model``), so it can be
counted and sent to a dead-letter topic.

>>> from predwatch.config import Settings
>>> decoder = Decoder(Settings.model_validate({"models": {"fraud": {"task": "binary"}}}))
>>> ok, bad = decoder.predictions([
...     Raw(b'{"prediction_id": "a", "model": "fraud", "timestamp": 10, "prediction": 1}'),
...     Raw(b'{"prediction_id": "b", "model": "spam", "timestamp": 10, "prediction": 1}'),
...     Raw(b'not json'),
... ])
>>> [(p.id, p.model, p.value) for p in ok], [b.reason for b in bad]
([('a', 'fraud', '1')], ['unknown_model', 'not_json'])
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any, TypeVar

from predwatch.config import Settings, class_key
from predwatch.records import UNVERSIONED, Invalid, Label, Prediction, Raw, features_of
from predwatch.wire import FastDecoder

__all__ = [
    "UNVERSIONED",
    "Decoder",
    "Invalid",
    "Label",
    "Prediction",
    "Raw",
    "features_of",
    "parse_timestamp",
]


class _Reject(ValueError):
    """Internal: carries the reason a message is invalid."""


def parse_timestamp(value: object) -> float:
    """Epoch seconds from ISO 8601 text or a number of epoch seconds; ValueError otherwise.

    >>> parse_timestamp("2026-11-27T04:00:00Z"), parse_timestamp(1795752000)
    (1795752000.0, 1795752000.0)
    """
    if isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    elif isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            raise _Reject("bad_timestamp") from None
        if parsed.tzinfo is None:
            raise _Reject("bad_timestamp")  # a time without a zone is ambiguous
        seconds = parsed.timestamp()
    else:
        raise _Reject("bad_timestamp")
    if not math.isfinite(seconds):
        raise _Reject("bad_timestamp")
    return seconds


def _finite(value: object, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _Reject(f"bad_type:{name}")
    number = float(value)
    if not math.isfinite(number):
        raise _Reject(f"non_finite:{name}")
    return number


def _class_value(value: object, name: str) -> str:
    if isinstance(value, str | int | bool):
        return class_key(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise _Reject(f"non_finite:{name}")
        return class_key(value)
    raise _Reject(f"bad_type:{name}")


def _load(raw: Raw) -> dict[str, Any]:
    try:
        message = json.loads(raw.value)
    except (ValueError, TypeError):  # UnicodeDecodeError is a ValueError
        raise _Reject("not_json") from None
    if not isinstance(message, dict):
        raise _Reject("not_object")
    return message


class Decoder:
    """Turns raw messages into records, batch by batch, according to the settings.

    Each message goes through ``FastDecoder`` first; what it declines is decoded
    by the checked path here, which accepts the same messages more slowly and
    names the reason for each one it refuses.
    """

    def __init__(self, settings: Settings) -> None:
        self._fast = FastDecoder(settings)
        self._fields = settings.fields
        self._regression = {
            name: model.task == "regression" for name, model in settings.models.items()
        }

    def predictions(self, batch: Iterable[Raw]) -> tuple[list[Prediction], list[Invalid]]:
        """Decode prediction messages; the second list holds what could not be used."""
        return _decode(batch, self._fast.prediction, self._prediction, "predictions")

    def labels(self, batch: Iterable[Raw]) -> tuple[list[Label], list[Invalid]]:
        """Decode label messages; the second list holds what could not be used."""
        return _decode(batch, self._fast.label, self._label, "labels")

    def _id(self, message: dict[str, Any]) -> str:
        name = self._fields.prediction_id
        value = message.get(name)
        if value is None:
            raise _Reject(f"missing_field:{name}")
        if isinstance(value, str) and value:
            return value
        if isinstance(value, int) and not isinstance(value, bool):
            return str(value)
        raise _Reject(f"bad_type:{name}")

    def _timestamp(self, message: dict[str, Any], raw: Raw) -> float:
        value = message.get(self._fields.timestamp)
        if value is not None:
            return parse_timestamp(value)
        if raw.timestamp is None:
            raise _Reject(f"missing_field:{self._fields.timestamp}")
        return raw.timestamp

    def _prediction(self, raw: Raw) -> Prediction:
        f = self._fields
        message = _load(raw)
        prediction_id = self._id(message)
        model = message.get(f.model)
        if model is None:
            raise _Reject(f"missing_field:{f.model}")
        if not isinstance(model, str):
            raise _Reject(f"bad_type:{f.model}")
        regression = self._regression.get(model)
        if regression is None:
            raise _Reject("unknown_model")
        version = message.get(f.model_version)
        if version is None:
            version = UNVERSIONED
        elif isinstance(version, int | float) and not isinstance(version, bool):
            version = str(version)
        elif not isinstance(version, str) or not version:
            raise _Reject(f"bad_type:{f.model_version}")
        timestamp = self._timestamp(message, raw)
        if f.prediction not in message or message[f.prediction] is None:
            raise _Reject(f"missing_field:{f.prediction}")
        value: str | float
        if regression:
            value = _finite(message[f.prediction], f.prediction)
        else:
            value = _class_value(message[f.prediction], f.prediction)
        score = message.get(f.score)
        if score is not None:
            score = _finite(score, f.score)
            if not 0.0 <= score <= 1.0:
                raise _Reject(f"bad_type:{f.score}")  # a probability must lie in [0, 1]
        probabilities = message.get(f.probabilities)
        if probabilities is not None:
            probabilities = self._probabilities(probabilities)
        features = message.get(f.features)
        if features is None:
            features = {}
        elif not isinstance(features, dict):
            raise _Reject(f"bad_type:{f.features}")
        tags = message.get(f.tags)
        if tags is None:
            tags = {}
        elif isinstance(tags, dict):
            tags = {str(k): v if isinstance(v, str) else class_key(v) for k, v in tags.items()}
        else:
            raise _Reject(f"bad_type:{f.tags}")
        return Prediction(
            prediction_id, model, version, timestamp, value, score, probabilities, features, tags
        )

    def _probabilities(self, value: object) -> dict[str, float]:
        name = self._fields.probabilities
        if not isinstance(value, dict) or not value:
            raise _Reject(f"bad_type:{name}")
        probabilities = {class_key(k): _finite(p, name) for k, p in value.items()}
        if any(p < 0.0 for p in probabilities.values()) or sum(probabilities.values()) <= 0.0:
            raise _Reject(f"bad_type:{name}")
        return probabilities

    def _label(self, raw: Raw) -> Label:
        f = self._fields
        message = _load(raw)
        prediction_id = self._id(message)
        timestamp = self._timestamp(message, raw)
        value = message.get(f.label)
        if value is None:
            raise _Reject(f"missing_field:{f.label}")
        key = _class_value(value, f.label)
        number: float | None = None
        if isinstance(value, int | float) and not isinstance(value, bool):
            number = float(value)
        return Label(prediction_id, timestamp, key, number)


Record = TypeVar("Record", Prediction, Label)


def _decode(
    batch: Iterable[Raw],
    fast: Callable[[Raw], Record | None],
    checked: Callable[[Raw], Record],
    topic: str,
) -> tuple[list[Record], list[Invalid]]:
    """Each message by the fast path, else by the checked path, which names what is wrong."""
    decoded: list[Record] = []
    invalid: list[Invalid] = []
    for raw in batch:
        record = fast(raw)
        if record is None:
            try:
                record = checked(raw)
            except _Reject as reason:
                invalid.append(Invalid(topic, str(reason), raw))
                continue
        decoded.append(record)
    return decoded, invalid
