"""Scale-out against a real broker: instances of one group split 6-partition topics, and a
partition's state moves with it through ``state.topic``.

Two instances start, a third joins mid-stream, then one of the first two is killed with
SIGKILL while it reads. At the end the survivors own every partition once, and their
per-partition counters (``predwatch_partition_events_total``) summed equal what
``predwatch replay`` of the same events counts: no pending prediction was lost in a handoff
(its label would have become an orphan) and no event was counted twice.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kafka import KafkaProducer
from reports import Samples
from running import free_port, scrape, start, wait_for

from predwatch.config import Settings
from predwatch.consumer.files import replay
from predwatch.demo.broker import EmbeddedBroker
from predwatch.demo.synthetic import generate

PARTITIONS = 6
FAR = 2 * 86_400.0  # closing events two days on: every deadline has passed
OUTCOMES = (
    "predictions",
    "labels",
    "matched",
    "unlabelled",
    "orphan_labels",
    "late_labels",
    "duplicate_predictions",
    "duplicate_labels",
    "late_predictions",
    "evicted",
)


def stream() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Predictions and labels by time (some duplicated, a few ghost labels), then a closing
    pair in every partition that moves every watermark past every deadline."""
    predictions, labels = generate(
        3000, seed=5, rate=1.0, label_delay=120.0, jitter=2.0, timestamps="epoch"
    )
    start_time = predictions[0]["timestamp"]
    predictions += predictions[100:130]  # duplicates
    labels += [{"prediction_id": f"ghost-{i}", "timestamp": start_time + 40 * i, "label": 0}
               for i in range(5)]  # fmt: skip
    predictions.sort(key=lambda x: x["timestamp"])
    labels.sort(key=lambda x: x["timestamp"])
    end = max(x["timestamp"] for x in predictions + labels) + FAR
    for q in range(PARTITIONS):
        predictions.append(
            {"prediction_id": f"close-{q}", "model": "fraud", "timestamp": end, "prediction": 1}
        )
        labels.append({"prediction_id": f"close-{q}", "timestamp": end, "label": 1})
    return predictions, labels


def send(producer: KafkaProducer, topic: str, messages: list[dict[str, Any]]) -> None:
    """Keyed by prediction id (co-partitioned); a closing event to its own partition."""
    for message in messages:
        key = message["prediction_id"]
        partition = int(key.split("-")[1]) if key.startswith("close-") else None
        producer.send(topic, key=key.encode(), value=json.dumps(message).encode(),
                      partition=partition)  # fmt: skip


def config(broker: EmbeddedBroker, topics: tuple[str, str], group: str, state_topic: str,
           port: int) -> dict[str, Any]:  # fmt: skip
    return {
        "models": {"fraud": {"task": "binary"}},
        "join": {"label_timeout": 600, "grace": 60, "idle_timeout": "1d"},
        "kafka": {
            "bootstrap_servers": broker.bootstrap_servers,
            "group_id": group,
            "predictions_topic": topics[0],
            "labels_topic": topics[1],
            "session_timeout": "2s",
            "max_poll_records": 100,
        },
        "http": {"port": port},
        "state": {"topic": state_topic, "checkpoint_every": "1s"},
    }


def by_partition(samples: Samples) -> dict[int, dict[str, float]]:
    """One instance's ``predwatch_partition_events_total`` as {partition: {outcome: count}}."""
    found: dict[int, dict[str, float]] = {}
    for (name, labels), value in samples.items():
        if name == "predwatch_partition_events_total":
            items = dict(labels)
            found.setdefault(int(items["partition"]), {})[items["outcome"]] = value
    return found


class Instance:
    """``predwatch run`` as a member of the group, with its own port."""

    def __init__(self, name: str, settings: dict[str, Any], tmp_path: Path) -> None:
        self.port = settings["http"]["port"]
        path = tmp_path / f"{name}.yaml"
        path.write_text(json.dumps(settings))
        self.process: subprocess.Popen[str] = start(path)
        self.stderr = ""

    def partitions(self) -> dict[int, dict[str, float]]:
        samples = scrape(self.port)
        return {} if samples is None else by_partition(samples)

    def pending(self) -> float | None:
        samples = scrape(self.port)
        if samples is None:
            return None
        return sum(v for (n, _), v in samples.items() if n == "predwatch_pending_predictions")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.process.returncode is not None:
            return  # stopped already
        os.kill(self.process.pid, sig)
        try:
            self.process.wait(20)
        finally:
            self.process.kill()
            self.stderr = self.process.communicate()[1]


