"""Back-pressure against a real broker: while checkpoints cannot be written, ``predwatch run``
pauses its partitions instead of reading on, stays in its group, and resumes once one is.

The state directory is swapped for a plain file mid-stream (every checkpoint write then
fails), more events are produced, and the service must not count them; with the directory
back, it reads them and every event is counted once. A state that cannot be made into a
checkpoint at all (a defect) is said once and does not stop consumption.
"""

from __future__ import annotations

import json
import logging
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaProducer
from reports import total
from running import free_port, scrape, start, wait_for

from predwatch.config import Settings
from predwatch.consumer.kafka import KafkaSource
from predwatch.demo.broker import EmbeddedBroker
from predwatch.exporter.health import Health
from predwatch.monitor import Monitor
from predwatch.state.codec import StateError


def message(i: int) -> bytes:
    return json.dumps(
        {"prediction_id": f"p{i}", "model": "fraud", "timestamp": 1_000 + i, "prediction": 1}
    ).encode()


def counted(port: int) -> float | None:
    samples = scrape(port)
    return None if samples is None else total(samples, "predwatch_predictions_total")


def test_consumption_pauses_while_checkpoints_fail_and_resumes(
    kafka_broker: EmbeddedBroker,
    make_topic: Callable[..., str],
    unique_group: Callable[[], str],
    tmp_path: Path,
) -> None:
    topics = make_topic("p"), make_topic("l")
    state = tmp_path / "state"
    port = free_port()
    settings = {
        "models": {"fraud": {"task": "binary"}},
        "join": {"label_timeout": 600, "idle_timeout": "1d"},
        "kafka": {
            "bootstrap_servers": kafka_broker.bootstrap_servers,
            "group_id": unique_group(),
            "predictions_topic": topics[0],
            "labels_topic": topics[1],
            "session_timeout": "2s",
        },
        "http": {"port": port},
        "state": {"dir": str(state), "checkpoint_every": "0.5s"},
    }
    path = tmp_path / "config.yaml"
    path.write_text(json.dumps(settings))
    producer = KafkaProducer(bootstrap_servers=kafka_broker.bootstrap_servers)

    def produce(ids: range) -> None:
        for i in ids:
            producer.send(topics[0], key=f"p{i}".encode(), value=message(i))
        producer.flush(30)

    produce(range(100))
    service = start(path)
    try:
        wait_for(lambda: counted(port) == 100, 60, "the first 100 predictions")
        wait_for(lambda: any(state.glob("checkpoint-*.pwstate")), 30, "a checkpoint")
        aside = tmp_path / "aside"
        state.rename(aside)
        state.write_text("not a directory")  # every checkpoint write now fails
        # What arrives is read until the next checkpoint is due and fails; then it pauses.
        produce(range(100, 200))
        wait_for(lambda: counted(port) == 200, 60, "the events before the failing checkpoint")
        time.sleep(2.0)
        produce(range(200, 300))
        time.sleep(4.0)
        assert counted(port) == 200  # nothing read while nothing can be made durable
        assert service.poll() is None
        state.unlink()
        aside.rename(state)
        wait_for(lambda: counted(port) == 300, 60, "the rest, once checkpoints are written")
    finally:
        service.send_signal(signal.SIGTERM)
        service.wait(20)
        stderr = service.communicate()[1]
        producer.close()
        print(stderr)  # shown when the test fails
    assert "consumption paused until a checkpoint can be written" in stderr
    assert "consumption resumed" in stderr
    assert stderr.count("partitions assigned") == 1  # it stayed in its group throughout
    assert stderr.count("cannot write a checkpoint") == 1  # said once, not at every retry
    assert "Traceback" not in stderr


class Unsaveable(Monitor):
    """A monitor whose state cannot be made into a checkpoint: a defect, not an outage."""

    def state(self) -> dict[str, Any]:
        raise StateError("it holds something the codec cannot write")


def test_a_state_that_cannot_be_checkpointed_is_said_once_and_consumption_goes_on(
    kafka_broker: EmbeddedBroker,
    make_topic: Callable[..., str],
    unique_group: Callable[[], str],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
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
            "state": {"dir": str(tmp_path / "state"), "checkpoint_every": "0.2s"},
        }
    )
    producer = KafkaProducer(bootstrap_servers=kafka_broker.bootstrap_servers)
    monitor = Unsaveable(settings)
    source = KafkaSource(settings, monitor, threading.Lock(), Health())
    stop = threading.Event()
    thread = threading.Thread(target=source.run, args=(stop,), daemon=True)
    with caplog.at_level(logging.ERROR, logger="predwatch"):
        thread.start()
        try:
            for part in (range(50), range(50, 100)):  # checkpoints are due in between
                for i in part:
                    producer.send(topics[0], key=f"p{i}".encode(), value=message(i))
                producer.flush(30)
                time.sleep(1.0)
            wait_for(lambda: monitor.counts.predictions == 100, 60, "every prediction")
        finally:
            stop.set()
            thread.join(30)
            producer.close()
    defects = [r for r in caplog.records if "cannot make a checkpoint" in r.getMessage()]
    assert len(defects) == 1
    assert not any("paused" in r.getMessage() for r in caplog.records)
