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

from reports import total
from running import free_port, scrape, start, wait_for
from streams import COUNTS, Parts, config, figures, final, replayed, same, stream, uninterrupted

from predwatch.config import Settings
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
    predictions, labels = both = stream(PARTITIONS, 2500, seed=21, ghosts=3)
    port = free_port()
    state = {"dir": str(tmp_path / "state"), "store": "disk"}
    written = config(kafka_broker, topics, unique_group(), port, state)
    settings_file = tmp_path / "disk.yaml"
    settings_file.write_text(json.dumps(written))
    rng = random.Random(11)
    parts = Parts(kafka_broker.bootstrap_servers, topics, both)

    def counted() -> float:
        samples = scrape(port)
        return 0.0 if samples is None else total(samples, "predwatch_predictions_total")

    for share in SHARES:
        before = parts.produced[0]
        parts.up_to(share)
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
    parts.up_to(1.0)
    parts.close()

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
    group = unique_group()
    straight = uninterrupted(
        lambda port: config(kafka_broker, topics, group, port, None),
        tmp_path,
        len(predictions),
        len(labels),
    )
    same(figures(crashed), figures(straight))
    join = replayed(Settings.model_validate(written), both, tmp_path)["join"]
    assert join["unlabelled"] > 100 and join["late_labels"] > 0
    for name, key in (("predwatch_joined_total", "matched"),
                      ("predwatch_unlabelled_total", "unlabelled"),
                      ("predwatch_late_labels_total", "late_labels"),
                      ("predwatch_orphan_labels_total", "orphan_labels")):  # fmt: skip
        assert total(crashed, name) == join[key], name
    assert set(COUNTS) <= {name for name, _ in crashed}
