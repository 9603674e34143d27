"""The records that cross the core's boundaries: raw messages, predictions, labels, rejects.

>>> p = Prediction("a1", "fraud", "v3", 10.0, "1", 0.8, None, b'{"amount": 12.5}', {})
>>> features_of(p)
{'amount': 12.5}
"""

from __future__ import annotations

from typing import Any, NamedTuple

import msgspec

UNVERSIONED = "unversioned"


class Raw(NamedTuple):
    """One message as a source hands it over.

    ``timestamp`` is the transport's own time (a Kafka record timestamp, epoch
    seconds), used when the message carries none.
    """

    value: bytes | str
    timestamp: float | None = None
    offset: int | None = None


class Prediction(NamedTuple):
    """A decoded prediction. ``value`` is a class key (classification) or a float (regression)."""

    id: str
    model: str
    version: str
    timestamp: float
    value: str | float
    score: float | None
    probabilities: dict[str, float] | None
    features: dict[str, Any] | bytes | msgspec.Raw  # raw JSON: see ``features_of``
    tags: dict[str, str]


class Label(NamedTuple):
    """A decoded ground-truth label. ``number`` is the label as a float where it is numeric."""

    id: str
    timestamp: float
    value: str
    number: float | None


class Invalid(NamedTuple):
    """A message that could not be used, and why."""

    topic: str
    reason: str
    raw: Raw


def features_of(prediction: Prediction) -> dict[str, Any]:
    """A prediction's features as a dict (the fast decoder keeps them as raw JSON until asked)."""
    features = prediction.features
    if isinstance(features, dict):
        return features
    decoded = msgspec.json.decode(features)
    return decoded if isinstance(decoded, dict) else {}
