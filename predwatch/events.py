"""Prediction and label records, and their decoding from JSON messages in batches.

Decoding never raises on bad input: a message that cannot be used becomes an
``Invalid`` with a reason from a short, fixed vocabulary, so it can be counted
and sent to a dead-letter topic. Reasons name configured fields only, never
text from the message:

- ``not_json``, ``not_object``, ``bad_unicode`` (a lone surrogate such as ``\\ud800``);
- ``missing_field:<name>``, ``bad_type:<name>``, ``non_finite:<name>``, ``bad_timestamp``,
  ``unknown_model``;
- over a limit of the ``limits`` settings: ``too_large``, ``too_deep``,
  ``too_long:<name>``, ``too_many:<name>``, ``out_of_range:<name>``, and, with a
  processing clock, ``future_timestamp`` and ``too_old``;
- ``processing_error``: decoding failed in a way nobody foresaw (logged, never raised).

>>> from predwatch.config import Settings
>>> decoder = Decoder(Settings.model_validate({"models": {"fraud": {"task": "binary"}}}))
>>> ok, bad = decoder.predictions([
...     Raw(b'{"prediction_id": "a", "model": "fraud", "timestamp": 10, "prediction": 1}'),
...     Raw(b'{"prediction_id": "b", "model": "spam", "timestamp": 10, "prediction": 1}'),
...     Raw(b'not json'),
...     Raw(b'{"prediction_id": "c", "model": "fraud", "timestamp": 10, "prediction": 1'
...         + b'0' * 400 + b'}'),
...     Raw(b'{"prediction_id": "d", "model": "fraud", "timestamp": 9e9, "prediction": 1}'),
... ])
>>> [(p.id, p.model, p.value) for p in ok], [b.reason for b in bad]
([('a', 'fraud', '1')], ['unknown_model', 'not_json', 'out_of_range:prediction', \
'out_of_range:timestamp'])
>>> ok, bad = decoder.labels([Raw(b'{"prediction_id": "a", "label": 1}', timestamp=1e9)], now=9e8)
>>> ok, [b.reason for b in bad]
([], ['future_timestamp'])
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from predwatch.config import Settings, class_key
from predwatch.records import UNVERSIONED, Invalid, Label, Prediction, Raw, features_of
from predwatch.screening import (
    Rejected,
    Window,
    check_shape,
    event_time,
    may_hold_lone_surrogate,
    message_bytes,
    parse_timestamp,
)
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

log = logging.getLogger(__name__)
PROCESSING_ERROR = "processing_error"
Record = TypeVar("Record", Prediction, Label)


class Decoder:
    """Turns raw messages into records, batch by batch, according to the settings.

    Each message goes through ``FastDecoder`` first; what it declines is decoded
    by the checked path here, which accepts the same messages more slowly and
    names the reason for each one it refuses. ``now`` is the processing clock
    (epoch seconds) for the window of accepted event times; without it, only
    the static limits apply.
    """

    def __init__(self, settings: Settings) -> None:
        self._fast = FastDecoder(settings)
        self._fields = settings.fields
        self._limits = settings.limits
        self._regression = {
            name: model.task == "regression" for name, model in settings.models.items()
        }
        self._errors = 0

    def predictions(
        self, batch: Iterable[Raw], now: float | None = None
    ) -> tuple[list[Prediction], list[Invalid]]:
        """Decode prediction messages; the second list holds what could not be used."""
        return self._decode(batch, self._fast.prediction, self._prediction, "predictions", now)

    def labels(
        self, batch: Iterable[Raw], now: float | None = None
    ) -> tuple[list[Label], list[Invalid]]:
        """Decode label messages; the second list holds what could not be used."""
        return self._decode(batch, self._fast.label, self._label, "labels", now)

    def checked_prediction(self, raw: Raw) -> Prediction:
        """The checked path alone (for tests): a record, or ``Rejected`` naming the reason."""
        return self._prediction(raw)

    def checked_label(self, raw: Raw) -> Label:
        """The checked path alone (for tests): a record, or ``Rejected`` naming the reason."""
        return self._label(raw)

    def _decode(
        self,
        batch: Iterable[Raw],
        fast: Callable[[Raw], Record | None],
        checked: Callable[[Raw], Record],
        topic: str,
        now: float | None,
    ) -> tuple[list[Record], list[Invalid]]:
        """Each message by the fast path, else by the checked path, which names what is wrong;
        then the event-time window."""
        window = Window(self._limits, now)
        lower, upper = window.lower, window.upper
        decoded: list[Record] = []
        invalid: list[Invalid] = []
        for raw in batch:
            try:
                record = fast(raw)
                if record is None:
                    record = checked(raw)
            except Rejected as rejected:
                invalid.append(Invalid(topic, str(rejected), raw))
                continue
            except Exception:  # isolate the one message; the batch goes on
                self._failed(topic)
                invalid.append(Invalid(topic, PROCESSING_ERROR, raw))
                continue
            if lower <= record.timestamp <= upper:
                decoded.append(record)
            else:
                outside = window.reason(record.timestamp) or "out_of_range:timestamp"
                invalid.append(Invalid(topic, outside, raw))
        return decoded, invalid

    def _failed(self, topic: str) -> None:
        """Log an unforeseen decoding failure, sparsely: the 1st, 2nd, 4th, 8th ... of them."""
        self._errors += 1
        if self._errors & (self._errors - 1) == 0:
            log.error(
                "decoding a message of %s failed (%d so far); it is counted invalid as %s",
                topic,
                self._errors,
                PROCESSING_ERROR,
                exc_info=True,
            )

    # The checked path: each check raises Rejected with the reason.

    def _load(self, raw: Raw) -> dict[str, Any]:
        data = message_bytes(raw.value)
        check_shape(data, self._limits)  # before parsing, which recurses
        try:
            text = data.decode("utf-8")
            message = json.loads(text)
        except ValueError:  # UnicodeDecodeError is a ValueError
            raise Rejected("not_json") from None
        if not isinstance(message, dict):
            raise Rejected("not_object")
        if may_hold_lone_surrogate(text) and not _encodable(message):
            raise Rejected("bad_unicode")
        return message

    def _id(self, message: dict[str, Any]) -> str:
        name = self._fields.prediction_id
        value = message.get(name)
        if value is None:
            raise Rejected(f"missing_field:{name}")
        if isinstance(value, int) and not isinstance(value, bool):
            value = str(value)
        elif not isinstance(value, str) or not value:
            raise Rejected(f"bad_type:{name}")
        if len(value) > self._limits.max_id_length:
            raise Rejected(f"too_long:{name}")
        return value

    def _text(self, value: str, name: str) -> str:
        if len(value) > self._limits.max_string_length:
            raise Rejected(f"too_long:{name}")
        return value

    def _number(self, value: object, name: str) -> float:
        """A finite number within ``limits.max_abs_number``; compared before any conversion,
        so a 400-digit integer is out of range rather than an overflow."""
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise Rejected(f"bad_type:{name}")
        if isinstance(value, float) and not math.isfinite(value):
            raise Rejected(f"non_finite:{name}")
        bound = self._limits.max_abs_number
        if not -bound <= value <= bound:
            raise Rejected(f"out_of_range:{name}")
        return float(value)

    def _class_value(self, value: object, name: str) -> str:
        if isinstance(value, str):
            return self._text(value, name)
        if isinstance(value, bool):
            return class_key(value)
        if isinstance(value, int | float):
            self._number(value, name)
            return class_key(value)
        raise Rejected(f"bad_type:{name}")

    def _prediction(self, raw: Raw) -> Prediction:
        f = self._fields
        message = self._load(raw)
        prediction_id = self._id(message)
        model = message.get(f.model)
        if model is None:
            raise Rejected(f"missing_field:{f.model}")
        if not isinstance(model, str):
            raise Rejected(f"bad_type:{f.model}")
        regression = self._regression.get(model)
        if regression is None:
            raise Rejected("unknown_model")
        version = self._version(message.get(f.model_version))
        timestamp = event_time(message.get(f.timestamp), raw.timestamp, f.timestamp, self._limits)
        if f.prediction not in message or message[f.prediction] is None:
            raise Rejected(f"missing_field:{f.prediction}")
        value: str | float
        if regression:
            value = self._number(message[f.prediction], f.prediction)
        else:
            value = self._class_value(message[f.prediction], f.prediction)
        score = message.get(f.score)
        if score is not None:
            score = self._number(score, f.score)
            if not 0.0 <= score <= 1.0:
                raise Rejected(f"out_of_range:{f.score}")  # a probability lies in [0, 1]
        probabilities = message.get(f.probabilities)
        if probabilities is not None:
            probabilities = self._probabilities(probabilities)
        features = self._features(message.get(f.features))
        tags = self._tags(message.get(f.tags))
        return Prediction(
            prediction_id, model, version, timestamp, value, score, probabilities, features, tags
        )

    def _version(self, value: object) -> str:
        name = self._fields.model_version
        if value is None:
            return UNVERSIONED
        if isinstance(value, int | float) and not isinstance(value, bool):
            self._number(value, name)
            return self._text(str(value), name)
        if not isinstance(value, str) or not value:
            raise Rejected(f"bad_type:{name}")
        return self._text(value, name)

    def _probabilities(self, value: object) -> dict[str, float]:
        name = self._fields.probabilities
        if not isinstance(value, dict) or not value:
            raise Rejected(f"bad_type:{name}")
        if len(value) > self._limits.max_classes:
            raise Rejected(f"too_many:{name}")
        probabilities = {
            self._text(class_key(k), name): self._number(p, name) for k, p in value.items()
        }
        if any(p < 0.0 for p in probabilities.values()) or sum(probabilities.values()) <= 0.0:
            raise Rejected(f"bad_type:{name}")
        return probabilities

    def _features(self, value: object) -> dict[str, Any]:
        """Features as sent, once every key, string and finite number in them is within the
        limits. NaN and infinity stay: they are a data-quality issue of one feature, counted
        downstream, not a reason to drop the event."""
        name = self._fields.features
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise Rejected(f"bad_type:{name}")
        if len(value) > self._limits.max_features:
            raise Rejected(f"too_many:{name}")
        self._check_values(value, name)
        return value

    def _check_values(self, value: object, name: str) -> None:
        """Strings and numbers anywhere inside ``value`` (bounded in depth by ``check_shape``)."""
        if isinstance(value, str):
            self._text(value, name)
        elif isinstance(value, dict):
            for key, item in value.items():
                self._text(key, name)
                self._check_values(item, name)
        elif isinstance(value, list):
            for item in value:
                self._check_values(item, name)
        elif _bounded(value):
            self._number(value, name)

    def _tags(self, value: object) -> dict[str, str]:
        name = self._fields.tags
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise Rejected(f"bad_type:{name}")
        if len(value) > self._limits.max_tags:
            raise Rejected(f"too_many:{name}")
        tags: dict[str, str] = {}
        for key, item in value.items():
            if isinstance(item, dict | list):
                raise Rejected(f"bad_type:{name}")
            if isinstance(item, int | float) and not isinstance(item, bool):
                self._number(item, name)
            text = item if isinstance(item, str) else class_key(item)
            tags[self._text(key, name)] = self._text(text, name)
        return tags

    def _label(self, raw: Raw) -> Label:
        f = self._fields
        message = self._load(raw)
        prediction_id = self._id(message)
        timestamp = event_time(message.get(f.timestamp), raw.timestamp, f.timestamp, self._limits)
        value = message.get(f.label)
        if value is None:
            raise Rejected(f"missing_field:{f.label}")
        key = self._class_value(value, f.label)
        number: float | None = None
        if isinstance(value, int | float) and not isinstance(value, bool):
            number = float(value)
        return Label(prediction_id, timestamp, key, number)


def _bounded(value: object) -> bool:
    """True for a number the absolute bound applies to: any integer, a finite float (NaN and
    infinity in features are a data-quality issue, kept)."""
    if isinstance(value, bool):
        return False
    return isinstance(value, int) or (isinstance(value, float) and math.isfinite(value))


def _encodable(value: object) -> bool:
    """False when a string anywhere in ``value`` holds a lone surrogate (not valid Unicode)."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return False
        return True
    if isinstance(value, dict):
        return all(_encodable(k) and _encodable(v) for k, v in value.items())
    if isinstance(value, list):
        return all(_encodable(item) for item in value)
    return True
