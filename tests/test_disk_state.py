"""Pending predictions on disk (``state.store: disk``) against a real broker: ``predwatch run``
killed with SIGKILL at three moments of a stream, restarted each time, counts every event once.

The checkpoint and the pending predictions it refers to are one atomic RocksDB commit, so a
kill at any moment reopens both as of the same commit and re-reads the events after it.
"""

from __future__ import annotations

import json
import os
import random
import signal
import time
from collections.abc import Callable
from pathlib import Path

from kafka import KafkaProducer
from reports import total
from running import free_port, scrape, start, wait_for
from test_crash_recovery import COUNTS, config, figures, final, same, send, stream

from predwatch.config import Settings
from predwatch.consumer.files import replay
from predwatch.demo.broker import EmbeddedBroker

PARTITIONS = 2
SHARES = (0.3, 0.6, 0.85)  # of the stream produced before each kill


def test_kill_9_with_pending_predictions_on_disk_counts_every_event_once(
    kafka_broker: EmbeddedBroker,
    make_topic: Callable[..., str],
    unique_group: Callable[[], str],
    tmp_path: Path,
) -> None:
    topics = make_topic("p", PARTITIONS), make_topic("l", PARTITIONS)
    predictions, labels = stream()
    port = free_port()
    written = config(kafka_broker, topics, unique_group(), port, tmp_path / "state")
    written["state"]["store"] = "disk"
    settings_file = tmp_path / "disk.yaml"
    settings_file.write_text(json.dumps(written))
    rng = random.Random(11)
    producer = KafkaProducer(bootstrap_servers=kafka_broker.bootstrap_servers, linger_ms=5)
    produced = [0, 0]

    def produce_up_to(share: float) -> None:
        for i, (topic, messages) in enumerate(zip(topics, (predictions, labels), strict=True)):
            upto = round(share * len(messages))
            send(producer, topic, messages[produced[i] : upto])
            produced[i] = upto
        producer.flush(30)

    def counted() -> float:
        samples = scrape(port)
        return 0.0 if samples is None else total(samples, "predwatch_predictions_total")

    for share in SHARES:
        before = produced[0]
        produce_up_to(share)
        service = start(settings_file)
        try:
            # Killed while reading what was just produced, at a seeded moment.
            wait_for(lambda: counted() > before, 60, f"reading up to {share:.0%}")  # noqa: B023
            time.sleep(rng.uniform(0.2, 1.5))
            assert service.poll() is None
            os.kill(service.pid, signal.SIGKILL)
        finally:
            service.kill()
            stderr = service.communicate()[1]
        assert "Traceback" not in stderr, stderr
    produce_up_to(1.0)
    producer.close()

    service = start(settings_file)
    try:
        crashed = final(port, len(predictions), len(labels))
    finally:
        service.send_signal(signal.SIGTERM)
        assert service.wait(20) == 0
        stderr = service.communicate()[1]
        print(stderr)  # shown when the test fails
    # Not ready until the state is restored: /readyz turns 200 when consuming is said.
    waiting = stderr.index("waiting for partitions to restore their state")
    restored = stderr.index("state restored from the checkpoint in")
    assert waiting < restored < stderr.index("consuming ", restored)

    # An uninterrupted run with pending predictions in memory, and predwatch replay.
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
    p_path, l_path = tmp_path / "p.jsonl", tmp_path / "l.jsonl"
    p_path.write_text("".join(json.dumps(p) + "\n" for p in predictions))
    l_path.write_text("".join(json.dumps(x) + "\n" for x in labels))
    join = replay(Settings.model_validate(written), p_path, l_path).summary()["join"]
    assert join["unlabelled"] > 100 and join["late_labels"] > 0
    for name, key in (("predwatch_joined_total", "matched"),
                      ("predwatch_unlabelled_total", "unlabelled"),
                      ("predwatch_late_labels_total", "late_labels"),
                      ("predwatch_orphan_labels_total", "orphan_labels")):  # fmt: skip
        assert total(crashed, name) == join[key], name
    assert set(COUNTS) <= {name for name, _ in crashed}
