"""The hostile mix through a real broker: the service keeps consuming, counts and dead-letters
every hostile message under its reason, and the valid events reach a clean replay's counts."""

from __future__ import annotations

import json
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hostile import CONFIG, Brittle, build
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from prometheus_client.parser import text_string_to_metric_families

from predwatch.config import Settings
from predwatch.consumer.files import replay
from predwatch.consumer.kafka import KafkaSource
from predwatch.demo.broker import EmbeddedBroker
from predwatch.exporter.health import Health
from predwatch.service import Service

OVERSIZE = 150_000  # over the limit below, within the broker's message size


def settings_for(broker: EmbeddedBroker, topics: dict[str, str], group: str) -> Settings:
    return Settings.model_validate(
        {
            **CONFIG,
            "limits": {"max_message_bytes": 100_000},
            "kafka": {
                "bootstrap_servers": broker.bootstrap_servers,
                "group_id": group,
                "predictions_topic": topics["predictions"],
                "labels_topic": topics["labels"],
                "dead_letter_topic": topics["dead"],
                "session_timeout": "6s",
                "max_poll_records": 300,
            },
            "http": {"port": 0},
        }
    )


def key_of(message: bytes) -> bytes:
    """A valid event's prediction id (co-partitioning); one key for what has none."""
    try:
        return str(json.loads(message)["prediction_id"]).encode()
    except (ValueError, KeyError, TypeError, RecursionError):
        return b"hostile"


def produce(broker: EmbeddedBroker, topic: str, messages: list[bytes]) -> None:
    producer = KafkaProducer(
        bootstrap_servers=broker.bootstrap_servers, linger_ms=20, max_request_size=4_000_000
    )
    for message in messages:
        producer.send(topic, key=key_of(message), value=message)
    producer.flush(30)
    producer.close()


def scrape(url: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    with urllib.request.urlopen(f"{url}/metrics", timeout=5) as response:
        text = response.read().decode()
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def total(samples: dict[Any, float], name: str) -> float:
    return sum(v for (n, _), v in samples.items() if n == name)


def dead_letters(broker: EmbeddedBroker, topic: str, count: int) -> Counter[tuple[str, str]]:
    """(topic, reason) of the first ``count`` dead letters, from their headers."""
    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=broker.bootstrap_servers,
        auto_offset_reset="earliest",
        consumer_timeout_ms=20_000,
        fetch_max_bytes=10_000_000,
        max_partition_fetch_bytes=10_000_000,
    )
    seen: Counter[tuple[str, str]] = Counter()
    for record in consumer:
        headers = {k: v.decode() for k, v in record.headers}
        seen[headers["predwatch.topic"], headers["predwatch.reason"]] += 1
        if sum(seen.values()) == count:
            break
    consumer.close()
    return seen


@pytest.fixture
def threads() -> Iterator[Callable[[Callable[[threading.Event], None]], threading.Thread]]:
    started: list[tuple[threading.Event, threading.Thread]] = []

    def start(run: Callable[[threading.Event], None]) -> threading.Thread:
        stop = threading.Event()
        thread = threading.Thread(target=run, args=(stop,), daemon=True)
        thread.start()
        started.append((stop, thread))
        return thread

    yield start
    for stop, thread in started:
        stop.set()
        thread.join(15)
        assert not thread.is_alive(), "the consumer did not stop within 15 s"


def test_service_survives_the_hostile_mix(
    kafka_broker: EmbeddedBroker,
    make_topic: Callable[..., str],
    unique_group: Callable[[], str],
    tmp_path: Path,
    threads: Callable[[Callable[[threading.Event], None]], threading.Thread],
) -> None:
    corpus = build(seed=7, valid=1500, now=time.time(), oversize=OVERSIZE)
    topics = {
        "predictions": make_topic("p", partitions=3),
        "labels": make_topic("l", partitions=3),
        "dead": make_topic("d"),
    }
    settings = settings_for(kafka_broker, topics, unique_group())
    for name, lines in (("p", corpus.valid_predictions), ("l", corpus.valid_labels)):
        (tmp_path / f"{name}.jsonl").write_bytes(b"".join(x + b"\n" for x in lines))
    clean = replay(settings, tmp_path / "p.jsonl", tmp_path / "l.jsonl").counts
    expected = corpus.reasons("kafka")

    predictions, labels = corpus.mix("kafka")
    produce(kafka_broker, topics["predictions"], predictions)
    produce(kafka_broker, topics["labels"], labels)
    service = Service(settings)
    thread = threads(service.run)
    deadline = time.monotonic() + 90
    while True:
        samples = scrape(service.url)
        done = total(samples, "predwatch_joined_total") == clean.matched and total(
            samples, "predwatch_invalid_events_total"
        ) == sum(expected.values())
        if done or time.monotonic() > deadline:
            break
        time.sleep(0.5)

    assert thread.is_alive() and service.health.ready  # still consuming
    assert total(samples, "predwatch_predictions_total") == clean.predictions
    assert total(samples, "predwatch_labels_total") == clean.labels
    assert total(samples, "predwatch_joined_total") == clean.matched
    assert total(samples, "predwatch_pending_predictions") == clean.pending_predictions
    reasons = Counter(
        {
            (dict(labels_)["topic"], dict(labels_)["reason"]): int(v)
            for (n, labels_), v in samples.items()
            if n == "predwatch_invalid_events_total"
        }
    )
    assert reasons == expected
    assert dead_letters(kafka_broker, topics["dead"], sum(expected.values())) == expected


def test_a_message_the_monitor_fails_on_is_isolated_and_offsets_committed(
    kafka_broker: EmbeddedBroker,
    make_topic: Callable[..., str],
    unique_group: Callable[[], str],
    threads: Callable[[Callable[[threading.Event], None]], threading.Thread],
) -> None:
    topics = {"predictions": make_topic("p"), "labels": make_topic("l"), "dead": make_topic("d")}
    settings = settings_for(kafka_broker, topics, unique_group())
    ids = [f"p{i}" for i in range(30)]
    ids[12] = "poison"
    produce(
        kafka_broker,
        topics["predictions"],
        [
            json.dumps(
                {"prediction_id": i, "model": "fraud", "timestamp": 100, "prediction": 1}
            ).encode()
            for i in ids
        ],
    )
    monitor = Brittle(settings)
    source = KafkaSource(settings, monitor, threading.Lock(), Health())
    thread = threads(source.run)
    deadline = time.monotonic() + 60
    while monitor.counts.predictions + monitor.counts.invalid < 30:
        assert time.monotonic() < deadline, "the source stopped consuming"
        time.sleep(0.3)
    assert thread.is_alive()
    assert monitor.counts.predictions == 29
    assert dict(monitor.invalid_reasons) == {("predictions", "processing_error"): 1}
    assert dead_letters(kafka_broker, topics["dead"], 1) == {("predictions", "processing_error"): 1}
    consumer = KafkaConsumer(
        bootstrap_servers=kafka_broker.bootstrap_servers, group_id=settings.kafka.group_id
    )
    partition = TopicPartition(topics["predictions"], 0)
    deadline = time.monotonic() + 20
    while consumer.committed(partition) != 30 and time.monotonic() < deadline:
        time.sleep(0.3)  # committed after the batch, which the loop may still be finishing
    assert consumer.committed(partition) == 30  # every message processed, the poison included
    consumer.close()
