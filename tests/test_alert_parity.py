"""Replay and the service fire the same alerts about the same stream, and the annotations name
where the model fails: ``{{top_segments}}`` is filled from the report's tick, whoever reads."""

from __future__ import annotations

import json
import random
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from alertmanager_fixture import wait_for
from kafka import KafkaProducer

from predwatch.config import settings_from_mapping
from predwatch.consumer.files import replay
from predwatch.demo.broker import EmbeddedBroker
from predwatch.demo.synthetic import generate, write_jsonl
from predwatch.events import parse_timestamp
from predwatch.service import Service

RULE = {
    "name": "FraudAccuracyLow",
    "model": "fraud",
    "version": "v3",
    "metric": "accuracy",
    "window": "last_1000",
    "below": 0.95,  # about 0.93: 4.6% of the traffic falls in the failing segment
    "for": "5m",  # long enough for the error tree to have found the segment
    "min_samples": 500,
    "annotations": {
        "summary": "Accuracy of {{model}} {{version}} is below {{threshold}}",
        "segments": "It fails most in: {{top_segments}}",
    },
}


def settings_for(**kafka: Any) -> Any:
    return settings_from_mapping(
        {
            "models": {"fraud": {"task": "binary"}},
            "join": {"label_timeout": "60s", "grace": "5s", "idle_timeout": "2s"},
            "metrics": {"windows": [{"name": "last_1000", "events": 1000}]},
            "diagnostics": {"sample_rate": 0.3},
            "alerts": {"evaluate_every": "10s", "rules": [RULE]},
            **({"kafka": kafka, "http": {"port": 0}} if kafka else {}),
        }
    )


def inside(prediction: dict[str, Any]) -> bool:
    features = prediction["features"]
    return features["country"] == "BR" and features["amount"] > 60


@pytest.fixture(scope="module")
def stream(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[Any], list[Any]]:
    """Fifteen minutes at 20 predictions/s, with 90% errors in one segment, 3% elsewhere."""
    rng = random.Random(11)
    predictions, labels = generate(18_000, seed=4, label_delay=5.0, unlabelled=0.0)
    truth = {label["prediction_id"]: label for label in labels}
    for p in predictions:
        wrong = rng.random() < (0.9 if inside(p) else 0.03)
        truth[p["prediction_id"]]["label"] = 1 - p["prediction"] if wrong else p["prediction"]
    return predictions, labels


def transitions_of(alerts: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    return [(a["rule"], a["labels"], a["from_state"], a["to_state"]) for a in alerts]


def test_replay_fills_top_segments_in_the_annotation(
    stream: tuple[list[Any], list[Any]], tmp_path: Path
) -> None:
    summary = replay(settings_for(), *write_jsonl(tmp_path, *stream)).summary()
    assert [t[2:] for t in transitions_of(summary["alerts"])] == [
        ("inactive", "pending"),
        ("pending", "firing"),
    ]
    firing = summary["alerts"][1]
    segments = firing["annotations"]["segments"]
    assert "{{" not in segments
    top = segments.removeprefix("It fails most in: ").split(";")[0]
    assert top.startswith("country = BR"), segments


def test_service_fires_what_replay_fires(
    stream: tuple[list[Any], list[Any]],
    tmp_path: Path,
    kafka_broker: EmbeddedBroker,
    make_topic: Callable[..., str],
    unique_group: Callable[[], str],
) -> None:
    predictions, labels = stream
    expected = replay(settings_for(), *write_jsonl(tmp_path, *stream)).summary()["alerts"]
    topics = make_topic("p", partitions=1), make_topic("l", partitions=1)
    producer = KafkaProducer(bootstrap_servers=kafka_broker.bootstrap_servers, linger_ms=20)
    for topic, events in zip(topics, (predictions, sorted_by_time(labels)), strict=True):
        for event in events:
            key = event["prediction_id"].encode()
            producer.send(topic, key=key, value=json.dumps(event).encode())
    producer.flush(60)
    producer.close(5)
    service = Service(
        settings_for(
            bootstrap_servers=kafka_broker.bootstrap_servers,
            group_id=unique_group(),
            predictions_topic=topics[0],
            labels_topic=topics[1],
            session_timeout="3s",
        )
    )
    stop = threading.Event()
    runner = threading.Thread(target=service.run, args=(stop,), daemon=True)
    runner.start()
    try:
        wait_for(lambda: service.monitor.counts.labels == len(labels), 120, "every label read")
        last_event = service.monitor.last_event_time
        wait_for(lambda: (service.monitor.ticked_at or 0) >= last_event, 60, "a tick after them")
        with service.lock:
            fired = [t.as_dict() for t in service.monitor.alert_log if t.at <= last_event]
    finally:
        stop.set()
        runner.join(30)
    assert transitions_of(fired) == transitions_of(expected), (
        [(t["at"], t["to_state"]) for t in fired],
        [(t["at"], t["to_state"]) for t in expected],
        last_event,
    )
    for got, want in zip(fired, expected, strict=True):
        assert got["annotations"]["summary"] == want["annotations"]["summary"]
        assert "{{" not in got["annotations"]["segments"]
    # When it fires (the tree has learned for minutes) both name the same failing segment;
    # thresholds the tree learned, and the figures at the tick, follow each one's batches.
    got_top = fired[-1]["annotations"]["segments"].split(";")[0]
    want_top = expected[-1]["annotations"]["segments"].split(";")[0]
    assert _features(got_top) == _features(want_top) == {"country"}, (got_top, want_top)
    assert "country = BR" in got_top


def sorted_by_time(events: list[Any]) -> list[Any]:
    return sorted(events, key=lambda e: parse_timestamp(e["timestamp"]))


def _features(rule: str) -> set[str]:
    """The features a segment's rule names (thresholds learned from the data may differ)."""
    return {word for word in ("country", "amount", "channel", "device") if word in rule}
