"""Crash-safe state against a real broker: ``predwatch run`` killed with SIGKILL five times.

The service runs as a subprocess with a state directory and a checkpoint every
second. The stream is produced in parts: once the checkpoints (the progress
file: the offsets they hold) reflect 15%, 30%, ... 75% of it, the next part is
produced and the process is killed a seeded random moment later, while it reads
that part, before or just after the next checkpoint. After every restart with the
same group and state directory, the final counts and cumulative metrics on
``/metrics`` must equal, count for count, those of an uninterrupted run and of
``predwatch replay``.
"""

from __future__ import annotations

import json
import math
import os
import random
import signal
import time
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
from predwatch.state.envelope import fingerprint, unseal

PARTITIONS = 2
FAR = 2 * 86_400.0  # closing events two days on: every deadline has passed
KILL_AT = (0.15, 0.3, 0.45, 0.6, 0.75)  # shares of the stream checkpointed before each kill
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


def stream() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Predictions and labels (by time, a few ghosts), then a closing pair per partition."""
    predictions, labels = generate(
        2500, seed=21, rate=1.0, label_delay=120.0, jitter=2.0, timestamps="epoch"
    )
    start = predictions[0]["timestamp"]
    labels += [
        {"prediction_id": f"ghost-{i}", "timestamp": start + 50 * i, "label": 1} for i in range(3)
    ]
    labels.sort(key=lambda x: x["timestamp"])
    end = max(x["timestamp"] for x in predictions + labels) + FAR
    for q in range(PARTITIONS):
        predictions.append(
            {"prediction_id": f"close-{q}", "model": "fraud", "timestamp": end, "prediction": 1}
        )
        labels.append({"prediction_id": f"close-{q}", "timestamp": end, "label": 1})
    return predictions, labels


def send(producer: KafkaProducer, topic: str, messages: list[dict[str, Any]]) -> None:
    """Keyed by prediction id (Kafka's partitioner); a closing event to its own partition."""
    for message in messages:
        key = message["prediction_id"]
        partition = int(key[-1]) if key.startswith("close-") else None
        value = json.dumps(message).encode()
        producer.send(topic, key=key.encode(), value=value, partition=partition)


def config(
    broker: EmbeddedBroker, topics: tuple[str, str], group: str, port: int, state: Path | None
) -> dict[str, Any]:
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
            "max_poll_records": 200,
        },
        "http": {"port": port},
        "state": {"dir": str(state), "checkpoint_every": "1s"} if state else {},
    }


def checkpointed(state: Path, settings: Settings) -> int:
    """Events the newest checkpoint reflects (the sum of its next offsets)."""
    for path in sorted(state.glob("checkpoint-*.pwstate"), reverse=True):
        try:
            data = unseal(path.read_bytes(), fingerprint(settings))
        except (OSError, ValueError):
            continue  # being replaced, or refused: the previous one
        return sum(offset for _, _, offset in data["offsets"])
    return 0


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


