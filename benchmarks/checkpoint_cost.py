"""Checkpoint cost per pending prediction: file size, time to make, write and read the state.

A monitor is fed ``PENDING`` synthetic predictions (ten features, a score, a tag)
without labels, so every one is pending; then one checkpoint is made
(``Monitor.state``, under the monitor's lock in the service), sealed and written
(``CheckpointStore.save``) and read back (``CheckpointStore.load``), with drift
and diagnostics off and on. The figures are in docs/operations.md, "Sizing".

    .venv/bin/python benchmarks/checkpoint_cost.py
"""

from __future__ import annotations

import json
import tempfile
import time

from predwatch.config import Settings
from predwatch.demo.synthetic import generate
from predwatch.monitor import Monitor
from predwatch.records import Raw
from predwatch.state.checkpoints import CheckpointStore

PENDING = 20_000
BATCH = 2_000


def measure(analysis: bool) -> str:
    settings = Settings.model_validate(
        {
            "models": {"fraud": {"task": "binary"}},
            "join": {"label_timeout": "30d", "idle_timeout": "30d"},
            "drift": {"enabled": analysis},
            "diagnostics": {"enabled": analysis},
        }
    )
    predictions, _ = generate(PENDING, seed=1, timestamps="epoch")
    monitor = Monitor(settings)
    for i in range(0, PENDING, BATCH):
        batch = predictions[i : i + BATCH]
        raws = [Raw(json.dumps(p).encode()) for p in batch]
        monitor.process(0, raws, [], batch[-1]["timestamp"])
    empty = len(Monitor(settings).snapshot())
    store = CheckpointStore(tempfile.mkdtemp(), settings)
    started = time.perf_counter()
    state = monitor.state()
    made = time.perf_counter()
    path = store.save(state, {})
    written = time.perf_counter()
    store.load(Monitor(settings))
    read = time.perf_counter()
    size = path.stat().st_size
    pending = monitor.counts.pending_predictions
    return (
        f"drift and diagnostics {'on' if analysis else 'off'}: {pending:,} pending, "
        f"{size / 1e6:.1f} MB ({(size - empty) / pending:.0f} B each), "
        f"state {made - started:.2f} s, seal and write {written - made:.2f} s, "
        f"read {read - written:.2f} s"
    )


if __name__ == "__main__":
    for analysis in (False, True):
        print(measure(analysis))
