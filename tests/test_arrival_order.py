"""Arrival order against a real broker: one topic read far ahead of the other changes nothing.

The same events are produced to 4-partition topics in two ways: all labels are
produced and consumed before any prediction, and the reverse. Either way the
service must end with the counts that ``replay`` of the same events gives from
files, and those must be the counts of the rule itself (the offline reference
of tests/test_join_determinism.py). Many labels come after ``label_timeout``:
a join that decides by what is still pending when a label is read would match
them when the labels are read first.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaProducer
from test_join_determinism import reference  # tests/ is on the path, as for conftest

from predwatch.config import Settings
from predwatch.consumer.files import replay
from predwatch.demo.broker import EmbeddedBroker
from predwatch.demo.synthetic import generate
from predwatch.monitor import JoinCounts, Monitor
from predwatch.records import Raw
from predwatch.service import Service

PARTITIONS = 4
TIMEOUT, GRACE = 600.0, 60.0
FAR = 2 * 86_400.0  # the closing events, two days on: every deadline is passed


def settings_for(broker: EmbeddedBroker, predictions: str, labels: str, group: str) -> Settings:
    return Settings.model_validate(
        {
            "models": {"fraud": {"task": "binary"}},
            # Idle inputs must not advance with the clock during the test (or in replay).
            "join": {"label_timeout": TIMEOUT, "grace": GRACE, "idle_timeout": "1d"},
            "metrics": {"windows": []},
            "drift": {"enabled": False},
            "kafka": {
                "bootstrap_servers": broker.bootstrap_servers,
                "group_id": group,
                "predictions_topic": predictions,
                "labels_topic": labels,
                "session_timeout": "6s",
                "max_poll_records": 500,
            },
            "http": {"port": 0},
        }
    )


Event = dict[str, Any]


def events() -> tuple[list[Event], list[Event], list[tuple[Event, Event]]]:
    """Predictions and labels in topic order (labels by time), and one closing pair per
    partition."""
    predictions, labels = generate(
        2000, seed=5, rate=0.5, label_delay=300.0, jitter=2.0, timestamps="epoch"
    )
    unlabelled = [
        p for p in predictions if p["prediction_id"] not in {x["prediction_id"] for x in labels}
    ]
    # Labels stamped more than grace before their prediction, and labels of no prediction.
    labels += [
        {"prediction_id": p["prediction_id"], "timestamp": p["timestamp"] - 3 * GRACE, "label": 1}
        for p in unlabelled[:6]
    ]
    start = predictions[0]["timestamp"]
    labels += [
        {"prediction_id": f"ghost-{i}", "timestamp": start + 100 * i, "label": 0} for i in range(5)
    ]
    labels.sort(key=lambda x: x["timestamp"])
    end = max(x["timestamp"] for x in predictions + labels) + FAR
    closing = [
        (
            {"prediction_id": f"close-{q}", "model": "fraud", "timestamp": end, "prediction": 1},
            {"prediction_id": f"close-{q}", "timestamp": end, "label": 1},
        )
        for q in range(PARTITIONS)
    ]
    return predictions, labels, closing


def expected_counts(settings: Settings, tmp_path: Path) -> dict[str, int]:
    """``predwatch replay`` of the same events, checked against the rule's reference."""
    predictions, labels, closing = events()
    all_predictions = predictions + [p for p, _ in closing]
    all_labels = labels + [x for _, x in closing]
    p_path, l_path = tmp_path / "p.jsonl", tmp_path / "l.jsonl"
    p_path.write_text("".join(json.dumps(p) + "\n" for p in all_predictions))
    l_path.write_text("".join(json.dumps(x) + "\n" for x in all_labels))
    counts = replay(settings, p_path, l_path).counts.as_dict()

    decoder = Monitor(settings).decoder
    decoded_p, _ = decoder.predictions([Raw(json.dumps(p).encode()) for p in all_predictions])
    decoded_l, _ = decoder.labels([Raw(json.dumps(x).encode()) for x in all_labels])
    ruled = Counter(
        (kind, o) for (kind, _), o in reference(decoded_p, decoded_l, TIMEOUT, GRACE).items()
    )
    assert counts["matched"] == ruled["p", "matched"] == ruled["l", "matched"]
    assert counts["late_labels"] == ruled["l", "late"] > 50
    assert counts["orphan_labels"] == ruled["l", "orphan"] == 11
    assert counts["unlabelled"] == ruled["p", "unlabelled"] > 100
    assert counts["pending_predictions"] == counts["pending_labels"] == 0
    return counts


def produce(
    broker: EmbeddedBroker, topic: str, messages: list[Event], closing: list[Event]
) -> None:
    """Keyed by prediction id (Kafka's partitioner), then one closing event per partition."""
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap_servers, linger_ms=20)
    for message in messages:
        producer.send(
            topic, key=message["prediction_id"].encode(), value=json.dumps(message).encode()
        )
    for q, message in enumerate(closing):
        producer.send(topic, key=b"close", value=json.dumps(message).encode(), partition=q)
    producer.flush(30)
    producer.close()


def counts_of(service: Service) -> JoinCounts:
    with service.lock:
        return JoinCounts(**service.monitor.counts.as_dict())


def wait_for(service: Service, done: Callable[[JoinCounts], bool], what: str) -> JoinCounts:
    deadline = time.monotonic() + 120
    while True:
        counts = counts_of(service)
        if done(counts):
            return counts
        assert time.monotonic() < deadline, f"the service did not read {what}: {counts}"
        time.sleep(0.3)


@pytest.fixture
def running_service() -> Iterator[Callable[[Settings], Service]]:
    started: list[tuple[threading.Event, threading.Thread]] = []

    def start(settings: Settings) -> Service:
        service = Service(settings)
        stop = threading.Event()
        thread = threading.Thread(target=service.run, args=(stop,), daemon=True)
        thread.start()
        started.append((stop, thread))
        return service

    yield start
    for stop, thread in started:
        stop.set()
        thread.join(15)
        assert not thread.is_alive(), "the service did not stop within 15 s"


@pytest.mark.parametrize("first", ["labels", "predictions"])
def test_one_topic_read_far_ahead_gives_the_counts_of_replay(
    first: str,
    kafka_broker: EmbeddedBroker,
    make_topic: Callable[..., str],
    unique_group: Callable[[], str],
    tmp_path: Path,
    running_service: Callable[[Settings], Service],
) -> None:
    topics = {"predictions": make_topic("p", PARTITIONS), "labels": make_topic("l", PARTITIONS)}
    settings = settings_for(kafka_broker, topics["predictions"], topics["labels"], unique_group())
    expected = expected_counts(settings, tmp_path)
    predictions, labels, closing = events()
    streams = {
        "predictions": (predictions, [p for p, _ in closing]),
        "labels": (labels, [x for _, x in closing]),
    }
    second = "predictions" if first == "labels" else "labels"
    service = running_service(settings)

    produce(kafka_broker, topics[first], *streams[first])
    read = len(streams[first][0]) + PARTITIONS
    # The whole first topic is read before the second has a single event.
    wait_for(service, lambda c: getattr(c, first) == read, f"the {first} topic")
    produce(kafka_broker, topics[second], *streams[second])
    counts = wait_for(
        service,
        lambda c: (
            c.predictions == expected["predictions"]
            and c.labels == expected["labels"]
            and c.pending_predictions == c.pending_labels == 0
        ),
        "both topics",
    )
    assert counts.as_dict() == expected
