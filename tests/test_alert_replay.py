"""Alerts in replay: the demo's drifting stream gives exactly the expected transitions."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from predwatch.config import settings_from_mapping
from predwatch.consumer.files import replay
from predwatch.demo.simulator import Traffic
from predwatch.events import parse_timestamp

START = 1_795_737_600.0
CHANGE_AT = 600.0

CONFIG = {
    "models": {"credit": {"task": "binary"}},
    "join": {"label_timeout": "60s", "grace": "5s"},
    "metrics": {"windows": [{"name": "last_500", "events": 500}]},
    "alerts": {
        "evaluate_every": "10s",
        "rules": [
            {
                "name": "CreditAccuracyLow",
                "model": "credit",
                "metric": "accuracy",
                "window": "last_500",
                "below": 0.8,
                "clear": 0.85,
                "for": "1m",
                "min_samples": 300,
                "severity": "page",
                "annotations": {"summary": "Accuracy of {{model}} {{version}} is {{value}}"},
            }
        ],
    },
}


@pytest.fixture(scope="module")
def drifting_stream(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Twenty minutes of the demo's traffic; its concept changes after ten."""
    served = list(
        Traffic(seed=7, rate=10.0, change_at=CHANGE_AT, label_delay=5.0).until(
            2 * CHANGE_AT, start=START
        )
    )
    labelled = sorted(
        (s for s in served if s.label is not None), key=lambda s: s.label_offset or 0.0
    )
    directory = tmp_path_factory.mktemp("drift")
    predictions, labels = directory / "p.jsonl", directory / "l.jsonl"
    predictions.write_text("".join(json.dumps(s.prediction) + "\n" for s in served))
    labels.write_text("".join(json.dumps(s.label) + "\n" for s in labelled))
    return predictions, labels


def test_drift_fires_once_and_stays_firing(drifting_stream: tuple[Path, Path]) -> None:
    settings = settings_from_mapping(CONFIG)
    summary = replay(settings, *drifting_stream).summary()
    transitions = [(t["from_state"], t["to_state"]) for t in summary["alerts"]]
    assert transitions == [("inactive", "pending"), ("pending", "firing")]
    pending, firing = summary["alerts"]
    # Pending once the last 500 pairs are mostly from after the change (50 s at 10/s),
    # firing after the rule's minute more, both in event time: rules are evaluated after the
    # first batch (5 s of grace) whose watermark passes a multiple of 10 s.
    assert START + CHANGE_AT < pending["at"] < START + CHANGE_AT + 120
    assert 60 <= firing["at"] - pending["at"] < 60 + 10 + 5
    assert firing["labels"] == {
        "alertname": "CreditAccuracyLow",
        "model": "credit",
        "version": "v1",
        "window": "last_500",
        "severity": "page",
    }
    assert firing["value"] < 0.8
    assert firing["annotations"]["summary"].startswith("Accuracy of credit v1 is 0.")


def test_replay_alerts_are_deterministic(drifting_stream: tuple[Path, Path]) -> None:
    settings = settings_from_mapping(CONFIG)
    first = replay(settings, *drifting_stream).summary()["alerts"]
    again = replay(settings, *drifting_stream).summary()["alerts"]
    assert first == again


def test_no_alert_on_the_stable_part(drifting_stream: tuple[Path, Path], tmp_path: Path) -> None:
    predictions, labels = drifting_stream
    stable_predictions, stable_labels = tmp_path / "p.jsonl", tmp_path / "l.jsonl"
    before = START + CHANGE_AT - 30  # a margin for labels arriving late
    keep = {
        json.loads(line)["prediction_id"]
        for line in predictions.read_text().splitlines()
        if parse_timestamp(json.loads(line)["timestamp"]) < before
    }
    stable_predictions.write_text(
        "".join(
            line + "\n"
            for line in predictions.read_text().splitlines()
            if json.loads(line)["prediction_id"] in keep
        )
    )
    stable_labels.write_text(
        "".join(
            line + "\n"
            for line in labels.read_text().splitlines()
            if json.loads(line)["prediction_id"] in keep
        )
    )
    summary = replay(settings_from_mapping(CONFIG), stable_predictions, stable_labels).summary()
    assert summary["join"]["matched"] > 3000
    assert summary["alerts"] == []


def test_concept_drift_alert_names_the_change(drifting_stream: tuple[Path, Path]) -> None:
    config = {
        **CONFIG,
        "alerts": {
            **CONFIG["alerts"],  # type: ignore[dict-item]
            "builtin": {"concept_drift": True, "feature_drift": True},
        },
    }
    summary = replay(settings_from_mapping(config), *drifting_stream).summary()
    drift = [t for t in summary["alerts"] if t["rule"] == "ConceptDriftDetected"]
    assert [(t["from_state"], t["to_state"]) for t in drift] == [("inactive", "firing")]
    # Detected within two minutes of the change, in event time; the features never moved.
    assert START + CHANGE_AT - 60 < drift[0]["at"] < START + CHANGE_AT + 120
    assert not [t for t in summary["alerts"] if t["rule"] == "FeatureDriftDetected"]
    detections = summary["models"]["credit"]["v1"]["drift"]["concept"]["detections"]
    assert len(detections) == 1


def test_rules_watch_drift_and_estimate_figures(tmp_path: Path) -> None:
    """A covariate shift of one feature fires a rule on that feature's drift score; the
    estimated accuracy is watched too (and stays high: the scores are calibrated)."""
    from predwatch.demo.synthetic import generate, write_jsonl

    predictions, labels = generate(6000, seed=5, label_delay=30.0)
    for p in predictions[4000:]:  # a shift the reference never saw
        p["features"]["amount"] *= 5
    shift_at = parse_timestamp(predictions[4000]["timestamp"])
    settings = settings_from_mapping(
        {
            "models": {"fraud": {"task": "binary"}},
            "metrics": {"windows": [{"name": "last_2000", "events": 2000}]},
            "drift": {"reference": {"first": 1000}, "min_samples": 200},
            "alerts": {
                "evaluate_every": "30s",
                "rules": [
                    {"name": "AmountDrift", "metric": "feature_drift_psi", "version": "v3",
                     "window": "last_2000", "tags": {"feature": "amount"}, "above": 0.2,
                     "min_samples": 1000},  # values of the feature in the window
                    {"name": "EstimateLow", "metric": "estimated_accuracy", "window": "pending",
                     "below": 0.5, "min_samples": 0},
                ],
            },
        }
    )  # fmt: skip
    summary = replay(settings, *write_jsonl(tmp_path, predictions, labels)).summary()
    fired = [t for t in summary["alerts"] if t["to_state"] == "firing"]
    assert [t["rule"] for t in fired] == ["AmountDrift"]
    # Rules run on the watermark, which trails the latest event by join.grace.
    assert fired[0]["labels"]["feature"] == "amount"
    assert fired[0]["at"] > shift_at - settings.join.grace
