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

from reports import Samples
from running import free_port, scrape, start, wait_for
from streams import Parts, config, replayed, stream

from predwatch.config import Settings
from predwatch.demo.broker import EmbeddedBroker
from predwatch.pipeline.counts import PARTITION_OUTCOMES

PARTITIONS = 6


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
    totals = dict.fromkeys(PARTITION_OUTCOMES, 0.0)
    seen: list[int] = []
    for instance in instances:
        for partition, counts in instance.partitions().items():
            seen.append(partition)
            for outcome in PARTITION_OUTCOMES:
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
    predictions, labels = both = stream(PARTITIONS, 3000, seed=5, ghosts=5, repeated=30)
    parts = Parts(kafka_broker.bootstrap_servers, topics, both)

    def settings(port: int) -> dict[str, Any]:
        state = {"topic": state_topic}
        return config(kafka_broker, topics, group, port, state, max_poll_records=100)

    parts.up_to(0.4)
    a = Instance("a", settings(free_port()), tmp_path)
    b = Instance("b", settings(free_port()), tmp_path)
    instances = [a, b]
    try:
        wait_for(
            lambda: (
                summed([a, b])[0]["predictions"] == parts.produced[0]
                and summed([a, b])[1] == list(range(PARTITIONS))
            ),
            60,
            "two instances to read the first 40%",
        )
        c = Instance("c", settings(free_port()), tmp_path)
        instances.append(c)
        parts.up_to(0.7)
        wait_for(lambda: len(c.partitions()) == 2, 60, "the third instance to get partitions")
        time.sleep(1.5)  # b reads on, checkpoints, reads more; then it dies mid-stream
        assert b.process.poll() is None
        b.stop(signal.SIGKILL)
        parts.up_to(1.0)
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
        parts.close()
    for instance in instances:
        assert "Traceback" not in instance.stderr, instance.stderr
    # The dead instance's partitions were taken over from the state topic, not started empty.
    assert "restored" in a.stderr + c.stderr, a.stderr + c.stderr

    join = replayed(Settings.model_validate(settings(0)), both, tmp_path)["join"]
    assert join["orphan_labels"] == 5 and join["duplicate_predictions"] == 30
    assert join["late_labels"] > 0 and join["unlabelled"] > 100
    assert totals == {outcome: float(join[outcome]) for outcome in PARTITION_OUTCOMES}
