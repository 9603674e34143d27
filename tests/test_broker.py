"""The embedded broker, exercised with real Kafka clients (kafka-python and confluent-kafka)."""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.consumer.fetcher import ConsumerRecord
from kafka.coordinator.assignors.range import RangePartitionAssignor
from kafka.serializer import DefaultSerializer, JsonSerializer

from predwatch.demo.broker import BrokerError, EmbeddedBroker

# A group join on this broker takes about half the session timeout, so keep it short.
FAST_GROUP = {
    "partition_assignment_strategy": [RangePartitionAssignor],
    "session_timeout_ms": 3000,
    "heartbeat_interval_ms": 300,
    "enable_auto_commit": False,
    "auto_offset_reset": "earliest",
}


def json_producer(broker: EmbeddedBroker) -> KafkaProducer:
    return KafkaProducer(
        bootstrap_servers=broker.bootstrap_servers,
        key_serializer=DefaultSerializer(),
        value_serializer=JsonSerializer(),
    )


def group_consumer(broker: EmbeddedBroker, topic: str, group: str) -> KafkaConsumer:
    consumer = KafkaConsumer(
        bootstrap_servers=broker.bootstrap_servers, group_id=group, **FAST_GROUP
    )
    consumer.subscribe([topic])
    return consumer


def consume(
    consumer: KafkaConsumer, count: int, timeout: float = 30.0, settle: float = 1.0
) -> list[ConsumerRecord]:
    """Poll until ``count`` records arrived, then keep polling ``settle`` s to catch extras."""
    records: list[ConsumerRecord] = []
    deadline = time.monotonic() + timeout
    while len(records) < count and time.monotonic() < deadline:
        for batch in consumer.poll(timeout_ms=200).values():
            records.extend(batch)
    settle_until = time.monotonic() + settle
    while time.monotonic() < settle_until:
        for batch in consumer.poll(timeout_ms=100).values():
            records.extend(batch)
    return records


def test_group_consumer_reads_each_message_once_and_resumes_from_commit(
    kafka_broker: EmbeddedBroker,
    make_topic: Callable[..., str],
    unique_group: Callable[[], str],
) -> None:
    topic, group = make_topic("preds", partitions=3), unique_group()
    producer = json_producer(kafka_broker)
    for i in range(1000):
        producer.send(topic, key=f"id-{i}", value={"prediction_id": f"id-{i}", "score": i / 1000})
    producer.flush()

    first = group_consumer(kafka_broker, topic, group)
    records = consume(first, 1000)
    ids = Counter(json.loads(r.value)["prediction_id"] for r in records)
    assert len(records) == 1000
    assert set(ids) == {f"id-{i}" for i in range(1000)}
    assert set(ids.values()) == {1}
    assert all(r.key.decode() == json.loads(r.value)["prediction_id"] for r in records)
    per_partition = Counter(r.partition for r in records)
    assert set(per_partition) == {0, 1, 2}

    first.commit()
    partitions = [TopicPartition(topic, p) for p in range(3)]
    assert {tp.partition: first.committed(tp) for tp in partitions} == per_partition
    first.close()

    for i in range(1000, 1050):
        producer.send(topic, key=f"id-{i}", value={"prediction_id": f"id-{i}", "score": 0.5})
    producer.flush()
    producer.close()

    second = group_consumer(kafka_broker, topic, group)
    try:
        resumed = consume(second, 50)
        assert second.assignment() == set(partitions)
        new_ids = sorted(json.loads(r.value)["prediction_id"] for r in resumed)
        assert new_ids == sorted(f"id-{i}" for i in range(1000, 1050))
    finally:
        second.close()


def test_confluent_producer_is_readable_by_kafka_python(
    kafka_broker: EmbeddedBroker, make_topic: Callable[..., str]
) -> None:
    confluent_kafka = pytest.importorskip("confluent_kafka")
    topic = make_topic("wire", partitions=2)
    producer = confluent_kafka.Producer(
        {"bootstrap.servers": kafka_broker.bootstrap_servers, "linger.ms": 5}
    )
    sent: dict[str, Any] = {}
    for i in range(200):
        value = {"prediction_id": f"c-{i}", "label": i % 2}
        sent[f"c-{i}"] = value
        producer.produce(
            topic,
            key=f"c-{i}",
            value=json.dumps(value),
            timestamp=1_700_000_000_000 + i,
            headers={"source": b"confluent"},
        )
    assert producer.flush(10) == 0
    producer.close()

    consumer = KafkaConsumer(
        bootstrap_servers=kafka_broker.bootstrap_servers, auto_offset_reset="earliest"
    )
    consumer.assign([TopicPartition(topic, p) for p in range(2)])
    try:
        records = consume(consumer, 200, settle=0.5)
    finally:
        consumer.close()
    assert len(records) == 200
    received = {r.key.decode(): json.loads(r.value) for r in records}
    assert received == sent
    for r in records:
        assert r.timestamp == 1_700_000_000_000 + int(r.key.decode()[2:])
        assert r.headers == [("source", b"confluent")]


def test_kafka_python_record_timestamps_round_trip(
    kafka_broker: EmbeddedBroker, make_topic: Callable[..., str]
) -> None:
    topic = make_topic("ts")
    producer = json_producer(kafka_broker)
    for i in range(10):
        producer.send(topic, key=str(i), value=i, timestamp_ms=1_600_000_000_000 + i * 1000)
    producer.flush()
    producer.close()
    consumer = KafkaConsumer(
        bootstrap_servers=kafka_broker.bootstrap_servers, auto_offset_reset="earliest"
    )
    consumer.assign([TopicPartition(topic, 0)])
    try:
        records = consume(consumer, 10, settle=0.2)
    finally:
        consumer.close()
    assert [r.timestamp for r in records] == [1_600_000_000_000 + i * 1000 for i in range(10)]


@pytest.mark.xfail(
    reason="Tansu reports the last batch's base offset + 1 as the end offset", strict=False
)
def test_end_offsets_count_every_record(
    kafka_broker: EmbeddedBroker, make_topic: Callable[..., str]
) -> None:
    topic = make_topic("end")
    producer = json_producer(kafka_broker)
    for i in range(100):
        producer.send(topic, key=str(i), value=i)
    producer.flush()
    producer.close()
    consumer = KafkaConsumer(bootstrap_servers=kafka_broker.bootstrap_servers)
    try:
        tp = TopicPartition(topic, 0)
        assert consumer.end_offsets([tp]) == {tp: 100}
    finally:
        consumer.close()


def test_create_topics_is_idempotent(
    kafka_broker: EmbeddedBroker, make_topic: Callable[..., str]
) -> None:
    topic = make_topic("again", partitions=3)
    kafka_broker.create_topics([topic], partitions=3)
    host, port = kafka_broker.bootstrap_servers.split(":")
    assert host == "127.0.0.1"
    assert int(port) == kafka_broker.port


def test_start_stop_without_context_manager() -> None:
    broker = EmbeddedBroker().start()
    try:
        broker.create_topics(["solo"], partitions=2)
    finally:
        broker.stop()
    broker.stop()  # a second stop is harmless
    with pytest.raises(BrokerError, match="not running"):
        _ = broker.bootstrap_servers


def test_missing_binary_reads_as_one_clear_sentence(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CALF_TANSU_BIN", "/nonexistent/tansu")
    with pytest.raises(BrokerError, match="not an executable Tansu binary"):
        EmbeddedBroker().start()
