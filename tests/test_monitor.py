"""The monitor as a whole: every event ends in exactly one outcome, and snapshots round-trip."""

from __future__ import annotations

import json
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from reports import flat

from predwatch.config import Settings
from predwatch.events import Raw
from predwatch.monitor import Monitor

SETTINGS = Settings.model_validate(
    {
        "models": {"fraud": {"task": "binary"}, "price": {"task": "regression"}},
        "join": {"label_timeout": 100, "grace": 10, "idle_timeout": 30, "expired_id_memory": 5},
        "metrics": {
            "windows": [{"name": "last_5", "events": 5}, {"name": "t", "duration": 50}],
            "tags": ["region"],
            "max_tag_values": 2,
        },
    }
)

ids = st.sampled_from([f"id{i}" for i in range(12)])
times = st.integers(0, 400)
prediction = st.fixed_dictionaries(
    {
        "prediction_id": ids,
        "model": st.sampled_from(["fraud", "price", "unknown"]),
        "timestamp": times,
        "prediction": st.sampled_from([0, 1, 2.5]),
        "score": st.sampled_from([0.1, 0.7, None]),
        "tags": st.fixed_dictionaries({"region": st.sampled_from(["eu", "us", "br"])}),
    }
)
label = st.fixed_dictionaries(
    {"prediction_id": ids, "timestamp": times, "label": st.sampled_from([0, 1, "x", 3.5])}
)
malformed = st.sampled_from([b"{", b"[]", b'{"model": "fraud"}', b'{"prediction_id": "z"}'])


def message(draw_value: object) -> Raw:
    if isinstance(draw_value, bytes):
        return Raw(draw_value)
    return Raw(json.dumps(draw_value).encode())


batch = st.tuples(
    st.lists(st.one_of(prediction, malformed), max_size=6),
    st.lists(st.one_of(label, malformed), max_size=6),
    st.integers(0, 60),  # processing time passing before this batch
    st.integers(0, 2),  # partition
)


def assert_invariants(monitor: Monitor) -> None:
    c = monitor.counts
    assert c.predictions == (
        c.matched
        + c.unlabelled
        + c.pending_predictions
        + c.duplicate_predictions
        + c.late_predictions
        + c.evicted
    )
    assert c.labels == c.matched + c.orphan_labels + c.late_labels + c.duplicate_labels + (
        c.pending_labels
    )


@settings(max_examples=150, deadline=None)
@given(st.lists(batch, max_size=25))
def test_every_event_has_one_outcome(batches: list) -> None:
    monitor = Monitor(SETTINGS)
    now = 0.0
    sent = 0
    for predictions, labels, pause, partition in batches:
        now += pause
        monitor.process(
            partition, [message(x) for x in predictions], [message(x) for x in labels], now
        )
        sent += len(predictions) + len(labels)
        assert_invariants(monitor)
        c = monitor.counts
        assert c.predictions + c.labels + c.invalid == sent
    # Long after the end every input is idle: all that waited has expired.
    monitor.advance(now + 10_000)
    assert_invariants(monitor)
    assert monitor.counts.pending_predictions == 0
    assert monitor.counts.pending_labels == 0


@settings(max_examples=60, deadline=None)
@given(st.lists(batch, min_size=2, max_size=16), st.data())
def test_snapshot_round_trip(batches: list, data: st.DataObject) -> None:
    cut = data.draw(st.integers(0, len(batches)))
    straight = Monitor(SETTINGS)
    resumed = Monitor(SETTINGS)
    now = 0.0
    for i, (predictions, labels, pause, partition) in enumerate(batches):
        now += pause
        if i == cut:
            resumed = Monitor.restore(SETTINGS, resumed.snapshot())
        for monitor in (straight, resumed):
            monitor.process(
                partition, [message(x) for x in predictions], [message(x) for x in labels], now
            )
    assert resumed.summary() == straight.summary()
    assert resumed.model_counts == straight.model_counts
    assert resumed.invalid_reasons == straight.invalid_reasons


def test_snapshot_keeps_pending_state() -> None:
    monitor = Monitor(SETTINGS)
    pred = {"prediction_id": "a", "model": "fraud", "timestamp": 0, "prediction": 1}
    monitor.process(0, [message(pred)], [], 0.0)
    restored = Monitor.restore(SETTINGS, monitor.snapshot())
    restored.process(0, [], [message({"prediction_id": "a", "timestamp": 5, "label": 1})], 1.0)
    assert restored.counts.matched == 1
    assert monitor.counts.matched == 0  # the original is untouched


def test_invalid_reasons_are_counted_by_topic() -> None:
    monitor = Monitor(SETTINGS)
    bad = [
        Raw(b"nope"),
        message({"prediction_id": "a", "model": "spam", "timestamp": 0, "prediction": 1}),
        message(
            {"prediction_id": "b", "model": "fraud", "timestamp": "yesterday", "prediction": 1}
        ),
        message({"prediction_id": "c", "model": "price", "timestamp": 0, "prediction": "high"}),
        Raw(b'{"prediction_id": "d", "model": "price", "timestamp": 0, "prediction": NaN}'),
        message({"prediction_id": "e", "model": "fraud", "timestamp": 0}),
    ]
    changes = monitor.process(0, bad, [message({"prediction_id": "a", "label": 1})], 0.0)
    assert dict(monitor.invalid_reasons) == {
        ("predictions", "not_json"): 1,
        ("predictions", "unknown_model"): 1,
        ("predictions", "bad_timestamp"): 1,
        ("predictions", "bad_type:prediction"): 1,
        ("predictions", "non_finite:prediction"): 1,
        ("predictions", "missing_field:prediction"): 1,
        ("labels", "missing_field:timestamp"): 1,
    }
    assert len(changes.invalid) == 7
    assert changes.invalid[0].raw == Raw(b"nope")  # kept whole for a dead-letter topic


def test_batch_size_does_not_change_results() -> None:
    # Without idle advancement (a long idle timeout) results depend on event time only.
    config = SETTINGS.model_dump()
    config["join"]["idle_timeout"] = 1e9
    rng = random.Random(7)
    events = []
    for i in range(300):
        t = rng.uniform(0, 1000)
        events.append(
            (
                "p",
                {
                    "prediction_id": str(i),
                    "model": "fraud",
                    "timestamp": t,
                    "prediction": rng.randint(0, 1),
                    "score": rng.random(),
                },
            )
        )
        if rng.random() < 0.8:
            events.append(
                (
                    "l",
                    {
                        "prediction_id": str(i),
                        "timestamp": t + rng.uniform(0, 50),
                        "label": rng.randint(0, 1),
                    },
                )
            )
    events.sort(key=lambda e: e[1]["timestamp"])
    summaries = []
    for size in (1, 7, 1000):
        monitor = Monitor(Settings.model_validate(config))
        for start in range(0, len(events), size):
            chunk = events[start : start + size]
            now = max(e[1]["timestamp"] for e in chunk)
            monitor.process(
                0,
                [message(e) for k, e in chunk if k == "p"],
                [message(e) for k, e in chunk if k == "l"],
                now,
            )
        summaries.append(monitor.summary())
    # Sums added in another grouping differ in the last bits only.
    for other in summaries[1:]:
        assert_close(summaries[0], other)


def assert_close(expected: dict, actual: dict) -> None:
    """Equal documents, floats to 1e-12 relative (sums added in another grouping)."""
    a, b = flat(expected), flat(actual)
    assert a.keys() == b.keys()
    for key, value in a.items():
        if isinstance(value, float):
            assert b[key] == pytest.approx(value, rel=1e-12), key
        else:
            assert b[key] == value, key
