"""The service against a real Kafka-compatible broker: /metrics must equal what replay computes.

Events are produced to co-partitioned topics, predictions with kafka-python and
labels with confluent-kafka (librdkafka), so the service is shown to read what
other clients write. The same events written to files and replayed give the
expected counts and metrics; the service must reach exactly those.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Producer as ConfluentProducer
from kafka import KafkaProducer
from reports import Samples, samples_of, total

from predwatch.config import Settings
from predwatch.consumer.files import replay
from predwatch.demo.broker import EmbeddedBroker
from predwatch.demo.synthetic import generate
from predwatch.service import Service

QUALITY = {
    "accuracy": "predwatch_accuracy_ratio",
    "precision": "predwatch_precision_ratio",
    "recall": "predwatch_recall_ratio",
    "f1": "predwatch_f1_ratio",
    "roc_auc": "predwatch_roc_auc_ratio",
    "log_loss": "predwatch_log_loss",
    "brier": "predwatch_brier_score",
}


def settings_for(broker: EmbeddedBroker, predictions: str, labels: str, group: str) -> Settings:
    return Settings.model_validate(
        {
            "models": {"fraud": {"task": "binary"}},
            # Nothing expires during the test: results depend on the events alone.
            "join": {"label_timeout": "30d", "grace": "60s", "idle_timeout": "1h"},
            "metrics": {"windows": [{"name": "1h", "duration": "1h"}], "tags": ["region"]},
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


def scenario() -> tuple[list[bytes], list[bytes]]:
    """Events with duplicates, orphans and malformed messages, as bytes in topic order."""
    predictions, labels = generate(3000, seed=11, jitter=2.0)
    start = predictions[0]["timestamp"]
    predictions += [dict(p) for p in predictions[100:110]]  # repeated predictions
    labels = labels[:50] + [dict(x, label=1 - x["label"]) for x in labels[:5]] + labels[50:]
    labels[60:60] = [
        {"prediction_id": f"ghost-{i}", "timestamp": start, "label": 1} for i in range(4)
    ]
    encoded_predictions = [json.dumps(p).encode() for p in predictions]
    encoded_labels = [json.dumps(x).encode() for x in labels]
    encoded_predictions[500:500] = [
        b"{broken",
        b'{"prediction_id": "x", "model": "nope", "timestamp": 1, "prediction": 1}',
    ]
    encoded_labels[700:700] = [b"[]"]
    return encoded_predictions, encoded_labels


def key_of(message: bytes) -> bytes:
    try:
        return str(json.loads(message)["prediction_id"]).encode()
    except (ValueError, KeyError, TypeError):
        return b"malformed"


def produce(
    broker: EmbeddedBroker,
    predictions_topic: str,
    labels_topic: str,
    predictions: list[bytes],
    labels: list[bytes],
) -> None:
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap_servers, linger_ms=20)
    for message in predictions:
        producer.send(predictions_topic, key=key_of(message), value=message)
    producer.flush(30)
    producer.close()
    other = ConfluentProducer(
        {"bootstrap.servers": broker.bootstrap_servers, "partitioner": "murmur2_random"}
    )  # Kafka's default partitioner
    for message in labels:
        other.produce(labels_topic, key=key_of(message), value=message)
    assert other.flush(30) == 0


def scrape(url: str) -> Samples:
    with urllib.request.urlopen(f"{url}/metrics", timeout=5) as response:
        return samples_of(response.read().decode())


@pytest.fixture
def running_service() -> Iterator[Callable[[Settings], Service]]:
    started: list[tuple[Service, threading.Event, threading.Thread]] = []

    def start(settings: Settings) -> Service:
        service = Service(settings)
        stop = threading.Event()
        thread = threading.Thread(target=service.run, args=(stop,), daemon=True)
        thread.start()
        started.append((service, stop, thread))
        return service

    yield start
    for _, stop, thread in started:
        stop.set()
        thread.join(15)
        assert not thread.is_alive(), "the service did not stop within 15 s"


def test_metrics_match_replay(
    kafka_broker: EmbeddedBroker,
    make_topic: Callable[..., str],
    unique_group: Callable[[], str],
    tmp_path: Path,
    running_service: Callable[[Settings], Service],
) -> None:
    predictions_topic, labels_topic = make_topic("p", partitions=3), make_topic("l", partitions=3)
    settings = settings_for(kafka_broker, predictions_topic, labels_topic, unique_group())
    predictions, labels = scenario()
    (tmp_path / "p.jsonl").write_bytes(b"\n".join(predictions) + b"\n")
    (tmp_path / "l.jsonl").write_bytes(b"\n".join(labels) + b"\n")
    expected = replay(settings, tmp_path / "p.jsonl", tmp_path / "l.jsonl").summary()
    join = expected["join"]
    assert join["duplicate_predictions"] == 10 and join["duplicate_labels"] == 5
    assert join["orphan_labels"] == 4 and join["invalid"] == 3

    produce(kafka_broker, predictions_topic, labels_topic, predictions, labels)
    service = running_service(settings)
    deadline = time.monotonic() + 90
    while True:
        samples = scrape(service.url)
        done = (
            total(samples, "predwatch_joined_total") == join["matched"]
            and total(samples, "predwatch_invalid_events_total") == join["invalid"]
            and total(samples, "predwatch_orphan_labels_total") == join["orphan_labels"]
        )
        if done or time.monotonic() > deadline:
            break
        time.sleep(0.5)

    assert total(samples, "predwatch_predictions_total") == join["predictions"]
    assert total(samples, "predwatch_labels_total") == join["labels"]
    assert total(samples, "predwatch_joined_total") == join["matched"]
    assert total(samples, "predwatch_pending_predictions") == join["pending_predictions"]
    assert total(samples, "predwatch_pending_labels") == join["pending_labels"]
    assert total(samples, "predwatch_orphan_labels_total") == join["orphan_labels"]
    assert total(samples, "predwatch_invalid_events_total") == join["invalid"]
    duplicates = {
        dict(labels)["kind"]: v
        for (n, labels), v in samples.items()
        if n == "predwatch_duplicates_total"
    }
    assert duplicates == {
        "prediction": join["duplicate_predictions"],
        "label": join["duplicate_labels"],
    }
    checked = 0
    for version, report in expected["models"]["fraud"].items():
        scopes: list[tuple[str, str, dict[str, Any]]] = [("", "", report)]
        scopes += [("region", value, r) for value, r in report["tags"]["region"].items()]
        for tag, value, scope in scopes:
            for window, metrics in [("cumulative", scope["cumulative"]), *scope["windows"].items()]:
                for key, name in QUALITY.items():
                    labels_ = frozenset(
                        {
                            "model": "fraud",
                            "version": version,
                            "window": window,
                            "tag": tag,
                            "tag_value": value,
                        }.items()
                    )
                    got = samples.get((name, labels_))
                    if metrics[key] is None:
                        assert got is None
                        continue
                    assert got is not None, (name, labels_)
                    assert math.isclose(got, metrics[key], rel_tol=1e-9), (name, labels_)
                    checked += 1
    assert checked > 50
    assert service.health.ready


def test_unequal_partition_counts_stop_with_one_line(
    kafka_broker: EmbeddedBroker, make_topic: Callable[..., str], tmp_path: Path
) -> None:
    predictions_topic, labels_topic = make_topic("p", partitions=3), make_topic("l", partitions=2)
    config = tmp_path / "config.yaml"
    config.write_text(
        json.dumps(
            {
                "models": {"fraud": {"task": "binary"}},
                "kafka": {
                    "bootstrap_servers": kafka_broker.bootstrap_servers,
                    "predictions_topic": predictions_topic,
                    "labels_topic": labels_topic,
                },
                "http": {"port": 0},
            }
        )
    )
    done = subprocess.run(
        [sys.executable, "-m", "predwatch.cli", "run", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    last = done.stderr.strip().splitlines()[-1]
    assert last == (
        f"predwatch: topic '{predictions_topic}' has 3 partitions but '{labels_topic}' has 2: "
        "give both the same count (and key both by prediction id) so that each partition's "
        "join is local"
    )


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()
    except urllib.error.URLError:
        return 0, "not listening"


def wait_for(condition: Callable[[], bool], seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.3)
    return False


def test_broker_down_at_start_then_up_and_sigterm(tmp_path: Path) -> None:
    kafka_port, http_port = free_port(), free_port()
    config = tmp_path / "config.yaml"
    config.write_text(
        json.dumps(
            {
                "models": {"fraud": {"task": "binary"}},
                "kafka": {"bootstrap_servers": f"127.0.0.1:{kafka_port}", "session_timeout": "3s"},
                "http": {"port": http_port},
            }
        )
    )
    service = subprocess.Popen(
        [sys.executable, "-m", "predwatch.cli", "run", "--config", str(config)],
        stderr=subprocess.PIPE,
        text=True,
    )
    base = f"http://127.0.0.1:{http_port}"
    try:
        assert wait_for(lambda: get(f"{base}/healthz")[0] == 200, 20)
        status, _ = get(f"{base}/readyz")
        assert status == 503
        time.sleep(8)  # a few rounds of retries with the broker down
        assert service.poll() is None, "the service must keep running while Kafka is down"
        with EmbeddedBroker(port=kafka_port) as broker:
            broker.create_topics(["predictions", "labels"], partitions=2)
            predictions, labels = generate(200, seed=3, unlabelled=0.0, label_delay=1.0)
            produce(
                broker,
                "predictions",
                "labels",
                [json.dumps(p).encode() for p in predictions],
                [json.dumps(x).encode() for x in labels],
            )
            assert wait_for(lambda: get(f"{base}/readyz")[0] == 200, 60)
            assert wait_for(lambda: total(scrape(base), "predwatch_joined_total") == 200, 60)
            service.send_signal(subprocess.signal.SIGTERM)
            assert service.wait(15) == 0
    finally:
        if service.poll() is None:
            service.kill()
        stderr = service.communicate()[1]
    unreachable = [line for line in stderr.splitlines() if "cannot reach Kafka" in line]
    assert len(unreachable) == 1, stderr  # said once per change of state, not per retry
    assert f"127.0.0.1:{kafka_port}" in unreachable[0]
    assert "SIGTERM received" in stderr and "consumer closed" in stderr
