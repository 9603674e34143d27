"""A generated stream on co-partitioned topics, produced in parts, for tests of ``predwatch run``
that stop, kill or scale it; and how its final /metrics are compared.

The stream's predictions and labels come in time order, with labels that never find their
prediction (ghosts) and repeated predictions, then a closing pair in every partition far
ahead in event time, so that every deadline passes and nothing stays pending.
"""

from __future__ import annotations

import json
import math
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kafka import KafkaProducer
from reports import Samples, total
from running import free_port, scrape, start, wait_for

from predwatch.config import Settings
from predwatch.consumer.files import replay
from predwatch.demo.broker import EmbeddedBroker
from predwatch.demo.synthetic import generate

FAR = 2 * 86_400.0  # closing events two days on: every deadline has passed
Events = list[dict[str, Any]]

COUNTS = (
    "predwatch_predictions_total",
    "predwatch_labels_total",
    "predwatch_joined_total",
    "predwatch_unlabelled_total",
    "predwatch_late_labels_total",
    "predwatch_orphan_labels_total",
    "predwatch_pending_predictions",
    "predwatch_pending_labels",
    "predwatch_duplicates_total",
)
QUALITY = {
    "accuracy": "predwatch_accuracy_ratio",
    "precision": "predwatch_precision_ratio",
    "recall": "predwatch_recall_ratio",
    "f1": "predwatch_f1_ratio",
    "roc_auc": "predwatch_roc_auc_ratio",
    "log_loss": "predwatch_log_loss",
    "brier": "predwatch_brier_score",
}


def config(
    broker: EmbeddedBroker,
    topics: tuple[str, str],
    group: str,
    port: int,
    state: dict[str, Any] | None,
    max_poll_records: int = 200,
) -> dict[str, Any]:
    """The settings of one ``predwatch run``: ``state`` its state section (a checkpoint every
    second unless it says otherwise), None for none."""
    return {
        "models": {"fraud": {"task": "binary"}},
        # Idle inputs must not advance with the clock (restarts take wall time).
        "join": {"label_timeout": 600, "grace": 60, "idle_timeout": "1d"},
        "kafka": {
            "bootstrap_servers": broker.bootstrap_servers,
            "group_id": group,
            "predictions_topic": topics[0],
            "labels_topic": topics[1],
            "session_timeout": "2s",
            "max_poll_records": max_poll_records,
        },
        "http": {"port": port},
        "state": {"checkpoint_every": "1s", **state} if state is not None else {},
    }


def stream(
    partitions: int, events: int, seed: int, ghosts: int, repeated: int = 0
) -> tuple[Events, Events]:
    """``events`` predictions with their labels (some late, some never), ``ghosts`` labels
    without prediction, the first ``repeated`` predictions after the hundredth sent twice,
    and a closing pair per partition."""
    predictions, labels = generate(
        events, seed=seed, rate=1.0, label_delay=120.0, jitter=2.0, timestamps="epoch"
    )
    start_time = predictions[0]["timestamp"]
    predictions += predictions[100 : 100 + repeated]
    labels += [
        {"prediction_id": f"ghost-{i}", "timestamp": start_time + 50 * i, "label": 1}
        for i in range(ghosts)
    ]
    predictions.sort(key=lambda x: x["timestamp"])
    labels.sort(key=lambda x: x["timestamp"])
    end = max(x["timestamp"] for x in predictions + labels) + FAR
    for q in range(partitions):
        predictions.append(
            {"prediction_id": f"close-{q}", "model": "fraud", "timestamp": end, "prediction": 1}
        )
        labels.append({"prediction_id": f"close-{q}", "timestamp": end, "label": 1})
    return predictions, labels


def send(producer: KafkaProducer, topic: str, messages: Events) -> None:
    """Keyed by prediction id (Kafka's partitioner: co-partitioned); a closing event to its
    own partition."""
    for message in messages:
        key = message["prediction_id"]
        partition = int(key.split("-")[1]) if key.startswith("close-") else None
        value = json.dumps(message).encode()
        producer.send(topic, key=key.encode(), value=value, partition=partition)


class Parts:
    """Produces a stream's predictions and labels to their topics a share at a time."""

    def __init__(self, bootstrap: str, topics: tuple[str, str], stream: tuple[Events, Events]):
        self.producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=5)
        self.topics, self.stream = topics, stream
        self.produced = [0, 0]  # predictions, labels sent so far

    def up_to(self, share: float) -> None:
        for i, (topic, messages) in enumerate(zip(self.topics, self.stream, strict=True)):
            upto = round(share * len(messages))
            send(self.producer, topic, messages[self.produced[i] : upto])
            self.produced[i] = upto
        self.producer.flush(30)

    def close(self) -> None:
        self.producer.close()


def replayed(settings: Settings, stream: tuple[Events, Events], tmp_path: Path) -> dict[str, Any]:
    """``predwatch replay``'s summary of the same events."""
    p_path, l_path = tmp_path / "p.jsonl", tmp_path / "l.jsonl"
    p_path.write_text("".join(json.dumps(p) + "\n" for p in stream[0]))
    l_path.write_text("".join(json.dumps(x) + "\n" for x in stream[1]))
    return dict(replay(settings, p_path, l_path).summary())


def uninterrupted(
    config: Callable[[int], dict[str, Any]], tmp_path: Path, predictions: int, labels: int
) -> Samples:
    """The final /metrics of a run that is never stopped: ``config(port)`` its settings."""
    port = free_port()
    path = tmp_path / "uninterrupted.yaml"
    path.write_text(json.dumps(config(port)))
    service: subprocess.Popen[str] = start(path)
    try:
        return final(port, predictions, labels)
    finally:
        service.kill()
        service.communicate()


def final(port: int, predictions: int, labels: int) -> Samples:
    """/metrics once every event is read and nothing is pending."""
    found: list[Samples] = []

    def done() -> bool:
        samples = scrape(port)
        if samples is None:
            return False
        found[:] = [samples]
        return (
            total(samples, "predwatch_predictions_total") == predictions
            and total(samples, "predwatch_labels_total") == labels
            and total(samples, "predwatch_pending_predictions") == 0
            and total(samples, "predwatch_pending_labels") == 0
        )

    def seen() -> str:
        counts = {n: total(found[0], n) for n in COUNTS} if found else "no /metrics"
        return f"every event ({predictions} predictions, {labels} labels) counted; {counts}"

    wait_for(done, 60, seen)
    return found[0]


def figures(samples: Samples) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """The counts, and the quality metrics of the cumulative window."""
    return {
        key: value
        for key, value in samples.items()
        if key[0] in COUNTS or (key[0] in QUALITY.values() and ("window", "cumulative") in key[1])
    }


def same(got: dict[Any, float], expected: dict[Any, float]) -> None:
    assert got.keys() == expected.keys()
    for key, value in expected.items():
        assert math.isclose(got[key], value, rel_tol=1e-9, abs_tol=1e-12), key
