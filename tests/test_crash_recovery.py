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

from kafka import KafkaProducer
from reports import total
from running import free_port, start, wait_for
from streams import (
    QUALITY,
    Parts,
    config,
    figures,
    final,
    replayed,
    same,
    send,
    stream,
    uninterrupted,
)

from predwatch.config import Settings
from predwatch.demo.broker import EmbeddedBroker
from predwatch.state.envelope import fingerprint, unseal

PARTITIONS = 2
KILL_AT = (0.15, 0.3, 0.45, 0.6, 0.75)  # shares of the stream checkpointed before each kill


def checkpointed(state: Path, settings: Settings) -> int:
    """Events the newest checkpoint reflects (the sum of its next offsets)."""
    for path in sorted(state.glob("checkpoint-*.pwstate"), reverse=True):
        try:
            data = unseal(path.read_bytes(), fingerprint(settings))
        except (OSError, ValueError):
            continue  # being replaced, or refused: the previous one
        return sum(offset for _, _, offset in data["offsets"])
    return 0


def test_kill_9_five_times_counts_every_event_once(
    kafka_broker: EmbeddedBroker,
    make_topic: Callable[..., str],
    unique_group: Callable[[], str],
    tmp_path: Path,
) -> None:
    topics = make_topic("p", PARTITIONS), make_topic("l", PARTITIONS)
    predictions, labels = both = stream(PARTITIONS, 2500, seed=21, ghosts=3)
    events = len(predictions) + len(labels)
    state = tmp_path / "state"
    port = free_port()
    crashing = config(kafka_broker, topics, unique_group(), port, {"dir": str(state)})
    settings_file = tmp_path / "crashing.yaml"
    settings_file.write_text(json.dumps(crashing))
    settings = Settings.model_validate(crashing)
    rng = random.Random(7)
    parts = Parts(kafka_broker.bootstrap_servers, topics, both)

    parts.up_to(KILL_AT[0])
    for share, following in zip(KILL_AT, (*KILL_AT[1:], 1.0), strict=True):
        service = start(settings_file)
        try:
            # Everything produced so far is in a checkpoint; then more arrives, is read, and
            # the process is killed before (or just after) the next checkpoint.
            wait_for(
                lambda: checkpointed(state, settings) == sum(parts.produced), 40, f"{share:.0%}"
            )
            parts.up_to(following)
            time.sleep(rng.uniform(0.05, 0.5))
            assert service.poll() is None
            os.kill(service.pid, signal.SIGKILL)
        finally:
            service.kill()
            stderr = service.communicate()[1]
        assert "Traceback" not in stderr, stderr
    parts.close()
    assert sum(parts.produced) == events

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
    group = unique_group()
    straight = uninterrupted(
        lambda port: config(kafka_broker, topics, group, port, None),
        tmp_path,
        len(predictions),
        len(labels),
    )
    same(figures(crashed), figures(straight))

    # ``predwatch replay`` of the same events.
    summary = replayed(settings, both, tmp_path)
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
    predictions, labels = both = stream(PARTITIONS, 2500, seed=21, ghosts=3)
    half = len(predictions) // 2, len(labels) // 2
    state = tmp_path / "state"
    port = free_port()
    settings_file = tmp_path / "config.yaml"
    written = config(kafka_broker, topics, unique_group(), port, {"dir": str(state)})
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

    join = replayed(settings, both, tmp_path)["join"]
    assert total(recovered, "predwatch_joined_total") == join["matched"]
    assert total(recovered, "predwatch_unlabelled_total") == join["unlabelled"]
    assert total(recovered, "predwatch_late_labels_total") == join["late_labels"]
    assert total(recovered, "predwatch_orphan_labels_total") == join["orphan_labels"]