def summed(instances: list[Instance]) -> tuple[dict[str, float], list[int]]:
    """Counts summed over the instances' partitions, and every partition they report."""
    totals = dict.fromkeys(OUTCOMES, 0.0)
    seen: list[int] = []
    for instance in instances:
        for partition, counts in instance.partitions().items():
            seen.append(partition)
            for outcome in OUTCOMES:
                totals[outcome] += counts.get(outcome, 0.0)
    return totals, sorted(seen)


def test_instances_joining_and_dying_lose_no_pending_prediction(
    kafka_broker: EmbeddedBroker,
    make_topic: Callable[..., str],
    unique_group: Callable[[], str],
    tmp_path: Path,
) -> None:
    topics = make_topic("p", PARTITIONS), make_topic("l", PARTITIONS)
    state_topic = f"state-{topics[0]}"
    group = unique_group()
    predictions, labels = stream()
    producer = KafkaProducer(bootstrap_servers=kafka_broker.bootstrap_servers, linger_ms=5)
    produced = [0, 0]

    def produce_up_to(share: float) -> None:
        for i, (topic, messages) in enumerate(zip(topics, (predictions, labels), strict=True)):
            upto = round(share * len(messages))
            send(producer, topic, messages[produced[i] : upto])
            produced[i] = upto
        producer.flush(30)

    def settings(port: int) -> dict[str, Any]:
        return config(kafka_broker, topics, group, state_topic, port)

    produce_up_to(0.4)
    a = Instance("a", settings(free_port()), tmp_path)
    b = Instance("b", settings(free_port()), tmp_path)
    instances = [a, b]
    try:
        wait_for(
            lambda: (
                summed([a, b])[0]["predictions"] == produced[0]
                and summed([a, b])[1] == list(range(PARTITIONS))
            ),
            60,
            "two instances to read the first 40%",
        )
        c = Instance("c", settings(free_port()), tmp_path)
        instances.append(c)
        produce_up_to(0.7)
        wait_for(lambda: len(c.partitions()) == 2, 60, "the third instance to get partitions")
        time.sleep(1.5)  # b reads on, checkpoints, reads more; then it dies mid-stream
        assert b.process.poll() is None
        b.stop(signal.SIGKILL)
        produce_up_to(1.0)
        survivors = [a, c]

        def done() -> bool:
            totals, seen = summed(survivors)
            return (
                seen == list(range(PARTITIONS))
                and totals["predictions"] == len(predictions)
                and totals["labels"] == len(labels)
                and all(s.pending() == 0 for s in survivors)
            )

        wait_for(
            done,
            90,
            lambda: (
                f"every event counted once: {summed(survivors)}, "
                f"{[s.partitions() for s in survivors]}"
            ),
        )
        totals, _ = summed(survivors)
    finally:
        for instance in instances:
            instance.stop()
            print(instance.stderr)  # shown when the test fails
        producer.close()
    for instance in instances:
        assert "Traceback" not in instance.stderr, instance.stderr
    # The dead instance's partitions were taken over from the state topic, not started empty.
    assert "restored" in a.stderr + c.stderr, a.stderr + c.stderr

    settings_ = Settings.model_validate(settings(0))
    p_path, l_path = tmp_path / "p.jsonl", tmp_path / "l.jsonl"
    p_path.write_text("".join(json.dumps(p) + "\n" for p in predictions))
    l_path.write_text("".join(json.dumps(x) + "\n" for x in labels))
    join = replay(settings_, p_path, l_path).summary()["join"]
    assert join["orphan_labels"] == 5 and join["duplicate_predictions"] == 30
    assert join["late_labels"] > 0 and join["unlabelled"] > 100
    assert totals == {outcome: float(join[outcome]) for outcome in OUTCOMES}
