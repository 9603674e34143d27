"""``predwatch replay`` on files with hostile lines mixed in: it ends, prints its summary, counts
every hostile line under its reason, and the valid events give exactly a clean replay's result.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hostile import CONFIG, Brittle, Corpus, build

from predwatch.config import Settings
from predwatch.consumer.files import replay


def write(directory: Path, predictions: list[bytes], labels: list[bytes]) -> tuple[Path, Path]:
    directory.mkdir(parents=True, exist_ok=True)
    paths = directory / "p.jsonl", directory / "l.jsonl"
    for path, lines in zip(paths, (predictions, labels), strict=True):
        path.write_bytes(b"".join(line + b"\n" for line in lines))
    return paths


def run_replay(config: Path, predictions: Path, labels: Path) -> dict[str, Any]:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "predwatch.cli",
            "replay",
            "--config",
            str(config),
            "--predictions",
            str(predictions),
            "--labels",
            str(labels),
        ],
        capture_output=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    summary: dict[str, Any] = json.loads(done.stdout)
    return summary


@pytest.fixture(scope="module")
def corpus() -> Corpus:
    return build(seed=5, valid=1500)


def test_replay_counts_hostile_lines_and_keeps_the_valid_results(
    corpus: Corpus, tmp_path: Path
) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(json.dumps(CONFIG))
    clean = run_replay(
        config, *write(tmp_path / "clean", corpus.valid_predictions, corpus.valid_labels)
    )
    mixed_files = write(tmp_path / "mixed", *corpus.mix("files"))
    mixed = run_replay(config, *mixed_files)

    expected_reasons = corpus.reasons("files")
    assert clean["join"]["invalid"] == 0 and clean["join"]["matched"] > 1000
    assert mixed["join"] == clean["join"] | {"invalid": sum(expected_reasons.values())}
    assert mixed["models"] == clean["models"]  # the same metrics, to the last digit
    assert mixed["quality"] == clean["quality"]
    monitor = replay(Settings.model_validate(CONFIG), *mixed_files)
    assert monitor.invalid_reasons == expected_reasons  # each line under its own reason


def test_a_binary_models_label_maybe_is_refused(corpus: Corpus, tmp_path: Path) -> None:
    files = write(tmp_path, *corpus.mix("files", "join"))
    monitor = replay(Settings.model_validate(CONFIG), *files)
    assert monitor.invalid_reasons == corpus.reasons("files", "join")


@pytest.mark.parametrize("stamp", [1e308, 6e17, 1.7e308])
def test_replay_ends_on_times_floats_cannot_slice(tmp_path: Path, stamp: float) -> None:
    # Limits opened wide so that the times reach the slicing; it once looped forever on them.
    config = tmp_path / "config.yaml"
    config.write_text(
        json.dumps(
            {
                **CONFIG,
                "limits": {"max_abs_number": 1.79e308, "max_timestamp": 1.79e308},
            }
        )
    )
    predictions = [
        {"prediction_id": f"p{i}", "model": "fraud", "timestamp": t, "prediction": 1}
        for i, t in enumerate([100.0, 200.0, stamp, 300.0])
    ]
    labels = [
        {"prediction_id": "p0", "timestamp": 150.0, "label": 1},
        {"prediction_id": "p2", "timestamp": stamp, "label": 0},
    ]
    files = write(
        tmp_path,
        [json.dumps(p).encode() for p in predictions],
        [json.dumps(x).encode() for x in labels],
    )
    summary = run_replay(config, *files)
    assert summary["join"]["predictions"] == 4
    assert summary["join"]["matched"] == 2


def test_replay_isolates_a_message_the_monitor_fails_on(tmp_path: Path) -> None:
    settings = Settings.model_validate(CONFIG)
    predictions = [
        {"prediction_id": i, "model": "fraud", "timestamp": 100 + n, "prediction": 1}
        for n, i in enumerate(["a", "poison", "b", "c"])
    ]
    labels = [{"prediction_id": i, "timestamp": 110, "label": 1} for i in ("a", "poison", "c")]
    files = write(
        tmp_path,
        [json.dumps(p).encode() for p in predictions],
        [json.dumps(x).encode() for x in labels],
    )
    monitor = replay(settings, *files, monitor=Brittle(settings))
    assert dict(monitor.invalid_reasons) == {("predictions", "processing_error"): 1}
    counts = monitor.counts
    assert (counts.predictions, counts.matched, counts.pending_predictions) == (3, 2, 1)
    assert counts.pending_labels == 1  # the poison prediction's label waits, as an orphan would
