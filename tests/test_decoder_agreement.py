"""The fast and the checked decoder agree on every message: valid, near-valid and hostile.

Whatever the fast path (msgspec) accepts, the checked path (json and explicit
checks) accepts as the same record; whatever it declines, the checked path
either decodes or names a reason. Neither ever raises. Limits are set small so
that generated messages cross every one of them.
"""

from __future__ import annotations

import json
import string
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from predwatch.config import Settings
from predwatch.events import Decoder, Raw, features_of
from predwatch.records import Label, Prediction
from predwatch.screening import Rejected
from predwatch.wire import FastDecoder

SMALL = {
    "max_message_bytes": 3000,
    "max_depth": 6,
    "max_id_length": 12,
    "max_string_length": 16,
    "max_features": 4,
    "max_tags": 3,
    "max_classes": 4,
    "max_abs_number": 1e6,
    "min_timestamp": 0,
    "max_timestamp": 4e9,
}
MODELS = {"b": {"task": "binary"}, "m": {"task": "multiclass"}, "r": {"task": "regression"}}
CONFIGS = {
    "small": Settings.model_validate({"models": MODELS, "limits": SMALL}),
    "default": Settings.model_validate({"models": MODELS}),
}
EXAMPLES = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])

edges = st.sampled_from([1e6, -1e6, 1e6 + 1, 10**6, 10**6 + 1, 1e15, 1e15 + 2, 0, -0.0, 4e9])
numbers = st.one_of(
    st.integers(-(10**7), 10**7),
    st.integers(-(10**400), 10**400),
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(-1e7, 1e7),
    edges,
)
short_text = st.text(string.ascii_letters + string.digits + 'é😀\\"', max_size=20)
texts = st.one_of(short_text, st.sampled_from(["", "\ud800", "a\udfffb", "x" * 17, "0", "1"]))
scalars = st.one_of(st.none(), st.booleans(), numbers, texts)
nested = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(texts, inner, max_size=3),
    max_leaves=8,
)


@st.composite
def iso_times(draw: st.DrawFn) -> str:
    """ISO 8601 times in the spellings producers use: either case, 0-12 digits of a second
    (some that round up to the next second), a zone as Z, an offset or none."""
    moment = datetime(2026, 11, 27, tzinfo=UTC) + timedelta(
        seconds=draw(st.floats(-2e9, 2e9, allow_nan=False))
    )
    text = moment.strftime("%Y-%m-%dT%H:%M:%S")
    digits = draw(st.integers(0, 12))
    if digits:
        text += "." + "".join(
            draw(st.lists(st.sampled_from("0123456789"), min_size=digits, max_size=digits))
        )
    elif draw(st.booleans()):
        text += draw(st.sampled_from([".9999995", ".9999994", ".0000005", ".99999999999"]))
    zone = draw(st.sampled_from(["Z", "z", "+01:00", "-05:30", "+0000", ""]))
    text += zone
    if draw(st.booleans()):
        text = text.lower()
    return text


ids = st.one_of(short_text, st.integers(-(10**20), 10**20), scalars, nested)
plain = st.text(string.ascii_letters + string.digits, min_size=1, max_size=8)
plain_scalars = st.one_of(
    st.none(), st.booleans(), st.floats(-1e5, 1e5), st.integers(-99, 99), plain
)
# Each field: (a valid value, anything at all). Most values drawn are valid, so that most
# messages reach the fast path and differ from a valid one in one or two places.
PREDICTION_FIELDS = {
    "prediction_id": (st.one_of(plain, st.integers(0, 10**6)), ids),
    "model": (st.sampled_from(list(MODELS)), scalars),
    "model_version": (st.one_of(st.sampled_from(["v1", "v2"]), st.integers(0, 9)), ids),
    "timestamp": (
        st.one_of(iso_times(), st.floats(0, 4e9), st.integers(0, 4 * 10**9)),
        st.one_of(iso_times(), numbers, texts, st.just("9999-12-31T23:59:59Z")),
    ),
    "prediction": (
        st.one_of(st.sampled_from([0, 1, "0", "1", "cat", True, 1.0, 2.5]), st.floats(-1e5, 1e5)),
        st.one_of(scalars, nested),
    ),
    "score": (st.floats(0, 1), st.one_of(numbers, texts)),
    "probabilities": (
        st.dictionaries(st.sampled_from(["0", "1", "cat"]), st.floats(0, 1), min_size=1),
        st.one_of(
            st.dictionaries(st.sampled_from(["0", "1", "cat", "x" * 20]), numbers, max_size=5),
            st.dictionaries(short_text, st.floats(0, 1), max_size=6),
            nested,
        ),
    ),
    "features": (
        st.dictionaries(plain, plain_scalars, max_size=4),
        st.one_of(
            st.dictionaries(short_text, scalars, max_size=6),
            st.dictionaries(texts, nested, max_size=3),
            scalars,
        ),
    ),
    "tags": (
        st.dictionaries(plain, plain, max_size=3),
        st.one_of(st.dictionaries(short_text, st.one_of(short_text, scalars), max_size=5), nested),
    ),
}
LABEL_FIELDS = {
    "prediction_id": PREDICTION_FIELDS["prediction_id"],
    "timestamp": PREDICTION_FIELDS["timestamp"],
    "label": PREDICTION_FIELDS["prediction"],
}


