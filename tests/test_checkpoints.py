"""The checkpoint store: atomic files, the last two kept, a refused one falls back once."""

from __future__ import annotations

import json
import logging
import threading
from pathlib import Path

import pytest

from predwatch.config import Settings
from predwatch.consumer.kafka import KafkaSource, SourceError
from predwatch.exporter.health import Health
from predwatch.monitor import Monitor
from predwatch.records import Raw
from predwatch.state.checkpoints import CheckpointStore

SETTINGS = Settings.model_validate({"models": {"fraud": {"task": "binary"}}})


def monitor_with(predictions: int) -> Monitor:
    monitor = Monitor(SETTINGS)
    messages = [
        Raw(
            json.dumps(
                {"prediction_id": f"p{i}", "model": "fraud", "timestamp": i, "prediction": 1}
            ).encode()
        )
        for i in range(predictions)
    ]
    monitor.process(0, messages, [], float(predictions))
    return monitor


def test_the_last_two_are_kept_and_no_temporary_file_stays(tmp_path: Path) -> None:
    store = CheckpointStore(tmp_path, SETTINGS)
    for n in (1, 2, 3):
        store.save(monitor_with(n).state(), {("p", 0): n})
    assert [p.name for p in store.paths()] == [
        "checkpoint-000000000003.pwstate",
        "checkpoint-000000000002.pwstate",
    ]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in store.paths())
    restored = Monitor(SETTINGS)
    assert store.load(restored) == {("p", 0): 3}
    assert restored.counts.predictions == 3 and restored.counts.pending_predictions == 3


@pytest.mark.parametrize(
    "damage",
    [lambda b: b[: len(b) - 10], lambda b: b[:-5] + b"XXXXX", lambda b: b""],
    ids=["truncated", "corrupt", "empty"],
)
def test_a_refused_checkpoint_falls_back_to_the_previous_once(
    tmp_path: Path, damage: object, caplog: pytest.LogCaptureFixture
) -> None:
    store = CheckpointStore(tmp_path, SETTINGS)
    store.save(monitor_with(4).state(), {("p", 0): 4})
    newest = store.save(monitor_with(7).state(), {("p", 0): 7})
    newest.write_bytes(damage(newest.read_bytes()))  # type: ignore[operator]
    restored = Monitor(SETTINGS)
    with caplog.at_level(logging.ERROR, "predwatch.state.checkpoints"):
        assert store.load(restored) == {("p", 0): 4}
    assert restored.counts.predictions == 4
    [refusal] = [r.getMessage() for r in caplog.records]
    assert refusal.startswith(f"checkpoint {newest} refused: it is ")
    assert (tmp_path / (newest.name + ".refused")).exists()
    caplog.clear()
    with caplog.at_level(logging.ERROR, "predwatch.state.checkpoints"):
        assert store.load(Monitor(SETTINGS)) == {("p", 0): 4}  # said once, not at every start
    assert not caplog.records
    # The next checkpoint continues the sequence and the refused file is never read again.
    assert store.save(restored.state(), {("p", 0): 5}).name == "checkpoint-000000000002.pwstate"


def test_with_every_checkpoint_refused_the_monitor_starts_empty(tmp_path: Path) -> None:
    store = CheckpointStore(tmp_path, SETTINGS)
    store.save(monitor_with(3).state(), {("p", 0): 3})
    other = SETTINGS.model_copy(update={"join": SETTINGS.join.model_copy(update={"grace": 1.0})})
    monitor = monitor_with(2)
    assert CheckpointStore(tmp_path, other).load(monitor) is None
    assert monitor.counts.predictions == 2  # unchanged: all or nothing


def test_a_write_cut_short_leaves_the_previous_whole(tmp_path: Path) -> None:
    store = CheckpointStore(tmp_path, SETTINGS)
    store.save(monitor_with(3).state(), {("p", 0): 3})
    (tmp_path / ".checkpoint-000000000002.tmp").write_bytes(b"half a checkp")  # a crash mid-write
    again = CheckpointStore(tmp_path, SETTINGS)
    assert not list(tmp_path.glob("*.tmp"))
    assert again.load(Monitor(SETTINGS)) == {("p", 0): 3}


def test_an_unusable_state_dir_is_one_sentence(tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("")
    settings = Settings.model_validate(
        {"models": {"fraud": {"task": "binary"}}, "state": {"dir": str(tmp_path / "a-file" / "x")}}
    )
    with pytest.raises(SourceError) as error:
        KafkaSource(settings, Monitor(settings), threading.Lock(), Health())
    assert str(error.value) == (
        f"cannot use state.dir '{tmp_path / 'a-file' / 'x'}' (Not a directory): give a directory "
        "this user can create and write, or leave state.dir unset to run without checkpoints"
    )
