"""Partition checkpoints in a Kafka topic (``state.topic``), against the real broker: written,
found again from the group's committed offsets, and a corrupt one refused for the one before.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.structs import OffsetAndMetadata

from predwatch.config import Settings
from predwatch.consumer.handoff import Handoff
from predwatch.demo.broker import EmbeddedBroker
from predwatch.monitor import Monitor
from predwatch.records import Raw
from predwatch.state.envelope import fingerprint, seal
from predwatch.state.partition_topic import PartitionCheckpoints


def prediction(i: int) -> Raw:
    body = (
        f'{{"prediction_id": "p{i}", "model": "fraud", "timestamp": {1000 + i}, "prediction": 1}}'
    )
    return Raw(body.encode())


@pytest.fixture
def setup(
    kafka_broker: EmbeddedBroker, make_topic: Callable[..., str], unique_group: Callable[[], str]
) -> tuple[Settings, KafkaConsumer]:
    topics = make_topic("p"), make_topic("l")
    settings = Settings.model_validate(
        {
            "models": {"fraud": {"task": "binary"}},
            "kafka": {
                "bootstrap_servers": kafka_broker.bootstrap_servers,
                "group_id": unique_group(),
                "predictions_topic": topics[0],
                "labels_topic": topics[1],
            },
            "state": {"topic": f"state-{topics[0]}"},
        }
    )
    consumer = KafkaConsumer(
        bootstrap_servers=kafka_broker.bootstrap_servers,
        group_id=settings.kafka.group_id,
        enable_auto_commit=False,
    )
    consumer.assign([TopicPartition(t, 0) for t in topics])
    return settings, consumer


def test_a_corrupt_newest_checkpoint_is_refused_and_the_one_before_restored(
    setup: tuple[Settings, KafkaConsumer], caplog: pytest.LogCaptureFixture
) -> None:
    settings, consumer = setup
    kafka, state_topic = settings.kafka, str(settings.state.topic)
    checkpoints = PartitionCheckpoints(settings)
    checkpoints.ensure_topic(1)
    writer = Monitor(settings)
    writer.process(0, [prediction(i) for i in range(5)], [], now=0.0)
    good = checkpoints.write(
        0, writer.partition_state(0), {kafka.predictions_topic: 5, kafka.labels_topic: 0}
    )
    # A newer checkpoint whose bytes were damaged on the way (its checksum fails), committed.
    writer.process(0, [prediction(i) for i in range(5, 9)], [], now=0.0)
    blob = bytearray(
        seal({"offsets": {}, "partition": writer.partition_state(0)}, fingerprint(settings))
    )
    blob[-3] ^= 0xFF
    producer = KafkaProducer(bootstrap_servers=kafka.bootstrap_servers)
    producer.send(state_topic, key=b"0/damaged/0/1", value=bytes(blob), partition=0)
    producer.flush()
    producer.close()
    consumer.commit(
        {
            TopicPartition(state_topic, 0): OffsetAndMetadata(good.first, "", -1),
            TopicPartition(kafka.predictions_topic, 0): OffsetAndMetadata(9, "", -1),
            TopicPartition(kafka.labels_topic, 0): OffsetAndMetadata(0, "", -1),
        }
    )

    reader = Monitor(settings)
    handoff = Handoff(
        checkpoints, reader, threading.Lock(), (kafka.predictions_topic, kafka.labels_topic)
    )
    with caplog.at_level(logging.ERROR):
        how = handoff.restore(consumer, [0])
    checkpoints.close()

    assert how == {0: "restored an earlier checkpoint"}
    assert "checkpoint damaged of partition 0" in caplog.text and "CRC-32" in caplog.text
    assert reader.summary()["partitions"]["0"]["pending_predictions"] == 5
    # Reading starts again after the five predictions the restored state holds.
    assert consumer.position(TopicPartition(kafka.predictions_topic, 0)) == 5


def test_a_partition_never_checkpointed_starts_new(setup: tuple[Settings, KafkaConsumer]) -> None:
    settings, consumer = setup
    kafka = settings.kafka
    checkpoints = PartitionCheckpoints(settings)
    checkpoints.ensure_topic(1)
    monitor = Monitor(settings)
    handoff = Handoff(
        checkpoints, monitor, threading.Lock(), (kafka.predictions_topic, kafka.labels_topic)
    )
    assert handoff.restore(consumer, [0]) == {0: "new"}
    checkpoints.close()
    assert monitor.partitions == []


def test_the_state_topic_must_have_a_partition_per_input_partition(
    setup: tuple[Settings, KafkaConsumer], kafka_broker: EmbeddedBroker
) -> None:
    settings, _ = setup
    kafka_broker.create_topics([str(settings.state.topic)], partitions=1)
    checkpoints = PartitionCheckpoints(settings)
    with pytest.raises(Exception, match="has 1 partitions but the inputs have 4"):
        checkpoints.ensure_topic(4)
