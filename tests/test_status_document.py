"""The /status document: the latest report arranged per model version, nothing computed anew.

Reports here are built by hand (the document is a pure function of one), so what each
part must hold is known by construction; one test replays the sample files through the
real monitor and checks the document against the replay's own summary.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from predwatch.config import load_settings
from predwatch.consumer.files import replay
from predwatch.exporter.status import status_document
from predwatch.monitor import Monitor
from predwatch.report import Alert, Report, Segment

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"

# A history as the history stage writes it: hourly windows, the latest outside its band.
HISTORY = {
    "window": 3600.0,
    "metrics": {
        "accuracy": {
            "points": [
                {"start": 0.0, "end": 3600.0, "value": 0.91, "count": 400},
                {"start": 3600.0, "end": 7200.0, "value": 0.93, "count": 380},
                {"start": 7200.0, "end": 10800.0, "value": 0.62, "count": 410},
            ],
            "mean": 0.82,
            "median": 0.91,
            "variance": 0.03,
            "band": [0.85, 0.99],
            "outside": True,
        }
    },
}


def alert(rule: str, state: str, model: str, version: str | None = None) -> Alert:
    labels = {"alertname": rule, "model": model} | ({"version": version} if version else {})
    return Alert(rule, state, labels, {}, 0.5, 0.7, 10.0, 20.0, None, rule + model)


def report(**summary_parts: Any) -> Report:
    summary = {
        "join": {"matched": 80, "unlabelled": 20, "pending_predictions": 7},
        "models": {
            "price": {"v1": {"task": "regression", "cumulative": {"count": 5, "mae": 2.5}}},
            "fraud": {
                "v2": {
                    "task": "binary",
                    "cumulative": {"count": 50, "accuracy": 0.9, "log_loss": math.nan},
                    "windows": {"1h": {"count": 10, "accuracy": 0.8, "start": 0.0, "end": 3600.0}},
                    "history": HISTORY,
                    "drift": {
                        "data": {
                            "1h": {
                                "amount": {"drift": False, "psi": 0.01, "n": 10},
                                "region": {"drift": True, "psi": 0.4, "n": 10},
                            }
                        },
                        "concept": {
                            "count": 1,
                            "last_detection_time": 60.0,
                            "detections": [{"event_time": 60.0, "sequence": 9, "detector": "a"}],
                        },
                    },
                },
                "v1": {"task": "binary", "cumulative": {"count": 3, "accuracy": 1.0}},
            },
        },
        **summary_parts,
    }
    return Report(
        at=7200.0,
        summary=summary,
        segments=(
            Segment("fraud", "v2", 1, "s1", "region = eu", "error_rate", 0.4, 0.1, 4.0, 30),
            Segment("fraud", "v1", 1, "s2", "amount > 9", "error_rate", 0.2, 0.1, 2.0, 5),
        ),
        alerts=(
            alert("Resolved", "resolved", "fraud", "v2"),
            alert("Slow", "pending", "price"),
            alert("Low", "firing", "fraud", "v2"),
        ),
    )


def by_version(document: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(m["model"], m["version"]): m for m in document["models"]}


def test_models_in_order_with_their_headline_metric() -> None:
    document = status_document(report())
    assert [(m["model"], m["version"], m["metric"], m["better"]) for m in document["models"]] == [
        ("fraud", "v1", "accuracy", "higher"),
        ("fraud", "v2", "accuracy", "higher"),
        ("price", "v1", "mae", "lower"),
    ]


def test_alerts_firing_first_and_each_version_keeps_its_own() -> None:
    document = status_document(report(), evaluated_at=30.0)
    assert document["alerts_evaluated_at_iso"] == "1970-01-01T00:00:30Z"
    assert [a["state"] for a in document["alerts"]] == ["firing", "pending", "resolved"]
    assert document["firing"] == 1
    models = by_version(document)
    assert [a["rule"] for a in models["fraud", "v2"]["alerts"]] == ["Low", "Resolved"]
    assert models["fraud", "v2"]["firing"] == 1
    assert models["fraud", "v1"]["alerts"] == []
    # An alert without a version label concerns every version of its model.
    assert [a["rule"] for a in models["price", "v1"]["alerts"]] == ["Slow"]
    assert document["alerts"][0]["starts_at_iso"] == "1970-01-01T00:00:20Z"


def test_segments_drift_and_coverage() -> None:
    document = status_document(report())
    v2 = by_version(document)["fraud", "v2"]
    assert [(s["rule"], s["value"], s["rest"]) for s in v2["segments"]] == [
        ("region = eu", 0.4, 0.1)
    ]
    assert v2["drifted"] == ["region"]
    assert [(f["feature"], f["drift"]) for f in v2["features"]] == [
        ("region", True),
        ("amount", False),
    ]
    assert v2["concept"]["last_detection_time_iso"] == "1970-01-01T00:01:00Z"
    assert v2["concept"]["detections"][0]["event_time_iso"] == "1970-01-01T00:01:00Z"
    assert document["coverage"] == 0.8  # 80 labelled of the 100 decided
    assert v2["windows"][0]["end_iso"] == "1970-01-01T01:00:00Z"


def test_history_is_rendered_with_times_and_missing_history_is_none() -> None:
    models = by_version(status_document(report()))
    history = models["fraud", "v2"]["history"]
    accuracy = history["metrics"]["accuracy"]
    assert [p["value"] for p in accuracy["points"]] == [0.91, 0.93, 0.62]
    assert accuracy["points"][2]["start_iso"] == "1970-01-01T02:00:00Z"
    assert (accuracy["band"], accuracy["outside"], history["window"]) == (
        [0.85, 0.99],
        True,
        3600.0,
    )
    assert models["fraud", "v1"]["history"] is None


@dataclass
class Lags:
    lags: dict[tuple[str, int], int] | None
    total: int


@pytest.mark.parametrize(
    "case",
    [
        Lags(None, 0),
        Lags({("labels", 1): 3, ("predictions", 0): 4}, 7),
    ],
)
def test_lag_per_partition_and_total(case: Lags) -> None:
    lag = status_document(report(), case.lags)["lag"]
    assert lag["total"] == case.total
    assert len(lag["partitions"]) == len(case.lags or {})


def test_the_document_is_strict_json() -> None:
    """NaN (a log loss of no pairs) and infinite times become null, which JSON can hold."""
    document = status_document(Report(summary=report().summary))
    text = json.dumps(document, allow_nan=False)
    assert json.loads(text)["at"] is None
    assert by_version(document)["fraud", "v2"]["cumulative"]["log_loss"] is None


def test_a_replayed_stream_reads_as_its_summary() -> None:
    settings = load_settings(EXAMPLES / "config.yaml")
    monitor = Monitor(settings)
    replay(settings, EXAMPLES / "predictions.jsonl", EXAMPLES / "labels.jsonl", monitor)
    summary = monitor.summary()
    document = status_document(monitor.report)
    versions = {
        json.loads(line)["model_version"]
        for line in (EXAMPLES / "predictions.jsonl").read_text().splitlines()
        if line.startswith("{") and '"model_version"' in line
    }
    assert {m["version"] for m in document["models"]} == versions
    for entry in document["models"]:
        mine = summary["models"][entry["model"]][entry["version"]]
        assert entry["cumulative"] == mine["cumulative"]
        assert [w["name"] for w in entry["windows"]] == list(mine["windows"])
    assert document["join"] == summary["join"]