def test_kill_9_five_times_counts_every_event_once(
    kafka_broker: EmbeddedBroker,
    make_topic: Callable[..., str],
    unique_group: Callable[[], str],
    tmp_path: Path,
) -> None:
    topics = make_topic("p", PARTITIONS), make_topic("l", PARTITIONS)
    predictions, labels = stream()
    events = len(predictions) + len(labels)
    state = tmp_path / "state"
    port = free_port()
    crashing = config(kafka_broker, topics, unique_group(), port, state)
    settings_file = tmp_path / "crashing.yaml"
    settings_file.write_text(json.dumps(crashing))
    settings = Settings.model_validate(crashing)
    rng = random.Random(7)
    producer = KafkaProducer(bootstrap_servers=kafka_broker.bootstrap_servers, linger_ms=5)
    produced = [0, 0]  # predictions, labels sent so far

    def produce_up_to(share: float) -> None:
        for i, (topic, messages) in enumerate(zip(topics, (predictions, labels), strict=True)):
            upto = round(share * len(messages))
            send(producer, topic, messages[produced[i] : upto])
            produced[i] = upto
        producer.flush(30)

    produce_up_to(KILL_AT[0])
    for share, following in zip(KILL_AT, (*KILL_AT[1:], 1.0), strict=True):
        service = start(settings_file)
        try:
            # Everything produced so far is in a checkpoint; then more arrives, is read, and
            # the process is killed before (or just after) the next checkpoint.
            wait_for(lambda: checkpointed(state, settings) == sum(produced), 40, f"{share:.0%}")
            produce_up_to(following)
            time.sleep(rng.uniform(0.05, 0.5))
            assert service.poll() is None
            os.kill(service.pid, signal.SIGKILL)
        finally:
            service.kill()
            stderr = service.communicate()[1]
        assert "Traceback" not in stderr, stderr
    producer.close()
    assert sum(produced) == events

    service = start(settings_file)
    try:
        crashed = final(port, len(predictions), len(labels))
    finally:
        service.send_signal(signal.SIGTERM)
        assert service.wait(20) == 0
        stderr = service.communicate()[1]
        print(stderr)  # shown when the test fails
    assert "state restored from checkpoint" in stderr

    # An uninterrupted run of the same stream (another group, no state directory).
    other_port = free_port()
    straight_file = tmp_path / "straight.yaml"
    straight_file.write_text(
        json.dumps(config(kafka_broker, topics, unique_group(), other_port, None))
    )
    service = start(straight_file)
    try:
        straight = final(other_port, len(predictions), len(labels))
    finally:
        service.kill()
        service.communicate()
    same(figures(crashed), figures(straight))

    # ``predwatch replay`` of the same events.
    p_path, l_path = tmp_path / "p.jsonl", tmp_path / "l.jsonl"
    p_path.write_text("".join(json.dumps(p) + "\n" for p in predictions))
    l_path.write_text("".join(json.dumps(x) + "\n" for x in labels))
    summary = replay(settings, p_path, l_path).summary()
    join = summary["join"]
    assert join["orphan_labels"] == 3 and join["late_labels"] > 0 and join["unlabelled"] > 100
    assert total(crashed, "predwatch_joined_total") == join["matched"]
    assert total(crashed, "predwatch_unlabelled_total") == join["unlabelled"]
    assert total(crashed, "predwatch_late_labels_total") == join["late_labels"]
    assert total(crashed, "predwatch_orphan_labels_total") == join["orphan_labels"]
    checked = 0
    for version, report in summary["models"]["fraud"].items():
        for key, name in QUALITY.items():
            labels_ = {
                "model": "fraud",
                "version": version,
                "window": "cumulative",
                "tag": "",
                "tag_value": "",
            }
            got = crashed.get((name, frozenset(labels_.items())))
            expected = report["cumulative"][key]
            assert (got is None) == (expected is None), (name, version)
            if expected is not None:
                assert math.isclose(got, expected, rel_tol=1e-9), (name, version)  # type: ignore[arg-type]
                checked += 1
    assert checked >= 10


def test_a_truncated_checkpoint_is_refused_and_the_previous_one_recovers(
    kafka_broker: EmbeddedBroker,
    make_topic: Callable[..., str],
    unique_group: Callable[[], str],
    tmp_path: Path,
) -> None:
    topics = make_topic("p", PARTITIONS), make_topic("l", PARTITIONS)
    predictions, labels = stream()
    half = len(predictions) // 2, len(labels) // 2
    state = tmp_path / "state"
    port = free_port()
    settings_file = tmp_path / "config.yaml"
    written = config(kafka_broker, topics, unique_group(), port, state)
    settings_file.write_text(json.dumps(written))
    settings = Settings.model_validate(written)
    producer = KafkaProducer(bootstrap_servers=kafka_broker.bootstrap_servers, linger_ms=5)
    send(producer, topics[0], predictions[: half[0]])
    send(producer, topics[1], labels[: half[1]])
    producer.flush(30)

    service = start(settings_file)
    try:
        wait_for(lambda: checkpointed(state, settings) == sum(half), 40, "the first half")
        send(producer, topics[0], predictions[half[0] :])
        send(producer, topics[1], labels[half[1] :])
        producer.flush(30)
        wait_for(lambda: checkpointed(state, settings) == len(predictions) + len(labels), 40, "all")
    finally:
        service.send_signal(signal.SIGTERM)
        assert service.wait(20) == 0
        service.communicate()
    producer.close()
    newest = sorted(state.glob("checkpoint-*.pwstate"))[-1]
    newest.write_bytes(newest.read_bytes()[:-100])

    service = start(settings_file)
    try:
        recovered = final(port, len(predictions), len(labels))
        assert service.poll() is None  # running, not in a crash loop
    finally:
        service.send_signal(signal.SIGTERM)
        assert service.wait(20) == 0
        stderr = service.communicate()[1]
    refusals = [line for line in stderr.splitlines() if " refused: " in line]
    assert len(refusals) == 1, stderr
    assert f"checkpoint {newest} refused: it is truncated" in refusals[0]
    assert "state restored from checkpoint" in stderr

    p_path, l_path = tmp_path / "p.jsonl", tmp_path / "l.jsonl"
    p_path.write_text("".join(json.dumps(p) + "\n" for p in predictions))
    l_path.write_text("".join(json.dumps(x) + "\n" for x in labels))
    join = replay(settings, p_path, l_path).summary()["join"]
    assert total(recovered, "predwatch_joined_total") == join["matched"]
    assert total(recovered, "predwatch_unlabelled_total") == join["unlabelled"]
    assert total(recovered, "predwatch_late_labels_total") == join["late_labels"]
    assert total(recovered, "predwatch_orphan_labels_total") == join["orphan_labels"]