@st.composite
def messages(draw: st.DrawFn, fields: dict[str, Any]) -> Raw:
    """A message of mostly plausible fields, some missing, some extra, sometimes damaged."""
    message = {}
    for name, (valid, anything) in fields.items():
        chance = draw(st.integers(0, 19))
        if chance:  # else the field is missing
            message[name] = draw(anything if chance == 1 else valid)
    if draw(st.integers(0, 3)) == 0:
        message |= draw(st.dictionaries(short_text, nested, max_size=2))
    data = json.dumps(message).encode()
    damage = draw(st.integers(0, 15))
    if damage == 1:  # cut short
        data = data[: draw(st.integers(0, len(data)))]
    elif damage == 2:  # a stray byte
        at = draw(st.integers(0, len(data)))
        data = (
            data[:at] + draw(st.sampled_from([b"{", b"]", b'"', b"\\", b"\xff", b","])) + data[at:]
        )
    elif damage == 3:  # a repeated key: the last one counts
        name = draw(st.sampled_from(list(fields)))
        value = json.dumps(draw(st.one_of(*fields[name]))).encode()
        first = b"{" + json.dumps(name).encode() + b": " + value
        data = first + (b", " + data[1:] if len(data) > 2 else b"}")
    elif damage == 4:  # nested deeply somewhere
        depth = draw(st.integers(4, 12))
        data = data[:-1] + b', "deep": ' + b"[" * depth + b"]" * depth + b"}"
    elif damage == 5:  # a message of another shape altogether
        data = json.dumps(draw(nested)).encode()
    transport = draw(st.one_of(st.none(), st.floats(-1e3, 5e9)))
    if draw(st.booleans()):
        return Raw(data, transport)
    return Raw(data.decode("utf-8", "surrogateescape"), transport)


DECODERS = {name: (FastDecoder(s), Decoder(s)) for name, s in CONFIGS.items()}


def _agree(config: str, raw: Raw, kind: str) -> None:
    fast_decoder, decoder = DECODERS[config]
    fast = fast_decoder.prediction(raw) if kind == "prediction" else fast_decoder.label(raw)
    checked: Prediction | Label | None
    try:
        checked = (
            decoder.checked_prediction(raw) if kind == "prediction" else decoder.checked_label(raw)
        )
        reason = None
    except Rejected as rejected:
        checked, reason = None, str(rejected)
    if fast is not None:
        assert reason is None, f"the fast path accepted what the checked path refuses: {reason}"
        assert checked is not None
        assert _comparable(fast) == _comparable(checked)
    decode = decoder.predictions if kind == "prediction" else decoder.labels
    records, invalid = decode([raw])
    assert len(records) + len(invalid) == 1  # exactly one outcome
    if records:
        assert checked is not None and _comparable(records[0]) == _comparable(checked)
    else:
        assert invalid[0].reason == reason


def _comparable(record: Prediction | Label) -> tuple[Any, ...]:
    if isinstance(record, Prediction):
        return (*record._replace(features=None), features_of(record))
    return tuple(record)


@pytest.mark.parametrize("config", list(CONFIGS))
@EXAMPLES
@given(raw=messages(PREDICTION_FIELDS))
def test_decoders_agree_on_predictions(config: str, raw: Raw) -> None:
    _agree(config, raw, "prediction")


@pytest.mark.parametrize("config", list(CONFIGS))
@EXAMPLES
@given(raw=messages(LABEL_FIELDS))
def test_decoders_agree_on_labels(config: str, raw: Raw) -> None:
    _agree(config, raw, "label")


@pytest.mark.parametrize(
    "stamp",
    [
        "2026-11-27t04:00:00z",  # lower case, as RFC 3339 allows
        "2026-11-27T04:00:00.1234567Z",  # seven digits of a second
        "2026-11-27T04:00:00.123456789+01:00",
        "2026-11-27T23:59:59.9999995Z",  # rounds up to the next day
        "9999-12-31T23:59:59.9999999Z",  # would round past the last year
        "2026-11-27T04:00:00." + "1" * 60 + "Z",
    ],
)
def test_timestamps_the_decoders_once_read_differently(stamp: str) -> None:
    for config in CONFIGS:
        message = {"prediction_id": "a", "model": "b", "timestamp": stamp, "prediction": 1}
        _agree(config, Raw(json.dumps(message).encode()), "prediction")
    decoder = Decoder(CONFIGS["default"])
    records, _ = decoder.labels(
        [Raw(b'{"prediction_id": "a", "label": 1, "timestamp": "2026-11-27t04:00:00.1234567z"}')]
    )
    expected = datetime(2026, 11, 27, 4, 0, 0, 123457, tzinfo=UTC).timestamp()  # half up
    assert [r.timestamp for r in records] == [expected]
