"""Input limits: each one hit gives its own reason, from both decoders, and never an exception."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

import pytest
from hostile import CONFIG, build

from predwatch.config import Settings, settings_from_mapping
from predwatch.events import Decoder, Raw
from predwatch.screening import depth

LIMITS = {
    "max_message_bytes": 1000,
    "max_depth": 4,
    "max_id_length": 8,
    "max_string_length": 10,
    "max_features": 3,
    "max_tags": 2,
    "max_classes": 3,
    "max_abs_number": 1000,
}
SETTINGS = Settings.model_validate(
    {"models": {"b": {"task": "binary"}, "r": {"task": "regression"}}, "limits": LIMITS}
)
BASE = {"prediction_id": "a", "model": "b", "timestamp": 100, "prediction": 1}


@dataclass
class Case:
    name: str
    change: dict[str, Any]
    reason: str | None  # None: accepted


CASES = [
    # Each limit exactly at its bound is accepted, one past it is refused.
    Case("size at limit", {"unknown": "z" * (1000 - len(json.dumps(BASE)) - 15)}, None),
    Case("size over", {"unknown": "z" * 1000}, "too_large"),
    Case("depth at limit", {"features": {"x": [[1]]}}, None),
    Case("depth over", {"features": {"x": [[[1]]]}}, "too_deep"),
    Case("brackets in strings are not depth", {"features": {"x": "[[[[[["}}, None),
    Case("id at limit", {"prediction_id": "i" * 8}, None),
    Case("id over", {"prediction_id": "i" * 9}, "too_long:prediction_id"),
    Case("integer id over", {"prediction_id": 123456789}, "too_long:prediction_id"),
    Case("version over", {"model_version": "v" * 11}, "too_long:model_version"),
    Case("class over", {"prediction": "c" * 11}, "too_long:prediction"),
    Case("features at limit", {"features": {"a": 1, "b": 2, "c": 3}}, None),
    Case("features over", {"features": {"a": 1, "b": 2, "c": 3, "d": 4}}, "too_many:features"),
    Case("feature key over", {"features": {"k" * 11: 1}}, "too_long:features"),
    Case("feature text over", {"features": {"k": "v" * 11}}, "too_long:features"),
    Case("feature number over", {"features": {"k": 1001}}, "out_of_range:features"),
    Case("nested feature number over", {"features": {"k": [-1001]}}, "out_of_range:features"),
    Case("tags over", {"tags": {"a": "1", "b": "2", "c": "3"}}, "too_many:tags"),
    Case("tag value over", {"tags": {"a": "v" * 11}}, "too_long:tags"),
    Case(
        "classes over",
        {"probabilities": {"0": 0.1, "1": 0.2, "2": 0.3, "3": 0.4}},
        "too_many:probabilities",
    ),
    Case("number at bound", {"model": "r", "prediction": -1000}, None),
    Case("number over", {"model": "r", "prediction": 1000.5}, "out_of_range:prediction"),
    Case("400 digits", {"model": "r", "prediction": 10**400}, "out_of_range:prediction"),
    Case("400-digit class", {"prediction": 10**400}, "out_of_range:prediction"),
    Case("400-digit score", {"score": 10**400}, "out_of_range:score"),
    Case("score over one", {"score": 1.01}, "out_of_range:score"),
    Case("400-digit probability", {"probabilities": {"1": 10**400}}, "out_of_range:probabilities"),
    Case("400-digit timestamp", {"timestamp": 10**400}, "out_of_range:timestamp"),
    Case("negative timestamp", {"timestamp": -1}, "out_of_range:timestamp"),
    Case("year 9999", {"timestamp": "9999-12-31T23:59:59Z"}, "out_of_range:timestamp"),
    Case("year 2099", {"timestamp": "2099-12-31t23:59:59z"}, None),
    Case("a lone surrogate", {"model_version": "\ud800"}, "bad_unicode"),
    Case("a surrogate pair", {"model_version": "\ud83d\ude00"}, None),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_each_limit_has_its_reason(case: Case) -> None:
    raw = Raw(json.dumps(BASE | case.change).encode())
    records, invalid = Decoder(SETTINGS).predictions([raw])
    assert [i.reason for i in invalid] == ([] if case.reason is None else [case.reason])
    assert len(records) == (case.reason is None)


def test_label_limits() -> None:
    decoder = Decoder(SETTINGS)
    labels = [
        {"prediction_id": "a", "timestamp": 1, "label": 10**400},
        {"prediction_id": "a", "timestamp": 1, "label": "l" * 11},
        {"prediction_id": "a" * 9, "timestamp": 1, "label": 1},
        {"prediction_id": "a", "timestamp": 1e308, "label": 1},
        {"prediction_id": "a", "timestamp": 6e17, "label": 1},
        {"prediction_id": "a", "timestamp": 1, "label": 1},
    ]
    records, invalid = decoder.labels(Raw(json.dumps(x).encode()) for x in labels)
    assert [i.reason for i in invalid] == [
        "out_of_range:label",
        "too_long:label",
        "too_long:prediction_id",
        "out_of_range:timestamp",
        "out_of_range:timestamp",
    ]
    assert [r.id for r in records] == ["a"]


@dataclass
class WindowCase:
    name: str
    at: float
    reason: str | None


NOW = 1_800_000_000.0
WINDOW_CASES = [
    WindowCase("now", NOW, None),
    WindowCase("skew at limit", NOW + 3600, None),
    WindowCase("beyond the skew", NOW + 3601, "future_timestamp"),
    WindowCase("age at limit", NOW - 86400, None),
    WindowCase("too old", NOW - 86401, "too_old"),
]


@pytest.mark.parametrize("case", WINDOW_CASES, ids=lambda c: c.name)
def test_event_time_window_around_the_processing_clock(case: WindowCase) -> None:
    settings = settings_from_mapping(
        {"models": {"b": {"task": "binary"}}, "limits": {"max_future_skew": "1h", "max_age": "1d"}}
    )
    decoder = Decoder(settings)
    message = Raw(json.dumps(BASE | {"model": "b", "timestamp": case.at}).encode())
    for now, expected in ((NOW, case.reason), (None, None)):  # no clock: no window
        _, invalid = decoder.predictions([message], now=now)
        assert [i.reason for i in invalid] == ([] if expected is None else [expected])
    transported = Raw(b'{"prediction_id": "a", "label": 1}', timestamp=case.at)  # Kafka's time
    _, invalid = decoder.labels([transported], now=NOW)
    assert [i.reason for i in invalid] == ([] if case.reason is None else [case.reason])


def test_the_hostile_corpus_gets_its_reasons() -> None:
    now = time.time()
    corpus = build(seed=3, valid=50, now=now)
    decoder = Decoder(Settings.model_validate(CONFIG))
    for hostile in corpus.hostile:
        if hostile.category == "label_out_of_task":
            continue  # a valid label until the join meets its prediction
        clock = now if hostile.where == "kafka" else None
        decode = decoder.predictions if hostile.topic == "predictions" else decoder.labels
        records, invalid = decode([Raw(hostile.value)], now=clock)
        assert not records, hostile
        assert [i.reason for i in invalid] == [hostile.reason], hostile.category


def test_a_decoder_defect_is_isolated_to_its_message(monkeypatch: pytest.MonkeyPatch) -> None:
    decoder = Decoder(SETTINGS)
    fast = decoder._fast.prediction

    def brittle(raw: Raw) -> Any:
        if b"poison" in bytes(raw.value):  # type: ignore[arg-type]
            raise ZeroDivisionError("a defect")
        return fast(raw)

    monkeypatch.setattr(decoder._fast, "prediction", brittle)
    messages = [BASE | {"prediction_id": x} for x in ("a", "poison", "b")]
    records, invalid = decoder.predictions(Raw(json.dumps(m).encode()) for m in messages)
    assert [r.id for r in records] == ["a", "b"]
    assert [i.reason for i in invalid] == ["processing_error"]


def test_depth_counts_brackets_outside_strings() -> None:
    assert depth(b'{"a": "\\"[[", "b": [{}]}') == 3  # an escaped quote does not end the string
    assert depth(b'["\\\\", [1]]') == 2  # an escaped backslash does not escape the quote
    assert depth(b"[" * 1_000_000 + b"]" * 1_000_000) == 1_000_000  # vectorised: no recursion
